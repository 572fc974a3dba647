//! Name lookup off the loop's thread: `net::lookup_host` and `TcpStream::connect` with a host
//! name (issue 11, section 4; reliability checklist item 56: a lookup that never returns).
//!
//! A resolver hook (`net::set_resolver_hook`, per thread) stands in for DNS: slow, stuck until
//! the test lets it go, or counting its calls. The resolver pool is process-wide, so the tests
//! of this binary that fill it take turns (`SERIAL`), and every stuck hook is released when its
//! test ends, pass or fail (`Gate`'s `Drop`).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::net::{lookup_host, set_resolver_hook, TcpStream};
use aioloop::EventLoop;
use futures_lite::future::poll_once;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The tests that fill the resolver pool run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A gate stuck lookups wait at; opened when dropped, so a failing test frees the pool too.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = self.cv.wait(open).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }
}

/// Opens its gate when dropped.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Installs, on this thread, a resolver that counts its calls and answers with `answer`.
fn counting_hook(answer: Vec<SocketAddr>) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    set_resolver_hook(Some(Arc::new(move |_host: &str, _port: u16| {
        c.fetch_add(1, SeqCst);
        Ok(answer.clone())
    })));
    calls
}

/// Installs, on this thread, a resolver stuck at `gate` (the system's never-answering DNS);
/// returns how many lookups entered it. Once the gate opens it answers 127.0.0.1. A watchdog
/// opens the gate after 10 s, so that a test whose loop wrongly waits for a stuck lookup fails
/// on its time bound instead of hanging.
fn stuck_hook(gate: &Arc<Gate>) -> Arc<AtomicUsize> {
    let watchdog = gate.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(10));
        watchdog.open();
    });
    let entered = Arc::new(AtomicUsize::new(0));
    let (e, g) = (entered.clone(), gate.clone());
    set_resolver_hook(Some(Arc::new(move |_host: &str, port: u16| {
        e.fetch_add(1, SeqCst);
        g.wait();
        Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))])
    })));
    entered
}

/// Waits (on the loop, real time) until `f` holds, at most `limit`; returns whether it did.
async fn eventually(limit: Duration, f: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return false;
        }
        aioloop::sleep(ms(2)).await;
    }
    true
}

/// Returns an address on 127.0.0.1 where nothing listens (a port just released).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn a_missing_or_bad_port_is_invalid_input_and_asks_no_resolver() {
    let calls = counting_hook(vec![]);
    let errors = aioloop::run(async {
        let mut errors = Vec::new();
        for bad in
            ["localhost", "localhost:", "localhost:http", "localhost:65536", "localhost:-1", "127.0.0.1", "[::1]"]
        {
            errors.push((bad, lookup_host(bad).await.unwrap_err()));
        }
        errors
    });
    for (bad, e) in &errors {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
        assert!(e.to_string().contains(bad), "{bad:?}: the message quotes the input: {e}");
    }
    assert_eq!(calls.load(SeqCst), 0, "nothing was looked up");
}

