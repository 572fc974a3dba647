//! Timeouts: [`timeout`], [`timeout_at`], [`wait_for`] (asyncio's `asyncio.timeout` and
//! `asyncio.wait_for`).
//!
//! A [`Timeout`] runs its body inside the caller's task, with a timer (a handle record in the
//! timer heap, [`TimerSlot`]) whose action cancels what the body awaits and wakes the task.
//!
//! # Invariants
//! - A timeout's deadline is never earlier than asyncio's, which is `loop.time() + delay` when
//!   `timeout()` is called. Inside a running loop, the delay counts from the call (outside one,
//!   from the first poll), but the clock is *read* only when the deadline is needed: see below.
//! - A deadline already passed at the first poll is armed before the body first runs, as
//!   asyncio's `__aenter__` does (`call_soon(_on_timeout)`): the expiry is queued ahead of
//!   whatever the body schedules, so the body runs until its first suspension and is
//!   interrupted there, even at a `sleep(0)`.
//! - On expiry, a timeout first checks its own deadline, then the inner future: when nested
//!   timeouts expire together the outermost reports. If the inner future was awaiting a task (or
//!   a gather), that is cancelled and the timeout waits until it has finished before reporting,
//!   so it is not running any more when `Err(TimeoutError)` arrives.
//!
//! # A timeout whose body is ready costs no timer and no clock read
//!
//! Most timeouts end with their body ready at its first poll. Such a timeout takes a sequence
//! number (its place among equal deadlines, as if armed when it was created) and nothing else:
//! no timer, and no reading of the clock, which would be most of its cost (a clock read costs
//! more than the rest of a ready timeout together).
//!
//! The deadline of `timeout(d)` created in a running loop is `d` after its creation. It is
//! worked out only when needed, and never earlier than asyncio's:
//! - first polled in the iteration that created it and pending then (the usual case): `d` from
//!   that moment, read then. The body has run in between, so this is at or after asyncio's
//!   deadline; on virtual time the clock has not moved, and it is the same.
//! - first polled in a later iteration: `d` from the end of the iteration that created it. The
//!   loop reads its clock at the end of an iteration in which a timeout was created (once, however
//!   many were) and keeps the last few readings ([`TimeoutClock`]); a reading taken after the
//!   creation gives a deadline at or after asyncio's, and the same one on virtual time, where the
//!   clock does not move within an iteration.
//!
//! A timeout tells the two cases apart by the thread's *timeout epoch*, which moves on at the
//! end of each iteration in which a timeout was created (`context::end_iteration`): the loop
//! pays one thread-local load per iteration for it, and nothing else when no timeout is made.
//! - asked for with [`Timeout::deadline`] before: fixed then, by the same two rules.
//!
//! `timeout(Duration::ZERO)`, `timeout_at` and `wait_for(x, 0)` have their deadline at once.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::error::TimeoutError;
use crate::join::Awaitable;
use crate::runtime::Core;
use crate::task::Link;
use crate::time::{PastDue, TimerSlot};

/// Runs `fut` with a deadline `delay` from now: `Ok(output)`, or `Err(TimeoutError)` and `fut`
/// dropped (asyncio's `async with asyncio.timeout(delay)`).
///
/// Inside a running loop the delay counts from this call (outside one, from the first poll), as
/// asyncio's `timeout()` fixes `loop.time() + delay` when called; but the clock is read only if
/// `fut` is not ready at its first poll, so a timeout around a future that is ready at once costs
/// no timer and no clock read. The deadline is then never earlier than asyncio's: it counts from
/// the moment `fut` was found pending (in the iteration that created the timeout) or from the
/// end of that iteration (in a later one), and is the same on virtual time. A deadline already
/// passed still lets `fut` run until its first suspension. When nested timeouts expire together, the outermost reports. If `fut` was
/// awaiting a [`Task`] (directly or through its own futures), the task is cancelled and the
/// timeout waits for it to finish before returning.
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
#[inline]
pub fn timeout<F: IntoFuture>(delay: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(Deadline::after(delay), fut.into_future(), Zero::No)
}

/// Like [`timeout`], with an absolute deadline in loop time (asyncio's `timeout_at`).
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
#[inline]
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(Deadline::At(deadline), fut.into_future(), Zero::No)
}

/// Waits for a future or a task with a timeout; on timeout cancels it (a task: waits until it
/// is cancelled) and returns `Err(TimeoutError)` (asyncio 3.12's `asyncio.wait_for`).
///
/// A plain future runs inside the caller's task. With a zero timeout a plain future never
/// starts, and a task is cancelled at once unless it already finished, in which case its
/// outcome is returned (asyncio's `wait_for(x, 0)`). Awaiting a [`Task`](crate::Task) gives
/// `Result<T, TaskError>` inside the `Ok`.
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
#[inline]
pub fn wait_for<A: Awaitable>(aw: A, timeout: Duration) -> Timeout<A::Future> {
    let zero = match (timeout.is_zero(), A::IS_TASK) {
        (false, _) => Zero::No,
        (true, true) => Zero::Task,
        (true, false) => Zero::Future,
    };
    Timeout::new(Deadline::after(timeout), aw.into_awaitable(), zero)
}

