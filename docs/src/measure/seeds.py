"""Runs each Python program of the seeds beside its Rust port and shows both outputs side by side,
for the examples chapter of the book (docs/src/examples.md).

    python3 docs/src/measure/seeds.py              # every program, on real time (about 45 s)
    python3 docs/src/measure/seeds.py --scale 0.01 # sleeps 100 times shorter (costs then read 0s)
    python3 docs/src/measure/seeds.py workers      # only the programs whose name contains "workers"

The Python programs are the seeds' own, copied without their comments; a line marked `# FIX` is
the only change. Seeds 000 and 001 pass coroutines to `asyncio.wait`, which Python 3.11 refuses
("Passing coroutines is forbidden, use tasks explicitly."), so they are wrapped in tasks, which is
what Python 3.10 and older did for them. Seed 002's crawler fetches two sites of the internet,
which this machine cannot reach: here its urls point at a local server that answers `/page/N`
after N x 100 ms, like the one `examples/http_crawl.rs` runs (it needs the `requests` package).

Each port runs as `cargo run --quiet --example NAME -- --fast` (virtual time: the same costs, at
once; `http_crawl` and `producer_consumer` run as they are), and the part of its output that ports
the program (the lines after its k-th `---` header) is shown. Between the columns, `=` marks equal
lines, `|` two lines that differ, `<` a line only Python prints and `>` a line only the port
prints.
"""

import argparse
import difflib
import http.server
import pathlib
import subprocess
import sys
import threading
import time
import unicodedata

REPO = pathlib.Path(__file__).resolve().parents[3]

# Seed 000: the `phase` programs (PyMOTW's asyncio.wait examples, reworded by the seed).
PHASE_HEAD = """import asyncio
from datetime import datetime
{threading}a = datetime.now()
async def phase(i):
{thread_line}    print('in phase {{}}, waiteing {{}}s'.format(i,5 * i))
    await asyncio.sleep(5 * i)
    print("down %d"%i)
    return 'phase {{}} result'.format(i)


async def main(num_phases):
{main_thread_line}    print('starting main')
    phases = [
        asyncio.ensure_future(phase(i))  # FIX: was `phase(i)`, a coroutine
        for i in range(num_phases)
    ]
    print('waiting  for phases to complete')
"""
PHASE_WAIT_ALL = """    await asyncio.wait(phases)
    print('exiting main')


event_loop = asyncio.get_event_loop()
event_loop.run_until_complete(main(3))
"""
PHASE_WAIT_TIMEOUT = """    completed, pending = await asyncio.wait(phases, timeout=6)
    print('{{}} completed and {{}} pending'.format(
        len(completed), len(pending),
    ))
    if pending:
        print('canceling tasks')
        for t in pending:
            t.cancel()
    print('exiting main')


event_loop = asyncio.get_event_loop()
{main_thread_print}try:
    event_loop.run_until_complete(main(3))
finally:
    event_loop.close()
"""
PHASE_TAIL = """
b = datetime.now()
durn = (b-a).seconds
print("cost %ds"%durn)
"""
NO_THREADS = dict(threading="", thread_line="", main_thread_line="", main_thread_print="")
THREADS = dict(
    threading="import threading\n",
    thread_line='    print("子协程的线程id",threading.currentThread())\n',
    main_thread_line='    print("主协程的线程id",threading.currentThread())\n',
    main_thread_print='print("主线程id",threading.currentThread())\n',
)

USER_INFO = """import asyncio
async def get_channel_user_info(url):
    print("request start ", url)
    await asyncio.sleep(1)
    print("request succ ", url)

def main():
    loop = asyncio.get_event_loop()
    tasks = [get_channel_user_info("baidu"), get_channel_user_info("bytedance"), get_channel_user_info("weixin")]
    tasks = [loop.create_task(t) for t in tasks]  # FIX: asyncio.wait takes tasks
    loop.run_until_complete(asyncio.wait(tasks))
    loop.close()

if __name__ == '__main__':
    main()
"""

