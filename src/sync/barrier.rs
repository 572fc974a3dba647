//! [`Barrier`]: tasks wait until `parties` of them have arrived, then all go on (asyncio 3.11's
//! `locks.Barrier`, itself `threading.Barrier`'s port).
//!
//! # States
//!
//! ```text
//!   Filling ── the last party arrives ──▶ Draining ── the last party leaves ──▶ Filling
//!   any ── reset() ──▶ Resetting (parties inside) ── the last party leaves ──▶ Filling
//!                  └─▶ Filling (nobody inside)
//!   any ── abort() ──▶ Broken
//! ```
//!
//! A task in [`wait`](Barrier::wait) first waits while the barrier drains or resets (it belongs
//! to the next round), fails at once if it is broken, then takes the next arrival index. The
//! last party to arrive switches to `Draining`, wakes everyone and returns without waiting; the
//! others wait while the barrier is `Filling`, and when they run they re-read the state:
//! `Draining` returns their index, `Resetting` or `Broken` fails with [`BrokenBarrier`]. The
//! last one to leave (`count` back to 0) turns `Draining` or `Resetting` into `Filling` and
//! wakes the tasks held for the next round.
//!
//! Everything is decided when a woken task *runs*, not when it is woken, as in asyncio (where
//! each step is a `Condition.wait_for`): a `reset` between the last arrival and the others'
//! turn breaks them too. asyncio's `reset()` and `abort()` are coroutines because they take the
//! condition's lock, but that lock is never held across a suspension, so they never wait; here
//! they are plain methods with the same effect.
//!
//! A party that is cancelled while it waits leaves: before it took an index it only leaves the
//! wait list; after, it also counts as left (asyncio's `finally` in `wait()`), so the barrier
//! needs one more arrival to trip, or, while draining, returns to `Filling` without it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{Ticket, WaitList};

/// A meeting point for a fixed number of tasks (asyncio's `Barrier`): each
/// [`wait`](Barrier::wait)s until `parties` tasks are waiting, then all go on, each with its
/// arrival index; the barrier is then ready for the next round.
///
/// # Examples
///
/// ```
/// use aioloop::sync::Barrier;
/// aioloop::run(async {
///     let barrier = Barrier::new(3);
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             aioloop::spawn(async move { b.wait().await.unwrap() })
///         })
///         .collect();
///     let mut indices = Vec::new();
///     for t in tasks {
///         indices.push(t.await.unwrap());
///     }
///     indices.sort();
///     assert_eq!(indices, [0, 1, 2]); // one index per party
///     assert_eq!(barrier.n_waiting(), 0);
/// });
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Rc<BarrierInner>,
}

struct BarrierInner {
    /// How many tasks trip the barrier.
    parties: usize,
    state: Cell<State>,
    /// Tasks that took an index and have not left `wait` yet (asyncio's `_count`).
    count: Cell<usize>,
    /// Tasks waiting for the state to change (asyncio's condition variable).
    waiters: RefCell<WaitList>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Parties arrive and wait.
    Filling,
    /// Tripped: the parties leave; newcomers wait for the next round.
    Draining,
    /// `reset()` with parties inside: they leave with [`BrokenBarrier`]; newcomers wait.
    Resetting,
    /// `abort()`: every `wait` fails until `reset()`.
    Broken,
}

/// [`Barrier::wait`] failed: the barrier was aborted, or reset while the task waited
/// (asyncio's `BrokenBarrierError`).
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let b = aioloop::sync::Barrier::new(2);
///     b.abort();
///     let err = b.wait().await.unwrap_err();
///     assert_eq!(err.to_string(), "barrier aborted or reset");
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("barrier aborted or reset")
    }
}

impl std::error::Error for BrokenBarrier {}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("state", &self.inner.state.get())
            .field("n_waiting", &self.n_waiting())
            .field("parties", &self.parties())
            .finish()
    }
}

impl Barrier {
    /// Creates a barrier for `parties` tasks.
    ///
    /// # Panics
    ///
    /// If `parties` is 0 (asyncio's `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = aioloop::sync::Barrier::new(4);
    /// assert_eq!((b.parties(), b.n_waiting(), b.is_broken()), (4, 0, false));
    /// ```
    #[track_caller]
    pub fn new(parties: usize) -> Barrier {
        assert!(parties > 0, "a Barrier needs at least one party");
        Barrier {
            inner: Rc::new(BarrierInner {
                parties,
                state: Cell::new(State::Filling),
                count: Cell::new(0),
                waiters: RefCell::default(),
            }),
        }
    }

