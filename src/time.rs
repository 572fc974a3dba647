//! Time for tasks: [`sleep`], [`sleep_until`], [`yield_now`], [`timeout`], [`timeout_at`],
//! [`timeout_with`] (and its [`TimeoutHandle`]), [`wait_for`].
//!
//! These are the user-facing side of the timer heap ([`timer`](crate::runtime::timer)): a `Sleep` puts one
//! entry in the heap whose action is "wake this task", and removes it when dropped (a cancelled
//! sleep cancels its timer, asyncio's `test_sleep_cancel`).
//!
//! # Invariants
//! - A sleep never completes before its deadline: it completes when its timer fired (the loop
//!   fires a timer only once `deadline <= now`), and a zero or past deadline yields for exactly one
//!   iteration (asyncio's `sleep(0)`).
//! - A timeout's deadline is fixed when it is created inside a running loop (asyncio's `timeout()`),
//!   or at its first poll otherwise. A [`TimeoutHandle`] may move it (or remove it: `None`, as
//!   `timeout(None)` starts); the timeout applies a move when its body suspends, or at its next
//!   poll if the move came from elsewhere, unless its timer fired first (the expiry stands).
//! - On expiry, a timeout first checks its own deadline, then the inner future: when nested
//!   timeouts expire together the outermost reports the timeout. If the inner future was awaiting
//!   a task, that task is cancelled and the timeout waits until it has finished before reporting,
//!   so the task is not running any more when `Err(TimeoutError)` arrives.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::callback_handle::Action;
use crate::error::TimeoutError;
use crate::runtime::task::Link;
use crate::runtime::timer::TimerKey;
use crate::runtime::Core;

/// One timer in the heap, owned by a future; dropping it cancels the timer.
///
/// It holds no reference to its loop, only the loop's registry slot, and reaches the loop through
/// the thread's running loop: so a [`Sleep`] is `Send` (it can be part of a future given to
/// [`LoopHandle::spawn`](crate::LoopHandle::spawn)).
///
/// A sleep's timer is an entry of the timer heap that holds the sleeping task's waker (the heap
/// entry reaches the task directly); a timeout's timer goes through a handle record, whose action
/// also cancels what the timed-out future awaits.
pub(crate) struct TimerSlot {
    /// Loop time at which it fires.
    pub(crate) deadline: u64,
    /// Its sequence number (its place among equal deadlines), once reserved or armed.
    seq: u64,
    /// Where it is in its life.
    state: Arm,
    /// The loop's registry slot.
    slot: u16,
    /// What a deadline that has already passed when the timer is armed does.
    past_due: PastDue,
    /// The timer of a timeout: its action cancels what the timed-out future awaits.
    expire: bool,
}

/// A timer's life: armed at its first poll (or only once its timeout's body is pending), then
/// fired or cancelled. 12 bytes, so that a sleeping task's future stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arm {
    /// Not in the heap yet.
    Unarmed,
    /// Not in the heap yet, but its place among equal deadlines is taken: `seq` (a timeout polls
    /// its body first and arms only if the body is pending, so it still orders as if armed when
    /// it was created).
    Reserved,
    /// Scheduled through handle record `index` (with sequence number `seq`).
    Record(u32),
    /// Scheduled as this heap entry (with sequence number `seq`).
    Entry(TimerKey),
    /// It fired (or its deadline had already passed when it was first polled), or it was
    /// cancelled.
    Done,
}

/// What a timer whose deadline has already passed does when it is armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PastDue {
    /// Yield one iteration without a timer (asyncio's `sleep(0)`: a bare `yield`).
    Yield,
    /// Queue the action in the ready queue now (asyncio's `timeout()`: `call_soon(_on_timeout)`).
    Soon,
    /// Go through the heap like any timer: it fires next iteration (asyncio's `call_later(0)`).
    Heap,
}

impl TimerSlot {
    pub(crate) fn new(core: &Core, deadline: u64, past_due: PastDue) -> TimerSlot {
        TimerSlot { slot: core.remote.slot(), past_due, expire: false, state: Arm::Unarmed, deadline, seq: 0 }
    }

    /// Takes the timer's place among equal deadlines now, without arming it yet.
    pub(crate) fn reserve_seq(&mut self, core: &Core) {
        if self.state == Arm::Unarmed {
            self.seq = core.take_seq();
            self.state = Arm::Reserved;
        }
    }

    /// Runs `f` with the timer's loop if it is the one running on this thread.
    fn with_core<R>(&self, f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
        crate::runtime::running::with_running(|core| (core.remote.slot() == self.slot).then(|| f(core))).flatten()
    }

