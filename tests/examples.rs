//! The examples, run with `--fast` (virtual time), print the lines of the asyncio programs they
//! port, in CPython's order. Where a port's words differ from its seed's (`phase` takes PyMOTW's
//! and adds thread ids and result lines), docs/src/examples.md says how and why.
//!
//! Each test runs `cargo run --quiet --example NAME -- --fast` (Cargo builds no binary path for
//! examples that a test could use, unlike `CARGO_BIN_EXE_<name>` for binaries) and compares the
//! complete stdout with the expected lines.
//!
//! Where the expected lines come from:
//! - `phase`: asyncio-semantics.md section 4.1 (CPython 3.11 to 3.13): `2 completed and 1 pending`,
//!   `canceling tasks`, `exiting main`, and `phase 2 canceled` *after* `exiting main`; 10 s for
//!   waiting on all phases, 6 s with the timeout.
//! - `workers`: seed 004 and section 4.2, and confirmed by running the seed's Python program with
//!   a `SCALE` factor (`WORKERS_PY` below) on CPython 3.11.7: 60 of 60 runs at `SCALE=0.01` and
//!   one unscaled run (2 s) printed the lines of `WORKERS` in that order.
//! - `crawl`: seed 004; its three asyncio versions (`CRAWL_PY` below) printed the lines of
//!   `CRAWL` on CPython 3.11.7 (10 of 10 runs at `SCALE=0.01`).
//!
//! `cargo test --test examples -- --ignored` repeats the CPython comparison (it needs `python3`).
//!
//! Lines that show a thread id must all show the *same* thread: one OS thread runs every task,
//! which is the point of a 1:N event loop. The id's value is not asserted.
//!
//! The examples of real sockets and threads run on real time, without `--fast`, and the tests
//! assert the shape of their output rather than every line (ports, timings and rates vary):
//! - `echo` (no arguments: server and client in one loop, 100 connections × 100 requests)
//!   reports 10,000 requests, a requests/s rate, p50 ≤ p99, and `errors: 0`;
//! - `http_crawl` fetches every page in parts (a) to (c), part (d) gets no answer, and the
//!   concurrent totals are well under the sequential one;
//! - `threadsafe` prints the same lines on every run (each step waits for the previous one), so
//!   they are compared in full.

use std::collections::BTreeSet;
use std::process::Command;

/// The output of `cargo run --example phase -- --fast`, thread ids written as `ThreadId(..)`.
const PHASE: &[&str] = &[
    "main thread ThreadId(..)",
    "--- part 1: wait for all phases ---",
    "starting main (thread ThreadId(..))",
    "waiting for phases to complete",
    "in phase 0, waiting 0s (thread ThreadId(..))",
    "in phase 1, waiting 5s (thread ThreadId(..))",
    "in phase 2, waiting 10s (thread ThreadId(..))",
    "done with phase 0",
    "done with phase 1",
    "done with phase 2",
    "phase 0 result",
    "phase 1 result",
    "phase 2 result",
    "exiting main",
    "cost 10s",
    "--- part 2: wait with a 6 s timeout, then cancel ---",
    "starting main (thread ThreadId(..))",
    "waiting for phases to complete",
    "in phase 0, waiting 0s (thread ThreadId(..))",
    "in phase 1, waiting 5s (thread ThreadId(..))",
    "in phase 2, waiting 10s (thread ThreadId(..))",
    "done with phase 0",
    "done with phase 1",
    "2 completed and 1 pending",
    "canceling tasks",
    "exiting main",
    // The cancelled phase's cleanup runs one iteration after main returned, as in asyncio.
    "phase 2 canceled",
    "cost 6s",
];

/// The output of `cargo run --example workers -- --fast`.
const WORKERS: &[&str] = &[
    "before await",
    "worker_1 start",
    "worker_2 start",
    "worker_1 done",
    "awaited worker_1",
    "worker_2 done",
    "awaited worker_2",
    "cost 2s",
];

