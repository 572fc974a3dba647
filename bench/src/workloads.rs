//! The workloads, written once against the [`Rt`] trait and run on each runtime.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A workload: its name on the command line, what it measures, its unit.
pub struct Workload {
    pub name: &'static str,
    pub what: &'static str,
    pub unit: &'static str,
    /// The peak RSS is a figure of its own (the spawn and timer workloads).
    pub show_rss: bool,
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn",
        what: "1,000,000 detached trivial tasks, all spawned before any runs",
        unit: "ns/task",
        show_rss: true,
    },
    Workload {
        name: "spawn_eager",
        what: "1,000,000 detached trivial tasks spawned with spawn_eager, each finishing in its first step (aioloop only: the peers start tasks lazily)",
        unit: "ns/task",
        show_rss: false,
    },
    Workload {
        name: "spawn_join",
        what: "1,000,000 trivial tasks spawned with handles, then each handle awaited",
        unit: "ns/task",
        show_rss: false,
    },
    Workload {
        name: "yield",
        what: "1,000 tasks x 10,000 yield_now() (each runtime's own)",
        unit: "ns/yield",
        show_rss: false,
    },
    Workload {
        name: "pingpong_chan",
        what: "two tasks, 1,000,000 round trips through the runtime's own channel",
        unit: "ns/round trip",
        show_rss: false,
    },
    Workload {
        name: "pingpong_cell",
        what: "two tasks, 1,000,000 round trips through a shared Rc<Cell> and waker slot",
        unit: "ns/round trip",
        show_rss: false,
    },
    Workload {
        name: "sleeps",
        what: "1,000,000 tasks sleeping uniform [0, 1 s), fixed seed: time past 1 s until the last wakes",
        unit: "ms",
        show_rss: true,
    },
    Workload {
        name: "sleeps_4m",
        what: "4,000,000 tasks sleeping uniform [0, 1 s): does the cost per timer grow with the timers pending?",
        unit: "ms",
        show_rss: true,
    },
    Workload {
        name: "timer",
        what: "timer create + register (first poll) + cancel (drop), 1,000,000",
        unit: "ns/timer",
        show_rss: false,
    },
    Workload {
        name: "timeout_ready",
        what: "a timeout around an already-ready future, 1,000,000",
        unit: "ns/timeout",
        show_rss: false,
    },
    Workload {
        name: "idle",
        what: "1,000,000 tasks parked forever: RSS beyond the futures",
        unit: "bytes/task",
        show_rss: false,
    },
];

pub const RUNTIMES: &[&str] = &["aioloop", "tokio", "smol", "localpool", "floor"];

/// Peak resident set of this process, in KiB (VmHWM).
pub fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a workload needs of a runtime. Every method is generic: the runtime sees the workload's
/// own future types.
pub trait Rt {
    /// The runtime has timers.
    const TIMERS: bool = true;
    /// Runs `fut` to completion on a fresh runtime on this thread; spawns inside it go to it.
    fn block_on<F: Future + 'static>(fut: F) -> F::Output;
    /// Spawns a detached task.
    fn spawn<F: Future<Output = ()> + 'static>(fut: F);
    /// Spawns a task and returns a future of its output.
    fn spawn_join<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> impl Future<Output = T>;
    /// The runtime's own `yield_now`.
    fn yield_now() -> impl Future<Output = ()>;
    /// The runtime's own sleep (`None`: it has no timers).
    fn sleep(d: Duration) -> Option<impl Future<Output = ()>>;
    /// The runtime's own timeout around `fut`.
    fn timeout<F: Future>(d: Duration, fut: F) -> Option<impl Future<Output = Option<F::Output>>>;
    /// One round trip through the runtime's own channel, `n` times.
    fn pingpong_chan(n: u32) -> impl Future<Output = ()> + 'static;
}

pub struct Aioloop;
pub struct Tokio;
pub struct Smol;
pub struct LocalPool;

impl Rt for Aioloop {
    fn block_on<F: Future + 'static>(fut: F) -> F::Output {
        aioloop::EventLoop::new().unwrap().run_until_complete(fut)
    }
    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        drop(aioloop::spawn(fut));
    }
    fn spawn_join<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> impl Future<Output = T> {
        let t = aioloop::spawn(fut);
        async move { t.await.unwrap() }
    }
    fn yield_now() -> impl Future<Output = ()> {
        aioloop::yield_now()
    }
    fn sleep(d: Duration) -> Option<impl Future<Output = ()>> {
        Some(aioloop::sleep(d))
    }
    fn timeout<F: Future>(d: Duration, fut: F) -> Option<impl Future<Output = Option<F::Output>>> {
        let t = aioloop::timeout(d, fut);
        Some(async move { t.await.ok() })
    }
    fn pingpong_chan(n: u32) -> impl Future<Output = ()> + 'static {
        let (ping, pong) = (aioloop::sync::Queue::new(0), aioloop::sync::Queue::new(0));
        let (p2, q2) = (ping.clone(), pong.clone());
        Self::spawn(async move {
            for _ in 0..n {
                let v: u32 = p2.get().await;
                q2.put(v).await;
            }
        });
        async move {
            for i in 0..n {
                ping.put(i).await;
                black_box(pong.get().await);
            }
        }
    }
}

