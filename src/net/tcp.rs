//! TCP: [`TcpListener`] (with [`TcpListenOptions`]: `SO_REUSEPORT`, the listen backlog, and
//! [`TcpIncoming`], its stream of connections) and [`TcpStream`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs as StdToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::net::{AddressFamily, SocketType};

use super::{Accepting, ToSocketAddrs};
use crate::Async;

/// A TCP socket listening for connections (asyncio's `start_server` socket).
///
/// # Examples
///
/// Reading and writing use the `AsyncReadExt`/`AsyncWriteExt` extension traits of
/// `futures-lite` (or `futures-util`):
///
/// ```
/// use aioloop::net::{TcpListener, TcpStream};
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// aioloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = aioloop::spawn(async move {
///         let mut s = TcpStream::connect(addr).await?;
///         s.write_all(b"hello").await
///     });
///     let (mut conn, _peer) = listener.accept().await?;
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     client.await.unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    inner: Async<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener to an address (`"127.0.0.1:0"` picks a free port), with the standard
    /// library's backlog. Binding never blocks.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `PermissionDenied`, an address that does not resolve, or no running loop.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let taken = l.local_addr().unwrap();
    ///     let err = aioloop::net::TcpListener::bind(taken).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// });
    /// ```
    pub fn bind(addr: impl StdToSocketAddrs) -> io::Result<TcpListener> {
        Self::from_std(std::net::TcpListener::bind(addr)?)
    }

    /// Binds a listener with options: `SO_REUSEPORT` (several listeners on one port, the
    /// kernel spreading connections across them) and the listen backlog. Each resolved address is
    /// tried in turn. Like [`bind`](Self::bind) it sets `SO_REUSEADDR`, so a restarted server can
    /// bind while the old one's connections linger in `TIME_WAIT`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` (its message says that every listener of a shared port needs
    /// [`reuse_port`](TcpListenOptions::reuse_port)), `PermissionDenied`, an address that does not
    /// resolve, or no running loop.
    ///
    /// # Examples
    ///
    /// Two listeners on one port, as two loops of [`PerCore`](crate::PerCore) would hold them:
    ///
    /// ```
    /// use aioloop::net::{TcpListenOptions, TcpListener};
    ///
    /// aioloop::run(async {
    ///     let options = TcpListenOptions::new().reuse_port(true).backlog(1024);
    ///     let a = TcpListener::bind_with("127.0.0.1:0", options)?;
    ///     let b = TcpListener::bind_with(a.local_addr()?, options)?;
    ///     assert_eq!(a.local_addr()?, b.local_addr()?);
    ///     // Without the option the port is taken.
    ///     let err = TcpListener::bind_with(a.local_addr()?, TcpListenOptions::new()).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with(addr: impl StdToSocketAddrs, options: TcpListenOptions) -> io::Result<TcpListener> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to");
        for a in addr.to_socket_addrs()? {
            match options.bind(a) {
                Ok(l) => return Self::from_std(l),
                Err(e) => last = options.explain(a, e),
            }
        }
        Err(last)
    }

    /// Waits for a connection and accepts it.
    ///
    /// While the process is out of file descriptors (`EMFILE`, `ENFILE`) it backs off (sleeping
    /// 1 ms, then twice as long each time, up to 1 s) and tries again, instead of spinning;
    /// connections reset by their peer before they were accepted are skipped.
    ///
    /// # Errors
    ///
    /// Other accept failures (rare: the listener was shut down, a firewall refused).
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut accepting = Accepting::default();
        let accept = &mut |l: &std::net::TcpListener| l.accept();
        let (s, addr) = std::future::poll_fn(|cx| super::poll_accept(&self.inner, &mut accepting, cx, accept)).await?;
        Ok((TcpStream::from_std(s)?, addr))
    }

    /// Returns the stream of incoming connections: [`accept`](Self::accept) again and again,
    /// without the peers' addresses (tokio-stream's `TcpListenerStream`, async-net's
    /// `incoming`). It never ends; an accept error is an `Err` item, and the next item accepts
    /// again.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::net::{TcpListener, TcpStream};
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
    ///
    /// aioloop::run(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     for i in 0..3u8 {
    ///         aioloop::spawn(async move { TcpStream::connect(addr).await?.write_all(&[i]).await });
    ///     }
    ///     let mut seen = vec![];
    ///     let mut incoming = listener.incoming().take(3);
    ///     while let Some(conn) = incoming.next().await {
    ///         let mut byte = [0];
    ///         conn?.read_exact(&mut byte).await?;
    ///         seen.push(byte[0]);
    ///     }
    ///     seen.sort();
    ///     assert_eq!(seen, [0, 1, 2]);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> TcpIncoming<'_> {
        TcpIncoming { listener: self, accepting: Accepting::default() }
    }

    /// Returns the address the listener is bound to.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     assert_ne!(l.local_addr().unwrap().port(), 0);
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Wraps a standard library listener (made non-blocking and registered with the loop).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered, or no loop is running.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let l = aioloop::net::TcpListener::from_std(std).unwrap();
    ///     let back: std::net::TcpListener = l.into_std().unwrap();
    ///     # drop(back);
    /// });
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener { inner: Async::new(listener)? })
    }

    /// Deregisters the listener and returns the standard library one (still non-blocking).
    ///
    /// # Errors
    ///
    /// If the poller refuses to delete it.
    ///
    /// # Examples
    ///
    /// See [`from_std`](Self::from_std).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.inner.into_inner()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;
    fn try_from(l: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(l)
    }
}

