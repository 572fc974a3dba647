//! Readiness: `Async<T>` over Unix stream pairs and pipes, and asyncio's `add_reader` /
//! `add_writer` callbacks (reliability checklist items 27-31).
//!
//! Everything here uses real descriptors and the real poller, so every test is skipped under
//! Miri. "No spin" is measured with `EventLoop::stats()`: a loop that keeps waking up for a
//! socket nobody can act on would run thousands of iterations during a 30 ms sleep, where a
//! quiet loop runs a handful.

mod util;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use aioloop::{Async, EventLoop};
use util::Log;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `fut` on `lp` and returns its output with the number of loop iterations it took.
fn counting_iterations<F: Future>(lp: &mut EventLoop, fut: F) -> (F::Output, u64) {
    let before = lp.stats().iterations;
    let out = lp.run_until_complete(fut);
    (out, lp.stats().iterations - before)
}

/// Writes into `s` (non-blocking) until its send buffer is full; returns how many bytes it took.
fn fill_send_buffer(s: &UnixStream) -> usize {
    let chunk = [7u8; 16 * 1024];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("filling the send buffer failed: {e}"),
        }
    }
}

/// Reads everything currently buffered in `s` (made non-blocking); returns how many bytes.
fn drain(s: &UnixStream) -> usize {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("draining failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Async<T>: read_with / write_with / readable / writable / into_inner / new
// ---------------------------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn read_with_and_write_with_move_bytes_both_ways_through_a_unix_stream_pair() {
    aioloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let n = a.write_with(|mut s| s.write(b"ping")).await.unwrap();
        assert_eq!(n, 4);
        let mut buf = [0u8; 4];
        b.read_with(|mut s| s.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"ping");
        b.write_with(|mut s| s.write_all(b"pong")).await.unwrap();
        a.read_with(|mut s| s.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"pong");
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn read_with_parks_the_task_until_the_peer_writes() {
    let log = Log::new();
    let l = log.clone();
    aioloop::run(async move {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let writer = aioloop::spawn({
            let l = l.clone();
            async move {
                aioloop::sleep(ms(5)).await;
                l.push("peer writes");
                (&b).write_all(b"late").unwrap();
                b // keep the peer open until the reader is done
            }
        });
        let mut buf = [0u8; 16];
        let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
        l.push(format!("read {}", String::from_utf8_lossy(&buf[..n])));
        drop(writer.await.unwrap());
    });
    assert_eq!(log.get(), ["peer writes", "read late"]);
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn readiness_is_remembered_until_an_operation_would_block() {
    aioloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        // A fresh socket with an empty send buffer is writable at once, and stays so.
        a.writable().await.unwrap();
        a.writable().await.unwrap();
        // Nothing to read yet.
        let polled = poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
        assert!(polled.is_pending());
        (&b).write_all(b"xy").unwrap();
        a.readable().await.unwrap();
        // Waiting again without reading returns at once: the readiness is cached, not consumed.
        let polled = poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
        assert!(polled.is_ready());
        let mut buf = [0u8; 8];
        assert_eq!(a.read_with(|mut s| s.read(&mut buf)).await.unwrap(), 2);
        // A WouldBlock seen outside the loop's operations does not clear the cached readiness
        // (readable() may return early: callers retry, as with any readiness API)...
        let e = a.get_ref().read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "Async::new made the socket non-blocking");
        let polled = poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
        assert!(polled.is_ready());
        // ...a WouldBlock inside read_with does: the task waits for a new event.
        let mut never = [0u8; 1];
        let r = aioloop::timeout(ms(20), a.read_with(|mut s| s.read(&mut never))).await;
        assert!(r.is_err(), "read_with on an empty socket waits (and clears the cache)");
        let polled = poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
        assert!(polled.is_pending(), "after read_with saw WouldBlock, readable() waits for a new event");
    });
}

