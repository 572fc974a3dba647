//! An echo server and a load-generating client, every connection on one thread: seed
//! `001_248d928f422d19d8.txt` ("协程(coroutine)") names the two uses of coroutines it cares about,
//! "a client that quickly sends 100k requests" and "a server that handles 100k concurrent
//! requests", and this example does both with aioloop's sockets (the c10k problem).
//!
//! - `server [ADDR]` accepts connections and spawns one task per connection, which writes back
//!   whatever it reads. Once a second, if anything changed, it prints how many connections are
//!   open and how many bytes it echoed.
//! - `client [ADDR] [--connections N] [--requests M]` opens N connections (default 10,000),
//!   then every connection makes M round trips (default 10: the seed's 100k requests) of a
//!   64-byte request and its echo, all connections at the same time; it reports requests/s and
//!   the p50/p99 latency of a round trip.
//! - With no mode, the server (on a free port, unless ADDR is given) and the client run in the
//!   same loop, 100 connections × 100 requests by default, which finishes in well under a
//!   second.
//! - `--threads N` runs the server on N loops, one per thread (pinned to CPUs, with
//!   [`aioloop::PerCore`]): each loop binds its own listener on the same port with
//!   `SO_REUSEPORT`, and the kernel hands each connection to one of them. With no mode, the
//!   client stays on the main thread's loop, and the output ends with how many connections each
//!   server loop accepted.
//!
//! Every connection is a task and every task runs on the main thread. Before opening the
//! connections the client compares what it needs with the process's limit on open files
//! (`/proc/self/limits`, Linux) and stops with a hint to raise it (`ulimit -n 20000`) instead of
//! failing halfway with "Too many open files"; failures are `io::Error`s, reported on stderr with
//! a non-zero exit status.
//!
//! Run with: `cargo run --example echo` (both in one loop), or
//! `cargo run --release --example echo -- server` in one terminal and
//! `cargo run --release --example echo -- client` in another; add `--threads 2` to serve on two
//! loops (`cargo run --example echo -- --threads 2`).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aioloop::net::{TcpListenOptions, TcpListener, TcpStream};
use aioloop::{EventLoop, Loops, PerCore};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Where the server listens and the client connects unless told otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// The size of a request (and of its echo).
const REQUEST_SIZE: usize = 64;
/// How many connections are opened at once, each checked with one echo before the next wave:
/// fewer than the listener's backlog (128 with the standard library), so no SYN is dropped and
/// retried a second later (see `connect_all`).
const CONNECT_WAVE: usize = 100;
/// File descriptors the process needs besides the connections (stdio, the poller's epoll,
/// eventfd and timerfd, the listener, descriptors inherited from the shell or Cargo...).
const SPARE_FDS: u64 = 64;

/// What to run, from the command line.
#[derive(Debug)]
struct Args {
    /// `server`, `client`, or both in one loop.
    mode: Mode,
    /// The server's address, if given (default: `DEFAULT_ADDR`, or a free port when both run
    /// in one loop).
    addr: Option<String>,
    /// How many connections the client opens.
    connections: usize,
    /// Round trips per connection.
    requests: usize,
    /// Server loops (threads); 1: everything on the main thread.
    threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Server,
    Client,
    Both,
}

fn usage(problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}\nusage: echo [server|client] [ADDR] [--connections N] [--requests M] [--threads T]"),
    )
}

/// Parses `[server|client] [ADDR] [--connections N] [--requests M] [--threads T]`.
fn parse_args() -> io::Result<Args> {
    let mut args = std::env::args().skip(1).peekable();
    let mode = match args.peek().map(String::as_str) {
        Some("server") => Mode::Server,
        Some("client") => Mode::Client,
        _ => Mode::Both,
    };
    if mode != Mode::Both {
        args.next();
    }
    let (connections, requests) = if mode == Mode::Both { (100, 100) } else { (10_000, 10) };
    let mut parsed = Args { mode, addr: None, connections, requests, threads: 1 };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> io::Result<usize> {
            let value = args.next().ok_or_else(|| usage(&format!("{name} needs a number")))?;
            value.parse().map_err(|_| usage(&format!("{name}: `{value}` is not a number")))
        };
        match arg.as_str() {
            "--connections" => parsed.connections = number("--connections")?,
            "--requests" => parsed.requests = number("--requests")?,
            "--threads" => parsed.threads = number("--threads")?,
            flag if flag.starts_with('-') => return Err(usage(&format!("unknown option `{flag}`"))),
            addr => parsed.addr = Some(addr.to_string()),
        }
    }
    if parsed.connections == 0 {
        return Err(usage("--connections must be at least 1"));
    }
    if parsed.threads == 0 {
        return Err(usage("--threads must be at least 1"));
    }
    if parsed.threads > 1 && mode == Mode::Client {
        return Err(usage("--threads is for the server: the client runs on one loop"));
    }
    Ok(parsed)
}

