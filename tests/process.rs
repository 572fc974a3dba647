//! Child processes (`aioloop::process`): the API, and the reliability checklist's items 38-48
//! (docs/reliability.md maps them), on real children of `/bin/sh`.
//!
//! CI runs this file twice: on the pidfd backend (Linux's default) and with
//! `AIOLOOP_PROCESS_BACKEND=sigchld`, the backend of macOS and the BSDs. Every test ends with the
//! harness's checks (tests/os_util): no zombie child, descriptors and signal state as at start.
//! The tests run one at a time; those that change signal dispositions or process-wide state run
//! in a child process of their own.

mod os_util;

use std::cell::Cell;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aioloop::process::{Child, Command};
use aioloop::EventLoop;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use os_util::{assert_child_passed, is_child, run_in_child, serial, watchdog, Baseline};

/// A `/bin/sh -c script` command.
fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd
}

/// The backend a new child gets in this run: "sigchld" where the kernel has no pidfd (probed),
/// or where it is forced.
fn expected_backend() -> &'static str {
    let forced = std::env::var("AIOLOOP_PROCESS_BACKEND").is_ok_and(|v| v == "sigchld");
    if kernel_has_pidfd() && !forced {
        "pidfd"
    } else {
        "sigchld"
    }
}

/// Probes `pidfd_open` on this process.
#[cfg(target_os = "linux")]
fn kernel_has_pidfd() -> bool {
    // SAFETY: the raw system call with our own pid and no flags; the descriptor is closed here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd >= 0 {
        // SAFETY: a descriptor we just opened and own.
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}

#[cfg(not(target_os = "linux"))]
fn kernel_has_pidfd() -> bool {
    false
}

/// Returns true if `pid` is a zombie (exited, not reaped) right now.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// Waits (real time, outside the loop) until child `pid` has exited: a zombie, or reaped
/// already (the SIGCHLD backend looks once right after the spawn).
fn until_exited(pid: u32) {
    let start = Instant::now();
    while !is_zombie(pid) && std::fs::metadata(format!("/proc/{pid}")).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "child {pid} did not exit");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (real time, outside the loop) until child `pid` has exited and is a zombie.
fn until_zombie(pid: u32) {
    let start = Instant::now();
    while !is_zombie(pid) {
        assert!(start.elapsed() < Duration::from_secs(5), "child {pid} did not exit");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

#[test]
fn spawn_wait_output_and_status_of_real_children() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    lp.run_until_complete(async {
        let out = sh("echo out; echo err >&2; exit 4").output().await.unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        let status = sh("exit 9").status().await.unwrap();
        assert_eq!(status.code(), Some(9));
        let out = sh("echo $A$B; pwd").env("A", "x").envs([("B", "y")]).current_dir("/").output().await.unwrap();
        assert_eq!(out.stdout, b"xy\n/\n");
        // `output` read its pipes, but `spawn` afterwards inherits again (std's defaults).
        let mut cmd = sh("exit 0");
        cmd.output().await.unwrap();
        let child = cmd.spawn().unwrap();
        assert!(child.stdout.is_none() && child.stderr.is_none() && child.stdin.is_none());
        let mut child = child;
        assert!(child.wait().await.unwrap().success());
    });
    drop(lp);
    base.check(&[]);
}

#[test]
fn a_missing_program_is_not_found_and_spawning_outside_a_loop_is_an_error() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let e = Command::new("/no/such/program").spawn().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = Command::new("no-such-program-in-path").output().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = Command::new("/etc/passwd").spawn().unwrap_err(); // not executable
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    });
    let e = Command::new("true").spawn().unwrap_err();
    assert!(e.to_string().contains("no running event loop"), "{e}");
    base.check(&[]);
}

#[test]
fn pipes_are_futures_io_streams() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = cat.stdin.take().unwrap();
        let mut stdout = cat.stdout.take().unwrap();
        for line in ["one\n", "two\n"] {
            stdin.write_all(line.as_bytes()).await.unwrap();
            let mut buf = vec![0; line.len()];
            stdout.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, line.as_bytes());
        }
        stdin.close().await.unwrap();
        assert_eq!(stdin.write(b"x").await.unwrap_err().kind(), io::ErrorKind::NotConnected);
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(cat.wait().await.unwrap().success());
    });
    base.check(&[]);
}

