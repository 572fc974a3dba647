//! Signals (`aioloop::signal`): the API, and the reliability checklist's items 49-54
//! (docs/reliability.md maps them). Signals go only to this test process, or to a child copy of
//! it that a test starts for itself.
//!
//! Every test ends with the harness's checks (tests/os_util): descriptors, signal mask and
//! dispositions as at start (a signal a test listened to may keep aioloop's handler, which then
//! performs the default action). The tests run one at a time, since the signals are the
//! process's; those that change dispositions, or need a signal's default action to kill, run in
//! a child process of their own.

mod os_util;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aioloop::signal::{Signal, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use aioloop::EventLoop;
use os_util::{assert_child_passed, is_child, run_in_child, send, serial, watchdog, Baseline};

/// Runs `lp` until `done` returns true (checked every millisecond), for at most `limit`.
fn run_until(lp: &mut EventLoop, limit: Duration, done: impl Fn() -> bool) {
    lp.run_until_complete(async {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "not done within {limit:?}");
            aioloop::sleep(Duration::from_millis(1)).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

/// asyncio's `add_signal_handler`: the callback runs on the loop's thread, once per delivery
/// (deliveries are spaced here), is replaced by a second `add` for the same signal, and is gone
/// after `remove` (which says whether there was one).
#[test]
fn a_handler_runs_on_the_loop_thread_and_can_be_replaced_and_removed() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.add_signal_handler(SIGUSR1, move || l.borrow_mut().push(("first", std::thread::current().id()))).unwrap();
    for _ in 0..3 {
        send(SIGUSR1);
        let n = log.borrow().len();
        run_until(&mut lp, Duration::from_secs(5), || log.borrow().len() > n);
    }
    let l = log.clone();
    lp.add_signal_handler(SIGUSR1, move || l.borrow_mut().push(("second", std::thread::current().id()))).unwrap();
    send(SIGUSR1);
    run_until(&mut lp, Duration::from_secs(5), || log.borrow().len() == 4);
    let me = std::thread::current().id();
    let names: Vec<&str> = log
        .borrow()
        .iter()
        .map(|(n, t)| {
            assert_eq!(*t, me, "ran on another thread");
            *n
        })
        .collect();
    assert_eq!(names, ["first", "first", "first", "second"]);
    assert!(lp.remove_signal_handler(SIGUSR1));
    assert!(!lp.remove_signal_handler(SIGUSR1));
    drop(lp);
    base.check(&[SIGUSR1]);
}

/// Bad signal numbers are `InvalidInput`, from every entry point, and register nothing (the
/// harness checks that no signal became caught).
#[test]
fn invalid_signal_numbers_are_invalid_input_and_register_nothing() {
    let _s = serial();
    let base = Baseline::take();
    let lp = EventLoop::new().unwrap();
    #[cfg(target_os = "linux")]
    let last = libc::SIGRTMAX();
    #[cfg(not(target_os = "linux"))]
    let last = 31;
    for signum in
        [0, -1, last + 1, 1000, i32::MIN, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGFPE, libc::SIGILL]
    {
        let e = lp.add_signal_handler(signum, || {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{signum}: {e}");
        let e = EventLoop::builder().dump_on_signal(signum).build().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{signum}: {e}");
        assert!(!lp.remove_signal_handler(signum));
    }
    aioloop::run(async {
        for signum in [0, last + 1, libc::SIGKILL, libc::SIGSTOP] {
            assert_eq!(Signal::new(signum).unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert_eq!(aioloop::add_signal_handler(signum, || {}).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    });
    assert_eq!(aioloop::signal::raise_signal(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(Signal::new(SIGUSR1).unwrap_err().to_string().contains("no running event loop"));
    drop(lp);
    base.check(&[]);
}

/// A callback that panics is reported ("Exception in callback"), stays registered, and the loop
/// goes on.
#[test]
fn a_panicking_signal_callback_is_reported_and_stays_registered() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(move |ctx| r.borrow_mut().push(format!("{}: {:?}", ctx.message, ctx.panic_message())));
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_signal_handler(SIGUSR2, move || {
        c.set(c.get() + 1);
        panic!("boom {}", c.get());
    })
    .unwrap();
    for i in 1..=2 {
        send(SIGUSR2);
        run_until(&mut lp, Duration::from_secs(5), || calls.get() == i);
    }
    assert_eq!(reports.borrow().len(), 2);
    assert!(reports.borrow()[1].starts_with("Exception in callback: Some(\"boom 2\")"), "{:?}", reports.borrow());
    assert!(lp.remove_signal_handler(SIGUSR2));
    drop(lp);
    base.check(&[SIGUSR2]);
}

/// `Signal`: `recv`, the `Stream` of deliveries, a delivery kept for the next `recv`, and the
/// free functions on the running loop.
#[test]
fn signal_streams_and_the_free_functions() {
    use futures_lite::StreamExt;
    let _s = serial();
    let base = Baseline::take();
    watchdog(Duration::from_secs(10), "signal streams", || {
        aioloop::run(async {
            let mut a = Signal::new(SIGUSR1).unwrap();
            let mut b = Signal::new(SIGUSR1).unwrap();
            assert_eq!(a.signum(), SIGUSR1);
            send(SIGUSR1);
            a.recv().await;
            assert_eq!(b.next().await, Some(())); // the same delivery, kept for `b`
                                                  // Nothing more pending.
            let idle = aioloop::timeout(Duration::from_millis(30), a.recv()).await;
            assert!(idle.is_err());
            let got = Rc::new(Cell::new(0));
            let g = got.clone();
            aioloop::add_signal_handler(SIGUSR1, move || g.set(g.get() + 1)).unwrap();
            send(SIGUSR1);
            a.recv().await;
            b.recv().await;
            aioloop::sleep(Duration::from_millis(10)).await;
            assert_eq!(got.get(), 1);
            assert!(aioloop::remove_signal_handler(SIGUSR1));
            assert!(format!("{a:?}").contains("Signal"));
        })
    });
    base.check(&[SIGUSR1]);
}

// ---------------------------------------------------------------------------------------------
// 49: a signal while the loop sleeps
// ---------------------------------------------------------------------------------------------

/// Checklist 49: the loop idles in its poller (no timer, nothing ready); another thread sends
/// SIGUSR1 10,000 times at random gaps of 0-100 µs. Every delivery, or the coalesced burst it
/// belongs to, runs the callback within 100 ms of being sent.
#[test]
fn item_49_signals_reach_a_loop_idle_in_its_poller_within_100_ms() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let handled: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let finished = Arc::new(AtomicBool::new(false));
    let done = aioloop::sync::Event::new();
    {
        let (handled, finished, done) = (handled.clone(), finished.clone(), done.clone());
        lp.add_signal_handler(SIGUSR1, move || {
            handled.borrow_mut().push(Instant::now());
            if finished.load(SeqCst) {
                done.set();
            }
        })
        .unwrap();
    }
    let sender = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            let mut sent = Vec::with_capacity(10_000);
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..10_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let gap = Duration::from_micros(rng % 101);
                let until = Instant::now() + gap;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                if i == 9_999 {
                    finished.store(true, SeqCst);
                }
                sent.push(Instant::now());
                send(SIGUSR1);
            }
            sent
        })
    };
    watchdog(Duration::from_secs(30), "10,000 signals", || lp.run_until_complete(done.wait()));
    let sent = sender.join().unwrap();
    let handled = handled.borrow();
    let mut worst = Duration::ZERO;
    for t in &sent {
        let i = handled.partition_point(|h| h < t);
        let h = handled.get(i).expect("a send with no handler run after it");
        worst = worst.max(*h - *t);
    }
    assert!(worst <= Duration::from_millis(100), "a delivery waited {worst:?}");
    assert!(lp.remove_signal_handler(SIGUSR1));
    drop(lp);
    base.check(&[SIGUSR1]);
}

/// Checklist 49: the doorbell's bytes are only a wake-up; the counters are the queue. With the
/// doorbell filled to `EAGAIN` (the test hook holds the signal thread off meanwhile), a SIGUSR2
/// whose byte cannot be written is still handled.
#[test]
fn item_49_a_full_doorbell_loses_no_delivery() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    lp.add_signal_handler(SIGUSR2, move || g.set(g.get() + 1)).unwrap();
    let filled = aioloop::signal::__with_doorbell_full(|| send(SIGUSR2)).unwrap();
    assert!(filled > 0);
    run_until(&mut lp, Duration::from_secs(5), || got.get() > 0);
    assert_eq!(got.get(), 1);
    assert!(lp.remove_signal_handler(SIGUSR2));
    drop(lp);
    base.check(&[SIGUSR2]);
}

// ---------------------------------------------------------------------------------------------
// 50: async-signal-safety
// ---------------------------------------------------------------------------------------------

/// Checklist 50: four threads allocate in a tight loop while 100,000 signals arrive (any thread
/// may take them, inside `malloc` or not): no hang (a 30 s watchdog), and the loop sees them.
#[test]
fn item_50_allocating_threads_and_a_hundred_thousand_signals_do_not_hang() {
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    lp.add_signal_handler(SIGUSR1, move || g.set(g.get() + 1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(SeqCst) {
                    let v: Vec<Box<[u8]>> = (0..32).map(|i| vec![0u8; 16 << (i % 8)].into_boxed_slice()).collect();
                    n += v.len();
                }
                n
            })
        })
        .collect();
    watchdog(Duration::from_secs(30), "100,000 signals beside allocators", || {
        let sender = std::thread::spawn(|| {
            for _ in 0..100_000 {
                send(SIGUSR1);
            }
        });
        sender.join().unwrap();
        let before = got.get();
        send(SIGUSR1);
        run_until(&mut lp, Duration::from_secs(10), || got.get() > before);
    });
    stop.store(true, SeqCst);
    for a in allocators {
        assert!(a.join().unwrap() > 0);
    }
    assert!(lp.remove_signal_handler(SIGUSR1));
    drop(lp);
    base.check(&[SIGUSR1]);
}

