"""Measures asyncio tasks with the workloads of examples/threads_vs_tasks.rs, for chapter 1 of the
book (docs/src/processes-threads-coroutines.md).

    python3 asyncio_tasks.py                  # asyncio's own loop
    python3 asyncio_tasks.py --loop uvloop    # the same on uvloop (pip install uvloop)

Each workload runs in a fresh interpreter (this script, started again with --child), --runs times
(default 3); the medians are printed.

- spawn: create N tasks of an empty coroutine, then await each: time per task.
- parked: N tasks each await one asyncio.Event; once all are parked, the growth of VmRSS (and,
  in a separate run, of the memory tracemalloc counts) divided by N: bytes per parked task.
- sleeping: N tasks each await asyncio.sleep(0.5): VmRSS growth per task, and the wall time.
- pingpong: two tasks pass a number back and forth over two asyncio.Queue(1): time per hand-off.
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import time


def vm_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


async def noop():
    pass


async def spawn(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(noop()) for _ in range(n)]
    for t in tasks:
        await t
    return {"ns_per_task": (time.perf_counter() - t0) * 1e9 / n}


async def parked(n, use_tracemalloc):
    ev = asyncio.Event()
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = vm_rss_bytes()
    tasks = [asyncio.create_task(ev.wait()) for _ in range(n)]
    await asyncio.sleep(0)  # every task runs its first step and parks in ev.wait()
    after = tracemalloc.get_traced_memory()[0] if use_tracemalloc else vm_rss_bytes()
    ev.set()
    for t in tasks:
        await t
    key = "tracemalloc_bytes_per_task" if use_tracemalloc else "rss_bytes_per_task"
    return {key: (after - before) / n}


async def sleeping(n, seconds):
    before = vm_rss_bytes()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(asyncio.sleep(seconds)) for _ in range(n)]
    await asyncio.sleep(0)
    after = vm_rss_bytes()
    for t in tasks:
        await t
    return {"sleep_rss_bytes_per_task": (after - before) / n, "sleep_wall_s": time.perf_counter() - t0}


async def pingpong(round_trips):
    pings, pongs = asyncio.Queue(1), asyncio.Queue(1)

    async def pong():
        for _ in range(round_trips):
            v = await pings.get()
            await pongs.put(v + 1)

    other = asyncio.create_task(pong())
    t0 = time.perf_counter()
    v = 0
    for _ in range(round_trips):
        await pings.put(v)
        v = await pongs.get()
    elapsed = time.perf_counter() - t0
    await other
    assert v == round_trips
    return {"ns_per_handoff": elapsed * 1e9 / (2 * round_trips)}


WORKLOADS = {
    "spawn": lambda a: spawn(a.n),
    "parked": lambda a: parked(a.n, False),
    "parked-tracemalloc": lambda a: parked(a.n, True),
    "sleeping": lambda a: sleeping(a.n, 0.5),
    "pingpong": lambda a: pingpong(a.round_trips),
}


def run_child(args):
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    figures = run(WORKLOADS[args.child](args))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--n", type=int, default=100_000, help="tasks (default 100,000)")
    p.add_argument("--round-trips", type=int, default=100_000, help="ping-pong round trips")
    p.add_argument("--runs", type=int, default=3, help="fresh processes per workload (median)")
    p.add_argument("--child", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return run_child(args)
    print(f"{args.loop} on CPython {sys.version.split()[0]}: {args.n:,} tasks, median of {args.runs} runs")
    for name in WORKLOADS:
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--loop", args.loop, "--n", str(args.n),
                 "--round-trips", str(args.round_trips)],
                check=True, capture_output=True, text=True,
            ).stdout
            runs.append(dict((k, float(v)) for k, v in (kv.split("=") for kv in out.split())))
        for key in runs[0]:
            print(f"{name:20} {key:28} {statistics.median(r[key] for r in runs):12,.3f}")


if __name__ == "__main__":
    main()
