//! The process-wide half of signals: the handler, the doorbell, the signal thread, and the table
//! of loops that listen.
//!
//! A signal is a process-wide event, delivered to whichever thread does not block it, at any
//! instruction, possibly inside `malloc` or while that thread holds a lock. So the work is split:
//!
//! ```text
//!  kernel ──► handler (any thread, async-signal-safe):  DELIVERED[sig] += 1; write 1 byte to the doorbell
//!                 │
//!  signal thread ◄┘ wakes on the byte; for each signal whose counter moved:
//!                   - dump_on_signal: names the task each loop is polling right now, and for how long
//!                   - every loop listening to it: a job through its inbox (LoopHandle's path)
//!                   - orphaned children: waitpid(pid, WNOHANG) for each (SIGCHLD)
//!  loop thread ◄─── the job runs in phase 6 like any callback: handlers, `Signal`s, the reap pass
//! ```
//!
//! # Invariants
//! - The handler does only async-signal-safe work: atomic loads and increments, one `write(2)` to
//!   a non-blocking socket (its error, `EAGAIN` included, is ignored), and, for the default action,
//!   `sigaction(2)` and `raise(3)`. `signal-hook-registry`'s own handler around it saves and
//!   restores `errno` and first calls the handler that was installed before it (chaining).
//! - The **counters, not the doorbell's bytes, are the queue**: a full doorbell loses bytes, never
//!   deliveries, since the thread compares every counter with the value it last saw. Deliveries
//!   that arrive together may be coalesced into one (as the kernel coalesces a pending signal).
//! - A signal's handler, once installed, stays for the life of the process (signal-hook-registry
//!   cannot put the previous disposition back). When no aioloop listener is left, a signal whose
//!   disposition was the default one before aioloop installed its handler, and whose default action
//!   is to terminate, gets that action: the handler resets the disposition to `SIG_DFL` and raises
//!   the signal again, so a second Ctrl-C still kills the program once its listener is gone.
//! - A delivery counted while a listener existed, but that the thread could send to no loop (the
//!   last listener went away before it looked), is raised again by the thread, so that the
//!   handler decides once more: the default action, or a count for a listener that came back
//!   meanwhile. A signal reaches a listener or its default action, it is never dropped. A loop's
//!   count of listeners goes up before `LISTENERS` and down after it, and a loop leaves the table
//!   only once its counts are zero: a delivery the thread finds no listener for in any loop's
//!   count finds none in `LISTENERS` either, and the raise is final (see `Subscriber::unlisten`).
//!
//! Production note: tokio keeps one flag and one pipe per signal and a driver per runtime; asyncio
//! writes the signal number to a per-loop wakeup fd (`signal.set_wakeup_fd`) and allows handlers
//! on the main thread only. A thread is the simple way to serve any number of loops on any threads
//! from one handler; its cost is one idle thread, started with the first listener.

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::cross_thread::Remote;

/// Signal numbers are below this on every supported platform (Linux's last real-time signal
/// is 64; the BSDs and macOS use 1 to 31 here).
pub(crate) const NSIG: usize = 65;

/// How often the signal thread checks the children of the SIGCHLD backend and the orphans even
/// without a SIGCHLD, while there are any: a safety net for a SIGCHLD that never comes (another
/// library replaced the handler without chaining, or set SIGCHLD to `SIG_IGN`).
const RECHECK: Duration = Duration::from_secs(1);

/// Deliveries per signal, counted by the handler.
static DELIVERED: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];
/// Listeners per signal in the whole process (every loop's, and the orphan reaper's SIGCHLD).
static LISTENERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// The signal's disposition was `SIG_DFL` before aioloop installed its handler, and its default
/// action terminates the process: with no listener left, the handler performs it.
static DEFAULT_KILLS: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// The doorbell's write end (non-blocking), or -1 before the signal thread started.
static DOORBELL: AtomicI32 = AtomicI32::new(-1);

