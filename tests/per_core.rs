//! One loop per core (`aioloop::PerCore`) and `SO_REUSEPORT` listeners
//! (`TcpListener::bind_with`): loops that share a port through the kernel, outcomes as values
//! (a panic in one loop is its outcome, the others go on), cancellation from outside, pinning,
//! and clear errors for bad input.
//!
//! The clients are plain blocking std sockets on the test's thread; the servers are loops on
//! their own threads. Skipped under Miri, which cannot run epoll.
#![cfg(not(miri))]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use aioloop::net::{TcpListenOptions, TcpListener};
use aioloop::PerCore;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Options for listeners that share a port; a backlog above the tests' connection counts.
fn shared() -> TcpListenOptions {
    TcpListenOptions::new().reuse_port(true).backlog(1024)
}

/// Binds a listener on `port`'s address, or on a free port of 127.0.0.1 if it is the first, and
/// records the address: the first loop to bind picks the port, the others share it.
fn bind_shared(port: &Mutex<Option<SocketAddr>>) -> io::Result<TcpListener> {
    let mut port = port.lock().unwrap();
    let addr = port.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    let listener = TcpListener::bind_with(addr, shared())?;
    *port = Some(listener.local_addr()?);
    Ok(listener)
}

/// Counts live values: +1 when created, -1 when dropped.
#[derive(Debug)]
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// An echo server on a loop: accepts on `listener`, one task per connection, counts accepted
/// connections in `accepted` and keeps a `Live` in every connection task.
async fn serve_echo(listener: TcpListener, accepted: &AtomicUsize, live: Arc<AtomicUsize>) -> io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        accepted.fetch_add(1, SeqCst);
        let guard = Live::new(&live);
        aioloop::spawn(async move {
            let _guard = guard;
            let mut buf = [0; 256];
            loop {
                match (&conn).read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if (&conn).write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Sends a 64-byte request naming connection `id` and checks its echo.
fn round_trip(conn: &mut TcpStream, id: usize) {
    let mut request = [0u8; 64];
    request[..8].copy_from_slice(&(id as u64).to_le_bytes());
    request[8..].fill(id as u8);
    conn.write_all(&request).unwrap();
    let mut reply = [0u8; 64];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, request, "connection {id} got another connection's bytes");
}

fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn
}

#[test]
fn two_loops_share_a_port_and_both_serve() {
    let port: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let accepted: Arc<[AtomicUsize; 2]> = Arc::default();
    let live = Arc::new(AtomicUsize::new(0));
    let (bound_tx, bound) = mpsc::channel();
    let (a, l) = (accepted.clone(), live.clone());
    let loops = PerCore::new(2)
        .spawn(move |i| {
            let (port, accepted, live, bound_tx) = (port.clone(), a.clone(), l.clone(), bound_tx.clone());
            async move {
                let listener = bind_shared(&port)?;
                bound_tx.send(listener.local_addr()?).unwrap();
                serve_echo(listener, &accepted[i], live).await
            }
        })
        .unwrap();
    let addr = bound.recv().unwrap();
    assert_eq!(bound.recv().unwrap(), addr, "both loops listen on one address");

    // 200 connections open at once, each with a round trip after all are open, then a second.
    let mut conns: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    for (id, conn) in conns.iter_mut().enumerate() {
        round_trip(conn, id);
    }
    for (id, conn) in conns.iter_mut().enumerate().rev() {
        round_trip(conn, id);
    }
    let per_loop = [accepted[0].load(SeqCst), accepted[1].load(SeqCst)];
    assert_eq!(per_loop[0] + per_loop[1], 200, "{per_loop:?}");
    // The kernel hashes each connection's ports to a listener: with 200 connections, the odds
    // that one loop got none are 2^-199.
    assert!(per_loop[0] > 0 && per_loop[1] > 0, "one loop served every connection: {per_loop:?}");
    assert_eq!(live.load(SeqCst), 200, "a task per open connection");

    loops.cancel();
    let outcomes = loops.join();
    assert_eq!(outcomes.len(), 2);
    for outcome in outcomes {
        assert!(outcome.unwrap_err().is_cancelled());
    }
    // Each loop cancelled the connection tasks it left.
    assert_eq!(live.load(SeqCst), 0, "connection tasks left alive after the loops closed");
    drop(conns);
}

#[test]
fn a_panicking_loop_is_an_outcome_and_the_other_loop_serves_on() {
    let port: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let accepted: Arc<[AtomicUsize; 2]> = Arc::default();
    let live = Arc::new(AtomicUsize::new(0));
    let (bound_tx, bound) = mpsc::channel();
    let (breaking_tx, breaking) = mpsc::channel();
    let (a, l) = (accepted.clone(), live.clone());
    let loops = PerCore::new(2)
        .spawn(move |i| {
            let (port, accepted, live, bound_tx) = (port.clone(), a.clone(), l.clone(), bound_tx.clone());
            let breaking_tx = breaking_tx.clone();
            async move {
                if i == 0 {
                    aioloop::yield_now().await;
                    breaking_tx.send(()).unwrap();
                    panic!("loop 0 broke");
                }
                let listener = bind_shared(&port)?;
                bound_tx.send(listener.local_addr()?).unwrap();
                serve_echo(listener, &accepted[i], live).await
            }
        })
        .unwrap();
    let addr = bound.recv().unwrap();
    for id in 0..20 {
        round_trip(&mut connect(addr), id);
    }
    assert_eq!(accepted[1].load(SeqCst), 20);
    // On a loaded machine loop 0's thread may not have run yet: cancelling it first would make
    // its outcome a cancellation. Its step panics right after this message.
    breaking.recv().unwrap();

    loops.cancel();
    let outcomes = loops.join();
    let err = outcomes[0].as_ref().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "task panicked: loop 0 broke");
    assert!(outcomes[1].as_ref().unwrap_err().is_cancelled(), "loop 1 ran until cancelled: {:?}", outcomes[1]);
}

