//! Ports the table "多线程和asyncio协程对比" (threads against asyncio coroutines) of seed
//! `004_5b2975e6746989ca.txt`, with each row measured on this machine: OS threads
//! (`std::thread`) against tasks on one aioloop loop.
//!
//! | seed row | what is measured here |
//! |---|---|
//! | 线程数 thread count | `Threads:` in `/proc/self/status` while every unit sleeps |
//! | 调度 scheduling | (a fact, not a figure) the kernel preempts threads; a task gives the thread back only at an `.await` |
//! | race condition | 4 units increment a shared counter with no lock (threads for 100 ms each, tasks 1,000,000 times each): updates lost |
//! | 切换开销 switch cost | ping-pong: threads over two `std::sync::mpsc` channels, tasks over two `aioloop::sync::Queue`s; and `yield_now` between two tasks |
//! | 可开启任务数量 how many can run | memory per sleeping unit: growth of `VmRSS` (and, for threads, of `VmSize`, the reserved address space) divided by the count; for tasks also per task waiting on an `Event` |
//! | 执行效率 efficiency | wall time for N units that each sleep 500 ms, spawning included; and the cost to spawn and finish one trivial unit |
//!
//! The seed's last row (third-party library support) is not something a program can measure.
//!
//! Each thread uses the stack size a C program's threads get, the soft `ulimit -s` (8 MiB on
//! most Linux systems; Rust's own default is 2 MiB), so the reserved address space is the
//! "线程：8MB" of seed `003_8e6d43815345f58a.txt`, which this example prints for context next to
//! the goroutine's 2 KiB starting stack.
//!
//! Every measurement runs in a fresh child process (this program, started again with `--child`),
//! so the memory one leaves behind does not hide the growth of the next; `--runs R` repeats each
//! one R times and prints the medians. Timings depend on the build: use `--release` for figures
//! worth quoting.
//!
//! Options: `--threads T` (default 1,000), `--tasks N` (default 100,000), `--n N` (both),
//! `--sleep-ms S` (default 500), `--runs R` (default 1).
//!
//! Run with: `cargo run --release --example threads_vs_tasks` (about 3 s), or
//! `cargo run --release --example threads_vs_tasks -- --runs 3` for medians of three runs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Command, ExitCode};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use aioloop::sync::{Event, Queue};
use aioloop::EventLoop;

/// Units that race on the shared counter.
const RACERS: u64 = 4;
/// How long each racing thread increments the shared counter.
const RACE_FOR: Duration = Duration::from_millis(100);
/// Increments each racing task makes.
const INCREMENTS: u64 = 1_000_000;
/// Round trips of the thread ping-pong (each is two hand-offs).
const THREAD_ROUND_TRIPS: u64 = 20_000;
/// Round trips of the task ping-pong, and steps of each task in the `yield_now` workload.
const TASK_ROUND_TRIPS: u64 = 200_000;

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    threads: u64,
    tasks: u64,
    sleep: Duration,
    runs: usize,
}

/// One measurement's figures, as `key=value` pairs printed by a child process.
type Figures = BTreeMap<String, f64>;

// ===== Reading the process's own figures =====

/// Returns a field of `/proc/self/status` in its unit (kB for memory, a count for `Threads`).
fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status (Linux only)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
}

/// Returns the soft stack limit (`ulimit -s`) in bytes, the stack size of a pthread by default;
/// 8 MiB if it is unlimited or unreadable.
fn default_thread_stack() -> usize {
    const FALLBACK: usize = 8 << 20;
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return FALLBACK;
    };
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max stack size"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(FALLBACK)
}

/// Returns the size of a future's state machine.
fn future_size<F: Future>(_: &F) -> usize {
    std::mem::size_of::<F>()
}

// ===== The measurements (each runs in its own child process) =====