impl Rt for Tokio {
    fn block_on<F: Future + 'static>(fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, fut)
    }
    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        drop(tokio::task::spawn_local(fut));
    }
    fn spawn_join<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> impl Future<Output = T> {
        let t = tokio::task::spawn_local(fut);
        async move { t.await.unwrap() }
    }
    fn yield_now() -> impl Future<Output = ()> {
        tokio::task::yield_now()
    }
    fn sleep(d: Duration) -> Option<impl Future<Output = ()>> {
        Some(tokio::time::sleep(d))
    }
    fn timeout<F: Future>(d: Duration, fut: F) -> Option<impl Future<Output = Option<F::Output>>> {
        let t = tokio::time::timeout(d, fut);
        Some(async move { t.await.ok() })
    }
    fn pingpong_chan(n: u32) -> impl Future<Output = ()> + 'static {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        Self::spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).unwrap();
            }
        });
        async move {
            for i in 0..n {
                ping_tx.send(i).unwrap();
                black_box(pong_rx.recv().await);
            }
        }
    }
}

thread_local! {
    /// smol's executor for this thread (leaked: one per measurement process).
    static SMOL: &'static async_executor::LocalExecutor<'static> = Box::leak(Box::new(async_executor::LocalExecutor::new()));
    /// LocalPool's spawner for this thread, set by `block_on`.
    static POOL: RefCell<Option<futures::executor::LocalSpawner>> = const { RefCell::new(None) };
}

impl Rt for Smol {
    fn block_on<F: Future + 'static>(fut: F) -> F::Output {
        let ex = SMOL.with(|ex| *ex);
        async_io::block_on(ex.run(fut))
    }
    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        SMOL.with(|ex| ex.spawn(fut).detach());
    }
    fn spawn_join<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> impl Future<Output = T> {
        SMOL.with(|ex| ex.spawn(fut))
    }
    fn yield_now() -> impl Future<Output = ()> {
        futures_lite::future::yield_now()
    }
    fn sleep(d: Duration) -> Option<impl Future<Output = ()>> {
        let t = async_io::Timer::after(d);
        Some(async move {
            t.await;
        })
    }
    fn timeout<F: Future>(d: Duration, fut: F) -> Option<impl Future<Output = Option<F::Output>>> {
        // The timer is created (its deadline computed) up front, as tokio's and aioloop's are;
        // like theirs, it is registered only if the future is not ready at the first poll.
        let timer = async_io::Timer::after(d);
        Some(futures_lite::future::or(async move { Some(fut.await) }, async move {
            timer.await;
            None
        }))
    }
    fn pingpong_chan(n: u32) -> impl Future<Output = ()> + 'static {
        let (ping_tx, ping_rx) = async_channel::unbounded::<u32>();
        let (pong_tx, pong_rx) = async_channel::unbounded::<u32>();
        Self::spawn(async move {
            while let Ok(v) = ping_rx.recv().await {
                pong_tx.send(v).await.unwrap();
            }
        });
        async move {
            for i in 0..n {
                ping_tx.send(i).await.unwrap();
                black_box(pong_rx.recv().await.unwrap());
            }
        }
    }
}

impl Rt for LocalPool {
    const TIMERS: bool = false;
    fn block_on<F: Future + 'static>(fut: F) -> F::Output {
        let mut pool = futures::executor::LocalPool::new();
        POOL.with(|p| *p.borrow_mut() = Some(pool.spawner()));
        pool.run_until(fut)
    }
    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        POOL.with(|p| futures::task::LocalSpawnExt::spawn_local(p.borrow().as_ref().unwrap(), fut).unwrap());
    }
    fn spawn_join<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> impl Future<Output = T> {
        POOL.with(|p| futures::task::LocalSpawnExt::spawn_local_with_handle(p.borrow().as_ref().unwrap(), fut).unwrap())
    }
    fn yield_now() -> impl Future<Output = ()> {
        futures_lite::future::yield_now()
    }
    fn sleep(_: Duration) -> Option<impl Future<Output = ()>> {
        None::<std::future::Ready<()>>
    }
    fn timeout<F: Future>(_: Duration, _: F) -> Option<impl Future<Output = Option<F::Output>>> {
        None::<std::future::Ready<Option<F::Output>>>
    }
    fn pingpong_chan(n: u32) -> impl Future<Output = ()> + 'static {
        use futures::{SinkExt, StreamExt};
        let (mut ping_tx, mut ping_rx) = futures::channel::mpsc::unbounded::<u32>();
        let (mut pong_tx, mut pong_rx) = futures::channel::mpsc::unbounded::<u32>();
        Self::spawn(async move {
            while let Some(v) = ping_rx.next().await {
                pong_tx.send(v).await.unwrap();
            }
        });
        async move {
            for i in 0..n {
                ping_tx.send(i).await.unwrap();
                black_box(pong_rx.next().await);
            }
        }
    }
}