/// The output of `cargo run --example crawl -- --fast`.
const CRAWL: &[&str] = &[
    "--- sequential: await each crawl in turn ---",
    "crawling url_1",
    "OK url_1",
    "crawling url_2",
    "OK url_2",
    "crawling url_3",
    "OK url_3",
    "crawling url_4",
    "OK url_4",
    "cost 10s",
    "--- concurrent: spawn every crawl, then await each task ---",
    "crawling url_1",
    "crawling url_2",
    "crawling url_3",
    "crawling url_4",
    "OK url_1",
    "OK url_2",
    "OK url_3",
    "OK url_4",
    "cost 4s",
    "--- concurrent: spawn every crawl, then gather them ---",
    "crawling url_1",
    "crawling url_2",
    "crawling url_3",
    "crawling url_4",
    "OK url_1",
    "OK url_2",
    "OK url_3",
    "OK url_4",
    "cost 4s",
];

/// Seed 004's `worker_1`/`worker_2` program, with its sleeps multiplied by `SCALE` (argv[1]) and
/// the cost printed in unscaled whole seconds, as the Rust port prints it.
const WORKERS_PY: &str = r#"
import asyncio, sys, time
SCALE = float(sys.argv[1])

async def worker_1():
    print('worker_1 start')
    await asyncio.sleep(1 * SCALE)
    print('worker_1 done')

async def worker_2():
    print('worker_2 start')
    await asyncio.sleep(2 * SCALE)
    print('worker_2 done')

async def main():
    task1 = asyncio.create_task(worker_1())
    task2 = asyncio.create_task(worker_2())
    print('before await')
    await task1
    print('awaited worker_1')
    await task2
    print('awaited worker_2')

begin_time = time.time()
asyncio.run(main())
print('cost {}s'.format(round((time.time() - begin_time) / SCALE)))
"#;

/// Seed 004's crawler in its three asyncio versions (the first awaits each crawl instead of the
/// seed's blocking `time.sleep`, like the Rust port; the output is the same), scaled like
/// `WORKERS_PY`.
const CRAWL_PY: &str = r#"
import asyncio, sys, time
SCALE = float(sys.argv[1])
URLS = ['url_1', 'url_2', 'url_3', 'url_4']

async def crawl_page(url):
    print('crawling {}'.format(url))
    await asyncio.sleep(int(url.split('_')[-1]) * SCALE)
    print('OK {}'.format(url))

async def sequential():
    for url in URLS:
        await crawl_page(url)

async def tasks():
    tasks = [asyncio.create_task(crawl_page(url)) for url in URLS]
    for task in tasks:
        await task

async def gather():
    tasks = [asyncio.create_task(crawl_page(url)) for url in URLS]
    await asyncio.gather(*tasks)

for title, main in [('sequential: await each crawl in turn', sequential),
                    ('concurrent: spawn every crawl, then await each task', tasks),
                    ('concurrent: spawn every crawl, then gather them', gather)]:
    print('--- {} ---'.format(title))
    begin_time = time.time()
    asyncio.run(main())
    print('cost {}s'.format(round((time.time() - begin_time) / SCALE)))
"#;

/// Runs an example on virtual time and returns its stdout.
fn run_example(name: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name, "--", "--fast"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start cargo");
    assert!(
        out.status.success(),
        "`cargo run --example {name} -- --fast` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the example prints UTF-8")
}

/// Replaces every `ThreadId(N)` with `ThreadId(..)`; returns the lines and the distinct ids seen.
fn mask_thread_ids(stdout: &str) -> (Vec<String>, BTreeSet<String>) {
    const TAG: &str = "ThreadId(";
    let mut ids = BTreeSet::new();
    let lines = stdout
        .lines()
        .map(|line| {
            let mut masked = String::new();
            let mut rest = line;
            while let Some(at) = rest.find(TAG) {
                let after = &rest[at + TAG.len()..];
                let close = after.find(')').expect("a ThreadId is closed");
                ids.insert(after[..close].to_string());
                masked.push_str(&rest[..at]);
                masked.push_str("ThreadId(..)");
                rest = &after[close + 1..];
            }
            masked.push_str(rest);
            masked
        })
        .collect();
    (lines, ids)
}