/// N threads each sleep `sleep`: memory while they all sleep, and the wall time.
fn threads_sleep(n: u64, sleep: Duration) -> Figures {
    let (rss0, vm0) = (status_field("VmRSS"), status_field("VmSize"));
    let started = Arc::new((Mutex::new(0u64), Condvar::new()));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..n {
        let started = started.clone();
        let spawned = std::thread::Builder::new().stack_size(default_thread_stack()).spawn(move || {
            *started.0.lock().expect("no thread panics holding it") += 1;
            started.1.notify_one();
            std::thread::sleep(sleep);
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("threads_vs_tasks: thread {} of {n} could not start: {e}", handles.len() + 1);
                break;
            }
        }
    }
    let count = handles.len() as u64;
    let mut guard = started.0.lock().expect("no thread panics holding it");
    while *guard < count {
        guard = started.1.wait(guard).expect("no thread panics holding it");
    }
    drop(guard);
    // Every thread has started and sleeps: this is the peak.
    let (rss, vm, threads) = (status_field("VmRSS"), status_field("VmSize"), status_field("Threads"));
    for h in handles {
        h.join().expect("a sleeping thread does not panic");
    }
    let wall = t0.elapsed();
    figures(&[
        ("count", count as f64),
        ("rss_per_unit", (rss.saturating_sub(rss0) * 1024) as f64 / count as f64),
        ("vm_per_unit", (vm.saturating_sub(vm0) * 1024) as f64 / count as f64),
        ("threads", threads as f64),
        ("wall_s", wall.as_secs_f64()),
    ])
}

/// N tasks each sleep `sleep` on one loop: memory while they all sleep, and the wall time.
fn tasks_sleep(n: u64, sleep: Duration) -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let rss0 = status_field("VmRSS");
    let t0 = Instant::now();
    let peak = lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..n).map(|_| aioloop::spawn(aioloop::sleep(sleep))).collect();
        // The tasks run their first step in the next iteration, and park in their sleep; this
        // task runs after them.
        aioloop::yield_now().await;
        let peak = (status_field("VmRSS"), status_field("Threads"));
        for t in tasks {
            t.await.expect("a sleep neither fails nor is cancelled");
        }
        peak
    });
    let wall = t0.elapsed();
    let (rss, threads) = peak;
    let size = future_size(&aioloop::sleep(sleep));
    figures(&[
        ("count", n as f64),
        ("rss_per_unit", (rss.saturating_sub(rss0) * 1024) as f64 / n as f64),
        ("threads", threads as f64),
        ("wall_s", wall.as_secs_f64()),
        ("future_bytes", size as f64),
    ])
}

/// N tasks each wait for one `Event`: memory per parked task (no timer involved).
fn tasks_park(n: u64) -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let rss0 = status_field("VmRSS");
    let rss = lp.run_until_complete(async move {
        let event = Event::new();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let event = event.clone();
                aioloop::spawn(async move { event.wait().await })
            })
            .collect();
        aioloop::yield_now().await; // every task parks in `wait`
        let rss = status_field("VmRSS");
        event.set();
        for t in tasks {
            t.await.expect("a waiter neither fails nor is cancelled");
        }
        rss
    });
    figures(&[("rss_per_unit", (rss.saturating_sub(rss0) * 1024) as f64 / n as f64)])
}

/// Spawns N threads that do nothing and joins them: the cost of one.
fn threads_spawn(n: u64) -> Figures {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| std::thread::Builder::new().stack_size(default_thread_stack()).spawn(|| {}))
        .collect::<Result<_, _>>()
        .expect("spawn a thread");
    for h in handles {
        h.join().expect("an empty thread does not panic");
    }
    figures(&[("ns_per_unit", t0.elapsed().as_nanos() as f64 / n as f64)])
}

/// Spawns N tasks that do nothing and awaits each: the cost of one.
fn tasks_spawn(n: u64) -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let t0 = Instant::now();
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..n).map(|_| aioloop::spawn(async {})).collect();
        for t in tasks {
            t.await.expect("an empty task does not fail");
        }
    });
    figures(&[("ns_per_unit", t0.elapsed().as_nanos() as f64 / n as f64)])
}