    /// Returns the timer's loop, which must be running on this thread.
    fn core(&self) -> Rc<Core> {
        self.with_core(Rc::clone).expect("aioloop: a timer was polled outside the loop it was created on")
    }

    /// Returns true if the scheduled timer has neither fired (and run) nor been cancelled; if
    /// so, and `waker` is given, makes it wake that waker.
    fn pending(&self, core: &Core, waker: Option<&Waker>) -> bool {
        match (self.state, waker) {
            (Arm::Record(index), None) => core.handle_pending((index, self.seq)),
            (Arm::Record(index), Some(w)) => core.set_handle_waker((index, self.seq), w),
            (Arm::Entry(key), None) => core.timers.borrow().is_pending(key, self.seq),
            (Arm::Entry(key), Some(w)) => core.timers.borrow_mut().poll_pending(key, self.seq, w),
            _ => false,
        }
    }

    /// Returns true if the timer fired, without registering anything.
    pub(crate) fn has_fired(&mut self) -> bool {
        if let Arm::Record(_) | Arm::Entry(_) = self.state {
            if !self.pending(&self.core(), None) {
                self.state = Arm::Done;
            }
        }
        self.state == Arm::Done
    }

    /// Returns true if the timer fired; otherwise makes sure it will wake `cx`'s waker.
    ///
    /// The first call arms the timer; a deadline that has already passed then does what
    /// `past_due` says.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        match self.state {
            Arm::Done => true,
            _ => self.poll_fired_on(&self.core(), cx),
        }
    }

    /// [`poll_fired`](Self::poll_fired) with the timer's loop at hand.
    fn poll_fired_on(&mut self, core: &Core, cx: &mut Context<'_>) -> bool {
        match self.state {
            Arm::Done => return true,
            Arm::Record(_) | Arm::Entry(_) => {
                if self.pending(core, Some(cx.waker())) {
                    return false;
                }
                self.state = Arm::Done;
                return true;
            }
            Arm::Unarmed | Arm::Reserved => {}
        }
        // Only the modes that treat a passed deadline specially read the clock.
        let due = self.past_due != PastDue::Heap && self.deadline <= core.clock.now_ns();
        let seq = match self.state {
            Arm::Reserved => Some(self.seq),
            _ => None,
        };
        let (index, seq) = match self.past_due {
            PastDue::Yield if due => {
                self.state = Arm::Done;
                cx.waker().wake_by_ref();
                return false;
            }
            PastDue::Soon if due => core.call_soon_action(self.action(cx.waker())),
            _ if !self.expire => {
                // A sleep: the heap entry holds the waker itself.
                self.seq = seq.unwrap_or_else(|| core.take_seq());
                let key = core.timers.borrow_mut().push_wake(self.deadline, self.seq, cx.waker().clone());
                self.state = Arm::Entry(key);
                return false;
            }
            _ => core.call_at_action(self.deadline, seq, self.action(cx.waker())),
        };
        self.seq = seq;
        self.state = Arm::Record(index);
        false
    }

    /// The action of this timer's handle record.
    fn action(&self, waker: &Waker) -> Action {
        if self.expire {
            Action::Expire(waker.clone(), None)
        } else {
            Action::Wake(waker.clone())
        }
    }

    /// Tells the armed timer of a timeout what to cancel when it fires.
    pub(crate) fn set_link(&self, link: Option<Link>) {
        if let Arm::Record(index) = self.state {
            self.core().set_handle_link((index, self.seq), link);
        }
    }

    /// Makes the timer count as fired, without waiting for its deadline.
    pub(crate) fn expire_now(&mut self) {
        self.cancel();
        self.state = Arm::Done;
    }

    /// Moves the timer to `deadline` (loop time). An armed timer is re-armed at once with the
    /// waker it held, so a task parked on it wakes at the new deadline, earlier or later; one
    /// that fired, or was never armed, is armed at its next poll.
    pub(crate) fn reschedule(&mut self, deadline: u64) {
        self.deadline = deadline;
        let waker = match self.state {
            // Cancelling gives the waker back. A timer whose wake-up already ran has woken its
            // task, which will poll (and re-arm) anyway.
            Arm::Entry(key) => self.with_core(|core| core.cancel_timer(key, self.seq)).flatten(),
            Arm::Record(index) => self
                .with_core(|core| {
                    let waker = core.handle_waker((index, self.seq));
                    core.cancel_handle((index, self.seq));
                    waker
                })
                .flatten(),
            Arm::Unarmed | Arm::Reserved | Arm::Done => None,
        };
        self.state = Arm::Unarmed;
        if let Some(waker) = waker {
            if let Some(core) = self.with_core(Rc::clone) {
                self.seq = core.take_seq();
                self.state = Arm::Entry(core.timers.borrow_mut().push_wake(deadline, self.seq, waker));
            }
        }
    }

    /// Returns true once the timer was armed (or fired).
    pub(crate) fn is_armed(&self) -> bool {
        matches!(self.state, Arm::Record(_) | Arm::Entry(_) | Arm::Done)
    }

    /// Cancels the timer if it is still scheduled. Off its loop's thread (or while the loop is
    /// not running) nothing can be done; the timer then fires a wake nobody waits for, or is
    /// dropped when the loop closes.
    pub(crate) fn cancel(&mut self) {
        match std::mem::replace(&mut self.state, Arm::Unarmed) {
            Arm::Record(index) => {
                self.with_core(|core| core.cancel_handle((index, self.seq)));
            }
            Arm::Entry(key) => {
                let waker = self.with_core(|core| core.cancel_timer(key, self.seq));
                drop(waker); // outside the loop's borrows (a foreign waker may run code)
            }
            Arm::Reserved | Arm::Unarmed => {}
            Arm::Done => self.state = Arm::Done,
        }
    }
}