#[test]
fn wait_twice_try_wait_and_a_dropped_wait_give_the_same_status() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let mut child = sh("sleep 0.05; exit 3").spawn().unwrap();
        assert_eq!(child.__backend(), expected_backend());
        assert!(child.try_wait().unwrap().is_none());
        // A wait abandoned by its task loses nothing.
        let first = aioloop::timeout(Duration::from_millis(1), child.wait()).await;
        assert!(first.is_err());
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        assert_eq!(child.try_wait().unwrap().unwrap().code(), Some(3));
    });
    base.check(&[]);
}

#[test]
fn another_task_kills_the_child_while_one_waits() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let waiter = aioloop::spawn(child.wait()); // does not borrow the child
        aioloop::sleep(Duration::from_millis(20)).await;
        child.kill().unwrap();
        let status = waiter.await.unwrap().unwrap();
        assert_eq!(status.signal(), Some(9));
    });
    base.check(&[]);
}

#[test]
fn virtual_time_does_not_jump_past_a_live_childs_exit() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let started = Instant::now();
    let (status, after) = lp.run_until_complete(async {
        let mut child = sh("sleep 0.3; exit 2").spawn().unwrap();
        // A virtual 5 s timeout would fire at once if time jumped while the child runs.
        let status = aioloop::timeout(Duration::from_secs(5), child.wait()).await;
        let t = aioloop::now();
        // Once the child is gone, virtual time jumps again.
        aioloop::sleep(Duration::from_secs(3600)).await;
        (status, aioloop::now() - t)
    });
    assert_eq!(status.expect("the child's exit came first").unwrap().code(), Some(2));
    assert_eq!(after, Duration::from_secs(3600));
    let real = started.elapsed();
    assert!(real >= Duration::from_millis(300) && real < Duration::from_secs(3), "{real:?}");
    drop(lp);
    base.check(&[]);
}

#[test]
fn a_thousand_concurrent_children_are_all_read_and_reaped() {
    // Issue 11's scale test: 1,000 `sh -c 'echo N'` from one loop, every output read, every
    // child reaped, descriptors back to their baseline (the harness checks the last two).
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let outputs = watchdog(Duration::from_secs(60), "1,000 children", || {
        lp.run_until_complete(async {
            let tasks: Vec<_> = (0..1000)
                .map(|n| {
                    let child = sh(&format!("echo {n}")).stdout(Stdio::piped()).spawn().unwrap();
                    aioloop::spawn(child.wait_with_output())
                })
                .collect();
            aioloop::gather(tasks).await.unwrap()
        })
    });
    for (n, out) in outputs.into_iter().enumerate() {
        let out = out.unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, format!("{n}\n").as_bytes());
    }
    drop(lp);
    base.check(&[]);
}

// ---------------------------------------------------------------------------------------------
// 38: dropped children leave no zombie
// ---------------------------------------------------------------------------------------------

/// Checklist 38: 200 `sleep 0.05`; a third dropped at once, a third dropped after `kill()`, the
/// rest failing their setup after the OS spawn (test hook). After a second with no other
/// process activity: no zombie, no orphan left (the harness checks both).
#[test]
fn item_38_dropped_killed_and_failed_setup_children_leave_no_zombie() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    lp.run_until_complete(async {
        for i in 0..200 {
            match i % 3 {
                0 => drop(Command::new("sleep").arg("0.05").spawn().unwrap()),
                1 => {
                    let child = Command::new("sleep").arg("0.05").spawn().unwrap();
                    child.kill().unwrap();
                    drop(child);
                }
                _ => {
                    aioloop::process::__set_spawn_setup_fault(true);
                    let e = Command::new("sleep").arg("0.05").stdout(Stdio::piped()).spawn().unwrap_err();
                    aioloop::process::__set_spawn_setup_fault(false);
                    assert!(e.to_string().contains("injected"), "{e}");
                }
            }
        }
        aioloop::sleep(Duration::from_secs(1)).await;
    });
    assert_eq!(os_util::zombie_children(), Vec::<u32>::new());
    assert_eq!(aioloop::signal::__orphans(), 0);
    drop(lp);
    base.check(&[]);
}

