//! Child processes on the loop (asyncio's `create_subprocess_exec`, tokio's `process`):
//! [`Command`] starts a [`Child`], whose pipes are futures-io streams and whose exit is awaited
//! without a thread per child and without leaving zombies.
//!
//! ```text
//!   Command::spawn ── std::process::Command::spawn (posix_spawn, or fork/exec: close-on-exec
//!        │            pipes; SIGPIPE back to its default; the signal mask emptied, by aioloop)
//!        ├─ pipes ──► ChildStdin / ChildStdout / ChildStderr: non-blocking, on the poller
//!        └─ exit  ──► a pidfd on the poller (Linux), or the loop's SIGCHLD pass (elsewhere)
//!   Child::wait ───► waitpid(pid, WNOHANG) when the pidfd (or a SIGCHLD) says it exited
//! ```
//!
//! # Invariants
//! - Every child is reaped, once: by whoever awaits it, by the loop's SIGCHLD pass, or, when its
//!   [`Child`] is dropped before it exited, by the process-wide signal thread after it exits
//!   (with [`Command::kill_on_drop`] it is killed first). That also holds for the children of a
//!   loop that was dropped: the signal thread reaps them, whatever loops exist.
//! - A child's exit and the end of its pipes are separate events: [`Child::wait`] returns when
//!   the child exits, even if a grandchild keeps its stdout open; [`Command::output`] reads the
//!   pipes until end of file, or for at most 100 ms after the exit when a descendant holds them.
//! - No descriptor of the loop leaks into a child: the standard library's pipes, the pidfds, the
//!   poller, the signal doorbell and the sockets of [`net`](crate::net) are all close-on-exec.
//! - A child starts with an empty signal mask and no signal ignored by aioloop, even when the
//!   spawning thread blocks signals (the standard library lets the mask through; see
//!   src/signal/mask.rs), so it dies of Ctrl-C and SIGTERM as it should.
//! - After a child was reaped, [`Child::kill`] sends nothing (its number may belong to another
//!   process by then) and reports `ESRCH`, asyncio's `ProcessLookupError`.
//! - Children belong to the loop that spawned them: await them in that loop.
//!
//! See `reap.rs` for the two ways of noticing an exit (pidfd, SIGCHLD) and how one is chosen.
//!
//! # Examples
//!
//! ```
//! use aioloop::process::Command;
//! aioloop::run(async {
//!     let out = Command::new("sh").args(["-c", "echo hello; exit 3"]).output().await.unwrap();
//!     assert_eq!(out.stdout, b"hello\n");
//!     assert_eq!(out.status.code(), Some(3));
//! });
//! ```

mod pipe;
mod reap;

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Output, Stdio};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use pipe::{ChildStderr, ChildStdin, ChildStdout};

use crate::runtime::Core;
use reap::Inner;

/// How long [`Command::output`] and [`Child::wait_with_output`] keep reading the pipes after the
/// child exited, when something else (a grandchild) still holds them open.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

/// A process to start: the program, its arguments, environment, directory and standard streams
/// (the builder of `std::process::Command`, whose methods it mirrors).
///
/// # Examples
///
/// Several children at once, as asyncio's `create_subprocess_exec` and `gather`:
///
/// ```
/// use aioloop::process::Command;
/// let outputs = aioloop::run(async {
///     let a = aioloop::spawn(async { Command::new("echo").arg("one").output().await });
///     let b = aioloop::spawn(async { Command::new("sh").args(["-c", "echo two; exit 3"]).output().await });
///     aioloop::gather([a, b]).await.unwrap()
/// });
/// let a = outputs[0].as_ref().unwrap();
/// let b = outputs[1].as_ref().unwrap();
/// assert_eq!((a.stdout.as_slice(), a.status.code()), (&b"one\n"[..], Some(0)));
/// assert_eq!((b.stdout.as_slice(), b.status.code()), (&b"two\n"[..], Some(3)));
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which of stdin, stdout and stderr the caller configured (`output` chooses the others).
    configured: [bool; 3],
    /// The `pre_exec` step that empties the child's signal mask was added (see src/signal/mask.rs).
    resets_mask: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("std", &self.std).field("kill_on_drop", &self.kill_on_drop).finish()
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command { std, kill_on_drop: false, configured: [false; 3], resets_mask: false }
    }
}

