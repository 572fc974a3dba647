//! Makes the crawler of seed `002_c3daf843f3f33c93.txt` ("Python vs Golang 协程的区别") real,
//! without the internet: the seed's tasks fetch urls with `await loop.run_in_executor(None,
//! requests.get, url)` and print `开始执行爬虫... url` with the start time and the end time of
//! each fetch.
//!
//! A small HTTP/1.1 server runs on 127.0.0.1, on the same loop as the crawlers: `/page/N`
//! answers `page N` after N × 100 ms (an `aioloop::sleep`, so the server keeps serving other
//! requests meanwhile). The crawler fetches `/page/1`, `/page/2` and `/page/3`:
//!
//! - (a) sequentially, with an async client (a `TcpStream` on the loop): 0.1 + 0.2 + 0.3 s;
//! - (b) concurrently, one task per url and `gather`: as long as the slowest page, 0.3 s;
//! - (c) the seed's way: a blocking `std::net::TcpStream` GET (the `requests.get` of the seed)
//!   sent to the executor's threads with `run_in_executor`, one task per url, then `wait`:
//!   0.3 s as well, while the loop, and the server on it, keep running;
//! - (d) what `run_in_executor` avoids: the same blocking GET called on the loop's thread. The
//!   loop cannot run while the call blocks, so the server, a task of that loop, never answers;
//!   a 250 ms read timeout ends the call. This is the seed's "async is contagious": once a
//!   program is async, a blocking call anywhere in it stalls every task.
//!
//! Each fetch prints `start URL at T` and `end URL at T` like the seed, with times in seconds
//! since its part began; the program ends with the total of each part against the sequential
//! one. It uses only aioloop and the standard library, and takes about 1.5 s.
//!
//! Run with: `cargo run --example http_crawl`

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aioloop::net::{TcpListener, TcpStream};
use aioloop::{EventLoop, ReturnWhen};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// The pages fetched: `/page/N` takes N × `DELAY_UNIT` to answer.
const PAGES: [u64; 3] = [1, 2, 3];
/// The server's delay per page number.
const DELAY_UNIT: Duration = Duration::from_millis(100);
/// How long the blocking GET of part (d) waits for an answer that cannot come.
const BLOCKING_TIMEOUT: Duration = Duration::from_millis(250);
/// The largest request head the server reads.
const MAX_HEAD: usize = 8 * 1024;

// ===== The server =====

/// Accepts connections forever, one task per request.
async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (conn, _peer) = listener.accept().await?;
        aioloop::spawn(async move {
            // A client that gives up (part (d)) makes the answer fail: nothing to report.
            let _ = answer(&conn).await;
        });
    }
}

/// Reads one request and answers it: `/page/N` after N × `DELAY_UNIT`, anything else 404.
async fn answer(mut conn: &TcpStream) -> io::Result<()> {
    let head = read_head(conn).await?;
    let page = head
        .strip_prefix("GET /page/")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|&n| n <= 50);
    let (status, body) = match page {
        Some(n) => {
            aioloop::sleep(DELAY_UNIT * n).await;
            ("200 OK", format!("page {n}"))
        }
        None => ("404 Not Found", "not found".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await
}

/// Reads a request up to the blank line that ends its head (requests here have no body).
async fn read_head(mut conn: &TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "incomplete or oversized request"));
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ===== The clients =====

/// A response: its status code and body.
#[derive(Debug)]
struct Response {
    status: u16,
    body: String,
}

/// The request both clients send.
fn request(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: aioloop-crawler\r\nConnection: close\r\n\r\n")
}

/// Parses a whole response (the server closes the connection after it).
fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {what}"));
    let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("no end of head"))?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .ok_or_else(|| bad("no Content-Length"))?;
    if body.len() != length {
        return Err(bad("body shorter or longer than its Content-Length"));
    }
    Ok(Response { status, body: body.to_string() })
}

/// GETs `path` with the loop's sockets: waiting for the server parks this task, not the thread.
async fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(request(addr, path).as_bytes()).await?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await?;
    parse_response(&raw)
}

/// GETs `path` with blocking standard library calls (the seed's `requests.get`): the calling
/// thread sleeps in `read` until the server answers, or `timeout` passes.
fn blocking_get(addr: SocketAddr, path: &str, timeout: Option<Duration>) -> io::Result<Response> {
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(timeout)?;
    conn.write_all(request(addr, path).as_bytes())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    parse_response(&raw)
}

// ===== The crawlers =====