/// Checklist 38, the policy when the loop goes first: children still running when their loop is
/// dropped (their `Child`s dropped with it, or afterwards) are reaped by the process-wide
/// signal thread when they exit.
#[test]
fn item_38_children_outliving_their_loop_are_reaped_by_the_signal_thread() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let kept: Vec<Child> = lp.run_until_complete(async {
        let dropped: Vec<Child> = (0..5).map(|_| Command::new("sleep").arg("0.2").spawn().unwrap()).collect();
        aioloop::spawn(async move {
            let _held = dropped; // dropped when the loop closes, with this pending task
            aioloop::sleep(Duration::from_secs(60)).await;
        });
        (0..5).map(|_| Command::new("sleep").arg("0.2").spawn().unwrap()).collect()
    });
    let pids: Vec<u32> = kept.iter().map(Child::id).collect();
    lp.set_exception_handler(|_| {}); // "Task was destroyed but it is pending!" is expected
    drop(lp);
    drop(kept); // the loop is gone: these go to the signal thread too
    std::thread::sleep(Duration::from_millis(400));
    for pid in pids {
        assert!(!is_zombie(pid));
    }
    base.check(&[]);
}

// ---------------------------------------------------------------------------------------------
// 39: coalesced SIGCHLDs
// ---------------------------------------------------------------------------------------------

/// Checklist 39: 100 children exit while the loop's thread is blocked, so their exits pile up
/// (coalesced SIGCHLDs, or pidfds all ready at once): once the loop runs again, every `wait`
/// resolves within a second, both for waits already parked before the exits and for waits
/// first polled after them.
#[test]
fn item_39_a_hundred_exits_seen_late_are_all_reaped() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        // Parked first: each task waits before its child exits.
        let mut children: Vec<Child> = (0..100).map(|_| Command::new("sleep").arg("0.2").spawn().unwrap()).collect();
        let parked: Vec<_> = children.iter_mut().map(|c| aioloop::spawn(c.wait())).collect();
        aioloop::sleep(Duration::from_millis(10)).await; // every waiter parked
        for c in &children {
            until_exited(c.id()); // blocks the loop: nothing is reaped meanwhile
        }
        let started = Instant::now();
        for status in aioloop::gather(parked).await.unwrap() {
            assert!(status.unwrap().success());
        }
        assert!(started.elapsed() < Duration::from_secs(1), "parked waits: {:?}", started.elapsed());
        // Polled only after every exit.
        let mut children: Vec<Child> = (0..100).map(|_| Command::new("true").spawn().unwrap()).collect();
        for c in &children {
            until_exited(c.id());
        }
        let started = Instant::now();
        let waits: Vec<_> = children.iter_mut().map(|c| aioloop::spawn(c.wait())).collect();
        for status in aioloop::gather(waits).await.unwrap() {
            assert!(status.unwrap().success());
        }
        assert!(started.elapsed() < Duration::from_secs(1), "late waits: {:?}", started.elapsed());
    });
    base.check(&[]);
}

/// Checklist 39 under a signal storm: SIGALRM every 100 µs at the process while 100 children
/// exit and are reaped; no `wait` is lost to an `EINTR`.
#[test]
fn item_39_reaping_survives_a_sigalrm_storm() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let alarms = Rc::new(Cell::new(0u32));
    let a = alarms.clone();
    lp.add_signal_handler(aioloop::signal::SIGALRM, move || a.set(a.get() + 1)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                os_util::send(aioloop::signal::SIGALRM);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    watchdog(Duration::from_secs(20), "reaping under SIGALRM", || {
        lp.run_until_complete(async {
            for _ in 0..2 {
                let mut children: Vec<Child> = (0..50).map(|_| sh("sleep 0.0$(( $$ % 5 ))").spawn().unwrap()).collect();
                let waits: Vec<_> = children.iter_mut().map(|c| aioloop::spawn(c.wait())).collect();
                for status in aioloop::gather(waits).await.unwrap() {
                    assert!(status.unwrap().success());
                }
            }
        })
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    storm.join().unwrap();
    // The last alarms reach the loop before its listener goes (after that, SIGALRM would
    // terminate the process again).
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(50)));
    assert!(alarms.get() > 0);
    assert!(lp.remove_signal_handler(aioloop::signal::SIGALRM));
    drop(lp);
    base.check(&[aioloop::signal::SIGALRM]);
}