impl Command {
    /// Starts building a command for `program` (looked up in `PATH` if it has no slash).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut cmd = aioloop::process::Command::new("ls");
    /// cmd.arg("-l");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::process::Command::new("echo").arg("hello");
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::process::Command::new("sh").args(["-c", "exit 0"]);
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = aioloop::run(aioloop::process::Command::new("sh").args(["-c", "echo $GREETING"]).env("GREETING", "hi").output());
    /// assert_eq!(out.unwrap().stdout, b"hi\n");
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Sets several environment variables.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::process::Command::new("env").envs([("A", "1"), ("B", "2")]);
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::process::Command::new("env").env_remove("HOME");
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Clears the child's environment (it inherits nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = aioloop::run(aioloop::process::Command::new("/usr/bin/env").env_clear().output());
    /// assert!(out.unwrap().stdout.is_empty());
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = aioloop::run(aioloop::process::Command::new("pwd").current_dir("/").output());
    /// assert_eq!(out.unwrap().stdout, b"/\n");
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's standard input (`Stdio::piped()` gives [`Child::stdin`]). Default:
    /// inherited by [`spawn`](Self::spawn) and [`status`](Self::status), `/dev/null` for
    /// [`output`](Self::output).
    ///
    /// # Examples
    ///
    /// See [`ChildStdin`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.configured[0] = true;
        self
    }

    /// Sets the child's standard output (`Stdio::piped()` gives [`Child::stdout`]). Default:
    /// inherited, piped for [`output`](Self::output).
    ///
    /// # Examples
    ///
    /// See [`ChildStdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.configured[1] = true;
        self
    }

    /// Sets the child's standard error (`Stdio::piped()` gives [`Child::stderr`]). Default:
    /// inherited, piped for [`output`](Self::output).
    ///
    /// # Examples
    ///
    /// See [`ChildStderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.configured[2] = true;
        self
    }

    /// Kills (SIGKILL) the child when its [`Child`] is dropped before it exited (default:
    /// false, and then the child runs on and is reaped when it exits, as std's children are not).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::process::Command;
    /// aioloop::run(async {
    ///     let child = Command::new("sleep").arg("60").kill_on_drop(true).spawn().unwrap();
    ///     drop(child); // killed now, reaped by the signal thread right after
    /// });
    /// ```
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// Returns the standard library's command, for what this type does not mirror.
    ///
    /// # Examples
    ///
    /// ```
    /// let cmd = aioloop::process::Command::new("ls");
    /// assert_eq!(cmd.as_std().get_program(), "ls");
    /// ```
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// Returns the standard library's command mutably: `std::os::unix::process::CommandExt`'s
    /// `uid`, `gid`, `process_group`, `arg0` and `pre_exec` apply to it.
    ///
    /// A `pre_exec` closure runs in the child between `fork` and `exec`, where only the forking
    /// thread exists: a lock another thread held at the fork (the allocator's, stdout's, a
    /// mutex) is held forever there. The closure must call only async-signal-safe functions
    /// (`setsid`, `dup2`, `close`, `signal`, ...) and must **not allocate**, lock, print or log;
    /// the loop's executor threads keep allocating while children are spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::CommandExt;
    /// let mut cmd = aioloop::process::Command::new("sleep");
    /// cmd.as_std_mut().process_group(0); // the child leads a process group of its own
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child on the running loop.
    ///
    /// The pipes requested with `Stdio::piped()` become [`Child::stdin`], [`Child::stdout`] and
    /// [`Child::stderr`], registered with the loop; the child's exit is watched by a pidfd or by
    /// the loop's SIGCHLD pass (see the module documentation).
    ///
    /// # Errors
    ///
    /// - `NotFound` if the program does not exist (and the OS's other errors of `exec`:
    ///   `PermissionDenied` for a file that is not executable, ...);
    /// - if no loop is running on this thread;
    /// - if a pipe cannot be registered with the loop after the child started: the child is then
    ///   killed and reaped, and nothing of it is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::process::Command;
    /// aioloop::run(async {
    ///     let mut child = Command::new("true").spawn().unwrap();
    ///     assert!(child.wait().await.unwrap().success());
    ///     let missing = Command::new("no-such-program-here").spawn();
    ///     assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// });
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        let core = crate::runtime::running::with_running(Rc::clone).ok_or_else(|| {
            io::Error::other("no running event loop: spawn children inside the loop (in a task or the future given to run_until_complete)")
        })?;
        if !self.resets_mask && crate::signal::thread_blocks_signals() {
            // The child would inherit this thread's mask (deaf to SIGINT, SIGTERM...).
            crate::signal::reset_mask_in_child(&mut self.std);
            self.resets_mask = true;
        }
        let mut child = self.std.spawn()?;
        // From here on the process exists: on any failure it is killed and reaped.
        match Child::setup(&core, &mut child) {
            Ok((stdin, stdout, stderr)) => {
                let inner = Inner::new(&core, child, self.kill_on_drop);
                Ok(Child { stdin, stdout, stderr, inner })
            }
            Err(e) => {
                let _ = child.kill();
                if let Err(mut child) = crate::signal::adopt_orphan(child) {
                    let _ = child.wait(); // killed: returns at once
                }
                Err(e)
            }
        }
    }

    /// Runs the child to its end and returns its exit status (its standard streams inherited
    /// unless configured otherwise).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// let status = aioloop::run(aioloop::process::Command::new("sh").args(["-c", "exit 7"]).status());
    /// assert_eq!(status.unwrap().code(), Some(7));
    /// ```
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }

    /// Runs the child to its end and returns its status and everything it wrote (asyncio's
    /// `communicate()`): stdout and stderr are piped unless configured otherwise, and read
    /// *concurrently* with each other and with the wait, so a child that fills one pipe while
    /// the parent reads the other cannot deadlock; stdin is `/dev/null` unless configured.
    ///
    /// If a descendant of the child keeps its stdout or stderr open after the child exited
    /// (`sh -c 'server &'`), the pipes never reach end of file: `output` then reads them for
    /// [`DRAIN_AFTER_EXIT`] (100 ms) after the exit, takes what they hold at that moment, and
    /// returns. Whatever the descendant writes later is not collected.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait`], and a failing read of a pipe.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = aioloop::run(aioloop::process::Command::new("sh").args(["-c", "echo out; echo err >&2"]).output()).unwrap();
    /// assert!(out.status.success());
    /// assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
    /// ```
    pub async fn output(&mut self) -> io::Result<Output> {
        let defaults = self.configured;
        if !defaults[0] {
            self.std.stdin(Stdio::null());
        }
        if !defaults[1] {
            self.std.stdout(Stdio::piped());
        }
        if !defaults[2] {
            self.std.stderr(Stdio::piped());
        }
        let spawned = self.spawn();
        // Back to `spawn`'s defaults for the streams the caller did not configure.
        for (i, set) in defaults.iter().enumerate() {
            if !set {
                match i {
                    0 => self.std.stdin(Stdio::inherit()),
                    1 => self.std.stdout(Stdio::inherit()),
                    _ => self.std.stderr(Stdio::inherit()),
                };
            }
        }
        spawned?.wait_with_output().await
    }
}