#[test]
fn a_factory_that_panics_is_its_loops_outcome() {
    let outcomes = PerCore::new(2)
        .run(|i| {
            assert_ne!(i, 1, "no future for loop 1");
            async move { i + 100 }
        })
        .unwrap();
    assert_eq!(*outcomes[0].as_ref().unwrap(), 100);
    let payload = match &outcomes[1] {
        Err(aioloop::TaskError::Panicked(p)) => p,
        other => panic!("expected a panic, got {other:?}"),
    };
    let message = payload.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("no future for loop 1"), "{message}");
}

#[test]
fn outputs_come_back_in_loop_order_from_each_loops_thread() {
    let outcomes = PerCore::new(3)
        .pin(false)
        .run(|i| async move {
            // Loop 0 finishes last: the order is the loops', not the finishing order.
            aioloop::sleep(Duration::from_millis(30 - 10 * i as u64)).await;
            (i, std::thread::current().name().map(str::to_string))
        })
        .unwrap();
    let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    let expected: Vec<_> = (0..3).map(|i| (i, Some(format!("aioloop-loop-{i}")))).collect();
    assert_eq!(outcomes, expected);
}

#[test]
fn dropping_the_loops_cancels_and_joins_them() {
    let live = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Barrier::new(3));
    let (l, s) = (live.clone(), started.clone());
    let loops = PerCore::new(2)
        .spawn(move |_| {
            let (guard, inner, started) = (Live::new(&l), Live::new(&l), s.clone());
            async move {
                let _guard = guard;
                // A task the main future leaves behind: the loop's shutdown cancels it too.
                aioloop::spawn(async move {
                    let _inner = inner;
                    std::future::pending::<()>().await
                });
                aioloop::yield_now().await;
                started.wait(); // blocks the loop briefly: nothing else runs here
                aioloop::sleep(Duration::from_secs(3600)).await
            }
        })
        .unwrap();
    started.wait();
    assert_eq!(live.load(SeqCst), 4, "two main futures and two inner tasks alive");
    drop(loops);
    assert_eq!(live.load(SeqCst), 0, "dropping Loops returned before the loops dropped their tasks");
}