impl Drop for TimerSlot {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Core {
    /// Cancels the sleep's timer at `key` (a tombstone, or a revoked wake-up if it fired) and
    /// returns the waker it held; rebuilds the heap if it is now mostly tombstones.
    pub(crate) fn cancel_timer(&self, key: TimerKey, seq: u64) -> Option<Waker> {
        let mut timers = self.timers.borrow_mut();
        let waker = timers.cancel(key, seq);
        if waker.is_some() && timers.wants_compaction() {
            // Rebuild now rather than at the next iteration, so a task that creates and cancels
            // timers in one long poll stays small.
            let handles = self.handles.borrow();
            timers.compact(|index, seq| crate::runtime::record_is_live(&handles, index, seq));
        }
        waker
    }

    /// Runs a `Runnable::Timer`: wakes the task of the sleep whose timer fired, unless the sleep
    /// was cancelled since.
    pub(crate) fn run_timer(&self, key: TimerKey) {
        let Some(waker) = self.timers.borrow_mut().take_queued(key) else { return };
        match crate::runtime::waker::key_of(&waker) {
            // One of this loop's tasks: queue it without going through the thread-local.
            Some(task) if task.slot() == self.remote.slot() => self.wake_local(task),
            _ => self.contain(move || waker.wake()),
        }
    }
}

/// When a sleep or timeout ends: fixed already, or relative to its first poll.
#[derive(Debug, Clone, Copy)]
enum When {
    At(Instant),
    After(Duration),
    /// Fixed by a running loop: the deadline in that loop's time (registry slot `slot`), and as
    /// an `Instant`, so the first poll on that loop need not convert it back.
    Fixed {
        /// The iteration of the loop in which it was fixed, modulo 2^32 (see `Timeout::poll`).
        iteration: u32,
        /// It was fixed from a delay greater than zero.
        ahead: bool,
        slot: u16,
        ns: u64,
        at: Instant,
    },
}

impl When {
    /// Fixes the deadline now if a loop is running (as asyncio does when `timeout()` is called).
    fn fix(self) -> When {
        match self {
            When::After(d) => crate::runtime::running::with_running(|core| {
                let ns = core.deadline_after(d);
                When::Fixed {
                    iteration: core.iterations.get() as u32,
                    ahead: !d.is_zero(),
                    slot: core.remote.slot(),
                    ns,
                    at: core.clock.instant(ns),
                }
            })
            .unwrap_or(self),
            at => at,
        }
    }

    fn deadline_ns(self, core: &Core) -> u64 {
        match self {
            When::Fixed { slot, ns, .. } if slot == core.remote.slot() => ns,
            When::At(at) | When::Fixed { at, .. } => core.clock.ns_of(at),
            When::After(d) => core.deadline_after(d),
        }
    }

