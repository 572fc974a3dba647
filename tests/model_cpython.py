"""Runs the random programs of tests/model.rs on CPython's asyncio and compares every task's end
(outcome, virtual time, steps) and the completion order with what the model of tests/model.rs
predicted. Run by `cargo test --test model -- --ignored the_model_agrees_with_cpython`, which writes
the programs, one JSON object per line: {"program": [...], "expected": [...]}.

The loop is asyncio's own, with four test hooks: virtual time (the selector advances the clock
by the timeout instead of sleeping), timers ordered by (deadline, seq) (aioloop's tie order, one
of CPython's), an inbox drained after the poll like aioloop's phase 4 (for the wakes from other
threads), and tasks counting their steps. gather is CPython 3.12's (done children are processed
at once), the version aioloop follows. The scripts re-raise CancelledError whenever their own task
is being cancelled: aioloop's cancellation is a drop that cannot be caught.
"""
import asyncio, heapq, json, selectors, sys
from asyncio import tasks as _tasks, futures as _futures, events as _events

class Panic(Exception):
    pass

class SeqTimer(asyncio.TimerHandle):
    # Timers by (deadline, seq): aioloop's order for equal deadlines, one of CPython's.
    __slots__ = ('_seq',)
    def __lt__(self, o): return (self._when, self._seq) < (o._when, o._seq)
    def __le__(self, o): return (self._when, self._seq) <= (o._when, o._seq)
    def __gt__(self, o): return (self._when, self._seq) > (o._when, o._seq)
    def __ge__(self, o): return (self._when, self._seq) >= (o._when, o._seq)

class VSelector(selectors.EpollSelector):
    loop = None
    def select(self, timeout=None):
        lp = self.loop
        busy = lp._inbox_keys or lp._inbox_jobs
        if timeout is None and not busy:
            raise RuntimeError('deadlock: nothing ready, no timers')
        if timeout and not busy:
            lp._vt += timeout
        return super().select(0)

class VLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        sel = VSelector()
        self._vt = 0.0
        self._seq = 0
        self._inbox_keys = []
        self._inbox_jobs = []
        super().__init__(sel)
        sel.loop = self
    def time(self):
        return self._vt
    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        self._seq += 1
        timer = SeqTimer(when, callback, args, self, context)
        timer._seq = self._seq
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer
    def _process_events(self, event_list):
        # aioloop's phase 4: woken keys first (they schedule at once), then callbacks.
        keys, self._inbox_keys = self._inbox_keys, []
        jobs, self._inbox_jobs = self._inbox_jobs, []
        for k in keys:
            k()
        for j in jobs:
            self._ready.append(asyncio.Handle(j, (), self, None))
        super()._process_events(event_list)

class Run:
    def __init__(self, program):
        self.program = program
        self.log = []
        self.index = {}
        self.tasks = {}

class LTask(_tasks._PyTask):
    run = None
    def __init__(self, coro, *, loop=None, name=None, context=None):
        super().__init__(coro, loop=loop, name=name, context=context)
        self.steps = 0
        self.logged = False
    def _Task__step(self, exc=None):
        if self.done():
            return super()._Task__step(exc)
        super()._Task__step(exc)
        self.steps += 1
        if self.done() and not self.logged:
            self.logged = True
            r = LTask.run
            i = r.index[self]
            at = int(self.get_loop().time())
            if self.cancelled():
                r.log.append([i, ['cancelled'], at, self.steps - 1])
            elif self.exception() is not None:
                r.log.append([i, ['panicked'], at, self.steps])
            else:
                r.log.append([i, ['completed', self.result()], at, self.steps])

def cancelling():
    return asyncio.current_task().cancelling() > 0

async def guarded(aw):
    # The scripts' discipline: a task being cancelled lets CancelledError out at once (aioloop
    # drops it); a failure of what it awaited is a value.
    try:
        v = await aw
    except asyncio.CancelledError:
        if cancelling():
            raise
        return 'cancelled', None
    except Panic:
        if cancelling():
            raise asyncio.CancelledError()
        return 'panicked', None
    if cancelling():
        raise asyncio.CancelledError()
    return 'ok', v