// ---------------------------------------------------------------------------------------------
// 40: only our own children
// ---------------------------------------------------------------------------------------------

/// Checklist 40: children of `std::process` and of aioloop exit side by side; the standard
/// library's `wait` still gets its child's real status (aioloop never waits for "any child").
#[test]
fn item_40_only_our_own_children_are_reaped() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        for i in 0..10 {
            let mut theirs = std::process::Command::new("/bin/sh").args(["-c", &format!("exit {i}")]).spawn().unwrap();
            let mut ours = sh(&format!("exit {}", i + 100)).spawn().unwrap();
            aioloop::sleep(Duration::from_millis(20)).await; // both exited; SIGCHLDs handled
            assert_eq!(ours.wait().await.unwrap().code(), Some(i + 100));
            assert_eq!(theirs.wait().unwrap().code(), Some(i));
        }
    });
    base.check(&[]);
}

/// Checklist 40, the reverse: someone else reaps an aioloop child behind its back (a raw
/// `waitpid(pid)`): `wait` gives an error that says so, at once, without hanging or panicking.
#[test]
fn item_40_a_status_stolen_by_waitpid_is_a_defined_error() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let mut child = lp.run_until_complete(async { Command::new("sleep").arg("0.05").spawn().unwrap() });
    until_zombie(child.id()); // the loop is not running: nobody reaps it yet
    let mut raw = 0;
    // SAFETY: waitpid on our own child's pid with a valid out-pointer.
    let stolen = unsafe { libc::waitpid(child.id() as i32, &mut raw, 0) };
    assert_eq!(stolen, child.id() as i32);
    let e = watchdog(Duration::from_secs(5), "wait after a stolen status", || {
        lp.run_until_complete(async { child.wait().await.unwrap_err() })
    });
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert!(e.to_string().contains("collected by someone else"), "{e}");
    assert_eq!(child.kill().unwrap_err().raw_os_error(), Some(libc::ESRCH)); // and no kill(2)
    drop(lp);
    base.check(&[]);
}

/// Checklist 40 with SIGCHLD set to `SIG_IGN` (after aioloop installed its handler): the kernel
/// reaps children itself, so no status is left; `wait` reports it within about a second (the
/// SIGCHLD backend's periodic re-check), without hanging. Changes a disposition: own process.
#[test]
fn item_40_sigchld_ignored_gives_a_defined_error() {
    if is_child() {
        aioloop::run(async {
            // aioloop's SIGCHLD handler is installed (the orphan reaper's)...
            drop(Command::new("sleep").arg("0.5").spawn().unwrap());
            // ... then someone sets SIGCHLD to SIG_IGN.
            // SAFETY: `signal` with a valid signal number and SIG_IGN.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            let mut child = Command::new("true").spawn().unwrap();
            let started = Instant::now();
            let e = aioloop::timeout(Duration::from_secs(5), child.wait()).await.expect("no hang").unwrap_err();
            assert!(e.to_string().contains("collected by someone else"), "{e}");
            assert!(started.elapsed() < Duration::from_secs(3));
        });
        return;
    }
    let _s = serial();
    let out = run_in_child("item_40_sigchld_ignored_gives_a_defined_error", &[]);
    assert_child_passed(&out);
}

// ---------------------------------------------------------------------------------------------
// 41: pid reuse
// ---------------------------------------------------------------------------------------------

/// Checklist 41: once a child was awaited its number is the kernel's again: `kill` reports
/// `ESRCH` and sends nothing (the test hook counts the signals aioloop sends).
#[test]
fn item_41_kill_after_reap_sends_nothing() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let mut child = Command::new("true").spawn().unwrap();
        assert!(child.wait().await.unwrap().success());
        let sent = aioloop::process::__signals_sent();
        for _ in 0..3 {
            assert_eq!(child.kill().unwrap_err().raw_os_error(), Some(libc::ESRCH));
        }
        assert_eq!(aioloop::process::__signals_sent(), sent);
        // A child that exited but is not reaped yet can still be "killed": nothing changes.
        let mut child = Command::new("sleep").arg("0.05").spawn().unwrap();
        until_zombie(child.id());
        child.kill().unwrap();
        assert!(child.wait().await.unwrap().success());
    });
    base.check(&[]);
}

