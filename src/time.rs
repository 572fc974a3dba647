//! Time for tasks: [`sleep`], [`sleep_until`], [`yield_now`], [`timeout`], [`timeout_at`],
//! [`wait_for`].
//!
//! These are the user-facing side of the timer heap ([`timer`](crate::timer)): a `Sleep` puts one
//! entry in the heap whose action is "wake this task", and removes it when dropped (a cancelled
//! sleep cancels its timer, asyncio's `test_sleep_cancel`).
//!
//! # Invariants
//! - A sleep never completes before its deadline: it completes when its timer fired (the loop
//!   fires a timer only once `deadline <= now`), and a zero or past deadline yields for exactly one
//!   iteration (asyncio's `sleep(0)`).
//! - A timeout's deadline is fixed when it is created inside a running loop (asyncio's `timeout()`),
//!   or at its first poll otherwise.
//! - On expiry, a timeout first checks its own deadline, then the inner future: when nested
//!   timeouts expire together the outermost reports the timeout. If the inner future was awaiting
//!   a task, that task is cancelled and the timeout waits until it has finished before reporting,
//!   so the task is not running any more when `Err(TimeoutError)` arrives.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::error::TimeoutError;
use crate::handle::{Action, HandleKey};
use crate::runtime::Core;
use crate::task::Awaitable;
use crate::waker::TaskKey;

/// One timer in the heap, owned by a future; dropping it cancels the timer.
pub(crate) struct TimerSlot {
    core: Rc<Core>,
    /// Loop time at which it fires.
    pub(crate) deadline: u64,
    /// The heap record while scheduled.
    handle: Option<HandleKey>,
    /// It fired (or its deadline had already passed when it was first polled).
    fired: bool,
}

impl TimerSlot {
    pub(crate) fn new(core: Rc<Core>, deadline: u64) -> TimerSlot {
        TimerSlot { core, deadline, handle: None, fired: false }
    }

    /// Returns true if the timer fired, without registering anything.
    pub(crate) fn has_fired(&mut self) -> bool {
        if !self.fired {
            if let Some(h) = self.handle {
                if !self.core.handle_pending(h) {
                    self.fired = true;
                    self.handle = None;
                }
            }
        }
        self.fired
    }

    /// Returns true if the timer fired; otherwise makes sure it will wake `cx`'s waker.
    ///
    /// A deadline that has already passed at the first poll wakes the task for the next
    /// iteration and counts as fired from then on.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.has_fired() {
            return true;
        }
        match self.handle {
            Some(h) => self.core.set_handle_waker(h, cx.waker()),
            None if self.deadline <= self.core.clock.now_ns() => {
                self.fired = true;
                cx.waker().wake_by_ref();
            }
            None => self.handle = Some(self.core.call_at_action(self.deadline, Action::Wake(cx.waker().clone()))),
        }
        false
    }

    /// Cancels the timer if it is still scheduled.
    pub(crate) fn cancel(&mut self) {
        if let Some(h) = self.handle.take() {
            self.core.cancel_handle(h);
        }
    }

    pub(crate) fn core(&self) -> &Rc<Core> {
        &self.core
    }
}

impl Drop for TimerSlot {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// When a sleep or timeout ends: fixed already, or relative to its first poll.
#[derive(Debug, Clone, Copy)]
enum When {
    At(Instant),
    After(Duration),
}

impl When {
    /// Fixes the deadline now if a loop is running (as asyncio does when `timeout()` is called).
    fn fix(self) -> When {
        match self {
            When::After(d) => crate::context::with_running(|core| When::At(core.clock.instant(core.deadline_after(d))))
                .unwrap_or(self),
            at => at,
        }
    }

