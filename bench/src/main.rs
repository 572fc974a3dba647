//! Side-by-side workloads: aioloop, tokio's current-thread runtime (with a `LocalSet`), smol's
//! `LocalExecutor` (with async-io's timers) and futures' `LocalPool`, plus a hand-written floor.
//!
//! Run with: `cd bench && cargo run --release` (every workload, 3 interleaved repetitions, each in
//! a fresh process pinned to one CPU; medians and ratios to the best peer). `cargo run --release
//! -- WORKLOAD RUNTIME` runs one measurement in this process and prints `value peak_rss_kib`;
//! `--markdown` prints the table as Markdown (for docs/benchmarks.md).
//!
//! Fairness: every runtime runs the same generic workload code (the [`Rt`] trait), spawns the
//! workload's future type itself (no pre-boxing by the harness), and uses its own primitives
//! where the workload names them (its `yield_now`, its timers, its channel). The floor is what
//! any executor must do at least: box a future, poll it, free it.

mod workloads;

use std::process::Command;

use workloads::{measure, RUNTIMES, WORKLOADS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => drive(false, None),
        [flag] if flag == "--markdown" => drive(true, None),
        [flag, only] if flag == "--only" => drive(false, Some(only.as_str())),
        [w, r] => {
            let value = measure(w, r);
            println!("{value:.1} {}", workloads::peak_rss_kib());
        }
        _ => {
            eprintln!("usage: aioloop-bench [--markdown | --only WORKLOAD | WORKLOAD RUNTIME]");
            std::process::exit(2);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs one measurement in a fresh process pinned to CPU 1 (`taskset`, when it is installed).
fn run_one(workload: &str, runtime: &str) -> (f64, u64) {
    let exe = std::env::current_exe().unwrap();
    let pinned = Command::new("taskset").arg("-c").arg("1").arg(&exe).args([workload, runtime]).output();
    let out = match pinned {
        Ok(o) if o.status.success() => o,
        _ => Command::new(&exe).args([workload, runtime]).output().expect("run a measurement"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let value = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let rss = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (value, rss)
}

/// Runs every (workload, runtime) three times, interleaved, each in a fresh process.
fn drive(markdown: bool, only: Option<&str>) {
    const REPS: usize = 3;
    if markdown {
        println!("| workload | unit | aioloop | tokio | smol | LocalPool | floor | aioloop ÷ best peer |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("aioloop benchmarks: medians of {REPS} runs, each in a fresh process pinned to CPU 1.");
    }
    for w in WORKLOADS.iter().filter(|w| only.is_none_or(|o| o == w.name)) {
        let mut vals: Vec<Vec<f64>> = vec![vec![]; RUNTIMES.len()];
        let mut rss: Vec<Vec<u64>> = vec![vec![]; RUNTIMES.len()];
        for _ in 0..REPS {
            for (i, r) in RUNTIMES.iter().enumerate() {
                let (v, kib) = run_one(w.name, r);
                vals[i].push(v);
                rss[i].push(kib);
            }
        }
        let meds: Vec<(f64, u64)> = vals
            .iter_mut()
            .zip(rss.iter_mut())
            .map(|(v, r)| {
                r.sort();
                (median(v), r[r.len() / 2])
            })
            .collect();
        let best_peer = RUNTIMES
            .iter()
            .zip(&meds)
            .filter(|(r, (v, _))| !matches!(**r, "aioloop" | "floor") && v.is_finite())
            .map(|(_, (v, _))| *v)
            .fold(f64::INFINITY, f64::min);
        let ours = meds[0].0;
        if markdown {
            let cells: Vec<String> =
                meds.iter().map(|(v, _)| if v.is_finite() { format!("{v:.1}") } else { "—".into() }).collect();
            // No peer ran it (spawn_eager): no ratio.
            let ratio = if best_peer.is_finite() { format!("{:.2}", ours / best_peer) } else { "—".into() };
            println!("| {} | {} | {} | {ratio} |", w.name, w.unit, cells.join(" | "));
            if w.show_rss {
                let cells: Vec<String> = meds
                    .iter()
                    .map(|(v, kib)| if v.is_finite() { format!("{:.0}", *kib as f64 / 1024.0) } else { "—".into() })
                    .collect();
                let best_rss = RUNTIMES
                    .iter()
                    .zip(&meds)
                    .filter(|(r, (v, _))| !matches!(**r, "aioloop" | "floor") && v.is_finite())
                    .map(|(_, (_, kib))| *kib as f64)
                    .fold(f64::INFINITY, f64::min);
                println!(
                    "| {} (peak RSS) | MiB | {} | {:.2} |",
                    w.name,
                    cells.join(" | "),
                    meds[0].1 as f64 / best_rss
                );
            }
        } else {
            println!("\n{}: {} ({})", w.name, w.what, w.unit);
            for (r, (v, kib)) in RUNTIMES.iter().zip(&meds) {
                if v.is_finite() && best_peer.is_finite() {
                    println!("  {r:<10} {v:>12.1}   x{:<6.2} peak RSS {:>5} MiB", v / best_peer, kib / 1024);
                } else if v.is_finite() {
                    println!("  {r:<10} {v:>12.1}            peak RSS {:>5} MiB", kib / 1024);
                } else {
                    println!("  {r:<10} {:>12}", "n/a");
                }
            }
        }
    }
}
