//! hyper on the loop: [`HyperIo`], [`HyperExecutor`], [`HyperTimer`] (the `hyper` feature).
//!
//! hyper 1.x brings no runtime. A connection needs three things from one, each a trait in
//! `hyper::rt`, and this module gives each over the loop:
//!
//! | hyper needs | for | here |
//! |---|---|---|
//! | `rt::Read` + `rt::Write` | the connection's bytes | [`HyperIo`] over any futures-io stream ([`TcpStream`](crate::net::TcpStream), [`UnixStream`](crate::net::UnixStream), [`Async`](crate::Async)...) |
//! | `rt::Executor` | HTTP/2's task per connection and per stream | [`HyperExecutor`]: [`spawn`](crate::spawn) on the running loop, `!Send` futures included |
//! | `rt::Timer` | timeouts (HTTP/1's header-read timeout) and HTTP/2's keep-alive pings | [`HyperTimer`]: [`sleep_until`](crate::sleep_until), moved with [`Sleep::reset`] |
//!
//! ```
//! # use std::convert::Infallible;
//! use aioloop::hyper::{HyperIo, HyperTimer};
//! use aioloop::net::{TcpListener, TcpStream};
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::Bytes;
//!
//! aioloop::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     aioloop::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let hello = hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
//!         });
//!         hyper::server::conn::http1::Builder::new()
//!             .timer(HyperTimer::new()) // header-read timeouts need a timer
//!             .serve_connection(HyperIo::new(stream), hello)
//!             .await
//!             .unwrap();
//!     });
//!
//!     let stream = TcpStream::connect(addr).await.unwrap();
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream)).await.unwrap();
//!     aioloop::spawn(conn);
//!     let req = hyper::Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
//!     let body = sender.send_request(req).await.unwrap().into_body().collect().await.unwrap();
//!     assert_eq!(body.to_bytes(), "hello");
//! });
//! ```
//!
//! # Invariants
//! - [`HyperIo`] adds no buffering: a read is one `poll_read` of the stream, a write one
//!   `poll_write`, hyper's flush and shutdown the stream's `poll_flush` and `poll_close`.
//! - A read never exposes uninitialized memory to the stream: futures-io reads into `&mut [u8]`,
//!   so the part of hyper's buffer it may write is zeroed first (hyper's `ReadBufCursor` tracks
//!   what is initialized; the one `unsafe` block only tells it how much was read).
//! - Every future [`HyperExecutor`] spawns is a task of the running loop: it shows in
//!   [`all_tasks`](crate::all_tasks), is cancelled when the loop closes, and a panic in it is
//!   reported by the loop's exception handler without taking down the loop or the connection's
//!   other streams.
//! - [`HyperTimer`]'s clock is the loop's ([`now`](crate::now)): on virtual time, hyper's
//!   timeouts run on virtual time too.
//!
//! Production note: tokio's `TokioIo` (hyper-util) can hand hyper's uninitialized buffer to the
//! socket directly, because tokio's `AsyncRead` takes a `ReadBuf`; futures-io's cannot, so the
//! part to be read is zeroed first. Zeroing is a `memset` of at most 64 KiB per read, and only
//! of bytes hyper has not initialized before.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use pin_project_lite::pin_project;

use crate::Sleep;

/// The most one read asks of the stream: the part of hyper's buffer zeroed before a read.
///
/// hyper offers all of its buffer's spare capacity, which can be far larger than what one read
/// returns: zeroing all of it before every read would cost more than the read.
const READ_CHUNK: usize = 64 * 1024;

