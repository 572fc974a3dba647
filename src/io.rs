//! [`Async`]: a non-blocking descriptor of the running loop, whose operations are tried first
//! and park their task on `WouldBlock` until the poller reports the descriptor ready (the
//! engine's side of that story, and its invariants: src/runtime/readiness.rs).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::runtime::reactor::Dir;
use crate::runtime::reactor::{Mode, Registration};
use crate::runtime::Core;

/// Explains the poller's refusal of a descriptor it cannot poll: epoll's `EPERM` means a regular
/// file or a directory (always ready, so polling them means nothing). The kind stays the OS's.
fn unpollable(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(rustix::io::Errno::PERM.raw_os_error()) {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}: a regular file or a directory cannot be polled (it is always ready); \
             use aioloop::fs for files, or aioloop::to_thread for other blocking calls"
        ),
    )
}

/// An I/O object (a socket, a pipe: anything with a file descriptor) driven by the running loop:
/// operations that would block park the task until the poller reports readiness.
///
/// `Async` registers the descriptor with the loop once, edge-triggered, and remembers readiness
/// until an operation returns `WouldBlock`, so a readiness event is never lost. It is deregistered
/// when dropped, before the descriptor is closed. The `net` types are built on it; use it
/// directly for other descriptors (pipes, terminals, eventfds...). Where `&T` implements
/// `Read`/`Write`, `Async<T>` and `&Async<T>` are futures-io `AsyncRead`/`AsyncWrite`, so the
/// extension traits of `futures-lite` or `futures-util` read and write it.
///
/// A task waits on it only inside the loop it was created in: used after that loop was
/// dropped, from another loop, or outside any loop, an operation that would wait fails at once
/// with an `io::Error` saying which (one that succeeds at once still does).
///
/// # Examples
///
/// A pipe read without blocking the loop:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// aioloop::run(async {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     let a = aioloop::Async::new(a).unwrap();
///     aioloop::spawn(async move { b.write_all(b"ping").unwrap() });
///     let mut buf = [0; 4];
///     let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
///     assert_eq!(&buf[..n], b"ping");
/// });
/// ```
pub struct Async<T: AsFd> {
    /// The object, registered with the loop's poller (deregistered when dropped); `None` only
    /// after `into_inner`.
    reg: Option<Registration<T>>,
    /// The loop it belongs to.
    core: Rc<Core>,
    /// Its entry in the loop's `io` slab (and its key in the poller).
    key: usize,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the running loop.
    ///
    /// # Errors
    ///
    /// If no loop is running on this thread (create I/O objects inside the loop, for example in
    /// the future given to `run_until_complete`), or if the descriptor cannot be made
    /// non-blocking or registered. A regular file or a directory is `PermissionDenied` (epoll's
    /// `EPERM`) with a message that points to [`aioloop::fs`](crate::fs): files are read and
    /// written on the executor pool, not polled.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     assert!(aioloop::Async::new(a).is_ok());
    /// });
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert!(aioloop::Async::new(a).is_err()); // no running loop
    /// ```
    pub fn new(io: T) -> io::Result<Async<T>> {
        let core = crate::runtime::running::with_running(Rc::clone).ok_or_else(|| {
            io::Error::other("no running event loop: create I/O objects inside the loop (in a task or the future given to run_until_complete)")
        })?;
        // kqueue accepts regular files (always ready): refuse them as epoll does.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if rustix::fs::fstat(io.as_fd()).is_ok_and(|st| {
            matches!(
                rustix::fs::FileType::from_raw_mode(st.st_mode),
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
            )
        }) {
            return Err(unpollable(rustix::io::Errno::PERM.into()));
        }
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        let key = core.io_insert(io.as_fd().as_raw_fd());
        match Registration::new(core.remote.clone(), io, key, Mode::Edge) {
            Ok(reg) => Ok(Async { reg: Some(reg), core, key }),
            Err(e) => {
                core.io_remove(key);
                Err(unpollable(e))
            }
        }
    }

    /// Returns a reference to the inner object.
    ///
    /// There is no `get_mut`: replacing or closing the descriptor while it is registered would
    /// break the poller's bookkeeping. Use [`into_inner`](Self::into_inner) to take it back.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     assert!(a.get_ref().peer_addr().is_ok());
    /// });
    /// ```
    pub fn get_ref(&self) -> &T {
        self.reg.as_ref().expect("registered until into_inner").get_ref()
    }

    /// Deregisters the object and returns it (still in non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the poller refuses to delete the descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let std_stream = aioloop::Async::new(a).unwrap().into_inner().unwrap();
    ///     # drop(std_stream);
    /// });
    /// ```
    pub fn into_inner(mut self) -> io::Result<T> {
        // `Drop` then removes the entry.
        self.reg.take().expect("registered until into_inner").into_inner()
    }

    /// Waits until the object is readable (or a read would not block: EOF and errors count).
    ///
    /// # Errors
    ///
    /// If it would have to wait while the object's loop is closed, or is not the loop running on
    /// this thread, or no loop runs: no readiness event could reach it there, so it fails at
    /// once with an error saying which, instead of waiting forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// aioloop::run(async {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     b.write_all(b"x").unwrap();
    ///     a.readable().await.unwrap();
    /// });
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the object is writable.
    ///
    /// # Errors
    ///
    /// If it would have to wait while the object's loop is closed, or is not the loop running on
    /// this thread, or no loop runs: no readiness event could reach it there, so it fails at
    /// once with an error saying which, instead of waiting forever.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     aioloop::Async::new(a).unwrap().writable().await.unwrap();
    /// });
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for readability (see [`readable`](Self::readable), and its errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     let polled = std::future::poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
    ///     assert!(polled.is_pending()); // nothing to read yet
    /// });
    /// ```
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_ready(self.key, Dir::Read, cx.waker())
    }

    /// Polls for writability (see [`writable`](Self::writable), and its errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     a.writable().await.unwrap();
    ///     let polled = std::future::poll_fn(|cx| Poll::Ready(a.poll_writable(cx))).await;
    ///     assert!(polled.is_ready());
    /// });
    /// ```
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_ready(self.key, Dir::Write, cx.waker())
    }

    /// Runs a non-blocking read operation until it does not return `WouldBlock`, waiting for
    /// readability in between.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`. If `op` would block while the object's loop is
    /// closed, or is not the loop running on this thread, or no loop runs, it fails at once with
    /// an error saying which (no readiness event could reach it there) instead of waiting
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// aioloop::run(async {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     b.write_all(b"hi").unwrap();
    ///     let mut buf = [0; 2];
    ///     a.read_with(|mut s| s.read_exact(&mut buf)).await.unwrap();
    ///     assert_eq!(&buf, b"hi");
    /// });
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, Dir::Read, &mut op)).await
    }

    /// Runs a non-blocking write operation until it does not return `WouldBlock`, waiting for
    /// writability in between.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`. If `op` would block while the object's loop is
    /// closed, or is not the loop running on this thread, or no loop runs, it fails at once with
    /// an error saying which (no readiness event could reach it there) instead of waiting
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     let n = a.write_with(|mut s| s.write(b"hello")).await.unwrap();
    ///     assert_eq!(n, 5);
    /// });
    /// ```
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, Dir::Write, &mut op)).await
    }

    /// Returns an error unless the object's loop is open and running on this thread (where a
    /// task waiting on it can be woken).
    pub(crate) fn check_can_wait(&self) -> io::Result<()> {
        self.core.check_can_wait()
    }

    /// Tries `op`; on `WouldBlock` forgets the direction's readiness and parks until it returns.
    pub(crate) fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.core.clear_ready(self.key, dir);
                    match self.core.poll_ready(self.key, dir, cx.waker()) {
                        Poll::Pending => return Poll::Pending,
                        // The loop is closed, or not the one running here: no wake would come.
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        // An event arrived in between (impossible on one thread, kept for safety).
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // `reg` (a field) is dropped after this: it deletes the descriptor from the poller and
        // then closes it. The entry goes now, with the wakers of anyone still waiting.
        self.core.io_remove(self.key);
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", self.get_ref()).finish()
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

/// Reads through `&T`'s `Read` (async-io's impl): a pipe, a terminal or a socket needs no
/// [`read_with`](Async::read_with) closure, and the extension traits of `futures-lite` or
/// `futures-util` (`read`, `read_to_end`, `copy`...) work on it.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use std::os::unix::net::UnixStream;
///
/// aioloop::run(async {
///     let (a, b) = UnixStream::pair()?;
///     let (mut a, mut b) = (aioloop::Async::new(a)?, aioloop::Async::new(b)?);
///     a.write_all(b"ping").await?;
///     drop(a); // end of stream for b
///     let mut got = String::new();
///     b.read_to_string(&mut got).await?;
///     assert_eq!(got, "ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: AsFd> futures_io::AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read_vectored(bufs))
    }
}

/// Reads through a shared reference, so one task can read while another writes.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// aioloop::run(async {
///     let (a, b) = std::os::unix::net::UnixStream::pair()?;
///     let (a, b) = (aioloop::Async::new(a)?, aioloop::Async::new(b)?);
///     (&a).write_all(b"x").await?;
///     let mut buf = [0; 1];
///     (&b).read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"x");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: AsFd> futures_io::AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read_vectored(bufs))
    }
}

/// Writes through `&T`'s `Write` (async-io's impl). `poll_close` only flushes: the descriptor
/// is closed when the `Async` is dropped (the `net` streams shut their writing side down).
///
/// # Examples
///
/// See the `AsyncRead` impl for `Async<T>` above.
impl<T: AsFd> futures_io::AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Writes through a shared reference, so one task can write while another reads.
///
/// # Examples
///
/// See the `AsyncRead` impl for `&Async<T>` above.
impl<T: AsFd> futures_io::AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