/// Checklist 30: a writer parked on a full send buffer and a reader parked on an empty receive
/// buffer of the same socket. The read event comes first and must not swallow the writer's
/// wake-up; draining the peer then wakes the writer.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn a_reader_and_a_writer_parked_on_the_same_socket_are_each_woken_by_their_own_direction() {
    let log = Log::new();
    let l = log.clone();
    aioloop::run(async move {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Rc::new(Async::new(a).unwrap());
        let filled = fill_send_buffer(a.get_ref());
        assert!(filled > 0);

        let writer = aioloop::spawn({
            let (a, l) = (a.clone(), l.clone());
            async move {
                let n = a.write_with(|mut s| s.write(b"w")).await.unwrap();
                l.push("writer done");
                n
            }
        });
        let reader = aioloop::spawn({
            let (a, l) = (a.clone(), l.clone());
            async move {
                let mut buf = [0u8; 8];
                let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
                l.push("reader done");
                buf[..n].to_vec()
            }
        });
        // Both park.
        aioloop::sleep(ms(5)).await;
        assert!(!writer.is_done() && !reader.is_done());

        // The socket becomes readable (still not writable): only the reader finishes.
        (&b).write_all(b"r").unwrap();
        assert_eq!(reader.await.unwrap(), b"r");
        aioloop::sleep(ms(5)).await;
        assert!(!writer.is_done(), "the send buffer is still full: the writer must still wait");

        // The peer drains the send buffer: the writer, parked all along, is woken.
        assert_eq!(drain(&b), filled);
        assert_eq!(aioloop::timeout(Duration::from_secs(5), writer).await.expect("writer woken").unwrap(), 1);
    });
    assert_eq!(log.get(), ["reader done", "writer done"]);
}

