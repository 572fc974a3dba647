//! Sockets on the loop: TCP, UDP and Unix-domain, each an [`Async`] around the
//! standard library's socket (asyncio's `open_connection`/`start_server` streams, at the level of
//! the socket calls).
//!
//! - Binding never blocks, so [`TcpListener::bind`] and friends are plain functions; accepting,
//!   connecting, reading and writing are `async` and park the task until the poller reports
//!   readiness.
//! - The streams implement [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`] (also on `&`,
//!   so one task can read while another writes), so the extension traits of `futures-lite` or
//!   `futures-util` work on them.
//! - Every OS failure is an `io::Error` (connection refused, reset, address in use), never a
//!   panic. Writing to a socket whose peer is gone gives `BrokenPipe`, not a `SIGPIPE` (Rust
//!   programs ignore `SIGPIPE`, and the standard library sends with `MSG_NOSIGNAL`).
//! - An accept loop that runs out of file descriptors (`EMFILE`, `ENFILE`) backs off with a
//!   growing sleep (1 ms up to 1 s) instead of spinning, and resumes once descriptors are free.
//! - Host names are resolved off the loop's thread: [`lookup_host`] (asyncio's `getaddrinfo`),
//!   and [`TcpStream::connect`] with a name, through this module's [`ToSocketAddrs`].
//!
//! Like every `Async`, a socket must be created while a loop runs on this thread: creating one
//! outside gives an `io::Error` saying so.

mod addr;
mod lookup;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use lookup::lookup_host;
#[doc(hidden)]
pub use lookup::{set_resolver_hook, ResolverHook};
pub use tcp::{TcpListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io::{self, Read, Write};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::io::Dir;
use crate::Async;

/// Returns true for the errors of a process or system out of file descriptors (or of memory for
/// new sockets), after which accepting again at once would fail again.
fn out_of_descriptors(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// Runs `accept` until it gives a connection or a real error, backing off while the process is
/// out of descriptors and skipping connections reset before they were accepted.
async fn accept_with_backoff<T: std::os::fd::AsFd, R>(
    listener: &Async<T>,
    mut accept: impl FnMut(&T) -> io::Result<R>,
) -> io::Result<R> {
    let mut backoff = Duration::from_millis(1);
    loop {
        match listener.read_with(&mut accept).await {
            Err(e) if out_of_descriptors(&e) => {
                // The pending connection stays in the backlog and no new readiness event will
                // come for it: try again after a pause, during which other tasks can free fds.
                crate::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            res => return res,
        }
    }
}

/// `AsyncRead::poll_read` for any `Async` stream.
fn poll_read<T: std::os::fd::AsFd>(io: &Async<T>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>
where
    for<'a> &'a T: Read,
{
    io.poll_op(cx, Dir::Read, &mut |mut s: &T| s.read(buf))
}

/// `AsyncWrite::poll_write` for any `Async` stream.
fn poll_write<T: std::os::fd::AsFd>(io: &Async<T>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>
where
    for<'a> &'a T: Write,
{
    io.poll_op(cx, Dir::Write, &mut |mut s: &T| s.write(buf))
}

/// Implements `AsyncRead`/`AsyncWrite` for a stream type and a reference to it, and the inherent
/// `read`/`write`/`write_all` helpers.
macro_rules! async_stream {
    ($ty:ty, $std:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_read(&self.inner, cx, buf)
            }
        }

        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_read(&self.inner, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write(&self.inner, cx, buf)
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
                std::task::Poll::Ready(self.inner.get_ref().shutdown(std::net::Shutdown::Write))
            }
        }

        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write(&self.inner, cx, buf)
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
                std::task::Poll::Ready(self.inner.get_ref().shutdown(std::net::Shutdown::Write))
            }
        }

        impl $ty {
            /// Reads some bytes into `buf`; `Ok(0)` is the end of the stream (the peer shut down
            /// its writing side), and stays so when read again.
            pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| crate::net::poll_read(&self.inner, cx, buf)).await
            }

            /// Writes some bytes of `buf` (as many as the socket buffer takes); returns how many.
            pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| crate::net::poll_write(&self.inner, cx, buf)).await
            }

            /// Writes all of `buf`, waiting for room in the socket buffer as often as needed.
            ///
            /// # Cancellation
            ///
            /// Dropping the future midway leaves an unknown prefix of `buf` written; use
            /// [`write`](Self::write) to know how much went out.
            pub async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    match self.write(buf).await? {
                        0 => return Err(std::io::ErrorKind::WriteZero.into()),
                        n => buf = &buf[n..],
                    }
                }
                Ok(())
            }

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

            /// Shuts down the reading side, the writing side or both.
            ///
            /// # Errors
            ///
            /// `NotConnected` if the socket is not connected.
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.inner.get_ref().shutdown(how)
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
