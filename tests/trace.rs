//! The trace recorder, seen from outside: a loop built with `Builder::trace(true)` records each
//! task's life (spawned, polled, parked on something, woken, finished), and
//! `EventLoop::trace()` returns it as a `Trace`.
//!
//! Most tests trace seed 000's phase program (examples/phase.rs, part 2) on virtual time: three
//! phases sleep 0, 5 and 10 s; main waits for them with a 6 s timeout, then cancels the pending
//! one. What a person sees: phases 0 and 1 complete (at 0 and 5 s), phase 2 is cancelled at 6 s,
//! four seconds before its timer was due.

mod util;

use std::time::Duration;

use aioloop::{EventLoop, ReturnWhen, TaskError, TaskId, Trace, TraceEvent, TraceKind, WaitingOn};

/// Returns a virtual-time loop that records a trace.
fn traced() -> EventLoop {
    EventLoop::builder().virtual_time(true).trace(true).build().expect("create a tracing loop")
}

/// Runs the phase program's part 2 on a tracing loop; returns its trace and the phases' ids.
fn phase_run() -> (Trace, Vec<TaskId>) {
    let mut lp = traced();
    let ids = lp.run_until_complete(async {
        let phases: Vec<_> = (0..3u64).map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(5 * i)))).collect();
        let ids: Vec<TaskId> = phases.iter().map(|t| t.id()).collect();
        let (_, pending) = aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
        for t in &pending {
            t.cancel();
        }
        ids
    });
    (lp.trace(), ids)
}