pin_project! {
    /// A futures-io stream as hyper's `rt::Read` and `rt::Write`: what hyper's `serve_connection`
    /// and `handshake` take.
    ///
    /// Any `AsyncRead` + `AsyncWrite` works: the loop's sockets, an [`Async`](crate::Async) over
    /// a file descriptor, or an in-memory stream of your own. `HyperIo<T>` is `Unpin` when `T` is
    /// (HTTP/2 wants that).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::hyper::HyperIo;
    /// use aioloop::net::UnixStream;
    ///
    /// aioloop::run(async {
    ///     let (a, _b) = UnixStream::pair().unwrap();
    ///     let io = HyperIo::new(a);
    ///     let _ = hyper::client::conn::http1::handshake::<_, String>(io); // a client on the stream
    /// });
    /// ```
    #[derive(Debug)]
    pub struct HyperIo<T> {
        #[pin]
        inner: T,
    }
}

impl<T> HyperIo<T> {
    /// Wraps a futures-io stream for hyper.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = aioloop::net::UnixStream::pair().unwrap();
    ///     let io = aioloop::hyper::HyperIo::new(a);
    ///     assert!(io.get_ref().peer_addr().is_ok());
    /// });
    /// ```
    pub fn new(inner: T) -> HyperIo<T> {
        HyperIo { inner }
    }

    /// Returns the wrapped stream.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = aioloop::net::UnixStream::pair().unwrap();
    ///     let io = aioloop::hyper::HyperIo::new(a);
    ///     assert!(io.get_ref().local_addr().is_ok());
    /// });
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Returns the wrapped stream, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut io = aioloop::hyper::HyperIo::new(futures_lite::io::Cursor::new(vec![1u8]));
    /// io.get_mut().set_position(1);
    /// assert_eq!(io.get_ref().position(), 1);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Returns the wrapped stream, unwrapped.
    ///
    /// # Examples
    ///
    /// ```
    /// let io = aioloop::hyper::HyperIo::new(futures_lite::io::Cursor::new(vec![1u8, 2]));
    /// assert_eq!(io.into_inner().into_inner(), [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead> ::hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ::hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(READ_CHUNK);
        // Safe: zeroes what of these bytes hyper has not initialized yet, and lends them as `&mut [u8]`.
        let dst = buf.initialize_unfilled_to(want);
        let n = match self.project().inner.poll_read(cx, dst) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        if n > want {
            // A stream that claims more than it was given would make hyper read past its buffer.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("aioloop::hyper::HyperIo: poll_read returned {n} for a {want}-byte buffer"),
            )));
        }
        // SAFETY: `advance(n)` requires the next `n` bytes of the unfilled part to be
        // initialized. `initialize_unfilled_to(want)` initialized the first `want` of them, and
        // `n <= want` was checked just above.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> ::hyper::rt::Write for HyperIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    /// Closes the stream's writing side (`poll_close`: a TCP `FIN`), as hyper does when it is
    /// done with a connection.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_close(cx)
    }

    // `is_write_vectored` stays `false`: futures-io cannot say whether a stream writes vectors
    // in one call, and its default `poll_write_vectored` writes only the first buffer; told
    // `false`, hyper copies a response's head and body into one buffer: one write, not two.
}

/// hyper's `rt::Executor` on the loop: each future hyper hands it becomes a task of the
/// running loop ([`spawn`](crate::spawn)), `!Send` ones included.
///
/// HTTP/2 needs an executor: hyper spawns a task per connection (the client's) and per stream
/// (the server's handler). A service that holds an `Rc`, a `RefCell` or a `!Send` handle works
/// as is: no `unsafe impl Send`. The tasks are detached: they end when their stream or connection
/// ends (a dropped connection resets its streams, which ends their tasks), or when the loop is
/// closed.
///
/// # Panics
///
/// hyper calls it from inside a connection's future; that future must run on a loop (its task,
/// or [`run_until_complete`](crate::EventLoop::run_until_complete)): "no running event loop"
/// otherwise.
///
/// # Examples
///
/// ```
/// use std::{convert::Infallible, rc::Rc};
/// use aioloop::hyper::{HyperExecutor, HyperIo, HyperTimer};
/// use http_body_util::Full;
/// use hyper::body::Bytes;
///
/// aioloop::run(async {
///     let listener = aioloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let greeting = Rc::new(String::from("hello over h2")); // !Send state in the service
///     let _server = aioloop::spawn(async move {
///         let (stream, _) = listener.accept().await.unwrap();
///         let service = hyper::service::service_fn(move |_req| {
///             let greeting = greeting.clone();
///             async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(greeting.to_string())))) }
///         });
///         hyper::server::conn::http2::Builder::new(HyperExecutor::new())
///             .timer(HyperTimer::new())
///             .serve_connection(HyperIo::new(stream), service)
///             .await
///     });
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HyperExecutor {
    _private: (),
}

