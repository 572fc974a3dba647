//! Side-by-side workloads: aioloop, tokio's current-thread runtime (with a `LocalSet`), smol's
//! `LocalExecutor` (with async-io's timers) and futures' `LocalPool`, plus a hand-written floor.
//!
//! Run with: `cd bench && cargo run --release` (all workloads, 3 interleaved repetitions, medians
//! and ratios). `cargo run --release -- WORKLOAD RUNTIME` runs one measurement in this process
//! and prints `value peak_rss_kib`; the driver runs each of those in a fresh process.
//!
//! This is the first part of the benchmarks issue: the socket workloads (TCP echo, HTTP under
//! wrk) are not here yet.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::process::Command;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const WORKLOADS: &[(&str, &str)] = &[
    ("spawn", "ns per spawned trivial task, 1,000,000 detached"),
    ("yield", "ns per yield, 1,000 tasks x 1,000 yields"),
    ("timer", "ns per timer create + register + cancel, 1,000,000"),
    ("pingpong", "ns per round trip through the runtime's channel, 200,000"),
    ("idle", "bytes per parked task beyond the future, 1,000,000"),
];
const RUNTIMES: &[&str] = &["aioloop", "tokio", "smol", "localpool", "floor"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [w, r] => {
            let (value, rss) = measure(w, r);
            println!("{value:.1} {rss}");
        }
        _ => drive(),
    }
}

/// Peak resident set of this process, in KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs the workload on the runtime; returns its figure (None: not applicable) and peak RSS.
fn measure(workload: &str, runtime: &str) -> (f64, u64) {
    let value = match workload {
        "spawn" => spawn(runtime),
        "yield" => yields(runtime),
        "timer" => timers(runtime),
        "pingpong" => pingpong(runtime),
        "idle" => idle(runtime),
        _ => f64::NAN,
    };
    (value, peak_rss_kib())
}

/// Runs `fut` to completion on the runtime (on the current thread).
fn block_on<F: Future + 'static>(runtime: &str, fut: F) -> F::Output {
    match runtime {
        "aioloop" => aioloop::EventLoop::new().unwrap().run_until_complete(fut),
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, fut)
        }
        "smol" => {
            let ex = Rc::new(async_executor::LocalExecutor::new());
            let ex2 = ex.clone();
            async_io::block_on(ex.run(async move {
                let _keep = ex2;
                fut.await
            }))
        }
        "localpool" => futures::executor::LocalPool::new().run_until(fut),
        _ => unreachable!(),
    }
}

/// Spawns a detached `'static` future on the current runtime.
fn spawn_on(
    runtime: &str,
    ex: &Option<Rc<async_executor::LocalExecutor<'static>>>,
    sp: &Option<futures::executor::LocalSpawner>,
    fut: impl Future<Output = ()> + 'static,
) {
    match runtime {
        "aioloop" => drop(aioloop::spawn(fut)),
        "tokio" => drop(tokio::task::spawn_local(fut)),
        "smol" => ex.as_ref().unwrap().spawn(fut).detach(),
        "localpool" => futures::task::LocalSpawnExt::spawn_local(sp.as_ref().unwrap(), fut).unwrap(),
        _ => unreachable!(),
    }
}

/// A harness for spawning workloads: the runtime's executor and a way to spawn on it.
type Spawner = Rc<dyn Fn(Pin<Box<dyn Future<Output = ()>>>)>;

fn with_spawner(runtime: &str, body: impl FnOnce(Spawner) -> Pin<Box<dyn Future<Output = ()>>> + 'static) {
    match runtime {
        "smol" => {
            let ex = Rc::new(async_executor::LocalExecutor::new());
            let e = Some(ex.clone());
            let fut = body(Rc::new(move |f| spawn_on("smol", &e, &None, f)));
            async_io::block_on(ex.run(fut));
        }
        "localpool" => {
            let mut pool = futures::executor::LocalPool::new();
            let sp = Some(pool.spawner());
            let fut = body(Rc::new(move |f| spawn_on("localpool", &None, &sp, f)));
            pool.run_until(fut);
        }
        rt => {
            // aioloop and tokio spawn on the runtime entered by `block_on`: build the workload
            // inside it.
            let rt2 = rt.to_string();
            block_on(rt, async move { body(Rc::new(move |f| spawn_on(&rt2, &None, &None, f))).await });
        }
    }
}

