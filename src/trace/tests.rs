//! Tests of the trace's replay and exports, on recorded fixtures.

use super::fixtures::*;
use super::*;

// ----- Replay -----

#[test]
fn lanes_follow_each_task_through_its_states() {
    let trace = phase_trace();
    let lanes = trace.lanes();
    assert_eq!(lanes.iter().map(|l| l.task.0).collect::<Vec<_>>(), [1, 2, 3, 4], "spawn order");
    let phase2 = &lanes[3];
    let states: Vec<(State, f64, f64)> =
        phase2.segments.iter().map(|s| (s.state, s.start.as_secs_f64(), s.end.as_secs_f64())).collect();
    assert_eq!(
        states,
        [
            (State::Ready, 0.0, 0.0),
            (State::Running, 0.0, 0.0),
            (State::Waiting(Wait::Timer), 0.0, 6.0),
            (State::Ready, 6.0, 6.0)
        ]
    );
    assert_eq!(phase2.deadlines, [Duration::from_secs(10)]);
    assert_eq!(phase2.finish, Some((Duration::from_secs(6), Finish::Cancelled)));
    assert_eq!(lanes[2].finish, Some((Duration::from_secs(5), Finish::Done)));
    assert_eq!(lanes[0].segments[2].state, State::Waiting(Wait::Gather));
    assert_eq!(lanes[0].segments[2].on.as_deref(), Some("a gather of 3"));
}

#[test]
fn a_wake_during_the_poll_leaves_the_task_ready() {
    // yield_now: the task wakes itself, then returns Pending.
    let trace = trace_of(
        Instant::now(),
        vec![
            (0.0, 7, spawned("yielder")),
            (0.0, 7, TraceKind::Polled),
            (0.0, 7, TraceKind::Woken),
            (0.0, 7, TraceKind::Parked(WaitingOn::Other)),
            (1.0, 7, TraceKind::Polled),
            (1.0, 7, TraceKind::Parked(WaitingOn::Other)),
            (2.0, 7, TraceKind::Woken),
            (2.0, 7, TraceKind::Polled),
            (2.0, 7, TraceKind::Panicked),
        ],
    );
    let lane = &trace.lanes()[0];
    let states: Vec<State> = lane.segments.iter().map(|s| s.state).collect();
    use State::*;
    assert_eq!(states, [Ready, Running, Ready, Running, Waiting(Wait::Other), Ready, Running]);
    assert_eq!(lane.segments[2].end, Duration::from_secs(1), "ready from the yield until the next poll");
    assert_eq!(lane.finish, Some((Duration::from_secs(2), Finish::Panicked)));
}

#[test]
fn a_task_still_alive_at_the_end_keeps_its_state_to_the_end() {
    let start = Instant::now();
    let trace = trace_of(
        start,
        vec![
            (0.0, 1, spawned("server")),
            (0.0, 1, TraceKind::Polled),
            (0.0, 1, TraceKind::Parked(WaitingOn::Io { fd: 5, write: false })),
            (3.0, 2, spawned("other")),
        ],
    );
    let lane = &trace.lanes()[0];
    let last = lane.segments.last().unwrap();
    assert_eq!((last.state, last.end), (State::Waiting(Wait::Io), Duration::from_secs(3)));
    assert_eq!(lane.finish, None);
}

// ----- Display -----

#[test]
fn display_lists_one_event_per_line() {
    let text = phase_trace().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 23);
    assert_eq!(lines[0], "  0.000s Task-1 spawned");
    assert_eq!(lines[5], "  0.000s Task-1 waits on a gather of 3");
    assert_eq!(lines[11], "  0.000s Task-4 waits on a timer due at 10.000s");
    assert_eq!(lines[22], "  6.000s Task-4 cancelled");
}

#[test]
fn append_shifts_a_later_run_after_this_one() {
    let mut both = phase_trace();
    let later = renumbered(phase_trace(), 4);
    let deadline = |t: &Trace| {
        t.events().iter().rev().find_map(|e| match e.kind {
            TraceKind::Parked(WaitingOn::Timer(due)) => Some(due - t.start()),
            _ => None,
        })
    };
    assert_eq!(deadline(&later), Some(Duration::from_secs(10)));
    both.append(later);
    assert_eq!(both.events().len(), 46);
    assert!(both.events().windows(2).all(|w| w[0].at <= w[1].at), "still in time order");
    let last = both.events().last().unwrap();
    assert_eq!((last.at, &last.kind), (Duration::from_secs(12), &TraceKind::Cancelled));
    assert_eq!(deadline(&both), Some(Duration::from_secs(16)), "the later run's 10 s timer, 6 s later");
    assert_eq!(both.runs(), [Duration::from_secs(6)]);
    let mut first = Trace::default();
    first.append(phase_trace());
    assert_eq!(first.runs(), [], "appended to nothing, a run is the first");
    assert_eq!(first.to_string(), phase_trace().to_string());
    let mut three = phase_trace();
    three.append(renumbered(both, 8));
    assert_eq!(three.runs(), [Duration::from_secs(6), Duration::from_secs(12)]);
}