/// The same, with both directions becoming ready before the loop looks: one event carries both.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn one_event_with_both_directions_wakes_the_reader_and_the_writer() {
    aioloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Rc::new(Async::new(a).unwrap());
        let filled = fill_send_buffer(a.get_ref());
        let writer = aioloop::spawn({
            let a = a.clone();
            async move { a.write_with(|mut s| s.write(b"w")).await.unwrap() }
        });
        let reader = aioloop::spawn({
            let a = a.clone();
            async move {
                let mut buf = [0u8; 8];
                a.read_with(|mut s| s.read(&mut buf)).await.unwrap()
            }
        });
        aioloop::sleep(ms(5)).await;
        assert!(!writer.is_done() && !reader.is_done());
        // In one step, without yielding to the loop: readable and writable at once.
        (&b).write_all(b"r").unwrap();
        assert_eq!(drain(&b), filled);
        let both = aioloop::timeout(Duration::from_secs(5), aioloop::gather(vec![writer, reader])).await;
        assert_eq!(both.expect("both woken").unwrap(), [1, 1]);
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn into_inner_deregisters_and_returns_the_object_still_non_blocking() {
    aioloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        (&b).write_all(b"1").unwrap();
        let mut buf = [0u8; 1];
        a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
        let std_a: UnixStream = a.into_inner().unwrap();
        // Still non-blocking, as documented.
        assert_eq!((&std_a).read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // And it can be registered again (register → deregister → register).
        let a = Async::new(std_a).unwrap();
        (&b).write_all(b"2").unwrap();
        a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"2");
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn async_new_outside_a_running_loop_is_a_clear_io_error() {
    let (a, _b) = UnixStream::pair().unwrap();
    let err = Async::new(a).unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "unclear error: {err}");
    // A loop that exists but is not running does not count either.
    let _lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(Async::new(a).unwrap_err().to_string().contains("no running event loop"));
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn async_new_on_a_regular_file_is_an_error_and_the_loop_goes_on() {
    let path = std::env::temp_dir().join(format!("aioloop-io-regular-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    let r = aioloop::run(async {
        let err = Async::new(File::open(&path).unwrap()).unwrap_err();
        // The loop still works afterwards.
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        a.write_with(|mut s| s.write(b"k")).await.unwrap();
        let mut buf = [0u8; 1];
        b.read_with(|mut s| s.read(&mut buf)).await.unwrap();
        (err.kind(), err.to_string(), buf)
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.0, io::ErrorKind::PermissionDenied, "epoll refuses regular files with EPERM");
    assert!(r.1.contains("aioloop::fs"), "the error says what to use instead: {}", r.1);
    assert_eq!(&r.2, b"k");
}

/// Pipes (here the stdin and stdout of a `cat` child) work like sockets.
#[test]
#[cfg_attr(miri, ignore = "real pipes")]
fn async_over_pipes_echoes_through_cat_and_sees_end_of_file() {
    let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let to_cat = File::from(OwnedFd::from(child.stdin.take().unwrap()));
    let from_cat = File::from(OwnedFd::from(child.stdout.take().unwrap()));
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let received = aioloop::run(async {
        let to_cat = Async::new(to_cat).unwrap();
        let from_cat = Async::new(from_cat).unwrap();
        // A pipe holds 64 KiB: writing 256 KiB while reading needs both directions to wait.
        let writer = aioloop::spawn({
            let payload = payload.clone();
            async move {
                let mut rest = &payload[..];
                while !rest.is_empty() {
                    let n = to_cat.write_with(|mut f| f.write(rest)).await.unwrap();
                    rest = &rest[n..];
                }
                drop(to_cat); // cat sees EOF and exits, closing its stdout
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = from_cat.read_with(|mut f| f.read(&mut buf)).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // End of file stays end of file.
        assert_eq!(from_cat.read_with(|mut f| f.read(&mut buf)).await.unwrap(), 0);
        writer.await.unwrap();
        got
    });
    assert!(child.wait().unwrap().success());
    assert!(received == payload, "the bytes came back intact and in order");
}

/// A socket dropped (deregistered and closed) while a task is parked on it. `Async`'s `Drop`
/// removes the loop's entry together with the wakers of its waiters, without waking them
/// (src/io.rs): the parked task stays pending, and the loop stays quiet.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
#[allow(clippy::async_yields_async)] // returns the task's handle
fn a_socket_dropped_while_a_task_waits_on_it_leaves_the_task_parked_without_spinning() {
    let mut lp = EventLoop::new().unwrap();
    let (a, peer) = UnixStream::pair().unwrap();
    let log = Log::new();
    let slot: Rc<RefCell<Option<Async<UnixStream>>>> = Rc::default();
    let waiter = lp.run_until_complete(async {
        *slot.borrow_mut() = Some(Async::new(a).unwrap());
        let waiter = aioloop::spawn({
            let (slot, log) = (slot.clone(), log.clone());
            async move {
                let woken = poll_fn(|cx| match slot.borrow().as_ref() {
                    Some(a) => a.poll_readable(cx).map(|r| r.is_ok()),
                    None => Poll::Ready(false),
                })
                .await;
                log.push(format!("woken, socket still there: {woken}"));
            }
        });
        aioloop::sleep(ms(2)).await; // the waiter parks on readability
        assert!(!waiter.is_done());
        drop(slot.borrow_mut().take()); // closed while registered and waited on
        waiter
    });
    // The descriptor really is closed: the peer reads end-of-file.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((&peer).read(&mut [0u8; 1]).unwrap(), 0);
    // The peer's writes can no longer reach anything; the loop neither wakes the waiter nor spins.
    let _ = (&peer).write(b"x");
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(30)));
    assert!(iterations <= 10, "the loop spun: {iterations} iterations in a 30 ms sleep");
    assert!(!waiter.is_done(), "observed behaviour: the waiter's waker was dropped, not woken");
    assert!(log.is_empty());
    waiter.cancel();
    let outcome = lp.run_until_complete(waiter);
    assert!(outcome.unwrap_err().is_cancelled());
}

/// A task cancelled while parked on a socket it owns: the socket is dropped (deregistered,
/// closed) from inside the cancellation, 1,000 times over, and the loop stays usable.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn cancelling_tasks_parked_on_their_own_sockets_closes_them() {
    aioloop::run(async {
        let mut peers = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (a, b) = UnixStream::pair().unwrap();
            peers.push(b);
            tasks.push(aioloop::spawn(async move {
                let a = Async::new(a).unwrap();
                let mut buf = [0u8; 1];
                a.read_with(|mut s| s.read(&mut buf)).await
            }));
        }
        aioloop::yield_now().await;
        aioloop::yield_now().await;
        for t in &tasks {
            assert!(!t.is_done());
            t.cancel();
        }
        for t in tasks {
            assert!(t.await.unwrap_err().is_cancelled());
        }
        for b in peers {
            b.set_nonblocking(true).unwrap();
            assert_eq!((&b).read(&mut [0u8; 1]).unwrap(), 0, "the cancelled task's socket was closed");
        }
        // New sockets, possibly reusing the freed descriptor numbers and entries, work.
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        a.write_with(|mut s| s.write(b"z")).await.unwrap();
        let mut buf = [0u8; 1];
        b.read_with(|mut s| s.read(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"z");
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn peer_close_gives_end_of_file_again_and_again_without_spinning() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let a = lp.run_until_complete(async { Async::new(a).unwrap() });
    drop(b);
    let (reads, iterations) = counting_iterations(&mut lp, async {
        let mut buf = [0u8; 4];
        let mut reads = Vec::new();
        for _ in 0..5 {
            reads.push(a.read_with(|mut s| s.read(&mut buf)).await.unwrap());
        }
        reads
    });
    assert_eq!(reads, [0; 5]);
    assert!(iterations <= 5, "each EOF read returns at once: {iterations} iterations");
    // The hung-up socket stays registered; the loop does not keep waking for it.
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(30)));
    assert!(iterations <= 10, "HUP spin: {iterations} iterations in a 30 ms sleep");
    // Writing to it is an error, not a SIGPIPE.
    let e = lp.run_until_complete(a.write_with(|mut s| s.write(b"x"))).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

// ---------------------------------------------------------------------------------------------
// add_reader / add_writer
// ---------------------------------------------------------------------------------------------

/// Counts the calls of a callback.
fn counter() -> (Rc<Cell<u64>>, impl Fn() -> u64) {
    let c = Rc::new(Cell::new(0));
    let c2 = c.clone();
    (c, move || c2.get())
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_runs_its_callback_once_per_iteration_while_readable() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"x").unwrap(); // never read: `a` stays readable
    let (calls, count) = counter();
    let h = lp.handle();
    lp.add_reader(&a, move || {
        calls.set(calls.get() + 1);
        if calls.get() == 20 {
            h.stop();
        }
    })
    .unwrap();
    let before = lp.stats().iterations;
    lp.run_forever();
    let iterations = lp.stats().iterations - before;
    assert_eq!(count(), 20);
    assert_eq!(iterations, 20, "level-triggered: one call per iteration, no more, no fewer");

    assert!(lp.remove_reader(a.as_raw_fd()));
    assert!(!lp.remove_reader(a.as_raw_fd()), "removing twice finds nothing");
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(20)));
    assert_eq!(count(), 20, "no call after remove_reader");
    assert!(iterations <= 5, "{iterations} iterations: the removed reader still wakes the loop");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_waits_for_readability_and_sees_the_data() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, h, reader) = (got.clone(), lp.handle(), a.try_clone().unwrap());
    lp.add_reader(&a, move || {
        let mut buf = [0u8; 16];
        let n = (&reader).read(&mut buf).unwrap();
        g.borrow_mut().extend_from_slice(&buf[..n]);
        h.stop();
    })
    .unwrap();
    // Not readable yet: the callback does not run while the loop waits for 20 ms.
    lp.run_until_complete(aioloop::sleep(ms(20)));
    assert!(got.borrow().is_empty());
    // Another thread writes while the loop is blocked in the poller.
    let t = std::thread::spawn(move || {
        std::thread::sleep(ms(10));
        (&b).write_all(b"hello").unwrap();
        b
    });
    lp.run_forever();
    assert_eq!(&got.borrow()[..], b"hello");
    assert!(lp.remove_reader(a.as_raw_fd()));
    drop(t.join().unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_with_a_busy_task_runs_at_most_once_per_iteration_and_is_not_starved() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"x").unwrap();
    let (calls, count) = counter();
    lp.add_reader(&a, move || calls.set(calls.get() + 1)).unwrap();
    let ((), iterations) = counting_iterations(&mut lp, async {
        for _ in 0..1000 {
            aioloop::yield_now().await;
        }
    });
    assert!(count() <= iterations, "{} calls in {iterations} iterations", count());
    // While tasks keep the loop busy it asks the poller only every so many iterations
    // (IO_POLL_INTERVAL in src/runtime/mod.rs), but it does ask: the reader is not starved.
    assert!(count() >= 5, "the reader was starved by a busy task: {} calls in {iterations} iterations", count());
    assert!(lp.remove_reader(a.as_raw_fd()));
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_writer_runs_while_writable_and_remove_writer_stops_it() {
    let mut lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let (calls, count) = counter();
    let h = lp.handle();
    lp.add_writer(&a, move || {
        calls.set(calls.get() + 1);
        if calls.get() == 3 {
            h.stop();
        }
    })
    .unwrap();
    let before = lp.stats().iterations;
    lp.run_forever();
    assert_eq!(count(), 3);
    assert_eq!(lp.stats().iterations - before, 3);
    assert!(lp.remove_writer(a.as_raw_fd()));
    assert!(!lp.remove_writer(a.as_raw_fd()));
    lp.run_until_complete(aioloop::sleep(ms(10)));
    assert_eq!(count(), 3);
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn a_reader_and_a_writer_on_one_descriptor_are_removed_independently() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let (reads, read_count) = counter();
    let (writes, write_count) = counter();
    lp.add_reader(&a, move || reads.set(reads.get() + 1)).unwrap();
    lp.add_writer(&a, move || writes.set(writes.get() + 1)).unwrap();
    lp.run_until_complete(aioloop::sleep(ms(5)));
    assert_eq!(read_count(), 0, "not readable");
    let w = write_count();
    assert!(w >= 1, "writable at once");
    // Removing the writer keeps the reader.
    assert!(lp.remove_writer(a.as_raw_fd()));
    (&b).write_all(b"x").unwrap();
    lp.run_until_complete(aioloop::sleep(ms(5)));
    assert!(read_count() >= 1, "the reader survived remove_writer");
    assert_eq!(write_count(), w, "the writer is gone");
    assert!(lp.remove_reader(a.as_raw_fd()));
    assert!(!lp.remove_writer(a.as_raw_fd()));
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_again_replaces_the_previous_callback() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"x").unwrap();
    let log = Log::new();
    let dropped = log.on_drop("first callback dropped");
    let (l1, l2, h) = (log.clone(), log.clone(), lp.handle());
    lp.add_reader(&a, move || {
        let _keep = &dropped;
        l1.push("first");
    })
    .unwrap();
    lp.add_reader(&a, move || {
        l2.push("second");
        h.stop();
    })
    .unwrap();
    assert_eq!(log.take(), ["first callback dropped"]);
    lp.run_forever();
    assert_eq!(log.take(), ["second"]);
    assert!(lp.remove_reader(a.as_raw_fd()));
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn a_panicking_reader_callback_is_contained_and_keeps_its_registration() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"x").unwrap();
    let (calls, count) = counter();
    let h = lp.handle();
    lp.add_reader(&a, move || {
        calls.set(calls.get() + 1);
        if calls.get() == 2 {
            h.stop();
        } else {
            panic!("reader callback fails");
        }
    })
    .unwrap();
    lp.run_forever();
    assert_eq!(count(), 2, "the callback ran again after its panic");
    assert!(lp.remove_reader(a.as_raw_fd()));
}