/// A timeout's deadline, as far as it is known.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// This instant: given (`timeout_at`), or fixed since.
    At(Instant),
    /// `d` after the first poll (created outside a running loop).
    After(Duration),
    /// `d` after the timeout's creation on the loop in registry slot `slot`, in an iteration of
    /// timeout epoch `epoch` (see `context::note_timeout`); fixed when first needed (see the
    /// module docs).
    Lazy { d: Duration, epoch: u32, slot: u16 },
}

/// A deadline worked out at a timeout's first poll.
enum Resolved {
    /// This loop time (it may have passed).
    Known(u64),
    /// `d` from now, created in this very iteration: not passed, and the clock need not be
    /// read unless the timer is armed.
    Fresh(Duration),
}

impl Deadline {
    /// The deadline of a timeout `d` from now: lazy inside a running loop (a zero delay is
    /// fixed at once: it has passed by the first poll, and `deadline()` reports it).
    #[inline]
    fn after(d: Duration) -> Deadline {
        if d.is_zero() {
            return crate::context::with_running(|core| Deadline::At(core.clock.instant(core.clock.now_ns())))
                .unwrap_or(Deadline::After(d));
        }
        match crate::context::note_timeout() {
            Some((slot, epoch)) => Deadline::Lazy { d, epoch, slot },
            None => Deadline::After(d),
        }
    }

    /// Works the deadline out on `core`, the loop polling the timeout.
    #[inline]
    fn resolve(self, core: &Core) -> Resolved {
        match self {
            Deadline::At(at) => Resolved::Known(core.clock.ns_of(at)),
            Deadline::After(d) => Resolved::Known(core.deadline_after(d)),
            Deadline::Lazy { d, epoch, slot } if slot == core.remote.slot => {
                if epoch == crate::context::timeout_epoch() {
                    Resolved::Fresh(d)
                } else {
                    let created = core.timeout_clock.created_by(epoch).unwrap_or_else(|| core.clock.now_ns());
                    Resolved::Known(created.saturating_add(crate::clock::duration_ns(d)))
                }
            }
            // Created on another loop: count from now (later than asyncio, never earlier).
            Deadline::Lazy { d, .. } => Resolved::Known(core.deadline_after(d)),
        }
    }

    /// The deadline in `core`'s loop time, read from the clock if it is still fresh.
    fn fix(self, core: &Core) -> u64 {
        match self.resolve(core) {
            Resolved::Known(ns) => ns,
            Resolved::Fresh(d) => core.deadline_after(d),
        }
    }
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

/// Where a [`Timeout`] is in its life (see [`Timeout`]'s state table).
enum State {
    /// Running the body; `linked` is what the body was awaiting at its last poll (a task or a
    /// gather), which an expiry cancels.
    Active { linked: Option<Link> },
    /// The deadline passed; waiting for what the body awaited to finish cancelling.
    Expiring(Link),
    /// Finished: `expired` if it returned `Err(TimeoutError)`.
    Done { expired: bool },
}

pin_project! {
    /// The future of [`timeout`], [`timeout_at`] and [`wait_for`].
    ///
    /// Each poll runs three steps:
    ///
    /// 1. **arm** (first poll only): work the deadline out; if it has passed, queue the expiry
    ///    now, ahead of what the body schedules; else take the timer's place among equal
    ///    deadlines (a sequence number) and nothing more;
    /// 2. **expire**: if the timer fired, cancel what the body awaits and wait for it to finish,
    ///    or finish with `Err(TimeoutError)`;
    /// 3. **poll the body**, tracking what it awaits (its await link); ready: cancel the timer
    ///    (if armed) and finish; pending: arm the timer (reading the clock if the deadline was
    ///    still lazy) and tell it what to cancel.
    ///
    /// | state | on a poll | next state |
    /// |---|---|---|
    /// | `Active`, timer unarmed | body ready | `Done` with `Ok`: no timer, no clock read |
    /// | `Active`, timer unarmed | body pending | `Active`, timer armed |
    /// | `Active`, timer armed | timer not fired; body ready | `Done` with `Ok`, timer cancelled |
    /// | `Active`, timer armed | timer fired, body awaits a task or gather | `Expiring` (it is cancelled) |
    /// | `Active`, timer armed | timer fired, nothing to wait for | `Done` with `Err(TimeoutError)` |
    /// | `Expiring` | what it awaited finished | `Done` with `Err(TimeoutError)` |
    /// | `Done` | any | panics |
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
        // A `Cell`: `deadline()` fixes a lazy deadline through `&self`.
        deadline: Cell<Deadline>,
        // Created at the first poll (reserved, or armed if the deadline passed); armed when the
        // body is first pending.
        timer: Option<TimerSlot>,
        state: State,
        zero: Zero,
    }
}

