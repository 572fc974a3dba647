//! `aioloop::sync::Barrier`: asyncio's `Barrier` (3.11, unchanged in 3.12), iteration by
//! iteration.
//!
//! Each test drives the loop one iteration at a time and compares what was logged in each with
//! the same program on CPython 3.11.7, in the harness tests/sync.rs describes (`step`, `steps`,
//! `spawn`, `soon`, `guard_cancel`), with:
//!
//! ```python
//! def party(b, n):                         # logs "<n> <index>", "<n> broken" or "<n> cancelled"
//!     async def body():
//!         try:
//!             i = await b.wait(); log.append(f"{n} {i}")
//!         except asyncio.BrokenBarrierError: log.append(f"{n} broken")
//!     return guard_cancel(n, body())
//! def state(b): return f"n_waiting={b.n_waiting} broken={b.broken}"
//! ```
//!
//! asyncio's `reset()` and `abort()` are coroutines (`spawn(b.abort())`); here they are methods,
//! called from a task spawned at the same point, so they run in the same iteration. Python's
//! `True`/`False` are logged as `true`/`false`, and `b._state.value` as the state's name in
//! lower case.

mod util;

use std::future::Future;

use aioloop::sync::{Barrier, BrokenBarrier};
use aioloop::EventLoop;
use util::{run_once, vloop, Log};

/// Runs `n` iterations of the loop; returns what was logged in each.
fn steps(lp: &mut EventLoop, log: &Log, n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|_| {
            run_once(lp);
            log.take()
        })
        .collect()
}

/// A task body: waits at the barrier; logs `"<name> <index>"`, `"<name> broken"`, or
/// `"<name> cancelled"` if dropped before.
fn party(b: &Barrier, name: &'static str, log: &Log) -> impl Future<Output = ()> + 'static {
    let (b, log) = (b.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        match b.wait().await {
            Ok(i) => log.push(format!("{name} {i}")),
            Err(BrokenBarrier) => log.push(format!("{name} broken")),
        }
        cancelled.defuse();
    }
}

fn state(b: &Barrier) -> String {
    format!("n_waiting={} broken={}", b.n_waiting(), b.is_broken())
}

/// `state(b)` and `b._state.value`.
fn full_state(b: &Barrier) -> String {
    let debug = format!("{b:?}");
    let phase = debug.split("state: ").nth(1).and_then(|s| s.split(',').next()).unwrap().to_lowercase();
    format!("{} {phase}", state(b))
}

// Three parties trip the barrier: the last to arrive returns at once, the others in the next
// iteration; the barrier is then ready for a second round.
//
//     b = asyncio.Barrier(3)
//     for n in "abc": spawn(party(b, n))
//     out = steps(3)
//     for n in "def": spawn(party(b, n))
//     out += steps(3)
//     # [['c 2'], ['a 0', 'b 1'], [], ['f 2'], ['d 0', 'e 1'], []] n_waiting=0 broken=False
#[test]
fn barrier_trips_when_every_party_arrived_and_serves_the_next_round() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(3);
    for n in ["a", "b", "c"] {
        lp.spawn(party(&b, n, &log));
    }
    let mut out = steps(&mut lp, &log, 3);
    for n in ["d", "e", "f"] {
        lp.spawn(party(&b, n, &log));
    }
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec!["c 2"], vec!["a 0", "b 1"], vec![], vec!["f 2"], vec!["d 0", "e 1"], vec![]]);
    assert_eq!(state(&b), "n_waiting=0 broken=false");
}

// Parties that arrive while the barrier drains wait for the next round; one woken for it but
// beaten to it by others waits again, at the end of the line.
//
//     b = asyncio.Barrier(2)
//     for n in "abcde": spawn(party(b, n))
//     print(steps(5), state(b))
//     # [['b 1'], ['a 0'], ['d 1'], ['c 0'], []] n_waiting=1 broken=False
#[test]
fn barrier_arrivals_while_draining_wait_for_the_next_round() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    for n in ["a", "b", "c", "d", "e"] {
        lp.spawn(party(&b, n, &log));
    }
    assert_eq!(steps(&mut lp, &log, 5), [vec!["b 1"], vec!["a 0"], vec!["d 1"], vec!["c 0"], vec![]]);
    assert_eq!(state(&b), "n_waiting=1 broken=false", "e waits for a partner");
}

// The same, with the arrivals spread over iterations.
//
//     b = asyncio.Barrier(2)
//     spawn(party(b, "a")); out = [step()]
//     def cb(): spawn(party(b, "b")); spawn(party(b, "c"))
//     soon(cb); out += [step()]
//     out.append(state(b))
//     spawn(party(b, "d")); out += steps(3)
//     # [[], [], 'n_waiting=1 broken=False', ['b 1'], ['a 0'], ['d 1']] n_waiting=0 broken=False
#[test]
fn barrier_arrival_during_draining_goes_to_the_next_round() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    lp.spawn(party(&b, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (b2, log2) = (b.clone(), log.clone());
    lp.call_soon(move || {
        aioloop::spawn(party(&b2, "b", &log2));
        aioloop::spawn(party(&b2, "c", &log2));
    });
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(state(&b), "n_waiting=1 broken=false");
    lp.spawn(party(&b, "d", &log));
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["b 1"], vec!["a 0"], vec!["d 1"]]);
    assert_eq!(state(&b), "n_waiting=0 broken=false");
}