/// The signals whose handler is installed (guarded: installation is rare and must not race).
static INSTALLED: Mutex<[bool; NSIG]> = Mutex::new([false; NSIG]);
/// The pid of the process whose signal thread runs (0: none yet; another pid: we are a forked
/// child, whose copy of the thread does not exist).
static THREAD_PID: Mutex<u32> = Mutex::new(0);
/// The loops with at least one listener.
static LOOPS: Mutex<Vec<Arc<Subscriber>>> = Mutex::new(Vec::new());
/// Children nobody can wait for any more (their `Child` was dropped before they exited).
static ORPHANS: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());
/// Held by the signal thread while it looks at the counters (the doorbell test hook holds it).
static DRAIN: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a point between two steps where the signal thread may interleave: the unit tests at
/// the end of this file run the other side of the race there. Does nothing outside them.
#[cfg(not(test))]
fn race_point(_at: &'static str) {}

#[cfg(test)]
fn race_point(at: &'static str) {
    tests::race_point(at);
}

/// Returns the last valid signal number of the platform.
pub(crate) fn last_signal() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let last = libc::SIGRTMAX();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let last = 31;
    last.min(NSIG as i32 - 1)
}

/// Checks a signal number: `InvalidInput` for 0, negative numbers, numbers past the platform's
/// last signal, and the signals that cannot or must not be caught (SIGKILL and SIGSTOP never
/// reach a handler; SIGILL, SIGFPE and SIGSEGV are faults of the thread that caused them).
pub(crate) fn validate(signum: i32) -> io::Result<usize> {
    let last = last_signal();
    if signum <= 0 || signum > last {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid signal number {signum} (valid numbers are 1 to {last})"),
        ));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum) || signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} cannot be caught (SIGKILL, SIGSTOP, SIGILL, SIGFPE and SIGSEGV)"),
        ));
    }
    Ok(signum as usize)
}

/// Returns true if the signal's default action terminates the process (with or without a core
/// dump), rather than ignoring it, stopping or continuing the process.
fn default_terminates(sig: i32) -> bool {
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    if sig == libc::SIGINFO {
        return false;
    }
    ![
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGSTOP,
    ]
    .contains(&sig)
}

// -------------------------------------------------------------------------------------------
// The handler
// -------------------------------------------------------------------------------------------

/// What runs inside the signal handler (through signal-hook-registry's): async-signal-safe only.
fn on_signal(sig: usize) {
    if LISTENERS[sig].load(SeqCst) == 0 {
        if DEFAULT_KILLS[sig].load(SeqCst) {
            default_action(sig as i32);
        }
        return;
    }
    DELIVERED[sig].fetch_add(1, SeqCst);
    ring();
}

