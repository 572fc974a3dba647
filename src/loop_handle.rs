//! Talking to a loop from other threads: [`LoopHandle`] (asyncio's `call_soon_threadsafe` and
//! `run_coroutine_threadsafe`) and [`RemoteTask`].
//!
//! Everything here goes through the loop's [`remote`](crate::runtime::cross_thread) half: a callback from
//! another thread is queued in the inbox and the poller is notified, so a blocked loop wakes
//! promptly; the loop runs the callback in its next iteration, on its own thread, where it may
//! touch the loop's single-threaded state (spawn a task, for example).
//!
//! # Invariants
//! - A callback accepted by `call_soon_threadsafe` either runs on the loop's thread, or is
//!   dropped when the loop closes; it never runs anywhere else.
//! - A [`RemoteTask`] always resolves: with the task's outcome, or with
//!   [`TaskError::Cancelled`] if the task was cancelled or the loop closed before it finished.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::TaskError;
use crate::runtime::cross_thread::Remote;
use crate::runtime::waker::TaskKey;

/// The loop is closed: it takes no more work (asyncio's "Event loop is closed").
///
/// # Examples
///
/// ```
/// let lp = aioloop::EventLoop::new().unwrap();
/// let h = lp.handle();
/// lp.close();
/// let err = h.call_soon_threadsafe(|| {}).unwrap_err();
/// assert_eq!(err.to_string(), "Event loop is closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Event loop is closed")
    }
}

impl std::error::Error for LoopClosed {}

/// A thread-safe handle to an [`EventLoop`](crate::EventLoop): `Send + Sync + Clone`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let h = lp.handle();
/// let t = std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(10));
///     h.stop(); // wakes the loop, which is blocked in its poller
/// });
/// lp.run_forever();
/// t.join().unwrap();
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    remote: Arc<Remote>,
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle").field("slot", &self.remote.slot()).finish()
    }
}

impl LoopHandle {
    pub(crate) fn new(remote: Arc<Remote>) -> LoopHandle {
        LoopHandle { remote }
    }

    /// Asks the loop to stop after its current iteration; wakes it if it is blocked. Works from
    /// tasks, callbacks and other threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// lp.spawn(async move { h.stop() });
    /// lp.run_forever();
    /// ```
    pub fn stop(&self) {
        self.remote.request_stop();
        self.remote.notify();
    }

    /// Schedules `f` to run on the loop's thread in its next iteration, from any thread
    /// (asyncio's `call_soon_threadsafe`); wakes the loop if it is blocked.
    ///
    /// # Errors
    ///
    /// [`LoopClosed`] if the loop is closed (`f` is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// std::thread::spawn(move || {
    ///     let h2 = h.clone();
    ///     h.call_soon_threadsafe(move || {
    ///         println!("on the loop's thread");
    ///         h2.stop();
    ///     })
    ///     .unwrap();
    /// });
    /// lp.run_forever();
    /// ```
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), LoopClosed> {
        self.remote.push_job(Box::new(f)).map_err(|_| LoopClosed)
    }

    /// Spawns a `Send` future on the loop from any thread (asyncio's
    /// `run_coroutine_threadsafe`), and returns a handle that can be awaited, or cancelled, from
    /// any thread.
    ///
    /// The task is created in the loop's next iteration. If the loop is closed, or closes
    /// before the task finished, the handle resolves to [`TaskError::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// let worker = std::thread::spawn(move || {
    ///     let t = h.spawn(async { 6 * 7 });
    ///     let v = futures_lite::future::block_on(t).unwrap(); // waits on this thread
    ///     h.stop();
    ///     v
    /// });
    /// lp.run_forever();
    /// assert_eq!(worker.join().unwrap(), 42);
    /// ```
    pub fn spawn<F>(&self, fut: F) -> RemoteTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(move || fut)
    }

    /// Like [`spawn`](Self::spawn), for futures that are not `Send`: `make` runs on the loop's
    /// thread and creates the future there, so it may hold sockets, `Task` handles, timeouts or
    /// `Rc`s (tokio's `LocalPoolHandle::spawn_pinned` takes the same shape).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// let worker = std::thread::spawn(move || {
    ///     let t = h.spawn_with(|| {
    ///         let local = Rc::new(5); // not Send: created on the loop's thread
    ///         async move {
    ///             aioloop::yield_now().await;
    ///             *local * 2
    ///         }
    ///     });
    ///     let v = futures_lite::future::block_on(t).unwrap();
    ///     h.stop();
    ///     v
    /// });
    /// lp.run_forever();
    /// assert_eq!(worker.join().unwrap(), 10);
    /// ```
    pub fn spawn_with<M, F>(&self, make: M) -> RemoteTask<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on_loop(make, false)
    }

    /// Like [`spawn`](Self::spawn), with an eager start ([`spawn_eager`](crate::spawn_eager)):
    /// on the loop's thread, the task's first step runs as soon as the task is created (in the
    /// loop's next iteration), and a task that finishes in it resolves the handle at once,
    /// without entering the ready queue (asyncio's `run_coroutine_threadsafe` on a loop whose
    /// task factory is `eager_task_factory`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// let worker = std::thread::spawn(move || {
    ///     let t = h.spawn_eager(async { 6 * 7 });
    ///     let v = futures_lite::future::block_on(t).unwrap();
    ///     h.stop();
    ///     v
    /// });
    /// lp.run_forever();
    /// assert_eq!(worker.join().unwrap(), 42);
    /// ```
    pub fn spawn_eager<F>(&self, fut: F) -> RemoteTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on_loop(move || fut, true)
    }

    /// Creates the task on the loop's thread (`eager`: and runs its first step there and then).
    fn spawn_on_loop<M, F>(&self, make: M, eager: bool) -> RemoteTask<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let shared: Arc<Mutex<Shared<F::Output>>> = Arc::default();
        let completer = Completer(shared.clone());
        let on_loop = shared.clone();
        // On a closed loop the closure is dropped at once, and its completer resolves the handle.
        let _ = self.call_soon_threadsafe(move || {
            if lock(&on_loop).cancel_requested {
                // Cancelled before it was created: it never starts (dropping the completer
                // resolves the handle as cancelled).
                return;
            }
            let core = crate::runtime::running::current();
            let mut task =
                if eager { core.spawn_eager_at(make(), std::panic::Location::caller()) } else { core.spawn(make()) };
            if task.is_done() {
                // Finished in its eager first step: the outcome goes to the handle now.
                if let Poll::Ready(outcome) = task.poll_outcome(&mut Context::from_waker(Waker::noop()), false) {
                    completer.complete(outcome);
                    return;
                }
            }
            // The wrapper delivers the outcome; cancelling it cancels `task` (it awaits it), and
            // if it is dropped unfinished (cancelled, loop closed) the completer says Cancelled.
            let wrapper = core.spawn(async move {
                let outcome = task.await;
                completer.complete(outcome);
            });
            let cancel = {
                let mut s = lock(&on_loop);
                s.task = Some(wrapper.key());
                s.cancel_requested
            };
            if cancel {
                wrapper.cancel();
            }
        });
        RemoteTask { shared, remote: self.remote.clone() }
    }
}

