//! A single-threaded, asyncio-style event loop: one OS thread runs many tasks (1:N), the way
//! Python's asyncio does, over Rust futures.
//!
//! ```
//! use std::time::Duration;
//! use aioloop::ReturnWhen;
//!
//! async fn phase(i: u64) -> String {
//!     println!("in phase {i}");
//!     aioloop::sleep(Duration::from_secs(5 * i)).await;
//!     println!("done with phase {i}");
//!     format!("phase {i} result")
//! }
//!
//! let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
//! lp.run_until_complete(async {
//!     let phases: Vec<_> = (0..3).map(|i| aioloop::spawn(phase(i))).collect();
//!     let (done, pending) = aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
//!     println!("{} completed and {} pending", done.len(), pending.len());
//!     pending.iter().for_each(|t| { t.cancel(); });
//! });
//! ```
//!
//! # How the loop works
//!
//! An [`EventLoop`] holds four things, each in a file named after it:
//!
//! - the **ready queue** (`runtime.rs`, asyncio's `_ready`): task steps and callbacks to run;
//! - the **waiting set** (`task.rs`): every task lives in a slab slot; those not in the ready
//!   queue are parked until a waker, which is just the slot's number (`waker.rs`), names them;
//! - the **timer heap** (`timer.rs`, asyncio's `_scheduled`): a min-heap of deadlines, bucketed
//!   by millisecond;
//! - the **poller** (`reactor.rs`, asyncio's selector): epoll/kqueue, where the loop sleeps.
//!
//! One iteration, `run_once`, is asyncio's `_run_once`:
//!
//! ```text
//!   1 purge_timers      drop cancelled timers at the head of the heap
//!   2 compute_timeout   0 if anything is ready; else until the next deadline; else forever
//!   3 poll_io           sleep in the poller (virtual time: jump to the deadline instead)
//!   4 drain_inbox       tasks woken by other threads join the ready queue
//!   5 fire_due_timers   expired timers join the ready queue
//!   6 run_ready         run exactly the entries ready now; what they schedule runs next time
//! ```
//!
//! Cancelling a task means dropping its future the next time the loop would run it: its
//! destructors are its cleanup, and whoever awaits it gets [`TaskError::Cancelled`]. A task
//! that panics ends with [`TaskError::Panicked`]; the loop and the other tasks go on.
//!
//! # Reading the source
//!
//! | file | concept |
//! |---|---|
//! | `runtime.rs` | [`EventLoop`], the ready queue, `run_once` and its six phases |
//! | `task.rs` | task states, the waiting set's entries, running, cancelling and finishing a task |
//! | `join.rs` | [`Task`], the handle: awaiting a task, [`IntoTask`], [`Awaitable`] |
//! | `group.rs` | how [`wait`], [`gather`] and [`as_completed`] learn that their tasks finished |
//! | `waker.rs` | how a `Waker` becomes "push this task onto the ready queue" |
//! | `remote.rs` | the thread-safe half: the inbox for wakes from other threads |
//! | `timer.rs` | the timer heap: buckets of a millisecond, tombstones for cancelled timers |
//! | `time.rs` | [`sleep`], [`yield_now`]; the timer a future owns |
//! | `timeout.rs` | [`timeout`], [`timeout_at`], [`wait_for`] |
//! | `interval.rs` | [`interval`]: periodic ticks without drift, [`MissedTickBehavior`] |
//! | `handle.rs` | [`EventLoop::call_soon`] / [`call_later`](EventLoop::call_later) handles |
//! | `combinators.rs` | [`gather`], [`wait`], [`as_completed`], [`shield`] |
//! | `reactor.rs` | the poller |
//! | `clock.rs` | real and virtual time |
//! | `context.rs` | the running loop of this thread; [`spawn`], [`run`], [`current_task`] |
//! | `error.rs` | [`TaskError`], [`TimeoutError`] |
//! | `io.rs` | readiness: [`Async`] (a futures-io reader and writer), and `add_reader`/`add_writer` callbacks |
//! | `net/` | sockets: [`net::TcpListener`] (and its `incoming` stream), [`net::TcpStream`], [`net::UdpSocket`], Unix sockets; [`net::lookup_host`] |
//! | `threadsafe.rs` | [`LoopHandle`]: `call_soon_threadsafe`, `spawn` from other threads |
//! | `executor.rs` | [`run_in_executor`], [`to_thread`]: blocking work on a thread pool |
//! | `pool.rs` | the thread pools: the executor's, and the resolver's for name lookups |
//! | `fs/` | files on the executor pool: [`fs::read`], [`fs::write`], [`fs::File`]... |
//! | `sync/` | [`sync::Queue`] (and [`sync::LifoQueue`], [`sync::PriorityQueue`]), [`sync::Event`], [`sync::Lock`], [`sync::Semaphore`], [`sync::BoundedSemaphore`], [`sync::Condition`], [`sync::Barrier`]: one file each, the shared wait list in `mod.rs` |
//! | `task_group.rs` | [`TaskGroup`]: structured concurrency |
//! | `exception.rs` | the exception handler: what the loop reports; debug mode's slow steps |
//! | `dump.rs` | the task dump: [`EventLoop::tasks`], [`all_tasks`] |
//! | `trace.rs` | [`Trace`]: every task's life as Chrome trace JSON or an SVG timeline |
//! | `per_core.rs` | [`PerCore`]: one loop per core, each on its own thread |
//! | `hyper.rs` | `hyper::{HyperIo, HyperExecutor, HyperTimer}`: hyper 1.x on the loop (feature `hyper`) |
//! | `process/` | [`process::Command`], [`process::Child`]: child processes, their pipes, reaping (pidfd or SIGCHLD) |
//! | `signal/` | [`EventLoop::add_signal_handler`], [`signal::Signal`], [`signal::ctrl_c`]; the handler, the signal thread |
//!
//! docs/architecture.md walks through one iteration step by step.
//!
//! # asyncio names
//!
//! | asyncio | aioloop |
//! |---|---|
//! | `asyncio.run(main())` | [`run`]`(main())` |
//! | `loop.run_until_complete(f)` | [`EventLoop::run_until_complete`] |
//! | `asyncio.create_task(c)` | [`spawn`]`(c)` |
//! | `task.cancel()`, `task.done()` | [`Task::cancel`], [`Task::is_done`] |
//! | `asyncio.sleep(d)`, `sleep(0)` | [`sleep`]`(d)`, [`yield_now`]`()` |
//! | `asyncio.wait(fs, timeout, return_when)` | [`wait`]`(tasks, timeout, ReturnWhen::..)` |
//! | `asyncio.wait_for(aw, t)` | [`wait_for`]`(aw, t)` |
//! | `asyncio.timeout(d)` | [`timeout`]`(d, fut)` |
//! | `asyncio.gather(*aws)` | [`gather`]`(aws)` |
//! | `gather(..., return_exceptions=True)` | [`gather_settled`] |
//! | `asyncio.as_completed(fs)` | [`as_completed`] |
//! | `asyncio.shield(aw)` | [`shield`] |
//! | `loop.call_soon` / `call_later` / `call_at` | [`EventLoop::call_soon`] / [`call_later`](EventLoop::call_later) / [`call_at`](EventLoop::call_at) |
//! | `get_running_loop().call_soon(f)` | [`call_soon`]`(f)` (also [`call_later`], [`call_at`]) |
//! | `while True: await asyncio.sleep(p)` (drifts) | [`interval`]`(p)`, [`Interval::tick`] (no drift) |
//! | `CancelledError` | [`TaskError::Cancelled`] |
//! | `loop.add_reader(fd, cb)` | [`EventLoop::add_reader`] (also [`add_reader`] on the running loop) |
//! | `asyncio.open_connection`, `start_server` | [`net::TcpStream::connect`], [`net::TcpListener::bind`] |
//! | `start_server(cb)`: `cb` per connection | [`net::TcpListener::incoming`] (also [`net::UnixListener::incoming`]) |
//! | `reader.read(n)`, `writer.write(b)` | `futures_io::AsyncRead`/`AsyncWrite` of the streams and of [`Async`], with futures-lite's `AsyncReadExt`/`AsyncWriteExt` |
//! | `loop.call_soon_threadsafe(f)` | [`LoopHandle::call_soon_threadsafe`] |
//! | `run_coroutine_threadsafe(c, loop)` | [`LoopHandle::spawn`] |
//! | `loop.run_in_executor(None, f)` | [`run_in_executor`]`(f)` |
//! | `asyncio.to_thread(f)` | [`to_thread`]`(f)` |
//! | `aiofiles.open(p)`, `pathlib.Path.read_bytes` | [`fs::File::open`]`(p)`, [`fs::read`]`(p)` |
//! | `loop.getaddrinfo(host, port)` | [`net::lookup_host`]`((host, port))` |
//! | `asyncio.Queue`, `LifoQueue`, `PriorityQueue` | [`sync::Queue`], [`sync::LifoQueue`], [`sync::PriorityQueue`] |
//! | `asyncio.Event`, `Lock`, `Condition`, `Barrier` | [`sync::Event`], [`sync::Lock`], [`sync::Condition`], [`sync::Barrier`] |
//! | `asyncio.Semaphore`, `BoundedSemaphore` | [`sync::Semaphore`], [`sync::BoundedSemaphore`] |
//! | `asyncio.TaskGroup()` | [`TaskGroup`] |
//! | `loop.set_exception_handler(h)` | [`EventLoop::set_exception_handler`] |
//! | `asyncio.all_tasks()` | [`all_tasks`] |
//! | `PYTHONASYNCIODEBUG=1` | `AIOLOOP_DEBUG=1`, [`Builder::debug`] |
//! | `asyncio.create_subprocess_exec(prog, *args)` | [`process::Command::new`]`(prog).args(args).spawn()` |
//! | `proc.communicate()`, `proc.wait()`, `proc.kill()` | [`process::Child::wait_with_output`], [`process::Child::wait`], [`process::Child::kill`] |
//! | `loop.add_signal_handler(sig, cb)`, `remove_signal_handler` | [`EventLoop::add_signal_handler`], [`EventLoop::remove_signal_handler`] (also [`add_signal_handler`] on the running loop) |

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(target_pointer_width = "64"))]
compile_error!("aioloop packs a task key (loop, generation, slot) into a 64-bit waker pointer");