/// Checklist 41 under races: 1,000 short children, each awaited by one task and killed by
/// another at a random moment; every kill lands on its own child or reports `ESRCH`, and a
/// sentinel `sleep 60` of the standard library is never signalled.
#[test]
fn item_41_racing_kills_and_waits_never_hit_another_process() {
    let _s = serial();
    let base = Baseline::take();
    let mut sentinel = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let (killed, exited) = watchdog(Duration::from_secs(60), "racing kills", || {
        aioloop::run(async {
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut tasks = Vec::new();
            for _ in 0..1000 {
                let mut child = Command::new("true").spawn().unwrap();
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let yields = rng % 8;
                let waiter = aioloop::spawn(child.wait());
                let killer = aioloop::spawn(async move {
                    for _ in 0..yields {
                        aioloop::yield_now().await;
                    }
                    child.kill()
                });
                tasks.push((waiter, killer));
            }
            let (mut killed, mut exited) = (0, 0);
            for (waiter, killer) in tasks {
                let status = waiter.await.unwrap().unwrap();
                match killer.await.unwrap() {
                    Ok(()) => {}
                    Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}"),
                }
                match status.signal() {
                    Some(9) => killed += 1,
                    None => exited += 1,
                    other => panic!("unexpected status {status:?} ({other:?})"),
                }
            }
            (killed, exited)
        })
    });
    assert_eq!(killed + exited, 1000);
    assert!(sentinel.try_wait().unwrap().is_none(), "the sentinel was signalled");
    sentinel.kill().unwrap();
    sentinel.wait().unwrap();
    base.check(&[]);
}

// ---------------------------------------------------------------------------------------------
// 42: pidfd absent or refused
// ---------------------------------------------------------------------------------------------

/// Checklist 42: `pidfd_open` refused (`EPERM`, as under a container's seccomp profile) or out
/// of descriptors (`EMFILE`): that child falls back to the SIGCHLD backend, and spawn, wait,
/// kill and drop all work; the next child uses pidfd again.
#[test]
#[cfg(target_os = "linux")]
fn item_42_pidfd_refused_falls_back_per_child() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        for errno in [libc::EPERM, libc::EMFILE] {
            aioloop::process::__set_pidfd_open_fault(Some(errno));
            let mut exits = sh("exit 5").spawn().unwrap();
            let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
            let dropped = Command::new("sleep").arg("0.05").spawn().unwrap();
            let dropped_killed = Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
            aioloop::process::__set_pidfd_open_fault(None);
            for c in [&exits, &killed, &dropped, &dropped_killed] {
                assert_eq!(c.__backend(), "sigchld");
            }
            assert_eq!(exits.wait().await.unwrap().code(), Some(5));
            killed.kill().unwrap();
            assert_eq!(killed.wait().await.unwrap().signal(), Some(9));
            drop((dropped, dropped_killed));
            let mut next = Command::new("true").spawn().unwrap();
            assert_eq!(next.__backend(), expected_backend(), "only ENOSYS is cached");
            next.wait().await.unwrap();
        }
    });
    base.check(&[]);
}

/// Checklist 42: `ENOSYS` (a kernel before 5.3) is true of every later child: it is cached for
/// the process. Process-wide state: own process.
#[test]
#[cfg(target_os = "linux")]
fn item_42_pidfd_enosys_is_cached_for_the_process() {
    if is_child() {
        aioloop::run(async {
            aioloop::process::__set_pidfd_open_fault(Some(libc::ENOSYS));
            let mut first = sh("exit 1").spawn().unwrap();
            aioloop::process::__set_pidfd_open_fault(None);
            assert_eq!(first.__backend(), "sigchld");
            assert_eq!(first.wait().await.unwrap().code(), Some(1));
            for _ in 0..3 {
                let mut later = sh("exit 2").spawn().unwrap();
                assert_eq!(later.__backend(), "sigchld");
                assert_eq!(later.wait().await.unwrap().code(), Some(2));
            }
        });
        return;
    }
    let _s = serial();
    assert_child_passed(&run_in_child("item_42_pidfd_enosys_is_cached_for_the_process", &[]));
}

