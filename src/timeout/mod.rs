//! Timeouts: [`timeout`], [`timeout_at`], [`timeout_with`] (and its [`TimeoutHandle`]),
//! [`wait_for`] (asyncio's `asyncio.timeout`, `Timeout.when/reschedule/expired` and
//! `asyncio.wait_for`).
//!
//! A [`Timeout`] runs its body inside the caller's task, with a timer (a handle record in the
//! timer heap, [`TimerSlot`]) whose action cancels what the body awaits and wakes the task. Its
//! handles (`handle.rs`) are here only once one is asked for.
//!
//! # Invariants
//! - A timeout's deadline is never earlier than asyncio's, which is `loop.time() + delay` when
//!   `timeout()` is called. Inside a running loop, the delay counts from the call (outside one,
//!   from the first poll), but the clock is *read* only when the deadline is needed: see below.
//! - A [`TimeoutHandle`] may move the deadline (or remove it: `None`, as `timeout(None)` starts);
//!   the timeout applies a move when its body suspends, or at its next poll if the move came from
//!   elsewhere, unless its timer fired first (the expiry stands).
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
//!   many were) and keeps the last few readings
//!   ([`TimeoutClock`](crate::runtime::timeout_clock::TimeoutClock)); a reading taken after the
//!   creation gives a deadline at or after asyncio's, and the same one on virtual time, where the
//!   clock does not move within an iteration.
//! - asked for with [`Timeout::deadline`] (or a handle made, [`Timeout::handle`],
//!   [`timeout_with`]) before: fixed then, by the same two rules.
//!
//! A timeout tells the two cases apart by the thread's *timeout epoch*, which moves on at the
//! end of each iteration in which a timeout was created (`runtime::running::end_iteration`): the
//! loop pays one thread-local load per iteration for it, and nothing else when no timeout is made.
//!
//! `timeout(Duration::ZERO)`, `timeout_at` and `wait_for(x, 0)` have their deadline at once;
//! `timeout(None)` and `timeout_at(None)` have none (nor a timer) until a handle sets one.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::error::TimeoutError;
use crate::runtime::task::Link;
use crate::runtime::Core;
use crate::time::{PastDue, TimerSlot};

mod handle;

pub use handle::TimeoutHandle;
use handle::{Phase, Shared};

/// Runs `fut` with a deadline `delay` from now: `Ok(output)`, or `Err(TimeoutError)` and `fut`
/// dropped (asyncio's `async with asyncio.timeout(delay)`). `delay` is a `Duration`, or `None`
/// for no deadline (asyncio's `timeout(None)`, for a deadline set later through
/// [`Timeout::handle`]).
///
/// Inside a running loop the delay counts from this call (outside one, from the first poll), as
/// asyncio's `timeout()` fixes `loop.time() + delay` when called; but the clock is read only if
/// `fut` is not ready at its first poll, so a timeout around a future that is ready at once costs
/// no timer and no clock read. The deadline is then never earlier than asyncio's: it counts from
/// the moment `fut` was found pending (in the iteration that created the timeout) or from the
/// end of that iteration (in a later one), and is the same on virtual time. A deadline already
/// passed still lets `fut` run until its first suspension. When nested timeouts expire together,
/// the outermost reports. If `fut` was awaiting a [`Task`] (directly or through its own
/// futures), the task is cancelled and the timeout waits for it to finish before returning.
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
pub fn timeout<F: IntoFuture>(delay: impl Into<Option<Duration>>, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(delay.into().map_or(Deadline::Never, Deadline::after), fut.into_future(), Zero::No)
}

/// Like [`timeout`], and gives the body a [`TimeoutHandle`] to read, move or remove its own
/// deadline (asyncio's `async with asyncio.timeout(delay) as cm:` and `cm.reschedule(when)`).
///
/// `body` is called at once with the handle and returns the future to run. The handle may be
/// cloned and kept past the timeout: [`expired`](TimeoutHandle::expired) then tells whether the
/// deadline ended it. Inside a running loop, the deadline is fixed (the clock read) here, for
/// the handle to report it.
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
#[inline]
pub fn timeout_at<F: IntoFuture>(deadline: impl Into<Option<Instant>>, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(deadline.into().map_or(Deadline::Never, Deadline::At), fut.into_future(), Zero::No)
}

