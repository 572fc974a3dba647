//! [`ToSocketAddrs`]: the addresses [`TcpStream::connect`](super::TcpStream::connect) and
//! [`lookup_host`](super::lookup_host) take, with host names resolved off the loop's thread.
//!
//! The standard library's `ToSocketAddrs` resolves a name with a blocking `getaddrinfo` call on
//! the calling thread: on the loop's thread that stalls every task for as long as the resolver
//! takes. This trait is implemented for the same types as std's, so the same call sites
//! compile, but it only *parses*: an IP address gives its socket addresses at once, and a host
//! name becomes a lookup that `lookup_host` runs on the resolver pool.
//!
//! The trait is sealed: its one method returns a type private to the crate.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// The sealed half of [`ToSocketAddrs`](super::ToSocketAddrs): public, but in a private
    /// module, so no other crate can name it, call it or implement it.
    pub trait Resolve {
        /// Parses the address: IP addresses now, host names as a lookup to run.
        #[doc(hidden)]
        fn resolution(&self) -> Resolution;
    }

    /// What an address turns into before any lookup.
    #[derive(Debug)]
    pub enum Resolution {
        /// Addresses known without asking the resolver (or a parse error).
        Ready(io::Result<Vec<SocketAddr>>),
        /// A host name to resolve, with the port.
        Lookup(String, u16),
    }
}

pub(crate) use sealed::{Resolution, Resolve};

/// Something that names one or more socket addresses, possibly through a host name: the
/// argument of [`TcpStream::connect`](super::TcpStream::connect) and
/// [`lookup_host`](super::lookup_host).
///
/// Implemented for the same types as `std::net::ToSocketAddrs`: `SocketAddr`, `SocketAddrV4`,
/// `SocketAddrV6`, `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`, `(&str, u16)`,
/// `(String, u16)`, `str` (`"host:port"`), `String`, `&[SocketAddr]`, and references to them.
/// Unlike std's, a host name is not resolved by a blocking call on the calling thread but by
/// [`lookup_host`](super::lookup_host), off the loop's thread. An IP address never involves a
/// thread.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// aioloop::run(async {
///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let port = l.local_addr().unwrap().port();
///     // All of these connect to the same listener.
///     let by_addr: SocketAddr = ([127, 0, 0, 1], port).into();
///     aioloop::net::TcpStream::connect(by_addr).await.unwrap();
///     aioloop::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.unwrap();
///     aioloop::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
///     aioloop::net::TcpStream::connect(&[by_addr][..]).await.unwrap();
///     aioloop::net::TcpStream::connect(("localhost", port)).await.unwrap(); // resolved off the loop
/// });
/// ```
pub trait ToSocketAddrs: sealed::Resolve {}

impl<T: sealed::Resolve + ?Sized> ToSocketAddrs for T {}

fn ready(addrs: impl IntoIterator<Item = SocketAddr>) -> Resolution {
    Resolution::Ready(Ok(addrs.into_iter().collect()))
}

impl sealed::Resolve for SocketAddr {
    fn resolution(&self) -> Resolution {
        ready([*self])
    }
}

impl sealed::Resolve for SocketAddrV4 {
    fn resolution(&self) -> Resolution {
        ready([SocketAddr::V4(*self)])
    }
}

impl sealed::Resolve for SocketAddrV6 {
    fn resolution(&self) -> Resolution {
        ready([SocketAddr::V6(*self)])
    }
}

impl sealed::Resolve for (IpAddr, u16) {
    fn resolution(&self) -> Resolution {
        ready([SocketAddr::new(self.0, self.1)])
    }
}

impl sealed::Resolve for (Ipv4Addr, u16) {
    fn resolution(&self) -> Resolution {
        ready([SocketAddr::new(self.0.into(), self.1)])
    }
}

impl sealed::Resolve for (Ipv6Addr, u16) {
    fn resolution(&self) -> Resolution {
        ready([SocketAddr::new(self.0.into(), self.1)])
    }
}

impl sealed::Resolve for (&str, u16) {
    fn resolution(&self) -> Resolution {
        host_and_port(self.0, self.1)
    }
}

impl sealed::Resolve for (String, u16) {
    fn resolution(&self) -> Resolution {
        host_and_port(&self.0, self.1)
    }
}

impl sealed::Resolve for str {
    fn resolution(&self) -> Resolution {
        parse(self)
    }
}

impl sealed::Resolve for String {
    fn resolution(&self) -> Resolution {
        parse(self)
    }
}

impl sealed::Resolve for [SocketAddr] {
    fn resolution(&self) -> Resolution {
        ready(self.iter().copied())
    }
}

impl<T: sealed::Resolve + ?Sized> sealed::Resolve for &T {
    fn resolution(&self) -> Resolution {
        (**self).resolution()
    }
}

/// A host (an IP address, or a name to look up) and a port.
fn host_and_port(host: &str, port: u16) -> Resolution {
    match host.parse::<IpAddr>() {
        Ok(ip) => ready([SocketAddr::new(ip, port)]),
        Err(_) => Resolution::Lookup(host.to_owned(), port),
    }
}

/// `"host:port"`, `"1.2.3.4:port"` or `"[::1]:port"`, as std parses it: the port after the last
/// colon; a missing or bad port is `InvalidInput`.
fn parse(s: &str) -> Resolution {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return ready([addr]);
    }
    let invalid =
        |why: &str| Resolution::Ready(Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{why}: {s:?}"))));
    let Some((host, port)) = s.rsplit_once(':') else {
        return invalid("invalid socket address (no port; write host:port)");
    };
    match port.parse::<u16>() {
        Ok(port) => host_and_port(host, port),
        Err(_) => invalid("invalid port value"),
    }
}