    /// The deadline as an `Instant`, if it is fixed.
    fn instant(self) -> Option<Instant> {
        match self {
            When::At(at) | When::Fixed { at, .. } => Some(at),
            When::After(_) => None,
        }
    }
}

/// Returns a future that completes after `delay` (asyncio's `asyncio.sleep`).
///
/// The delay counts from the sleep's first poll. `sleep(Duration::ZERO)` yields for exactly one
/// loop iteration, like [`yield_now`]. `Duration::MAX` is a deadline over 500 years away, not an
/// overflow. Dropping the sleep cancels its timer.
///
/// # Panics
///
/// When polled outside a running loop ("no running event loop"), or, once polled, on another
/// loop or thread than its first poll's (its timer lives in that loop).
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
/// As [`sleep`]'s.
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
        self.when.instant()
    }

    /// Moves the deadline to `deadline`, earlier or later, whether the sleep is waiting, has
    /// completed, or was never polled (tokio's `Sleep::reset`; hyper's `Timer::reset`).
    ///
    /// A task waiting on the sleep is woken at the new deadline (not at the old one), without
    /// polling it again first; a completed sleep waits again. A deadline already passed completes
    /// the sleep at the next iteration. The old timer is cancelled, not left to fire.
    ///
    /// Called while the sleep's loop is not running on this thread (between two
    /// `run_until_complete`s), the new deadline counts from the sleep's next poll, and a task
    /// already waiting on it is woken at the old deadline first (only its loop can move its timer).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{pin::pin, time::Duration};
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let t0 = lp.time();
    /// lp.run_until_complete(async move {
    ///     let mut s = pin!(aioloop::sleep_until(t0 + Duration::from_secs(10)));
    ///     // Wait one second on it, then move it earlier: it ends at 3 s, not 10 s.
    ///     let _ = aioloop::timeout(Duration::from_secs(1), s.as_mut()).await;
    ///     s.as_mut().reset(t0 + Duration::from_secs(3));
    ///     s.as_mut().await;
    ///     assert_eq!(aioloop::now() - t0, Duration::from_secs(3));
    ///     // Completed, then moved later: it waits again.
    ///     s.as_mut().reset(t0 + Duration::from_secs(20));
    ///     s.await;
    ///     assert_eq!(aioloop::now() - t0, Duration::from_secs(20));
    /// });
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        // `Sleep` is `Unpin`; the pinned receiver keeps tokio's signature, so a future change
        // to a pinned field would not break callers.
        let this = self.get_mut();
        this.when = When::At(deadline);
        let Some(timer) = this.timer.as_mut() else { return }; // never polled: armed at its first poll
        match timer.with_core(|core| core.clock.ns_of(deadline)) {
            Some(ns) => timer.reschedule(ns),
            // Off its loop: nothing there can be cancelled now; a new timer is made at the next
            // poll (and polling it on another loop panics, as before).
            None => this.timer = None,
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
        if this.timer.is_none() {
            let core = crate::runtime::running::current();
            let deadline = this.when.deadline_ns(&core);
            // asyncio's `sleep(0)` is a bare yield, any other delay a `call_later`, even one
            // that is over by the time it is armed; only a `sleep_until` instant is compared
            // with the clock.
            let past_due = match this.when {
                When::After(d) if !d.is_zero() => PastDue::Heap,
                _ => PastDue::Yield,
            };
            if let When::After(_) = this.when {
                this.when = When::At(core.clock.instant(deadline)); // for `deadline()`
            }
            let timer = this.timer.insert(TimerSlot::new(&core, deadline, past_due));
            timer.poll_fired_on(&core, cx);
            return Poll::Pending;
        }
        let timer = this.timer.as_mut().expect("created above");
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
/// dropped (asyncio's `async with asyncio.timeout(delay)`). `delay` is a `Duration`, or `None`
/// for no deadline (asyncio's `timeout(None)`, for a deadline set later through
/// [`Timeout::handle`]).
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
pub fn timeout<F: IntoFuture>(delay: impl Into<Option<Duration>>, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(delay.into().map(|d| When::After(d).fix()), fut.into_future(), Zero::No)
}

/// Like [`timeout`], and gives the body a [`TimeoutHandle`] to read, move or remove its own
/// deadline (asyncio's `async with asyncio.timeout(delay) as cm:` and `cm.reschedule(when)`).
///
/// `body` is called at once with the handle and returns the future to run. The handle may be
/// cloned and kept past the timeout: [`expired`](TimeoutHandle::expired) then tells whether the
/// deadline ended it.
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
/// let r = lp.run_until_complete(aioloop::timeout_with(Duration::from_secs(1), |cm| async move {
///     // More time than planned: move the deadline 3 s from now.
///     cm.reschedule(Some(aioloop::now() + Duration::from_secs(3)));
///     aioloop::sleep(Duration::from_secs(2)).await;
///     "done"
/// }));
/// assert_eq!(r, Ok("done"));
/// assert_eq!(lp.time() - t0, Duration::from_secs(2));
/// ```
pub fn timeout_with<F: IntoFuture>(
    delay: impl Into<Option<Duration>>,
    body: impl FnOnce(TimeoutHandle) -> F,
) -> Timeout<F::IntoFuture> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let fut = body(TimeoutHandle(shared.clone()));
    let mut t = timeout(delay, fut);
    t.attach(shared);
    t
}

