//! Unix-domain sockets: [`UnixListener`] (and [`UnixIncoming`], its stream of connections),
//! [`UnixStream`], [`UnixDatagram`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{self as std_unix, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

use super::Accepting;
use crate::Async;

/// A Unix-domain socket listening for connections.
///
/// # Examples
///
/// ```
/// use aioloop::net::{UnixListener, UnixStream};
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// let dir = std::env::temp_dir().join(format!("aioloop-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sock");
/// aioloop::run(async {
///     let l = UnixListener::bind(&path)?;
///     let p = path.clone();
///     let c = aioloop::spawn(async move { UnixStream::connect(p).await?.write_all(b"hi").await });
///     let (mut s, _) = l.accept().await?;
///     let mut buf = [0; 2];
///     s.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     c.await.unwrap()
/// })?;
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixListener {
    inner: Async<std_unix::UnixListener>,
}

impl UnixListener {
    /// Binds a listener to a filesystem path (which must not exist yet).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists, `PermissionDenied`, a path too long, or no running loop.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Self::from_std(std_unix::UnixListener::bind(path)?)
    }

    /// Waits for a connection and accepts it (backing off while out of file descriptors, as
    /// [`TcpListener::accept`](crate::net::TcpListener::accept) does).
    ///
    /// # Errors
    ///
    /// Other accept failures.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut accepting = Accepting::default();
        let accept = &mut |l: &std_unix::UnixListener| l.accept();
        let (s, addr) = std::future::poll_fn(|cx| super::poll_accept(&self.inner, &mut accepting, cx, accept)).await?;
        Ok((UnixStream::from_std(s)?, addr))
    }

    /// Returns the stream of incoming connections: [`accept`](Self::accept) again and again,
    /// without the peers' addresses. It never ends; an accept error is an `Err` item, and the
    /// next item accepts again.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::net::{UnixListener, UnixStream};
    /// use futures_lite::StreamExt;
    ///
    /// let dir = std::env::temp_dir().join(format!("aioloop-incoming-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("sock");
    /// aioloop::run(async {
    ///     let listener = UnixListener::bind(&path)?;
    ///     let p = path.clone();
    ///     aioloop::spawn(async move { (UnixStream::connect(&p).await, UnixStream::connect(&p).await) });
    ///     let conns: Vec<_> = listener.incoming().take(2).try_collect().await?;
    ///     assert_eq!(conns.len(), 2);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self, accepting: Accepting::default() }
    }

    /// Returns the address the listener is bound to.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
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
    /// See [`UnixStream::from_std`].
    pub fn from_std(listener: std_unix::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener { inner: Async::new(listener)? })
    }

    /// Deregisters the listener and returns the standard library one (still non-blocking).
    ///
    /// # Errors
    ///
    /// If the poller refuses to delete it.
    ///
    /// # Examples
    ///
    /// See [`UnixStream::from_std`].
    pub fn into_std(self) -> io::Result<std_unix::UnixListener> {
        self.inner.into_inner()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl TryFrom<std_unix::UnixListener> for UnixListener {
    type Error = io::Error;
    fn try_from(l: std_unix::UnixListener) -> io::Result<UnixListener> {
        UnixListener::from_std(l)
    }
}

/// The connections a [`UnixListener`] accepts, as a [`Stream`](futures_core::Stream) (from
/// [`UnixListener::incoming`]); `Unpin`, and never ends.
///
/// # Examples
///
/// See [`UnixListener::incoming`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct UnixIncoming<'a> {
    /// The listener it accepts from.
    listener: &'a UnixListener,
    /// The accept in progress (its back-off while out of descriptors).
    accepting: Accepting,
}

impl futures_core::Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let accept = &mut |l: &std_unix::UnixListener| l.accept();
        let accepted = std::task::ready!(super::poll_accept(&this.listener.inner, &mut this.accepting, cx, accept));
        Poll::Ready(Some(accepted.and_then(|(s, _)| UnixStream::from_std(s))))
    }
}

/// A Unix-domain stream connection.
///
/// Like [`TcpStream`](crate::net::TcpStream), it implements `AsyncRead` and `AsyncWrite` (also on
/// `&UnixStream`): read and write with the extension traits of `futures-lite` or `futures-util`.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// aioloop::run(async {
///     let (mut a, mut b) = aioloop::net::UnixStream::pair()?;
///     a.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixStream {
    inner: Async<std_unix::UnixStream>,
}

super::async_stream!(UnixStream, std_unix::UnixStream);