// ===== The server =====

/// Counters the server's tasks share (one thread: `Cell`s in an `Rc`; with several loops, each
/// has its own).
#[derive(Default)]
struct ServerStats {
    /// Connections open now.
    open: Cell<usize>,
    /// Connections accepted so far; an atomic, so that the main thread can read it when the
    /// server runs on other threads.
    accepted: Arc<AtomicU64>,
    /// Bytes written back so far.
    echoed: Cell<u64>,
}

/// Accepts connections forever, one task per connection.
async fn serve(listener: TcpListener, stats: Rc<ServerStats>) -> io::Result<()> {
    loop {
        // `accept` backs off by itself while the process is out of file descriptors.
        let (conn, _peer) = listener.accept().await?;
        stats.open.set(stats.open.get() + 1);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let stats = stats.clone();
        aioloop::spawn(async move {
            if let Err(e) = echo(&conn, &stats).await {
                if e.kind() != io::ErrorKind::ConnectionReset && e.kind() != io::ErrorKind::BrokenPipe {
                    eprintln!("echo server: connection failed: {e}");
                }
            }
            stats.open.set(stats.open.get() - 1);
        });
    }
}

/// Writes back what `conn` sends until it closes its side. (`&TcpStream` reads and writes too:
/// futures-lite's `AsyncReadExt`/`AsyncWriteExt` work on it.)
async fn echo(mut conn: &TcpStream, stats: &ServerStats) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
        stats.echoed.set(stats.echoed.get() + n as u64);
    }
}

/// Prints a status line every second in which the server's counters changed (`prefix` names
/// the loop when there are several).
async fn report_server(stats: Rc<ServerStats>, prefix: String) {
    let mut last = (0, 0);
    loop {
        aioloop::sleep(Duration::from_secs(1)).await;
        let now = (stats.accepted.load(Ordering::Relaxed), stats.echoed.get());
        if now != last {
            println!("{prefix}connections: {} open, {} accepted; {} bytes echoed", stats.open.get(), now.0, now.1);
            last = now;
        }
    }
}

// ===== The server on several loops =====

/// The server's loops, and how many connections each accepted.
struct Servers {
    loops: Loops<io::Result<()>>,
    /// Where they listen.
    addr: SocketAddr,
    /// Connections accepted, per loop.
    accepted: Vec<Arc<AtomicU64>>,
}

/// Starts the server on `threads` loops, one per thread, each with its own listener on `addr`
/// (`SO_REUSEPORT`); returns once every loop listens, or with the first loop's failure.
fn start_servers(addr: &str, threads: usize, report: bool) -> io::Result<Servers> {
    let accepted: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::default()).collect();
    let counters = accepted.clone();
    let requested = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| usage(&format!("`{addr}` resolves to no address")))?;
    // The first loop to bind picks the port (if `addr` says 0); the others bind that one.
    let port = Arc::new(Mutex::new(None::<SocketAddr>));
    let (bound_tx, bound) = mpsc::channel();
    let loops = PerCore::new(threads).spawn(move |i| {
        let (port, bound_tx) = (port.clone(), bound_tx.clone());
        let stats = Rc::new(ServerStats { accepted: counters[i].clone(), ..ServerStats::default() });
        async move {
            let listener = {
                let mut port = port.lock().unwrap_or_else(|e| e.into_inner());
                let options = TcpListenOptions::new().reuse_port(true).backlog(1024);
                let bound = TcpListener::bind_with(port.unwrap_or(requested), options);
                if let Ok(l) = &bound {
                    *port = l.local_addr().ok();
                }
                // An `io::Error` is `Send`: the failure itself goes to the main thread.
                let _ = bound_tx.send(
                    bound
                        .as_ref()
                        .map(|_| port.unwrap_or(requested))
                        .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                );
                bound?
            };
            if report {
                aioloop::spawn(report_server(stats.clone(), format!("loop {i}: ")));
            }
            serve(listener, stats).await
        }
    })?;
    let mut addr = requested;
    for _ in 0..threads {
        match bound.recv() {
            Ok(Ok(a)) => addr = a,
            Ok(Err(e)) => return Err(e), // dropping `loops` cancels and joins the others
            Err(_) => return Err(io::Error::other("a server loop ended before it listened")),
        }
    }
    Ok(Servers { loops, addr, accepted })
}