    fn deadline_ns(self, core: &Core) -> u64 {
        match self {
            When::At(i) => core.clock.ns_of(i),
            When::After(d) => core.deadline_after(d),
        }
    }
}

/// Returns a future that completes after `delay` (asyncio's `asyncio.sleep`).
///
/// The delay counts from the sleep's first poll. `sleep(Duration::ZERO)` yields for exactly one
/// loop iteration, like [`yield_now`]. `Duration::MAX` is a deadline 584 years away, not an
/// overflow. Dropping the sleep cancels its timer.
///
/// # Panics
///
/// When polled outside a running loop: "no running event loop".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let t0 = lp.time();
/// lp.run_until_complete(aioloop::sleep(Duration::from_secs(5)));
/// assert_eq!(lp.time() - t0, Duration::from_secs(5));
/// ```
pub fn sleep(delay: Duration) -> Sleep {
    Sleep { when: When::After(delay), timer: None }
}

/// Returns a future that completes at `deadline` (loop time; a past instant yields once).
///
/// # Panics
///
/// When polled outside a running loop: "no running event loop".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let at = lp.time() + Duration::from_secs(3);
/// lp.run_until_complete(aioloop::sleep_until(at));
/// assert_eq!(lp.time(), at);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { when: When::At(deadline), timer: None }
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// aioloop::run(async {
///     let s: aioloop::Sleep = aioloop::sleep(Duration::from_millis(1));
///     s.await;
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    when: When,
    timer: Option<TimerSlot>,
}

