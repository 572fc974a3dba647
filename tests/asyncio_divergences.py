"""What CPython's asyncio does in two cases where aioloop used to differ (issue 12, section 6).
The tests that check aioloop against this output are named in each case; run with
`python3 tests/asyncio_divergences.py` (observed with CPython 3.11.7, output at the bottom).
"""
import asyncio, socket

def call_at_before_the_loop():
    # tests/event_loop.rs: call_at_before_the_loops_creation_runs_in_deadline_order_like_asyncio
    loop = asyncio.new_event_loop()
    t0 = loop.time()  # the loop was just created
    order = []
    whens = []
    for name, back in [("b", 2.0), ("a", 3.0), ("c", 1.0), ("now", 0.0)]:
        h = loop.call_at(t0 - back, order.append, name)
        whens.append((name, round(h.when() - t0, 9)))
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    print("call_at before the loop: when - t0 =", whens, "ran in order", order)

def remove_reader_in_its_own_callback():
    # tests/io.rs: remove_reader_inside_its_own_callback_returns_true_and_removes_it
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    results = []
    calls = []
    def reader():
        calls.append(1)
        results.append(loop.remove_reader(a.fileno()))
        results.append(loop.remove_reader(a.fileno()))
        loop.call_later(0.02, loop.stop)
    loop.add_reader(a.fileno(), reader)
    b.send(b"x")
    loop.run_forever()
    print("remove_reader inside its own callback:", results, "calls:", len(calls))
    results.clear()
    def writer():
        results.append(loop.remove_writer(a.fileno()))
        results.append(loop.remove_writer(a.fileno()))
        loop.stop()
    loop.add_writer(a.fileno(), writer)
    loop.run_forever()
    print("remove_writer inside its own callback:", results)
    loop.close()

def remove_writer_in_the_readers_callback():
    # tests/io.rs: remove_writer_inside_the_readers_callback_leaves_the_reader_registered
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    reads = []
    removed = []
    def reader():
        reads.append(1)
        if len(reads) == 1:
            removed.append(loop.remove_writer(a.fileno()))
        if len(reads) == 3:
            loop.stop()
    loop.add_reader(a.fileno(), reader)
    loop.add_writer(a.fileno(), lambda: None)
    b.send(b"x")
    loop.run_forever()
    print("remove_writer inside the reader's callback:", removed, "reader calls:", len(reads),
          "reader still registered:", loop.remove_reader(a.fileno()))
    loop.close()

call_at_before_the_loop()
remove_reader_in_its_own_callback()
remove_writer_in_the_readers_callback()

# Output (CPython 3.11.7):
# call_at before the loop: when - t0 = [('b', -2.0), ('a', -3.0), ('c', -1.0), ('now', 0.0)] ran in order ['a', 'b', 'c', 'now']
# remove_reader inside its own callback: [True, False] calls: 1
# remove_writer inside its own callback: [True, False]
# remove_writer inside the reader's callback: [True] reader calls: 3 reader still registered: True