/// Runs `workload` on `runtime`; `NaN` when it does not apply (no timers in LocalPool, no floor).
pub fn measure(workload: &str, runtime: &str) -> f64 {
    match runtime {
        "aioloop" if workload == "spawn_eager" => spawn_eager(),
        "aioloop" => run::<Aioloop>(workload),
        "tokio" => run::<Tokio>(workload),
        "smol" => run::<Smol>(workload),
        "localpool" => run::<LocalPool>(workload),
        "floor" => floor(workload),
        _ => f64::NAN,
    }
}

fn run<R: Rt>(workload: &str) -> f64 {
    match workload {
        "spawn" => spawn::<R>(),
        "spawn_join" => spawn_join::<R>(),
        "yield" => yields::<R>(),
        "pingpong_chan" => per(N, R::block_on(async { R::spawn_join(timed(R::pingpong_chan(N))).await })),
        "pingpong_cell" => pingpong_cell::<R>(),
        "sleeps" => sleeps::<R>(N),
        "sleeps_4m" => sleeps::<R>(4 * N),
        "timer" => timer::<R>(),
        "timeout_ready" => timeout_ready::<R>(),
        "idle" => idle::<R>(),
        _ => f64::NAN,
    }
}

/// Awaits `fut` and returns how long it took.
async fn timed<F: Future<Output = ()>>(fut: F) -> Duration {
    let t = Instant::now();
    fut.await;
    t.elapsed()
}

fn per(n: u32, d: Duration) -> f64 {
    d.as_nanos() as f64 / f64::from(n)
}

const N: u32 = 1_000_000;

fn spawn<R: Rt>() -> f64 {
    R::block_on(async {
        let t = Instant::now();
        let done = Rc::new(Cell::new(0u32));
        for _ in 0..N {
            let done = done.clone();
            R::spawn(async move { done.set(done.get() + 1) });
        }
        // The tasks run in spawn order on every runtime here; yield until the last one ran.
        while done.get() < N {
            R::yield_now().await;
        }
        per(N, t.elapsed())
    })
}

/// The `spawn` workload's tasks, started eagerly: each runs (and finishes) inside
/// `spawn_eager`, so none goes through the ready queue. Compare with `spawn` on aioloop.
fn spawn_eager() -> f64 {
    Aioloop::block_on(async {
        let t = Instant::now();
        let done = Rc::new(Cell::new(0u32));
        for _ in 0..N {
            let done = done.clone();
            drop(aioloop::spawn_eager(async move { done.set(done.get() + 1) }));
        }
        assert_eq!(done.get(), N, "every task finished in its first step");
        per(N, t.elapsed())
    })
}

fn spawn_join<R: Rt>() -> f64 {
    R::block_on(async {
        let t = Instant::now();
        let handles: Vec<_> = (0..N).map(|i| R::spawn_join(async move { i })).collect();
        let mut sum = 0u64;
        for h in handles {
            sum += u64::from(h.await);
        }
        black_box(sum);
        per(N, t.elapsed())
    })
}

fn yields<R: Rt>() -> f64 {
    const TASKS: u32 = 1_000;
    const YIELDS: u32 = 10_000;
    R::block_on(async {
        let left = Rc::new(Cell::new(TASKS));
        let t = Instant::now();
        for _ in 0..TASKS {
            let left = left.clone();
            R::spawn(async move {
                for _ in 0..YIELDS {
                    R::yield_now().await;
                }
                left.set(left.get() - 1);
            });
        }
        while left.get() > 0 {
            R::yield_now().await;
        }
        per(TASKS * YIELDS, t.elapsed())
    })
}

/// A one-value mailbox: the sender stores the value and wakes the receiver's stored waker.
#[derive(Default)]
struct Slot {
    value: Cell<Option<u32>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    fn put(&self, v: u32) {
        self.value.set(Some(v));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn take(&self) -> impl Future<Output = u32> + '_ {
        std::future::poll_fn(move |cx| match self.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                let mut slot = self.waker.borrow_mut();
                match slot.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        })
    }
}

