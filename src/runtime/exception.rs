//! The loop's exception handler (asyncio's `call_exception_handler`): where the loop reports
//! what no task can receive as a value.
//!
//! - "Task exception was never retrieved": a task panicked and nobody will read its outcome (it
//!   was detached, or its handle dropped unread);
//! - "Exception in callback": a `call_soon`/`call_later`/`add_reader` callback, a waker, or the
//!   destructor of a task's output panicked;
//! - "Task was destroyed but it is pending!": the loop closed with the task unfinished (the
//!   first 10 such tasks; then one report, with no task, says how many more there were:
//!   "N more tasks were destroyed but pending (not reported one by one)");
//! - in debug mode, "Executing <Task ...> took 0.250 seconds": one step held the loop too long.
//!
//! The default handler prints one line on stderr. [`EventLoop::set_exception_handler`]
//! replaces it; a handler that panics is itself reported on stderr, and the loop goes on.
//!
//! [`EventLoop::set_exception_handler`]: crate::EventLoop::set_exception_handler

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::error::panic_message;
use crate::runtime::task::TaskId;
use crate::runtime::Core;

/// What the loop reports to its exception handler (asyncio's context dict).
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let seen = Rc::new(RefCell::new(vec![]));
/// let s = seen.clone();
/// lp.set_exception_handler(move |ctx| s.borrow_mut().push(ctx.to_string()));
/// drop(lp.spawn(async { panic!("boom") })); // detached: nobody will read the panic
/// lp.run_until_complete(aioloop::yield_now());
/// assert!(seen.borrow()[0].starts_with("Task exception was never retrieved: <Task name=Task-"));
/// assert!(seen.borrow()[0].ends_with("panicked: boom"));
/// ```
#[derive(Debug)]
pub struct ExceptionContext<'a> {
    /// What happened: "Task exception was never retrieved", "Exception in callback",
    /// "Task was destroyed but it is pending!" (for the first 10 pending tasks of a closing
    /// loop; "N more tasks were destroyed but pending (not reported one by one)" for the
    /// rest), or a slow-step report of debug mode.
    pub message: &'a str,
    /// The task concerned, if any.
    pub task: Option<TaskInfo>,
    /// The panic payload, if a panic is the problem.
    pub panic: Option<&'a (dyn Any + Send)>,
}

/// A task named in an [`ExceptionContext`].
///
/// # Examples
///
/// See [`ExceptionContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The task's name (`Task-<id>` unless it was given one).
    pub name: String,
    /// Where it was spawned, in debug mode (`file:line:column`).
    pub spawned_at: Option<&'static std::panic::Location<'static>>,
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Task name={} id={}", self.name, self.id)?;
        if let Some(at) = self.spawned_at {
            write!(f, " spawned at {at}")?;
        }
        f.write_str(">")
    }
}

impl ExceptionContext<'_> {
    /// Returns the panic's message, if the payload is a string.
    ///
    /// # Examples
    ///
    /// ```
    /// let payload: Box<dyn std::any::Any + Send> = Box::new("oops");
    /// let ctx = aioloop::ExceptionContext { message: "m", task: None, panic: Some(&*payload) };
    /// assert_eq!(ctx.panic_message(), Some("oops"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        self.panic.map(panic_message)
    }
}

impl fmt::Display for ExceptionContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)?;
        if let Some(task) = &self.task {
            write!(f, ": {task}")?;
        }
        if let Some(msg) = self.panic_message() {
            write!(f, " panicked: {msg}")?;
        }
        Ok(())
    }
}

/// The default exception handler: prints the context on one line of stderr.
///
/// # Examples
///
/// ```
/// let ctx = aioloop::ExceptionContext { message: "Exception in callback", task: None, panic: None };
/// aioloop::default_exception_handler(&ctx); // prints "aioloop: Exception in callback"
/// ```
pub fn default_exception_handler(ctx: &ExceptionContext<'_>) {
    eprintln!("aioloop: {ctx}");
}

/// A user's exception handler.
pub(crate) type Handler = Rc<dyn Fn(&ExceptionContext<'_>)>;

impl Core {
    /// Reports to the exception handler (asyncio's `call_exception_handler`).
    /// Sets the exception handler (`None`: the default); the old one is dropped after the borrow.
    pub(crate) fn set_exception_handler(&self, handler: Option<Handler>) {
        let old = std::mem::replace(&mut *self.exception_handler.borrow_mut(), handler);
        drop(old);
    }

    pub(crate) fn report(&self, ctx: &ExceptionContext<'_>) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            None => default_exception_handler(ctx),
            Some(h) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(ctx))) {
                    default_exception_handler(&ExceptionContext {
                        message: "Unhandled error in exception handler",
                        task: None,
                        panic: Some(&*p),
                    });
                    default_exception_handler(ctx);
                }
            }
        }
    }

    /// Returns what the handler needs to know of a task.
    pub(crate) fn task_info(&self, id: u64) -> TaskInfo {
        TaskInfo { id: TaskId(id), name: self.task_name(id), spawned_at: self.spawn_location(id) }
    }

    /// Runs `f` (user code the loop calls: a waker, a destructor, a callback) and reports a panic
    /// as "Exception in callback" instead of unwinding into the loop.
    pub(crate) fn contain(&self, f: impl FnOnce()) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            self.report(&ExceptionContext { message: "Exception in callback", task: None, panic: Some(&*p) });
            drop_payload(p);
        }
    }
}

/// Drops a panic's payload where no unwind may escape (the loop's own code): if the payload's
/// destructor panics too, the payload of that panic is dropped the same way, and so on, up to
/// eight deep; a ninth is forgotten (leaked) rather than risk an endless chain. (`panic!`
/// payloads are strings, whose drop cannot panic; only a `panic_any` of a value with a
/// panicking destructor starts a chain.)
pub(crate) fn drop_payload(mut p: Box<dyn std::any::Any + Send>) {
    for _ in 0..8 {
        match catch_unwind(AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => p = again,
        }
    }
    std::mem::forget(p);
}

/// Runs `f`, a destructor the loop runs for a user (a callback's, a job's), and drops the
/// payload of a panic in it with [`drop_payload`]: nothing to report, nothing escapes.
pub(crate) fn ignore_panic(f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        drop_payload(p);
    }
}