// ---------------------------------------------------------------------------------------------
// 43-45: pipes
// ---------------------------------------------------------------------------------------------

/// Checklist 43: `cat` and `sort` with a piped stdin the test never touches: `wait` closes it
/// first, so they see end of file and exit 0 (a 2 s watchdog).
#[test]
fn item_43_wait_closes_an_unclaimed_stdin() {
    let _s = serial();
    let base = Baseline::take();
    watchdog(Duration::from_secs(2), "wait with stdin open", || {
        aioloop::run(async {
            for program in ["cat", "sort"] {
                let mut child = Command::new(program).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
                assert!(child.wait().await.unwrap().success(), "{program}");
            }
        })
    });
    base.check(&[]);
}

/// Checklist 44: a child writes 1 MiB to one pipe, then 1 MiB to the other (either order):
/// `output` reads both concurrently and returns within 5 s with both sizes exact.
#[test]
fn item_44_output_reads_both_pipes_concurrently() {
    let _s = serial();
    let base = Baseline::take();
    let mib = 1 << 20;
    watchdog(Duration::from_secs(5), "output of 2 MiB", || {
        aioloop::run(async {
            let script = "head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero";
            let out = sh(script).output().await.unwrap();
            assert!(out.status.success());
            assert_eq!((out.stdout.len(), out.stderr.len()), (mib, mib));
            let script = "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2";
            let out = sh(script).output().await.unwrap();
            assert_eq!((out.stdout.len(), out.stderr.len()), (mib, mib));
        })
    });
    base.check(&[]);
}

/// Checklist 44: 1 MiB fed to `cat` while its stdout is read by another task: writes and reads
/// progress together (either alone would fill a pipe and stop).
#[test]
fn item_44_feeding_cat_while_reading_it_does_not_deadlock() {
    let _s = serial();
    let base = Baseline::take();
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expected = data.clone();
    let echoed = watchdog(Duration::from_secs(5), "cat round trip", || {
        aioloop::run(async move {
            let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
            let mut stdin = cat.stdin.take().unwrap();
            let writer = aioloop::spawn(async move {
                stdin.write_all(&data).await.unwrap();
                stdin.close().await.unwrap();
            });
            let out = cat.wait_with_output().await.unwrap();
            writer.await.unwrap();
            out.stdout
        })
    });
    assert!(echoed == expected, "{} bytes came back", echoed.len());
    base.check(&[]);
}

/// Checklist 45 (a): a grandchild inherits stdout and keeps it open after the child exited.
/// `wait` returns when the child exits; `output` follows its documented rule: it drains the
/// pipes for `DRAIN_AFTER_EXIT` after the exit and returns what the child wrote.
#[test]
fn item_45_a_grandchild_holding_stdout_holds_neither_wait_nor_output() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let started = Instant::now();
        let mut child = sh("sleep 2 & echo hi").stdout(Stdio::piped()).spawn().unwrap();
        assert!(child.wait().await.unwrap().success());
        assert!(started.elapsed() < Duration::from_millis(900), "wait: {:?}", started.elapsed());
        drop(child);
        let started = Instant::now();
        let out = sh("sleep 2 & echo hi").output().await.unwrap();
        let took = started.elapsed();
        assert_eq!(out.stdout, b"hi\n");
        assert!(took >= aioloop::process::DRAIN_AFTER_EXIT, "{took:?}");
        assert!(took < Duration::from_millis(900), "output: {took:?}");
    });
    base.check(&[]);
}