/// Item 56: an IP address never reaches the resolver pool: its addresses are ready at the
/// first poll, and the resolver is never called (for `connect` either).
#[test]
fn ip_literals_never_reach_a_thread() {
    let calls = counting_hook(vec![]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (answers, connected) = aioloop::run(async move {
        let mut answers = Vec::new();
        for addr in ["127.0.0.1:80", "[::1]:80", "[::ffff:127.0.0.1]:80"] {
            answers.push(poll_once(lookup_host(addr)).await.map(|r| r.unwrap()));
        }
        answers.push(poll_once(lookup_host(("10.1.2.3", 80))).await.map(|r| r.unwrap()));
        answers.push(poll_once(lookup_host(("::1", 80))).await.map(|r| r.unwrap()));
        answers.push(poll_once(lookup_host(SocketAddr::from(([127, 0, 0, 1], 80)))).await.map(|r| r.unwrap()));
        let connected = TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap().peer_addr().unwrap();
        (answers, connected)
    });
    let parse = |s: &str| vec![s.parse::<SocketAddr>().unwrap()];
    assert_eq!(
        answers,
        [
            Some(parse("127.0.0.1:80")),
            Some(parse("[::1]:80")),
            Some(parse("[::ffff:127.0.0.1]:80")),
            Some(parse("10.1.2.3:80")),
            Some(parse("[::1]:80")),
            Some(parse("127.0.0.1:80")),
        ],
        "every literal was ready at the first poll"
    );
    assert_eq!(connected.port(), port);
    assert_eq!(calls.load(SeqCst), 0, "no literal reached the resolver");
}

#[test]
fn a_host_name_is_resolved_on_a_resolver_thread_and_its_errors_name_the_host() {
    let _turn = serial();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    set_resolver_hook(Some(Arc::new(move |host: &str, port: u16| {
        s.lock().unwrap().push((host.to_owned(), port, thread::current().name().map(str::to_owned)));
        match host {
            "no-such-host.test" => Err(io::Error::new(io::ErrorKind::NotFound, "no address associated with hostname")),
            _ => Ok(vec![SocketAddr::from(([192, 0, 2, 7], port)), SocketAddr::from(([192, 0, 2, 8], port))]),
        }
    })));
    let (ok, err) = aioloop::run(async {
        (lookup_host("service.test:8443").await.unwrap(), lookup_host(("no-such-host.test", 53)).await.unwrap_err())
    });
    assert_eq!(ok, ["192.0.2.7:8443".parse::<SocketAddr>().unwrap(), "192.0.2.8:8443".parse().unwrap()]);
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "the resolver's kind is kept");
    assert!(err.to_string().contains("no-such-host.test"), "{err}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0.as_str(), seen[0].1), ("service.test", 8443));
    assert_eq!(seen[0].2.as_deref(), Some("aioloop-resolver"), "the lookup ran on the resolver pool");
}

/// The system's resolver (no hook): `localhost` comes from /etc/hosts, no network needed.
#[test]
fn the_system_resolver_resolves_localhost() {
    let _turn = serial();
    set_resolver_hook(None);
    let addrs = aioloop::run(lookup_host("localhost:8080")).unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{addrs:?}");
}

/// asyncio's default: the addresses are tried in the resolver's order, and the first
/// connection wins; the ones after it are never tried.
#[test]
fn connect_tries_each_address_in_order_and_returns_the_first_connection() {
    let _turn = serial();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (b_addr, c_addr) = (b.local_addr().unwrap(), c.local_addr().unwrap());
    let calls = counting_hook(vec![closed_port(), b_addr, c_addr]);
    let peer = aioloop::run(async { TcpStream::connect("multi.test:1").await.unwrap().peer_addr().unwrap() });
    assert_eq!(peer, b_addr, "the first address that accepts");
    assert_eq!(calls.load(SeqCst), 1);
    b.set_nonblocking(true).unwrap();
    c.set_nonblocking(true).unwrap();
    assert!(b.accept().is_ok(), "B got the connection");
    assert_eq!(c.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock, "C was never tried");
}

/// When every address fails, the error is the last one's. A TCP connect to a multicast address
/// fails at once with `ENETUNREACH` (Linux refuses it before sending anything), so the two
/// orders give two different errors.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "relies on Linux refusing TCP to multicast with ENETUNREACH")]
fn connect_gives_the_last_error_when_every_address_fails() {
    let _turn = serial();
    let (multicast, closed) = (SocketAddr::from(([224, 0, 0, 1], 80)), closed_port());
    let kinds = aioloop::run(async move {
        let mut kinds = Vec::new();
        for answer in [vec![multicast, closed], vec![closed, multicast], vec![]] {
            counting_hook(answer);
            kinds.push(TcpStream::connect("failing.test:80").await.unwrap_err().kind());
        }
        kinds
    });
    assert_eq!(
        kinds,
        [io::ErrorKind::ConnectionRefused, io::ErrorKind::NetworkUnreachable, io::ErrorKind::InvalidInput]
    );
}

/// The loop never blocks on DNS: while a lookup takes 500 ms (hook), another task keeps
/// ticking every 10 ms, and the hook itself sees the ticks go on.
#[test]
fn the_loop_keeps_ticking_during_a_500_ms_lookup() {
    let _turn = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let during = Arc::new(AtomicU64::new(u64::MAX));
    let (t, d) = (ticks.clone(), during.clone());
    set_resolver_hook(Some(Arc::new(move |_: &str, _: u16| {
        let before = t.load(SeqCst);
        thread::sleep(ms(500));
        d.store(t.load(SeqCst) - before, SeqCst);
        Ok(vec![addr])
    })));
    let (peer, took) = aioloop::run(async move {
        let t = ticks.clone();
        let ticker = aioloop::spawn(async move {
            loop {
                aioloop::sleep(ms(10)).await;
                t.fetch_add(1, SeqCst);
            }
        });
        let start = Instant::now();
        let conn = TcpStream::connect("slow.test:80").await.unwrap();
        let took = start.elapsed();
        ticker.cancel();
        (conn.peer_addr().unwrap(), took)
    });
    assert_eq!(peer, addr);
    assert!(took >= ms(500), "the lookup took its 500 ms: {took:?}");
    let during = during.load(SeqCst);
    // 50 ticks at 10 ms; a loaded machine may lose some, a blocked loop would give 0.
    assert!((20..=60).contains(&during), "the loop ticked {during} times during the 500 ms lookup");
}

/// Item 56: a timeout around a lookup that never returns expires on time; and on virtual time,
/// once the lookup is abandoned, it no longer holds the clock back.
#[test]
fn item_56_a_timeout_around_a_stuck_lookup_returns() {
    let _turn = serial();
    let gate = Arc::new(Gate::default());
    let _release = OpenOnDrop(gate.clone());
    let entered = stuck_hook(&gate);
    let took = aioloop::run(async {
        let start = Instant::now();
        let r = aioloop::timeout(ms(100), lookup_host("stuck.test:80")).await;
        assert!(r.is_err(), "the lookup cannot have answered");
        start.elapsed()
    });
    assert!(took >= ms(100) && took < Duration::from_secs(1), "timeout(100 ms) took {took:?}");

    // On virtual time, in a thread of its own: if the abandoned lookup held the clock, the
    // one-hour sleep would take an hour of real time, and the test fails after 10 s instead.
    let (done, result) = std::sync::mpsc::channel();
    let g = gate.clone();
    thread::spawn(move || {
        let entered = stuck_hook(&g);
        let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
        let t0 = lp.time();
        lp.run_until_complete(async {
            let r = aioloop::timeout(ms(100), lookup_host("stuck.test:81")).await;
            assert!(r.is_err());
            // The abandoned lookup is still stuck on its thread, but holds virtual time no more.
            aioloop::sleep(Duration::from_secs(3600)).await;
        });
        let _ = done.send((lp.time() - t0, entered.load(SeqCst)));
    });
    let (advanced, entered_there) =
        result.recv_timeout(Duration::from_secs(10)).expect("virtual time jumped over the abandoned lookup");
    assert!(advanced >= Duration::from_secs(3600));
    assert_eq!(entered_there, 1, "the lookup reached the (stuck) resolver");
    assert_eq!(entered.load(SeqCst), 1, "the lookup reached the (stuck) resolver");
}

/// Item 56: dropping the loop while a lookup is stuck in the resolver returns at once; the
/// lookup thread is detached.
#[test]
fn item_56_dropping_the_loop_with_a_stuck_lookup_returns_at_once() {
    let _turn = serial();
    let gate = Arc::new(Gate::default());
    let _release = OpenOnDrop(gate.clone());
    let entered = stuck_hook(&gate);
    let mut lp = EventLoop::new().unwrap();
    let (waiter, reached) = lp.run_until_complete(async {
        let waiter = aioloop::spawn(lookup_host("stuck.test:80"));
        let e = entered.clone();
        (waiter, eventually(Duration::from_secs(10), move || e.load(SeqCst) == 1).await)
    });
    assert!(reached, "the lookup reached the resolver");
    let start = Instant::now();
    drop(lp);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "dropping the loop took {took:?}");
    assert!(waiter.is_cancelled(), "the task awaiting the lookup was cancelled");
}