/// Asserts that `actual` is `expected`, naming the first line that differs.
fn assert_lines(name: &str, actual: &[String], expected: &[&str]) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{name}: line {} differs\nwhole output:\n{}", i + 1, actual.join("\n"));
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "{name}: {} lines instead of {}\nwhole output:\n{}",
        actual.len(),
        expected.len(),
        actual.join("\n")
    );
}

#[test]
fn phase_prints_asyncio_output_on_one_thread() {
    let (lines, ids) = mask_thread_ids(&run_example("phase"));
    assert_lines("phase", &lines, PHASE);
    assert_eq!(ids.len(), 1, "every phase runs on the main thread, saw threads {ids:?}");
}

#[test]
fn workers_prints_asyncio_order() {
    let (lines, ids) = mask_thread_ids(&run_example("workers"));
    assert_lines("workers", &lines, WORKERS);
    assert!(ids.len() <= 1, "one thread runs every task, saw threads {ids:?}");
}

#[test]
fn crawl_prints_asyncio_order_and_costs() {
    let (lines, ids) = mask_thread_ids(&run_example("crawl"));
    assert_lines("crawl", &lines, CRAWL);
    assert!(ids.len() <= 1, "one thread runs every task, saw threads {ids:?}");
}

/// The book's pictures are what the examples draw now: on virtual time a drawing is the same on
/// every run, so a change to the trace or to its SVG shows up here until they are redrawn.
#[test]
fn the_books_pictures_are_what_the_examples_draw() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("aioloop-tests-pictures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["phase", "workers", "crawl"] {
        let path = dir.join(format!("{name}.svg"));
        run_example_with(name, &["--fast", "--trace", path.to_str().expect("a UTF-8 temp dir")]);
        let drawn = std::fs::read_to_string(&path).unwrap();
        let book = std::fs::read_to_string(root.join(format!("docs/src/{name}.svg"))).unwrap();
        assert!(
            drawn == book,
            "docs/src/{name}.svg is not what the example draws now; redraw it with \
             `cargo run --example {name} -- --fast --trace docs/src/{name}.svg`"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs a Python program with `SCALE=0.01` and returns its stdout lines.
fn run_python(script: &str) -> Vec<String> {
    let out = Command::new("python3")
        .args(["-c", script, "0.01"])
        .output()
        .expect("this test needs python3 (asyncio from CPython 3.11 or later)");
    assert!(out.status.success(), "python3 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8").lines().map(str::to_string).collect()
}

/// Drops the `cost` lines: at `SCALE=0.01` CPython's wall-clock cost can round differently under
/// load, while the Rust ports' costs are asserted on virtual time above.
fn without_costs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).filter(|l| !l.starts_with("cost ")).collect()
}

#[test]
#[ignore = "needs python3: compares the examples with CPython's asyncio"]
fn workers_and_crawl_match_cpython() {
    for (name, script, expected) in [("workers", WORKERS_PY, WORKERS), ("crawl", CRAWL_PY, CRAWL)] {
        let python = run_python(script);
        let expected: Vec<&str> = expected.iter().copied().filter(|l| !l.starts_with("cost ")).collect();
        assert_eq!(without_costs(&python), expected, "{name}: CPython prints something else");
    }
}

/// Runs an example with `args` on real time and returns its stdout.
fn run_example_with(name: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name, "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start cargo");
    assert!(
        out.status.success(),
        "`cargo run --example {name} -- {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the example prints UTF-8")
}

/// Returns the first line that starts with `prefix`, without the prefix.
fn line_after<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?} in:\n{stdout}"))
}

/// Parses a number of seconds written `1.234s` at the start of `text`.
fn seconds(text: &str) -> f64 {
    let end = text.find('s').unwrap_or_else(|| panic!("no seconds in {text:?}"));
    text[..end].parse().unwrap_or_else(|_| panic!("no seconds in {text:?}"))
}