/// Checklist 45 (b): the child closes its stdout, then exits 0.2 s later: end of file comes at
/// once, the exit when it happens; both are reported.
#[test]
fn item_45_end_of_file_before_exit_are_two_events() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let started = Instant::now();
        let mut child = sh("exec 1>&-; sleep 0.2").stdout(Stdio::piped()).spawn().unwrap();
        let mut rest = Vec::new();
        child.stdout.as_mut().unwrap().read_to_end(&mut rest).await.unwrap();
        let eof = started.elapsed();
        assert!(rest.is_empty());
        assert!(eof < Duration::from_millis(150), "end of file after {eof:?}");
        assert!(child.wait().await.unwrap().success());
        assert!(started.elapsed() >= Duration::from_millis(200));
    });
    base.check(&[]);
}

/// Checklist 45 (c): a child that exits while the parent still holds its stdin's write end has
/// its status delivered (the pipe being open does not hold the exit back).
#[test]
fn item_45_an_exit_with_our_stdin_end_still_open_is_delivered() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let mut child = sh("exit 6").stdin(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take(); // held, not closed
        assert_eq!(child.wait().await.unwrap().code(), Some(6));
        drop(stdin);
    });
    base.check(&[]);
}

// ---------------------------------------------------------------------------------------------
// 46-48: what a child inherits
// ---------------------------------------------------------------------------------------------

/// Checklist 46: with a listening socket, the signal doorbell, a pidfd and another child's
/// pipes open in the parent, `ls -l /proc/self/fd` in a child shows only 0, 1, 2, ls's own
/// directory descriptor, and what this test process itself inherited without close-on-exec
/// (cargo's jobserver pipe): nothing of the loop leaks.
#[test]
#[cfg(target_os = "linux")]
fn item_46_no_loop_descriptor_leaks_into_a_child() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        let _listener = aioloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _winch = aioloop::signal::Signal::new(aioloop::signal::SIGWINCH).unwrap();
        let mut other = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        // What a child may inherit: 0-2 and the descriptors without close-on-exec, none of ours.
        let inheritable: Vec<u32> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&fd| {
                // SAFETY: F_GETFD on a number: a closed one just fails.
                let flags = unsafe { libc::fcntl(fd as i32, libc::F_GETFD) };
                flags >= 0 && flags & libc::FD_CLOEXEC == 0
            })
            .collect();
        let out = Command::new("ls").args(["-l", "/proc/self/fd"]).output().await.unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        let in_child: Vec<u32> = listing
            .lines()
            .filter(|l| l.contains(" -> "))
            .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last()?.parse().ok())
            .collect();
        let extra: Vec<u32> = in_child.iter().copied().filter(|fd| !inheritable.contains(fd)).collect();
        assert_eq!(extra.len(), 1, "only ls's directory descriptor is new: {extra:?}\n{listing}");
        for fd in [0, 1, 2] {
            assert!(in_child.contains(&fd));
        }
        other.wait().await.unwrap();
    });
    base.check(&[]);
}

/// Checklist 46: child A (spawned by the loop) and child B (spawned at the same moment by a
/// thread of the executor) run side by side: A's stdout reaches end of file when A exits,
/// although B, which would hold a leaked copy of A's pipe, still runs.
#[test]
fn item_46_pipes_of_concurrent_spawns_do_not_leak_into_each_other() {
    let _s = serial();
    let base = Baseline::take();
    aioloop::run(async {
        for _ in 0..20 {
            let b = aioloop::run_in_executor(|| {
                std::process::Command::new("sleep").arg("0.5").stdout(Stdio::piped()).spawn().unwrap()
            });
            let started = Instant::now();
            let out = sh("echo a").output().await.unwrap();
            assert_eq!(out.stdout, b"a\n");
            assert!(started.elapsed() < Duration::from_millis(400), "A's stdout was held open");
            let mut b = b.await.unwrap();
            b.kill().unwrap();
            b.wait().unwrap();
        }
    });
    base.check(&[]);
}