/// Checklist 50: a thread that sets `errno`, is interrupted by aioloop's handler (whose doorbell
/// write fails with `EAGAIN` here: the doorbell is full), and reads `errno` back sees its own
/// value.
#[test]
#[cfg(target_os = "linux")]
fn item_50_errno_survives_the_handler() {
    use std::sync::atomic::AtomicU64;
    let _s = serial();
    let base = Baseline::take();
    let mut lp = EventLoop::new().unwrap();
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    lp.add_signal_handler(SIGUSR1, move || g.set(g.get() + 1)).unwrap();
    let clobbered = Arc::new(AtomicU32::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    aioloop::signal::__with_doorbell_full(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (c, k, s) = (clobbered.clone(), checked.clone(), stop.clone());
        let spinner = std::thread::spawn(move || {
            // SAFETY: this thread's errno location, valid for the thread's life.
            let errno = unsafe { libc::__errno_location() };
            // SAFETY: as above.
            unsafe { *errno = 4242 };
            while !s.load(SeqCst) {
                // SAFETY: as above.
                if unsafe { std::ptr::read_volatile(errno) } != 4242 {
                    c.fetch_add(1, SeqCst);
                }
                k.fetch_add(1, SeqCst);
            }
        });
        // SAFETY: pthread_kill to a live thread of this process (joined below).
        let thread = std::os::unix::thread::JoinHandleExt::as_pthread_t(&spinner);
        for _ in 0..1000 {
            // SAFETY: as above.
            assert_eq!(unsafe { libc::pthread_kill(thread, SIGUSR1) }, 0);
        }
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, SeqCst);
        spinner.join().unwrap();
    })
    .unwrap();
    assert!(checked.load(SeqCst) > 0);
    assert_eq!(clobbered.load(SeqCst), 0, "errno changed under the handler");
    run_until(&mut lp, Duration::from_secs(5), || got.get() > 0);
    assert!(lp.remove_signal_handler(SIGUSR1));
    drop(lp);
    base.check(&[SIGUSR1]);
}