/// Like [`timeout`], with an absolute deadline in loop time, or `None` (asyncio's `timeout_at`).
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
/// let at = lp.time() + Duration::from_secs(1);
/// let r = lp.run_until_complete(aioloop::timeout_at(at, aioloop::sleep(Duration::from_secs(9))));
/// assert!(r.is_err());
/// assert_eq!(lp.time(), at);
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: impl Into<Option<Instant>>, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(deadline.into().map(When::At), fut.into_future(), Zero::No)
}

/// Waits for a future or a task with a timeout; on timeout cancels it (a task: waits until it
/// is cancelled) and returns `Err(TimeoutError)` (asyncio 3.12's `asyncio.wait_for`).
///
/// A plain future runs inside the caller's task. With a zero timeout a plain future never
/// starts, and a task is cancelled at once unless it already finished, in which case its
/// outcome is returned (asyncio's `wait_for(x, 0)`); "a task" is a [`Task`](crate::Task) or a
/// `&mut Task` (not a future that wraps one). Awaiting a `Task` gives `Result<T, TaskError>`
/// inside the `Ok`.
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
///     let mut t = aioloop::spawn(aioloop::sleep(Duration::from_secs(60)));
///     let r = aioloop::wait_for(&mut t, Duration::from_secs(1)).await;
///     assert!(r.is_err());
///     assert!(t.is_cancelled()); // cancelled, and finished before wait_for returned
/// });
/// ```
pub fn wait_for<F: IntoFuture>(fut: F, timeout: Duration) -> Timeout<F::IntoFuture> {
    let zero = match (timeout.is_zero(), crate::task::is_task_handle::<F::IntoFuture>()) {
        (false, _) => Zero::No,
        (true, true) => Zero::Task,
        (true, false) => Zero::Future,
    };
    Timeout::new(Some(When::After(timeout).fix()), fut.into_future(), zero)
}

/// `wait_for` with a zero timeout (asyncio 3.12's `timeout <= 0` path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zero {
    /// Not a zero-timeout `wait_for`.
    No,
    /// A task: give its outcome if it finished, else cancel it at once and wait for it.
    Task,
    /// A plain future: time out without starting it.
    Future,
}

#[derive(Clone)]
enum TimeoutState {
    /// Running the inner future.
    Active,
    /// The deadline passed; waiting for what the inner future awaited to finish cancelling.
    Expiring(Link),
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
        // What the inner future was awaiting at its last poll (a task or a gather).
        linked: Option<Link>,
        zero: Zero,
        // It returned `Err(TimeoutError)`.
        expired: bool,
        // No deadline: `timeout(None)`, or moved to none (`when` and the timer are then unused).
        unbounded: bool,
        // What it shares with its `TimeoutHandle`s, once one was asked for.
        shared: Option<Arc<Mutex<Shared>>>,
    }
}

impl<F> Timeout<F> {
    /// `when` is `None` for no deadline.
    fn new(when: Option<When>, inner: F, zero: Zero) -> Timeout<F> {
        Timeout {
            inner: Some(inner),
            when: when.unwrap_or(When::After(Duration::MAX)),
            timer: None,
            state: TimeoutState::Active,
            linked: None,
            zero,
            expired: false,
            unbounded: when.is_none(),
            shared: None,
        }
    }

    /// Returns a handle to this timeout: to read its deadline, move or remove it, and see
    /// whether it expired (asyncio's `Timeout.when`, `reschedule`, `expired`). To use one inside
    /// the timeout's own body, create the timeout with [`timeout_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// lp.run_until_complete(async {
    ///     let mut t = aioloop::timeout(None, aioloop::sleep(Duration::from_secs(60)));
    ///     let cm = t.handle();
    ///     assert_eq!(cm.when(), None); // no deadline yet
    ///     let at = aioloop::now() + Duration::from_secs(1);
    ///     aioloop::call_at(at - Duration::from_millis(500), move || cm.reschedule(Some(at)));
    ///     assert!(t.await.is_err());
    ///     assert_eq!(aioloop::now(), at);
    /// });
    /// ```
    pub fn handle(&mut self) -> TimeoutHandle {
        if self.shared.is_none() {
            self.attach(Arc::default());
        }
        TimeoutHandle(self.shared.clone().expect("attached above"))
    }