CRAWLER = """import asyncio
import requests
import time

async def run(url):
    print("开始执行爬虫...",url)
    print("开始执行时间：", time.time())
    loop = asyncio.get_event_loop()
    response = await loop.run_in_executor(None, requests.get, url)
    print(response.url)
    print("结束执行时间：", time.time())

url_list = ["https://www.baidu.com","https://mengsec.com"]
url_list = [BASE + "/page/%d" % n for n in (1, 2, 3)]  # FIX: no internet here

tasks = [asyncio.ensure_future(run(url)) for url in url_list]
loop = asyncio.get_event_loop()
loop.run_until_complete(asyncio.wait(tasks))
"""

PRODUCER_CONSUMER = """def consumer():
    r = ''
    while True:
        n = yield r
        if not n:
            return
        print('[CONSUMER] Consuming %s...' % n)
        r = '200 OK'

def produce(c):
    c.send(None)
    n = 0
    while n < 5:
        n = n + 1
        print('[PRODUCER] Producing %s...' % n)
        r = c.send(n)
        print('[PRODUCER] Consumer return: %s' % r)
    c.close()

c = consumer()
produce(c)
"""

CRAWL_SYNC = """import time

def crawl_page(url):
    print('crawling {}'.format(url))
    sleep_time = int(url.split('_')[-1])
    time.sleep(sleep_time)
    print('OK {}'.format(url))


def main(urls):
    for url in urls:
        crawl_page(url)

begin_time = time.time()
main(['url_1', 'url_2', 'url_3', 'url_4'])
end_time = time.time()
run_time = end_time - begin_time
print("程序耗时{}s".format(run_time))
"""
CRAWL_HEAD = """import time
import asyncio

async def crawl_page(url):
    print('crawling {}'.format(url))
    sleep_time = int(url.split('_')[-1])
    await asyncio.sleep(sleep_time)
    print('OK {}'.format(url))

async def main(urls):
    tasks = [asyncio.create_task(crawl_page(url)) for url in urls]
"""
CRAWL_TAIL = """
begin_time = time.time()
asyncio.run(main(['url_1', 'url_2', 'url_3', 'url_4']))
end_time = time.time()
run_time = end_time - begin_time
print("程序耗时{}s".format(run_time))
"""

WORKERS = """import time
import asyncio

async def worker_1():
    print('worker_1 start')
    await asyncio.sleep(1)
    print('worker_1 done')

async def worker_2():
    print('worker_2 start')
    await asyncio.sleep(2)
    print('worker_2 done')

async def main():
    task1 = asyncio.create_task(worker_1())
    task2 = asyncio.create_task(worker_2())
    print('before await')
    await task1
    print('awaited worker_1')
    await task2
    print('awaited worker_2')

begin_time = time.time()
asyncio.run(main())
end_time = time.time()
run_time = end_time - begin_time
print("程序耗时{}s".format(run_time))
"""

# (name, seed, Python source, port, part of the port's output: 0 = all, k = after the k-th
# `---` header).
PROGRAMS = [
    ("phase: wait(phases)", "000", PHASE_HEAD.format(**NO_THREADS) + PHASE_WAIT_ALL + PHASE_TAIL, "phase", 1),
    (
        "phase: wait(phases, timeout=6)",
        "000",
        PHASE_HEAD.format(**NO_THREADS) + PHASE_WAIT_TIMEOUT.format(**NO_THREADS) + PHASE_TAIL,
        "phase",
        2,
    ),
    (
        "phase: threading.currentThread()",
        "000",
        PHASE_HEAD.format(**THREADS) + PHASE_WAIT_TIMEOUT.format(**THREADS) + PHASE_TAIL,
        "phase",
        2,
    ),
    ("user_info: asyncio.wait(tasks)", "001", USER_INFO, "user_info", 1),
    ("http_crawl: run_in_executor(None, requests.get, url)", "002", CRAWLER, "http_crawl", 3),
    ("producer_consumer: generators", "004", PRODUCER_CONSUMER, "producer_consumer", 0),
    ("crawl: time.sleep", "004", CRAWL_SYNC, "crawl", 1),
    (
        "crawl: create_task, then await each",
        "004",
        CRAWL_HEAD + "    for task in tasks:\n        await task\n" + CRAWL_TAIL,
        "crawl",
        2,
    ),
    ("crawl: create_task, then gather", "004", CRAWL_HEAD + "    await asyncio.gather(*tasks)\n" + CRAWL_TAIL, "crawl", 3),
    ("workers: worker_1, worker_2", "004", WORKERS, "workers", 0),
]

