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
//! An [`EventLoop`] holds four things, each in a file named after it under `src/runtime/`:
//!
//! - the **ready queue** (`runtime/mod.rs`, entries in `runtime/ready.rs`; asyncio's `_ready`):
//!   task steps and callbacks to run;
//! - the **waiting set** (`runtime/task/`): every task is one allocation, its *cell*
//!   (`runtime/task/cell.rs`: header and future, in memory from the thread's cell arena,
//!   `runtime/task/arena.rs`), held by the task table; those not in the
//!   ready queue are parked until a waker, a number naming the loop, the slot and its generation
//!   (`runtime/waker.rs`), names them;
//! - the **timer heap** (`runtime/timer/`, asyncio's `_scheduled`): deadlines, earliest first;
//! - the **poller** (`runtime/reactor.rs`, asyncio's selector): epoll/kqueue, where the loop sleeps.
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
//!                       (a long batch looks ahead: `runtime/lookahead.rs`)
//! ```
//!
//! Cancelling a task means dropping its future the next time the loop would run it: its
//! destructors are its cleanup, and whoever awaits it gets [`TaskError::Cancelled`]. A task
//! that panics ends with [`TaskError::Panicked`]; the loop and the other tasks go on.
//!
//! # Reading the source: one task from spawn to finish
//!
//! The crate has two floors. The **public face** (files at the top of `src/`) is what a user
//! calls; the **engine** (`src/runtime/`) is the loop itself, and imports nothing from the face
//! except [`Task`]'s handle, which it hands out at spawn. Follow one task downwards:
//!
//! 1. `context.rs`: [`spawn`] finds this thread's running loop (`runtime/running.rs`) and hands
//!    it the future.
//! 2. `task.rs`: the [`Task`] handle you get back, a future of the task's outcome.
//! 3. `runtime/mod.rs`: `Core`, which holds the loop's parts, and `run_once` with its six phases.
//! 4. `runtime/task/steps.rs`: `spawn_at` makes the task's cell (`runtime/task/cell.rs`: its
//!    header and future in one allocation), inserts it and queues its first step; `run_task`
//!    polls the future in its cell (phase 6); `park` puts it back among the waiting; `finish_task`
//!    records the outcome and tells the joiner.
//! 5. `runtime/task/table.rs`: the task table, and `remove_task`, the one way out of it.
//! 6. `runtime/waker.rs`: how `Waker::wake` becomes "push this task onto the ready queue", on
//!    this thread or (through `runtime/cross_thread.rs`) from another.
//! 7. `runtime/timer/`, `runtime/readiness.rs`, `runtime/reactor.rs`: what a task waits on
//!    (a deadline, a socket) and how phases 1, 3 and 5 turn it back into a wake.
//!
//! **What still imports in both directions, and why.** Each part of the loop is a type in its
//! own file (the task table, the I/O sources, the timer heap, the cross-thread half), and
//! `Core` (`runtime/mod.rs`) holds one of each; the files that run a part together with the
//! ready queue add `Core` methods (`impl Core` in `runtime/task/steps.rs`,
//! `runtime/readiness.rs`, `runtime/callbacks.rs`, `runtime/dump.rs`, `runtime/exception.rs`),
//! so they and `runtime/mod.rs` name each other: one loop struct whose phases touch every part.
//! Two pairs need each other too: `runtime/cross_thread.rs` owns the poller
//! (`runtime/reactor.rs`), and a registration with the poller holds the cross-thread half so the
//! poller outlives every registered descriptor; a task's joiner may be a combinator's group
//! (`runtime/members.rs`), and a group counts its members' final statuses
//! (`runtime/task/mod.rs`). Everything else imports downwards only.
//!
//! | file | concept |
//! |---|---|
//! | `event_loop.rs` | [`EventLoop`] and its [`Builder`]: the public face of one loop |
//! | `context.rs` | the free functions on the running loop: [`spawn`], [`run`], [`current_task`], [`call_soon`]... |
//! | `task.rs` | [`Task`], the handle: awaiting a task (a `Future`), [`AbortHandle`], [`IntoTask`] |
//! | `callback_handle.rs` | [`Handle`], [`TimerHandle`]: the handles of `call_soon`/`call_later` |
//! | `time.rs` | [`sleep`], [`yield_now`]; the timer a future owns (a sleep's, a timeout's) |
//! | `timeout/` | [`timeout`], [`timeout_at`], [`timeout_with`], [`wait_for`]: the timeout and its lazy deadline in `mod.rs`, [`TimeoutHandle`] in `handle.rs` |
//! | `interval.rs` | [`interval`]: periodic ticks without drift, [`MissedTickBehavior`] |
//! | `combinators/` | [`gather`], [`wait`], [`as_completed`], [`shield`]: one file each, the member tracking in `mod.rs` |
//! | `task_group.rs` | [`TaskGroup`]: structured concurrency |
//! | `loop_handle.rs` | [`LoopHandle`]: `call_soon_threadsafe`, `spawn` from other threads |
//! | `error.rs` | [`TaskError`], [`TimeoutError`] |
//! | `io.rs` | [`Async`]: a non-blocking descriptor as a futures-io reader and writer |
//! | `net/` | sockets: [`net::TcpListener`] (and its `incoming` stream), [`net::TcpStream`], [`net::UdpSocket`], Unix sockets; [`net::lookup_host`] |
//! | `executor.rs`, `pool.rs` | [`run_in_executor`], [`to_thread`]: blocking work on the thread pools |
//! | `fs/` | files on the executor pool: [`fs::read`], [`fs::write`], [`fs::File`]... |
//! | `sync/` | [`sync::Queue`] (and [`sync::LifoQueue`], [`sync::PriorityQueue`]), [`sync::Event`], [`sync::Lock`], [`sync::Semaphore`], [`sync::BoundedSemaphore`], [`sync::Condition`], [`sync::Barrier`]: one file each, the shared wait list in `mod.rs`, a queue's item storage in `items.rs` |
//! | `process/` | [`process::Command`], [`process::Child`]: child processes, their pipes, reaping (pidfd or SIGCHLD) |
//! | `signal/` | [`EventLoop::add_signal_handler`], [`signal::Signal`], [`signal::ctrl_c`]; the handler, the signal thread |
//! | `trace/` | [`Trace`]: every task's life as text, Chrome trace JSON or an SVG timeline |
//! | `per_core.rs` | [`PerCore`]: one loop per core, each on its own thread |
//! | `hyper.rs` | `hyper::{HyperIo, HyperExecutor, HyperTimer}`: hyper 1.x on the loop (feature `hyper`) |
//! | **`runtime/`** | **the engine** |
//! | `runtime/mod.rs` | `Core`: the ready queue, the parts, `run_once` and its six phases |
//! | `runtime/ready.rs` | the ready queue's entries: a task step, a callback record, a fired sleep, 8 bytes each |
//! | `runtime/lookahead.rs` | phase 6's look-ahead: in a long batch, fetch the memory of the steps a few places ahead |
//! | `runtime/task/` | task states (`mod.rs`), the task cell, header and future in one allocation (`cell.rs`), the cell arena its memory comes from (`arena.rs`), spawn to finish (`steps.rs`), the task table (`table.rs`) and its slab of cell pointers (`slots.rs`) |
//! | `runtime/waker.rs` | task keys, and the `Waker` that carries one |
//! | `runtime/running.rs` | this thread's running loop (asyncio's `get_running_loop()`), and its iteration, which a timeout notes |
//! | `runtime/callbacks.rs` | the callback records the ready queue and the timer heap run (asyncio's `Handle`s) |
//! | `runtime/timer/` | the timer heap: the heap of buckets (`mod.rs`), a bucket's entries (`bucket.rs`), one entry's 20 bytes (`entry.rs`), the 4-ary heap of buckets (`quad_heap.rs`) |
//! | `runtime/readiness.rs` | the I/O sources: readiness, the tasks waiting on each, `add_reader` records |
//! | `runtime/reactor.rs` | the poller, and a descriptor's registration with it |
//! | `runtime/cross_thread.rs` | the thread-safe half: the inbox for wakes and callbacks from other threads |
//! | `runtime/members.rs` | how [`wait`], [`gather`] and [`as_completed`] learn that their tasks finished |
//! | `runtime/clock.rs` | real and virtual time |
//! | `runtime/timeout_clock.rs` | when the last few iterations that created a timeout ended: what a lazy timeout deadline counts from |
//! | `runtime/exception.rs` | the exception handler: what the loop reports; debug mode's slow steps |
//! | `runtime/dump.rs`, `runtime/recorder.rs` | the loop's view of itself: the task dump ([`EventLoop::tasks`]) and the trace's events |
//! | `runtime/stats.rs` | [`Stats`]: the loop's counters |
//!
//! The book's chapter 3 (docs/src/anatomy.md) walks through one iteration step by step.
//!
//! # asyncio names
//!
//! | asyncio | aioloop |
//! |---|---|
//! | `asyncio.run(main())` | [`run`]`(main())` |
//! | `loop.run_until_complete(f)` | [`EventLoop::run_until_complete`] |
//! | `asyncio.create_task(c)` | [`spawn`]`(c)` |
//! | `loop.set_task_factory(asyncio.eager_task_factory)`; `create_task(c)` | [`spawn_eager`]`(c)` (also [`LoopHandle::spawn_eager`]) |
//! | `task.cancel()`, `task.done()` | [`Task::cancel`], [`Task::is_done`] |
//! | `task.cancel()` from a callback or another task | [`Task::abort_handle`]: [`AbortHandle::cancel`], [`AbortHandle::is_done`] |
//! | dropping the last reference to a task | [`Task::detach`] (or dropping the [`Task`]): it keeps running |
//! | a task in a combinator | a [`Task`] is a `Future`: futures' `join_all`, `FuturesUnordered`, `select!` take it |
//! | `task.set_name(n)`, `get_name()` | [`Task::set_name`], [`Task::name`] (reports name the task by it) |
//! | `asyncio.sleep(d)`, `sleep(0)` | [`sleep`]`(d)`, [`yield_now`]`()` |
//! | `asyncio.wait(fs, timeout, return_when)` | [`wait`]`(tasks, timeout, ReturnWhen::..)` |
//! | `asyncio.wait_for(aw, t)` | [`wait_for`]`(aw, t)` |
//! | `asyncio.timeout(d)`, `timeout(None)` | [`timeout`]`(d, fut)`, `timeout(None, fut)` |
//! | `cm.when()`, `cm.reschedule(w)`, `cm.expired()` of `async with timeout(d) as cm` | [`timeout_with`]`(d, body)` (or [`Timeout::handle`]): [`TimeoutHandle::when`], [`TimeoutHandle::reschedule`], [`TimeoutHandle::expired`] |
//! | `asyncio.gather(*aws)` | [`gather`]`(tasks)` (spawn plain futures first: see [`IntoTask`]) |
//! | `gather(..., return_exceptions=True)` | [`gather_settled`] |
//! | `asyncio.as_completed(fs)`, `as_completed(fs, timeout=t)` | [`as_completed`], [`AsCompleted::with_timeout`] |
//! | `asyncio.shield(aw)` | [`shield`] |
//! | `loop.call_soon` / `call_later` / `call_at` | [`EventLoop::call_soon`] / [`call_later`](EventLoop::call_later) / [`call_at`](EventLoop::call_at) (a past `Instant` keeps deadline order) |
//! | `get_running_loop().call_soon(f)` | [`call_soon`]`(f)` (also [`call_later`], [`call_at`]) |
//! | `while True: await asyncio.sleep(p)` (drifts) | [`interval`]`(p)`, [`Interval::tick`] (no drift) |
//! | `CancelledError` | [`TaskError::Cancelled`] |
//! | "Task was destroyed but it is pending!" | the same report when a loop closes: the first 10 such tasks, then one line with how many more |
//! | `loop.add_reader(fd, cb)` | [`EventLoop::add_reader`] (also [`add_reader`] on the running loop) |
//! | `loop.remove_reader(fd)` | [`EventLoop::remove_reader`]: `true` from inside the reader's own callback too |
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
//! | `asyncio.TaskGroup()` | [`TaskGroup`] ([`TaskGroup::spawn`] on a finished group panics: asyncio's `RuntimeError`) |
//! | `loop.set_exception_handler(h)` | [`EventLoop::set_exception_handler`] |
//! | `asyncio.all_tasks()` | [`all_tasks`] |
//! | `asyncio.current_task()`, `.set_name(n)` | [`current_task`], [`set_current_task_name`]`(n)` |
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

