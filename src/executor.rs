//! [`run_in_executor`]: blocking work on a pool of threads, awaited from the loop (asyncio's
//! `loop.run_in_executor(None, f)`).
//!
//! One blocking call on the loop's thread stalls every task (the seeds' central warning). The way
//! out is to send it to another thread and await the result: the loop keeps running, and the
//! task resumes when the job's completion wakes it through the loop's inbox.
//!
//! # The pool
//! - One process-wide pool, asyncio's default size: `min(32, cpus + 4)` threads, started on
//!   demand, each leaving after 10 s without work. Jobs beyond that wait in a FIFO queue.
//! - A job that panics gives [`TaskError::Panicked`] to its awaiter; the thread survives.
//! - Dropping the future (cancelling the awaiting task) lets a running job finish; its result is
//!   dropped. A job still queued runs anyway (it was submitted; asyncio's executor does the same).
//! - Closing the loop never waits for jobs: the bound on how long `close()` can be held up by
//!   the pool is zero. Jobs in flight finish on the pool and their results are dropped.
//! - While a job submitted by a loop is in flight, that loop's virtual time does not jump: the
//!   job's result may arrive at any real moment, and a timeout must not expire before it could.
//!
//! Production note: the `blocking` crate (smol's pool) was considered; its size is 500 threads
//! and can only be changed through an environment variable, where this crate wants asyncio's
//! default, so the pool is written here (about 100 lines).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::TaskError;
use crate::remote::Remote;

/// How long an idle pool thread waits for work before it exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide thread pool.
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool { state: Mutex::default(), work: Condvar::new(), max_threads: (cpus + 4).min(32) }
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.queue.push_back(job);
        if s.idle > 0 {
            self.work.notify_one();
        } else if s.threads < self.max_threads {
            s.threads += 1;
            let spawned = std::thread::Builder::new().name("aioloop-executor".into()).spawn(move || self.worker());
            if let Err(e) = spawned {
                // The job stays queued for a thread that exists or the next one started.
                s.threads -= 1;
                eprintln!("aioloop: cannot start an executor thread: {e}");
            }
        }
    }

    fn worker(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = s.queue.pop_front() {
                drop(s);
                job(); // never unwinds: the job catches its own panic
                s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.idle += 1;
            let (guard, timeout) = self.work.wait_timeout(s, IDLE_TIMEOUT).unwrap_or_else(PoisonError::into_inner);
            s = guard;
            s.idle -= 1;
            if timeout.timed_out() && s.queue.is_empty() {
                s.threads -= 1;
                return;
            }
        }
    }
}

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
    let remote = crate::context::current().remote.clone();
    let slot = Arc::new(Mutex::new(Slot { outcome: None, waker: None }));
    let job_slot = slot.clone();
    let job_remote = remote.clone();
    remote.jobs_in_flight.fetch_add(1, SeqCst);
    pool().submit(Box::new(move || {
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
        job_remote.jobs_in_flight.fetch_sub(1, SeqCst);
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
