//! Sockets on the loop: TCP, UDP and Unix-domain, each an [`Async`] around the
//! standard library's socket (asyncio's `open_connection`/`start_server` streams, at the level of
//! the socket calls).
//!
//! - Binding never blocks, so [`TcpListener::bind`] and friends are plain functions; accepting,
//!   connecting, reading and writing are `async` and park the task until the poller reports
//!   readiness.
//! - The streams implement [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`] (also on `&`,
//!   so one task can read while another writes). Reading and writing go through those traits'
//!   extension methods, from `futures-lite` or `futures-util` (`read`, `write_all`,
//!   `read_to_end`, `copy`...): the streams have no inherent `read`/`write` that would shadow
//!   them. `poll_close` shuts the writing side down.
//! - The listeners accept one connection at a time ([`TcpListener::accept`]) or as a
//!   [`Stream`](futures_core::Stream) of connections ([`TcpListener::incoming`]).
//! - Every OS failure is an `io::Error` (connection refused, reset, address in use), never a
//!   panic. Writing to a socket whose peer is gone gives `BrokenPipe`, not a `SIGPIPE` (Rust
//!   programs ignore `SIGPIPE`; the standard library sends with `MSG_NOSIGNAL`, and on macOS
//!   sets `SO_NOSIGPIPE`, as the sockets made here do). Shutting down the writing side of a
//!   connection the peer already reset is not an error (tokio's rule, tokio#4665): there is
//!   nothing left to shut down, and a server would otherwise log a failure for most
//!   connections under load.
//! - An accept loop that runs out of file descriptors (`EMFILE`, `ENFILE`) backs off with a
//!   growing sleep (1 ms up to 1 s) instead of spinning, and resumes once descriptors are free.
//! - Host names are resolved off the loop's thread: [`lookup_host`] (asyncio's `getaddrinfo`),
//!   and [`TcpStream::connect`] with a name, through this module's [`ToSocketAddrs`].
//!
//! Like every `Async`, a socket must be created while a loop runs on this thread: creating one
//! outside gives an `io::Error` saying so. Using it later from another loop, outside any loop, or
//! after its loop was dropped gives an `io::Error` saying so, at once, for every operation that
//! would wait (data already buffered can still be read).
//!
//! Sockets are created non-blocking and close-on-exec: in `socket(2)` itself on Linux and the
//! BSDs, with `fcntl`/`ioctl` right after it on macOS, which has neither `SOCK_NONBLOCK` nor
//! `SOCK_CLOEXEC` (as mio and the standard library do there).

mod addr;
mod lookup;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use lookup::lookup_host;
#[doc(hidden)]
pub use lookup::{set_resolver_hook, ResolverHook};
pub use tcp::{TcpIncoming, TcpListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketType};

use crate::runtime::reactor::Dir;
use crate::Async;

/// Creates a socket in non-blocking, close-on-exec mode.
fn socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        Ok(rustix::net::socket_with(family, kind, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)?)
    }
    // macOS has neither SOCK_NONBLOCK nor SOCK_CLOEXEC: set both right after `socket` (mio does
    // the same; a process forking on another thread in between could inherit the descriptor, as
    // with the standard library's sockets there). No MSG_NOSIGNAL either: SO_NOSIGPIPE, as std.
    #[cfg(target_vendor = "apple")]
    {
        let fd = rustix::net::socket(family, kind, None)?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
        Ok(fd)
    }
}

/// Returns true for the errors of a process or system out of file descriptors (or of memory for
/// new sockets), after which accepting again at once would fail again.
fn out_of_descriptors(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// The state of a listener's accepting (one `accept` call, or an `incoming` stream): the pause
/// in progress while the process is out of descriptors, and the length of the last one.
#[derive(Debug, Default)]
struct Accepting {
    /// The back-off sleep in progress, if any.
    pause: Option<crate::Sleep>,
    /// The last pause's length (zero after a success): 1 ms first, doubling up to 1 s.
    backoff: Duration,
}

/// Polls `accept` until it gives a connection or a real error, backing off while the process
/// is out of descriptors and skipping connections reset before they were accepted.
fn poll_accept<T: AsFd, R>(
    listener: &Async<T>,
    state: &mut Accepting,
    cx: &mut Context<'_>,
    accept: &mut impl FnMut(&T) -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        if let Some(pause) = &mut state.pause {
            ready!(Pin::new(pause).poll(cx));
            state.pause = None;
        }
        match ready!(listener.poll_op(cx, Dir::Read, accept)) {
            Err(e) if out_of_descriptors(&e) => {
                // The pending connection stays in the backlog and no new readiness event will
                // come for it: try again after a pause, during which other tasks can free fds.
                // (The pause is a timer of the listener's loop: it must be the running one.)
                listener.check_can_wait()?;
                state.backoff = (state.backoff * 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
                state.pause = Some(crate::sleep(state.backoff));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            res => {
                state.backoff = Duration::ZERO;
                return Poll::Ready(res);
            }
        }
    }
}

/// Maps `NotConnected` from shutting down a writing side to `Ok` (see the module docs).
fn shutdown(socket_shutdown: io::Result<()>, how: std::net::Shutdown) -> io::Result<()> {
    match socket_shutdown {
        Err(e) if e.kind() == io::ErrorKind::NotConnected && how != std::net::Shutdown::Read => Ok(()),
        res => res,
    }
}

/// Implements `AsyncRead`/`AsyncWrite` for a stream type and a reference to it (through
/// `Async`'s), and `get_ref`, `into_std`, `shutdown` and the conversions.
macro_rules! async_stream {
    ($ty:ty, $std:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut &self.inner), cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncRead::poll_read_vectored(std::pin::Pin::new(&mut &self.inner), cx, bufs)
            }
        }

        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut &self.inner), cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncRead::poll_read_vectored(std::pin::Pin::new(&mut &self.inner), cx, bufs)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write(std::pin::Pin::new(&mut &self.inner), cx, buf)
            }
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut &self.inner), cx, bufs)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write(std::pin::Pin::new(&mut &self.inner), cx, buf)
            }
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                futures_io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut &self.inner), cx, bufs)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        impl $ty {
            /// Returns the standard library socket, still registered with the loop.
            pub fn get_ref(&self) -> &$std {
                self.inner.get_ref()
            }

            /// Deregisters the socket and returns the standard library one (non-blocking).
            ///
            /// # Errors
            ///
            /// If the poller refuses to delete it.
            pub fn into_std(self) -> std::io::Result<$std> {
                self.inner.into_inner()
            }

            /// Shuts down the reading side, the writing side or both (`AsyncWriteExt::close`
            /// shuts down the writing side).
            ///
            /// Shutting down the writing side (`Write` or `Both`) of a connection the peer
            /// already reset returns `Ok`, as tokio does: the OS says `NotConnected`, but there
            /// is nothing left to shut down.
            ///
            /// # Errors
            ///
            /// `NotConnected` when shutting down only the reading side of a socket that is not
            /// connected (or no longer is).
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                crate::net::shutdown(self.inner.get_ref().shutdown(how), how)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl TryFrom<$std> for $ty {
            type Error = std::io::Error;
            fn try_from(s: $std) -> std::io::Result<Self> {
                Ok(Self { inner: crate::Async::new(s)? })
            }
        }

        impl TryFrom<$ty> for $std {
            type Error = std::io::Error;
            fn try_from(s: $ty) -> std::io::Result<Self> {
                s.into_std()
            }
        }
    };
}

use async_stream;