/// Checklist 47: the loop's thread blocks SIGINT, SIGTERM and SIGCHLD, and the process ignores
/// SIGPIPE (as every Rust program does): a child starts with an empty mask and none of those
/// ignored, and `sleep 10` dies of SIGTERM. Changes the mask: own process.
#[test]
#[cfg(target_os = "linux")]
fn item_47_children_start_with_a_clean_signal_mask_and_dispositions() {
    if is_child() {
        // SAFETY: plain libc calls on a local, initialised signal set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
                libc::sigaddset(&mut set, sig);
            }
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        aioloop::run(async {
            let out = Command::new("grep").args(["^Sig", "/proc/self/status"]).output().await.unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let mask = |field: &str| -> u64 {
                let line = text.lines().find(|l| l.starts_with(field)).unwrap();
                u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
            };
            assert_eq!(mask("SigBlk:"), 0, "{text}");
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD, libc::SIGPIPE] {
                assert_eq!(mask("SigIgn:") & os_util::bit(sig), 0, "signal {sig} ignored in the child: {text}");
            }
            let mut sleeper = Command::new("sleep").arg("10").spawn().unwrap();
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe { libc::kill(sleeper.id() as i32, libc::SIGTERM) };
            let status = aioloop::timeout(Duration::from_secs(2), sleeper.wait()).await.unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        });
        return;
    }
    let _s = serial();
    assert_child_passed(&run_in_child("item_47_children_start_with_a_clean_signal_mask_and_dispositions", &[]));
}

/// Checklist 48: four threads allocate and take stdout's lock in a loop while the loop spawns
/// 1,000 children through `fork` (a `pre_exec` closure forces it) whose `pre_exec` calls only
/// async-signal-safe functions: every child execs (a 20 s watchdog; a child stuck on a lock
/// inherited from another thread would hang its spawn). The four are plain threads rather than
/// `run_in_executor` jobs: four jobs submitted at once while one pool thread idles start one by
/// one (see the report of this branch), and these jobs never end by themselves.
#[test]
fn item_48_children_exec_while_other_threads_allocate_and_print() {
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let _s = serial();
    let base = Baseline::take();
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    let v: Vec<String> = (0..16).map(|j| format!("{i}-{j}")).collect();
                    n += v.len() as u64;
                    let _out = std::io::stdout().lock();
                }
                n
            })
        })
        .collect();
    watchdog(Duration::from_secs(20), "spawns beside allocating threads", || {
        aioloop::run(async {
            let mut children = Vec::new();
            for _ in 0..1000 {
                let mut cmd = Command::new("true");
                // SAFETY: the closure calls one async-signal-safe function and allocates nothing.
                unsafe {
                    cmd.as_std_mut().pre_exec(|| {
                        libc::getppid();
                        Ok(())
                    })
                };
                children.push(cmd.spawn().unwrap());
            }
            for mut c in children {
                assert!(c.wait().await.unwrap().success());
            }
        })
    });
    stop.store(true, SeqCst);
    for b in busy {
        assert!(b.join().unwrap() > 0);
    }
    base.check(&[]);
}

// ---------------------------------------------------------------------------------------------
// 53: a loop on another thread
// ---------------------------------------------------------------------------------------------

/// Checklist 53 (its SIGCHLD part): reaping works for a loop on a thread that is not the one
/// the kernel may pick for SIGCHLD, while the spawning thread is blocked in `join()`.
#[test]
fn item_53_reaping_works_on_a_loop_thread_while_the_spawner_blocks_in_join() {
    let _s = serial();
    let base = Baseline::take();
    let codes = watchdog(Duration::from_secs(10), "a loop on another thread", || {
        std::thread::spawn(|| {
            aioloop::run(async {
                let mut children: Vec<Child> = (0..20).map(|i| sh(&format!("exit {i}")).spawn().unwrap()).collect();
                let waits: Vec<_> = children.iter_mut().map(|c| aioloop::spawn(c.wait())).collect();
                aioloop::gather(waits)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.unwrap().code().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .join()
        .unwrap()
    });
    assert_eq!(codes, (0..20).collect::<Vec<_>>());
    base.check(&[]);
}

/// A `Child`'s `Debug` shows its id; the `Wait` future and `Command` print too.
#[test]
fn debug_output() {
    let _s = serial();
    aioloop::run(async {
        let mut child = Command::new("true").spawn().unwrap();
        let text = format!("{child:?}");
        assert!(text.contains(&child.id().to_string()), "{text}");
        assert!(format!("{:?}", child.wait()).starts_with("Wait"));
        child.wait().await.unwrap();
        assert!(format!("{:?}", Command::new("x")).contains("\"x\""));
    });
}