#[test]
fn echo_serves_its_own_client_on_one_thread() {
    let stdout = run_example_with("echo", &[]);
    // "10000 requests in 0.123s: 81234 requests/s"
    let rate_line = stdout.lines().find(|l| l.ends_with(" requests/s")).expect("a requests/s line");
    let (count, rest) = rate_line.split_once(" requests in ").expect("`N requests in T: R requests/s`");
    assert_eq!(count, "10000", "100 connections × 100 requests: {rate_line}");
    let rate: f64 = rest.rsplit(' ').nth(1).and_then(|r| r.parse().ok()).expect("a rate");
    assert!(rate > 0.0, "{rate_line}");
    // "latency: p50 1.234ms, p99 2.345ms"
    let latency = line_after(&stdout, "latency: p50 ");
    let (p50, p99) = latency.split_once("ms, p99 ").expect("p50 and p99");
    let p50: f64 = p50.parse().expect("p50 in ms");
    let p99: f64 = p99.trim_end_matches("ms").parse().expect("p99 in ms");
    assert!(p50 <= p99, "{latency}");
    assert!(stdout.lines().any(|l| l == "errors: 0"), "no `errors: 0` line in:\n{stdout}");
    assert!(line_after(&stdout, "connected ").starts_with("100 connections in "), "{stdout}");
    let (_, ids) = mask_thread_ids(&stdout);
    assert_eq!(ids.len(), 1, "one thread runs the server and the client, saw threads {ids:?}");
}

#[test]
fn http_crawl_concurrent_fetches_beat_sequential_ones() {
    let stdout = run_example_with("http_crawl", &[]);
    let starts = stdout.lines().filter(|l| l.starts_with("start http://127.0.0.1:")).count();
    assert_eq!(starts, 10, "three urls in each of parts (a), (b), (c), one in (d):\n{stdout}");
    for n in 1..=3 {
        let ok = format!("200 \"page {n}\"");
        let fetched = stdout.lines().filter(|l| l.starts_with("end ") && l.contains(&ok)).count();
        assert_eq!(fetched, 3, "page {n} is fetched in parts (a), (b) and (c):\n{stdout}");
    }
    let on_executor = stdout.lines().filter(|l| l.ends_with("(fetched on thread aioloop-executor)")).count();
    assert_eq!(on_executor, 3, "part (c) fetches on the executor's threads:\n{stdout}");
    assert!(stdout.contains("error: no answer within 250 ms"), "part (d) gets no answer:\n{stdout}");

    let sequential = seconds(line_after(&stdout, "sequential total "));
    let concurrent = seconds(line_after(&stdout, "concurrent total "));
    let executor = seconds(line_after(&stdout, "run_in_executor total "));
    // The pages take 0.1, 0.2 and 0.3 s: 0.6 s one after the other, 0.3 s at the same time.
    assert!(sequential >= 0.6, "sequential total {sequential}s");
    assert!(concurrent >= 0.3 && concurrent < 0.75 * sequential, "concurrent {concurrent}s, sequential {sequential}s");
    assert!(executor >= 0.3 && executor < 0.75 * sequential, "run_in_executor {executor}s, sequential {sequential}s");
}

/// The output of `cargo run --example threadsafe`.
const THREADSAFE: &[&str] = &[
    "main: the loop runs on thread main",
    "feeder: started on thread feeder",
    "--- 1. call_soon_threadsafe, the result sent back over a channel ---",
    "loop: the callback runs on thread main",
    "feeder: got 5050 back on thread feeder",
    "--- 2. spawn a Send future, block_on its RemoteTask ---",
    "loop: square(7) runs on thread main, sleeps 20 ms",
    "feeder: square(7) = Ok(49) on thread feeder",
    "--- 3. spawn_with: a future that is not Send, made on the loop's thread ---",
    "loop: the closure makes the future on thread main",
    "loop: task 1 adds 1 on thread main",
    "loop: task 2 adds 2 on thread main",
    "loop: task 3 adds 3 on thread main",
    "feeder: the three tasks added up to Ok(6) on thread feeder",
    "--- 4. cancel a RemoteTask from the thread ---",
    "loop: a 60 s sleep starts on thread main",
    "feeder: cancelling it on thread feeder",
    "loop: the 60 s sleep was dropped (cancelled) on thread main",
    "feeder: cancel() returned true; the task ended Cancelled",
    "feeder: done on thread feeder; stopping the loop",
    "main: the loop stopped; joining the feeder",
    "main: done",
];