/// Returns a task's events.
fn of(trace: &Trace, id: TaskId) -> Vec<&TraceEvent> {
    trace.events().iter().filter(|e| e.task == id).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn phases_0_and_1_complete_and_phase_2_is_cancelled_at_6_s() {
    let (trace, ids) = phase_run();
    for (i, id) in ids.iter().enumerate() {
        let events = of(&trace, *id);
        let first = events.first().unwrap_or_else(|| panic!("phase {i} has no events:\n{trace}"));
        assert_eq!(first.at, Duration::ZERO, "phase {i}");
        assert_eq!(first.kind, TraceKind::Spawned { name: format!("Task-{id}") }, "phase {i}");
        let last = events.last().unwrap();
        let expected =
            [(secs(0), TraceKind::Done), (secs(5), TraceKind::Done), (secs(6), TraceKind::Cancelled)][i].clone();
        assert_eq!((last.at, last.kind.clone()), expected, "phase {i}:\n{trace}");
    }
    // Phase 2 parked on a timer due at 10 s: the picture marks it, four seconds after the ✕.
    let due: Vec<Duration> = of(&trace, ids[2])
        .iter()
        .filter_map(|e| match e.kind {
            TraceKind::Parked(WaitingOn::Timer(at)) => Some(at - trace.start()),
            _ => None,
        })
        .collect();
    assert_eq!(due, [secs(10)], "{trace}");
    assert!(trace.to_string().contains(&format!("  6.000s Task-{} cancelled\n", ids[2])), "{trace}");
}

#[test]
fn a_sleeping_task_is_spawned_polled_parked_woken_polled_and_done() {
    let (trace, ids) = phase_run();
    let steps: Vec<(Duration, &TraceKind)> = of(&trace, ids[1]).iter().map(|e| (e.at, &e.kind)).collect();
    let start = trace.start();
    assert_eq!(
        steps,
        [
            (secs(0), &TraceKind::Spawned { name: format!("Task-{}", ids[1]) }),
            (secs(0), &TraceKind::Polled),
            (secs(0), &TraceKind::Parked(WaitingOn::Timer(start + secs(5)))),
            (secs(5), &TraceKind::Woken),
            (secs(5), &TraceKind::Polled),
            (secs(5), &TraceKind::Done),
        ],
        "{trace}"
    );
}

#[test]
fn main_inside_wait_parks_on_its_three_tasks_and_the_timeout() {
    let (trace, ids) = phase_run();
    let main = trace.events().iter().find(|e| !ids.contains(&e.task)).expect("main's events").task;
    let parks: Vec<&TraceKind> =
        of(&trace, main).into_iter().map(|e| &e.kind).filter(|k| matches!(k, TraceKind::Parked(_))).collect();
    let timeout = Some(trace.start() + secs(6));
    assert_eq!(parks, [&TraceKind::Parked(WaitingOn::Tasks { count: 3, timeout })], "{trace}");
    let line = format!("  0.000s Task-{main} waits on 3 tasks or a timer due at 6.000s\n");
    assert!(trace.to_string().contains(&line), "{trace}");
}

#[test]
fn events_are_in_time_order() {
    let (trace, _) = phase_run();
    assert!(trace.events().len() >= 3 * 4, "{trace}");
    assert!(trace.events().windows(2).all(|w| w[0].at <= w[1].at), "{trace}");
    let last = trace.events().last().unwrap();
    assert_eq!(last.at, secs(6), "the run ends at 6 s:\n{trace}");
}

#[test]
fn recording_is_off_unless_asked_for() {
    for mut lp in [util::vloop(), EventLoop::builder().virtual_time(true).trace(false).build().unwrap()] {
        lp.run_until_complete(async {
            aioloop::spawn(aioloop::sleep(secs(1))).await.unwrap();
        });
        let trace = lp.trace();
        assert!(trace.events().is_empty(), "{trace}");
        assert_eq!(trace.to_string(), "");
    }
}

#[test]
fn a_trace_is_a_snapshot() {
    let mut lp = traced();
    lp.run_until_complete(aioloop::sleep(secs(1)));
    let first = lp.trace();
    let t = lp.spawn(aioloop::sleep(secs(1)));
    lp.run_until_complete(t).unwrap();
    let second = lp.trace();
    assert!(second.events().len() > first.events().len());
    assert_eq!(&second.events()[..first.events().len()], first.events(), "the second extends the first");
    assert_eq!(second.events().last().unwrap().at, secs(2));
}

#[test]
fn a_task_awaiting_another_parks_on_it() {
    let mut lp = traced();
    let child = lp.spawn(aioloop::sleep(secs(3)));
    let child_id = child.id();
    let parent = lp.spawn(async move { child.await.unwrap() });
    let parent_id = parent.id();
    lp.run_until_complete(parent).unwrap();
    let trace = lp.trace();
    let parks: Vec<&TraceKind> =
        of(&trace, parent_id).iter().map(|e| &e.kind).filter(|k| matches!(k, TraceKind::Parked(_))).collect();
    assert_eq!(parks, [&TraceKind::Parked(WaitingOn::Task(child_id))], "{trace}");
    let done_at = |id| of(&trace, id).last().map(|e| (e.at, e.kind.clone()));
    assert_eq!(done_at(child_id), Some((secs(3), TraceKind::Done)));
    assert_eq!(done_at(parent_id), Some((secs(3), TraceKind::Done)));
}

#[test]
fn a_panicking_task_ends_panicked() {
    let mut lp = traced();
    let t = lp.spawn(async {
        aioloop::sleep(secs(2)).await;
        panic!("boom");
    });
    let id = t.id();
    assert!(matches!(lp.run_until_complete(t), Err(TaskError::Panicked(_))));
    let trace = lp.trace();
    let last = *of(&trace, id).last().unwrap();
    assert_eq!((last.at, &last.kind), (secs(2), &TraceKind::Panicked), "{trace}");
    assert!(trace.to_string().contains(&format!("  2.000s Task-{id} panicked")), "{trace}");
}

#[test]
fn a_renamed_task_is_listed_under_its_new_name() {
    let mut lp = traced();
    let t = lp.spawn(aioloop::sleep(secs(1)));
    t.set_name("sleeper \"one\"");
    let id = t.id();
    lp.run_until_complete(t).unwrap();
    let trace = lp.trace();
    assert_eq!(trace.name(id), "sleeper \"one\"");
    assert!(trace.to_string().contains("  1.000s sleeper \"one\" done"), "{trace}");
    assert!(trace.to_chrome_json().contains(r#""args":{"name":"sleeper \"one\""}"#));
    assert!(trace.to_svg().contains("sleeper &quot;one&quot;"));
}

#[test]
#[cfg_attr(miri, ignore = "writes files (Miri's isolation has no file system)")]
fn exports_name_every_task_and_save_picks_the_format() {
    let (trace, ids) = phase_run();
    let json = trace.to_chrome_json();
    let svg = trace.to_svg();
    for id in &ids {
        assert!(json.contains(&format!(r#""tid":{id},"args":{{"name":"Task-{id}"}}"#)), "{json}");
        assert!(svg.contains(&format!(">Task-{id}</text>")), "{svg}");
    }
    assert!(svg.contains(&format!("Task-{}: cancelled at 6.000s", ids[2])));
    assert!(svg.contains(&format!("Task-{}: timer due at 10.000s", ids[2])));

    let dir = std::env::temp_dir().join(format!("aioloop-tests-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    trace.save(dir.join("phase.json")).unwrap();
    trace.save(dir.join("phase.svg")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("phase.json")).unwrap(), json);
    assert_eq!(std::fs::read_to_string(dir.join("phase.svg")).unwrap(), svg);
    let err = trace.save(dir.join("phase.txt")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(!dir.join("phase.txt").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn append_pictures_two_runs_one_after_the_other() {
    let (mut both, first_ids) = phase_run();
    let (second, second_ids) = phase_run();
    both.append(second);
    let last = |id| of(&both, id).last().map(|e| (e.at, e.kind.clone()));
    assert_eq!(last(first_ids[2]), Some((secs(6), TraceKind::Cancelled)));
    assert_eq!(last(second_ids[2]), Some((secs(12), TraceKind::Cancelled)));
    assert!(both.events().windows(2).all(|w| w[0].at <= w[1].at));
    assert!(both.to_svg().contains(">run 2</text>"));
}
