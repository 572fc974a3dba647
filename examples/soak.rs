//! Soak and stress run for aioloop (reliability checklist items 23 and 36): many tasks, many
//! timers, thousands of loopback connections echoing while faults are injected, with memory and
//! descriptors checked against their baseline afterwards.
//!
//! ```sh
//! cargo run --release --example soak              # short run (a few seconds; CI runs this)
//! cargo run --release --example soak -- --full    # 1,000,000 tasks, 1,000,000 timers,
//!                                                 # 9,000 connections echoing for 60 s
//! cargo run --release --example soak -- --tasks 200000 --connections 2000 --seconds 10
//! ```
//!
//! It prints a small report and exits with status 1 if any check failed. Memory is measured two
//! ways: the bytes allocated and not yet freed (a counting global allocator, this file's
//! `ALLOC`) and the resident set size (`VmRSS` in /proc/self/status); descriptors by counting
//! /proc/self/fd; before each RSS reading glibc is asked to return freed memory (`malloc_trim`),
//! else its heap keeps the peak resident although nothing is allocated. Each phase runs on a loop of its own, created after the baseline is taken and
//! dropped before the final reading. tests/reliability_soak.rs runs the same phases, smaller.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use aioloop::net::{TcpListenOptions, TcpListener, TcpStream};
use aioloop::EventLoop;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Counts the bytes allocated and not yet freed, and their peak.
pub struct CountingAlloc;

static NET_BYTES: AtomicIsize = AtomicIsize::new(0);
static PEAK_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    let now = NET_BYTES.fetch_add(delta, Relaxed) + delta;
    if delta > 0 {
        PEAK_BYTES.fetch_max(now, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counting
// only touches two atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Bytes allocated and not freed, process-wide.
pub fn allocated() -> isize {
    NET_BYTES.load(Relaxed)
}

/// The resident set size in bytes (0 where /proc is missing).
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Asks the C allocator to give freed memory back to the system (glibc keeps freed chunks in
/// its heap otherwise, so the RSS would stay at the peak although nothing is allocated), so
/// that the RSS reading shows what is really held.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
    // minus read_dir's own
}

/// The soft limit on open descriptors (from /proc/self/limits).
pub fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tasks spawned and completed.
    pub tasks: usize,
    /// Timers created; 99 % of them are cancelled.
    pub timers: usize,
    /// Concurrent loopback connections.
    pub connections: usize,
    /// How long the connections echo.
    pub seconds: f64,
    /// Inject faults (resets, garbage, half messages, panics) during the echo phase.
    pub faults: bool,
    /// Allowed difference to the baseline of allocated bytes after a phase.
    pub byte_slack: isize,
    /// Allowed difference to the baseline of the RSS after a phase.
    pub rss_slack: u64,
}

impl Config {
    /// The default: a short run of a few seconds.
    pub fn short() -> Config {
        Config {
            tasks: 100_000,
            timers: 100_000,
            connections: 500,
            seconds: 2.0,
            faults: true,
            byte_slack: 64 * 1024,
            rss_slack: 8 << 20,
        }
    }

    /// `--full`: the checklist's sizes.
    pub fn full() -> Config {
        Config { tasks: 1_000_000, timers: 1_000_000, connections: 9_000, seconds: 60.0, ..Config::short() }
    }
}

/// One checked property.
#[derive(Debug)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
}