/// Two threads pass a number back and forth over two channels: the cost of one hand-off.
fn threads_pingpong(round_trips: u64) -> Figures {
    let (to_pong, from_ping) = mpsc::channel::<u64>();
    let (to_ping, from_pong) = mpsc::channel::<u64>();
    let pong = std::thread::spawn(move || {
        while let Ok(v) = from_ping.recv() {
            if to_ping.send(v + 1).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut v = 0;
    for _ in 0..round_trips {
        to_pong.send(v).expect("pong is alive");
        v = from_pong.recv().expect("pong answers");
    }
    let elapsed = t0.elapsed();
    drop(to_pong);
    pong.join().expect("pong does not panic");
    assert_eq!(v, round_trips);
    figures(&[("ns_per_unit", elapsed.as_nanos() as f64 / (2 * round_trips) as f64)])
}

/// Two tasks pass a number back and forth over two queues: the cost of one hand-off.
fn tasks_pingpong(round_trips: u64) -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let elapsed = lp.run_until_complete(async move {
        // `pings` carries numbers to the pong task, `pongs` carries them back.
        let (pings, pongs) = (Queue::<u64>::new(1), Queue::<u64>::new(1));
        let pong = {
            let (pings, pongs) = (pings.clone(), pongs.clone());
            aioloop::spawn(async move {
                for _ in 0..round_trips {
                    let v = pings.get().await;
                    pongs.put(v + 1).await;
                }
            })
        };
        let t0 = Instant::now();
        let mut v = 0;
        for _ in 0..round_trips {
            pings.put(v).await;
            v = pongs.get().await;
        }
        let elapsed = t0.elapsed();
        pong.await.expect("pong does not fail");
        assert_eq!(v, round_trips);
        elapsed
    });
    figures(&[("ns_per_unit", elapsed.as_nanos() as f64 / (2 * round_trips) as f64)])
}

/// Two tasks call `yield_now` in turn: the cost of one switch from a task to the next.
fn tasks_yield(steps: u64) -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let t0 = Instant::now();
    lp.run_until_complete(async move {
        let other = aioloop::spawn(async move {
            for _ in 0..steps {
                aioloop::yield_now().await;
            }
        });
        for _ in 0..steps {
            aioloop::yield_now().await;
        }
        other.await.expect("the other task does not fail");
    });
    figures(&[("ns_per_unit", t0.elapsed().as_nanos() as f64 / (2 * steps) as f64)])
}

/// `RACERS` threads increment one counter for `RACE_FOR` each, with a read and a separate write
/// and no lock, as Python's `counter += 1` does: the updates lost when a thread is preempted, or
/// runs on another core, between another thread's read and write.
///
/// Safe Rust refuses a plain shared `u64` across threads (a data race is undefined behaviour),
/// so the counter is an atomic used non-atomically: `load`, then `store(v + 1)`. The threads run
/// for a fixed time rather than a fixed count: 20 million increments take a thread about 5 ms,
/// less than a scheduler time slice, so on a busy machine the threads could run one after the
/// other without ever being interrupted.
fn threads_race() -> Figures {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(RACERS as usize));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (counter, start) = (counter.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let t0 = Instant::now();
                let mut done = 0u64;
                while t0.elapsed() < RACE_FOR {
                    for _ in 0..4_096 {
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                    done += 4_096;
                }
                done
            })
        })
        .collect();
    let made: u64 = racers.into_iter().map(|r| r.join().expect("a racer does not panic")).sum();
    figures(&[("made", made as f64), ("lost", (made - counter.load(Ordering::Relaxed)) as f64)])
}