/// The loop registers a duplicate of the descriptor, so the user closing theirs (without
/// remove_reader) cannot corrupt the poller: the callback keeps seeing the file through the
/// duplicate, remove_reader by the old number still works, and it releases the file.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn closing_the_users_descriptor_after_add_reader_is_harmless() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let (calls, count) = counter();
    let h = lp.handle();
    lp.add_reader(&a, move || {
        calls.set(calls.get() + 1);
        h.stop();
    })
    .unwrap();
    drop(a); // the user's descriptor is closed; the loop's duplicate keeps the socket open
    (&b).write_all(b"x").expect("the socket is still open through the loop's duplicate");
    lp.run_forever();
    assert_eq!(count(), 1);
    assert!(lp.remove_reader(raw));
    // Now the last descriptor of the socket is closed: the peer sees it.
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // (Closed with the unread "x" in its buffer, so Linux reports a reset rather than EOF.)
    match (&b).read(&mut [0u8; 1]) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("remove_reader did not release the duplicate: {other:?}"),
    }
    let e = (&b).write(b"y").unwrap_err();
    assert!(matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset), "{e}");
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(20)));
    assert_eq!(count(), 1);
    assert!(iterations <= 5);
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn closing_the_loop_drops_reader_callbacks_and_releases_their_duplicates() {
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let log = Log::new();
    let guard = log.on_drop("callback dropped");
    lp.add_reader(&a, move || {
        let _keep = &guard;
    })
    .unwrap();
    drop(a);
    lp.close();
    assert_eq!(log.get(), ["callback dropped"]);
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((&b).read(&mut [0u8; 1]).unwrap(), 0, "the loop's duplicate was closed");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_on_a_regular_file_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let path = std::env::temp_dir().join(format!("aioloop-io-add-reader-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    let f = File::open(&path).unwrap();
    let err = lp.add_reader(&f, || {}).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(!lp.remove_reader(f.as_raw_fd()), "a failed add_reader leaves nothing behind");
}

/// Checklist 27: the user closes a descriptor without remove_reader, a new socket gets the same
/// number, and the user calls add_reader on it. The callback must follow the new socket, not
/// the closed one that the loop's duplicate keeps alive.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn add_reader_on_a_reused_descriptor_number_watches_the_new_socket() {
    let mut lp = EventLoop::new().unwrap();
    let (old, old_peer) = UnixStream::pair().unwrap();
    let raw = old.as_raw_fd();
    let log = Log::new();
    let l = log.clone();
    lp.add_reader(&old, move || l.push("old callback")).unwrap();
    drop(old); // closed without remove_reader: the number is free again
               // Find a new socket with the same number (other tests' threads may take it first).
    let mut spare = Vec::new();
    let (new, new_peer) = loop {
        let (x, y) = UnixStream::pair().unwrap();
        if x.as_raw_fd() == raw {
            break (x, y);
        }
        if y.as_raw_fd() == raw {
            break (y, x);
        }
        spare.push((x, y));
        assert!(spare.len() < 100, "descriptor number {raw} never came back");
    };
    let (new_calls, count) = counter();
    lp.add_reader(&new, move || new_calls.set(new_calls.get() + 1)).unwrap();
    // The new socket becomes readable: its callback runs.
    (&new_peer).write_all(b"new").unwrap();
    lp.run_until_complete(aioloop::sleep(ms(20)));
    assert!(count() > 0, "the new socket is readable, but its callback never ran");
    let mut buf = [0u8; 8];
    assert_eq!((&new).read(&mut buf).unwrap(), 3);
    // The old socket becomes readable: that must not call the new socket's callback.
    let seen = count();
    // The loop dropped its stale duplicate of the old socket when the number was registered
    // again, so the old socket is now fully closed and its peer may get BrokenPipe: either way
    // nothing may reach the new socket's callback.
    let _ = (&old_peer).write_all(b"old");
    lp.run_until_complete(aioloop::sleep(ms(20)));
    assert_eq!(count(), seen, "the new socket's callback ran for the old, closed socket");
    assert!(log.is_empty(), "the replaced callback of the old socket ran");
    assert!(lp.remove_reader(new.as_raw_fd()));
}

// ---------------------------------------------------------------------------------------------
// asyncio's answers inside a running callback (tests/asyncio_divergences.py, CPython 3.11.7)
// ---------------------------------------------------------------------------------------------

/// asyncio: `remove_reader(fd)` inside that reader's own callback returns True (a reader was
/// registered) and removes it; a second call returns False. The same for a writer. The
/// callback's closure is dropped only after it returned.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn remove_reader_inside_its_own_callback_returns_true_and_removes_it() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let log = Log::new();
    let (l, guard) = (
        log.clone(),
        util::Defer({
            let l = log.clone();
            move || l.push("closure dropped")
        }),
    );
    lp.add_reader(&a, move || {
        let _keep = &guard; // moved into the closure: dropped with it
        l.push(format!("remove_reader: {}", aioloop::remove_reader(raw)));
        l.push(format!("again: {}", aioloop::remove_reader(raw)));
        l.push("callback returns");
    })
    .unwrap();
    (&b).write_all(b"x").unwrap();
    lp.run_until_complete(aioloop::sleep(ms(20)));
    assert_eq!(
        log.get(),
        ["remove_reader: true", "again: false", "callback returns", "closure dropped"],
        "asyncio's [True, False], one call, and the closure outlives its own run"
    );
    assert!(!lp.remove_reader(raw), "the reader is gone");

    let l = log.clone();
    lp.add_writer(&a, move || {
        l.push(format!("remove_writer: {}", aioloop::remove_writer(raw)));
        l.push(format!("again: {}", aioloop::remove_writer(raw)));
    })
    .unwrap();
    lp.run_until_complete(aioloop::sleep(ms(20)));
    assert_eq!(log.get()[4..], ["remove_writer: true", "again: false"], "one call, asyncio's [True, False]");
    assert!(!lp.remove_writer(raw));
}