/// The outcome of a run: figures and checks.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines of figures, in order.
    pub lines: Vec<String>,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        self.checks.push(Check { what: what.into(), ok });
    }

    fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    /// Returns true if every check held.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        for c in &self.checks {
            let _ = writeln!(out, "  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.what);
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        let _ = writeln!(
            out,
            "result: {} ({} checks, {failed} failed)",
            if failed == 0 { "ok" } else { "FAILED" },
            self.checks.len()
        );
        out
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// A memory reading: allocated bytes and RSS.
#[derive(Clone, Copy)]
struct Mem {
    bytes: isize,
    rss: u64,
}

fn mem() -> Mem {
    trim();
    Mem { bytes: allocated(), rss: rss() }
}

/// Checks that memory went back to `base` after a phase, and reports the figures.
fn memory_checks(r: &mut Report, cfg: &Config, phase: &str, base: Mem, peak: isize, kept: isize) {
    let after = mem();
    let extra = after.bytes - base.bytes;
    r.line(format!(
        "  {phase}: allocated {} -> peak {} -> {} after the loop was dropped ({extra:+} B); the idle loop \
         kept {} before it was dropped; RSS {} -> {}",
        mib(base.bytes.max(0) as u64),
        mib(peak.max(0) as u64),
        mib(after.bytes.max(0) as u64),
        mib(kept.max(0) as u64),
        mib(base.rss),
        mib(after.rss)
    ));
    r.check(extra.abs() <= cfg.byte_slack, format!("{phase}: allocated bytes back to baseline ({extra:+} B)"));
    // Under valgrind the RSS holds valgrind's own shadow memory and its malloc ignores
    // `malloc_trim`: the figure is printed above but not checked.
    let under_valgrind = std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"));
    if base.rss > 0 && !under_valgrind {
        r.check(
            after.rss <= base.rss + cfg.rss_slack,
            format!(
                "{phase}: RSS back near baseline ({} -> {}, slack {})",
                mib(base.rss),
                mib(after.rss),
                mib(cfg.rss_slack)
            ),
        );
    }
    r.check(
        kept <= 1 << 20,
        format!("{phase}: the loop, idle again, gave back its burst memory (kept {kept} B, at most 1 MiB)"),
    );
}

/// Phase 1: `n` tasks spawned and completed (each yields once), then `n` detached ones.
fn tasks_phase(cfg: &Config, r: &mut Report) {
    let n = cfg.tasks;
    let base = mem();
    PEAK_BYTES.store(base.bytes, Relaxed);
    let started = Instant::now();
    let mut lp = EventLoop::new().expect("create a loop");
    let sum = Rc::new(Cell::new(0u64));
    let s = sum.clone();
    let total = lp.run_until_complete(async move {
        let handles: Vec<_> = (0..n as u64)
            .map(|i| {
                let s = s.clone();
                aioloop::spawn(async move {
                    aioloop::yield_now().await;
                    s.set(s.get() + 1);
                    i
                })
            })
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += h.await.unwrap_or(0);
        }
        total
    });
    let detached = Rc::new(Cell::new(0usize));
    for _ in 0..n {
        let d = detached.clone();
        drop(lp.spawn(async move { d.set(d.get() + 1) }));
    }
    lp.run_until_complete(aioloop::yield_now());
    let took = started.elapsed();
    let peak = PEAK_BYTES.load(Relaxed);
    let expected = (n as u64) * (n as u64).saturating_sub(1) / 2;
    r.line(format!(
        "tasks: {n} awaited and {n} detached, spawned and completed in {:.2} s ({:.0} B per live task at the peak)",
        took.as_secs_f64(),
        (peak - base.bytes) as f64 / n.max(1) as f64
    ));
    r.check(
        total == expected && sum.get() == n as u64,
        format!("tasks: all {n} awaited tasks completed with their values"),
    );
    r.check(detached.get() == n, format!("tasks: all {n} detached tasks completed"));
    r.check(lp.stats().tasks == 0, "tasks: the loop holds no task afterwards");
    let kept = allocated() - base.bytes;
    drop(lp);
    memory_checks(r, cfg, "tasks", base, peak, kept);
}

/// Phase 2: `n` timers over 1,000 s of virtual time, 99 % cancelled; the rest fire, once each.
fn timers_phase(cfg: &Config, r: &mut Report) {
    let n = cfg.timers;
    let base = mem();
    PEAK_BYTES.store(base.bytes, Relaxed);
    let started = Instant::now();
    let mut lp = EventLoop::builder().virtual_time(true).build().expect("create a loop");
    let fired = Rc::new(Cell::new(0usize));
    let cancelled_fired = Rc::new(Cell::new(0usize));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (f, cf) = (fired.clone(), cancelled_fired.clone());
            let keep = i % 100 == 0;
            lp.call_later(Duration::from_millis(1 + (i as u64 * 7919) % 1_000_000), move || {
                if keep {
                    f.set(f.get() + 1);
                } else {
                    cf.set(cf.get() + 1);
                }
            })
        })
        .collect();
    for (i, h) in handles.iter().enumerate() {
        if i % 100 != 0 {
            h.cancel();
        }
    }
    let live = n.div_ceil(100);
    let heap = lp.stats().timers;
    drop(handles);
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(1001)));
    let took = started.elapsed();
    let peak = PEAK_BYTES.load(Relaxed);
    r.line(format!(
        "timers: {n} created, {} cancelled, {} fired, in {:.2} s; heap after the cancels: {heap} entries",
        n - live,
        fired.get(),
        took.as_secs_f64()
    ));
    r.check(fired.get() == live, format!("timers: each of the {live} live timers fired once"));
    r.check(cancelled_fired.get() == 0, "timers: no cancelled timer fired");
    r.check(heap <= 2 * live.max(100) + 1, format!("timers: heap at most twice the live timers ({heap} for {live})"));
    r.check(lp.stats().timers == 0, "timers: the heap is empty afterwards");
    let kept = allocated() - base.bytes;
    drop(lp);
    memory_checks(r, cfg, "timers", base, peak, kept);
}

