//! The soak of examples/soak.rs (reliability checklist items 23 and 36), smaller: 50,000 tasks,
//! 50,000 timers, 500 loopback connections echoing for 1 s while faults are injected, then
//! allocated bytes, RSS and open descriptors back to their baseline.
//!
//! The example's code is compiled into this test as a module, so the checks are the same ones;
//! its counting allocator becomes this test binary's. This file holds one test, so nothing else
//! in the process opens descriptors or allocates while it measures.

#[path = "../examples/soak.rs"]
#[allow(dead_code)] // the example's `main` and what only it uses
mod soak;

#[test]
#[cfg_attr(miri, ignore = "real sockets and threads")]
fn soak_short_run_passes_every_check() {
    let cfg = soak::Config { tasks: 50_000, timers: 50_000, connections: 500, seconds: 1.0, ..soak::Config::short() };
    let report = soak::run(&cfg);
    let text = report.render();
    println!("{text}");
    assert!(report.ok(), "{text}");
    assert!(report.checks.len() >= 15, "the soak ran fewer checks than expected:\n{text}");
}