impl HyperExecutor {
    /// Returns the executor (it holds nothing: it spawns on whichever loop runs the caller).
    ///
    /// # Examples
    ///
    /// ```
    /// use hyper::rt::Executor;
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// lp.run_until_complete(async {
    ///     aioloop::hyper::HyperExecutor::new().execute(async { println!("spawned by hyper") });
    ///     aioloop::yield_now().await;
    /// });
    /// ```
    pub fn new() -> HyperExecutor {
        HyperExecutor { _private: () }
    }
}

impl<F> ::hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    #[track_caller]
    fn execute(&self, fut: F) {
        // Dropping the handle detaches the task: it runs to its end on its own.
        drop(crate::spawn(fut));
    }
}

/// hyper's `rt::Timer` on the loop: its sleeps are the loop's ([`sleep_until`](crate::sleep_until)),
/// and `reset` moves one with [`Sleep::reset`] instead of making a new timer.
///
/// Give it to every builder that has a timeout: hyper's HTTP/1 server has a 30 s header-read
/// timeout by default, which it only enforces with a timer, and a configured
/// `header_read_timeout` without one panics on every connection. Its clock is the loop's, so on
/// virtual time the timeouts take no real time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hyper::rt::Timer;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let t0 = lp.time();
/// lp.run_until_complete(async {
///     let timer = aioloop::hyper::HyperTimer::new();
///     let mut sleep = timer.sleep(Duration::from_secs(30));
///     timer.reset(&mut sleep, t0 + Duration::from_secs(5)); // earlier: ends at 5 s
///     sleep.await;
///     assert_eq!(timer.now() - t0, Duration::from_secs(5));
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HyperTimer {
    _private: (),
}

impl HyperTimer {
    /// Returns the timer (it holds nothing: its sleeps use the loop they are polled on).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut builder = hyper::server::conn::http1::Builder::new();
    /// builder.timer(aioloop::hyper::HyperTimer::new()).header_read_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn new() -> HyperTimer {
        HyperTimer { _private: () }
    }
}

impl ::hyper::rt::Timer for HyperTimer {
    /// Returns a sleep that ends `duration` after now (hyper's contract counts from the call,
    /// not from the first poll as [`sleep`](crate::sleep) does).
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        match self.now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            // Beyond what an `Instant` holds: the loop's own sleep caps it (`Duration::MAX` is
            // 584 years away).
            None => Box::pin(LoopSleep { inner: crate::sleep(duration) }),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(LoopSleep { inner: crate::sleep_until(deadline) })
    }

    /// Returns the running loop's time ([`now`](crate::now)); outside a loop, `Instant::now()`.
    fn now(&self) -> Instant {
        crate::runtime::running::with_running(|core| core.clock.instant(core.clock.now_ns()))
            .unwrap_or_else(Instant::now)
    }

    /// Moves one of this timer's sleeps to `new_deadline` (a sleep from another timer is
    /// replaced by a new one, hyper's default).
    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<LoopSleep>() {
            Some(ours) => ours.project().inner.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

pin_project! {
    /// The loop's [`Sleep`] as a hyper `rt::Sleep` (which must be `Send + Sync`: a `Sleep` holds
    /// no reference to its loop, only the loop's registry slot).
    struct LoopSleep {
        #[pin]
        inner: Sleep,
    }
}

impl Future for LoopSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

impl ::hyper::rt::Sleep for LoopSleep {}