/// Counters of the echo phase.
#[derive(Default)]
struct Echo {
    round_trips: Cell<u64>,
    client_errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    idle_clients: Cell<u64>,
    server_errors_absorbed: Cell<u64>,
    faults: RefCell<std::collections::BTreeMap<&'static str, u64>>,
}

impl Echo {
    fn error(&self, what: String) {
        self.client_errors.set(self.client_errors.get() + 1);
        self.first_error.borrow_mut().get_or_insert(what);
    }

    fn fault(&self, kind: &'static str) {
        *self.faults.borrow_mut().entry(kind).or_default() += 1;
    }
}

const MSG: usize = 64;

/// When the well-behaved clients start echoing, and until when.
#[derive(Default)]
struct Go {
    event: aioloop::sync::Event,
    until: Cell<Option<Instant>>,
}

/// One well-behaved client: connects, waits for the start, then sends 64-byte messages, each
/// echoed back in full, until the deadline; then half-closes and reads to the end.
async fn client(addr: SocketAddr, id: u64, echo: Rc<Echo>, connected: Rc<Cell<usize>>, go: Rc<Go>) {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return echo.error(format!("connect: {e}")),
    };
    connected.set(connected.get() + 1);
    let _ = s.set_nodelay(true);
    go.event.wait().await;
    let until = go.until.get().expect("set before the start");
    let mut msg = [0u8; MSG];
    let mut back = [0u8; MSG];
    let mut trips = 0u64;
    while Instant::now() < until {
        for (j, b) in msg.iter_mut().enumerate() {
            *b = (id as usize).wrapping_add(trips as usize).wrapping_add(j) as u8;
        }
        if let Err(e) = s.write_all(&msg).await {
            return echo.error(format!("write: {e}"));
        }
        let mut got = 0;
        while got < MSG {
            match s.read(&mut back[got..]).await {
                Ok(0) => return echo.error("read: the server closed the connection".into()),
                Ok(n) => got += n,
                Err(e) => return echo.error(format!("read: {e}")),
            }
        }
        if back != msg {
            return echo.error("read: the echo differs from the message".into());
        }
        trips += 1;
        echo.round_trips.set(echo.round_trips.get() + 1);
    }
    if trips == 0 {
        echo.idle_clients.set(echo.idle_clients.get() + 1);
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut rest = [0u8; 16];
    // Wait for the server's side to close: its descriptor must be gone too.
    while let Ok(n) = s.read(&mut rest).await {
        if n == 0 {
            break;
        }
    }
}

/// The echo server's side of one connection: echoes until end of file or an error.
async fn serve(mut s: TcpStream, echo: Rc<Echo>) {
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    echo.server_errors_absorbed.set(echo.server_errors_absorbed.get() + 1);
                    return;
                }
            }
            Err(_) => {
                echo.server_errors_absorbed.set(echo.server_errors_absorbed.get() + 1);
                return;
            }
        }
    }
}