// abort() fails every waiting party and every later wait().
//
//     b = asyncio.Barrier(3)
//     spawn(party(b, "a")); spawn(party(b, "b")); out = [step()]
//     out.append(state(b))
//     spawn(b.abort()); out += steps(2)
//     out.append(state(b))
//     spawn(party(b, "c")); out += steps(2)
//     # [[], 'n_waiting=2 broken=False', [], ['a broken', 'b broken'], 'n_waiting=0 broken=True',
//     #  ['c broken'], []]
#[test]
fn barrier_abort_breaks_the_waiting_parties_and_later_waits() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(3);
    lp.spawn(party(&b, "a", &log));
    lp.spawn(party(&b, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    assert_eq!(state(&b), "n_waiting=2 broken=false");
    let b2 = b.clone();
    lp.spawn(async move { b2.abort() });
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(state(&b), "n_waiting=0 broken=true");
    lp.spawn(party(&b, "c", &log));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a broken", "b broken"], vec!["c broken"], vec![]]);
}

// reset() with a party inside: it fails; a party arriving meanwhile waits until it has left;
// the barrier then works again.
//
//     b = asyncio.Barrier(2)
//     spawn(party(b, "a")); out = [step()]
//     async def rst():
//         await b.reset(); log.append(f"reset {state(b)} {b._state.value}")
//     spawn(rst()); spawn(party(b, "c")); out += [step()]
//     out.append(f"{state(b)} {b._state.value}")
//     out += steps(1)
//     out.append(f"{state(b)} {b._state.value}")
//     spawn(party(b, "d")); out += steps(3)
//     # [[], ['reset n_waiting=0 broken=False resetting'], 'n_waiting=0 broken=False resetting',
//     #  ['a broken'], 'n_waiting=0 broken=False filling', ['d 1'], ['c 0'], []]
#[test]
fn barrier_reset_breaks_the_waiting_party_and_holds_newcomers_until_it_left() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    lp.spawn(party(&b, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (b2, log2) = (b.clone(), log.clone());
    lp.spawn(async move {
        b2.reset();
        log2.push(format!("reset {}", full_state(&b2)));
    });
    lp.spawn(party(&b, "c", &log));
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(full_state(&b), "n_waiting=0 broken=false resetting");
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(full_state(&b), "n_waiting=0 broken=false filling");
    lp.spawn(party(&b, "d", &log));
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(
        out,
        [vec![], vec!["reset n_waiting=0 broken=false resetting"], vec!["a broken"], vec!["d 1"], vec!["c 0"], vec![]]
    );
}

// reset() of a broken barrier with nobody inside makes it usable at once.
//
//     b = asyncio.Barrier(2)
//     spawn(b.abort()); out = [step()]
//     out.append(state(b))
//     spawn(b.reset()); out += [step()]
//     out.append(state(b))
//     spawn(party(b, "a")); spawn(party(b, "b")); out += steps(2)
//     # [[], 'n_waiting=0 broken=True', [], 'n_waiting=0 broken=False', ['b 1'], ['a 0']]
#[test]
fn barrier_reset_mends_a_broken_barrier() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    let b2 = b.clone();
    lp.spawn(async move { b2.abort() });
    let mut out = steps(&mut lp, &log, 1);
    assert_eq!(state(&b), "n_waiting=0 broken=true");
    let b2 = b.clone();
    lp.spawn(async move { b2.reset() });
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(state(&b), "n_waiting=0 broken=false");
    lp.spawn(party(&b, "a", &log));
    lp.spawn(party(&b, "b", &log));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["b 1"], vec!["a 0"]]);
}

// A waiting party that is cancelled leaves: the barrier needs another arrival to trip.
//
//     b = asyncio.Barrier(2)
//     a = spawn(party(b, "a")); out = [step()]
//     out.append(state(b))
//     soon(a.cancel); out += steps(2)
//     out.append(state(b))
//     spawn(party(b, "b")); out += [step()]
//     out.append(state(b))
//     spawn(party(b, "c")); out += steps(2)
//     # [[], 'n_waiting=1 broken=False', [], ['a cancelled'], 'n_waiting=0 broken=False', [],
//     #  'n_waiting=1 broken=False', ['c 1'], ['b 0']]
#[test]
fn barrier_cancelled_party_leaves_the_count() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    let a = std::rc::Rc::new(lp.spawn(party(&b, "a", &log)));
    let mut out = steps(&mut lp, &log, 1);
    assert_eq!(state(&b), "n_waiting=1 broken=false");
    let a2 = a.clone();
    lp.call_soon(move || assert!(a2.cancel()));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(state(&b), "n_waiting=0 broken=false");
    lp.spawn(party(&b, "b", &log));
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(state(&b), "n_waiting=1 broken=false");
    lp.spawn(party(&b, "c", &log));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec![], vec!["c 1"], vec!["b 0"]]);
}