/// Waits for a future or a task with a timeout; on timeout cancels it (a task: waits until it
/// is cancelled) and returns `Err(TimeoutError)` (asyncio 3.12's `asyncio.wait_for`).
///
/// A plain future runs inside the caller's task. With a zero timeout a plain future never
/// starts, and a task is cancelled at once unless it already finished, in which case its
/// outcome is returned (asyncio's `wait_for(x, 0)`); "a task" is a [`Task`](crate::Task) or a
/// `&mut Task` (not a future that wraps one). Awaiting a `Task` gives `Result<T, TaskError>`
/// inside the `Ok`. The deadline is worked out as [`timeout`]'s.
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
pub fn wait_for<F: IntoFuture>(fut: F, timeout: Duration) -> Timeout<F::IntoFuture> {
    let zero = match (timeout.is_zero(), crate::task::is_task_handle::<F::IntoFuture>()) {
        (false, _) => Zero::No,
        (true, true) => Zero::Task,
        (true, false) => Zero::Future,
    };
    Timeout::new(Deadline::after(timeout), fut.into_future(), zero)
}

/// A timeout's deadline, as far as it is known.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// This instant: given (`timeout_at`), fixed since, or set by a handle.
    At(Instant),
    /// `d` after the first poll (created outside a running loop).
    After(Duration),
    /// `d` after the timeout's creation on the loop in registry slot `slot`, in an iteration of
    /// timeout epoch `epoch` (see `runtime::running::note_timeout`); fixed when first needed (see
    /// the module docs).
    Lazy { d: Duration, epoch: u32, slot: u16 },
    /// No deadline: `timeout(None)`, `timeout_at(None)`, or removed by a handle (the timer is then
    /// never armed).
    Never,
}

/// A deadline worked out at a timeout's first poll.
enum Resolved {
    /// This loop time (it may have passed).
    Known(u64),
    /// `d` from now, created in this very iteration: not passed, and the clock need not be
    /// read unless the timer is armed.
    Fresh(Duration),
    /// None.
    Never,
}

impl Deadline {
    /// The deadline of a timeout `d` from now: lazy inside a running loop (a zero delay is
    /// fixed at once: it has passed by the first poll, and `deadline()` reports it).
    #[inline]
    fn after(d: Duration) -> Deadline {
        if d.is_zero() {
            return crate::runtime::running::with_running(|core| Deadline::At(core.clock.instant(core.clock.now_ns())))
                .unwrap_or(Deadline::After(d));
        }
        match crate::runtime::running::note_timeout() {
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
            Deadline::Lazy { d, epoch, slot } if slot == core.remote.slot() => {
                if epoch == crate::runtime::running::timeout_epoch() {
                    Resolved::Fresh(d)
                } else {
                    let created = core.timeout_clock.created_by(epoch).unwrap_or_else(|| core.clock.now_ns());
                    Resolved::Known(created.saturating_add(crate::runtime::clock::duration_ns(d)))
                }
            }
            // Created on another loop: count from now (later than asyncio, never earlier).
            Deadline::Lazy { d, .. } => Resolved::Known(core.deadline_after(d)),
            Deadline::Never => Resolved::Never,
        }
    }

    /// The deadline in `core`'s loop time, read from the clock if it is still fresh; `None` if
    /// there is none.
    fn fix(self, core: &Core) -> Option<u64> {
        match self.resolve(core) {
            Resolved::Known(ns) => Some(ns),
            Resolved::Fresh(d) => Some(core.deadline_after(d)),
            Resolved::Never => None,
        }
    }
}

