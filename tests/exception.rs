//! The exception handler and debug mode: what the loop reports that no task receives as a value
//! (asyncio's `call_exception_handler`, `Task exception was never retrieved`, `Task was destroyed
//! but it is pending!`, and debug mode's `Executing <...> took N seconds`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use aioloop::EventLoop;

/// One report: message, task name, panic message.
type Report = (String, Option<String>, Option<String>);

/// Installs a handler that records every report.
fn record(lp: &EventLoop) -> Rc<RefCell<Vec<Report>>> {
    let log = Rc::new(RefCell::new(vec![]));
    let l = log.clone();
    lp.set_exception_handler(move |ctx| {
        l.borrow_mut().push((
            ctx.message.to_string(),
            ctx.task.as_ref().map(|t| t.name.clone()),
            ctx.panic_message().map(str::to_string),
        ));
    });
    log
}

fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().unwrap()
}

#[test]
fn the_panic_of_a_detached_task_goes_to_the_handler_with_its_name() {
    let mut lp = vloop();
    let log = record(&lp);
    let t = lp.spawn(async { panic!("lost") });
    t.set_name("orphan");
    drop(t);
    let read = lp.spawn(async { panic!("read") });
    lp.run_until_complete(aioloop::yield_now());
    assert!(lp.run_until_complete(read).unwrap_err().is_panic());
    assert_eq!(
        *log.borrow(),
        [("Task exception was never retrieved".to_string(), Some("orphan".to_string()), Some("lost".to_string()))]
    );
}

#[test]
fn a_handle_dropped_without_reading_a_panic_reports_it() {
    let mut lp = vloop();
    let log = record(&lp);
    let t = lp.spawn(async { panic!("unread") });
    lp.run_until_complete(aioloop::yield_now());
    assert!(log.borrow().is_empty(), "reported while the handle could still read it");
    drop(t);
    assert_eq!(log.borrow()[0].0, "Task exception was never retrieved");
    assert_eq!(log.borrow()[0].2.as_deref(), Some("unread"));
}

/// Issue 12 s6: a named task that panics and finishes, whose handle is dropped afterwards, is
/// reported by its given name, as asyncio's "Task exception was never retrieved" names it
/// (`name='worker'` in the task's repr), not as `Task-N`.
#[test]
fn a_handle_dropped_after_a_named_task_panicked_reports_it_by_name() {
    let mut lp = vloop();
    let log = record(&lp);
    let t = lp.spawn(async { panic!("unread") });
    t.set_name("worker");
    lp.run_until_complete(aioloop::yield_now());
    assert!(t.is_done());
    drop(t);
    assert_eq!(
        *log.borrow(),
        [("Task exception was never retrieved".to_string(), Some("worker".to_string()), Some("unread".to_string()))]
    );
}

#[test]
fn a_panicking_callback_is_reported_and_the_loop_goes_on() {
    let mut lp = vloop();
    let log = record(&lp);
    lp.call_soon(|| panic!("in a callback"));
    lp.call_later(Duration::from_secs(1), || panic!("in a timer"));
    assert_eq!(
        lp.run_until_complete(async {
            aioloop::sleep(Duration::from_secs(2)).await;
            7
        }),
        7
    );
    let log = log.borrow();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|(m, t, _)| m == "Exception in callback" && t.is_none()));
    assert_eq!(log[0].2.as_deref(), Some("in a callback"));
    assert_eq!(log[1].2.as_deref(), Some("in a timer"));
}