    /// Shares this timeout's state with handles through `shared`, publishing its deadline.
    fn attach(&mut self, shared: Arc<Mutex<Shared>>) {
        lock(&shared).deadline = self.deadline();
        self.shared = Some(shared);
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
        if self.unbounded {
            None
        } else {
            self.when.instant()
        }
    }
}

/// What a [`Timeout`] shares with its [`TimeoutHandle`]s: behind a mutex so that the timeout
/// stays `Send`, and allocated only when a handle is asked for.
#[derive(Default)]
struct Shared {
    /// The deadline (`None`: none, or not fixed yet), as set or last moved.
    deadline: Option<Instant>,
    /// A handle moved the deadline and the timeout has not applied the move yet.
    moved: bool,
    /// Where the timeout is in its life (asyncio's `_State`).
    phase: Phase,
    /// The timeout is polling its body: a move made there is applied when the poll returns.
    in_body: bool,
    /// The waker of the timeout's last poll: a move made elsewhere wakes it to re-arm its timer.
    waker: Option<std::task::Waker>,
}

/// A timeout's life, as its handles see it (asyncio's `_State`, from `ENTERED` on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Running its body.
    #[default]
    Entered,
    /// The deadline passed; what the body awaited is being cancelled.
    Expiring,
    /// It ended with `Err(TimeoutError)`.
    Expired,
    /// Its body completed in time.
    Finished,
}

/// Locks a timeout's shared state, ignoring poisoning (no code panics while holding it).
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle to a running [`timeout`]: reads its deadline, moves or removes it, and tells
/// whether the timeout expired (asyncio's `Timeout` object: `when()`, `reschedule()`,
/// `expired()`). From [`timeout_with`] (inside the body) or [`Timeout::handle`].
///
/// A move made inside the timeout's body takes effect when the body suspends; one made
/// elsewhere (another task, a callback, another thread) wakes the timeout's task, which re-arms
/// its timer (and polls its body once more). A deadline already passed ends the body at its
/// next suspension.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let (r, cm) = lp.run_until_complete(async {
///     let mut keep = None;
///     let r = aioloop::timeout_with(Duration::from_secs(10), |cm| {
///         keep = Some(cm.clone());
///         async move {
///             cm.reschedule(Some(aioloop::now() + Duration::from_millis(50))); // less time
///             aioloop::sleep(Duration::from_secs(1)).await;
///         }
///     })
///     .await;
///     (r, keep.unwrap())
/// });
/// assert!(r.is_err());
/// assert!(cm.expired());
/// ```
#[derive(Clone)]
pub struct TimeoutHandle(Arc<Mutex<Shared>>);

impl TimeoutHandle {
    /// Returns the deadline in loop time, or `None` if there is none (asyncio's `when()`); a
    /// relative deadline created outside a running loop is fixed at the timeout's first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// lp.run_until_complete(async {
    ///     let t0 = aioloop::now(); // virtual time: the same instant as the timeout's call
    ///     let mut t = aioloop::timeout(Duration::from_secs(2), async {});
    ///     assert_eq!(t.handle().when(), Some(t0 + Duration::from_secs(2)));
    ///     assert_eq!(aioloop::timeout(None, async {}).handle().when(), None);
    /// });
    /// ```
    pub fn when(&self) -> Option<Instant> {
        lock(&self.0).deadline
    }