impl<F> Timeout<F> {
    #[inline]
    fn new(deadline: Deadline, inner: F, zero: Zero) -> Timeout<F> {
        Timeout {
            inner: Some(inner),
            deadline: Cell::new(deadline),
            timer: None,
            state: State::Active { linked: None },
            zero,
        }
    }

    /// Returns the deadline (asyncio's `Timeout.when()`): given, or fixed already, or fixed now
    /// if the timeout was created on the loop running on this thread; `None` for one created
    /// outside a running loop and not polled yet, or asked from off its loop before its first
    /// poll.
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
        match self.deadline.get() {
            Deadline::At(at) => Some(at),
            Deadline::After(_) => None,
            lazy @ Deadline::Lazy { slot, .. } => {
                let at = crate::context::with_running(|core| {
                    (core.remote.slot == slot).then(|| core.clock.instant(lazy.fix(core)))
                })
                .flatten()?;
                self.deadline.set(Deadline::At(at));
                Some(at)
            }
        }
    }
}

impl<F> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Active { .. } => "active",
            State::Expiring(_) => "expiring",
            State::Done { expired: true } => "expired",
            State::Done { expired: false } => "finished",
        };
        f.debug_struct("Timeout").field("deadline", &self.deadline()).field("state", &state).finish()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let core = crate::context::current();
        // 1. The first poll arms. (A later one first looks whether the timer fired; at the
        //    first it cannot have: nothing ran since it was armed.)
        let first = this.timer.is_none();
        if first {
            arm(&core, this.deadline, this.timer, *this.zero, cx);
        }
        let timer = this.timer.as_mut().expect("armed above");
        // 2. An expired timeout cancels what the body awaits and waits for it, or reports.
        let done = if first && *this.zero != Zero::Future { None } else { expire(&core, this.state, timer, this.zero) };
        if let Some(done) = done {
            if matches!(this.state, State::Done { .. }) {
                this.inner.set(None);
            }
            return done.map(Err);
        }
        // 3. Poll the body, tracking what it awaits.
        match poll_body(&core, this.inner.as_mut(), this.state, cx) {
            Poll::Ready(out) => {
                timer.cancel();
                this.inner.set(None);
                *this.state = State::Done { expired: false };
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
                schedule(&core, this.deadline, timer, this.state, cx);
                Poll::Pending
            }
        }
    }
}

/// Step 1, at the first poll: creates the timer. A deadline that has passed already is armed
/// now (queued with `call_soon`), before the body first runs, as asyncio's `__aenter__` does; a
/// future one only takes its place among equal deadlines, and is armed if the body is pending.
#[inline]
fn arm(core: &Rc<Core>, deadline: &Cell<Deadline>, timer: &mut Option<TimerSlot>, zero: Zero, cx: &mut Context<'_>) {
    let (ns, past_due) = match deadline.get().resolve(core) {
        // Created in this iteration from a delay greater than zero: it will count from a
        // moment no earlier than now, so it has not passed; it is worked out (and the clock
        // read) only if the body is pending (`schedule`).
        Resolved::Fresh(_) => (0, PastDue::Heap),
        Resolved::Known(ns) => {
            if !matches!(deadline.get(), Deadline::At(_)) {
                deadline.set(Deadline::At(core.clock.instant(ns))); // for `deadline()`
            }
            (ns, PastDue::Soon)
        }
    };
    let timer = timer.insert(TimerSlot::new(core, ns, past_due));
    timer.expire = true;
    if zero != Zero::No {
        return; // wait_for(x, 0): the zero path decides, at the expire and poll steps
    }
    if past_due == PastDue::Soon && ns <= core.clock.now_ns() {
        timer.poll_fired_on(core, cx);
    } else {
        timer.reserve_seq(core);
    }
}

/// Step 2: finishes the timeout if its deadline passed (`Some(Ready(()))`: report the timeout)
/// or keeps it waiting for what the body awaited to finish cancelling (`Some(Pending)`); `None`
/// if the body is to be polled.
fn expire(core: &Core, state: &mut State, timer: &mut TimerSlot, zero: &Zero) -> Option<Poll<TimeoutError>> {
    let link = match state {
        State::Done { .. } => panic!("aioloop: a `Timeout` was polled after it completed"),
        State::Expiring(link) => link.clone(),
        // The outer deadline is checked before the inner future is polled, so when nested
        // timeouts expire together the outermost reports.
        State::Active { linked } if *zero == Zero::Future || timer.has_fired() => {
            timer.cancel();
            match linked.take().filter(|l| !l.finished(core)) {
                Some(link) if link.cancel(core) => {
                    *state = State::Expiring(link.clone());
                    link
                }
                _ => {
                    *state = State::Done { expired: true };
                    return Some(Poll::Ready(TimeoutError));
                }
            }
        }
        State::Active { .. } => return None,
    };
    if link.finished(core) {
        *state = State::Done { expired: true };
        return Some(Poll::Ready(TimeoutError));
    }
    // Keep the link, so that cancelling us still reaches what we wait for.
    core.set_awaiting_of_current(link);
    Some(Poll::Pending)
}