/// A running (or finished) child process, from [`Command::spawn`].
///
/// Dropping it does not kill the child (unless [`Command::kill_on_drop`] was set) and leaves no
/// zombie: the child is reaped after it exits, by the process-wide signal thread.
///
/// # Examples
///
/// ```
/// use aioloop::process::Command;
/// use std::process::Stdio;
/// aioloop::run(async {
///     let mut child = Command::new("sleep").arg("60").stdout(Stdio::null()).spawn().unwrap();
///     assert!(child.try_wait().unwrap().is_none()); // still running
///     child.kill().unwrap();
///     let status = child.wait().await.unwrap();
///     assert!(!status.success()); // killed by SIGKILL
///     assert!(child.kill().is_err()); // reaped: nothing is signalled any more
/// });
/// ```
pub struct Child {
    /// The parent's end of the child's stdin, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    inner: Rc<Inner>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.inner.pid())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// The pipes of a freshly spawned child, registered with the loop.
type Pipes = (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>);

impl Child {
    /// Registers the pipes of a spawned child with the loop.
    fn setup(_core: &Rc<Core>, child: &mut std::process::Child) -> io::Result<Pipes> {
        reap::setup_fault()?;
        let stdin = child.stdin.take().map(ChildStdin::new).transpose()?;
        let stdout = child.stdout.take().map(ChildStdout::new).transpose()?;
        let stderr = child.stderr.take().map(ChildStderr::new).transpose()?;
        Ok((stdin, stdout, stderr))
    }