# Shortens every sleep and `wait` timeout of a Python program by --scale.
SCALE_PRELUDE = """import asyncio as _a, time as _t
_S = {scale}
_sleep, _tsleep, _wait = _a.sleep, _t.sleep, _a.wait
async def _scaled(d, *args, **kw):
    return await _sleep(d * _S, *args, **kw)
async def _scaled_wait(fs, timeout=None, **kw):
    return await _wait(fs, timeout=None if timeout is None else timeout * _S, **kw)
_a.sleep, _a.wait = _scaled, _scaled_wait
_t.sleep = lambda d: _tsleep(d * _S)
"""


class Pages(http.server.BaseHTTPRequestHandler):
    """Answers /page/N after N x 100 ms, like the server of examples/http_crawl.rs."""

    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[-1])
        time.sleep(n * 0.1)
        body = ("page %d" % n).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def run_python(source, scale, base):
    """Runs a program; returns its stdout lines and the first line of each stderr message."""
    if scale != 1.0:
        source = SCALE_PRELUDE.format(scale=scale) + source
    source = "BASE = %r\n" % base + source
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    stderr = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith(" ")]
    return out.stdout.splitlines(), stderr


PORTS = {}


def run_port(example, part):
    """Runs an example once (later calls reuse its output); returns the lines of one part."""
    if example not in PORTS:
        args = [] if example in ("http_crawl", "producer_consumer") else ["--", "--fast"]
        cmd = ["cargo", "run", "--quiet", "--example", example] + args
        PORTS[example] = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600).stdout.splitlines()
    lines = PORTS[example]
    if part == 0:
        return lines
    parts = []
    for line in lines:
        if line.startswith("--- "):
            parts.append([])
        elif parts:
            parts[-1].append(line)
    return parts[part - 1] if part <= len(parts) else []


def width(text):
    """Returns the columns `text` takes on a terminal (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fit(text, columns):
    """Cuts `text` to `columns` and pads it to exactly that."""
    while width(text) > columns:
        text = text[:-2] + "…"
    return text + " " * (columns - width(text))


def align(left, right):
    """Pairs the lines of two outputs: the equal lines, then within each stretch that differs
    the most similar lines (a small alignment by similarity), the others alone.
    Yields (mark, left line, right line)."""
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        a, b = left[i1:i2], right[j1:j2]
        if tag == "equal":
            yield from (("=", x, x) for x in a)
            continue
        sim = [[difflib.SequenceMatcher(a=x, b=y).ratio() for y in b] for x in a]
        # best[i][j]: the largest total similarity of a pairing of a[i:] with b[j:].
        best = [[0.0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a) - 1, -1, -1):
            for j in range(len(b) - 1, -1, -1):
                pair = sim[i][j] + best[i + 1][j + 1] if sim[i][j] >= 0.4 else -1.0
                best[i][j] = max(pair, best[i + 1][j], best[i][j + 1])
        i = j = 0
        while i < len(a) or j < len(b):
            if i < len(a) and j < len(b) and sim[i][j] >= 0.4 and best[i][j] == sim[i][j] + best[i + 1][j + 1]:
                yield "|", a[i], b[j]
                i, j = i + 1, j + 1
            elif i < len(a) and (j == len(b) or best[i][j] == best[i + 1][j]):
                yield "<", a[i], ""
                i += 1
            else:
                yield ">", "", b[j]
                j += 1


def side_by_side(left, right, columns=58):
    print(fit("Python %d.%d" % sys.version_info[:2], columns) + "   Rust port")
    for mark, a, b in align(left, right):
        print((fit(a, columns) + " " + mark + " " + b).rstrip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only the programs whose name contains one of these")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every Python sleep by this")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    for name, seed, source, example, part in PROGRAMS:
        if args.only and not any(word in name for word in args.only):
            continue
        print("\n=== seed %s, %s; examples/%s.rs ===" % (seed, name, example))
        if "import requests" in source:
            try:
                import requests  # noqa: F401
            except ImportError:
                print("(skipped: this program needs the `requests` package)")
                continue
        left, stderr = run_python(source, args.scale, base)
        side_by_side(left, run_port(example, part))
        for line in stderr:
            print("  Python's stderr: " + line)
    server.shutdown()


if __name__ == "__main__":
    main()
