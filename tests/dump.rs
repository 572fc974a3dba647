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