/// Locks a shared outcome slot, ignoring poisoning (no code panics while holding it).
fn lock<T>(shared: &Mutex<Shared<T>>) -> std::sync::MutexGuard<'_, Shared<T>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a [`RemoteTask`] and its loop share.
struct Shared<T> {
    /// The outcome, once the task finished.
    outcome: Option<Result<T, TaskError>>,
    /// The outcome was taken by the handle.
    taken: bool,
    /// Who awaits the handle.
    waker: Option<Waker>,
    /// The loop-side task, once created.
    task: Option<TaskKey>,
    /// `cancel()` was called before the task was created.
    cancel_requested: bool,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared { outcome: None, taken: false, waker: None, task: None, cancel_requested: false }
    }
}

/// Delivers the outcome; if dropped without delivering (the task was cancelled, or the loop
/// dropped the callback that would have created it), delivers `Cancelled`.
struct Completer<T>(Arc<Mutex<Shared<T>>>);

impl<T> Completer<T> {
    fn complete(self, outcome: Result<T, TaskError>) {
        // The drop that follows finds the outcome delivered and does nothing more than release
        // the shared slot (forgetting `self` instead leaked it).
        self.deliver(outcome);
    }

    fn deliver(&self, outcome: Result<T, TaskError>) {
        let waker = {
            let mut s = lock(&self.0);
            if s.outcome.is_some() || s.taken {
                return;
            }
            s.outcome = Some(outcome);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.deliver(Err(TaskError::Cancelled));
    }
}

/// A task spawned on a loop through [`LoopHandle::spawn`]: `Send + Sync`, awaitable from any
/// thread (or any loop), cancellable from any thread.
///
/// Dropping it does not cancel the task.
///
/// # Examples
///
/// See [`LoopHandle::spawn`].
pub struct RemoteTask<T> {
    shared: Arc<Mutex<Shared<T>>>,
    remote: Arc<Remote>,
}

impl<T> fmt::Debug for RemoteTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTask").field("done", &self.is_done()).finish()
    }
}

impl<T> RemoteTask<T> {
    /// Returns true once the task finished (its outcome is waiting, or was taken).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.handle().spawn(async { 1 });
    /// assert!(!t.is_done());
    /// lp.run_until_complete(async { aioloop::yield_now().await; aioloop::yield_now().await });
    /// assert!(t.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        let s = lock(&self.shared);
        s.outcome.is_some() || s.taken
    }

    /// Requests the task's cancellation from any thread; returns false if it already finished.
    ///
    /// The request reaches the loop in its next iteration, then works like
    /// [`Task::cancel`](crate::Task::cancel); the handle resolves to [`TaskError::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.handle().spawn(aioloop::sleep(Duration::from_secs(60)));
    /// assert!(t.cancel());
    /// let outcome = lp.run_until_complete(t);
    /// assert!(outcome.unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        let task = {
            let mut s = lock(&self.shared);
            if s.outcome.is_some() || s.taken {
                return false;
            }
            s.cancel_requested = true;
            s.task
        };
        if let Some(key) = task {
            let _ = self.remote.push_job(Box::new(move || {
                crate::runtime::running::with_running(|core| core.cancel_task(key));
            }));
        }
        true
    }
}

impl<T> Future for RemoteTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.shared);
        if let Some(outcome) = s.outcome.take() {
            s.taken = true;
            return Poll::Ready(outcome);
        }
        assert!(!s.taken, "aioloop: a `RemoteTask` was polled after it completed");
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