#[test]
fn threadsafe_runs_the_threads_work_on_the_loops_thread() {
    let stdout = run_example_with("threadsafe", &[]);
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_lines("threadsafe", &lines, THREADSAFE);
}

/// The output of `cargo run --example producer_consumer`: seed 004's generator-based
/// producer/consumer ("基于生成器的协程"), whose output the seed lists; its Python program
/// (`PRODUCER_CONSUMER_PY`) prints these lines on CPython 3.11.7.
const PRODUCER_CONSUMER: &[&str] = &[
    "[PRODUCER] Producing 1...",
    "[CONSUMER] Consuming 1...",
    "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 2...",
    "[CONSUMER] Consuming 2...",
    "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 3...",
    "[CONSUMER] Consuming 3...",
    "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 4...",
    "[CONSUMER] Consuming 4...",
    "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 5...",
    "[CONSUMER] Consuming 5...",
    "[PRODUCER] Consumer return: 200 OK",
];

/// Seed 004's generator program, verbatim.
const PRODUCER_CONSUMER_PY: &str = r#"
def consumer():
    r = ''
    while True:
        n = yield r
        if not n:
            return
        print('[CONSUMER] Consuming %s...' % n)
        r = '200 OK'

def produce(c):
    c.send(None)
    n = 0
    while n < 5:
        n = n + 1
        print('[PRODUCER] Producing %s...' % n)
        r = c.send(n)
        print('[PRODUCER] Consumer return: %s' % r)
    c.close()

c = consumer()
produce(c)
"#;

#[test]
fn producer_consumer_prints_the_seed_output() {
    let stdout = run_example_with("producer_consumer", &[]);
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_lines("producer_consumer", &lines, PRODUCER_CONSUMER);
}

#[test]
#[ignore = "needs python3: compares the example with the seed's generator program"]
fn producer_consumer_matches_the_seed_program() {
    let python = run_python(PRODUCER_CONSUMER_PY);
    assert_eq!(python, PRODUCER_CONSUMER, "CPython prints something else");
}

// ----- `blocking` and `semaphore_crawl` -----
//
// - `blocking` runs on real time (a blocking call cannot be skipped by virtual time), so its test
//   asserts the shape of the output: in part 1, where the blocker calls `std::thread::sleep`, the
//   ticker misses ticks and debug mode's one report names the blocker and the line that spawned
//   it; in parts 2 and 3 (`aioloop::sleep`, `run_in_executor`) the ticker ticks all 8 times and
//   nothing is reported.
// - `semaphore_crawl` runs on virtual time by default: 100,000 requests, 1,000 in flight at the
//   peak, and a total between the ideal (sum of request times / 1,000) and the ideal plus the
//   longest request (Graham's bound for a sender that starts a request as soon as a permit frees).

/// Splits `stdout` into the parts that start with a `--- ` header line; returns (header, lines).
fn parts(stdout: &str) -> Vec<(&str, Vec<&str>)> {
    let mut parts: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(header) = line.strip_prefix("--- ") {
            parts.push((header, Vec::new()));
        } else if let Some((_, lines)) = parts.last_mut() {
            lines.push(line);
        }
    }
    parts
}

/// Parses `ticker: ticked 4 of 8 times, missed 4, worst lateness 450 ms` into (4, 8, 4, 450).
fn ticker_summary(lines: &[&str]) -> (u32, u32, u32, u64) {
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("ticker: ticked "))
        .unwrap_or_else(|| panic!("no ticker summary in:\n{}", lines.join("\n")));
    let numbers: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect();
    let [ticks, of, missed, worst] = numbers[..] else { panic!("unexpected ticker summary {line:?}") };
    (ticks as u32, of as u32, missed as u32, worst)
}