#[test]
fn zero_loops_is_invalid_input() {
    let err = PerCore::new(0).spawn(|_| async {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "PerCore needs at least one loop, got 0");
    let err = PerCore::new(0).run(|_| async {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn a_taken_port_without_reuse_port_is_addr_in_use_with_a_hint() {
    aioloop::run(async {
        // Shared, then a newcomer without the option.
        let first = TcpListener::bind_with("127.0.0.1:0", shared()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = TcpListener::bind_with(addr, TcpListenOptions::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot bind {addr}: ")), "{text}");
        assert!(text.contains("reuse_port(true)"), "{text}");
        // Held without the option: even a newcomer with it cannot join.
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap();
        let err = TcpListener::bind_with(addr, shared()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("every listener of a shared port needs reuse_port"), "{err}");
    });
}

#[test]
fn loops_binding_one_port_without_reuse_port_get_addr_in_use_as_their_outcome() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // released
                                                                                          // Both bind, then wait for each other, so neither releases the port before the other tried.
    let both_tried = Arc::new(Barrier::new(2));
    let outcomes = PerCore::new(2)
        .run(move |_| {
            let both_tried = both_tried.clone();
            async move {
                let bound = TcpListener::bind_with(port, TcpListenOptions::new());
                both_tried.wait();
                bound.map(|_| ())
            }
        })
        .unwrap();
    let errors: Vec<_> = outcomes.into_iter().map(|o| o.unwrap()).filter_map(Result::err).collect();
    assert_eq!(errors.len(), 1, "exactly one loop got the port: {errors:?}");
    assert_eq!(errors[0].kind(), io::ErrorKind::AddrInUse);
}

#[test]
fn the_backlog_option_holds_connections_until_accepted() {
    aioloop::run(async {
        let listener = TcpListener::bind_with("127.0.0.1:0", TcpListenOptions::new().backlog(300)).unwrap();
        let addr = listener.local_addr().unwrap();
        // 250 connects complete in the kernel while nothing accepts: more than the default
        // backlog of 128, whose overflow would drop SYNs (the client retries a second later, so
        // its connect times out here).
        let connector = std::thread::spawn(move || {
            // The first failure ends the loop.
            (0..250)
                .map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(800)))
                .collect::<io::Result<Vec<_>>>()
        });
        while !connector.is_finished() {
            aioloop::sleep(Duration::from_millis(5)).await;
        }
        let conns: Vec<_> = connector.join().unwrap().expect("every connect completes");
        for _ in 0..conns.len() {
            listener.accept().await.unwrap();
        }
    });
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_loops_run_on_distinct_allowed_cpus() {
    let allowed = cpus_allowed();
    let n = allowed.len().min(4);
    let loops = PerCore::new(n).spawn(|_| async { cpus_allowed() }).unwrap();
    let pinned: Vec<_> = (0..n).map(|i| loops.cpu(i)).collect();
    let seen: Vec<_> = loops.join().into_iter().map(Result::unwrap).collect();
    for (i, (cpu, seen)) in pinned.iter().zip(&seen).enumerate() {
        let cpu = cpu.expect("Linux pins loops");
        assert_eq!(cpu, allowed[i], "loop {i} is on the {i}th allowed CPU");
        assert_eq!(seen, &vec![cpu], "loop {i}'s thread may run only on its CPU");
    }
    // Not pinned: each thread keeps the whole mask.
    let seen = PerCore::new(1).pin(false).run(|_| async { cpus_allowed() }).unwrap();
    assert_eq!(seen[0].as_ref().unwrap(), &allowed);
}

/// The CPUs the calling thread may run on, from `/proc/thread-self/status` (`0-3,6`).
#[cfg(target_os = "linux")]
fn cpus_allowed() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.parse::<usize>().unwrap()..=hi.parse().unwrap());
    }
    cpus
}

#[test]
fn the_echo_example_serves_on_two_loops() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "echo", "--", "--threads", "2"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "echo --threads 2 failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("10000 requests in ")), "{stdout}");
    assert!(stdout.lines().any(|l| l == "errors: 0"), "{stdout}");
    // "server loop 1 (CPU 1): accepted 47 connections"
    let accepted: Vec<usize> = (0..2)
        .map(|i| {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("server loop {i} (")))
                .unwrap_or_else(|| panic!("no line for server loop {i}:\n{stdout}"));
            let count = line.split("accepted ").nth(1).and_then(|r| r.split(' ').next()).expect("a count");
            count.parse().expect("a number")
        })
        .collect();
    // 100 client connections, plus none other: every one was accepted by one of the loops.
    assert_eq!(accepted.iter().sum::<usize>(), 100, "{stdout}");
}

/// In a child process whose open-files limit is 16, sixteen loops cannot all create their
/// pollers: the start fails as a whole, with the OS's error, and no factory runs.
#[test]
fn a_loop_that_cannot_be_created_fails_the_start_and_no_factory_runs() {
    const TEST: &str = "a_loop_that_cannot_be_created_fails_the_start_and_no_factory_runs";
    if std::env::var_os("AIOLOOP_PER_CORE_CHILD").is_some() {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let err = PerCore::new(16)
            .spawn(move |_| {
                r.fetch_add(1, SeqCst);
                async {}
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot create the event loop of loop "), "{text}");
        assert!(text.contains("Too many open files"), "{text}");
        assert_eq!(ran.load(SeqCst), 0, "a factory ran although the start failed");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 16 && exec \"$0\" --exact {TEST} --test-threads 1"))
        .arg(exe)
        .env("AIOLOOP_PER_CORE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child ran no test:\n{stdout}");
}