/// Seconds since `t0`.
fn at(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn print_end(url: &str, t0: Instant, response: &io::Result<Response>, note: &str) {
    match response {
        Ok(r) => println!("end   {url} at {:.3}s: {} {:?}{note}", at(t0), r.status, r.body),
        Err(e) => println!("end   {url} at {:.3}s: error: {e}{note}", at(t0)),
    }
}

/// Fetches one page with the async client, printing its start and end.
async fn crawl(addr: SocketAddr, path: String, t0: Instant) -> io::Result<Response> {
    let url = url(addr, &path);
    println!("start {url} at {:.3}s", at(t0));
    let response = get(addr, &path).await;
    print_end(&url, t0, &response, "");
    response
}

/// The seed's `run(url)`: the blocking GET runs on an executor thread while this task waits.
async fn crawl_in_executor(addr: SocketAddr, path: String, t0: Instant) -> io::Result<Response> {
    let url = url(addr, &path);
    println!("start {url} at {:.3}s", at(t0));
    let job = aioloop::run_in_executor(move || {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        (blocking_get(addr, &path, None), thread)
    });
    let (response, thread) = job.await.map_err(|e| io::Error::other(e.to_string()))?;
    print_end(&url, t0, &response, &format!(" (fetched on thread {thread})"));
    response
}

fn paths() -> impl Iterator<Item = String> {
    PAGES.into_iter().map(|n| format!("/page/{n}"))
}

/// (a) One page after the other.
async fn sequential(addr: SocketAddr) -> io::Result<Duration> {
    let t0 = Instant::now();
    for path in paths() {
        crawl(addr, path, t0).await?;
    }
    Ok(t0.elapsed())
}

/// (b) One task per page, then `gather`.
async fn concurrent(addr: SocketAddr) -> io::Result<Duration> {
    let t0 = Instant::now();
    let tasks: Vec<_> = paths().map(|path| aioloop::spawn(crawl(addr, path, t0))).collect();
    for response in aioloop::gather(tasks).await.map_err(|e| io::Error::other(e.to_string()))? {
        response?;
    }
    Ok(t0.elapsed())
}

/// (c) The seed's program: `tasks = [ensure_future(run(url)) ...]`, then `asyncio.wait(tasks)`.
async fn in_executor(addr: SocketAddr) -> io::Result<Duration> {
    let t0 = Instant::now();
    let tasks: Vec<_> = paths().map(|path| aioloop::spawn(crawl_in_executor(addr, path, t0))).collect();
    let (done, _pending) = aioloop::wait(tasks, None, ReturnWhen::AllCompleted).await;
    for task in done {
        task.await.map_err(|e| io::Error::other(e.to_string()))??;
    }
    Ok(t0.elapsed())
}

/// (d) The blocking GET on the loop's thread: the server cannot answer until it returns.
fn blocking_on_the_loop(addr: SocketAddr) -> Duration {
    let t0 = Instant::now();
    let path = "/page/1";
    let url = url(addr, path);
    println!("start {url} at {:.3}s", at(t0));
    let response = blocking_get(addr, path, Some(BLOCKING_TIMEOUT)).map_err(|e| match e.kind() {
        // A read timeout is `WouldBlock` on Linux and `TimedOut` elsewhere.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {} ms", BLOCKING_TIMEOUT.as_millis()))
        }
        _ => e,
    });
    print_end(&url, t0, &response, " (the server runs on the loop this call blocked)");
    t0.elapsed()
}

async fn main_async() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = aioloop::spawn(serve(listener));
    println!(
        "HTTP server on http://{addr}, in this loop (thread {:?}): /page/N answers after N × {} ms",
        std::thread::current().id(),
        DELAY_UNIT.as_millis()
    );

    println!("--- (a) sequential: await each fetch, async client ---");
    let a = sequential(addr).await?;
    println!("took {:.3}s", a.as_secs_f64());
    println!("--- (b) concurrent: spawn a task per url, then gather, async client ---");
    let b = concurrent(addr).await?;
    println!("took {:.3}s", b.as_secs_f64());
    println!("--- (c) the seed's way: run_in_executor around a blocking GET, then wait ---");
    let c = in_executor(addr).await?;
    println!("took {:.3}s", c.as_secs_f64());
    println!("--- (d) the blocking GET called on the loop's thread instead ---");
    let d = blocking_on_the_loop(addr);
    println!("took {:.3}s, and no page", d.as_secs_f64());

    println!("--- totals ---");
    let ratio = |t: Duration| t.as_secs_f64() / a.as_secs_f64();
    println!("sequential total {:.3}s", a.as_secs_f64());
    println!("concurrent total {:.3}s ({:.2} of sequential)", b.as_secs_f64(), ratio(b));
    println!("run_in_executor total {:.3}s ({:.2} of sequential)", c.as_secs_f64(), ratio(c));
    server.cancel();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = EventLoop::new().and_then(|mut lp| {
        let result = lp.run_until_complete(main_async());
        lp.close();
        result
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_crawl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