/// The connections a [`TcpListener`] accepts, as a [`Stream`](futures_core::Stream) (from
/// [`TcpListener::incoming`]); `Unpin`, and never ends.
///
/// # Examples
///
/// See [`TcpListener::incoming`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct TcpIncoming<'a> {
    /// The listener it accepts from.
    listener: &'a TcpListener,
    /// The accept in progress (its back-off while out of descriptors).
    accepting: Accepting,
}

impl futures_core::Stream for TcpIncoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let accept = &mut |l: &std::net::TcpListener| l.accept();
        let accepted = std::task::ready!(super::poll_accept(&this.listener.inner, &mut this.accepting, cx, accept));
        Poll::Ready(Some(accepted.and_then(|(s, _)| TcpStream::from_std(s))))
    }
}

/// How [`TcpListener::bind_with`] sets up its socket: `SO_REUSEPORT` and the listen backlog.
///
/// # Examples
///
/// ```
/// use aioloop::net::TcpListenOptions;
/// let options = TcpListenOptions::new().reuse_port(true).backlog(4096);
/// assert!(options.is_reuse_port());
/// assert_eq!(options.listen_backlog(), 4096);
/// assert_eq!(TcpListenOptions::default().listen_backlog(), 128); // the standard library's
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpListenOptions {
    /// Sets `SO_REUSEPORT` before binding.
    reuse_port: bool,
    /// The backlog given to `listen(2)` (the kernel caps it at `net.core.somaxconn`).
    backlog: u32,
}

impl Default for TcpListenOptions {
    fn default() -> Self {
        TcpListenOptions { reuse_port: false, backlog: 128 }
    }
}

impl TcpListenOptions {
    /// Returns the default options: no `SO_REUSEPORT`, a backlog of 128 (what
    /// [`TcpListener::bind`] and the standard library use).
    ///
    /// # Examples
    ///
    /// See [`TcpListenOptions`].
    pub fn new() -> TcpListenOptions {
        TcpListenOptions::default()
    }

    /// Sets `SO_REUSEPORT`: several sockets may then bind the same address and port, if each of
    /// them sets it (and, on Linux, they belong to the same user). On Linux the kernel spreads
    /// incoming connections across the listening ones by a hash of the connection's addresses,
    /// which is how one loop per core shares a port (see [`PerCore`](crate::PerCore)). Other
    /// systems (macOS, the BSDs) accept the option but may hand every connection to one of the
    /// sockets. Default: false.
    ///
    /// # Examples
    ///
    /// See [`TcpListener::bind_with`].
    pub fn reuse_port(mut self, on: bool) -> TcpListenOptions {
        self.reuse_port = on;
        self
    }

    /// Sets the listen backlog: how many connections the kernel completes and queues before the
    /// server accepts them. When it is full the kernel drops new connection attempts (their
    /// clients retry a second later), so a server that takes bursts of thousands of connects
    /// wants more than the default 128. The kernel caps it at `net.core.somaxconn` (4096 by
    /// default on Linux since 5.4); values above `i32::MAX` count as `i32::MAX`.
    ///
    /// # Examples
    ///
    /// See [`TcpListenOptions`].
    pub fn backlog(mut self, backlog: u32) -> TcpListenOptions {
        self.backlog = backlog;
        self
    }

    /// Returns whether `SO_REUSEPORT` is set.
    ///
    /// # Examples
    ///
    /// See [`TcpListenOptions`].
    pub fn is_reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// Returns the listen backlog.
    ///
    /// # Examples
    ///
    /// See [`TcpListenOptions`].
    pub fn listen_backlog(&self) -> u32 {
        self.backlog
    }

    /// Creates, configures, binds and listens a socket (non-blocking, close-on-exec).
    fn bind(&self, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        use rustix::net::sockopt;
        let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let fd = super::socket(family, SocketType::STREAM)?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        if self.reuse_port {
            sockopt::set_socket_reuseport(&fd, true)?;
        }
        rustix::net::bind(&fd, &addr)?;
        rustix::net::listen(&fd, i32::try_from(self.backlog).unwrap_or(i32::MAX))?;
        Ok(std::net::TcpListener::from(fd))
    }