impl UnixStream {
    /// Connects to the listener at `path` without blocking the loop (a non-blocking
    /// `connect(2)`; while the listener's backlog is full it retries after a short sleep).
    ///
    /// # Errors
    ///
    /// `NotFound` if nothing is bound at `path`, `ConnectionRefused` if it is not listening, or
    /// no running loop.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let err = aioloop::net::UnixStream::connect("/nonexistent/aioloop.sock").await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// });
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SocketAddrUnix::new(path.as_ref())?;
        let mut backoff = Duration::from_millis(1);
        loop {
            let fd = super::socket(AddressFamily::UNIX, SocketType::STREAM)?;
            match rustix::net::connect(&fd, &addr) {
                Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    // The listener's backlog is full: no readiness event tells when it drains.
                    // The pause is a timer of the running loop (outside one, fail as `Async::new`).
                    if !crate::runtime::running::is_running() {
                        return Err(io::Error::other("no running event loop: connect inside the loop"));
                    }
                    crate::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let stream = UnixStream { inner: Async::new(std_unix::UnixStream::from(fd))? };
            stream.inner.writable().await?;
            if let Some(e) = stream.inner.get_ref().take_error()? {
                return Err(e);
            }
            return Ok(stream);
        }
    }

    /// Creates a pair of connected streams.
    ///
    /// # Errors
    ///
    /// Out of file descriptors, or no running loop.
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std_unix::UnixStream::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
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
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::net::UnixStream::from_std(a).unwrap();
    ///     let back: std::os::unix::net::UnixStream = a.into_std().unwrap();
    ///     # drop(back);
    /// });
    /// ```
    pub fn from_std(stream: std_unix::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream { inner: Async::new(stream)? })
    }

    /// Returns the local address.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = aioloop::net::UnixStream::pair().unwrap();
    ///     assert!(a.local_addr().unwrap().is_unnamed());
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Returns the peer's address.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = aioloop::net::UnixStream::pair().unwrap();
    ///     assert!(a.peer_addr().unwrap().is_unnamed());
    /// });
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }
}

/// A Unix-domain datagram socket.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let (a, b) = aioloop::net::UnixDatagram::pair()?;
///     a.send(b"one").await?;
///     let mut buf = [0; 8];
///     assert_eq!(b.recv(&mut buf).await?, 3);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    inner: Async<std_unix::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds a datagram socket to a filesystem path.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists, `PermissionDenied`, or no running loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("aioloop-dgram-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// aioloop::run(async {
    ///     let a = aioloop::net::UnixDatagram::bind(dir.join("a")).unwrap();
    ///     let b = aioloop::net::UnixDatagram::unbound().unwrap();
    ///     b.send_to(b"x", dir.join("a")).await.unwrap();
    ///     let mut buf = [0; 1];
    ///     assert_eq!(a.recv_from(&mut buf).await.unwrap().0, 1);
    /// });
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        Self::from_std(std_unix::UnixDatagram::bind(path)?)
    }

    /// Creates a socket bound to no address (it can send, and receive replies).
    ///
    /// # Errors
    ///
    /// Out of file descriptors, or no running loop.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Self::from_std(std_unix::UnixDatagram::unbound()?)
    }

    /// Creates a pair of connected datagram sockets.
    ///
    /// # Errors
    ///
    /// Out of file descriptors, or no running loop.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std_unix::UnixDatagram::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }

    /// Sets the default peer (connecting a datagram socket does not block).
    ///
    /// # Errors
    ///
    /// `NotFound` if nothing is bound at `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::net::UnixDatagram::unbound().unwrap();
    ///     assert!(s.connect("/nonexistent/aioloop.sock").is_err());
    /// });
    /// ```
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.inner.get_ref().connect(path)
    }

    /// Sends a datagram to the socket bound at `path`.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner.write_with(|s| s.send_to(buf, path)).await
    }

    /// Receives a datagram; returns its length and sender.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf)).await
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf)).await
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf)).await
    }

    /// Returns the local address.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::net::UnixDatagram::unbound().unwrap();
    ///     assert!(s.local_addr().unwrap().is_unnamed());
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Wraps a standard library socket (made non-blocking and registered with the loop).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered, or no loop is running.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let std = std::os::unix::net::UnixDatagram::unbound().unwrap();
    ///     let s = aioloop::net::UnixDatagram::from_std(std).unwrap();
    ///     let back = s.into_std().unwrap();
    ///     # drop(back);
    /// });
    /// ```
    pub fn from_std(socket: std_unix::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram { inner: Async::new(socket)? })
    }

    /// Deregisters the socket and returns the standard library one (still non-blocking).
    ///
    /// # Errors
    ///
    /// If the poller refuses to delete it.
    ///
    /// # Examples
    ///
    /// See [`from_std`](Self::from_std).
    pub fn into_std(self) -> io::Result<std_unix::UnixDatagram> {
        self.inner.into_inner()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl TryFrom<std_unix::UnixDatagram> for UnixDatagram {
    type Error = io::Error;
    fn try_from(s: std_unix::UnixDatagram) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(s)
    }
}