#[test]
fn closing_with_pending_tasks_reports_each_of_them() {
    let mut lp = vloop();
    let log = record(&lp);
    let pending = lp.spawn(aioloop::sleep(Duration::from_secs(60)));
    pending.set_name("sleeper");
    let done = lp.spawn(async {});
    lp.run_until_complete(aioloop::yield_now());
    assert!(done.is_done());
    lp.close();
    assert_eq!(
        *log.borrow(),
        [("Task was destroyed but it is pending!".to_string(), Some("sleeper".to_string()), None)]
    );
    assert!(pending.is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn run_cancels_leftovers_inside_the_loop_so_nothing_is_destroyed_pending() {
    // asyncio.run cancels what is left before closing: no "destroyed but pending" report. The
    // handler of `run`'s own loop cannot be set from outside, so this checks stderr in a child.
    if std::env::var_os("AIOLOOP_EXCEPTION_CHILD").is_some() {
        aioloop::run(async {
            drop(aioloop::spawn(aioloop::sleep(Duration::from_secs(60))));
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "run_cancels_leftovers_inside_the_loop_so_nothing_is_destroyed_pending", "--nocapture"])
        .env("AIOLOOP_EXCEPTION_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("destroyed"), "{stderr}");
}

#[test]
fn a_panicking_handler_is_contained() {
    let mut lp = vloop();
    lp.set_exception_handler(|_| panic!("the handler itself"));
    lp.call_soon(|| panic!("callback"));
    assert_eq!(lp.run_until_complete(async { 1 }), 1);
    lp.reset_exception_handler();
    lp.call_soon(|| panic!("again, with the default handler"));
    assert_eq!(lp.run_until_complete(async { 2 }), 2);
}

#[test]
fn debug_mode_reports_every_step_at_a_zero_threshold_with_spawn_locations() {
    let mut lp =
        EventLoop::builder().virtual_time(true).debug(true).slow_callback_duration(Duration::ZERO).build().unwrap();
    let log = record(&lp);
    let t = lp.spawn(async { aioloop::yield_now().await });
    t.set_name("stepper");
    lp.call_soon(|| {});
    lp.run_until_complete(t).unwrap();
    let log = log.borrow();
    let steps: Vec<&String> = log.iter().map(|(m, _, _)| m).filter(|m| m.contains("stepper")).collect();
    // Two steps of the task (the yield, then completion), each named with where it was spawned.
    assert_eq!(steps.len(), 2, "{log:?}");
    let here = format!("spawned at {}:", file!());
    assert!(steps.iter().all(|m| m.starts_with("Executing <Task name=stepper id=") && m.contains(&here)), "{steps:?}");
    assert!(steps.iter().all(|m| m.ends_with(" seconds")));
    assert!(log.iter().any(|(m, _, _)| m.starts_with("Executing <Handle callback> took ")));
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn debug_mode_names_the_task_that_blocked_the_loop() {
    // The seeds' warning: one blocking call stalls every task. 120 ms of real blocking against
    // the default threshold of 100 ms; the quick steps around it are not reported.
    let mut lp = EventLoop::builder().debug(true).build().unwrap();
    let log = record(&lp);
    let blocker = lp.spawn(async { std::thread::sleep(Duration::from_millis(120)) });
    blocker.set_name("blocker");
    let quick = lp.spawn(async {});
    lp.run_until_complete(async move {
        blocker.await.unwrap();
        quick.await.unwrap();
    });
    let log = log.borrow();
    assert_eq!(log.len(), 1, "{log:?}");
    let m = &log[0].0;
    assert!(m.starts_with("Executing <Task name=blocker id="), "{m}");
    let secs: f64 = m.rsplit(" took ").next().unwrap().trim_end_matches(" seconds").parse().unwrap();
    assert!((0.12..1.0).contains(&secs), "{m}");
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn debug_mode_is_off_by_default_and_on_with_aioloop_debug_1() {
    if std::env::var_os("AIOLOOP_EXCEPTION_CHILD").is_some() {
        let mut lp = EventLoop::builder().slow_callback_duration(Duration::ZERO).build().unwrap();
        lp.run_until_complete(async {});
        return;
    }
    let run = |debug: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "debug_mode_is_off_by_default_and_on_with_aioloop_debug_1", "--nocapture"])
            .env("AIOLOOP_EXCEPTION_CHILD", "1")
            .env_remove("AIOLOOP_DEBUG");
        if let Some(v) = debug {
            cmd.env("AIOLOOP_DEBUG", v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).contains("Executing <Task")
    };
    assert!(!run(None));
    assert!(run(Some("1")));
}