    /// Names the address in a bind failure, with a hint for a port that is taken.
    fn explain(&self, addr: SocketAddr, e: io::Error) -> io::Error {
        let hint = match (e.kind(), self.reuse_port) {
            (io::ErrorKind::AddrInUse, false) => {
                " (to share a port, bind every listener with TcpListenOptions::reuse_port(true))"
            }
            (io::ErrorKind::AddrInUse, true) => {
                " (a listener without SO_REUSEPORT, or another user's, holds it: every listener of a shared port needs reuse_port)"
            }
            _ => "",
        };
        io::Error::new(e.kind(), format!("cannot bind {addr}: {e}{hint}"))
    }
}

/// A TCP connection (asyncio's stream reader and writer, at the socket level).
///
/// It implements [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`], also on
/// `&TcpStream`, so one task can read while another writes: use the extension traits of
/// `futures-lite` or `futures-util` (`read`, `read_exact`, `write_all`, `close`...). Closing it
/// (`AsyncWriteExt::close`) shuts down its writing side; dropping it closes the socket.
///
/// # Examples
///
/// ```
/// use aioloop::net::{TcpListener, TcpStream};
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// aioloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     // One task writes through `&client` while this one reads through `&client`.
///     let writer = aioloop::spawn(async move {
///         (&server).write_all(b"pong").await?;
///         (&server).close().await?; // end of stream for the client
///         Ok::<_, std::io::Error>(server)
///     });
///     let mut got = Vec::new();
///     (&client).read_to_end(&mut got).await?;
///     assert_eq!(got, b"pong");
///     writer.await.unwrap()?;
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpStream {
    inner: Async<std::net::TcpStream>,
}

super::async_stream!(TcpStream, std::net::TcpStream);

impl TcpStream {
    /// Connects to an address without blocking the loop: a non-blocking `connect(2)`, then a wait
    /// until the socket is writable.
    ///
    /// A host name (`"example.com:80"`, `("localhost", 8080)`) is first resolved with
    /// [`lookup_host`](super::lookup_host), off the loop's thread; then each address is tried in
    /// the resolver's order and the first connection is returned (asyncio's default for
    /// `open_connection`). An IP address is connected to at once, without a lookup.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused`, `TimedOut`, `NetworkUnreachable`... (when every address fails, the
    /// last one's error), the lookup's error (`InvalidInput` for a missing or bad port), or no
    /// running loop.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     // Nothing listens on this port of the loopback interface.
    ///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     drop(l);
    ///     let err = aioloop::net::TcpStream::connect(addr).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    ///     // The same by name: "localhost" is looked up off the loop's thread first.
    ///     let err = aioloop::net::TcpStream::connect(("localhost", addr.port())).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    /// });
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for a in super::lookup::resolve(&addr).await? {
            match Self::connect_addr(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let fd = super::socket(family, SocketType::STREAM)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = TcpStream { inner: Async::new(std::net::TcpStream::from(fd))? };
        // The connection is established (or failed) when the socket becomes writable.
        stream.inner.writable().await?;
        if let Some(e) = stream.inner.get_ref().take_error()? {
            return Err(e);
        }
        stream.inner.get_ref().peer_addr()?;
        Ok(stream)
    }

    /// Wraps a standard library stream (made non-blocking and registered with the loop).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered, or no loop is running.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let std = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let s = aioloop::net::TcpStream::from_std(std).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
    /// });
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { inner: Async::new(stream)? })
    }

    /// Returns the local address.
    ///
    /// # Examples
    ///
    /// See [`from_std`](Self::from_std).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Returns the peer's address.
    ///
    /// # Examples
    ///
    /// See [`from_std`](Self::from_std).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = aioloop::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    ///     s.set_nodelay(true).unwrap();
    ///     assert!(s.nodelay().unwrap());
    /// });
    /// ```
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(on)
    }

    /// Returns whether `TCP_NODELAY` is set.
    ///
    /// # Examples
    ///
    /// See [`set_nodelay`](Self::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Reads some bytes without taking them off the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::net::{TcpListener, TcpStream};
    /// use futures_lite::AsyncWriteExt;
    /// aioloop::run(async {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    ///     let (s, _) = l.accept().await.unwrap();
    ///     c.write_all(b"abc").await.unwrap();
    ///     let mut buf = [0; 3];
    ///     let n = s.peek(&mut buf).await.unwrap();
    ///     assert_eq!(&buf[..n], &b"abc"[..n]);
    /// });
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf)).await
    }
}