/// Cancels the server loops and prints how many connections each accepted; fails if a loop
/// failed (an accept error, a panic) before it was cancelled.
fn stop_servers(servers: Servers) -> io::Result<()> {
    let cpus: Vec<_> = (0..servers.loops.len()).map(|i| servers.loops.cpu(i)).collect();
    servers.loops.cancel();
    let outcomes = servers.loops.join();
    for (i, (outcome, cpu)) in outcomes.into_iter().zip(cpus).enumerate() {
        let cpu = cpu.map_or("unpinned".to_string(), |c| format!("CPU {c}"));
        println!("server loop {i} ({cpu}): accepted {} connections", servers.accepted[i].load(Ordering::Relaxed));
        match outcome {
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(io::Error::other(format!("server loop {i}: {e}"))),
            Ok(Err(e)) => return Err(io::Error::new(e.kind(), format!("server loop {i}: {e}"))),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// `server --threads N`: serves on N loops until killed.
fn run_server_threaded(addr: &str, threads: usize) -> io::Result<()> {
    let servers = start_servers(addr, threads, true)?;
    println!(
        "echo server listening on {} on {threads} loops (one per thread, SO_REUSEPORT); Ctrl-C stops it",
        servers.addr
    );
    for i in 0..threads {
        let cpu = servers.loops.cpu(i).map_or("unpinned".to_string(), |c| format!("CPU {c}"));
        println!("loop {i}: thread aioloop-loop-{i}, {cpu}");
    }
    // The loops serve until the process is killed; `join` returns only if every loop failed.
    let outcomes = servers.loops.join();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(Err(e)) => eprintln!("echo server loop {i}: {e}"),
            Err(e) => eprintln!("echo server loop {i}: {e}"),
            Ok(Ok(())) => {}
        }
    }
    Err(io::Error::other("every server loop stopped"))
}

/// No mode, `--threads N`: the server on N loops, the client on the main thread's loop.
fn run_both_threaded(args: &Args) -> io::Result<()> {
    check_fd_limit(2 * args.connections)?;
    let servers = start_servers(args.addr.as_deref().unwrap_or("127.0.0.1:0"), args.threads, false)?;
    let addr = servers.addr.to_string();
    println!(
        "echo: {} connections × {} requests of {REQUEST_SIZE} bytes, server on {} loops (threads aioloop-loop-0..), client on the main thread's loop (thread {:?})",
        args.connections,
        args.requests,
        args.threads,
        thread()
    );
    let mut lp = EventLoop::new()?;
    let report = lp.run_until_complete(run_client(&addr, args.connections, args.requests));
    lp.close();
    let finished = report.and_then(finish);
    let stopped = stop_servers(servers);
    finished.and(stopped)
}

// ===== The client =====

/// What the client measured.
struct Report {
    connections: usize,
    connect_time: Duration,
    /// Round-trip times of the requests that got their echo.
    latencies: Vec<Duration>,
    /// How long the request phase took, from the first request to the last echo.
    elapsed: Duration,
    /// Connections that failed during the request phase, and the first failure.
    errors: usize,
    first_error: Option<io::Error>,
}

/// Opens `n` connections to `addr`, `CONNECT_WAVE` at a time, each checked with one echo.
///
/// A connect completes when the server's kernel answers, before the server accepts; a client
/// that went on connecting could overflow the listener's backlog, and the kernel drops the SYNs
/// of an overflowing backlog (the client retries one second later). The echo of a first request
/// proves the server accepted the connection, so at most one wave is waiting in the backlog.
async fn connect_all(addr: &str, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let wave = CONNECT_WAVE.min(n - conns.len());
        let connects = (0..wave).map(|_| {
            let addr = addr.to_string();
            aioloop::spawn(async move {
                let mut conn = TcpStream::connect(addr.as_str()).await?;
                conn.set_nodelay(true)?;
                let mut hello = [0u8; REQUEST_SIZE];
                conn.write_all(&hello).await?;
                read_exact(&conn, &mut hello).await?;
                Ok::<_, io::Error>(conn)
            })
        });
        for conn in aioloop::gather(connects).await.map_err(task_error)? {
            conns.push(conn.map_err(|e| explain_connect_error(e, addr, conns.len()))?);
        }
    }
    Ok(conns)
}

