//! The examples added for the book (docs/src/): each run as a user would run it, its output
//! checked.
//!
//! - `go_phase` (seed 000's Go programs) and `user_info` (seed 001's programs) run with `--fast`
//!   (virtual time) and print fixed lines, compared in full; only part 3 of `go_phase`, whose
//!   three threads print concurrently, is compared per thread.
//! - `threads_vs_tasks` (seed 004's table) prints measurements, so its test checks the shape of
//!   the table and the figures that do not vary: one thread for the tasks, one more thread than
//!   sleeping threads for the threads, no update lost by tasks. It runs small (50 threads, 5,000
//!   tasks, 100 ms sleeps) to stay fast.
//!
//! Each test runs `cargo run --quiet --example NAME -- ARGS` (Cargo gives tests no path to an
//! example's binary).

use std::collections::BTreeSet;
use std::process::Command;

/// Runs an example with `args` and returns its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
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

/// Asserts that `actual` is `expected`, naming the first line that differs.
fn assert_lines(name: &str, actual: &[&str], expected: &[&str]) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{name}: line {} differs\nwhole output:\n{}", i + 1, actual.join("\n"));
    }
    assert_eq!(actual.len(), expected.len(), "{name}: line count differs\nwhole output:\n{}", actual.join("\n"));
}

/// Parts 1 and 2 of `go_phase -- --fast`.
const GO_PHASE_1_2: &[&str] = &[
    "--- part 1: go phase(i, &wg) for 3 phases, then wg.Wait() ---",
    "in phase 0, waiting 0 s",
    "in phase 1, waiting 5 s",
    "in phase 2, waiting 10 s",
    "phase 0 result",
    "phase 1 result",
    "phase 2 result",
    "exiting main",
    "cost 10s",
    "--- part 2: time.Sleep(6 s) instead of wg.Wait() ---",
    "in phase 0, waiting 0 s",
    "in phase 1, waiting 5 s",
    "in phase 2, waiting 10 s",
    "phase 0 result",
    "phase 1 result",
    "exiting main",
    // Go ends the process silently; here closing the loop drops the pending phase's future.
    "phase 2 dropped, unfinished",
    "cost 6s",
    "--- part 3: one loop per thread, as Go spreads goroutines over threads ---",
];

#[test]
fn go_phase_waits_sleeps_and_spreads_phases_over_threads() {
    let stdout = run_example("go_phase", &["--fast"]);
    let lines: Vec<&str> = stdout.lines().collect();
    let split = GO_PHASE_1_2.len();
    assert!(lines.len() > split, "go_phase printed too little:\n{stdout}");
    assert_lines("go_phase parts 1 and 2", &lines[..split], GO_PHASE_1_2);

    // Part 3: the main thread's line first and its two lines last; in between, each phase's
    // three lines in order, interleaved with the other threads' lines in any way.
    let part3 = &lines[split..];
    let main_id = part3[0].strip_prefix("main thread ").unwrap_or_else(|| panic!("no main thread line: {stdout}"));
    assert_eq!(&part3[part3.len() - 2..], ["exiting main", "cost 10s"], "{stdout}");
    let middle = &part3[1..part3.len() - 2];
    assert_eq!(middle.len(), 9, "three lines per phase:\n{stdout}");
    let mut thread_ids = BTreeSet::new();
    for n in 0..3 {
        let mine: Vec<&str> = middle
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("goroutine {n} ")) || l.contains(&format!("phase {n}")))
            .collect();
        let id = mine[0]
            .strip_prefix(&format!("goroutine {n} runs on thread "))
            .unwrap_or_else(|| panic!("phase {n} does not start with its thread: {mine:?}"));
        thread_ids.insert(id);
        assert_eq!(mine[1..], [format!("in phase {n}, waiting {} s", 5 * n), format!("phase {n} result")], "{stdout}");
    }
    assert_eq!(thread_ids.len(), 3, "each phase on a thread of its own: {thread_ids:?}");
    assert!(!thread_ids.contains(main_id), "no phase on the main thread {main_id}: {thread_ids:?}");
}