/// `RACERS` tasks increment one counter, read then write, with no lock, giving the thread back
/// every 1,000 increments: no update is lost, because no task runs between another's read and
/// write (there is no `.await` between them).
fn tasks_race() -> Figures {
    let mut lp = EventLoop::new().expect("create the loop");
    let counter = Rc::new(Cell::new(0u64));
    let c = counter.clone();
    lp.run_until_complete(async move {
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let counter = c.clone();
                aioloop::spawn(async move {
                    for i in 0..INCREMENTS {
                        let v = counter.get();
                        counter.set(v + 1);
                        if i % 1_000 == 999 {
                            aioloop::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        aioloop::gather(racers).await.expect("no racer fails");
    });
    figures(&[("made", (RACERS * INCREMENTS) as f64), ("lost", (RACERS * INCREMENTS - counter.get()) as f64)])
}

/// Runs the measurement `name` in this process and prints its figures on one line.
fn run_child(name: &str, args: &Args) {
    let figs = match name {
        "threads-sleep" => threads_sleep(args.threads, args.sleep),
        "tasks-sleep" => tasks_sleep(args.tasks, args.sleep),
        "tasks-park" => tasks_park(args.tasks),
        "threads-spawn" => threads_spawn(args.threads),
        "tasks-spawn" => tasks_spawn(args.tasks),
        "threads-pingpong" => threads_pingpong(THREAD_ROUND_TRIPS),
        "tasks-pingpong" => tasks_pingpong(TASK_ROUND_TRIPS),
        "tasks-yield" => tasks_yield(TASK_ROUND_TRIPS),
        "threads-race" => threads_race(),
        "tasks-race" => tasks_race(),
        other => panic!("unknown measurement {other}"),
    };
    let line: Vec<String> = figs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", line.join(" "));
}

fn figures(pairs: &[(&str, f64)]) -> Figures {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

// ===== The parent: run each measurement in a child, take medians, print the table =====

/// Runs measurement `name` in `args.runs` child processes; returns the median of each figure.
fn measure(name: &str, args: &Args) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut runs: Vec<Figures> = Vec::new();
    for _ in 0..args.runs {
        let out = Command::new(&exe)
            .args(["--child", name])
            .args(["--threads", &args.threads.to_string(), "--tasks", &args.tasks.to_string()])
            .args(["--sleep-ms", &args.sleep.as_millis().to_string()])
            .output()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "measurement {name} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let figs = stdout
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        runs.push(figs);
    }
    let mut medians = Figures::new();
    for key in runs[0].keys() {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r.get(key).copied()).collect();
        values.sort_by(f64::total_cmp);
        medians.insert(key.clone(), values[values.len() / 2]);
    }
    Ok(medians)
}

/// Formats a whole number with thousands separators: `1234567` → `1,234,567`.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a number of bytes: `512 B`, `20.3 KiB`, `8.0 MiB`.
fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 10.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{} B", grouped(b))
    }
}

fn print_table(args: &Args) -> Result<(), String> {
    let get = |figs: &Figures, k: &str| figs.get(k).copied().unwrap_or(f64::NAN);
    let th_sleep = measure("threads-sleep", args)?;
    let ta_sleep = measure("tasks-sleep", args)?;
    let ta_park = measure("tasks-park", args)?;
    let th_spawn = measure("threads-spawn", args)?;
    let ta_spawn = measure("tasks-spawn", args)?;
    let th_pp = measure("threads-pingpong", args)?;
    let ta_pp = measure("tasks-pingpong", args)?;
    let ta_yield = measure("tasks-yield", args)?;
    let th_race = measure("threads-race", args)?;
    let ta_race = measure("tasks-race", args)?;
    let build =
        if cfg!(debug_assertions) { "debug build: use --release for figures to quote" } else { "release build" };
    let sleep_ms = args.sleep.as_millis();
    let th_count = get(&th_sleep, "count");
    let ta_count = get(&ta_sleep, "count");

    println!(
        "threads vs tasks, seed 004's table measured: {} OS threads, {} tasks ({build}, median of {} run{})",
        grouped(th_count),
        grouped(ta_count),
        args.runs,
        if args.runs == 1 { "" } else { "s" }
    );
    println!();
    println!("| | OS threads | tasks on one aioloop loop |");
    println!("|---|---|---|");
    println!(
        "| thread count | {} threads in the process | {} thread in the process |",
        grouped(get(&th_sleep, "threads")),
        grouped(get(&ta_sleep, "threads"))
    );
    println!("| scheduling | by the kernel, preemptive | by the loop, at each `.await` |");
    println!(
        "| race conditions | {} of {} unlocked increments lost | {} of {} unlocked increments lost |",
        grouped(get(&th_race, "lost")),
        grouped(get(&th_race, "made")),
        grouped(get(&ta_race, "lost")),
        grouped(get(&ta_race, "made"))
    );
    println!(
        "| switch cost | {} ns per hand-off (channel ping-pong) | {} ns per hand-off (Queue ping-pong); {} ns per yield_now |",
        grouped(get(&th_pp, "ns_per_unit")),
        grouped(get(&ta_pp, "ns_per_unit")),
        grouped(get(&ta_yield, "ns_per_unit"))
    );
    println!(
        "| how many can run | {} RSS per sleeping thread; address space grows {} per thread ({} of it its stack) | {} RSS per sleeping task; {} per task waiting on an Event |",
        bytes(get(&th_sleep, "rss_per_unit")),
        bytes(get(&th_sleep, "vm_per_unit")),
        bytes(default_thread_stack() as f64),
        bytes(get(&ta_sleep, "rss_per_unit")),
        bytes(get(&ta_park, "rss_per_unit"))
    );
    println!(
        "| spawn + finish | {} ns per thread | {} ns per task |",
        grouped(get(&th_spawn, "ns_per_unit")),
        grouped(get(&ta_spawn, "ns_per_unit"))
    );
    println!(
        "| efficiency | {} × sleep({sleep_ms} ms) in {:.3} s | {} × sleep({sleep_ms} ms) in {:.3} s |",
        grouped(th_count),
        get(&th_sleep, "wall_s"),
        grouped(ta_count),
        get(&ta_sleep, "wall_s")
    );
    println!();
    println!(
        "for context (seed 003): a goroutine starts with a 2 KiB stack, an OS thread reserves 8 MiB; \
         here each thread reserved ulimit -s = {} KiB",
        default_thread_stack() / 1024
    );
    println!(
        "an aioloop task has no stack of its own: a sleeping task's future is a {}-byte state machine",
        get(&ta_sleep, "future_bytes")
    );
    Ok(())
}

/// Parses the command line; returns the arguments and the `--child` measurement, if any.
fn parse_args() -> Result<(Args, Option<String>), String> {
    let mut args = Args { threads: 1_000, tasks: 100_000, sleep: Duration::from_millis(500), runs: 1 };
    let mut child = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |what: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{flag} needs {what}"))?;
            v.replace(['_', ','], "").parse().map_err(|_| format!("{flag}: {v:?} is not {what}"))
        };
        match flag.as_str() {
            "--threads" => args.threads = value("a count")?,
            "--tasks" => args.tasks = value("a count")?,
            "--n" => {
                let n = value("a count")?;
                (args.threads, args.tasks) = (n, n);
            }
            "--sleep-ms" => args.sleep = Duration::from_millis(value("milliseconds")?),
            "--runs" => args.runs = value("a count")? as usize,
            "--child" => child = Some(it.next().ok_or("--child needs a measurement")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; options: --threads T, --tasks N, --n N, --sleep-ms S, --runs R"
                ))
            }
        }
    }
    if args.threads == 0 || args.tasks == 0 || args.runs == 0 {
        return Err("--threads, --tasks and --runs must be at least 1".into());
    }
    Ok((args, child))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|(args, child)| match child {
        Some(name) => {
            run_child(&name, &args);
            Ok(())
        }
        None => print_table(&args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("threads_vs_tasks: {e}");
            ExitCode::FAILURE
        }
    }
}