mod clock;
mod combinators;
mod context;
mod dump;
mod error;
mod exception;
mod executor;
pub mod fs;
mod group;
mod handle;
// `unsafe` for one call: hyper's `ReadBufCursor::advance`, which has no safe counterpart that
// avoids a copy (see the module's invariants and its `// SAFETY:` comment).
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
#[allow(unsafe_code)]
pub mod hyper;
mod interval;
mod io;
mod join;
pub mod loom_shim;
pub mod net;
mod per_core;
mod pool;
pub mod process;
#[allow(unsafe_code)]
mod reactor;
mod remote;
mod runtime;
// The signal handler calls `write(2)`, `sigaction(2)` and `raise(3)`, and registers through
// `signal_hook_registry::register`: unsafe FFI, each block with its `// SAFETY:`.
#[allow(unsafe_code)]
pub mod signal;
pub mod sync;
mod task;
mod task_group;
mod threadsafe;
mod time;
mod timeout;
mod timer;
mod trace;
#[allow(unsafe_code)]
mod waker;

pub use combinators::{
    as_completed, gather, gather_settled, shield, wait, AsCompleted, Gather, GatherSettled, ReturnWhen, Shield, Wait,
};
pub use context::{
    add_reader, add_writer, all_tasks, call_at, call_later, call_soon, current_task, now, remove_reader, remove_writer,
    run, spawn, try_spawn,
};
pub use dump::{TaskDump, TaskSnapshot, WaitingOn};
pub use error::{NoRunningLoop, TaskError, TimeoutError};
pub use exception::{default_exception_handler, ExceptionContext, TaskInfo};
pub use executor::{run_in_executor, to_thread, Blocking, ToThread};
pub use handle::{Handle, TimerHandle};
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use io::Async;
pub use join::{Awaitable, IntoTask, Join, JoinRef, Task};
pub use per_core::{Loops, PerCore};
pub use runtime::{Builder, EventLoop, Stats};
pub use signal::{add_signal_handler, remove_signal_handler};
pub use task::{TaskId, TaskState};
pub use task_group::{Failure, GroupError, GroupJoin, TaskGroup};
pub use threadsafe::{LoopClosed, LoopHandle, RemoteTask};
pub use time::{sleep, sleep_until, yield_now, Sleep, YieldNow};
pub use timeout::{timeout, timeout_at, wait_for, Timeout};
pub use trace::{Trace, TraceEvent, TraceKind};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
mod book;