fn spawn(runtime: &str) -> f64 {
    const N: u32 = 1_000_000;
    if runtime == "floor" {
        // What any executor must do: box every future (all spawned before any runs, as in the
        // workload), poll each once with a no-op waker, free them.
        let t = Instant::now();
        let mut cx = Context::from_waker(Waker::noop());
        let mut all: Vec<Pin<Box<dyn Future<Output = ()>>>> = (0..N).map(|_| Box::pin(async {}) as _).collect();
        for f in &mut all {
            let _ = black_box(f.as_mut().poll(&mut cx));
        }
        drop(all);
        return t.elapsed().as_nanos() as f64 / f64::from(N);
    }
    let elapsed = Rc::new(Cell::new(Duration::ZERO));
    let e = elapsed.clone();
    with_spawner(runtime, move |spawn| {
        let t = Instant::now();
        for _ in 0..N {
            spawn(Box::pin(async {}));
        }
        Box::pin(async move {
            // Let every task run: yield until the last one finished (they run in spawn order).
            let done = Rc::new(Cell::new(false));
            let d = done.clone();
            spawn(Box::pin(async move { d.set(true) }));
            while !done.get() {
                futures_lite::future::yield_now().await;
            }
            e.set(t.elapsed());
        })
    });
    elapsed.get().as_nanos() as f64 / f64::from(N)
}

fn yields(runtime: &str) -> f64 {
    if runtime == "floor" {
        return f64::NAN;
    }
    const TASKS: u32 = 1_000;
    const YIELDS: u32 = 1_000;
    let elapsed = Rc::new(Cell::new(Duration::ZERO));
    let e = elapsed.clone();
    with_spawner(runtime, move |spawn| {
        let left = Rc::new(Cell::new(TASKS));
        let t = Instant::now();
        for _ in 0..TASKS {
            let left = left.clone();
            spawn(Box::pin(async move {
                for _ in 0..YIELDS {
                    futures_lite::future::yield_now().await;
                }
                left.set(left.get() - 1);
            }));
        }
        Box::pin(async move {
            while left.get() > 0 {
                futures_lite::future::yield_now().await;
            }
            e.set(t.elapsed());
        })
    });
    elapsed.get().as_nanos() as f64 / f64::from(TASKS * YIELDS)
}

/// Polls a future once (registering it), then drops it (cancelling it).
fn poll_once_and_drop<F: Future>(f: F, cx: &mut Context<'_>) {
    let mut f = std::pin::pin!(f);
    let _ = black_box(f.as_mut().poll(cx));
}

fn timers(runtime: &str) -> f64 {
    const N: u32 = 1_000_000;
    if matches!(runtime, "localpool" | "floor") {
        return f64::NAN; // no timers
    }
    let rt = runtime.to_string();
    block_on(runtime, async move {
        std::future::poll_fn(move |cx| {
            let t = Instant::now();
            for i in 0..N {
                let d = Duration::from_secs(10 + u64::from(i % 100));
                match rt.as_str() {
                    "aioloop" => poll_once_and_drop(aioloop::sleep(d), cx),
                    "tokio" => poll_once_and_drop(tokio::time::sleep(d), cx),
                    _ => poll_once_and_drop(async_io::Timer::after(d), cx),
                }
            }
            Poll::Ready(t.elapsed().as_nanos() as f64 / f64::from(N))
        })
        .await
    })
}

