//! [`run_in_executor`] and [`to_thread`]: blocking work on a pool of threads, awaited from the
//! loop (asyncio's `loop.run_in_executor(None, f)` and `asyncio.to_thread(f)`).
//!
//! One blocking call on the loop's thread stalls every task (the seeds' central warning). The way
//! out is to send it to another thread and await the result: the loop keeps running, and the
//! task resumes when the job's completion wakes it through the loop's inbox.
//!
//! # The pool
//! - One process-wide pool, asyncio's default size: `min(32, cpus + 4)` threads, started on
//!   demand, each leaving after 10 s without work. Jobs beyond that wait in a FIFO queue.
//! - A job that panics gives [`TaskError::Panicked`] to its awaiter (`to_thread`: resumes the
//!   panic in the awaiting task); the thread survives.
//! - Dropping the future (cancelling the awaiting task) lets a running job finish; its result is
//!   dropped. A job still queued runs anyway (it was submitted; asyncio's executor does the same).
//! - Closing the loop never waits for jobs: the bound on how long `close()` can be held up by
//!   the pool is zero. Jobs in flight finish on the pool and their results are dropped.
//! - While a job submitted by a loop is in flight, that loop's virtual time does not jump: the
//!   job's result may arrive at any real moment, and a timeout must not expire before it could.
//!
//! The pool itself (threads on demand, a FIFO queue, idle threads leaving) is `pool.rs`.

use std::future::Future;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::TaskError;
use crate::runtime::cross_thread::Remote;

/// The state a job and its future share.
struct Slot<R> {
    outcome: Option<Result<R, TaskError>>,
    waker: Option<Waker>,
}

/// Runs the blocking function `f` on the executor's thread pool and returns a future of its
/// result (asyncio's `loop.run_in_executor(None, f)`).
///
/// The job is submitted at once, to one process-wide pool of `min(32, cpus + 4)` threads
/// (asyncio's default), started on demand and stopped after 10 s without work; more jobs wait
/// in a FIFO queue. A panic in `f` gives `Err(TaskError::Panicked)` and the thread survives.
/// Dropping the future (cancelling the awaiting task) lets the job finish and drops its result.
/// Closing the loop never waits for jobs in flight. While a job is in flight, the loop's virtual
/// time does not jump, since its result may arrive at any real moment.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let v = aioloop::run(async {
///     aioloop::run_in_executor(|| {
///         std::thread::sleep(Duration::from_millis(10)); // would stall the loop if run on it
///         6 * 7
///     })
///     .await
/// });
/// assert_eq!(v.unwrap(), 42);
/// ```
#[track_caller]
pub fn run_in_executor<F, R>(f: F) -> Blocking<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    submit(crate::runtime::running::current().remote.clone(), f)
}

/// Returns the remote half of the loop running on this thread, for the crate's own blocking
/// I/O (`fs`): no running loop is an `io::Error` rather than a panic, since a file may be polled
/// by a foreign executor.
pub(crate) fn running_remote() -> io::Result<Arc<Remote>> {
    crate::runtime::running::with_running(|core| core.remote.clone()).ok_or_else(|| {
        io::Error::other("no running event loop: aioloop's file and name-lookup futures run inside the loop")
    })
}

/// Like [`run_in_executor`], with an `io::Error` instead of a panic when no loop is running.
pub(crate) fn run_blocking_io<F, R>(f: F) -> io::Result<Blocking<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Ok(submit(running_remote()?, f))
}

/// Submits `f` to the executor pool on behalf of the loop whose remote half is `remote`.
pub(crate) fn submit<F, R>(remote: Arc<Remote>, f: F) -> Blocking<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot { outcome: None, waker: None }));
    let job_slot = slot.clone();
    let job_remote = remote.clone();
    remote.job_started();
    crate::pool::executor().submit(Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(TaskError::Panicked);
        let waker = {
            let mut s = job_slot.lock().unwrap_or_else(PoisonError::into_inner);
            s.outcome = Some(outcome);
            s.waker.take()
        };
        // Wake the awaiting task *before* the job stops counting as in flight: in between, a
        // loop on virtual time could otherwise see neither the job nor the wake and jump the
        // clock past a timeout that the result was about to beat.
        if let Some(w) = waker {
            w.wake();
        }
        job_remote.job_finished();
        // And wake the loop in any case: it may be waiting for this job to let virtual time move.
        job_remote.notify();
    }));
    Blocking { slot, _remote: remote }
}

/// The future of [`run_in_executor`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let b: aioloop::Blocking<u8> = aioloop::run_in_executor(|| 1);
///     assert_eq!(b.await.unwrap(), 1);
/// });
/// ```
#[must_use = "futures do nothing unless awaited (the job runs anyway)"]
pub struct Blocking<R> {
    slot: Arc<Mutex<Slot<R>>>,
    /// Keeps the loop's remote half alive while the job may still report to it.
    _remote: Arc<Remote>,
}

impl<R> std::fmt::Debug for Blocking<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self.slot.lock().unwrap_or_else(PoisonError::into_inner).outcome.is_some();
        f.debug_struct("Blocking").field("done", &done).finish()
    }
}

impl<R> Future for Blocking<R> {
    type Output = Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outcome) = s.outcome.take() {
            return Poll::Ready(outcome);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Runs the blocking function `f` on the executor's thread pool and returns a future of its
/// value (asyncio 3.9's `asyncio.to_thread(f)`).
///
/// This is [`run_in_executor`] without the `Result`: the future gives `f`'s value itself, and a
/// panic in `f` resumes, with its payload, as a panic in the task that awaits it (asyncio
/// re-raises the function's exception in the awaiting coroutine). That task then ends with
/// [`TaskError::Panicked`], as if it had panicked itself; the pool thread survives. Everything
/// else is `run_in_executor`'s: the same pool, the job runs to its end if the future is
/// dropped, closing the loop never waits for it, and virtual time does not jump while it is in
/// flight.
///
/// # Panics
///
/// "no running event loop" outside a running loop; when awaited, whatever `f` panicked with.
///
/// # Examples
///
/// ```
/// let n = aioloop::run(async {
///     // A blocking call, off the loop's thread: the other tasks keep running meanwhile.
///     aioloop::to_thread(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0)).await
/// });
/// assert!(n > 0);
///
/// // A panic in the function is a panic in the awaiting task.
/// let outcome = aioloop::run(async {
///     aioloop::spawn(async { aioloop::to_thread(|| -> u8 { panic!("bad input") }).await }).await
/// });
/// assert!(outcome.unwrap_err().is_panic());
/// ```
#[track_caller]
pub fn to_thread<F, T>(f: F) -> ToThread<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    ToThread { job: run_in_executor(f) }
}

/// The future of [`to_thread`]: the function's value, or its panic resumed.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let job: aioloop::ToThread<u32> = aioloop::to_thread(|| 7);
///     assert_eq!(job.await, 7);
/// });
/// ```
#[must_use = "futures do nothing unless awaited (the function runs anyway)"]
pub struct ToThread<T> {
    job: Blocking<T>,
}

impl<T> std::fmt::Debug for ToThread<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToThread").field("job", &self.job).finish()
    }
}

impl<T> Future for ToThread<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.job).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => Poll::Ready(v),
            // `resume_unwind` skips the panic hook: the message was printed once, by the pool
            // thread where `f` panicked.
            Poll::Ready(Err(TaskError::Panicked(payload))) => resume_unwind(payload),
            Poll::Ready(Err(TaskError::Cancelled)) => unreachable!("a pool job is never cancelled, only abandoned"),
        }
    }
}