/// Makes `requests` round trips on `conn`; returns the round-trip times.
async fn round_trips(mut conn: TcpStream, id: usize, requests: usize) -> io::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(requests);
    let mut request = [0u8; REQUEST_SIZE];
    let mut reply = [0u8; REQUEST_SIZE];
    for seq in 0..requests {
        // A request names its connection and number, so a mixed-up echo is noticed.
        request[..8].copy_from_slice(&(id as u64).to_le_bytes());
        request[8..16].copy_from_slice(&(seq as u64).to_le_bytes());
        let sent = Instant::now();
        conn.write_all(&request).await?;
        read_exact(&conn, &mut reply).await?;
        latencies.push(sent.elapsed());
        if reply != request {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the echo differs from the request"));
        }
    }
    Ok(latencies)
}

/// Reads exactly `buf.len()` bytes (`AsyncReadExt::read_exact`, with an error that names the
/// server).
async fn read_exact(mut conn: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]).await? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
            n => got += n,
        }
    }
    Ok(())
}

/// Connects, then runs every connection's round trips at the same time.
async fn run_client(addr: &str, connections: usize, requests: usize) -> io::Result<Report> {
    let start = Instant::now();
    let conns = connect_all(addr, connections).await?;
    let connect_time = start.elapsed();

    let start = Instant::now();
    let tasks: Vec<_> =
        conns.into_iter().enumerate().map(|(id, conn)| aioloop::spawn(round_trips(conn, id, requests))).collect();
    let outcomes = aioloop::gather_settled(tasks).await;
    let elapsed = start.elapsed();

    let mut report = Report { connections, connect_time, latencies: Vec::new(), elapsed, errors: 0, first_error: None };
    for outcome in outcomes {
        match outcome.map_err(task_error).and_then(|r| r) {
            Ok(mut l) => report.latencies.append(&mut l),
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert(e);
            }
        }
    }
    Ok(report)
}

/// Returns the `p`th percentile (0..=100) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn print_report(mut r: Report) {
    println!("connected {} connections in {:.3}s", r.connections, r.connect_time.as_secs_f64());
    r.latencies.sort_unstable();
    let done = r.latencies.len();
    let rate = done as f64 / r.elapsed.as_secs_f64().max(1e-9);
    println!("{done} requests in {:.3}s: {rate:.0} requests/s", r.elapsed.as_secs_f64());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("latency: p50 {:.3}ms, p99 {:.3}ms", ms(percentile(&r.latencies, 50)), ms(percentile(&r.latencies, 99)));
    println!("errors: {}", r.errors);
    if let Some(e) = r.first_error {
        eprintln!("first error: {e}");
    }
}

// ===== File descriptors =====

/// Returns the soft limit on open files of this process, read from `/proc/self/limits`
/// (Linux); `None` if it cannot be read or is unlimited.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The `ulimit -n` value to suggest for `needed` descriptors.
fn suggested_limit(needed: u64) -> u64 {
    needed.div_ceil(1000).saturating_mul(1000).max(20_000)
}