/// Injects one fault of kind `k` (bad peers, panicking tasks and jobs, cancellations).
async fn fault(addr: SocketAddr, k: u64, echo: &Echo) {
    let garbage: Vec<u8> = (0..(k * 37 % 3000) as usize + 1).map(|i| (i as u64 * k) as u8).collect();
    match k % 7 {
        0 => {
            // Connect and close at once.
            if TcpStream::connect(addr).await.is_ok() {
                echo.fault("connect then close");
            }
        }
        1 => {
            // Half a message, then a reset (SO_LINGER 0).
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let _ = s.write_all(&garbage[..garbage.len().min(MSG / 2)]).await;
                let _ = rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO));
                echo.fault("half message then reset");
            }
        }
        2 => {
            // Garbage of any length, never reading the echo, then close with data unread.
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let _ = s.write_all(&garbage).await;
                aioloop::sleep(Duration::from_millis(1)).await;
                echo.fault("garbage, echo left unread");
            }
        }
        3 => {
            // Shut down writing before sending anything, read to the end.
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let _ = s.shutdown(Shutdown::Write);
                let mut b = [0u8; 8];
                let _ = s.read(&mut b).await;
                echo.fault("empty half-close");
            }
        }
        4 => {
            // A task that panics (reported to the exception handler, contained).
            drop(aioloop::spawn(async { std::panic::panic_any(InjectedFault) }));
            echo.fault("task panic");
        }
        5 => {
            // A blocking job that panics: the awaiter gets the payload.
            let r = aioloop::run_in_executor(|| std::panic::panic_any(InjectedFault)).await;
            if r.is_err_and(|e| e.is_panic()) {
                echo.fault("executor job panic");
            }
        }
        _ => {
            // A task cancelled while it sleeps.
            let t = aioloop::spawn(aioloop::sleep(Duration::from_secs(3600)));
            aioloop::yield_now().await;
            t.cancel();
            if t.await.is_err_and(|e| e.is_cancelled()) {
                echo.fault("cancelled sleeper");
            }
        }
    }
}

/// The payload of injected panics (the panic hook stays quiet for it).
pub struct InjectedFault;

/// Phase 3: `connections` clients echo 64-byte messages for `seconds` through one server, all
/// on one loop, while faults are injected every few milliseconds.
fn echo_phase(cfg: &Config, r: &mut Report) {
    let mut conns = cfg.connections;
    let limit = fd_limit();
    let needed = |c: usize| (2 * c + 128) as u64;
    if let Some(l) = limit {
        if l < needed(conns) {
            let fits = (l.saturating_sub(128) / 2) as usize;
            r.line(format!(
                "connections: the open-files limit is {l}; {conns} connections need {} (raise it with `ulimit -n {}`)",
                needed(conns),
                needed(conns)
            ));
            r.check(false, format!("connections: {conns} connections fit under the open-files limit"));
            conns = fits;
        }
    }
    let fds_before = open_fds();
    let base = mem();
    PEAK_BYTES.store(base.bytes, Relaxed);
    let mut lp = EventLoop::new().expect("create a loop");
    let reports = Rc::new(Cell::new(0u64));
    let rp = reports.clone();
    lp.set_exception_handler(move |_| rp.set(rp.get() + 1));
    let echo = Rc::new(Echo::default());
    let e = echo.clone();
    let seconds = cfg.seconds;
    let faults = cfg.faults;
    let outcome: io::Result<(usize, usize, Duration, usize)> = lp.run_until_complete(async move {
        let listener = TcpListener::bind_with("127.0.0.1:0", TcpListenOptions::new().backlog(4096))?;
        let addr = listener.local_addr()?;
        let server_tasks = Rc::new(RefCell::new(Vec::new()));
        let accepted = Rc::new(Cell::new(0usize));
        let acceptor = aioloop::spawn({
            let (e, server_tasks, accepted) = (e.clone(), server_tasks.clone(), accepted.clone());
            async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            accepted.set(accepted.get() + 1);
                            server_tasks.borrow_mut().push(aioloop::spawn(serve(s, e.clone())));
                        }
                        Err(err) => e.error(format!("accept: {err}")),
                    }
                }
            }
        });
        // Connect in waves of 500: a full backlog makes Linux drop SYNs (a 1 s retransmit).
        let connected = Rc::new(Cell::new(0usize));
        let go = Rc::new(Go::default());
        let setup = Instant::now();
        let mut clients = Vec::with_capacity(conns);
        for id in 0..conns {
            clients.push(aioloop::spawn(client(addr, id as u64, e.clone(), connected.clone(), go.clone())));
            if (id + 1) % 500 == 0 || id + 1 == conns {
                while connected.get() + (e.client_errors.get() as usize) < clients.len()
                    && setup.elapsed() < Duration::from_secs(60)
                {
                    aioloop::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let setup_time = setup.elapsed();
        let peak_conns = connected.get();
        let fds_during = open_fds();
        go.until.set(Some(Instant::now() + Duration::from_secs_f64(seconds)));
        go.event.set();
        let injector = aioloop::spawn({
            let e = e.clone();
            async move {
                let mut k = 0u64;
                loop {
                    aioloop::sleep(Duration::from_millis(3)).await;
                    if faults {
                        fault(addr, k, &e).await;
                    }
                    k += 1;
                }
            }
        });
        for c in clients {
            let _ = c.await;
        }
        injector.cancel();
        let _ = injector.await;
        // Every server side ends when its client closed (the faulty ones too).
        loop {
            let pending: Vec<_> = server_tasks.borrow_mut().drain(..).collect();
            if pending.is_empty() {
                break;
            }
            for t in pending {
                let _ = t.await;
            }
        }
        acceptor.cancel();
        let _ = acceptor.await;
        Ok((peak_conns, accepted.get(), setup_time, fds_during))
    });
    let peak = PEAK_BYTES.load(Relaxed);
    let kept = allocated() - base.bytes;
    let stats = lp.stats();
    drop(lp);
    let fds_after = open_fds();
    let (peak_conns, accepted, setup, fds_during) = match outcome {
        Ok(v) => v,
        Err(err) => {
            r.check(false, format!("connections: the server could not start: {err}"));
            return;
        }
    };
    let trips = echo.round_trips.get();
    let faults: Vec<String> = echo.faults.borrow().iter().map(|(k, v)| format!("{v} {k}")).collect();
    let injected: u64 = echo.faults.borrow().values().sum();
    r.line(format!(
        "connections: {peak_conns} concurrent (set up in {:.2} s), echoing 64-byte messages for {seconds} s: {trips} round \
         trips ({:.0}/s); {accepted} connections accepted in all",
        setup.as_secs_f64(),
        trips as f64 / seconds
    ));
    r.line(format!(
        "  faults injected: {injected} ({}); the server absorbed {} broken connections; {} panics reported to the \
         exception handler",
        if faults.is_empty() { "none".to_string() } else { faults.join(", ") },
        echo.server_errors_absorbed.get(),
        reports.get()
    ));
    r.line(format!("  loop: {} iterations, {} calls into the poller", stats.iterations, stats.polls));
    r.line(format!("  descriptors: {fds_before} before, {fds_during} with every client connected, {fds_after} after"));
    r.check(peak_conns == conns, format!("connections: all {conns} connected at once ({peak_conns})"));
    let first = echo.first_error.borrow().clone().unwrap_or_default();
    r.check(
        echo.client_errors.get() == 0,
        format!("connections: no client saw an error ({} errors; {first})", echo.client_errors.get()),
    );
    r.check(
        echo.idle_clients.get() == 0,
        format!("connections: every client completed round trips ({} did none)", echo.idle_clients.get()),
    );
    r.check(!cfg.faults || injected > 0, "connections: faults were injected and survived");
    r.check(
        fds_after <= fds_before,
        format!("connections: descriptors back to baseline ({fds_before} -> {fds_after})"),
    );
    memory_checks(r, cfg, "connections", base, peak, kept);
}