/// Records that a timeout's deadline is now fixed at `at` (for [`Timeout::deadline`]), and tells
/// its handles, if any, unless one of them moved it meanwhile (the move wins).
fn settle(deadline: &Cell<Deadline>, shared: Option<&Mutex<Shared>>, at: Instant) {
    deadline.set(Deadline::At(at));
    if let Some(sh) = shared {
        handle::publish(sh, at);
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
    /// The future of [`timeout`], [`timeout_at`], [`timeout_with`] and [`wait_for`].
    ///
    /// Each poll runs three steps:
    ///
    /// 1. **arm** (first poll only): work the deadline out; if it has passed, queue the expiry
    ///    now, ahead of what the body schedules; else take the timer's place among equal
    ///    deadlines (a sequence number) and nothing more; with no deadline, nothing at all. Then
    ///    (every poll, with handles) apply a deadline a [`TimeoutHandle`] moved from elsewhere;
    /// 2. **expire**: if the timer fired, cancel what the body awaits and wait for it to finish,
    ///    or finish with `Err(TimeoutError)`;
    /// 3. **poll the body**, tracking what it awaits (its await link); ready: cancel the timer
    ///    (if armed) and finish; pending: apply a deadline the body moved (if it moved it into
    ///    the past, back to step 2), then arm the timer (reading the clock if the deadline was
    ///    still lazy; not at all with no deadline) and tell it what to cancel.
    ///
    /// The common first poll (a delay counted from this iteration, no handles, not
    /// `wait_for(_, 0)`) takes these steps in one go: it takes the place among equal deadlines,
    /// polls the body, and makes the timer only if the body is pending.
    ///
    /// | state | on a poll | next state |
    /// |---|---|---|
    /// | `Active`, timer unarmed | body ready | `Done` with `Ok`: no timer, no clock read |
    /// | `Active`, timer unarmed | body pending | `Active`, timer armed (none if no deadline) |
    /// | `Active`, timer armed | timer not fired; body ready | `Done` with `Ok`, timer cancelled |
    /// | `Active`, timer armed | timer fired, body awaits a task or gather | `Expiring` (it is cancelled) |
    /// | `Active`, timer armed | timer fired, nothing to wait for | `Done` with `Err(TimeoutError)` |
    /// | `Active` | deadline moved (by a handle) | `Active`, timer unarmed, or fired if the deadline passed |
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
        // What it shares with its `TimeoutHandle`s, once one was asked for.
        shared: Option<Arc<Mutex<Shared>>>,
    }
}

