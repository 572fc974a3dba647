//! The errors a user of the loop can get back, as values.
//!
//! asyncio raises `CancelledError` and `TimeoutError`; aioloop returns them. A task's outcome
//! is `Result<T, TaskError>`: [`TaskError::Cancelled`] when the task was cancelled (its future
//! was dropped), [`TaskError::Panicked`] when its future panicked (the payload is kept so the
//! awaiter can inspect or re-raise it with [`std::panic::resume_unwind`]).

use std::any::Any;
use std::fmt;

/// Why a task produced no value: it was cancelled, or it panicked.
///
/// asyncio's `CancelledError` and "the task raised" mapped to Rust: a task that panics never
/// takes down the loop, its panic becomes this value in the awaiter's hands.
///
/// # Examples
///
/// ```
/// use aioloop::EventLoop;
///
/// let mut lp = EventLoop::new().unwrap();
/// let err = lp.run_until_complete(async {
///     let t = aioloop::spawn(async { panic!("boom") });
///     t.await.unwrap_err()
/// });
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "task panicked: boom");
/// ```
pub enum TaskError {
    /// The task was cancelled: its future was dropped before it completed.
    Cancelled,
    /// The task's future (or its destructor) panicked; this is the panic payload.
    Panicked(Box<dyn Any + Send + 'static>),
}

impl TaskError {
    /// Returns true if the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aioloop::TaskError::Cancelled.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// Returns true if the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aioloop::TaskError::Panicked(Box::new("oops"));
    /// assert!(e.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// Returns the panic payload, or gives the error back if it was a cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = aioloop::TaskError::Panicked(Box::new("oops"));
    /// let payload = e.try_into_panic().unwrap();
    /// assert_eq!(*payload.downcast::<&str>().unwrap(), "oops");
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, TaskError> {
        match self {
            TaskError::Panicked(p) => Ok(p),
            other => Err(other),
        }
    }
}

/// Returns the text of a panic payload when it is a `&str` or a `String`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string panic payload>"
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled => f.write_str("Cancelled"),
            TaskError::Panicked(p) => f.debug_tuple("Panicked").field(&panic_message(&**p)).finish(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled => f.write_str("task was cancelled"),
            TaskError::Panicked(p) => write!(f, "task panicked: {}", panic_message(&**p)),
        }
    }
}

impl std::error::Error for TaskError {}

/// The deadline of a [`wait_for`](crate::wait_for) or [`timeout`](crate::timeout) passed
/// before the inner future completed (asyncio's `TimeoutError`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let r = lp.run_until_complete(aioloop::timeout(Duration::from_secs(1), aioloop::sleep(Duration::from_secs(5))));
/// assert_eq!(r, Err(aioloop::TimeoutError));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutError;

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for TimeoutError {}

/// A function that needs the running loop ([`try_spawn`](crate::try_spawn)) was called
/// where no loop is running on this thread (asyncio's "no running event loop").
///
/// # Examples
///
/// ```
/// let err = aioloop::try_spawn(async {}).unwrap_err();
/// assert_eq!(err.to_string(), "no running event loop");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoRunningLoop;

impl fmt::Display for NoRunningLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no running event loop")
    }
}

impl std::error::Error for NoRunningLoop {}