/// Runs the three phases and returns the report.
pub fn run(cfg: &Config) -> Report {
    let mut r = Report::default();
    // Injected panics are expected: keep them off stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<InjectedFault>() {
            default_hook(info);
        }
    }));
    r.line(format!(
        "aioloop soak: {} tasks, {} timers, {} connections for {} s{}",
        cfg.tasks,
        cfg.timers,
        cfg.connections,
        cfg.seconds,
        if cfg.faults { ", with faults" } else { "" }
    ));
    let started = Instant::now();
    tasks_phase(cfg, &mut r);
    timers_phase(cfg, &mut r);
    echo_phase(cfg, &mut r);
    r.line(format!("took {:.1} s", started.elapsed().as_secs_f64()));
    let _ = std::panic::take_hook();
    r
}

fn main() {
    let mut cfg = Config::short();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> f64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--full" => cfg = Config { faults: cfg.faults, ..Config::full() },
            "--tasks" => cfg.tasks = value("--tasks") as usize,
            "--timers" => cfg.timers = value("--timers") as usize,
            "--connections" => cfg.connections = value("--connections") as usize,
            "--seconds" => cfg.seconds = value("--seconds"),
            "--no-faults" => cfg.faults = false,
            _ => {
                eprintln!(
                    "usage: soak [--full] [--tasks N] [--timers N] [--connections N] [--seconds S] [--no-faults]"
                );
                std::process::exit(2);
            }
        }
    }
    let report = run(&cfg);
    print!("{}", report.render());
    if !report.ok() {
        std::process::exit(1);
    }
}