    /// Moves the deadline to `when` (loop time), or removes it with `None` (asyncio's
    /// `reschedule()`).
    ///
    /// # Panics
    ///
    /// "Cannot change state of expired Timeout" (or "expiring", "finished"), as asyncio's
    /// `RuntimeError`, once the deadline ended the timeout or its body completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let r = lp.run_until_complete(aioloop::timeout_with(Duration::from_millis(10), |cm| async move {
    ///     cm.reschedule(None); // no deadline after all
    ///     aioloop::sleep(Duration::from_secs(1)).await;
    ///     cm.expired()
    /// }));
    /// assert_eq!(r, Ok(false));
    /// ```
    pub fn reschedule(&self, when: Option<Instant>) {
        let waker = {
            let mut s = lock(&self.0);
            match s.phase {
                Phase::Entered => {}
                Phase::Expiring => panic!("Cannot change state of expiring Timeout"),
                Phase::Expired => panic!("Cannot change state of expired Timeout"),
                Phase::Finished => panic!("Cannot change state of finished Timeout"),
            }
            s.deadline = when;
            s.moved = true;
            if s.in_body {
                None
            } else {
                s.waker.take()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Returns true if the deadline ended the timeout (asyncio's `expired()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let mut t = aioloop::timeout(Duration::from_secs(1), aioloop::sleep(Duration::from_secs(2)));
    /// let cm = t.handle();
    /// assert!(!cm.expired());
    /// assert!(lp.run_until_complete(t).is_err());
    /// assert!(cm.expired());
    /// ```
    pub fn expired(&self) -> bool {
        lock(&self.0).phase == Phase::Expired
    }
}

impl std::fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.0);
        f.debug_struct("TimeoutHandle").field("when", &s.deadline).field("phase", &s.phase).finish()
    }
}

impl<F> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            TimeoutState::Active => "active",
            TimeoutState::Expiring(_) => "expiring",
            TimeoutState::Done if self.expired => "expired",
            TimeoutState::Done => "finished",
        };
        f.debug_struct("Timeout").field("deadline", &self.deadline()).field("state", &state).finish()
    }
}

/// Returns true if what `link` names has finished (a task; every member of a gather).
fn link_finished(core: &Core, link: &Link) -> bool {
    match link {
        Link::Task(t) => core.status_of(*t).is_none_or(|s| s.is_finished()),
        Link::Group(g) => g.outer_done(),
        // Nothing in particular to wait for: the inner future is dropped with its handles.
        Link::Several => true,
    }
}

/// Cancels what `link` names; returns true if there is something to wait for.
pub(crate) fn cancel_link(core: &Core, link: &Link) -> bool {
    match link {
        Link::Task(t) => core.cancel_task(*t),
        Link::Group(g) => g.cancel_members(core),
        Link::Several => false,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.timer.is_none() {
            let core = crate::runtime::running::current();
            let deadline = if *this.unbounded { u64::MAX } else { this.when.deadline_ns(&core) };
            if let (When::After(_), false) = (*this.when, *this.unbounded) {
                *this.when = When::At(core.clock.instant(deadline)); // for `deadline()`
                if let Some(sh) = this.shared.as_deref() {
                    let mut s = lock(sh);
                    if !s.moved {
                        s.deadline = this.when.instant();
                    }
                }
            }
            let mut timer = TimerSlot::new(&core, deadline, PastDue::Soon);
            timer.expire = true;
            *this.timer = Some(timer);
        }
        let timer = this.timer.as_mut().expect("created above");
        let core = timer.core();
        if let Some(sh) = this.shared.as_deref() {
            // A deadline moved from elsewhere since the last poll.
            apply_move(sh, timer, this.when, this.unbounded, &core);
        }
        let when = *this.when;
        if !*this.unbounded && *this.zero == Zero::No && matches!(this.state, TimeoutState::Active) && !timer.is_armed()
        {
            // A deadline fixed in this iteration from a positive delay is taken as not passed
            // without reading the clock again: on virtual time it cannot have passed, and on real
            // time it would have to pass within microseconds, where the only difference is
            // whether the expiry is queued before or after what the body schedules in its first
            // poll (either way the body is interrupted at its first suspension).
            let fresh = matches!(when, When::Fixed { iteration, ahead: true, slot, .. }
                if iteration == core.iterations.get() as u32 && slot == core.remote.slot());
            if !fresh && timer.deadline <= core.clock.now_ns() {
                // Armed before the body first runs, as asyncio's `timeout()` is at `__aenter__`:
                // a deadline already passed is queued now, ahead of whatever the body schedules,
                // so the body runs until its first suspension and is interrupted there (even a
                // `sleep(0)`).
                timer.poll_fired(cx);
            } else {
                // A future deadline: take the timer's place in the order now, as asyncio does,
                // but arm it only if the body is still pending after its poll; a body that is
                // ready at once (the common case of a timeout) never touches the heap.
                timer.reserve_seq(&core);
            }
        }
        loop {
            match this.state.clone() {
                TimeoutState::Done => panic!("aioloop: a `Timeout` was polled after it completed"),
                TimeoutState::Expiring(link) => {
                    if link_finished(&core, &link) {
                        this.inner.set(None);
                        *this.state = TimeoutState::Done;
                        *this.expired = true;
                        set_phase(this.shared, Phase::Expired);
                        return Poll::Ready(Err(TimeoutError));
                    }
                    // Keep the link, so that cancelling us still reaches what we wait for.
                    core.set_awaiting_of_current(link);
                    return Poll::Pending;
                }
                TimeoutState::Active => {}
            }
            // The outer deadline is checked before the inner future is polled, so when nested
            // timeouts expire together the outermost reports.
            if *this.zero == Zero::Future || (!*this.unbounded && timer.has_fired()) {
                timer.cancel();
                match this.linked.take().filter(|l| !link_finished(&core, l)) {
                    Some(link) if cancel_link(&core, &link) => {
                        *this.state = TimeoutState::Expiring(link);
                        set_phase(this.shared, Phase::Expiring);
                        continue;
                    }
                    _ => {
                        this.inner.set(None);
                        *this.state = TimeoutState::Done;
                        *this.expired = true;
                        set_phase(this.shared, Phase::Expired);
                        return Poll::Ready(Err(TimeoutError));
                    }
                }
            }
            let before = core.take_awaiting_of_current();
            set_in_body(this.shared, true);
            let polled = this.inner.as_mut().as_pin_mut().expect("inner future present while active").poll(cx);
            set_in_body(this.shared, false);
            let linked = core.take_awaiting_of_current();
            // The step's link is both what was linked before the inner poll and what it linked
            // (`Several` if they differ); with neither, it is unset already: it was just taken.
            for link in [before, linked.clone()].into_iter().flatten() {
                core.set_awaiting_of_current(link);
            }
            *this.linked = linked;
            return match polled {
                Poll::Ready(out) => {
                    timer.cancel();
                    this.inner.set(None);
                    *this.state = TimeoutState::Done;
                    set_phase(this.shared, Phase::Finished);
                    Poll::Ready(Ok(out))
                }
                Poll::Pending if *this.zero == Zero::Task => {
                    // wait_for(task, 0) on a task that has not finished: expire at the next poll,
                    // one iteration from now, which cancels the task and waits for it (asyncio
                    // 3.12's `_cancel_and_wait` takes as many iterations).
                    *this.zero = Zero::No;
                    timer.expire_now();
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => {
                    if let Some(sh) = this.shared.as_deref() {
                        // A deadline the body moved; and the waker a move from elsewhere wakes.
                        apply_move(sh, timer, this.when, this.unbounded, &core);
                        {
                            let mut s = lock(sh);
                            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                                s.waker = Some(cx.waker().clone());
                            }
                        }
                        if !*this.unbounded && timer.has_fired() {
                            // Moved into the past: the body ends where it just suspended.
                            continue;
                        }
                    }
                    if !*this.unbounded {
                        timer.poll_fired(cx);
                        timer.set_link(this.linked.clone());
                    }
                    Poll::Pending
                }
            };
        }
    }
}

