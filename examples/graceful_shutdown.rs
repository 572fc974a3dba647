//! An echo server that shuts down gracefully on SIGINT (Ctrl-C) or SIGTERM (`kill`, a service
//! manager): it stops accepting, lets the requests in flight finish within a deadline, closes
//! the idle connections, reports what it drained, and exits 0.
//!
//! The protocol is one request per line; the server "works" on each request for `--work-ms`
//! (default 200 ms) and then echoes the line back. On the signal:
//!
//! 1. the acceptor task is cancelled: the listener closes, new connections are refused;
//! 2. every connection finishes the requests it has received (read before the signal, or
//!    already in its socket's buffer), then closes; an idle connection closes at once;
//! 3. whatever is still running at the deadline (`--deadline-ms`, default 5 s) is cancelled.
//!
//! The signal callbacks are ordinary loop callbacks (`aioloop::add_signal_handler`): they set an
//! `Event` that the main task and every connection watch, which no code inside a real signal
//! handler could do.
//!
//! Run with: `cargo run --example graceful_shutdown` (then press Ctrl-C), or
//! `cargo run --example graceful_shutdown -- --demo`: clients in the same process send requests
//! and the server sends itself SIGTERM while they are in flight.
//! Options: `--addr 127.0.0.1:7879`, `--work-ms 200`, `--deadline-ms 5000`.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use aioloop::net::{TcpListener, TcpStream};
use aioloop::signal::{SIGINT, SIGTERM};
use aioloop::sync::Event;
use aioloop::{ReturnWhen, Task};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// The command line.
struct Args {
    addr: String,
    work: Duration,
    deadline: Duration,
    demo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:7879".into(),
        work: Duration::from_millis(200),
        deadline: Duration::from_secs(5),
        demo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let ms = |v: String| v.parse::<u64>().map(Duration::from_millis).map_err(|e| format!("{v}: {e}"));
        match a.as_str() {
            "--addr" => args.addr = value("--addr")?,
            "--work-ms" => args.work = ms(value("--work-ms")?)?,
            "--deadline-ms" => args.deadline = ms(value("--deadline-ms")?)?,
            "--demo" => args.demo = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.demo && args.addr == "127.0.0.1:7879" {
        args.addr = "127.0.0.1:0".into(); // any free port
    }
    Ok(args)
}

/// The server's counters.
#[derive(Default)]
struct Stats {
    /// Requests read and not answered yet.
    in_flight: Cell<u32>,
    /// Requests answered after the signal.
    drained: Cell<u32>,
    /// Connections closed at the signal because they had no request in flight.
    idle_closed: Cell<u32>,
}

/// Serves one connection: answers each line after `work`; once `shutdown` is set, answers what
/// it has received and closes.
async fn handle(conn: TcpStream, shutdown: Event, work: Duration, stats: Rc<Stats>) -> io::Result<()> {
    let mut received: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut answered_after_signal = false;
    loop {
        // Answer every complete request received so far.
        while let Some(end) = received.iter().position(|&b| b == b'\n') {
            let request: Vec<u8> = received.drain(..=end).collect();
            stats.in_flight.set(stats.in_flight.get() + 1);
            aioloop::sleep(work).await; // the work
            (&conn).write_all(&request).await?;
            stats.in_flight.set(stats.in_flight.get() - 1);
            if shutdown.is_set() {
                stats.drained.set(stats.drained.get() + 1);
                answered_after_signal = true;
            }
        }
        // Wait for more, or for the shutdown. The read is tried first: bytes already in the
        // socket's buffer are read even when the shutdown has begun.
        let read = async { Some((&conn).read(&mut chunk).await) };
        let stop = async {
            shutdown.wait().await;
            None
        };
        match futures_lite::future::or(read, stop).await {
            Some(Ok(0)) => return Ok(()), // the client closed
            Some(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Some(Err(e)) => return Err(e),
            None if received.is_empty() => {
                if !answered_after_signal {
                    stats.idle_closed.set(stats.idle_closed.get() + 1);
                }
                return Ok(());
            }
            // Half a request came before the signal: read the rest (the deadline bounds it).
            None => match (&conn).read(&mut chunk).await? {
                0 => return Ok(()),
                n => received.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// Accepts connections and starts a task for each, until cancelled.
async fn accept(
    listener: TcpListener,
    conns: Rc<RefCell<Vec<Task<()>>>>,
    shutdown: Event,
    work: Duration,
    stats: Rc<Stats>,
) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let task = aioloop::spawn(handle(conn, shutdown.clone(), work, stats.clone()));
                let task = aioloop::spawn(async move {
                    if let Err(e) = task.await.expect("a connection task never panics") {
                        eprintln!("connection: {e}");
                    }
                });
                conns.borrow_mut().push(task);
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

/// The demo's clients: `busy` connections each send one request, `idle` connections send
/// nothing; the server then receives SIGTERM while the requests are in flight. Returns how many
/// replies came back, and whether every idle connection was closed by the server.
async fn demo_clients(addr: SocketAddr, busy: usize, idle: usize) -> io::Result<(usize, bool)> {
    let mut idlers = Vec::new();
    for _ in 0..idle {
        idlers.push(TcpStream::connect(addr).await?);
    }
    let mut clients = Vec::new();
    for i in 0..busy {
        let conn = TcpStream::connect(addr).await?;
        clients.push(aioloop::spawn(async move {
            let request = format!("request {i}\n");
            (&conn).write_all(request.as_bytes()).await?;
            let mut reply = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                match (&conn).read(&mut buf).await? {
                    0 => break,
                    n => reply.extend_from_slice(&buf[..n]),
                }
            }
            Ok::<bool, io::Error>(reply == request.as_bytes())
        }));
    }
    aioloop::sleep(Duration::from_millis(50)).await; // the requests are being worked on
    println!("demo: {busy} requests in flight, {idle} idle connections; sending SIGTERM to myself");
    aioloop::signal::raise_signal(SIGTERM)?;
    let mut replies = 0;
    for c in clients {
        if c.await.expect("a client task never panics")? {
            replies += 1;
        }
    }
    let mut closed = true;
    for conn in idlers {
        closed &= (&conn).read(&mut [0u8; 8]).await? == 0;
    }
    Ok((replies, closed))
}

async fn serve(args: Args) -> io::Result<()> {
    let listener = TcpListener::bind(args.addr.as_str())?;
    let addr = listener.local_addr()?;
    println!("listening on {addr} (Ctrl-C or SIGTERM to stop)");
    let shutdown = Event::new();
    let signal = Rc::new(Cell::new(0));
    for sig in [SIGINT, SIGTERM] {
        let (shutdown, signal) = (shutdown.clone(), signal.clone());
        aioloop::add_signal_handler(sig, move || {
            signal.set(sig);
            shutdown.set();
        })?;
    }
    let stats = Rc::new(Stats::default());
    let conns: Rc<RefCell<Vec<Task<()>>>> = Rc::default();
    let acceptor = aioloop::spawn(accept(listener, conns.clone(), shutdown.clone(), args.work, stats.clone()));
    let demo = args.demo.then(|| aioloop::spawn(demo_clients(addr, 20, 5)));

    shutdown.wait().await;
    // A second Ctrl-C during the drain terminates at once, as without a handler.
    for sig in [SIGINT, SIGTERM] {
        aioloop::remove_signal_handler(sig);
    }
    acceptor.cancel();
    let _ = acceptor.await; // cancelled: its listener is closed, new connections are refused
    let name = if signal.get() == SIGINT { "SIGINT" } else { "SIGTERM" };
    println!("{name}: stopped accepting; {} requests in flight", stats.in_flight.get());

    let tasks: Vec<Task<()>> = conns.borrow_mut().drain(..).collect();
    let (finished, cut) = aioloop::wait(tasks, Some(args.deadline), ReturnWhen::AllCompleted).await;
    for task in &cut {
        task.cancel(); // past the deadline
    }
    println!(
        "drained {} requests, closed {} idle connections, {} connections cut at the deadline ({} finished)",
        stats.drained.get(),
        stats.idle_closed.get(),
        cut.len(),
        finished.len()
    );
    if let Some(demo) = demo {
        let (replies, idle_closed) = demo.await.expect("the demo never panics")?;
        println!("demo: {replies} of 20 replies received; idle connections closed: {idle_closed}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("graceful_shutdown: {e}");
            return ExitCode::from(2);
        }
    };
    match aioloop::run(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graceful_shutdown: {e}");
            ExitCode::FAILURE
        }
    }
}