#[test]
fn blocking_stalls_the_ticker_and_debug_mode_names_the_blocker() {
    let stdout = run_example_with("blocking", &[]);
    let parts = parts(&stdout);
    assert_eq!(parts.len(), 3, "three parts:\n{stdout}");
    assert!(parts[0].0.contains("std::thread::sleep"), "{}", parts[0].0);
    assert!(parts[1].0.contains("aioloop::sleep"), "{}", parts[1].0);
    assert!(parts[2].0.contains("run_in_executor"), "{}", parts[2].0);

    // Part 1: the only slow step debug mode reports is the blocker's, with where it was spawned.
    let source = include_str!("../examples/blocking.rs");
    let spawn_line =
        source.lines().position(|l| l.contains("aioloop::spawn(blocker(")).expect("the example spawns the blocker") + 1;
    let reports: Vec<&str> = stdout.lines().filter(|l| l.starts_with("aioloop: ")).collect();
    assert_eq!(reports.len(), 1, "one debug report in all:\n{stdout}");
    let report = reports[0];
    let spawned_at = format!(" spawned at examples/blocking.rs:{spawn_line}:");
    assert!(report.starts_with("aioloop: Executing <Task name=blocker id="), "{report}");
    assert!(report.contains(&spawned_at), "{report} does not contain {spawned_at:?}");
    let took: f64 = report
        .strip_suffix(" seconds")
        .and_then(|r| r.rsplit(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("`... took 0.501 seconds`: {report}"));
    assert!(took >= 0.5, "the blocker held the loop for its 500 ms sleep: {report}");
    let lines = &parts[0].1;
    let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?}"));
    assert!(at("blocker: std::thread::sleep") < at("aioloop: Executing"), "{stdout}");
    assert!(at("aioloop: Executing") < at("ticker: ticked"), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ticker: tick ") && l.contains("missed ticks")), "{stdout}");
    let (ticks, of, missed, worst) = ticker_summary(lines);
    assert_eq!(of, 8, "{stdout}");
    assert!(missed >= 3 && ticks + missed == of, "the stall costs the ticker several ticks:\n{stdout}");
    assert!(worst >= 300, "a tick comes hundreds of ms late:\n{stdout}");

    // Parts 2 and 3: the ticker keeps its rhythm and nothing is reported.
    for (header, lines) in &parts[1..] {
        assert_eq!(ticker_summary(lines).0, 8, "{header}: all 8 ticks:\n{stdout}");
        assert_eq!(ticker_summary(lines).2, 0, "{header}: no tick missed:\n{stdout}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("ticker: tick ")).count(), 8, "{header}:\n{stdout}");
        assert!(lines.iter().all(|l| !l.contains("missed tick")), "{header}:\n{stdout}");
    }
    assert!(
        parts[2].1.iter().any(|l| l.ends_with("(it slept on thread aioloop-executor)")),
        "part 3 sleeps on an executor thread:\n{stdout}"
    );
}

#[test]
fn semaphore_crawl_keeps_1000_of_100000_requests_in_flight() {
    let stdout = run_example_with("semaphore_crawl", &[]);
    assert_eq!(line_after(&stdout, "requests done: "), "100000", "{stdout}");
    assert_eq!(line_after(&stdout, "peak in flight: "), "1000", "{stdout}");

    // A progress line per 10,000 requests, in order, at loop times that never go back.
    let progress: Vec<(u64, f64)> = stdout
        .lines()
        .filter_map(|l| l.trim_start().split_once(" done at "))
        .map(|(n, t)| (n.parse().expect("a count"), seconds(t)))
        .collect();
    let counts: Vec<u64> = progress.iter().map(|&(n, _)| n).collect();
    assert_eq!(counts, (1..=10).map(|k| k * 10_000).collect::<Vec<_>>(), "{stdout}");
    assert!(progress.windows(2).all(|w| w[0].1 <= w[1].1), "{stdout}");

    // "total virtual time: 5.571s (ideal: sum of request times / 1000 = 5.505s)"
    let total_line = line_after(&stdout, "total virtual time: ");
    let total = seconds(total_line);
    let ideal = seconds(total_line.rsplit("= ").next().expect("the ideal"));
    assert!((1.0..=10.0).contains(&ideal), "100,000 requests of 10 to 100 ms, 1,000 at a time: {total_line}");
    assert!(total >= ideal && total <= ideal + 0.1 + 0.001, "{total_line}");
    assert!(seconds(line_after(&stdout, "real time: ")) > 0.0, "{stdout}");
}