/// Applies a deadline moved by a [`TimeoutHandle`] to the timeout's timer (cancelled, to be armed
/// anew when the body is pending), unless that timer already fired: the expiry stands.
fn apply_move(shared: &Mutex<Shared>, timer: &mut TimerSlot, when: &mut When, unbounded: &mut bool, core: &Core) {
    let moved = {
        let mut s = lock(shared);
        if !std::mem::take(&mut s.moved) {
            return;
        }
        s.deadline
    };
    if !*unbounded && timer.has_fired() {
        return;
    }
    timer.cancel();
    match moved {
        Some(at) => {
            *unbounded = false;
            *when = When::At(at);
            timer.deadline = core.clock.ns_of(at);
            if timer.deadline <= core.clock.now_ns() {
                // Passed already: it counts as fired (asyncio's `reschedule` queues
                // `_on_timeout` at once), so the body goes no further than where it suspends.
                timer.expire_now();
            }
        }
        None => *unbounded = true,
    }
}

/// Records a timeout's phase for its handles, if it has any.
fn set_phase(shared: &Option<Arc<Mutex<Shared>>>, phase: Phase) {
    if let Some(sh) = shared {
        lock(sh).phase = phase;
    }
}

/// Records whether a timeout is polling its body, if it has handles.
fn set_in_body(shared: &Option<Arc<Mutex<Shared>>>, in_body: bool) {
    if let Some(sh) = shared {
        lock(sh).in_body = in_body;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sleep_is_small() {
        // A million sleeping tasks each hold one: keep it to a cache line.
        assert!(std::mem::size_of::<super::Sleep>() <= 64, "{}", std::mem::size_of::<super::Sleep>());
        assert_eq!(std::mem::size_of::<super::TimerSlot>(), 32);
    }
}
