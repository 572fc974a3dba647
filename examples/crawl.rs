//! Ports seed `004_5b2975e6746989ca.txt`: the `crawl_page` programs of its sections "普通的爬虫程序"
//! (a plain crawler) and "协程改造" (rewritten with coroutines).
//!
//! Four urls, `url_1` to `url_4`, each take as many seconds to "crawl" (a sleep) as the number
//! in their name. Crawled one after the other they take 1 + 2 + 3 + 4 = 10 s; spawned as tasks
//! they sleep at the same time and take as long as the slowest, 4 s, whether the tasks are then
//! awaited one by one or all at once with `gather`.
//!
//! The seed prints `程序耗时{}s` ("the program took {} s"); this port prints `cost {}s` in whole
//! seconds of loop time.
//!
//! Run with: `cargo run --example crawl` (18 s of real time), or
//! `cargo run --example crawl -- --fast` (virtual time: the same lines and costs, at once).
//! Add `--trace crawl.svg` to save a timeline of the three versions, one after the other (or
//! `--trace crawl.json` for Perfetto): `--trace docs/src/crawl.svg` redraws the book's picture.

use std::future::Future;
use std::time::Duration;

use aioloop::{EventLoop, Trace};

const URLS: [&str; 4] = ["url_1", "url_2", "url_3", "url_4"];

/// Pretends to crawl `url`: takes as many seconds as the number after its last `_`.
async fn crawl_page(url: &'static str) {
    println!("crawling {url}");
    let secs: u64 = url.rsplit('_').next().and_then(|n| n.parse().ok()).expect("a url ends in _<seconds>");
    aioloop::sleep(Duration::from_secs(secs)).await;
    println!("OK {url}");
}

/// Names a task after its url (asyncio's `create_task(coro, name=url)`): the name labels its
/// row in a `--trace` picture.
fn named(url: &str, task: aioloop::Task<()>) -> aioloop::Task<()> {
    task.set_name(url);
    task
}

/// Version 1, the plain crawler: one url after the other.
///
/// The seed's original is not async at all: it calls `time.sleep`, which blocks the thread.
/// Inside an event loop the equivalent, `std::thread::sleep`, would stall the whole loop: no
/// other task could run and no timer could fire until it returned, and virtual time could not
/// skip it (`--fast` would still take 10 s). So this version awaits each crawl in turn: the
/// same 10 s, spent waiting in the loop instead of blocking it.
async fn crawl_sequentially() {
    for url in URLS {
        crawl_page(url).await;
    }
}

/// Version 2, `tasks = [create_task(...)]; for task in tasks: await task`.
async fn crawl_with_tasks() {
    let tasks: Vec<_> = URLS.into_iter().map(|url| named(url, aioloop::spawn(crawl_page(url)))).collect();
    // All four crawls run while we wait for the first: awaiting a task does not start it.
    for task in tasks {
        task.await.expect("a crawl is neither cancelled nor panicking");
    }
}

/// Version 3, the seed's commented-out alternative: `await asyncio.gather(*tasks)`.
async fn crawl_with_gather() {
    let tasks: Vec<_> = URLS.into_iter().map(|url| named(url, aioloop::spawn(crawl_page(url)))).collect();
    aioloop::gather(tasks).await.expect("no crawl is cancelled or panics");
}

/// Runs `main` on a new loop (the seed's `asyncio.run`), closes the loop and prints the cost in
/// whole seconds of loop time. Adds the run's trace to `trace`, if there is one.
fn timed(fast: bool, trace: &mut Option<Trace>, main: impl Future<Output = ()>) {
    let mut lp =
        EventLoop::builder().virtual_time(fast).trace(trace.is_some()).build().expect("cannot create the event loop");
    let start = lp.time();
    lp.run_until_complete(async {
        // asyncio's `asyncio.current_task().set_name("main")`: labels main's row in a picture.
        aioloop::set_current_task_name("main");
        main.await
    });
    let cost = lp.time() - start;
    if let Some(trace) = trace {
        trace.append(lp.trace());
    }
    lp.close();
    println!("cost {}s", cost.as_secs());
}

fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    let trace_to = trace_path();
    // The three runs' traces, one after the other.
    let mut trace = trace_to.as_ref().map(|_| Trace::default());
    println!("--- sequential: await each crawl in turn ---");
    timed(fast, &mut trace, crawl_sequentially());
    println!("--- concurrent: spawn every crawl, then await each task ---");
    timed(fast, &mut trace, crawl_with_tasks());
    println!("--- concurrent: spawn every crawl, then gather them ---");
    timed(fast, &mut trace, crawl_with_gather());
    if let (Some(path), Some(trace)) = (trace_to, trace) {
        save_trace(&trace, &path);
    }
}

/// Returns the path given after `--trace`, if any (where to save the run's trace: `.svg` or
/// `.json`).
fn trace_path() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--trace")?;
    match args.get(at + 1) {
        Some(path) => Some(path.clone()),
        None => {
            eprintln!("--trace needs a path: a .svg (a timeline) or a .json (for Perfetto)");
            std::process::exit(2);
        }
    }
}

/// Saves `trace` to `path` and says so on stderr (stdout stays the program's own output).
fn save_trace(trace: &Trace, path: &str) {
    if let Err(e) = trace.save(path) {
        eprintln!("cannot save the trace: {e}");
        std::process::exit(1);
    }
    eprintln!("trace saved to {path}");
}
