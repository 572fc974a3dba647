//! [`lookup_host`]: name resolution off the loop's thread (asyncio's `loop.getaddrinfo`).
//!
//! `getaddrinfo` blocks, and cannot be cancelled: a resolver that does not answer holds its
//! thread until it gives up (or forever). So a lookup runs on a thread of the *resolver pool*
//! (`pool.rs`), separate from the executor pool, and capped at
//! [`RESOLVER_THREADS`](crate::pool::RESOLVER_THREADS) threads: stuck lookups can starve other
//! lookups, never `to_thread`, `run_in_executor` or `aioloop::fs`.
//!
//! # Invariants
//! - An IP address (`"127.0.0.1:80"`, `"[::1]:80"`, a `SocketAddr`) never reaches a thread: its
//!   addresses are ready at once.
//! - Dropping the future abandons the lookup: if it has not started, it never calls the
//!   resolver; if it has, its thread finishes alone and its result is dropped. Nothing ever
//!   waits for a lookup thread: not a `timeout`, not the loop's close or drop. A stuck lookup
//!   thread is detached; it holds no descriptor of the loop (only a weak reference).
//! - Virtual time does not jump while a lookup is in flight *and* its future is alive (its
//!   answer may come at any real moment). An abandoned lookup no longer holds it, unlike an
//!   executor job: a lookup has no side effect anyone could wait for.
//! - The thread wakes the task before the lookup stops counting as in flight (the rule of
//!   `executor.rs`), so a loop on virtual time sees one or the other.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use super::addr::{Resolution, Resolve};
use super::ToSocketAddrs;
use crate::runtime::cross_thread::Remote;

/// A resolver: a host name and a port to their socket addresses, blocking. The default is the
/// standard library's (`getaddrinfo`); tests install slow or stuck ones with
/// [`set_resolver_hook`].
#[doc(hidden)]
pub type ResolverHook = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

thread_local! {
    /// The resolver lookups started on this thread use instead of `getaddrinfo` (tests only).
    static HOOK: RefCell<Option<ResolverHook>> = const { RefCell::new(None) };
}

/// Replaces the resolver for lookups started on this thread (`None`: the system's again) and
/// returns the previous hook. For tests: a slow or never-returning resolver, without DNS.
#[doc(hidden)]
pub fn set_resolver_hook(hook: Option<ResolverHook>) -> Option<ResolverHook> {
    HOOK.with(|h| std::mem::replace(&mut *h.borrow_mut(), hook))
}

/// Resolves a host name and port to socket addresses, on a thread of the resolver pool, while
/// the loop runs its other tasks (asyncio's `loop.getaddrinfo(host, port)`, tokio's
/// `lookup_host`).
///
/// `addr` is `"host:port"` (`"localhost:8080"`, `"[::1]:80"`), a `(host, port)` pair, or any
/// other [`ToSocketAddrs`]. An IP address never reaches a thread. The addresses come in the
/// resolver's order (the order [`TcpStream::connect`](super::TcpStream::connect) tries them).
///
/// # Cancellation
///
/// `getaddrinfo` cannot be interrupted. Dropping the future (a [`timeout`](crate::timeout)
/// that expires, a cancelled task) returns at once; the lookup, if it started, finishes alone
/// on its thread and its answer is dropped. Closing or dropping the loop never waits for a
/// lookup: a lookup thread stuck in the resolver is detached and left to it. At most
/// `RESOLVER_THREADS` (16) lookups run at once in the process; more wait for a free thread,
/// and one whose future is dropped while it waits is never run.
///
/// # Errors
///
/// `InvalidInput` for a missing or bad port (`"localhost"`, `"localhost:http"`); the
/// resolver's error, with the host name in the message (a name that does not exist, no
/// network); an error if no loop is running on this thread.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// aioloop::run(async {
///     let addrs = aioloop::net::lookup_host("localhost:8080").await.unwrap();
///     assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
///
///     // An IP address is parsed, not looked up.
///     let literal = aioloop::net::lookup_host("[::1]:80").await.unwrap();
///     assert_eq!(literal, ["[::1]:80".parse::<SocketAddr>().unwrap()]);
///
///     let err = aioloop::net::lookup_host("localhost").await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput); // no port
/// });
/// ```
pub async fn lookup_host(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    resolve(&addr).await
}

/// Returns the addresses of `addr`: at once for IP addresses, through a lookup for names.
pub(crate) async fn resolve(addr: &(impl Resolve + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match addr.resolution() {
        Resolution::Ready(addrs) => addrs,
        Resolution::Lookup(host, port) => Lookup::start(host, port)?.await,
    }
}

/// What a lookup's thread and its future share.
struct Slot {
    /// The answer, once the resolver gave it.
    outcome: Option<io::Result<Vec<SocketAddr>>>,
    /// The task to wake with it.
    waker: Option<Waker>,
    /// True while this lookup counts in its loop's `jobs_in_flight`; whoever clears it (the
    /// thread when done, the future when dropped) takes it off the count.
    counted: bool,
    /// Set when the future is dropped: a lookup not started yet is then skipped.
    abandoned: bool,
}

/// The future of one host-name lookup.
struct Lookup {
    slot: Arc<Mutex<Slot>>,
    /// The loop whose virtual time the lookup holds while it runs.
    remote: Arc<Remote>,
}

impl Lookup {
    /// Submits the lookup of `host` to the resolver pool.
    fn start(host: String, port: u16) -> io::Result<Lookup> {
        let remote = crate::executor::running_remote()?;
        let resolver = HOOK.with(|h| h.borrow().clone());
        let slot = Arc::new(Mutex::new(Slot { outcome: None, waker: None, counted: true, abandoned: false }));
        remote.job_started();
        let (job_slot, job_remote) = (slot.clone(), Arc::downgrade(&remote));
        crate::pool::resolver().submit(Box::new(move || {
            if job_slot.lock().unwrap_or_else(PoisonError::into_inner).abandoned {
                return;
            }
            let answer = catch_unwind(AssertUnwindSafe(|| match &resolver {
                Some(hook) => hook(&host, port),
                None => system_lookup(&host, port),
            }))
            .unwrap_or_else(|_| Err(io::Error::other("the resolver panicked")))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")));
            finish(&job_slot, &job_remote, answer);
        }));
        Ok(Lookup { slot, remote })
    }
}

/// The system's resolver: `getaddrinfo`, through the standard library.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

/// Hands the answer to the future, wakes its task, then stops counting the lookup as in flight.
fn finish(slot: &Mutex<Slot>, remote: &Weak<Remote>, answer: io::Result<Vec<SocketAddr>>) {
    let (waker, counted) = {
        let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
        s.outcome = Some(answer);
        (s.waker.take(), std::mem::take(&mut s.counted))
    };
    if let Some(w) = waker {
        w.wake();
    }
    if counted {
        if let Some(remote) = remote.upgrade() {
            remote.job_finished();
            // The loop may be waiting for this lookup to let virtual time move.
            remote.notify();
        }
    }
}

impl Future for Lookup {
    type Output = io::Result<Vec<SocketAddr>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outcome) = s.outcome.take() {
            return Poll::Ready(outcome);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        let counted = {
            let mut s = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            s.abandoned = true;
            s.waker = None;
            std::mem::take(&mut s.counted)
        };
        if counted {
            self.remote.job_finished();
        }
    }
}