#[test]
fn renames_apply_to_every_event_of_the_task() {
    let start = Instant::now();
    let mut rec = Recorder::new(start);
    rec.record(start, TaskId(9), spawned("Task-9"));
    rec.rename(TaskId(9), "fetcher");
    rec.record(start + Duration::from_millis(1500), TaskId(9), TraceKind::Done);
    let trace = Trace::recorded(&rec);
    assert_eq!(trace.name(TaskId(9)), "fetcher");
    assert_eq!(trace.name(TaskId(10)), "Task-10", "an unknown task gets the default name");
    assert_eq!(trace.to_string(), "  0.000s fetcher spawned\n  1.500s fetcher done\n");
    assert_eq!(trace.events()[1].at, Duration::from_millis(1500));
}

// ----- Chrome JSON -----

#[test]
fn chrome_json_has_a_named_track_per_task_and_slices_in_microseconds() {
    let events = chrome_events(&phase_trace());
    let names: Vec<(f64, &str)> = events
        .iter()
        .filter(|e| e.get("name").and_then(Json::str) == Some("thread_name"))
        .map(|e| (e.get("tid").unwrap().num().unwrap(), e.get("args").unwrap().get("name").unwrap().str().unwrap()))
        .collect();
    assert_eq!(names, [(1.0, "Task-1"), (2.0, "Task-2"), (3.0, "Task-3"), (4.0, "Task-4")]);
    let of_4 = |name: &str| -> Vec<&Json> {
        events
            .iter()
            .filter(|e| {
                e.get("tid").and_then(Json::num) == Some(4.0) && e.get("name").and_then(Json::str) == Some(name)
            })
            .collect()
    };
    let waiting = of_4("waiting on timer");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].get("ph").and_then(Json::str), Some("X"));
    assert_eq!(waiting[0].get("ts").and_then(Json::num), Some(0.0));
    assert_eq!(waiting[0].get("dur").and_then(Json::num), Some(6_000_000.0));
    assert_eq!(waiting[0].get("args").unwrap().get("on").and_then(Json::str), Some("a timer due at 10.000s"));
    let polls = of_4("poll");
    assert_eq!(polls.len(), 1, "a zero-length poll is still a slice");
    assert_eq!(polls[0].get("dur").and_then(Json::num), Some(0.0));
    let due = of_4("timer due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].get("ph").and_then(Json::str), Some("i"));
    assert_eq!(due[0].get("ts").and_then(Json::num), Some(10_000_000.0));
    let cancelled = of_4("cancelled");
    assert_eq!(cancelled[0].get("ts").and_then(Json::num), Some(6_000_000.0));
    assert_eq!(of_4("spawned").len(), 1);
    assert_eq!(of_4("woken").len(), 1);
    // Every slice has the fields Perfetto needs.
    for e in &events {
        for key in ["name", "ph", "pid", "tid"] {
            assert!(e.get(key).is_some(), "{key} missing in {e:?}");
        }
    }
}

#[test]
fn chrome_json_keeps_nanoseconds() {
    let trace = trace_of(
        Instant::now(),
        vec![(0.000_001_5, 1, spawned("t")), (0.000_002_25, 1, TraceKind::Polled), (0.000_003, 1, TraceKind::Done)],
    );
    let text = trace.to_chrome_json();
    assert!(text.contains("\"ts\":2.250,\"dur\":0.750"), "{text}");
}

#[test]
fn names_are_escaped_in_json_and_svg() {
    let weird = "say \"hi\"\\\nnew line\ttab \u{1} <b>&amp;</b> ünïcødé 🦀 \u{2028}";
    let trace = trace_of(
        Instant::now(),
        vec![(0.0, 1, spawned(weird)), (0.5, 1, TraceKind::Polled), (1.0, 1, TraceKind::Done)],
    );
    let json = trace.to_chrome_json();
    assert!(!json.contains('\u{1}') && !json.contains('\u{2028}'), "raw control characters in {json}");
    let events = chrome_events(&trace);
    let name = events
        .iter()
        .find(|e| e.get("name").and_then(Json::str) == Some("thread_name"))
        .and_then(|e| e.get("args")?.get("name")?.str().map(str::to_string));
    assert_eq!(name.as_deref(), Some(weird), "the name survives a JSON round trip");

    let svg = trace.to_svg();
    let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert!(!svg.contains('\u{1}'), "XML 1.0 cannot hold U+0001");
    assert!(text.contains("say \"hi\"\\ new line tab \u{fffd} <b>&amp;</b> ünïcødé 🦀"), "{text}");
    assert!(text.contains("(id 1)say \"hi\"\\ new line tab …"), "the label, cut to 24 characters: {text}");
}

// ----- save -----

#[test]
fn save_picks_the_format_by_extension() {
    let dir = std::env::temp_dir().join(format!("aioloop-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = phase_trace();
    trace.save(dir.join("run.json")).unwrap();
    trace.save(dir.join("run.SVG")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("run.json")).unwrap(), trace.to_chrome_json());
    assert_eq!(std::fs::read_to_string(dir.join("run.SVG")).unwrap(), trace.to_svg());
    for bad in ["run.png", "run"] {
        let err = trace.save(dir.join(bad)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(".json") && err.to_string().contains(".svg"), "{err}");
        assert!(!dir.join(bad).exists(), "nothing is written for {bad}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
