//! A child's standard streams as the parent sees them: [`ChildStdin`] (futures-io `AsyncWrite`),
//! [`ChildStdout`] and [`ChildStderr`] (`AsyncRead`).
//!
//! Each is the pipe end the standard library created (close-on-exec, so no other child inherits
//! it), switched to non-blocking mode and registered with the loop's poller like a socket
//! ([`Async`]). A read or write that would block parks the task until the poller reports the
//! pipe ready; end of file is a read of 0 bytes, once every writer closed its end (a grandchild
//! that inherited the child's stdout keeps it open after the child exited).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::runtime::reactor::Dir;
use crate::Async;

/// Reads once from a registered pipe, parking on `WouldBlock`.
fn poll_read_pipe<T: AsFd>(io: &Async<T>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    io.poll_op(cx, Dir::Read, &mut |p: &T| rustix::io::read(p, &mut *buf).map_err(io::Error::from))
}

/// Reads what a pipe holds now, without waiting: appends to `out`; returns true at end of file.
pub(crate) fn read_available<T: AsFd>(io: &Async<T>, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match rustix::io::read(io.get_ref(), &mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(rustix::io::Errno::AGAIN) => return Ok(false),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads a pipe until end of file (appending to `out`), or until it would block (then the task
/// is parked on it and `Pending` is returned).
pub(crate) fn poll_read_to_end<T: AsFd>(
    io: &Async<T>,
    cx: &mut Context<'_>,
    out: &mut Vec<u8>,
) -> Poll<io::Result<()>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match poll_read_pipe(io, cx, &mut chunk) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// The parent's end of a child's standard input: write to it, and close it (or drop it) to
/// give the child end of file.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use std::process::Stdio;
/// aioloop::run(async {
///     let mut child = aioloop::process::Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()
///         .unwrap();
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"hello").await.unwrap();
///     stdin.close().await.unwrap(); // cat sees end of file
///     let mut out = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
///     assert_eq!(out, "hello");
///     assert!(child.wait().await.unwrap().success());
/// });
/// ```
pub struct ChildStdin {
    /// The pipe; `None` after `poll_close`.
    io: Option<Async<std::process::ChildStdin>>,
}

impl ChildStdin {
    pub(crate) fn new(stdin: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin { io: Some(Async::new(stdin)?) })
    }

    fn io(&self) -> io::Result<&Async<std::process::ChildStdin>> {
        self.io.as_ref().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the child's stdin was closed"))
    }
}

impl futures_io::AsyncWrite for ChildStdin {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let io = self.io()?;
        io.poll_op(cx, Dir::Write, &mut |p| rustix::io::write(p, buf).map_err(io::Error::from))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // a pipe has no buffer of ours to flush
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        drop(self.io.take()); // deregisters, then closes: the child reads end of file
        Poll::Ready(Ok(()))
    }
}

/// The parent's end of a child's standard output.
///
/// # Examples
///
/// ```
/// use futures_lite::AsyncReadExt;
/// use std::process::Stdio;
/// aioloop::run(async {
///     let mut child = aioloop::process::Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn().unwrap();
///     let mut out = String::new();
///     child.stdout.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
///     assert_eq!(out, "hi\n");
///     child.wait().await.unwrap();
/// });
/// ```
pub struct ChildStdout {
    io: Async<std::process::ChildStdout>,
}

impl ChildStdout {
    pub(crate) fn new(stdout: std::process::ChildStdout) -> io::Result<ChildStdout> {
        Ok(ChildStdout { io: Async::new(stdout)? })
    }

    pub(crate) fn io(&self) -> &Async<std::process::ChildStdout> {
        &self.io
    }
}

impl futures_io::AsyncRead for ChildStdout {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        poll_read_pipe(&self.io, cx, buf)
    }
}

/// The parent's end of a child's standard error.
///
/// # Examples
///
/// ```
/// use futures_lite::AsyncReadExt;
/// use std::process::Stdio;
/// aioloop::run(async {
///     let mut child = aioloop::process::Command::new("sh")
///         .args(["-c", "echo oops >&2"])
///         .stderr(Stdio::piped())
///         .spawn()
///         .unwrap();
///     let mut err = String::new();
///     child.stderr.as_mut().unwrap().read_to_string(&mut err).await.unwrap();
///     assert_eq!(err, "oops\n");
///     child.wait().await.unwrap();
/// });
/// ```
pub struct ChildStderr {
    io: Async<std::process::ChildStderr>,
}

impl ChildStderr {
    pub(crate) fn new(stderr: std::process::ChildStderr) -> io::Result<ChildStderr> {
        Ok(ChildStderr { io: Async::new(stderr)? })
    }

    pub(crate) fn io(&self) -> &Async<std::process::ChildStderr> {
        &self.io
    }
}

impl futures_io::AsyncRead for ChildStderr {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        poll_read_pipe(&self.io, cx, buf)
    }
}

macro_rules! pipe_common {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    };
}
pipe_common!(ChildStdin);
pipe_common!(ChildStdout);
pipe_common!(ChildStderr);

impl AsFd for ChildStdout {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl AsFd for ChildStderr {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}