def gather312(*children, return_exceptions=False):
    # CPython 3.12's gather for tasks: children already done are processed at once.
    loop = _events.get_running_loop()
    nfuts = len(children)
    nfinished = 0
    outer = None
    done_futs = []
    def _done_callback(fut):
        nonlocal nfinished
        nfinished += 1
        if outer is None or outer.done():
            if not fut.cancelled():
                fut.exception()
            return
        if not return_exceptions:
            if fut.cancelled():
                outer.set_exception(fut._make_cancelled_error())
                return
            exc = fut.exception()
            if exc is not None:
                outer.set_exception(exc)
                return
        if nfinished == nfuts:
            results = []
            for f in children:
                if f.cancelled():
                    res = asyncio.CancelledError('')
                else:
                    res = f.exception()
                    if res is None:
                        res = f.result()
                results.append(res)
            if outer._cancel_requested:
                outer.set_exception(fut._make_cancelled_error())
            else:
                outer.set_result(results)
    for f in children:
        if f.done():
            done_futs.append(f)
        else:
            f.add_done_callback(_done_callback)
    outer = _tasks._GatheringFuture(list(children), loop=loop)
    for f in done_futs:
        _done_callback(f)
    return outer

async def run_step(r, st, handles):
    loop = asyncio.get_running_loop()
    kind = st[0]
    if kind == 'sleep':
        await guarded(asyncio.sleep(st[1]))
    elif kind == 'yield':
        await guarded(asyncio.sleep(0))
    elif kind == 'await':
        t = handles[st[1]]
        how, _ = await guarded(t)
        return ['awaited', r.index[t] if how == 'ok' else how]
    elif kind == 'wait':
        _, ids, timeout, when, cancel_pending = st
        ts = [handles[i] for i in ids]
        rw = {'first': asyncio.FIRST_COMPLETED, 'first_panic': asyncio.FIRST_EXCEPTION, 'all': asyncio.ALL_COMPLETED}[when]
        how, v = await guarded(asyncio.wait(ts, timeout=timeout, return_when=rw))
        done, pending = v
        if cancel_pending:
            for t in ts:
                if t in pending:
                    t.cancel()
        return ['waited', [r.index[t] for t in ts if t in done]]
    elif kind == 'gather':
        _, ids, settled = st
        ts = [handles[i] for i in ids]
        how, v = await guarded(gather312(*ts, return_exceptions=settled))
        if not settled:
            return ['gathered', [r.index[t] for t in ts] if how == 'ok' else how]
        out = []
        for t, x in zip(ts, v):
            if isinstance(x, asyncio.CancelledError):
                out.append('cancelled')
            elif isinstance(x, Panic):
                out.append('panicked')
            else:
                out.append(r.index[t])
        return ['settled', out]
    elif kind == 'cancel':
        handles[st[1]].cancel()
    elif kind == 'thread_wake':
        if st[1] == 'waker' and st[3]:
            await guarded(asyncio.sleep(0))  # the local wake makes the remote ones redundant
        elif st[1] == 'waker':
            f = loop.create_future()
            for _ in range(st[2]):
                loop._inbox_keys.append(lambda: f.done() or f.set_result(None))
            await guarded(f)
        else:
            f = loop.create_future()
            loop._inbox_jobs.append(lambda: f.done() or f.set_result(None))
            await guarded(f)
    else:
        raise AssertionError(st)
    return None

async def script(r, i, handles):
    d = r.program[i]
    obs = []
    for st in d['steps']:
        o = await run_step(r, st, handles)
        if o is not None:
            obs.append(o)
    if d['panics']:
        raise Panic()
    return obs

async def main_task(r):
    loop = asyncio.get_running_loop()
    for st in r.program[0]['steps']:
        if st[0] == 'spawn':
            u = st[1]
            handles = {}
            for s in r.program[u]['steps']:
                if s[0] in ('await', 'cancel'):
                    handles[s[1]] = r.tasks[s[1]]
                elif s[0] in ('wait', 'gather'):
                    for x in s[1]:
                        handles[x] = r.tasks[x]
            t = loop.create_task(script(r, u, handles))
            r.index[t] = u
            r.tasks[u] = t
        elif st[0] == 'cancel':
            r.tasks[st[1]].cancel()
        elif st[0] == 'drop':
            pass
        else:
            await run_step(r, st, {})
    return []

def run_program(program):
    r = Run(program)
    LTask.run = r
    loop = VLoop()
    loop.set_task_factory(lambda lp, coro, **kw: LTask(coro, loop=lp, **kw))
    loop.set_exception_handler(lambda lp, ctx: None)
    main = LTask(main_task(r), loop=loop)
    r.index[main] = 0
    loop.run_until_complete(main)
    loop.close()
    return r.log

def main():
    bad = 0
    n = 0
    for line in open(sys.argv[1]):
        case = json.loads(line)
        n += 1
        got = run_program(case['program'])
        if got != case['expected']:
            bad += 1
            if bad <= 5:
                print('MISMATCH on', json.dumps(case['program']))
                print('  cpython:', json.dumps(got))
                print('  model:  ', json.dumps(case['expected']))
    print(f'{n - bad} passed, {bad} failed')
    sys.exit(1 if bad else 0)

main()