/// asyncio: a reader's callback that removes the writer of the same descriptor leaves the reader
/// registered (it keeps being called, and `remove_reader` later returns True). aioloop used to
/// drop the whole registration here, the running reader with it.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn remove_writer_inside_the_readers_callback_leaves_the_reader_registered() {
    let mut lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let (reads, read_count) = counter();
    let removed = Rc::new(RefCell::new(Vec::new()));
    let r = removed.clone();
    let h = lp.handle();
    lp.add_reader(&a, move || {
        reads.set(reads.get() + 1);
        if reads.get() == 1 {
            r.borrow_mut().push(aioloop::remove_writer(raw));
        }
        if reads.get() == 3 {
            h.stop();
        }
    })
    .unwrap();
    lp.add_writer(&a, || {}).unwrap();
    (&b).write_all(b"x").unwrap();
    lp.run_forever();
    assert_eq!(*removed.borrow(), [true]);
    assert_eq!(read_count(), 3, "the reader kept running");
    assert!(lp.remove_reader(raw), "the reader is still registered");
}

// ---------------------------------------------------------------------------------------------
// Async<T> as a futures-io reader and writer (issue 12 section 3)
// ---------------------------------------------------------------------------------------------

/// `Async<File>` over a child's pipes reads and writes with futures-lite's extension traits,
/// owned and through `&`, with no `read_with` closure: `tr` upper-cases what it is sent, and
/// end of file on its stdin ends its stdout.
#[test]
#[cfg_attr(miri, ignore = "real pipes")]
fn async_pipes_are_futures_io_readers_and_writers() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut child = Command::new("/bin/sh")
        .args(["-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let to_child = File::from(OwnedFd::from(child.stdin.take().unwrap()));
    let from_child = File::from(OwnedFd::from(child.stdout.take().unwrap()));
    let payload: Vec<u8> = b"abcdefghij".iter().copied().cycle().take(200 * 1024).collect();
    let (got, again) = aioloop::run(async {
        let mut to_child = Async::new(to_child).unwrap();
        let from_child = Async::new(from_child).unwrap();
        // 200 KiB both ways: more than a pipe holds, so writing and reading each have to wait.
        let writer = aioloop::spawn({
            let payload = payload.clone();
            async move {
                to_child.write_all(&payload).await.unwrap();
                to_child.flush().await.unwrap();
                to_child.close().await.unwrap(); // flushes; the pipe closes when dropped
            }
        });
        let mut got = Vec::new();
        (&from_child).read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        let mut from_child = from_child;
        let again = from_child.read(&mut [0u8; 8]).await.unwrap();
        (got, again)
    });
    assert!(child.wait().unwrap().success());
    assert!(got == payload.to_ascii_uppercase(), "every byte came back upper-cased, in order");
    assert_eq!(again, 0, "end of file stays end of file");
}