/// The output of `user_info -- --fast`.
const USER_INFO: &[&str] = &[
    "--- part 1: three requests with asyncio.wait ---",
    // The order CPython 3.11 prints for the seed's program (with tasks, as 3.11 requires).
    "request start  baidu",
    "request start  bytedance",
    "request start  weixin",
    "request succ  baidu",
    "request succ  bytedance",
    "request succ  weixin",
    "cost 1s",
    "--- part 2: go func() { ... }(); select {} ---",
    "main: spawned the task; it has not run yet",
    "i am a goroutine",
    "main: after one yield",
    "select {}: 0 tasks alive, 0 ready, 0 timers",
    "nothing can wake the loop but I/O or another thread: run_forever() would sleep forever",
    "--- part 3: main returns first ---",
    // CPython 3.11, asyncio.run: `main returns`, `side task starts`, `side task cancelled`.
    "main returns",
    "side task starts",
    "left when main returned: side, waiting on a timer",
    "side task cancelled",
    "the side task ended: Err(Cancelled)",
    "--- part 4: results back to main ---",
    "through the handle: 42",
    "through a queue: sent over a queue",
];

#[test]
fn user_info_prints_the_seed_output_and_the_goroutine_remarks() {
    let stdout = run_example("user_info", &["--fast"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_lines("user_info", &lines, USER_INFO);
}

/// Returns the cells of the table row whose first cell is `label`.
fn row<'a>(stdout: &'a str, label: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{stdout}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

/// Returns the whole numbers in `text`, thousands separators removed: "1,001 of 2,000" → [1001, 2000].
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .map(|w| w.trim_matches(|c| c == ',' || c == '.').replace(',', ""))
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap_or_else(|_| panic!("not a number: {w:?} in {text:?}")))
        .collect()
}

#[test]
fn threads_vs_tasks_prints_the_seed_table_with_measured_figures() {
    let stdout = run_example("threads_vs_tasks", &["--threads", "50", "--tasks", "5000", "--sleep-ms", "100"]);
    assert!(stdout.contains("50 OS threads, 5,000 tasks"), "{stdout}");
    assert!(stdout.contains("| | OS threads | tasks on one aioloop loop |"), "{stdout}");

    // Thread count: 50 sleeping threads plus the main thread; every task on the one thread.
    let threads = row(&stdout, "thread count");
    assert_eq!(numbers(threads[1]), [51.0], "{stdout}");
    assert_eq!(numbers(threads[2]), [1.0], "{stdout}");

    assert_eq!(row(&stdout, "scheduling")[1..], ["by the kernel, preemptive", "by the loop, at each `.await`"]);

    // Race: a task is never interrupted between a read and a write with no `.await` between.
    let race = row(&stdout, "race conditions");
    let [th_lost, th_made] = numbers(race[1])[..] else { panic!("threads race cell: {race:?}") };
    assert!(th_made > 0.0 && th_lost <= th_made, "{stdout}");
    assert_eq!(numbers(race[2]), [0.0, 4_000_000.0], "tasks lose no update: {stdout}");

    // Every measured figure is a positive number.
    let switch = row(&stdout, "switch cost");
    assert!(numbers(switch[1])[0] > 0.0 && numbers(switch[2]).iter().all(|&x| x > 0.0), "{stdout}");
    let memory = row(&stdout, "how many can run");
    assert!(memory[1].contains("RSS per sleeping thread") && memory[2].contains("RSS per sleeping task"), "{stdout}");
    assert!(memory[1].contains(" of it its stack)"), "the threads' reserved stack: {stdout}");
    let spawn = row(&stdout, "spawn + finish");
    assert!(numbers(spawn[1])[0] > 0.0 && numbers(spawn[2])[0] > 0.0, "{stdout}");

    // Efficiency: every unit slept 100 ms at the same time, so each side took at least 100 ms
    // and far less than the 5 s or 500 s that sleeping one after the other would take.
    let eff = row(&stdout, "efficiency");
    for (cell, count) in [(eff[1], 50.0), (eff[2], 5_000.0)] {
        let n = numbers(cell);
        assert_eq!(n[..2], [count, 100.0], "{cell}");
        assert!((0.1..2.0).contains(&n[2]), "wall time of {cell}");
    }
    assert!(stdout.contains("a goroutine starts with a 2 KiB stack"), "{stdout}");
}