impl<F> Timeout<F> {
    fn new(deadline: Deadline, inner: F, zero: Zero) -> Timeout<F> {
        Timeout {
            inner: Some(inner),
            deadline: Cell::new(deadline),
            timer: None,
            state: State::Active { linked: None },
            zero,
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

    /// Shares this timeout's state with handles through `shared`, publishing its deadline (fixed
    /// now if it was lazy and its loop runs here).
    fn attach(&mut self, shared: Arc<Mutex<Shared>>) {
        handle::lock(&shared).deadline = self.deadline();
        self.shared = Some(shared);
    }

    /// Returns the deadline (asyncio's `Timeout.when()`): given, or fixed already, or fixed now
    /// if the timeout was created on the loop running on this thread; `None` if there is none
    /// (`timeout(None)`), for one created outside a running loop and not polled yet, or asked
    /// from off its loop before its first poll.
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
            Deadline::After(_) | Deadline::Never => None,
            lazy @ Deadline::Lazy { slot, .. } => {
                let at = crate::runtime::running::with_running(|core| {
                    (core.remote.slot() == slot).then(|| lazy.fix(core).map(|ns| core.clock.instant(ns)))
                })
                .flatten()
                .flatten()?;
                settle(&self.deadline, self.shared.as_deref(), at);
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
        let core = crate::runtime::running::current();
        let shared = this.shared.as_deref();
        // 0. The common case, taken apart: the first poll of a timeout created in this iteration
        //    with a delay, no handles and no zero rule. Its deadline cannot have passed, so it
        //    only takes its place among equal deadlines and polls the body; a timer is made
        //    only if the body is pending (steps 1 and 3, with nothing else to do in between).
        if this.timer.is_none()
            && shared.is_none()
            && *this.zero == Zero::No
            && matches!(this.state, State::Active { .. })
            && matches!(this.deadline.get().resolve(&core), Resolved::Fresh(_))
        {
            let seq = core.take_seq();
            if let Poll::Ready(out) = poll_body(&core, this.inner.as_mut(), this.state, cx) {
                this.inner.set(None);
                *this.state = State::Done { expired: false };
                return Poll::Ready(Ok(out));
            }
            let timer = this.timer.insert(TimerSlot::reserved(&core, 0, PastDue::Heap, seq));
            timer.expire = true;
            schedule(&core, this.deadline, timer, this.state, None, cx);
            return Poll::Pending;
        }
        // 1. The first poll arms. (A later one first looks whether the timer fired; at the
        //    first it cannot have, nothing ran since it was armed, unless a handle moved the
        //    deadline into the past.)
        let first = this.timer.is_none();
        if first {
            arm(&core, this.deadline, this.timer, *this.zero, shared, cx);
        }
        let timer = this.timer.as_mut().expect("armed above");
        if let Some(sh) = shared {
            // A deadline moved from elsewhere since the last poll (or before the first).
            handle::apply_move(sh, timer, this.deadline, &core);
        }
        // (A timeout that finished at its first poll, in step 0, has no timer: polled again, it
        // goes to step 2, which reports the misuse.)
        let mut check =
            !first || *this.zero == Zero::Future || shared.is_some() || matches!(this.state, State::Done { .. });
        loop {
            // 2. An expired timeout cancels what the body awaits and waits for it, or reports.
            let done = if check { expire(&core, this.state, timer, this.zero) } else { None };
            check = true;
            if let Some(done) = done {
                if matches!(this.state, State::Done { .. }) {
                    this.inner.set(None);
                    handle::set_phase(shared, Phase::Expired);
                } else {
                    handle::set_phase(shared, Phase::Expiring);
                }
                return done.map(Err);
            }
            // 3. Poll the body, tracking what it awaits.
            handle::set_in_body(shared, true);
            let polled = poll_body(&core, this.inner.as_mut(), this.state, cx);
            handle::set_in_body(shared, false);
            return match polled {
                Poll::Ready(out) => {
                    timer.cancel();
                    this.inner.set(None);
                    *this.state = State::Done { expired: false };
                    handle::set_phase(shared, Phase::Finished);
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
                    if let Some(sh) = shared {
                        // A deadline the body moved; and the waker a move from elsewhere wakes.
                        handle::apply_move(sh, timer, this.deadline, &core);
                        handle::keep_waker(sh, cx.waker());
                        if timer.has_fired() {
                            // Moved into the past: the body ends where it just suspended.
                            continue;
                        }
                    }
                    schedule(&core, this.deadline, timer, this.state, shared, cx);
                    Poll::Pending
                }
            };
        }
    }
}

/// Step 1, at the first poll: creates the timer. A deadline that has passed already is armed
/// now (queued with `call_soon`), before the body first runs, as asyncio's `__aenter__` does; a
/// future one only takes its place among equal deadlines, and is armed if the body is pending.
/// With handles, a lazy deadline is fixed now, for them to report it.
#[inline]
fn arm(
    core: &Core,
    deadline: &Cell<Deadline>,
    timer: &mut Option<TimerSlot>,
    zero: Zero,
    shared: Option<&Mutex<Shared>>,
    cx: &mut Context<'_>,
) {
    let (ns, past_due) = match deadline.get().resolve(core) {
        // Created in this iteration from a delay greater than zero: it will count from a
        // moment no earlier than now, so it has not passed; it is worked out (and the clock
        // read) only if the body is pending (`schedule`), or now if handles report it.
        Resolved::Fresh(d) => {
            let ns = match shared {
                Some(_) => {
                    let ns = core.deadline_after(d);
                    settle(deadline, shared, core.clock.instant(ns));
                    ns
                }
                None => 0,
            };
            (ns, PastDue::Heap)
        }
        Resolved::Known(ns) => {
            if !matches!(deadline.get(), Deadline::At(_)) {
                settle(deadline, shared, core.clock.instant(ns)); // for `deadline()`
            }
            (ns, PastDue::Soon)
        }
        // No deadline: a timer that is never armed, unless a handle sets one.
        Resolved::Never => (u64::MAX, PastDue::Soon),
    };
    let timer = timer.insert(TimerSlot::new(core, ns, past_due));
    timer.expire = true;
    if zero != Zero::No || matches!(deadline.get(), Deadline::Never) {
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

/// Step 3: polls the body, and records in `state` what it awaits (its await link). The task's
/// own link for the step is both what was linked before the body's poll and what the body
/// linked (`Link::Several` if they differ).
#[inline(always)]
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
    // With neither (the usual case), the link is unset already: it was just taken (or never set).
    if let Some(link) = before {
        core.set_awaiting_of_current(link);
    }
    if let Some(link) = &linked {
        core.set_awaiting_of_current(link.clone());
    }
    if let State::Active { linked: l } = state {
        *l = linked;
    }
    polled
}

/// Step 3, the body pending: arms the timer unless it is armed already (working the deadline
/// out now if it was still lazy: `d` from now, which has not passed, so the timer goes through
/// the heap without a second look at the clock), makes it wake `cx`'s waker, and tells it what
/// the body awaits, for the expiry to cancel. With no deadline, there is no timer to arm.
fn schedule(
    core: &Core,
    deadline: &Cell<Deadline>,
    timer: &mut TimerSlot,
    state: &State,
    shared: Option<&Mutex<Shared>>,
    cx: &mut Context<'_>,
) {
    if !timer.is_armed() {
        let d = deadline.get();
        let Some(ns) = d.fix(core) else { return }; // no deadline
        if !matches!(d, Deadline::At(_)) {
            settle(deadline, shared, core.clock.instant(ns)); // for `deadline()`
        }
        timer.deadline = ns;
    }
    timer.poll_fired_on(core, cx);
    if let State::Active { linked } = state {
        timer.set_link(linked.clone());
    }
}
