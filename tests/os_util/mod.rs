//! The harness of the process and signal suites (tests/process.rs, tests/signal.rs): the
//! reliability checklist's cross-cutting checks for section 11. Each test takes a [`Baseline`]
//! at its start and checks it at its end:
//!
//! - no zombie among this process's children (a child that exited and nobody reaped);
//! - the number of open descriptors (`/proc/self/fd`) back where it was;
//! - the thread's signal mask (`SigBlk`) and the process's ignored signals (`SigIgn`) as they
//!   were, and no new caught signal (`SigCgt`) but those the test listened to (aioloop's handler
//!   stays installed once a signal was listened to, as tokio's and signal-hook's do).
//!
//! The tests of one binary run one at a time ([`serial`]): descriptor counts and the list of
//! children are process-wide. A test that changes signal dispositions runs in a child process of
//! its own ([`run_in_child`]).

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

/// Makes the tests of this binary run one at a time (the guard lasts until the test ends).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns the number of open descriptors of this process.
pub fn open_fds() -> usize {
    // `read_dir` holds one descriptor of its own while it lists.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() - 1
}

/// Returns what each open descriptor of this process refers to, one per line.
pub fn fd_listing() -> String {
    let mut lines: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .map(|e| {
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                std::fs::read_link(e.path()).map_or_else(|e| e.to_string(), |p| p.display().to_string())
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Returns a signal mask line (`SigBlk`, `SigIgn`, `SigCgt`) of `/proc/<what>/status`.
pub fn sig_mask(what: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{what}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field");
    u64::from_str_radix(line.split_whitespace().nth(1).expect("value"), 16).expect("hex")
}

/// Returns the bit of signal `sig` in a `/proc` mask.
pub fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Returns the children of this process that are zombies (exited, not reaped).
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) S ppid ...": the command may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        if state == Some("Z") && ppid == Some(me) {
            zombies.push(pid);
        }
    }
    zombies
}

/// Retries `check` for up to `limit` (reaping and closing are asynchronous: the signal thread
/// reaps orphans after their SIGCHLD); returns its last answer.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Result<(), T> {
    let start = Instant::now();
    loop {
        match check() {
            None => return Ok(()),
            Some(bad) if start.elapsed() >= limit => return Err(bad),
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// What a test must leave as it found it.
pub struct Baseline {
    fds: usize,
    blocked: u64,
    ignored: u64,
    caught: u64,
}

impl Baseline {
    /// Records the baseline, after starting aioloop's process-wide pieces once (the signal
    /// thread and its doorbell, the SIGCHLD handler of the orphan reaper), which stay for the
    /// life of the process.
    pub fn take() -> Baseline {
        static WARM_UP: Once = Once::new();
        WARM_UP.call_once(|| {
            aioloop::run(async {
                let _ = aioloop::signal::Signal::new(aioloop::signal::SIGWINCH).unwrap();
                // A child dropped before it exits goes to the orphan reaper (SIGCHLD).
                drop(aioloop::process::Command::new("sleep").arg("0.2").spawn().unwrap());
            });
            eventually(Duration::from_secs(5), || (aioloop::signal::__orphans() > 0).then_some(())).unwrap();
        });
        // The signal thread's dispatch in flight may still hold the previous test's loop (its
        // poller's descriptors), closed when the dispatch ends: count after that.
        aioloop::signal::__settle();
        Baseline {
            fds: open_fds(),
            blocked: sig_mask("thread-self", "SigBlk"),
            ignored: sig_mask("self", "SigIgn"),
            caught: sig_mask("self", "SigCgt"),
        }
    }

    /// Checks that the test left no zombie, no descriptor, and the signal state as it was
    /// (`listened`: the signals the test listened to, whose handler may stay installed).
    #[track_caller]
    pub fn check(self, listened: &[i32]) {
        let zombies = eventually(Duration::from_secs(3), || {
            let z = zombie_children();
            (!z.is_empty()).then_some(z)
        });
        assert_eq!(zombies, Ok(()), "zombie children left behind");
        let orphans = eventually(Duration::from_secs(3), || {
            let n = aioloop::signal::__orphans();
            (n > 0).then_some(n)
        });
        assert_eq!(orphans, Ok(()), "orphans not reaped");
        let fds = eventually(Duration::from_secs(3), || {
            let n = open_fds();
            (n != self.fds).then_some(n)
        });
        assert_eq!(fds, Ok(()), "open descriptors: {} at the start; now:\n{}", self.fds, fd_listing());
        assert_eq!(sig_mask("thread-self", "SigBlk"), self.blocked, "the thread's signal mask changed");
        assert_eq!(sig_mask("self", "SigIgn"), self.ignored, "the ignored signals changed");
        let allowed = listened.iter().fold(self.caught, |m, &s| m | bit(s));
        let caught = sig_mask("self", "SigCgt");
        assert_eq!(caught & !allowed, 0, "signals caught that were not: {:x}", caught & !allowed);
    }
}

/// The environment variable that tells a test it runs as the child of [`run_in_child`].
pub const CHILD_ENV: &str = "AIOLOOP_OS_TEST_CHILD";

/// Returns true when this process is the child started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` of this binary alone in a child process (a pristine process: signal
/// dispositions and aioloop's process-wide state as at start) and returns its output.
pub fn run_in_child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(CHILD_ENV, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the test binary")
}

/// Asserts that a child of [`run_in_child`] ran its test and passed.
#[track_caller]
pub fn assert_child_passed(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "the child ran no test:\n{stdout}");
}

/// Sends `sig` to this process (as another process would).
pub fn send(sig: i32) {
    aioloop::signal::raise_signal(sig).expect("kill(getpid())");
}

/// Fails the test (the whole process: a hung loop cannot be unwound) if `f` does not finish
/// within `limit`.
pub fn watchdog<R>(limit: Duration, what: &'static str, f: impl FnOnce() -> R) -> R {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let dog = std::thread::spawn(move || {
        let start = Instant::now();
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            if start.elapsed() > limit {
                eprintln!("watchdog: {what} did not finish within {limit:?}");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let out = f();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    dog.join().unwrap();
    out
}