/// Step 3: polls the body, and records in `state` what it awaits (its await link), leaving the
/// task's own link as the body left it (or as it was, if the body set none).
fn poll_body<F: Future>(
    core: &Core,
    inner: Pin<&mut Option<F>>,
    state: &mut State,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    // Usually the task has no link, and the body sets none: then there is nothing to look up.
    let before = if core.current_may_await() { core.take_awaiting_of_current() } else { None };
    let polled = inner.as_pin_mut().expect("inner future present while active").poll(cx);
    let linked = if core.current_may_await() { core.take_awaiting_of_current() } else { None };
    if linked.is_some() || before.is_some() {
        // (With neither, the link is unset already: it was just taken.)
        core.restore_awaiting_of_current(linked.clone().or(before));
    }
    if let State::Active { linked: l } = state {
        *l = linked;
    }
    polled
}

/// Step 3, the body pending: arms the timer unless it is armed already (working the deadline
/// out now if it was still lazy: `d` from now, which has not passed, so the timer goes through
/// the heap without a second look at the clock), makes it wake `cx`'s waker, and tells it what
/// the body awaits, for the expiry to cancel.
fn schedule(core: &Core, deadline: &Cell<Deadline>, timer: &mut TimerSlot, state: &State, cx: &mut Context<'_>) {
    if !timer.is_armed() {
        let ns = deadline.get().fix(core);
        deadline.set(Deadline::At(core.clock.instant(ns))); // for `deadline()`
        timer.deadline = ns;
    }
    timer.poll_fired_on(core, cx);
    if let State::Active { linked } = state {
        timer.set_link(linked.clone());
    }
}

/// When the timeouts created in the last few iterations were created, at the latest: the loop
/// reads its clock at the end of each iteration in which a timeout was created (once, however
/// many were), and keeps the last [`TimeoutClock::KEPT`] readings, by timeout epoch (the
/// thread's count of such iterations, `context::end_iteration`).
#[derive(Default)]
pub(crate) struct TimeoutClock {
    /// `(iteration, loop time at its end)`, the latest at `next - 1` (a ring).
    ends: Cell<[(u32, u64); TimeoutClock::KEPT]>,
    /// Where the next reading goes in `ends`.
    next: Cell<usize>,
    /// `ends` holds at least one reading. (`ends` is `(epoch, loop time at the end of the
    /// iteration)`.)
    any: Cell<bool>,
}

impl TimeoutClock {
    const KEPT: usize = 4;

    /// Records the end of the iteration in which the timeouts of `epoch` were created: loop
    /// time `now`.
    pub(crate) fn record(&self, epoch: u32, now: u64) {
        let mut ends = self.ends.get();
        ends[self.next.get()] = (epoch, now);
        self.ends.set(ends);
        self.next.set((self.next.get() + 1) % Self::KEPT);
        self.any.set(true);
    }

    /// Returns a loop time no earlier than the creation of a timeout of `epoch`: the end of the
    /// iteration that created it, or of the earliest later one kept (if the ring has moved on
    /// since, or another loop of this thread used the epoch); `None` if none is kept (the
    /// caller reads the clock).
    fn created_by(&self, epoch: u32) -> Option<u64> {
        if !self.any.get() {
            return None;
        }
        self.ends
            .get()
            .into_iter()
            .filter(|&(e, _)| e.wrapping_sub(epoch) < u32::MAX / 2)
            .min_by_key(|&(e, _)| e.wrapping_sub(epoch))
            .map(|(_, ns)| ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_of_an_earlier_epoch_is_its_end_or_a_later_one() {
        let c = TimeoutClock::default();
        assert_eq!(c.created_by(3), None);
        c.record(5, 50);
        c.record(8, 80);
        assert_eq!(c.created_by(5), Some(50));
        assert_eq!(c.created_by(6), Some(80), "a later end, never an earlier one");
        assert_eq!(c.created_by(8), Some(80));
        for i in 9..14 {
            c.record(i, u64::from(i) * 10);
        }
        assert_eq!(c.created_by(5), Some(100), "5 and 8 are gone: the earliest kept");
        assert_eq!(c.created_by(20), None, "none kept at or after it");
    }
}