/// Writes one byte to the doorbell; a full doorbell (`EAGAIN`) is fine: the counters are the queue.
fn ring() {
    let fd = DOORBELL.load(SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: `write(2)` is async-signal-safe; `fd` is the doorbell's write end, which is never
        // closed (see `start_thread`), and the buffer is one byte on this stack frame. The result
        // is ignored on purpose, and signal-hook-registry restores the `errno` this may set.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Performs a signal's default action from inside its handler: the disposition goes back to
/// `SIG_DFL` and the signal is raised again. It is blocked while its handler runs, so it stays
/// pending until the handler returns, and then the kernel's default action (termination) takes it.
fn default_action(sig: i32) {
    // SAFETY: `sigaction(2)`, `sigemptyset(3)` and `raise(3)` are async-signal-safe; the
    // `sigaction` struct is zeroed plain data on this stack frame, with `SIG_DFL` as its handler.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Installs aioloop's handler for `sig` (once per process), after recording whether its default
/// action must come back when no listener is left.
fn install(sig: usize) -> io::Result<()> {
    let mut installed = lock(&INSTALLED);
    if installed[sig] {
        return Ok(());
    }
    // SAFETY: a zeroed `sigaction` is a valid out-parameter; a null `act` only reads the current one.
    let current = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig as i32, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        old.sa_sigaction
    };
    DEFAULT_KILLS[sig].store(current == libc::SIG_DFL && default_terminates(sig as i32), SeqCst);
    // SAFETY: signal-hook-registry requires the action to be async-signal-safe: `on_signal` does
    // only atomic operations, `write(2)`, and `sigaction(2)` plus `raise(3)` (see its docs). The
    // signal is not one of the registry's forbidden ones (`validate` checked).
    unsafe { signal_hook_registry::register(sig as i32, move || on_signal(sig)) }?;
    installed[sig] = true;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// The loops that listen
// -------------------------------------------------------------------------------------------

/// One loop's entry in the process-wide table: how many listeners it has per signal, and what
/// the signal thread needs to reach it and to report on it.
pub(crate) struct Subscriber {
    /// The loop's thread-safe half: deliveries go through its inbox.
    remote: Arc<Remote>,
    /// The loop's thread, for reports ("loop on thread 'main'").
    thread: String,
    /// Listeners of this loop per signal (handlers, `Signal`s, dump_on_signal, the reap pass).
    /// Changed only on the loop's thread (the signal thread reads them); a count is raised
    /// before `LISTENERS` and lowered after it, so `LISTENERS` never counts a listener that no
    /// loop's count shows.
    counts: [AtomicU32; NSIG],
    /// The loop's `dump_on_signal` signal (0: none).
    dump_signal: AtomicI32,
    /// The id of the task the loop is polling right now (0: none), published at each poll while
    /// `dump_on_signal` is on.
    polling: AtomicU64,
    /// When that poll started, in nanoseconds since [`epoch`].
    poll_started: AtomicU64,
    /// Children of this loop on the SIGCHLD backend: the periodic re-check concerns it.
    pub(crate) sigchld_children: AtomicUsize,
}

/// The instant the poll timestamps count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Subscriber {
    /// Adds a loop to the table (with no listener yet); starts the signal thread if needed.
    pub(crate) fn subscribe(remote: Arc<Remote>) -> io::Result<Arc<Subscriber>> {
        start_thread()?;
        let thread = std::thread::current();
        let thread = thread.name().map_or_else(|| format!("{:?}", thread.id()), |n| format!("'{n}'"));
        let sub = Arc::new(Subscriber {
            remote,
            thread,
            counts: [const { AtomicU32::new(0) }; NSIG],
            dump_signal: AtomicI32::new(0),
            polling: AtomicU64::new(0),
            poll_started: AtomicU64::new(0),
            sigchld_children: AtomicUsize::new(0),
        });
        lock(&LOOPS).push(sub.clone());
        Ok(sub)
    }

    /// Gives up all the loop's listeners and removes it from the table.
    pub(crate) fn unsubscribe(self: &Arc<Self>) {
        // Each listener goes as in `unlisten` (`LISTENERS` first, then this loop's count), and
        // the loop leaves the table last: a dispatch that no longer finds the loop in the table
        // must not find its listeners still counted in `LISTENERS`, or the delivery would go
        // neither to the loop nor back to the default action.
        for (sig, count) in self.counts.iter().enumerate() {
            let n = count.load(SeqCst);
            if n > 0 {
                LISTENERS[sig].fetch_sub(n as usize, SeqCst);
                race_point("unsubscribe: LISTENERS lowered");
                count.fetch_sub(n, SeqCst);
            }
        }
        race_point("unsubscribe: counts cleared");
        lock(&LOOPS).retain(|s| !Arc::ptr_eq(s, self));
    }

    /// Adds a listener of `sig` (a valid signal number) to this loop, installing the handler
    /// the first time the process listens to it.
    pub(crate) fn listen(&self, sig: usize) -> io::Result<()> {
        // Counted before the handler exists: a signal arriving as it is installed is delivered.
        // This loop's count goes up before `LISTENERS` (the mirror of `unlisten`).
        self.counts[sig].fetch_add(1, SeqCst);
        LISTENERS[sig].fetch_add(1, SeqCst);
        if let Err(e) = install(sig) {
            self.unlisten(sig);
            return Err(e);
        }
        Ok(())
    }

    /// Removes a listener of `sig`.
    pub(crate) fn unlisten(&self, sig: usize) {
        if self.counts[sig].load(SeqCst) == 0 {
            return;
        }
        // `LISTENERS` first, then this loop's count. The signal thread sends a delivery to the
        // loops whose count is above zero, and raises it again if it sent it nowhere; the
        // handler then performs the default action if `LISTENERS` is zero. In this order a
        // dispatch that misses the listener in the count (read after the second step) raises a
        // signal that finds `LISTENERS` lowered already (the first step): the default action.
        // In the other order a dispatch between the steps missed the listener in the count while
        // `LISTENERS` still showed it: the delivery was dropped (or, raised again, counted again
        // for a listener no loop shows, round and round until the second step).
        LISTENERS[sig].fetch_sub(1, SeqCst);
        race_point("unlisten: LISTENERS lowered");
        self.counts[sig].fetch_sub(1, SeqCst);
    }

    /// Makes `sig` this loop's dump signal (`Builder::dump_on_signal`).
    pub(crate) fn set_dump_signal(&self, sig: usize) -> io::Result<()> {
        self.listen(sig)?;
        self.dump_signal.store(sig as i32, SeqCst);
        Ok(())
    }

    /// Notes a change in this loop's number of SIGCHLD-backend children; the first one wakes
    /// the signal thread, so that it starts its periodic re-check.
    pub(crate) fn children_changed(&self, added: bool) {
        if added {
            if self.sigchld_children.fetch_add(1, SeqCst) == 0 {
                ring();
            }
        } else {
            self.sigchld_children.fetch_sub(1, SeqCst);
        }
    }

    /// The signal thread's report for dump_on_signal: which task the loop is polling and since
    /// when; the loop prints its whole task dump when it gets to its queue, which it never does
    /// if that task does not yield.
    fn report_poll(&self, sig: i32) {
        let id = self.polling.load(SeqCst);
        if id == 0 {
            return;
        }
        let since = Duration::from_nanos(nanos_since_epoch().saturating_sub(self.poll_started.load(SeqCst)));
        eprintln!(
            "aioloop: signal {sig}: the loop on thread {} has been polling task {id} for {:.3} s \
             (if this keeps growing, that task does not yield; the loop prints its task dump when it gets back to its queue)",
            self.thread,
            since.as_secs_f64()
        );
    }
}

// -------------------------------------------------------------------------------------------
// Orphans
// -------------------------------------------------------------------------------------------

/// Takes over a child nobody can wait for any more: it is reaped after it exits, on the signal
/// thread, whatever happens to the loop that started it.
pub(crate) fn adopt_orphan(mut child: std::process::Child) -> Result<(), std::process::Child> {
    static LISTENING: Mutex<bool> = Mutex::new(false);
    {
        let mut listening = lock(&LISTENING);
        // (Started again in a forked child, whose copy of the thread does not exist.)
        if start_thread().is_err() {
            return Err(child);
        }
        if !*listening {
            let sig = libc::SIGCHLD as usize;
            LISTENERS[sig].fetch_add(1, SeqCst);
            if install(sig).is_err() {
                LISTENERS[sig].fetch_sub(1, SeqCst);
                return Err(child);
            }
            *listening = true;
        }
    }
    if !matches!(child.try_wait(), Ok(None)) {
        return Ok(()); // exited meanwhile: reaped now (or gone)
    }
    let mut orphans = lock(&ORPHANS);
    orphans.push(child);
    if orphans.len() == 1 {
        ring(); // the thread starts its periodic re-check
    }
    Ok(())
}

/// Returns how many orphans are still running (not reaped yet).
pub(crate) fn orphans() -> usize {
    lock(&ORPHANS).len()
}

fn reap_orphans() {
    lock(&ORPHANS).retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}

// -------------------------------------------------------------------------------------------
// The signal thread
// -------------------------------------------------------------------------------------------

/// Starts the signal thread and its doorbell, once per process (again in a forked child, which
/// has no copy of the thread).
fn start_thread() -> io::Result<()> {
    let mut pid = lock(&THREAD_PID);
    if *pid == std::process::id() {
        return Ok(());
    }
    // A socket pair: the standard library creates it close-on-exec on every platform.
    let (rx, tx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    let seen: Vec<u64> = DELIVERED.iter().map(|c| c.load(SeqCst)).collect();
    std::thread::Builder::new().name("aioloop-signals".into()).spawn(move || signal_thread(rx, seen))?;
    // The write end is never closed: a handler may be about to write to the number it loaded.
    // (In a forked child, the parent's doorbell stays open too, unused.)
    DOORBELL.store(tx.into_raw_fd(), SeqCst);
    *pid = std::process::id();
    Ok(())
}

fn signal_thread(rx: UnixStream, mut seen: Vec<u64>) {
    let mut buf = [0u8; 512];
    let mut timeout: Option<Duration> = None;
    loop {
        let want = recheck_due().then_some(RECHECK);
        if want != timeout && rx.set_read_timeout(want).is_ok() {
            timeout = want;
        }
        let recheck = match (&rx).read(&mut buf) {
            Ok(_) => false,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Cannot happen with a socket pair we own; do not spin if it does.
                std::thread::sleep(Duration::from_millis(100));
                true
            }
        };
        let _drain = lock(&DRAIN);
        let moved: Vec<usize> = (1..NSIG)
            .filter(|&sig| {
                let now = DELIVERED[sig].load(SeqCst);
                std::mem::replace(&mut seen[sig], now) != now
            })
            .collect();
        for (&sig, fate) in moved.iter().zip(dispatch(&moved, recheck)) {
            if fate == Fate::RaiseAgain {
                // SAFETY: `kill(2)` on our own pid with a valid signal number; no memory is involved.
                unsafe { libc::kill(libc::getpid(), sig as i32) };
            }
        }
    }
}

/// Returns true while children must be checked even without a SIGCHLD.
fn recheck_due() -> bool {
    !lock(&ORPHANS).is_empty() || lock(&LOOPS).iter().any(|s| s.sigchld_children.load(SeqCst) > 0)
}

/// What a dispatch did with the deliveries of one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Queued to every loop that listens to it (at least one).
    Sent,
    /// Sent to no loop, and its default action terminates: the caller raises it again, so that it
    /// meets that action (or the count of a listener that came back meanwhile).
    RaiseAgain,
    /// Sent to no loop, and nothing else is due: its disposition was not `SIG_DFL` before
    /// aioloop's (the handler already chained to that one), or its default action does not
    /// terminate.
    Unheard,
}

/// Hands the deliveries of `moved` to every loop that listens; `recheck`: the periodic check
/// of children (as if a SIGCHLD came). Returns what became of each signal of `moved`.
fn dispatch(moved: &[usize], recheck: bool) -> Vec<Fate> {
    let sigchld = libc::SIGCHLD as usize;
    let loops: Vec<Arc<Subscriber>> = lock(&LOOPS).clone();
    let mut sent = vec![false; moved.len()];
    for sub in &loops {
        let dump = sub.dump_signal.load(SeqCst);
        let mut mine = Vec::new();
        for (i, &sig) in moved.iter().enumerate() {
            if sub.counts[sig].load(SeqCst) > 0 {
                mine.push(i);
                if sig as i32 == dump {
                    sub.report_poll(dump);
                }
            }
        }
        let check_children = recheck && sub.sigchld_children.load(SeqCst) > 0;
        if mine.is_empty() && !check_children {
            continue;
        }
        race_point("dispatch: counts read");
        let sigs: Vec<i32> = mine.iter().map(|&i| moved[i] as i32).collect();
        let job = Box::new(move || {
            crate::runtime::running::with_running(|core| super::of(core).deliver(core, &sigs, check_children));
        });
        // A loop that closed since its count was read refuses the job: not sent, then.
        if sub.remote.push_job(job).is_ok() {
            for i in mine {
                sent[i] = true;
            }
        }
    }
    if recheck || moved.contains(&sigchld) {
        reap_orphans();
    }
    race_point("dispatch: loops served");
    // Deliveries counted while a listener existed, but sent to no loop: raised again, whether or
    // not `LISTENERS` shows a listener now. The handler decides again: the default action if no
    // listener is left, else a count for the one that came back meanwhile (a loop that listened
    // after its count was read above). Skipping the raise while `LISTENERS` showed one dropped
    // such a delivery.
    moved
        .iter()
        .zip(sent)
        .map(|(&sig, sent)| {
            if sent {
                Fate::Sent
            } else if DEFAULT_KILLS[sig].load(SeqCst) {
                Fate::RaiseAgain
            } else {
                Fate::Unheard
            }
        })
        .collect()
}

/// Waits until the signal thread is between two dispatches. A dispatch holds clones of the
/// subscribed loops' remote halves (and with them a dropped loop's poller descriptors) until it
/// ends, so a test counting descriptors right after dropping a loop waits here first.
pub(crate) fn settle() {
    drop(lock(&DRAIN));
}

/// Test hook (checklist 49): fills the doorbell until `EAGAIN` while the signal thread is held
/// off, runs `f` (which raises signals, whose bytes are then lost), and lets the thread go.
pub(crate) fn with_doorbell_full(f: impl FnOnce()) -> io::Result<usize> {
    let _drain = lock(&DRAIN);
    let fd = DOORBELL.load(SeqCst);
    if fd < 0 {
        return Err(io::Error::other("the signal thread has not started"));
    }
    let mut written = 0;
    loop {
        let byte = 1u8;
        // SAFETY: as in `ring`: the doorbell's write end is never closed; one byte on the stack.
        let n = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        if n == 1 {
            written += 1;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            break;
        }
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    f();
    Ok(written)
}

impl crate::runtime::PollProbe for Subscriber {
    /// Publishes that task `id` is being polled (0: none), and since when.
    fn poll_started(&self, id: u64) {
        self.poll_started.store(nanos_since_epoch(), SeqCst);
        self.polling.store(id, SeqCst);
    }

    /// Publishes that the poll ended.
    fn poll_ended(&self) {
        self.polling.store(0, SeqCst);
    }
}

/// The races between a loop giving up listeners and the signal thread's dispatch, made
/// deterministic: a probe runs at a [`race_point`] of this thread (the other side of the race,
/// as the signal thread would at that instant), and calls [`dispatch`] directly, which reports
/// what it would do instead of raising anything. No signal is sent. Each test uses a signal of
/// its own: the listener counts are process-wide, and the tests run in parallel.
#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::EventLoop;

    /// What runs at a race point, given its name.
    type Probe = Box<dyn FnMut(&'static str)>;
    /// What a dispatch did at each race point: the point's name, the signal's fate, and the
    /// listeners `LISTENERS` counted right after.
    type Seen = Rc<RefCell<Vec<(&'static str, Fate, usize)>>>;

    thread_local! {
        /// What runs at this thread's race points (none: nothing).
        static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
    }

    pub(super) fn race_point(at: &'static str) {
        // Taken out while it runs: the dispatch it starts passes race points of its own.
        let probe = PROBE.with(|p| p.borrow_mut().take());
        if let Some(mut f) = probe {
            f(at);
            PROBE.with(|p| {
                p.borrow_mut().get_or_insert(f);
            });
        }
    }

    /// Runs `f` at this thread's race points until the returned guard is dropped.
    fn probe(f: impl FnMut(&'static str) + 'static) -> impl Drop {
        struct Unset;
        impl Drop for Unset {
            fn drop(&mut self) {
                PROBE.with(|p| p.borrow_mut().take());
            }
        }
        PROBE.with(|p| *p.borrow_mut() = Some(Box::new(f)));
        Unset
    }

    /// A loop listening to `sig` with one callback; checks that `sig` has a default action to
    /// fall back to (its disposition was `SIG_DFL` when the handler was installed).
    fn listening_loop(sig: i32) -> EventLoop {
        let lp = EventLoop::new().unwrap();
        lp.add_signal_handler(sig, || {}).unwrap();
        assert!(DEFAULT_KILLS[sig as usize].load(SeqCst), "signal {sig} must start with its default disposition");
        lp
    }

    /// Records what a dispatch of `sig` does at each race point whose name starts with `prefix`.
    fn dispatch_at(sig: i32, prefix: &'static str) -> (Seen, impl Drop) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let guard = probe(move |at| {
            if at.starts_with(prefix) {
                let fate = dispatch(&[sig as usize], false)[0];
                s.borrow_mut().push((at, fate, LISTENERS[sig as usize].load(SeqCst)));
            }
        });
        (seen, guard)
    }

    /// Checks that each dispatch sent the delivery to the loop, or raised it again with no
    /// listener counted (so the handler performs the default action, rather than counting the
    /// delivery again for a listener no loop shows).
    fn assert_never_dropped(seen: Seen) {
        let seen = seen.take();
        assert!(!seen.is_empty(), "no race point reached");
        for (at, fate, listeners) in seen {
            assert!(
                fate == Fate::Sent || (fate == Fate::RaiseAgain && listeners == 0),
                "a dispatch at \"{at}\" neither sent the delivery nor left it to the default action: {fate:?} with {listeners} listener(s) counted"
            );
        }
    }

    /// The last listener's loop closes while a delivery waits for the signal thread: at every
    /// step of `unsubscribe`, the delivery goes to the loop or is raised again, and after the
    /// last step it is raised again, into the default action.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "a loop with a signal listener needs the signal thread's socket pair, which Miri cannot run"
    )]
    fn closing_the_last_listeners_loop_never_drops_a_delivery() {
        let sig = libc::SIGUSR1;
        let lp = listening_loop(sig);
        let (seen, guard) = dispatch_at(sig, "unsubscribe");
        drop(lp);
        drop(guard);
        assert_never_dropped(seen);
        assert_eq!(dispatch(&[sig as usize], false), [Fate::RaiseAgain]);
    }

    /// The same when the last listener is removed from a loop that stays open.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "a loop with a signal listener needs the signal thread's socket pair, which Miri cannot run"
    )]
    fn removing_the_last_listener_never_drops_a_delivery() {
        let sig = libc::SIGUSR2;
        let lp = listening_loop(sig);
        let (seen, guard) = dispatch_at(sig, "unlisten");
        assert!(lp.remove_signal_handler(sig));
        drop(guard);
        assert_never_dropped(seen);
        assert_eq!(dispatch(&[sig as usize], false), [Fate::RaiseAgain]);
    }

    /// The last listener went; a new one comes while a dispatch is under way, after it looked at
    /// the loops: the delivery is raised again, so the new listener gets it (the handler counts
    /// it again), rather than being dropped because a listener exists.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "a loop with a signal listener needs the signal thread's socket pair, which Miri cannot run"
    )]
    fn a_listener_that_comes_back_during_a_dispatch_gets_the_delivery() {
        let sig = libc::SIGALRM;
        let lp = listening_loop(sig);
        assert!(lp.remove_signal_handler(sig));
        let core = lp.core.clone();
        let guard = probe(move |at| {
            if at == "dispatch: loops served" {
                super::super::add_handler(&core, sig, Box::new(|| {})).unwrap();
            }
        });
        let fate = dispatch(&[sig as usize], false);
        drop(guard);
        assert_eq!(LISTENERS[sig as usize].load(SeqCst), 1, "the listener did not come back");
        assert_eq!(fate, [Fate::RaiseAgain]);
        // Raised again, the handler counts it (a listener exists); the next dispatch sends it.
        assert_eq!(dispatch(&[sig as usize], false), [Fate::Sent]);
        drop(lp);
    }

    /// The last listener's loop closes after a dispatch read its count but before the dispatch
    /// queued the job: the loop refuses the job, and the delivery is raised again.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "a loop with a signal listener needs the signal thread's socket pair, which Miri cannot run"
    )]
    fn a_delivery_refused_by_a_loop_that_closed_meanwhile_is_raised_again() {
        let sig = libc::SIGVTALRM;
        let mut lp = Some(listening_loop(sig));
        let guard = probe(move |at| {
            if at == "dispatch: counts read" {
                drop(lp.take());
            }
        });
        let fate = dispatch(&[sig as usize], false);
        drop(guard);
        assert_eq!(LISTENERS[sig as usize].load(SeqCst), 0, "the loop did not close");
        assert_eq!(fate, [Fate::RaiseAgain]);
    }
}
