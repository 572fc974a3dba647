//! UDP: [`UdpSocket`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};

use crate::Async;

/// A UDP socket (asyncio's `create_datagram_endpoint`, at the socket level).
///
/// # Examples
///
/// ```
/// use aioloop::net::UdpSocket;
/// aioloop::run(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    inner: Async<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to an address (`"127.0.0.1:0"` picks a free port).
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `PermissionDenied`, an address that does not resolve, or no running loop.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Self::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Sets the default peer for [`send`](Self::send) and the only one [`recv`](Self::recv)
    /// accepts datagrams from. (UDP's connect sends nothing, so it does not block.)
    ///
    /// # Errors
    ///
    /// An address that does not resolve or cannot be reached from this socket's family.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::net::UdpSocket;
    /// aioloop::run(async {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap();
    ///     a.send(b"hi").await.unwrap();
    ///     let mut buf = [0; 2];
    ///     assert_eq!(b.recv(&mut buf).await.unwrap(), 2);
    ///     assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// });
    /// ```
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.get_ref().connect(addr)
    }

    /// Sends a datagram to `addr`; returns how many bytes were sent.
    ///
    /// # Errors
    ///
    /// An address that does not resolve, a datagram too large, or an unreachable network.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to send to"))?;
        self.inner.write_with(|s| s.send_to(buf, addr)).await
    }

    /// Receives a datagram; returns its length and sender. A datagram longer than `buf` is cut.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf)).await
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect); `ConnectionRefused` if an earlier
    /// datagram was refused (an ICMP error).
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf)).await
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` if an earlier datagram was refused (an ICMP error).
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf)).await
    }

    /// Returns the local address.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Returns the connected peer's address.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Returns the standard library socket, still registered with the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     s.get_ref().set_broadcast(true).unwrap();
    /// });
    /// ```
    pub fn get_ref(&self) -> &std::net::UdpSocket {
        self.inner.get_ref()
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
    ///     let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let s = aioloop::net::UdpSocket::from_std(std).unwrap();
    ///     let back = s.into_std().unwrap();
    ///     # drop(back);
    /// });
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket { inner: Async::new(socket)? })
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
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.inner.into_inner()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;
    fn try_from(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(s)
    }
}