/// Fails with a hint if the process may not open `sockets` more sockets.
fn check_fd_limit(sockets: usize) -> io::Result<()> {
    let needed = sockets as u64 + SPARE_FDS;
    match open_files_limit() {
        Some(limit) if limit < needed => Err(io::Error::other(format!(
            "{sockets} sockets need about {needed} file descriptors, but this process may open only {limit} \
             (`ulimit -n`): raise it with `ulimit -n {}`, or ask for fewer with --connections",
            suggested_limit(needed)
        ))),
        _ => Ok(()),
    }
}

/// Adds a hint to a failed connect: out of descriptors, or no server listening.
fn explain_connect_error(e: io::Error, addr: &str, opened: usize) -> io::Error {
    // EMFILE (this process) and ENFILE (the whole system) are 24 and 23 on Linux, macOS and
    // the BSDs; the standard library has no `ErrorKind` for them.
    if matches!(e.raw_os_error(), Some(23 | 24)) {
        return io::Error::other(format!(
            "out of file descriptors after {opened} connections ({e}): raise the limit with `ulimit -n 20000`"
        ));
    }
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return io::Error::new(
            e.kind(),
            format!(
                "cannot connect to {addr} ({e}): start the server with `cargo run --release --example echo -- server`"
            ),
        );
    }
    io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}"))
}

// ===== main =====

async fn main_async(args: Args) -> io::Result<()> {
    let addr = args.addr.as_deref().unwrap_or(if args.mode == Mode::Both { "127.0.0.1:0" } else { DEFAULT_ADDR });
    match args.mode {
        Mode::Server => {
            let listener = TcpListener::bind(addr)?;
            println!("echo server listening on {} (thread {:?}); Ctrl-C stops it", listener.local_addr()?, thread());
            if let Some(limit) = open_files_limit() {
                println!(
                    "it can hold about {} connections at once (`ulimit -n` is {limit})",
                    limit.saturating_sub(SPARE_FDS)
                );
            }
            let stats = Rc::new(ServerStats::default());
            aioloop::spawn(report_server(stats.clone(), String::new()));
            serve(listener, stats).await
        }
        Mode::Client => {
            check_fd_limit(args.connections)?;
            println!(
                "echo client: {} connections × {} requests of {REQUEST_SIZE} bytes to {} (thread {:?})",
                args.connections,
                args.requests,
                addr,
                thread()
            );
            finish(run_client(addr, args.connections, args.requests).await?)
        }
        Mode::Both => {
            // Each connection has two ends here, and both are this process's descriptors.
            check_fd_limit(2 * args.connections)?;
            let listener = TcpListener::bind(addr)?;
            let addr = listener.local_addr()?.to_string();
            println!(
                "echo: {} connections × {} requests of {REQUEST_SIZE} bytes, server and client in one loop (thread {:?})",
                args.connections,
                args.requests,
                thread()
            );
            let stats = Rc::new(ServerStats::default());
            let server = aioloop::spawn(serve(listener, stats.clone()));
            let report = run_client(&addr, args.connections, args.requests).await;
            // The client's connections are closed: let the server's connection tasks read the
            // end of their streams and finish, so that none is left pending when the loop closes
            // (it would report "Task was destroyed but it is pending!", as asyncio does).
            let deadline = Instant::now() + Duration::from_secs(1);
            while stats.open.get() > 0 && Instant::now() < deadline {
                aioloop::sleep(Duration::from_millis(1)).await;
            }
            server.cancel();
            finish(report?)
        }
    }
}

/// Prints the report; fails if any connection failed.
fn finish(report: Report) -> io::Result<()> {
    let errors = report.errors;
    print_report(report);
    if errors > 0 {
        return Err(io::Error::other(format!("{errors} connections failed")));
    }
    Ok(())
}

/// Turns a task's failure (a panic or a cancellation) into an `io::Error`.
fn task_error(e: aioloop::TaskError) -> io::Error {
    io::Error::other(e.to_string())
}

fn thread() -> std::thread::ThreadId {
    std::thread::current().id()
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        if args.threads > 1 {
            let addr = args.addr.as_deref().unwrap_or(DEFAULT_ADDR);
            return match args.mode {
                Mode::Server => run_server_threaded(addr, args.threads),
                _ => run_both_threaded(&args),
            };
        }
        let mut lp = EventLoop::new()?;
        let result = lp.run_until_complete(main_async(args));
        lp.close();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}
