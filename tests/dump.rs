//! The task dump (`EventLoop::tasks`, `all_tasks`): what each live task waits for.

use std::time::Duration;

use aioloop::{EventLoop, TaskState, WaitingOn};

#[test]
fn the_dump_says_what_each_task_waits_for() {
    let mut lp = EventLoop::builder().virtual_time(true).debug(true).build().unwrap();
    let sleeper = lp.spawn(aioloop::sleep(Duration::from_secs(5)));
    sleeper.set_name("sleeper");
    let inner = lp.spawn(aioloop::sleep(Duration::from_secs(9)));
    let inner_id = inner.id();
    let joiner = lp.spawn(async move { inner.await.unwrap() });
    joiner.set_name("joiner");
    let gatherer =
        lp.spawn(async { aioloop::gather(vec![aioloop::spawn(aioloop::sleep(Duration::from_secs(1)))]).await });
    gatherer.set_name("gatherer");
    let channel = lp.spawn(std::future::pending::<()>());
    channel.set_name("pending");
    let done = lp.spawn(async {});
    lp.run_until_complete(async {
        aioloop::yield_now().await;
        aioloop::yield_now().await;
    });
    assert!(done.is_done());
    let dump = lp.tasks();
    let of = |name: &str| dump.tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let t0 = lp.time();
    assert_eq!(of("sleeper").waiting_on, WaitingOn::Timer(t0 + Duration::from_secs(5) - Duration::ZERO));
    assert_eq!(of("joiner").waiting_on, WaitingOn::Task(inner_id));
    assert_eq!(of("gatherer").waiting_on, WaitingOn::Gather(1));
    assert_eq!(of("pending").waiting_on, WaitingOn::Other);
    assert!(of("sleeper").spawned_at.unwrap().file().ends_with("dump.rs"));
    assert!(dump.tasks.iter().all(|t| t.state == TaskState::Pending));
    assert!(!dump.tasks.iter().any(|t| t.id == done.id()), "finished tasks are not listed");
    let table = dump.to_string();
    assert!(table.lines().next().unwrap().contains("waiting on"));
    assert!(table.contains("timer in 5.000s") && table.contains("gather of 1") && table.contains("something else"));
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn a_task_reading_a_socket_waits_on_its_descriptor_and_all_tasks_sees_the_caller_running() {
    use std::os::fd::AsRawFd;
    aioloop::run(async {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let a = aioloop::Async::new(a).unwrap();
        let reader = aioloop::spawn(async move {
            let mut buf = [0u8; 1];
            a.read_with(|mut s| std::io::Read::read(&mut s, &mut buf)).await
        });
        aioloop::yield_now().await;
        let dump = aioloop::all_tasks();
        let r = dump.tasks.iter().find(|t| t.id == reader.id()).unwrap();
        assert_eq!(r.waiting_on, WaitingOn::Io { fd, write: false });
        let me = dump.tasks.iter().find(|t| Some(t.id) == aioloop::current_task()).unwrap();
        assert_eq!(me.state, TaskState::Running);
        reader.cancel();
    });
}

/// The seeds' `phase` program: `main` inside `wait` waits on its three phases and on the 6 s
/// timeout (not on "something else"); as phases finish, the count goes down; `as_completed` and
/// `shield` are named the same way, without a timer.
#[test]
fn a_task_inside_wait_waits_on_its_tasks_and_its_timeout() {
    use aioloop::ReturnWhen;
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let start = lp.time();
    let main = lp.spawn(async {
        aioloop::set_current_task_name("main");
        let phases: Vec<_> = (0..3).map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(5 * i)))).collect();
        aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await
    });
    let plain = lp.spawn(async {
        let t = aioloop::spawn(aioloop::sleep(Duration::from_secs(8)));
        aioloop::wait(vec![t], None, ReturnWhen::AllCompleted).await
    });
    plain.set_name("plain");
    let stream = lp.spawn(async {
        let mut s = aioloop::as_completed((1..=2u64).map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(i)))));
        while s.next().await.is_some() {}
    });
    stream.set_name("stream");
    let inner = lp.spawn(aioloop::sleep(Duration::from_secs(3)));
    let shielded = lp.spawn(aioloop::shield(inner));
    shielded.set_name("shielded");
    // One iteration for every task to park; phase 0 (`sleep(0)` yields once) has not finished.
    let dump = lp.run_until_complete(async {
        aioloop::yield_now().await;
        aioloop::all_tasks()
    });
    let of = |name: &str| dump.tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name}:\n{dump}"));
    let six = Some(start + Duration::from_secs(6));
    assert_eq!(of("main").waiting_on, WaitingOn::Tasks { count: 3, timeout: six });
    assert_eq!(of("plain").waiting_on, WaitingOn::Tasks { count: 1, timeout: None });
    assert_eq!(of("stream").waiting_on, WaitingOn::Tasks { count: 2, timeout: None });
    assert_eq!(of("shielded").waiting_on, WaitingOn::Tasks { count: 1, timeout: None });
    let table = dump.to_string();
    let row = |name: &str| table.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}:\n{table}"));
    assert!(row(" main ").contains("waiting   3 tasks or timer in 6.000s"), "{table}");
    assert!(row(" plain ").contains("waiting   1 task "), "{table}");
    assert!(row(" stream ").contains("waiting   2 tasks "), "{table}");
    assert!(!table.contains("something else"), "{table}");

    // At 5 s, phases 0 and 1 have finished: main waits on one task, still with its timeout.
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(5500)));
    let dump = lp.tasks();
    let main_row = dump.tasks.iter().find(|t| t.id == main.id()).unwrap();
    assert_eq!(main_row.waiting_on, WaitingOn::Tasks { count: 1, timeout: six });
    assert!(dump.to_string().contains("1 task or timer in 0.500s"), "{dump}");

    let (done, pending) = lp.run_until_complete(main).unwrap();
    assert_eq!((done.len(), pending.len()), (2, 1));
}
