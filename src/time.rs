//! Time for tasks: [`sleep`], [`sleep_until`], [`yield_now`], and the timer a future owns
//! ([`TimerSlot`]: a timeout's, `wait`'s; a [`Sleep`] keeps a smaller one of its own).
//!
//! These are the user-facing side of the timer heap ([`timer`](crate::runtime::timer)): a `Sleep`
//! puts one entry in the heap, which holds the sleeping task's waker, and cancels it when dropped
//! (a cancelled sleep cancels its timer, asyncio's `test_sleep_cancel`). Timeouts are in
//! [`timeout`](crate::timeout).
//!
//! # Invariants
//! - A sleep never completes before its deadline: it completes when its timer fired (the loop
//!   fires a timer only once `deadline <= now`), and a zero or past deadline yields for exactly one
//!   iteration (asyncio's `sleep(0)`).
//! - A sleep's delay counts from its first poll (asyncio's `sleep` is a coroutine: `call_later`
//!   runs when it first runs).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::callbacks::Action;
use crate::runtime::task::Link;
use crate::runtime::timer::{TimerHeap, TimerKey};
use crate::runtime::Core;

/// One timer in the heap, owned by a future; dropping it cancels the timer.
///
/// It holds no reference to its loop, only the loop's registry slot, and reaches the loop through
/// the thread's running loop: so a future holding one is `Send` (it can be part of a future
/// given to [`LoopHandle::spawn`](crate::LoopHandle::spawn)). [`Sleep`] does the same with a
/// smaller record of its own ([`SleepTimer`]).
///
/// `wait`'s timer is an entry of the timer heap that holds the waiting task's waker (the heap
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
    pub(crate) expire: bool,
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
    /// Returns an unarmed timer at `deadline` (loop time) on `core`'s loop.
    #[inline]
    pub(crate) fn new(core: &Core, deadline: u64, past_due: PastDue) -> TimerSlot {
        TimerSlot { slot: core.remote.slot(), past_due, expire: false, state: Arm::Unarmed, deadline, seq: 0 }
    }

    /// A timer whose place among equal deadlines, `seq`, was taken earlier with
    /// [`Core::take_seq`] (a timeout whose body was polled before it made its timer).
    #[inline]
    pub(crate) fn reserved(core: &Core, deadline: u64, past_due: PastDue, seq: u64) -> TimerSlot {
        TimerSlot { slot: core.remote.slot(), past_due, expire: false, state: Arm::Reserved, deadline, seq }
    }

    /// Takes the timer's place among equal deadlines now, without arming it yet.
    #[inline]
    pub(crate) fn reserve_seq(&mut self, core: &Core) {
        if self.state == Arm::Unarmed {
            self.seq = core.take_seq();
            self.state = Arm::Reserved;
        }
    }

    /// Runs `f` with the timer's loop if it is the one running on this thread.
    fn with_core<R>(&self, f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
        with_loop(self.slot, f)
    }

    /// Returns the timer's loop, which must be running on this thread.
    fn core(&self) -> Rc<Core> {
        loop_at(self.slot)
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
    #[inline]
    pub(crate) fn has_fired(&mut self) -> bool {
        match self.state {
            Arm::Record(_) | Arm::Entry(_) => self.check_fired(),
            state => state == Arm::Done,
        }
    }

    /// [`has_fired`](Self::has_fired) for a scheduled timer: asks the loop.
    fn check_fired(&mut self) -> bool {
        if !self.pending(&self.core(), None) {
            self.state = Arm::Done;
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
    pub(crate) fn poll_fired_on(&mut self, core: &Core, cx: &mut Context<'_>) -> bool {
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
                // Not a timeout's (`wait`'s): the heap entry holds the waker itself.
                self.seq = seq.unwrap_or_else(|| core.take_seq());
                let key = core.timers.borrow_mut().push_wake_by_ref(self.deadline, self.seq, cx.waker());
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

    /// Returns true once the timer was armed (or fired).
    pub(crate) fn is_armed(&self) -> bool {
        matches!(self.state, Arm::Record(_) | Arm::Entry(_) | Arm::Done)
    }

    /// Cancels the timer if it is still scheduled. Off its loop's thread (or while the loop is
    /// not running) nothing can be done; the timer then fires a wake nobody waits for, or is
    /// dropped when the loop closes.
    #[inline]
    pub(crate) fn cancel(&mut self) {
        match self.state {
            Arm::Record(_) | Arm::Entry(_) => self.cancel_scheduled(),
            Arm::Reserved => self.state = Arm::Unarmed,
            Arm::Unarmed | Arm::Done => {}
        }
    }

    /// [`cancel`](Self::cancel) for a scheduled timer.
    fn cancel_scheduled(&mut self) {
        match std::mem::replace(&mut self.state, Arm::Unarmed) {
            Arm::Record(index) => {
                self.with_core(|core| core.cancel_handle((index, self.seq)));
            }
            Arm::Entry(key) => {
                let waker = self.with_core(|core| core.drop_timer(key, self.seq));
                drop(waker); // outside the loop's borrows (a foreign waker may run code)
            }
            Arm::Reserved | Arm::Unarmed => {}
            Arm::Done => self.state = Arm::Done,
        }
    }
}

/// Runs `f` with the loop in registry slot `slot` if it is the one running on this thread.
fn with_loop<R>(slot: u16, f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    crate::runtime::running::with_running(|core| (core.remote.slot() == slot).then(|| f(core))).flatten()
}

/// Returns the loop in registry slot `slot`, which must be running on this thread.
fn loop_at(slot: u16) -> Rc<Core> {
    with_loop(slot, Rc::clone).expect("aioloop: a timer was polled outside the loop it was created on")
}

impl Drop for TimerSlot {
    #[inline]
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Core {
    /// Cancels the sleep's timer at `key` (a tombstone, or a revoked wake-up if it fired) and
    /// returns the waker it held; rebuilds the heap if it is now mostly tombstones.
    pub(crate) fn cancel_timer(&self, key: TimerKey, seq: u64) -> Option<Waker> {
        let mut timers = self.timers.borrow_mut();
        let waker = timers.cancel(key, seq)?;
        self.compact_if_wanted(&mut timers);
        Some(waker)
    }

    /// [`cancel_timer`](Self::cancel_timer) for a sleep that is dropped, which needs no waker
    /// back: returns only one that must be dropped outside the loop's borrows (one that is not
    /// a task's, whose drop may run code).
    #[inline]
    pub(crate) fn drop_timer(&self, key: TimerKey, seq: u64) -> Option<Waker> {
        let mut timers = self.timers.borrow_mut();
        let waker = timers.cancel_dropped(key, seq)?;
        self.compact_if_wanted(&mut timers);
        waker
    }

    /// After a cancel: rebuilds the heap if it is now mostly tombstones. Now rather than at the
    /// next iteration, so a task that creates and cancels timers in one long poll stays small.
    fn compact_if_wanted(&self, timers: &mut TimerHeap) {
        if timers.wants_compaction() {
            let handles = self.handles.borrow();
            timers.compact(|index, seq| crate::runtime::record_is_live(&handles, index, seq));
        }
    }

    /// Runs a `Runnable::timer` entry: wakes the task of the sleep whose timer fired, unless the sleep
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
    Sleep { at: None, timer: SleepTimer::Delay(delay) }
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
    Sleep { at: Some(deadline), timer: SleepTimer::Fresh }
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
    /// The deadline, as asked: `sleep_until`'s instant (or `reset`'s), or a `sleep`'s first poll
    /// plus its delay; `None` for a `sleep` not polled yet.
    at: Option<Instant>,
    /// Its timer in the loop's heap.
    timer: SleepTimer,
}

/// Where a [`Sleep`]'s timer is in its life. 24 bytes, and the [`Sleep`] 40 (a test checks
/// both).
///
/// Why 40: a million sleeping tasks each hold a `Sleep` in their boxed future, so its size is
/// paid a million times, rounded up by the allocator to its 16-byte steps. It was 56 (a
/// 24-byte `At(Instant)`/`After(Duration)` enum, which has no niche for its tag since both
/// variants fill 16 bytes, beside the 32-byte [`TimerSlot`] shared with timeouts). The
/// benchmark's sleeping task (two `Rc`s and a `Duration` captured, then the `Sleep`) is then
/// 104 bytes with its task cell, a 112-byte allocation; at 40 it is 88 bytes, a 96-byte one.
/// (Reaching the next step down, 80, would take a 24-byte `Sleep`: an armed one needs its
/// deadline for [`Sleep::deadline`] (12 bytes of an `Instant`, padded to 16), its loop slot
/// (2) and its entry's key and sequence number (16), so that is not possible without losing
/// exactness.) What it keeps:
///
/// - The deadline once, as the `Instant` asked for (`Sleep::at`), not also as loop time: a
///   sleep arms at its first poll, when the loop time is computed anyway, and one moved by
///   `reset` (`Unarmed`) computes it again from `at` when it arms, with the same
///   [`clock`](crate::runtime::clock) conversion `reset` used. `sleep`'s delay is kept until the
///   first poll, in the variant that has no key yet.
/// - A sleep never takes a handle record, never reserves a sequence number and is never a
///   timeout's, so of [`TimerSlot`]'s five states it needs four, and of its three past-due modes
///   two; the mode is kept because a `sleep` moved by `reset` keeps its first mode.
/// - `Armed` is 19 bytes (slot 2, mode 1, key 8, seq 8), which alignment rounds to 24: the
///   enum's tag takes one of the bytes left over, so it costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SleepTimer {
    /// A `sleep` not polled yet: its delay counts from its first poll (`at` is `None`).
    Delay(Duration),
    /// A `sleep_until` not polled yet, or a sleep moved by `reset` while its loop was not
    /// running here: its first poll arms it at `at` on the loop that polls it.
    Fresh,
    /// In the heap of the loop in registry slot `slot`: entry `key`, sequence number `seq`.
    Armed { slot: u16, mode: PastDue, key: TimerKey, seq: u64 },
    /// Moved by `reset` on its loop when it held no waker: armed at `at` at its next poll.
    Unarmed { slot: u16, mode: PastDue },
    /// It fired (or its deadline had already passed when it was armed, in the `Yield` mode).
    Done { slot: u16, mode: PastDue },
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
        self.at
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
        this.at = Some(deadline);
        let (slot, mode) = match this.timer {
            SleepTimer::Armed { slot, mode, .. }
            | SleepTimer::Unarmed { slot, mode }
            | SleepTimer::Done { slot, mode } => (slot, mode),
            // Never polled: armed at its first poll, as a `sleep_until`.
            SleepTimer::Delay(_) | SleepTimer::Fresh => {
                this.timer = SleepTimer::Fresh;
                return;
            }
        };
        let Some(ns) = with_loop(slot, |core| core.clock.ns_of(deadline)) else {
            // Off its loop: nothing there can be cancelled now; a new timer is made at the next
            // poll (and polling it on another loop panics, as before).
            this.timer = SleepTimer::Fresh;
            return;
        };
        // An armed timer is re-armed at once with the waker it held, so a task parked on it
        // wakes at the new deadline, earlier or later; one that fired is armed at its next poll
        // (at `at`, whose loop time is `ns`).
        let waker = match this.timer {
            // Cancelling gives the waker back. A timer whose wake-up already ran has woken its
            // task, which will poll (and re-arm) anyway.
            SleepTimer::Armed { key, seq, .. } => with_loop(slot, |core| core.cancel_timer(key, seq)).flatten(),
            _ => None,
        };
        this.timer = SleepTimer::Unarmed { slot, mode };
        if let Some(waker) = waker {
            if let Some(core) = with_loop(slot, Rc::clone) {
                let seq = core.take_seq();
                let key = core.timers.borrow_mut().push_wake(ns, seq, waker);
                this.timer = SleepTimer::Armed { slot, mode, key, seq };
            }
        }
    }

    /// Arms the timer at `deadline` (loop time) on `core`'s loop, unless the `Yield` mode finds
    /// the deadline passed: then the sleep yields one iteration without a timer (asyncio's
    /// `sleep(0)`: a bare `yield`).
    fn arm(&mut self, core: &Core, deadline: u64, mode: PastDue, cx: &mut Context<'_>) {
        let slot = core.remote.slot();
        // Only the mode that treats a passed deadline specially reads the clock.
        if mode == PastDue::Yield && deadline <= core.clock.now_ns() {
            self.timer = SleepTimer::Done { slot, mode };
            cx.waker().wake_by_ref();
            return;
        }
        // The heap entry holds the waker itself.
        let seq = core.take_seq();
        let key = core.timers.borrow_mut().push_wake_by_ref(deadline, seq, cx.waker());
        self.timer = SleepTimer::Armed { slot, mode, key, seq };
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
        match this.timer {
            SleepTimer::Done { .. } => Poll::Ready(()),
            SleepTimer::Delay(delay) => {
                let core = crate::runtime::running::current();
                let deadline = core.deadline_after(delay);
                this.at = Some(core.clock.instant(deadline)); // for `deadline()`
                                                              // asyncio's `sleep(0)` is a bare yield, any other delay a `call_later`, even one
                                                              // that is over by the time it is armed.
                let mode = if delay.is_zero() { PastDue::Yield } else { PastDue::Heap };
                this.arm(&core, deadline, mode, cx);
                Poll::Pending
            }
            SleepTimer::Fresh => {
                // Only a `sleep_until` instant is compared with the clock.
                let core = crate::runtime::running::current();
                let at = this.at.expect("a sleep_until has its deadline");
                this.arm(&core, core.clock.ns_of(at), PastDue::Yield, cx);
                Poll::Pending
            }
            SleepTimer::Armed { slot, mode, key, seq } => {
                let core = loop_at(slot);
                if core.timers.borrow_mut().poll_pending(key, seq, cx.waker()) {
                    return Poll::Pending;
                }
                this.timer = SleepTimer::Done { slot, mode };
                Poll::Ready(())
            }
            SleepTimer::Unarmed { slot, mode } => {
                let core = loop_at(slot);
                let at = this.at.expect("a sleep that was polled has its deadline");
                this.arm(&core, core.clock.ns_of(at), mode, cx);
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    /// Cancels the timer if it is still scheduled. Off its loop's thread (or while the loop is
    /// not running) nothing can be done; the timer then fires a wake nobody waits for, or is
    /// dropped when the loop closes.
    ///
    /// Not `#[inline]`: inlined into the code that drops a sleep (the `timer` benchmark's loop),
    /// it made that loop about 12 % slower in wall-clock time for the same instructions.
    fn drop(&mut self) {
        if let SleepTimer::Armed { slot, key, seq, .. } = self.timer {
            drop_armed(slot, key, seq);
        }
    }
}

/// [`Sleep`]'s drop for an armed timer, out of line (as [`TimerSlot::cancel_scheduled`] is):
/// cancels entry `key` (with sequence number `seq`) of the loop in registry slot `slot`.
fn drop_armed(slot: u16, key: TimerKey, seq: u64) {
    let waker = with_loop(slot, |core| core.drop_timer(key, seq));
    drop(waker); // outside the loop's borrows (a foreign waker may run code)
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_sleep_is_small() {
        // A million sleeping tasks each hold one: keep it to a cache line.
        assert!(std::mem::size_of::<super::Sleep>() <= 64, "{}", std::mem::size_of::<super::Sleep>());
        // A timeout's and `wait`'s.
        assert_eq!(std::mem::size_of::<super::TimerSlot>(), 32);
        // See `SleepTimer` for why 40 (the allocator's steps).
        assert_eq!(std::mem::size_of::<super::SleepTimer>(), 24);
        assert_eq!(std::mem::size_of::<super::Sleep>(), 40);
    }
}