/// Item 56: 64 stuck lookups fill the resolver pool (16 threads) and its queue, and starve
/// neither `aioloop::fs`, `to_thread` nor `run_in_executor`; lookups abandoned while queued
/// never reach the resolver.
#[test]
fn item_56_sixty_four_stuck_lookups_starve_neither_fs_nor_to_thread() {
    let _turn = serial();
    let gate = Arc::new(Gate::default());
    let _release = OpenOnDrop(gate.clone());
    let entered = stuck_hook(&gate);
    let path = std::env::temp_dir().join(format!("aioloop-lookup-fs-{}", std::process::id()));
    let (running, other_work, took, after) = aioloop::run(async {
        let stuck: Vec<_> = (0..64).map(|i| aioloop::spawn(lookup_host(format!("stuck{i}.test:80")))).collect();
        let e = entered.clone();
        assert!(eventually(Duration::from_secs(10), move || e.load(SeqCst) >= 16).await, "the resolver pool filled");
        aioloop::sleep(ms(50)).await; // time for a 17th thread, if the cap did not hold
        let running = entered.load(SeqCst);

        let start = Instant::now();
        let other_work = aioloop::timeout(Duration::from_secs(5), async {
            aioloop::fs::write(&path, b"not starved").await.unwrap();
            let back = aioloop::fs::read(&path).await.unwrap();
            aioloop::fs::remove_file(&path).await.unwrap();
            let n = aioloop::to_thread(|| 40).await + aioloop::run_in_executor(|| 2).await.unwrap();
            (back, n)
        })
        .await
        .expect("fs and to_thread ran while the resolver pool was stuck");
        let took = start.elapsed();

        for t in &stuck {
            t.cancel();
        }
        for t in stuck {
            assert!(t.await.unwrap_err().is_cancelled());
        }
        gate.open();
        // The pool's queue is FIFO: once a fresh lookup answers, every queued one was seen.
        let after = lookup_host("after.test:80").await.unwrap();
        (running, other_work, took, after)
    });
    assert_eq!(running, 16, "at most RESOLVER_THREADS lookups run at once");
    assert_eq!(other_work, (b"not starved".to_vec(), 42));
    assert!(took < Duration::from_secs(2), "fs and to_thread took {took:?} beside the stuck lookups");
    assert_eq!(after, ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
    assert_eq!(entered.load(SeqCst), 17, "the 48 lookups abandoned in the queue never ran; the fresh one did");
}