    /// Returns the child's process id (as `std::process::Child::id`).
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let mut child = aioloop::process::Command::new("true").spawn().unwrap();
    ///     assert!(child.id() > 0);
    ///     child.wait().await.unwrap();
    /// });
    /// ```
    pub fn id(&self) -> u32 {
        self.inner.pid()
    }

    /// Waits for the child to exit and returns its status (reaping it).
    ///
    /// First closes [`stdin`](Self::stdin) if it is still here (a child that reads its input to
    /// the end, like `cat` or `sort`, would otherwise wait for the parent forever). Returns as
    /// soon as the child exits, even if a grandchild keeps its stdout or stderr open.
    ///
    /// The returned future does not borrow the `Child`: another task may [`kill`](Self::kill) it
    /// while this one waits. Awaiting it again after the exit gives the same status.
    ///
    /// # Errors
    ///
    /// If the status was collected by someone else (a `waitpid` elsewhere in the process, or
    /// SIGCHLD set to `SIG_IGN`, which makes the kernel discard it): an error of kind `Other`
    /// that says so.
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses nothing: the child runs on, and a later `wait` gets its status.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    /// aioloop::run(async {
    ///     let mut cat = aioloop::process::Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
    ///     assert!(cat.wait().await.unwrap().success()); // stdin closed: cat ends
    /// });
    /// ```
    pub fn wait(&mut self) -> Wait {
        drop(self.stdin.take());
        Wait { inner: self.inner.clone() }
    }