mod callback_handle;
mod combinators;
mod context;
mod error;
mod event_loop;
mod executor;
pub mod fs;
// `unsafe` for one call: hyper's `ReadBufCursor::advance`, which has no safe counterpart that
// avoids a copy (see the module's invariants and its `// SAFETY:` comment).
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
#[allow(unsafe_code)]
pub mod hyper;
mod interval;
mod io;
pub mod loom_shim;
mod loop_handle;
pub mod net;
mod per_core;
mod pool;
pub mod process;
mod runtime;
// The signal handler calls `write(2)`, `sigaction(2)` and `raise(3)`, and registers through
// `signal_hook_registry::register`: unsafe FFI, each block with its `// SAFETY:`.
#[allow(unsafe_code)]
pub mod signal;
pub mod sync;
mod task;
mod task_group;
mod time;
mod timeout;
mod trace;

pub use callback_handle::{Handle, TimerHandle};
pub use combinators::{
    as_completed, gather, gather_settled, shield, wait, AsCompleted, AsCompletedTimeout, Gather, GatherSettled,
    ReturnWhen, Shield, Wait,
};
pub use context::{
    add_reader, add_writer, all_tasks, call_at, call_later, call_soon, current_task, now, remove_reader, remove_writer,
    run, set_current_task_name, spawn, spawn_eager, try_spawn,
};
pub use error::{NoRunningLoop, TaskError, TimeoutError};
pub use event_loop::{Builder, EventLoop};
pub use executor::{run_in_executor, to_thread, Blocking, ToThread};
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use io::Async;
pub use loop_handle::{LoopClosed, LoopHandle, RemoteTask};
pub use per_core::{Loops, PerCore};
pub use runtime::dump::{TaskDump, TaskSnapshot};
pub use runtime::exception::{default_exception_handler, ExceptionContext, TaskInfo};
pub use runtime::recorder::{TraceEvent, TraceKind};
pub use runtime::stats::Stats;
pub use runtime::task::WaitingOn;
pub use runtime::task::{TaskId, TaskState};
pub use signal::{add_signal_handler, remove_signal_handler};
pub use task::{AbortHandle, IntoTask, Task};
pub use task_group::{Failure, GroupError, GroupJoin, TaskGroup};
pub use time::{sleep, sleep_until, yield_now, Sleep, YieldNow};
pub use timeout::{timeout, timeout_at, timeout_with, wait_for, Timeout, TimeoutHandle};
pub use trace::Trace;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
mod book;