// ---------------------------------------------------------------------------------------------
// 51: chaining
// ---------------------------------------------------------------------------------------------

static RAW_CALLS: AtomicU32 = AtomicU32::new(0);
static REGISTRY_CALLS: AtomicU32 = AtomicU32::new(0);

extern "C" fn raw_handler(_: libc::c_int) {
    RAW_CALLS.fetch_add(1, SeqCst);
}

/// Checklist 51: a raw `sigaction` handler of SIGUSR1 counts calls, another library registers
/// through signal-hook-registry, then aioloop listens: 100 signals, one at a time, reach all
/// three; after aioloop's listener is removed the earlier handlers still get every delivery
/// (and the process is not killed). Own process: it installs a raw handler.
#[test]
fn item_51_other_handlers_of_the_signal_keep_every_delivery() {
    if is_child() {
        // SAFETY: installs a handler that only touches an atomic; a zeroed sigaction otherwise.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = raw_handler as *const () as usize;
            libc::sigemptyset(&mut act.sa_mask);
            assert_eq!(libc::sigaction(SIGUSR1, &act, std::ptr::null_mut()), 0);
            signal_hook_registry::register(SIGUSR1, || {
                REGISTRY_CALLS.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        let mut lp = EventLoop::new().unwrap();
        let ours = Rc::new(Cell::new(0u32));
        let o = ours.clone();
        lp.add_signal_handler(SIGUSR1, move || o.set(o.get() + 1)).unwrap();
        for i in 1..=100 {
            send(SIGUSR1);
            run_until(&mut lp, Duration::from_secs(5), || ours.get() == i);
        }
        assert_eq!((RAW_CALLS.load(SeqCst), REGISTRY_CALLS.load(SeqCst)), (100, 100));
        assert!(lp.remove_signal_handler(SIGUSR1));
        for i in 101..=110 {
            send(SIGUSR1);
            let start = Instant::now();
            while RAW_CALLS.load(SeqCst) < i {
                assert!(start.elapsed() < Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(REGISTRY_CALLS.load(SeqCst), 110);
        assert_eq!(ours.get(), 100);
        return;
    }
    let _s = serial();
    assert_child_passed(&run_in_child("item_51_other_handlers_of_the_signal_keep_every_delivery", &[]));
}

// ---------------------------------------------------------------------------------------------
// 52: the default action comes back
// ---------------------------------------------------------------------------------------------

/// Checklist 52: `ctrl_c().await` once, every listener dropped, then SIGINT again: the process
/// dies of SIGINT, as it would have without aioloop.
#[test]
fn item_52_a_second_ctrl_c_kills_once_the_listener_is_gone() {
    if is_child() {
        aioloop::run(async {
            let ctrl_c = aioloop::signal::ctrl_c();
            send(SIGINT);
            ctrl_c.await.unwrap();
        });
        println!("survived the first Ctrl-C");
        send(SIGINT);
        std::thread::sleep(Duration::from_secs(2));
        println!("survived the second Ctrl-C");
        return;
    }
    let _s = serial();
    let out = run_in_child("item_52_a_second_ctrl_c_kills_once_the_listener_is_gone", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("survived the first Ctrl-C"), "{stdout}");
    assert!(!stdout.contains("survived the second"), "{stdout}");
    assert_eq!(out.status.signal(), Some(SIGINT), "{:?}", out.status);
}

/// Checklist 52: the same for SIGTERM through `add_signal_handler` and `remove_signal_handler`;
/// and a signal that was ignored before aioloop listened (`nohup`'s SIGHUP) stays harmless
/// after its listener is gone.
#[test]
fn item_52_removing_the_last_listener_restores_what_the_signal_did_before() {
    if is_child() {
        // SAFETY: `signal` with a valid number and SIG_IGN.
        unsafe { libc::signal(SIGHUP, libc::SIG_IGN) };
        let mut lp = EventLoop::new().unwrap();
        let got = Rc::new(Cell::new(0));
        for sig in [SIGHUP, SIGTERM] {
            let g = got.clone();
            lp.add_signal_handler(sig, move || g.set(g.get() + 1)).unwrap();
            send(sig);
            let n = got.get();
            run_until(&mut lp, Duration::from_secs(5), || got.get() > n);
            assert!(lp.remove_signal_handler(sig));
        }
        send(SIGHUP); // was ignored: still harmless
        std::thread::sleep(Duration::from_millis(100));
        println!("alive after SIGHUP");
        send(SIGTERM); // was the default: terminates again
        std::thread::sleep(Duration::from_secs(2));
        println!("alive after SIGTERM");
        return;
    }
    let _s = serial();
    let out = run_in_child("item_52_removing_the_last_listener_restores_what_the_signal_did_before", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("alive after SIGHUP"), "{stdout}");
    assert!(!stdout.contains("alive after SIGTERM"), "{stdout}");
    assert_eq!(out.status.signal(), Some(SIGTERM), "{:?}", out.status);
}

/// Checklist 52: a listener replaced by a new one (created before the old one is dropped) while
/// signals keep coming: each of 300 spaced signals reaches one of them, none is lost.
///
/// The sender starts only once the first listener exists: a SIGUSR2 sent before it would meet
/// the signal's default action and kill the test process (under load the sender could win
/// that race when it was started before the loop ran).
#[test]
fn item_52_a_signal_during_a_listener_swap_is_never_lost() {
    let _s = serial();
    let base = Baseline::take();
    let received = Arc::new(AtomicU32::new(0));
    let sent = Arc::new(AtomicU32::new(0));
    let mut lp = EventLoop::new().unwrap();
    let handle = lp.handle();
    let start_sender = {
        let (received, sent) = (received.clone(), sent.clone());
        move || {
            std::thread::spawn(move || {
                for i in 1..=300 {
                    sent.store(i, SeqCst);
                    send(SIGUSR2);
                    let start = Instant::now();
                    while received.load(SeqCst) < i {
                        assert!(start.elapsed() < Duration::from_secs(5), "delivery {i} was lost");
                        std::hint::spin_loop();
                    }
                }
                handle.stop();
            })
        }
    };
    let r = received.clone();
    let sender = watchdog(Duration::from_secs(30), "listener swaps", || {
        lp.run_until_complete(async move {
            let mut current = Signal::new(SIGUSR2).unwrap();
            let sender = start_sender(); // listening already: no signal can come before
            while r.load(SeqCst) < 300 {
                current.recv().await;
                r.fetch_add(1, SeqCst);
                let next = Signal::new(SIGUSR2).unwrap(); // the new one first...
                drop(std::mem::replace(&mut current, next)); // ...then the old one goes
            }
            sender
        })
    });
    sender.join().unwrap();
    assert_eq!(received.load(SeqCst), 300);
    assert_eq!(sent.load(SeqCst), 300);
    drop(lp);
    base.check(&[SIGUSR2]);
}

// ---------------------------------------------------------------------------------------------
// 53: several listeners, loops and threads
// ---------------------------------------------------------------------------------------------

/// Checklist 53: loops on two threads listen to SIGUSR1, loop A twice (a callback and a
/// `Signal`); A's `Signal` is dropped; 1,000 spaced signals each reach every remaining
/// listener: A's callback and B's.
#[test]
fn item_53_two_loops_on_two_threads_each_get_every_delivery() {
    let _s = serial();
    let base = Baseline::take();
    let counts = [Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0))];
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let loops: Vec<_> = counts
        .iter()
        .enumerate()
        .map(|(i, count)| {
            let (count, ready) = (count.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                let mut lp = EventLoop::new().unwrap();
                let c = count.clone();
                lp.add_signal_handler(SIGUSR1, move || {
                    c.fetch_add(1, SeqCst);
                })
                .unwrap();
                if i == 0 {
                    // A second listener on loop A, dropped again: the callback must not starve.
                    lp.run_until_complete(async { drop(Signal::new(SIGUSR1).unwrap()) });
                }
                ready.send(lp.handle()).unwrap();
                lp.run_forever();
                assert!(lp.remove_signal_handler(SIGUSR1));
            })
        })
        .collect();
    let handles: Vec<aioloop::LoopHandle> = (0..2).map(|_| ready_rx.recv().unwrap()).collect();
    watchdog(Duration::from_secs(30), "1,000 spaced signals to two loops", || {
        for i in 1..=1000 {
            send(SIGUSR1);
            let start = Instant::now();
            while counts.iter().any(|c| c.load(SeqCst) < i) {
                assert!(start.elapsed() < Duration::from_secs(5), "delivery {i} lost: {counts:?}");
                std::thread::yield_now();
            }
        }
    });
    assert_eq!(counts.iter().map(|c| c.load(SeqCst)).collect::<Vec<_>>(), [1000, 1000]);
    for h in handles {
        h.stop();
    }
    for l in loops {
        l.join().unwrap();
    }
    base.check(&[SIGUSR1]);
}

// ---------------------------------------------------------------------------------------------
// 54: dump_on_signal
// ---------------------------------------------------------------------------------------------

/// Checklist 54 (a): a task spins for 2 s without yielding; a SIGQUIT after 0.3 s makes the
/// signal thread print, within a second, which task the loop is polling and for how long; the
/// loop prints its full dump once the task lets it go.
#[test]
fn item_54_a_stuck_loop_is_named_by_the_signal_thread() {
    if is_child() {
        let mut lp = EventLoop::builder().dump_on_signal(SIGQUIT).build().unwrap();
        let spinner = lp.spawn(async {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(2) {
                std::hint::spin_loop(); // never yields
            }
        });
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            eprintln!("test: sending SIGQUIT");
            send(SIGQUIT);
        });
        eprintln!("test: spinner is task {}", spinner.id());
        lp.run_until_complete(async {
            spinner.await.unwrap();
            aioloop::sleep(Duration::from_millis(100)).await; // the dump job runs
        });
        return;
    }
    let _s = serial();
    let out = run_in_child("item_54_a_stuck_loop_is_named_by_the_signal_thread", &[]);
    assert_child_passed(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr.lines().find_map(|l| l.strip_prefix("test: spinner is task ")).expect(&stderr).to_string();
    let report = stderr.lines().find(|l| l.contains("has been polling task")).expect(&stderr);
    assert!(report.contains(&format!("polling task {id} for ")), "{report}");
    let secs: f64 = report.split(" for ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((0.25..1.3).contains(&secs), "reported after {secs} s of the poll: {report}");
    let sent = stderr.find("test: sending SIGQUIT").unwrap();
    let named = stderr.find("has been polling task").unwrap();
    let dumped = stderr.find("task dump of the loop").expect(&stderr);
    assert!(sent < named && named < dumped, "{stderr}");
}

/// Checklist 54 (b): a responsive loop prints its full task dump (ids, names, states, spawn
/// locations in debug mode) on SIGQUIT and keeps running to its normal end.
#[test]
fn item_54_a_responsive_loop_prints_its_task_dump_and_keeps_running() {
    if is_child() {
        let mut lp = EventLoop::builder().debug(true).dump_on_signal(SIGQUIT).build().unwrap();
        let sleeper = lp.spawn(aioloop::sleep(Duration::from_millis(300)));
        sleeper.set_name("sleeper");
        lp.run_until_complete(async {
            aioloop::sleep(Duration::from_millis(20)).await;
            send(SIGQUIT);
            aioloop::sleep(Duration::from_millis(100)).await;
            eprintln!("test: still running");
            sleeper.await.unwrap();
        });
        eprintln!("test: finished");
        return;
    }
    let _s = serial();
    let out = run_in_child("item_54_a_responsive_loop_prints_its_task_dump_and_keeps_running", &[]);
    assert_child_passed(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dump = stderr.find("task dump of the loop").expect(&stderr);
    assert!(stderr[dump..].contains("sleeper"), "{stderr}");
    assert!(stderr[dump..].contains("tests/signal.rs:"), "spawn locations: {stderr}");
    assert!(stderr.find("test: still running").unwrap() > dump);
    assert!(stderr.contains("test: finished"));
}

/// Checklist 54 (c): 10,000 SIGQUITs while four threads allocate: no deadlock (a 30 s watchdog),
/// the dumps are printed (coalesced), and the process ends normally.
#[test]
fn item_54_ten_thousand_dump_signals_beside_allocators_do_not_deadlock() {
    if is_child() {
        let stop = Arc::new(AtomicBool::new(false));
        let allocators: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        let v: Vec<String> = (0..64).map(|i| i.to_string()).collect();
                        std::hint::black_box(v);
                    }
                })
            })
            .collect();
        let mut lp = EventLoop::builder().dump_on_signal(SIGQUIT).build().unwrap();
        watchdog(Duration::from_secs(30), "10,000 SIGQUITs", || {
            lp.run_until_complete(async {
                let sender = aioloop::run_in_executor(|| {
                    for _ in 0..10_000 {
                        send(SIGQUIT);
                    }
                });
                sender.await.unwrap();
                aioloop::sleep(Duration::from_millis(100)).await;
            })
        });
        stop.store(true, SeqCst);
        for a in allocators {
            a.join().unwrap();
        }
        return;
    }
    let _s = serial();
    let out = run_in_child("item_54_ten_thousand_dump_signals_beside_allocators_do_not_deadlock", &[]);
    assert_child_passed(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dumps = stderr.matches("task dump of the loop").count();
    assert!((1..=10_000).contains(&dumps), "{dumps} dumps");
}
