//! `gather` / `gather_settled`: asyncio's `asyncio.gather` oracle (spec §3.6, rows G1-G9 of §5.3,
//! T40 and T43 of §5.2, rules 9 and 13 of §6.2), on virtual time.
//!
//! `gather_settled` is `gather(..., return_exceptions=True)`; a failed member is a panic; a
//! member is cancelled with `Task::cancel` before it is handed over (the handles move into the
//! gather). Rows that do not port: G7 (`gather(c, c)` shares one child): a `Task` is not
//! `Clone`; and "`gatherer.cancel()` afterwards returns False" (G8, T43): a gather is a future,
//! not a task. T43 is ported on a task that awaits the gather.
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`).

mod util;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use aioloop::{gather, gather_settled, shield, sleep, spawn, yield_now, TaskError, TaskState};
use util::{after, fail, ms, run_counted, vloop as new_loop, Log};

/// A task body: sleeps `d`, then panics with `msg`.
async fn fail_after(d: Duration, msg: &'static str) -> i32 {
    sleep(d).await;
    fail(msg)
}

/// A task body that sleeps `d` inside a `finally` named `name`, then logs `"<name> done"`.
async fn guarded_sleep(log: Log, name: &'static str, d: Duration) {
    let _f = log.clone().on_drop(format!("{} finally", name));
    sleep(d).await;
    log.push(format!("{name} done"));
}

fn panic_text(e: &TaskError) -> String {
    e.to_string()
}

// G1 test_success: members finish in the order b, a, c; the gather is not done until c, and the
// values come in argument order.
#[test]
fn g1_values_come_in_argument_order_when_the_last_finishes() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(200), 1));
    let b = lp.spawn(after(ms(100), 2));
    let c = lp.spawn(after(ms(300), 3));
    let mut g = lp.spawn(gather([a, b, c]));
    lp.run_until_complete(sleep(ms(250)));
    assert!(!g.is_done());
    let v = lp.run_until_complete(&mut g).unwrap().unwrap();
    assert_eq!(v, [1, 2, 3]);
    assert_eq!(lp.time() - t0, ms(300));
}

// G1 with plain futures, spawned first (asyncio's gather does it with `ensure_future`).
#[test]
fn g1_futures_are_spawned_and_their_values_come_in_argument_order() {
    let mut lp = new_loop();
    let v = lp.run_until_complete(async {
        let futs: Vec<Pin<Box<dyn Future<Output = u64>>>> =
            vec![Box::pin(after(ms(30), 1)), Box::pin(after(ms(10), 2)), Box::pin(async { 3 })];
        gather(futs.into_iter().map(spawn)).await
    });
    assert_eq!(v.unwrap(), [1, 2, 3]);
}

// G2 test_one_exception: b fails → the gather fails with b's panic at once; the other members
// are not cancelled and keep running (their later outcomes are ignored).
#[test]
fn g2_first_panic_completes_the_gather_and_the_others_keep_running() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let log = Log::new();
    let a = lp.spawn(async { 1 });
    let b = lp.spawn(fail_after(ms(100), "b failed"));
    let l = log.clone();
    let c = lp.spawn(async move {
        guarded_sleep(l, "c", ms(200)).await;
        3
    });
    let d = lp.spawn(fail_after(ms(300), "d failed"));
    let err = lp.run_until_complete(gather([a, b, c, d])).unwrap_err();
    assert_eq!(panic_text(&err), "task panicked: b failed");
    assert_eq!(lp.time() - t0, ms(100));
    assert!(log.get().is_empty());
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(log.get(), ["c done", "c finally"], "c was not cancelled");
}

// G3 test_return_exceptions: `[3, 1, exc, exc2]`, done only after the last member.
#[test]
fn g3_settled_returns_every_outcome_after_the_last_member() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(300), 3));
    let b = lp.spawn(after(ms(100), 1));
    let c = lp.spawn(fail_after(ms(200), "exc"));
    let d = lp.spawn(fail_after(ms(400), "exc2"));
    let mut g = lp.spawn(gather_settled([a, b, c, d]));
    lp.run_until_complete(sleep(ms(350)));
    assert!(!g.is_done(), "not done before the last member");
    let out = lp.run_until_complete(&mut g).unwrap();
    assert_eq!(lp.time() - t0, ms(400));
    assert_eq!(out.len(), 4);
    assert_eq!(*out[0].as_ref().unwrap(), 3);
    assert_eq!(*out[1].as_ref().unwrap(), 1);
    assert_eq!(panic_text(out[2].as_ref().unwrap_err()), "task panicked: exc");
    assert_eq!(panic_text(out[3].as_ref().unwrap_err()), "task panicked: exc2");
}

// G4 test_one_cancellation: a cancelled member completes the gather with Cancelled as its
// error, but the task awaiting the gather is not cancelled (it can go on); the other members
// keep running.
#[test]
fn g4_a_cancelled_member_fails_the_gather_without_cancelling_its_awaiter() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let mut outer = lp.spawn(async move {
        let a = spawn(async { 1 });
        let b = spawn(after(Duration::from_secs(10), 2));
        let l2 = l.clone();
        let c = spawn(async move {
            guarded_sleep(l2, "c", ms(100)).await;
            3
        });
        b.cancel();
        let r = gather([a, b, c]).await;
        l.push(format!("gather returned {:?}", r.as_ref().map_err(TaskError::is_cancelled)));
        "outer went on"
    });
    assert_eq!(lp.run_until_complete(&mut outer).unwrap(), "outer went on");
    assert_eq!(outer.state(), TaskState::Done);
    assert_eq!(log.get(), ["gather returned Err(true)"]);
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(log.get(), ["gather returned Err(true)", "c done", "c finally"]);
}

// G5 test_result_exception_one_cancellation: `[1, zde, Cancelled, 3, Cancelled, rte]`.
#[test]
fn g5_settled_reports_cancelled_members_in_their_places() {
    let mut lp = new_loop();
    let out = lp.run_until_complete(async {
        let a = spawn(async { 1 });
        let b = spawn(fail_after(ms(10), "zde"));
        let c = spawn(after(ms(20), 0));
        let d = spawn(after(ms(30), 3));
        let e = spawn(after(ms(40), 0));
        let f = spawn(fail_after(ms(50), "rte"));
        c.cancel();
        e.cancel();
        gather_settled([a, b, c, d, e, f]).await
    });
    let shown: Vec<String> = out
        .iter()
        .map(|r| match r {
            Ok(v) => v.to_string(),
            Err(e) if e.is_cancelled() => "Cancelled".to_string(),
            Err(e) => panic_text(e),
        })
        .collect();
    assert_eq!(shown, ["1", "task panicked: zde", "Cancelled", "3", "Cancelled", "task panicked: rte"]);
}

// G6 test_constructor_empty_sequence_use_running_loop: `gather()` → `[]`, at once.
#[test]
fn g6_gather_of_nothing_is_empty_at_once() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, gather(Vec::<aioloop::Task<i32>>::new()));
    assert_eq!(v.unwrap(), Vec::<i32>::new());
    assert_eq!(iters, 2);
    let (v, iters) = run_counted(&mut lp, gather_settled(Vec::<aioloop::Task<i32>>::new()));
    assert!(v.is_empty());
    assert_eq!(iters, 2);
}

/// G8 (test_cancellation_broadcast): cancelling the task awaiting `gather(child1, child2)` cancels
/// both children (their `proof += 1` never runs, nor the outer's `proof += 100`).
#[test]
fn g8_cancelling_the_awaiting_task_cancels_every_member() {
    let mut lp = new_loop();
    let proof = Rc::new(Cell::new(0));
    let log = Log::new();
    let inner = |name: &'static str| {
        let (p, l) = (proof.clone(), log.clone());
        lp.spawn(async move {
            guarded_sleep(l, name, Duration::from_secs(10)).await;
            p.set(p.get() + 1);
        })
    };
    let (child1, child2) = (inner("child1"), inner("child2"));
    let p = proof.clone();
    let mut f = lp.spawn(async move {
        gather([child1, child2]).await.unwrap();
        p.set(p.get() + 100);
    });
    lp.run_until_complete(yield_now());
    assert!(f.cancel());
    assert!(lp.run_until_complete(&mut f).unwrap_err().is_cancelled());
    assert_eq!(log.get(), ["child1 finally", "child2 finally"]);
    lp.run_until_complete(sleep(Duration::from_secs(20)));
    assert_eq!(proof.get(), 0);
}

// Rule 9: "the outer completes only after the inner finished" holds through a gather too, also
// when a member is itself awaiting a task. CPython 3.12.1 (children each awaiting a grandchild
// task): ['grand1 finally', 'grand2 finally', 'child1 finally', 'child2 finally', 'outer
// finally'], and whoever awaits the outer sees both children done.
#[test]
fn g8_the_awaiting_task_finishes_after_its_members_were_cancelled() {
    let mut lp = new_loop();
    let log = Log::new();
    let child = |i: usize| {
        let l = log.clone();
        lp.spawn(async move {
            let _f = l.clone().on_drop(format!("{} finally", ["child1", "child2"][i]));
            let _ = spawn(guarded_sleep(l, ["grand1", "grand2"][i], Duration::from_secs(10))).await;
        })
    };
    let (c1, c2) = (child(0), child(1));
    let l = log.clone();
    let mut outer = lp.spawn(async move {
        let _f = l.on_drop(format!("{} finally", "outer"));
        let _ = gather([c1, c2]).await;
    });
    lp.run_until_complete(yield_now());
    lp.run_until_complete(yield_now());
    outer.cancel();
    let l = log.clone();
    lp.run_until_complete(async {
        assert!((&mut outer).await.unwrap_err().is_cancelled());
        l.push("awaiter resumed");
    });
    assert_eq!(
        log.get(),
        ["grand1 finally", "grand2 finally", "child1 finally", "child2 finally", "outer finally", "awaiter resumed"]
    );
}

// Rule 13: dropping a gather that has not completed cancels its members; here a timeout drops it.
#[test]
fn dropping_a_pending_gather_cancels_its_members() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let members = [
            spawn(guarded_sleep(l.clone(), "m1", Duration::from_secs(10))),
            spawn(guarded_sleep(l.clone(), "m2", Duration::from_secs(10))),
        ];
        assert!(aioloop::timeout(ms(100), gather(members)).await.is_err());
    });
    lp.run_until_complete(yield_now());
    assert_eq!(log.get(), ["m1 finally", "m2 finally"]);
    lp.run_until_complete(sleep(Duration::from_secs(20)));
    assert_eq!(log.get(), ["m1 finally", "m2 finally"], "neither ran to its end");
}

// The same for `gather_settled` (return_exceptions=True: cancelling it cancels every member).
#[test]
fn dropping_a_pending_gather_settled_cancels_its_members() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let mut g = lp.spawn(async move {
        let members = [
            spawn(guarded_sleep(l.clone(), "m1", Duration::from_secs(10))),
            spawn(guarded_sleep(l.clone(), "m2", Duration::from_secs(10))),
        ];
        gather_settled(members).await.len()
    });
    lp.run_until_complete(yield_now());
    g.cancel();
    assert!(lp.run_until_complete(&mut g).unwrap_err().is_cancelled());
    lp.run_until_complete(yield_now());
    assert_eq!(log.get(), ["m1 finally", "m2 finally"]);
}

// G9 test_exception_marking: the first failure propagates; a second member failing later is
// marked retrieved by the gather and is not reported ("Task exception was never retrieved").
// A detached task that fails with nobody looking is reported, which shows the report is visible.
// The scenario runs in a child process whose stderr is inspected.
#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn g9_a_later_failure_of_a_finished_gather_is_not_reported() {
    const CHILD: &str = "AIOLOOP_TEST_GATHER_G9_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let mut lp = new_loop();
        let err = lp.run_until_complete(async {
            let first = spawn(fail_after(ms(10), "first failure"));
            let second = spawn(fail_after(ms(20), "second failure"));
            gather([first, second]).await.unwrap_err()
        });
        assert_eq!(panic_text(&err), "task panicked: first failure");
        drop(lp.spawn(fail_after(ms(30), "control failure")));
        lp.run_until_complete(sleep(Duration::from_secs(1)));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "g9_a_later_failure_of_a_finished_gather_is_not_reported",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("never retrieved") && stderr.contains("control failure"), "{stderr}");
    assert!(!stderr.contains("second failure"), "{stderr}");
}

// T43 test_cancel_gather_1: once every member finished and the gather completed, cancelling the
// task that awaited it returns false and its result is `[42]`.
#[test]
fn t43_cancel_after_the_gather_completed_is_refused_and_keeps_the_result() {
    let mut lp = new_loop();
    let mut g = lp.spawn(async { gather([spawn(after(ms(10), 42))]).await });
    lp.run_until_complete(sleep(ms(100)));
    assert!(g.is_done());
    assert!(!g.cancel());
    assert!(!g.is_cancelled());
    assert_eq!(lp.run_until_complete(&mut g).unwrap().unwrap(), [42]);
}

// T43's window, on a task: the member finished but the task awaiting the gather has not resumed
// yet → `cancel()` is accepted and the task ends Cancelled (rule 8); afterwards `cancel()` is
// refused. CPython 3.12.1: (True, 'cancelled', False).
#[test]
fn t43_cancel_between_the_last_member_and_the_gathers_resume_cancels_the_task() {
    let mut lp = new_loop();
    let member_done = Rc::new(Cell::new(false));
    let md = member_done.clone();
    let mut g = lp.spawn(async move {
        let member = async move {
            yield_now().await;
            md.set(true);
            42
        };
        gather([spawn(member)]).await
    });
    while !member_done.get() {
        lp.run_until_complete(yield_now());
    }
    assert!(!g.is_done());
    assert!(g.cancel());
    assert!(lp.run_until_complete(&mut g).unwrap_err().is_cancelled());
    assert!(g.is_cancelled());
    assert!(!g.cancel());
}

// T40 test_gather_shield: cancelling `gather(shield(c1), shield(c2))` cancels the shields, not
// c1 and c2, which finish later.
#[test]
fn t40_cancelling_a_gather_of_shields_leaves_the_shielded_tasks_running() {
    let mut lp = new_loop();
    let log = Log::new();
    let c1 = lp.spawn(guarded_sleep(log.clone(), "child1", ms(100)));
    let c2 = lp.spawn(guarded_sleep(log.clone(), "child2", ms(200)));
    let mut parent = lp.spawn(async move { gather([spawn(shield(c1)), spawn(shield(c2))]).await });
    lp.run_until_complete(yield_now());
    assert!(parent.cancel());
    assert!(lp.run_until_complete(&mut parent).unwrap_err().is_cancelled());
    assert!(log.get().is_empty(), "the shielded tasks were not cancelled");
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(log.get(), ["child1 done", "child1 finally", "child2 done", "child2 finally"]);
}

// Rule 6 for gather: it resumes two iterations after its last member finished. CPython 3.12.1:
// a fresh task that returns at once, `gather(t)`: 5 iterations.
#[test]
fn gather_resumes_two_iterations_after_the_last_member_finished() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async { gather([spawn(async { 1 })]).await });
    assert_eq!(v.unwrap(), [1]);
    assert_eq!(iters, 5);
}

// asyncio 3.12: members already finished when gather is called are collected without an
// iteration. CPython 3.12.1: spawn, two `sleep(0)`, `gather(t)`: 4 iterations.
#[test]
fn gather_of_finished_members_completes_without_an_iteration() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async {
        let t = spawn(async { 1 });
        yield_now().await;
        yield_now().await;
        gather([t]).await
    });
    assert_eq!(v.unwrap(), [1]);
    assert_eq!(iters, 4);
}

// A finished member that failed makes a new gather fail at once.
#[test]
fn gather_with_an_already_failed_member_fails_at_once() {
    let mut lp = new_loop();
    let err = lp.run_until_complete(async {
        let bad = spawn(async { fail("early") });
        let slow = spawn(after(Duration::from_secs(10), 1));
        yield_now().await;
        yield_now().await;
        let t0 = aioloop::now();
        let r = gather([slow, bad]).await;
        assert_eq!(aioloop::now(), t0);
        r.unwrap_err()
    });
    assert_eq!(panic_text(&err), "task panicked: early");
}

// Only the last member resumes the gather: members finishing earlier only count down
// (asyncio's `_done_callback`). CPython 3.12.1, members sleeping 1 s and 2 s: 10 iterations for
// `gather` and for `gather(return_exceptions=True)`.
#[test]
fn gather_resumes_its_task_only_when_it_can_complete() {
    let mut lp = new_loop();
    let (v, iters) =
        run_counted(&mut lp, async { gather([1, 2].map(|i| spawn(after(Duration::from_secs(i), i)))).await });
    assert_eq!(v.unwrap(), [1, 2]);
    assert_eq!(iters, 10);
    let (v, iters) =
        run_counted(&mut lp, async { gather_settled([1, 2].map(|i| spawn(after(Duration::from_secs(i), i)))).await });
    assert_eq!(v.len(), 2);
    assert_eq!(iters, 10);
}