fn pingpong_cell<R: Rt>() -> f64 {
    R::block_on(async {
        let (ping, pong) = (Rc::new(Slot::default()), Rc::new(Slot::default()));
        let (p2, q2) = (ping.clone(), pong.clone());
        R::spawn(async move {
            for _ in 0..N {
                let v = p2.take().await;
                q2.put(v);
            }
        });
        // Both sides are spawned tasks (the root future of a `block_on` is special on some
        // runtimes: smol wakes it through a thread parker).
        let driver = R::spawn_join(timed(async move {
            for i in 0..N {
                ping.put(i);
                black_box(pong.take().await);
            }
        }));
        per(N, driver.await)
    })
}

/// xorshift64*: a fixed-seed source of sleep durations, the same on every runtime.
fn durations(n: u32) -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            Duration::from_nanos(r % 1_000_000_000)
        })
        .collect()
}

fn sleeps<R: Rt>(n: u32) -> f64 {
    if !R::TIMERS {
        return f64::NAN;
    }
    let ds = durations(n);
    R::block_on(async move {
        let left = Rc::new(Cell::new(n));
        let t = Instant::now();
        let last = Rc::new(Cell::new(t));
        for d in ds {
            let (left, last) = (left.clone(), last.clone());
            R::spawn(async move {
                R::sleep(d).unwrap().await;
                left.set(left.get() - 1);
                last.set(Instant::now());
            });
        }
        // Wait on the runtime's own timers for the 1 s to pass, then yield until all woke.
        R::sleep(Duration::from_secs(1)).unwrap().await;
        while left.get() > 0 {
            R::yield_now().await;
        }
        // How long after start + 1 s the last sleeper woke (spawning them counts: it is part of
        // what the runtime must do before the first timer can fire).
        (last.get().duration_since(t).as_secs_f64() - 1.0) * 1e3
    })
}

/// Polls a future once (registering it), then drops it (cancelling it).
fn poll_once_and_drop<F: Future>(f: F, cx: &mut Context<'_>) {
    let mut f = std::pin::pin!(f);
    let _ = black_box(f.as_mut().poll(cx));
}

fn timer<R: Rt>() -> f64 {
    if !R::TIMERS {
        return f64::NAN;
    }
    R::block_on(std::future::poll_fn(|cx| {
        let t = Instant::now();
        for i in 0..N {
            let d = Duration::from_secs(10 + u64::from(i % 100));
            poll_once_and_drop(R::sleep(d).unwrap(), cx);
        }
        Poll::Ready(per(N, t.elapsed()))
    }))
}

fn timeout_ready<R: Rt>() -> f64 {
    if !R::TIMERS {
        return f64::NAN;
    }
    R::block_on(async {
        let t = Instant::now();
        for i in 0..N {
            let out = R::timeout(Duration::from_secs(10), std::future::ready(i)).unwrap().await;
            black_box(out);
        }
        per(N, t.elapsed())
    })
}

fn idle<R: Rt>() -> f64 {
    R::block_on(async {
        let before = rss_kib();
        for _ in 0..N {
            R::spawn(std::future::pending::<()>());
        }
        // Let every task be polled once and park.
        for _ in 0..3 {
            R::yield_now().await;
        }
        let bytes = (rss_kib() - before) as f64 * 1024.0 / f64::from(N);
        // Exit here: tearing down a million tasks is not part of the figure.
        println!("{bytes:.1} {}", peak_rss_kib());
        std::process::exit(0)
    })
}

fn floor(workload: &str) -> f64 {
    match workload {
        "spawn" => {
            // What any executor must do: box every future (all before any runs, as in the
            // workload), poll each once, free them.
            let done = Rc::new(Cell::new(0u32));
            let t = Instant::now();
            let mut cx = Context::from_waker(Waker::noop());
            let mut all: Vec<Pin<Box<dyn Future<Output = ()>>>> = (0..N)
                .map(|_| {
                    let done = done.clone();
                    Box::pin(async move { done.set(done.get() + 1) }) as _
                })
                .collect();
            for f in &mut all {
                let _ = black_box(f.as_mut().poll(&mut cx));
            }
            drop(all);
            per(N, t.elapsed())
        }
        "idle" => {
            // A boxed future in a Vec and nothing else: the allocator's own overhead.
            let before = rss_kib();
            let v: Vec<Pin<Box<dyn Future<Output = ()>>>> =
                (0..N).map(|_| Box::pin(std::future::pending()) as _).collect();
            let bytes = (rss_kib() - before) as f64 * 1024.0 / f64::from(N);
            black_box(v);
            bytes
        }
        _ => f64::NAN,
    }
}