fn pingpong(runtime: &str) -> f64 {
    const N: u32 = 200_000;
    if runtime == "floor" {
        return f64::NAN;
    }
    let elapsed = Rc::new(Cell::new(Duration::ZERO));
    let e = elapsed.clone();
    let rt = runtime.to_string();
    with_spawner(runtime, move |spawn| match rt.as_str() {
        "aioloop" => {
            let (ping, pong) = (aioloop::sync::Queue::new(0), aioloop::sync::Queue::new(0));
            let (p2, q2) = (ping.clone(), pong.clone());
            spawn(Box::pin(async move {
                for _ in 0..N {
                    let v: u32 = p2.get().await;
                    q2.put(v).await;
                }
            }));
            Box::pin(async move {
                let t = Instant::now();
                for i in 0..N {
                    ping.put(i).await;
                    black_box(pong.get().await);
                }
                e.set(t.elapsed());
            })
        }
        "tokio" => {
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            spawn(Box::pin(async move {
                while let Some(v) = ping_rx.recv().await {
                    pong_tx.send(v).unwrap();
                }
            }));
            Box::pin(async move {
                let t = Instant::now();
                for i in 0..N {
                    ping_tx.send(i).unwrap();
                    black_box(pong_rx.recv().await);
                }
                e.set(t.elapsed());
            })
        }
        _ => {
            use futures::{SinkExt, StreamExt};
            let (mut ping_tx, mut ping_rx) = futures::channel::mpsc::unbounded::<u32>();
            let (mut pong_tx, mut pong_rx) = futures::channel::mpsc::unbounded::<u32>();
            spawn(Box::pin(async move {
                while let Some(v) = ping_rx.next().await {
                    pong_tx.send(v).await.unwrap();
                }
            }));
            Box::pin(async move {
                let t = Instant::now();
                for i in 0..N {
                    ping_tx.send(i).await.unwrap();
                    black_box(pong_rx.next().await);
                }
                e.set(t.elapsed());
            })
        }
    });
    elapsed.get().as_nanos() as f64 / f64::from(N)
}

fn idle(runtime: &str) -> f64 {
    const N: usize = 1_000_000;
    if runtime == "floor" {
        // A boxed future and nothing else.
        let before = rss_kib();
        let v: Vec<Pin<Box<dyn Future<Output = ()>>>> = (0..N).map(|_| Box::pin(std::future::pending()) as _).collect();
        let bytes = (rss_kib() - before) as f64 * 1024.0 / N as f64;
        black_box(v);
        return bytes - std::mem::size_of::<std::future::Pending<()>>() as f64;
    }
    let per_task = Rc::new(Cell::new(0.0));
    let p = per_task.clone();
    with_spawner(runtime, move |spawn| {
        let before = rss_kib();
        for _ in 0..N {
            spawn(Box::pin(std::future::pending::<()>()));
        }
        Box::pin(async move {
            // Let every task be polled once and park.
            for _ in 0..3 {
                futures_lite::future::yield_now().await;
            }
            p.set((rss_kib() - before) as f64 * 1024.0 / N as f64);
            std::process::exit({
                println!("{:.1} {}", p.get(), peak_rss_kib());
                0
            });
        })
    });
    per_task.get()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs every (workload, runtime) three times, interleaved, each in a fresh process.
fn drive() {
    let exe = std::env::current_exe().unwrap();
    println!("aioloop benchmarks: medians of 3 runs, each in a fresh process (the machine is noisy).");
    for (w, what) in WORKLOADS {
        let mut results: Vec<(String, Vec<f64>, Vec<u64>)> =
            RUNTIMES.iter().map(|r| (r.to_string(), vec![], vec![])).collect();
        for _ in 0..3 {
            for (r, vals, rss) in results.iter_mut() {
                let out = Command::new(&exe).args([w, r.as_str()]).output().expect("run a measurement");
                let text = String::from_utf8_lossy(&out.stdout);
                let mut it = text.split_whitespace();
                vals.push(it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN));
                rss.push(it.next().and_then(|s| s.parse().ok()).unwrap_or(0));
            }
        }
        println!("\n{w}: {what}");
        let meds: Vec<(String, f64, u64)> = results
            .into_iter()
            .map(|(r, mut v, mut rss)| {
                rss.sort();
                (r, median(&mut v), rss[1])
            })
            .collect();
        let best_peer = meds
            .iter()
            .filter(|(r, v, _)| r != "aioloop" && r != "floor" && v.is_finite())
            .map(|(_, v, _)| *v)
            .fold(f64::INFINITY, f64::min);
        for (r, v, rss) in &meds {
            if v.is_finite() {
                println!("  {r:<10} {v:>10.1}   x{:<6.2} (peak RSS {} MiB)", v / best_peer, rss / 1024);
            } else {
                println!("  {r:<10} {:>10}", "n/a");
            }
        }
    }
}