// A party released by the trip and cancelled before it ran does not hold the others back: the
// barrier still drains and fills again.
//
//     b = asyncio.Barrier(3)
//     a = spawn(party(b, "a")); spawn(party(b, "b")); out = [step()]
//     async def last():
//         i = await b.wait(); log.append(f"c {i}"); a.cancel()
//     spawn(last()); out += steps(3)
//     out.append(f"{state(b)} {b._state.value}")
//     for n in "def": spawn(party(b, n))
//     out += steps(2)
//     # [[], ['c 2'], ['a cancelled', 'b 1'], [], 'n_waiting=0 broken=False filling', ['f 2'],
//     #  ['d 0', 'e 1']]
#[test]
fn barrier_released_party_cancelled_before_it_ran_lets_the_barrier_drain() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(3);
    let a = std::rc::Rc::new(lp.spawn(party(&b, "a", &log)));
    lp.spawn(party(&b, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (b2, log2, a2) = (b.clone(), log.clone(), a.clone());
    lp.spawn(async move {
        let i = b2.wait().await.unwrap();
        log2.push(format!("c {i}"));
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(full_state(&b), "n_waiting=0 broken=false filling");
    for n in ["d", "e", "f"] {
        lp.spawn(party(&b, n, &log));
    }
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec!["c 2"], vec!["a cancelled", "b 1"], vec![], vec!["f 2"], vec!["d 0", "e 1"]]);
}

// The window between the trip and the released parties' turn: a reset() there breaks them
// (they read the state when they run, as asyncio's wait_for does).
//
//     b = asyncio.Barrier(3)
//     spawn(party(b, "a")); spawn(party(b, "b")); out = [step()]
//     async def last():
//         i = await b.wait(); log.append(f"c {i}"); await b.reset()
//         log.append(f"reset {b._state.value}")
//     spawn(last()); out += steps(3)
//     out.append(f"{state(b)} {b._state.value}")
//     # [[], ['c 2', 'reset resetting'], ['a broken', 'b broken'], [],
//     #  'n_waiting=0 broken=False filling']
#[test]
fn barrier_reset_between_the_trip_and_the_released_parties_breaks_them() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(3);
    lp.spawn(party(&b, "a", &log));
    lp.spawn(party(&b, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (b2, log2) = (b.clone(), log.clone());
    lp.spawn(async move {
        let i = b2.wait().await.unwrap();
        log2.push(format!("c {i}"));
        b2.reset();
        let phase = full_state(&b2);
        log2.push(format!("reset {}", phase.rsplit(' ').next().unwrap()));
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec!["c 2", "reset resetting"], vec!["a broken", "b broken"], vec![]]);
    assert_eq!(full_state(&b), "n_waiting=0 broken=false filling");
}

// The same window for abort().
//
//     b = asyncio.Barrier(2)
//     spawn(party(b, "a")); out = [step()]
//     async def last():
//         i = await b.wait(); log.append(f"b {i}"); await b.abort()
//     spawn(last()); out += steps(3)
//     # [[], ['b 1'], ['a broken'], []] n_waiting=0 broken=True
#[test]
fn barrier_abort_between_the_trip_and_the_released_party_breaks_it() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(2);
    lp.spawn(party(&b, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (b2, log2) = (b.clone(), log.clone());
    lp.spawn(async move {
        let i = b2.wait().await.unwrap();
        log2.push(format!("b {i}"));
        b2.abort();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec!["b 1"], vec!["a broken"], vec![]]);
    assert_eq!(state(&b), "n_waiting=0 broken=true");
}

// One party: every wait trips the barrier at once, with index 0.
//
//     b = asyncio.Barrier(1)
//     async def twice(): log.append(str([await b.wait(), await b.wait()]))
//     spawn(twice()); print(steps(1))
//     # [['[0, 0]']]
#[test]
fn barrier_of_one_party_never_waits() {
    let (mut lp, log) = (vloop(), Log::new());
    let b = Barrier::new(1);
    let (b2, log2) = (b.clone(), log.clone());
    lp.spawn(async move {
        let (x, y) = (b2.wait().await.unwrap(), b2.wait().await.unwrap());
        log2.push(format!("[{x}, {y}]"));
    });
    assert_eq!(steps(&mut lp, &log, 1), [vec!["[0, 0]"]]);
}

// asyncio raises ValueError('parties must be > 0'); here it is the documented panic.
#[test]
fn barrier_of_no_party_is_refused() {
    let msg = util::catch_panic(|| Barrier::new(0)).unwrap_err();
    assert_eq!(msg, "a Barrier needs at least one party");
}
