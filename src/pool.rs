//! A pool of threads for blocking jobs: the engine under [`run_in_executor`](crate::run_in_executor),
//! [`to_thread`](crate::to_thread), [`fs`](crate::fs) and [`net::lookup_host`](crate::net::lookup_host).
//!
//! # Invariants
//! - Threads start on demand, up to `max_threads`, and each leaves after [`IDLE_TIMEOUT`]
//!   without work; jobs beyond that wait in a FIFO queue.
//! - A job never unwinds into a worker: every job catches its own panics (see `executor.rs`).
//! - Nobody ever joins a worker: a loop that closes, or a program that ends, never waits for a
//!   job. A job blocked forever keeps its thread forever, and nothing else.
//!
//! Two pools exist, so that jobs that may never return cannot starve the others: the executor
//! pool (asyncio's default size, `min(32, cpus + 4)`) for `run_in_executor`, `to_thread` and
//! files, and the resolver pool ([`RESOLVER_THREADS`]) for name lookups, whose `getaddrinfo`
//! cannot be cancelled and may hang as long as the system's resolver does.
//!
//! Production note: the `blocking` crate (smol's pool) was considered; its size is 500 threads
//! and can only be changed through an environment variable, where this crate wants asyncio's
//! default, so the pool is written here (about 100 lines).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How long an idle pool thread waits for work before it exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many threads may run name lookups at once (Go caps its cgo lookups the same way).
pub(crate) const RESOLVER_THREADS: usize = 16;

/// A job: a closure that catches its own panics.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A process-wide thread pool.
pub(crate) struct Pool {
    /// The queue and the thread counts.
    state: Mutex<PoolState>,
    /// Idle workers wait here for a job.
    work: Condvar,
    /// The most threads this pool starts.
    max_threads: usize,
    /// The workers' thread name.
    name: &'static str,
}

#[derive(Default)]
struct PoolState {
    /// Jobs submitted and not yet taken by a worker, oldest first.
    queue: VecDeque<Job>,
    /// Workers alive (busy or idle).
    threads: usize,
    /// Workers waiting for a job.
    idle: usize,
}

/// Returns the executor pool: `min(32, cpus + 4)` threads, asyncio's default.
pub(crate) fn executor() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool::new("aioloop-executor", (cpus + 4).min(32))
    })
}

/// Returns the resolver pool: [`RESOLVER_THREADS`] threads for name lookups only.
pub(crate) fn resolver() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new("aioloop-resolver", RESOLVER_THREADS))
}

impl Pool {
    fn new(name: &'static str, max_threads: usize) -> Pool {
        Pool { state: Mutex::default(), work: Condvar::new(), max_threads, name }
    }

    /// Queues `job`, and starts a thread for it if the idle ones cannot take every queued job
    /// and the cap allows.
    pub(crate) fn submit(&'static self, job: Job) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.queue.push_back(job);
        if s.idle > 0 {
            self.work.notify_one();
        }
        // Compare with the queue, not with zero: a notified worker still counts as idle until
        // it wakes, so in a burst of submissions `idle > 0` alone would let two idle threads
        // take all of 64 jobs, one after the other.
        if s.queue.len() > s.idle && s.threads < self.max_threads {
            s.threads += 1;
            let spawned = std::thread::Builder::new().name(self.name.into()).spawn(move || self.worker());
            if let Err(e) = spawned {
                // The job stays queued for a thread that exists or the next one started.
                s.threads -= 1;
                eprintln!("aioloop: cannot start a {} thread: {e}", self.name);
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