    /// Waits until `parties` tasks wait, and returns this task's arrival index, from 0 to
    /// `parties - 1`. The last to arrive returns at once, without yielding; the others in the
    /// next iteration. A task that arrives while the barrier drains or resets waits for the
    /// next round.
    ///
    /// # Errors
    ///
    /// [`BrokenBarrier`] if the barrier is broken ([`abort`](Self::abort)), or is aborted or
    /// [`reset`](Self::reset) before this task, woken, went on.
    ///
    /// # Cancellation
    ///
    /// A cancelled task leaves the barrier: it no longer counts towards the parties.
    ///
    /// # Examples
    ///
    /// See [`Barrier`].
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait { barrier: self, stage: Stage::Arriving, ticket: None }
    }

    /// Puts the barrier back to its first state (asyncio's `reset()`): the tasks waiting in it
    /// fail with [`BrokenBarrier`]; tasks that arrive meanwhile wait until they have left. A
    /// broken barrier becomes usable again.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let b = aioloop::sync::Barrier::new(2);
    ///     let b2 = b.clone();
    ///     let early = aioloop::spawn(async move { b2.wait().await });
    ///     aioloop::yield_now().await; // early waits
    ///     b.reset();
    ///     assert!(early.await.unwrap().is_err());
    ///     let b2 = b.clone();
    ///     let other = aioloop::spawn(async move { b2.wait().await });
    ///     assert_eq!(b.wait().await, Ok(0)); // usable again: this task arrives first
    ///     assert_eq!(other.await.unwrap(), Ok(1));
    /// });
    /// ```
    pub fn reset(&self) {
        let inner = &self.inner;
        if inner.count.get() > 0 {
            inner.state.set(State::Resetting);
        } else {
            inner.state.set(State::Filling);
        }
        self.notify_all();
    }

    /// Breaks the barrier (asyncio's `abort()`): the tasks waiting in it, and every later
    /// [`wait`](Self::wait) until a [`reset`](Self::reset), fail with [`BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let b = aioloop::sync::Barrier::new(2);
    ///     let b2 = b.clone();
    ///     let waiting = aioloop::spawn(async move { b2.wait().await });
    ///     aioloop::yield_now().await;
    ///     b.abort();
    ///     assert!(b.is_broken());
    ///     assert_eq!(waiting.await.unwrap(), Err(aioloop::sync::BrokenBarrier));
    /// });
    /// ```
    pub fn abort(&self) {
        self.inner.state.set(State::Broken);
        self.notify_all();
    }

    /// Returns how many tasks trip the barrier.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    pub fn parties(&self) -> usize {
        self.inner.parties
    }

    /// Returns how many tasks wait for the barrier to trip (0 while it drains, resets or is
    /// broken).
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let b = aioloop::sync::Barrier::new(2);
    ///     let b2 = b.clone();
    ///     let t = aioloop::spawn(async move { b2.wait().await });
    ///     aioloop::yield_now().await;
    ///     assert_eq!(b.n_waiting(), 1);
    ///     b.wait().await.unwrap();
    ///     t.await.unwrap().unwrap();
    /// });
    /// ```
    pub fn n_waiting(&self) -> usize {
        if self.inner.state.get() == State::Filling {
            self.inner.count.get()
        } else {
            0
        }
    }

    /// Returns true if the barrier is broken ([`abort`](Self::abort)ed and not reset since).
    ///
    /// # Examples
    ///
    /// See [`abort`](Self::abort).
    pub fn is_broken(&self) -> bool {
        self.inner.state.get() == State::Broken
    }

    /// Wakes every waiting task: the state changed (asyncio's `notify_all`).
    fn notify_all(&self) {
        let wakers = self.inner.waiters.borrow_mut().wake_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// A task that took an index leaves `wait` (asyncio's `finally: count -= 1; _exit()`); the
    /// last one out ends the draining or the reset.
    fn leave(&self) {
        let inner = &self.inner;
        inner.count.set(inner.count.get() - 1);
        if inner.count.get() == 0 {
            if matches!(inner.state.get(), State::Draining | State::Resetting) {
                inner.state.set(State::Filling);
            }
            self.notify_all();
        }
    }
}

/// Where a [`BarrierWait`] is.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Has no index yet (asyncio's `_block`: waits while the barrier drains or resets).
    Arriving,
    /// Took this index; waits while the barrier fills (asyncio's `_wait`).
    Inside(usize),
    /// Returned.
    Done,
}

/// The future of [`Barrier::wait`].
///
/// # Panics
///
/// If polled again after it completed.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let b = aioloop::sync::Barrier::new(1);
///     let w: aioloop::sync::BarrierWait<'_> = b.wait();
///     assert_eq!(w.await, Ok(0)); // one party: trips at once
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    stage: Stage,
    ticket: Option<Ticket>,
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait").field("stage", &self.stage).field("waiting", &self.ticket.is_some()).finish()
    }
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize, BrokenBarrier>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let barrier = this.barrier;
        let inner = &barrier.inner;
        // Waiting: go on only once woken (a state change), then re-read the state.
        if this.ticket.is_some() && !inner.waiters.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
            return Poll::Pending;
        }
        if let Stage::Arriving = this.stage {
            match inner.state.get() {
                State::Draining | State::Resetting => {
                    this.ticket = Some(inner.waiters.borrow_mut().push(cx.waker()));
                    return Poll::Pending;
                }
                State::Broken => {
                    this.stage = Stage::Done;
                    return Poll::Ready(Err(BrokenBarrier));
                }
                State::Filling => {}
            }
            let index = inner.count.get();
            inner.count.set(index + 1);
            if index + 1 == inner.parties {
                // The last party: release the others and go on at once.
                inner.state.set(State::Draining);
                barrier.notify_all();
                this.stage = Stage::Done;
                barrier.leave();
                return Poll::Ready(Ok(index));
            }
            this.stage = Stage::Inside(index);
        }
        let Stage::Inside(index) = this.stage else { panic!("BarrierWait polled after it completed") };
        let state = inner.state.get();
        if state == State::Filling {
            this.ticket = Some(inner.waiters.borrow_mut().push(cx.waker()));
            return Poll::Pending;
        }
        // Read the state before leaving: the last one out turns it back to `Filling`.
        this.stage = Stage::Done;
        barrier.leave();
        match state {
            State::Draining => Poll::Ready(Ok(index)),
            _ => Poll::Ready(Err(BrokenBarrier)),
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.barrier.inner.waiters.borrow_mut().remove(t);
        }
        if let Stage::Inside(_) = self.stage {
            // Cancelled after it took an index: it leaves the barrier.
            self.barrier.leave();
        }
    }
}