    /// Returns the exit status if the child has exited (reaping it), `None` if it still runs.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// See [`Child`].
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Kills the child with SIGKILL (asyncio's `Process.kill()`); [`wait`](Self::wait) then
    /// reaps it.
    ///
    /// On Linux the signal goes through the child's pidfd, which cannot reach another process.
    ///
    /// # Errors
    ///
    /// `ESRCH` (`raw_os_error() == Some(libc::ESRCH)`, asyncio's `ProcessLookupError`) if the
    /// child was reaped already: its number may belong to another process, so nothing is sent.
    /// Killing a child that exited but was not reaped yet succeeds and changes nothing.
    ///
    /// # Examples
    ///
    /// See [`Child`].
    pub fn kill(&self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Waits for the child to exit while reading its stdout and stderr to the end, concurrently
    /// (see [`Command::output`] for the rule when a descendant keeps them open). Closes stdin
    /// first. Pipes that were not piped give empty outputs.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), and a failing read of a pipe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    /// aioloop::run(async {
    ///     let child = aioloop::process::Command::new("echo").arg("x").stdout(Stdio::piped()).spawn().unwrap();
    ///     let out = child.wait_with_output().await.unwrap();
    ///     assert_eq!(out.stdout, b"x\n");
    /// });
    /// ```
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        let mut wait = self.wait();
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let mut out = Collect::new(stdout.as_ref().map(ChildStdout::io));
        let mut err = Collect::new(stderr.as_ref().map(ChildStderr::io));
        let mut status: Option<ExitStatus> = None;
        let mut grace: Option<Pin<Box<crate::Sleep>>> = None;
        std::future::poll_fn(|cx| {
            out.poll(cx)?;
            err.poll(cx)?;
            if status.is_none() {
                if let Poll::Ready(s) = Pin::new(&mut wait).poll(cx) {
                    status = Some(s?);
                }
            }
            let Some(status) = status else { return Poll::Pending };
            if out.eof && err.eof {
                return Poll::Ready(Ok(Output { status, stdout: out.take(), stderr: err.take() }));
            }
            // Exited, yet something else still holds a pipe open: a bounded drain.
            let deadline = grace.get_or_insert_with(|| Box::pin(crate::sleep(DRAIN_AFTER_EXIT)));
            if deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            out.read_available()?;
            err.read_available()?;
            Poll::Ready(Ok(Output { status, stdout: out.take(), stderr: err.take() }))
        })
        .await
    }

    /// Test hook: which way this child's exit is noticed ("pidfd" or "sigchld"). Not part of
    /// the API.
    #[doc(hidden)]
    pub fn __backend(&self) -> &'static str {
        match self.inner.backend() {
            reap::Backend::Pidfd => "pidfd",
            reap::Backend::Sigchld => "sigchld",
        }
    }
}

/// One pipe being read to its end by `wait_with_output`.
struct Collect<'a, T: std::os::fd::AsFd> {
    pipe: Option<&'a crate::Async<T>>,
    buf: Vec<u8>,
    eof: bool,
}

impl<'a, T: std::os::fd::AsFd> Collect<'a, T> {
    fn new(pipe: Option<&'a crate::Async<T>>) -> Self {
        Collect { eof: pipe.is_none(), pipe, buf: Vec::new() }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let (Some(pipe), false) = (self.pipe, self.eof) {
            if let Poll::Ready(r) = pipe::poll_read_to_end(pipe, cx, &mut self.buf) {
                r?;
                self.eof = true;
            }
        }
        Ok(())
    }

    fn read_available(&mut self) -> io::Result<()> {
        if let (Some(pipe), false) = (self.pipe, self.eof) {
            self.eof = pipe::read_available(pipe, &mut self.buf)?;
        }
        Ok(())
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// The future of [`Child::wait`]: the child's exit status.
///
/// It holds the child too: if the [`Child`] is dropped while this future is alive, the child is
/// handed to the orphan reaper only when this future is dropped as well.
///
/// # Examples
///
/// See [`Child::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct Wait {
    inner: Rc<Inner>,
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("id", &self.inner.pid()).finish()
    }
}

impl Future for Wait {
    type Output = io::Result<ExitStatus>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        self.inner.poll_exit(cx)
    }
}

/// Test hook: makes `pidfd_open` fail with `errno` on this thread (`None`: no fault). Not part
/// of the API.
#[doc(hidden)]
pub fn __set_pidfd_open_fault(errno: Option<i32>) {
    reap::set_pidfd_fault(errno);
}

/// Test hook: makes the setup that follows a successful OS spawn (the pipes' registration) fail
/// on this thread. Not part of the API.
#[doc(hidden)]
pub fn __set_spawn_setup_fault(on: bool) {
    reap::set_setup_fault(on);
}

/// Test hook: how many signals this thread sent to children (`kill`, `kill_on_drop`). Not part
/// of the API.
#[doc(hidden)]
pub fn __signals_sent() -> u64 {
    reap::signals_sent()
}