impl Sleep {
    /// Returns the deadline, once the sleep has been polled (its delay counts from then).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let at = lp.time() + Duration::from_secs(1);
    /// assert_eq!(aioloop::sleep_until(at).deadline(), Some(at));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.timer, self.when) {
            (Some(t), _) => Some(t.core().clock.instant(t.deadline)),
            (None, When::At(i)) => Some(i),
            (None, When::After(_)) => None,
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline()).finish()
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let timer = this.timer.get_or_insert_with(|| {
            let core = crate::context::current();
            let deadline = this.when.deadline_ns(&core);
            TimerSlot::new(core, deadline)
        });
        if timer.poll_fired(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Yields to the loop for exactly one iteration (asyncio's `await asyncio.sleep(0)`).
///
/// The task goes to the tail of the ready queue: everything already ready runs first.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// let log = Rc::new(RefCell::new(vec![]));
/// let l = log.clone();
/// aioloop::run(async move {
///     let l2 = l.clone();
///     aioloop::spawn(async move { l2.borrow_mut().push("other") });
///     l.borrow_mut().push("before");
///     aioloop::yield_now().await;
///     l.borrow_mut().push("after");
/// });
/// assert_eq!(*log.borrow(), ["before", "other", "after"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
///
/// # Examples
///
/// ```
/// aioloop::run(async { let y: aioloop::YieldNow = aioloop::yield_now(); y.await });
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Runs `fut` with a deadline `delay` from now: `Ok(output)`, or `Err(TimeoutError)` and `fut`
/// dropped (asyncio's `async with asyncio.timeout(delay)`).
///
/// The deadline is fixed when `timeout` is called inside a running loop (at the first poll
/// otherwise). A deadline already passed still lets `fut` run until its first suspension. When
/// nested timeouts expire together, the outermost reports. If `fut` was awaiting a [`Task`]
/// (directly or through its own futures), the task is cancelled and the timeout waits for it to
/// finish before returning.
///
/// [`Task`]: crate::Task
///
/// # Panics
///
/// When polled outside a running loop: "no running event loop".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// lp.run_until_complete(async {
///     let slow = aioloop::sleep(Duration::from_secs(10));
///     assert!(aioloop::timeout(Duration::from_secs(1), slow).await.is_err());
///     let fast = async { 5 };
///     assert_eq!(aioloop::timeout(Duration::from_secs(1), fast).await, Ok(5));
/// });
/// ```
pub fn timeout<F: IntoFuture>(delay: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(When::After(delay).fix(), fut.into_future(), false)
}

/// Like [`timeout`], with an absolute deadline in loop time (asyncio's `timeout_at`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let at = lp.time() + Duration::from_secs(1);
/// let r = lp.run_until_complete(aioloop::timeout_at(at, aioloop::sleep(Duration::from_secs(9))));
/// assert!(r.is_err());
/// assert_eq!(lp.time(), at);
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(When::At(deadline), fut.into_future(), false)
}

/// Waits for a future or a task with a timeout; on timeout cancels it (a task: waits until it
/// is cancelled) and returns `Err(TimeoutError)` (asyncio 3.12's `asyncio.wait_for`).
///
/// A plain future runs inside the caller's task. With a zero timeout a plain future never
/// starts, and a finished task gives its outcome (asyncio's `wait_for(x, 0)`). Awaiting a
/// [`Task`](crate::Task) gives `Result<T, TaskError>` inside the `Ok`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// lp.run_until_complete(async {
///     let mut t = aioloop::spawn(aioloop::sleep(Duration::from_secs(60)));
///     let r = aioloop::wait_for(&mut t, Duration::from_secs(1)).await;
///     assert!(r.is_err());
///     assert!(t.is_cancelled()); // cancelled, and finished before wait_for returned
/// });
/// ```
pub fn wait_for<A: Awaitable>(aw: A, timeout: Duration) -> Timeout<A::Future> {
    Timeout::new(When::After(timeout).fix(), aw.into_awaitable(), !A::IS_TASK && timeout.is_zero())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeoutState {
    /// Running the inner future.
    Active,
    /// The deadline passed; waiting for this task (awaited by the inner future) to finish.
    Expiring(TaskKey),
    /// Finished.
    Done,
}

pin_project! {
    /// The future of [`timeout`], [`timeout_at`] and [`wait_for`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// aioloop::run(async {
    ///     let t: aioloop::Timeout<_> = aioloop::timeout(Duration::from_secs(1), async { 1 });
    ///     assert!(t.deadline().is_some());
    ///     assert_eq!(t.await, Ok(1));
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        inner: Option<F>,
        when: When,
        timer: Option<TimerSlot>,
        state: TimeoutState,
        // The task the inner future was awaiting at its last poll.
        linked: Option<TaskKey>,
        // wait_for with a zero timeout on a plain future: expire without polling it.
        never_start: bool,
    }
}

impl<F> Timeout<F> {
    fn new(when: When, inner: F, never_start: bool) -> Timeout<F> {
        Timeout { inner: Some(inner), when, timer: None, state: TimeoutState::Active, linked: None, never_start }
    }

    /// Returns the deadline, if it is fixed already (asyncio's `Timeout.when()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let at = lp.time() + Duration::from_secs(1);
    /// assert_eq!(aioloop::timeout_at(at, async {}).deadline(), Some(at));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.timer, self.when) {
            (Some(t), _) => Some(t.core().clock.instant(t.deadline)),
            (None, When::At(i)) => Some(i),
            (None, When::After(_)) => None,
        }
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout").field("deadline", &self.deadline()).field("state", &self.state).finish()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let when = *this.when;
        let timer = this.timer.get_or_insert_with(|| {
            let core = crate::context::current();
            let deadline = when.deadline_ns(&core);
            TimerSlot::new(core, deadline)
        });
        let core = timer.core().clone();
        loop {
            match *this.state {
                TimeoutState::Done => panic!("aioloop: a `Timeout` was polled after it completed"),
                TimeoutState::Expiring(task) => {
                    if core.status_of(task).is_none_or(|s| s.is_finished()) {
                        this.inner.set(None);
                        *this.state = TimeoutState::Done;
                        return Poll::Ready(Err(TimeoutError));
                    }
                    // Keep the link so that cancelling us still reaches the task.
                    core.set_awaiting_of_current(task);
                    return Poll::Pending;
                }
                TimeoutState::Active => {}
            }
            // The outer deadline is checked before the inner future is polled.
            let expired = timer.has_fired() || (*this.never_start && timer.deadline <= core.clock.now_ns());
            if expired {
                timer.cancel();
                match this.linked.take().filter(|&t| core.status_of(t).is_some_and(|s| !s.is_finished())) {
                    Some(task) => {
                        core.cancel_task(task);
                        *this.state = TimeoutState::Expiring(task);
                        continue;
                    }
                    None => {
                        this.inner.set(None);
                        *this.state = TimeoutState::Done;
                        return Poll::Ready(Err(TimeoutError));
                    }
                }
            }
            let before = core.take_awaiting_of_current();
            let polled = this.inner.as_mut().as_pin_mut().expect("inner future present while active").poll(cx);
            let linked = core.take_awaiting_of_current();
            core.restore_awaiting_of_current(linked.or(before));
            *this.linked = linked;
            return match polled {
                Poll::Ready(out) => {
                    timer.cancel();
                    this.inner.set(None);
                    *this.state = TimeoutState::Done;
                    Poll::Ready(Ok(out))
                }
                Poll::Pending => {
                    timer.poll_fired(cx);
                    Poll::Pending
                }
            };
        }
    }
}
