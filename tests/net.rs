//! Sockets on the loop (`aioloop::net`): TCP, UDP and Unix-domain, with real sockets on
//! 127.0.0.1 and in a temporary directory (reliability checklist items 26, 31-33, 36).
//!
//! Every test is skipped under Miri, which cannot run epoll. "No spin" is measured with
//! `EventLoop::stats().iterations` over a short real sleep: a few iterations when the loop is
//! quiet, thousands when it keeps waking for a socket nobody can act on.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use aioloop::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use aioloop::EventLoop;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `fut` on `lp` and returns its output with the number of loop iterations it took.
fn counting_iterations<F: Future>(lp: &mut EventLoop, fut: F) -> (F::Output, u64) {
    let before = lp.stats().iterations;
    let out = lp.run_until_complete(fut);
    (out, lp.stats().iterations - before)
}

/// Returns an address on 127.0.0.1 where nothing listens (a port just released).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A fresh directory for Unix socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aioloop-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads from `s` until end of stream.
async fn read_to_end(s: &TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match (&*s).read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A one-shot gate tasks can wait on (the tests' stand-in for asyncio.Event).
#[derive(Default)]
struct Gate {
    open: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Gate {
    async fn wait(&self) {
        poll_fn(|cx| {
            if self.open.get() {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn open(&self) {
        self.open.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        waiters.into_iter().for_each(Waker::wake);
    }
}

// ---------------------------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------------------------

/// 1 MiB through an echo server: the client writes with `write()` and reads the echo slowly in
/// another task; every byte comes back, in order.
///
/// On loopback Linux takes a whole 1 MiB in one `write()` with the default (autotuned) send
/// buffer, so the test caps the client's with `SO_SNDBUF` (through `rustix`, already a
/// dependency of the crate; the standard library has no setter) to make the writes partial.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn one_mebibyte_echoed_through_tcp_with_partial_writes_arrives_intact_and_in_order() {
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let exchange = aioloop::run(aioloop::timeout(Duration::from_secs(30), async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = aioloop::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = (&s).read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                (&s).write_all(&buf[..n]).await.unwrap();
            }
            s.shutdown(Shutdown::Write).unwrap();
        });
        let c = TcpStream::connect(addr).await.unwrap();
        // Only the sender's buffer: receive buffers smaller than loopback's 64 KiB segments
        // make Linux's TCP stall in retransmissions for minutes.
        rustix::net::sockopt::set_socket_send_buffer_size(&c, 64 * 1024).unwrap();
        let c = Rc::new(c);
        let writer = aioloop::spawn({
            let (c, data) = (c.clone(), data.clone());
            async move {
                let (mut off, mut calls) = (0, 0);
                while off < data.len() {
                    let n = (&*c).write(&data[off..]).await.unwrap();
                    assert!(n > 0);
                    off += n;
                    calls += 1;
                }
                c.shutdown(Shutdown::Write).unwrap();
                calls
            }
        });
        // The slow reader: small reads, a pause now and then.
        let mut got = Vec::with_capacity(data.len());
        let mut buf = [0u8; 4096];
        let mut reads = 0u32;
        loop {
            let n = (&*c).read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            reads += 1;
            if reads % 32 == 0 {
                aioloop::sleep(ms(1)).await;
            }
        }
        let writes = writer.await.unwrap();
        server.await.unwrap();
        (got, writes)
    }));
    let (echoed, writes) = exchange.expect("the echo finished within 30 s");
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echo differs from what was sent");
    assert!(writes > 1, "the premise of the test: write() took part of the buffer ({writes} call)");
}

/// 2,000 connections open at once on one loop, each sending a line and reading it back.
/// Clients connect in waves of 100 (the standard library's listen backlog is 128, and a full
/// backlog makes Linux drop SYNs, which costs a 1 s retransmission), then wait at a gate until
/// all 2,000 are connected.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn two_thousand_concurrent_tcp_connections_are_served_by_one_loop() {
    const N: usize = 2000;
    let started = Instant::now();
    let (max_open, echoed) = aioloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Rc::new(Cell::new(0usize));
        let max_open = Rc::new(Cell::new(0usize));
        let server = aioloop::spawn({
            let (open, max_open) = (open.clone(), max_open.clone());
            async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    open.set(open.get() + 1);
                    max_open.set(max_open.get().max(open.get()));
                    let open = open.clone();
                    aioloop::spawn(async move {
                        let mut line = Vec::new();
                        let mut buf = [0u8; 64];
                        while !line.ends_with(b"\n") {
                            let n = (&s).read(&mut buf).await.unwrap();
                            assert!(n > 0, "client closed before its line");
                            line.extend_from_slice(&buf[..n]);
                        }
                        (&s).write_all(&line).await.unwrap();
                        assert_eq!((&s).read(&mut buf).await.unwrap(), 0, "client closes after the echo");
                        open.set(open.get() - 1);
                    });
                }
            }
        });
        let gate = Rc::new(Gate::default());
        let connected = Rc::new(Cell::new(0usize));
        let mut clients = Vec::with_capacity(N);
        for wave in 0..N / 100 {
            for i in wave * 100..(wave + 1) * 100 {
                let (gate, connected) = (gate.clone(), connected.clone());
                clients.push(aioloop::spawn(async move {
                    let c = TcpStream::connect(addr).await.unwrap();
                    connected.set(connected.get() + 1);
                    gate.wait().await;
                    let line = format!("line from client {i}\n");
                    (&c).write_all(line.as_bytes()).await.unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 64];
                    while !got.ends_with(b"\n") {
                        let n = (&c).read(&mut buf).await.unwrap();
                        assert!(n > 0, "server closed before the echo");
                        got.extend_from_slice(&buf[..n]);
                    }
                    got == line.as_bytes()
                }));
            }
            while connected.get() < (wave + 1) * 100 {
                aioloop::sleep(ms(1)).await;
            }
        }
        assert_eq!(connected.get(), N);
        gate.open();
        let mut echoed = 0;
        for c in clients {
            if c.await.unwrap() {
                echoed += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while open.get() > 0 && Instant::now() < deadline {
            aioloop::sleep(ms(1)).await;
        }
        assert_eq!(open.get(), 0, "every server-side handler saw its client close");
        server.cancel();
        (max_open.get(), echoed)
    });
    assert_eq!(echoed, N, "every client got its own line back");
    assert_eq!(max_open, N, "all connections were open at the same time");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn connecting_to_a_closed_port_is_connection_refused() {
    let addr = closed_port();
    let err = aioloop::run(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn binding_a_taken_address_is_addr_in_use() {
    aioloop::run(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = TcpListener::bind(l.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = UdpSocket::bind(u.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn sockets_created_outside_a_running_loop_are_io_errors() {
    let err = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
    let err = UdpSocket::bind("127.0.0.1:0").unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
    let err = UnixStream::pair().unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
}

/// Checklist 31: the peer closes with unread data in its receive buffer, so Linux sends a
/// reset. The reads that follow give `ConnectionReset` or end-of-file, never block and never
/// make the loop spin; a write gives an error, and the process survives.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn a_peer_reset_is_an_io_error_and_never_spins() {
    let mut lp = EventLoop::new().unwrap();
    let client = lp.run_until_complete(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        (&c).write_all(b"never read").await.unwrap();
        let mut buf = [0u8; 4];
        s.peek(&mut buf).await.unwrap(); // the data has arrived, unread
        drop(s); // closed with unread data: a reset
        c
    });
    let (first, iterations) = counting_iterations(&mut lp, async {
        let mut buf = [0u8; 16];
        let first = (&client).read(&mut buf).await;
        let mut again = Vec::new();
        for _ in 0..5 {
            again.push((&client).read(&mut buf).await);
        }
        (first, again)
    });
    match &first.0 {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => assert_eq!(*n, 0),
    }
    for r in &first.1 {
        assert!(matches!(r, Ok(0)) || r.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset), "{r:?}");
    }
    assert!(iterations <= 10, "{iterations} iterations for six reads of a reset socket");
    // The reset socket stays registered; the loop sleeps quietly.
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(30)));
    assert!(iterations <= 10, "spin after a reset: {iterations} iterations in a 30 ms sleep");
    let e = lp.run_until_complete((&client).write(b"x")).unwrap_err();
    assert!(matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset), "{e}");
}

/// Checklist 32: the client shuts down its writing side; the server reads everything, then
/// end-of-file, again and again without spinning, and its reply still reaches the client.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn half_close_lets_the_server_read_to_the_end_and_still_reply() {
    let request: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let reply: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let mut lp = EventLoop::new().unwrap();
    let (server_side, client_side) = lp.run_until_complete(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        let c = aioloop::spawn({
            let request = request.clone();
            async move {
                (&c).write_all(&request).await.unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                c
            }
        });
        let got = read_to_end(&s).await.unwrap();
        assert!(got == request, "the server read the whole request");
        (s, c.await.unwrap())
    });
    // End-of-file again, at once each time.
    let (eofs, iterations) = counting_iterations(&mut lp, async {
        let mut buf = [0u8; 8];
        let mut eofs = Vec::new();
        for _ in 0..5 {
            eofs.push((&server_side).read(&mut buf).await.unwrap());
        }
        eofs
    });
    assert_eq!(eofs, [0; 5]);
    assert!(iterations <= 5, "{iterations} iterations for five EOF reads");
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(30)));
    assert!(iterations <= 10, "spin on a half-closed socket: {iterations} iterations in a 30 ms sleep");
    // The server's writing side is still open: the reply arrives whole.
    let got = lp.run_until_complete(async {
        let writer = aioloop::spawn({
            let reply = reply.clone();
            async move {
                (&server_side).write_all(&reply).await.unwrap();
                drop(server_side);
            }
        });
        let got = read_to_end(&client_side).await.unwrap();
        writer.await.unwrap();
        got
    });
    assert!(got == reply, "the client read the whole reply ({} of {} bytes)", got.len(), reply.len());
}

/// Writing to a connection the peer closed gives `BrokenPipe` (or `ConnectionReset`) as an
/// `io::Error`: no SIGPIPE, the process goes on.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn writing_to_a_closed_peer_is_an_io_error_not_a_sigpipe() {
    let kinds = aioloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        drop(s);
        let mut kinds = Vec::new();
        for _ in 0..1000 {
            match (&c).write(b"into the void").await {
                Ok(_) => aioloop::sleep(ms(1)).await,
                Err(e) => {
                    kinds.push(e.kind());
                    if kinds.len() == 2 {
                        break;
                    }
                }
            }
        }
        kinds
    });
    assert_eq!(kinds.len(), 2, "writes to a closed peer never failed");
    for k in kinds {
        assert!(matches!(k, io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset), "{k:?}");
    }
    // Unix-domain: the same, at the first write.
    let e = aioloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        (&a).write(b"x").await.unwrap_err()
    });
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn tcp_addresses_options_and_peek() {
    aioloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (s, peer) = listener.accept().await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(peer, c.local_addr().unwrap());
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        (&c).write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        let mut n = 0;
        while n < 3 {
            n = s.peek(&mut buf).await.unwrap();
        }
        assert_eq!(&buf, b"abc");
        // peek left the bytes in place.
        let mut again = [0u8; 3];
        let mut got = 0;
        while got < 3 {
            got += (&s).read(&mut again[got..]).await.unwrap();
        }
        assert_eq!(&again, b"abc");
    });
}

/// The streams implement futures-io's traits, also on `&`: futures-lite's extension methods
/// and `io::copy` work, one task can read while another writes, and `close()` half-closes.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn futures_lite_extension_traits_work_on_the_streams() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
    let back = aioloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = aioloop::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            // An echo server in one line: read from `&s`, write to `&s`.
            let n = futures_lite::io::copy(&s, &mut &s).await.unwrap();
            (&s).close().await.unwrap();
            n
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let writer = aioloop::spawn({
            let payload = payload.clone();
            async move {
                c.write_all(&payload).await.unwrap();
                c.flush().await.unwrap();
                c.close().await.unwrap(); // shutdown(Write)
                c
            }
        });
        let c = writer.await.unwrap();
        let mut back = Vec::new();
        (&c).read_to_end(&mut back).await.unwrap();
        assert_eq!(server.await.unwrap(), payload.len() as u64);
        back
    });
    assert!(back == payload);

    aioloop::run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"exact").await.unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"exact");
        a.close().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).await.unwrap(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn conversions_to_and_from_the_standard_library_types() {
    aioloop::run(async {
        // TCP listener and stream.
        let l = TcpListener::try_from(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().await.unwrap();
        let c = TcpStream::try_from(std_client).unwrap();
        (&c).write_all(b"hi").await.unwrap();
        let back: std::net::TcpStream = std::net::TcpStream::try_from(s).unwrap();
        // Still non-blocking, and the bytes are there.
        let mut buf = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match (&back).read(&mut buf[got..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => aioloop::sleep(ms(1)).await,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf, b"hi");
        let std_listener: std::net::TcpListener = l.into_std().unwrap();
        assert_eq!(std_listener.local_addr().unwrap(), addr);

        // UDP.
        let u = UdpSocket::try_from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let ua = u.local_addr().unwrap();
        assert_eq!(u.into_std().unwrap().local_addr().unwrap(), ua);

        // Unix stream, both ways.
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let x = UnixStream::try_from(x).unwrap();
        (&x).write_all(b"u").await.unwrap();
        let y = UnixStream::try_from(y).unwrap();
        let mut one = [0u8; 1];
        assert_eq!((&y).read(&mut one).await.unwrap(), 1);
        let std_y = std::os::unix::net::UnixStream::try_from(y).unwrap();
        assert_eq!((&std_y).read(&mut one).unwrap_err().kind(), io::ErrorKind::WouldBlock);

        // Unix datagram.
        let (d1, d2) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let d1 = UnixDatagram::try_from(d1).unwrap();
        d2.send(b"dgram").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(d1.recv(&mut buf).await.unwrap(), 5);
        drop(d1.into_std().unwrap());
    });
    // Outside a loop, converting in is an error.
    let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = UnixStream::try_from(x).unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn udp_send_to_recv_from_and_connect() {
    aioloop::run(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // recv_from waits for the datagram (sent by another task after a pause).
        let sender = aioloop::spawn(async move {
            aioloop::sleep(ms(5)).await;
            assert_eq!(a.send_to(b"ping", ba).await.unwrap(), 4);
            a
        });
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], aa));
        let a = sender.await.unwrap();
        // Datagram boundaries are kept, a long one is cut to the buffer.
        b.send_to(b"one", aa).await.unwrap();
        b.send_to(b"two-longer", aa).await.unwrap();
        let mut small = [0u8; 5];
        assert_eq!(a.recv_from(&mut small).await.unwrap(), (3, ba));
        assert_eq!(a.recv_from(&mut small).await.unwrap(), (5, ba));
        assert_eq!(&small, b"two-l");
        // Connected: send/recv, and datagrams from others are filtered out.
        a.connect(ba).unwrap();
        assert_eq!(a.peer_addr().unwrap(), ba);
        a.send(b"via connect").await.unwrap();
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"via connect");
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"stranger", aa).await.unwrap();
        b.send_to(b"peer", aa).await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"peer");
    });
}

/// A datagram to a closed port earns an ICMP "port unreachable", which the connected socket
/// reports as `ConnectionRefused` at its next receive (Linux does not rate-limit ICMP on the
/// loopback interface).
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn udp_to_a_closed_port_reports_connection_refused() {
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let r = aioloop::run(async move {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(closed).unwrap();
        a.send(b"anyone?").await.unwrap();
        let mut buf = [0u8; 8];
        aioloop::timeout(Duration::from_secs(5), a.recv(&mut buf)).await
    });
    let e = r.expect("the ICMP error wakes the receiver").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------------
// Unix-domain sockets
// ---------------------------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn unix_listener_accepts_and_streams_echo() {
    let dir = TempDir::new("stream");
    let path = dir.0.join("sock");
    aioloop::run(async {
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert_eq!(UnixListener::bind(&path).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        let server = aioloop::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..3 {
                let (s, _) = l.accept().await.unwrap();
                handlers.push(aioloop::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = (&s).read(&mut buf).await.unwrap();
                    (&s).write_all(&buf[..n]).await.unwrap();
                }));
            }
            for h in handlers {
                h.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for i in 0..3u8 {
            let path = path.clone();
            clients.push(aioloop::spawn(async move {
                let c = UnixStream::connect(&path).await.unwrap();
                (&c).write_all(&[b'a' + i; 10]).await.unwrap();
                let mut buf = [0u8; 10];
                let mut got = 0;
                while got < 10 {
                    got += (&c).read(&mut buf[got..]).await.unwrap();
                }
                buf == [b'a' + i; 10]
            }));
        }
        for c in clients {
            assert!(c.await.unwrap());
        }
        server.await.unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn unix_connect_errors_are_io_errors() {
    let dir = TempDir::new("connect-errors");
    let stale = dir.0.join("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap()); // the file stays, nobody listens
    aioloop::run(async {
        let e = UnixStream::connect(dir.0.join("missing")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = UnixStream::connect(&stale).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn unix_peer_close_is_end_of_file_without_spinning() {
    let mut lp = EventLoop::new().unwrap();
    let a = lp.run_until_complete(async {
        let (a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"last words").await.unwrap();
        drop(b);
        a
    });
    let (got, iterations) = counting_iterations(&mut lp, async {
        let mut buf = [0u8; 64];
        let n = (&a).read(&mut buf).await.unwrap();
        let eofs = [(&a).read(&mut buf).await.unwrap(), (&a).read(&mut buf).await.unwrap()];
        (buf[..n].to_vec(), eofs)
    });
    assert_eq!(got, (b"last words".to_vec(), [0, 0]));
    assert!(iterations <= 5);
    let ((), iterations) = counting_iterations(&mut lp, aioloop::sleep(ms(30)));
    assert!(iterations <= 10, "HUP spin: {iterations} iterations in a 30 ms sleep");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn unix_datagrams_keep_boundaries_and_senders() {
    let dir = TempDir::new("dgram");
    let (pa, pb) = (dir.0.join("a"), dir.0.join("b"));
    aioloop::run(async {
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.as_path()));
        let receiver = aioloop::spawn(async move {
            let mut buf = [0u8; 16];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            let (m, _) = b.recv_from(&mut buf[n..]).await.unwrap();
            (buf[..n].to_vec(), m, from.as_pathname().map(|p| p.to_path_buf()))
        });
        aioloop::sleep(ms(2)).await;
        a.send_to(b"first", &pb).await.unwrap();
        a.send_to(b"2nd", &pb).await.unwrap();
        let (first, m, from) = receiver.await.unwrap();
        assert_eq!((first, m, from), (b"first".to_vec(), 3, Some(pa.clone())));
        // An unbound socket can send; a connected one uses send/recv.
        let u = UnixDatagram::unbound().unwrap();
        u.send_to(b"anon", &pa).await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed());
        u.connect(&pa).unwrap();
        u.send(b"conn").await.unwrap();
        assert_eq!(a.recv(&mut buf).await.unwrap(), 4);
        let (x, y) = UnixDatagram::pair().unwrap();
        x.send(b"paired").await.unwrap();
        assert_eq!(y.recv(&mut buf).await.unwrap(), 6);
    });
}

// ---------------------------------------------------------------------------------------------
// EMFILE (checklist 26)
// ---------------------------------------------------------------------------------------------

const EMFILE_CHILD: &str = "AIOLOOP_TEST_EMFILE_CHILD";
const EMFILE: i32 = 24;

/// Runs in a child process whose descriptor limit is 64: three clients wait in the listener's
/// backlog while every free descriptor is taken, so `accept` fails with EMFILE. The accept loop
/// must back off (few loop iterations, other tasks still run), and serve the three clients once
/// a task frees the descriptors.
fn emfile_child() {
    let mut lp = EventLoop::new().unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let clients: Vec<std::net::TcpStream> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(EMFILE) => break,
            Err(e) => panic!("unexpected error while taking descriptors: {e}"),
        }
    }
    assert!(std::fs::File::open("/dev/null").is_err(), "the process is out of descriptors");
    let hogged = hog.len();
    let hog = Rc::new(RefCell::new(hog));
    let ((freed_at, accepted_at, ticks), iterations) = counting_iterations(&mut lp, async {
        let listener = TcpListener::from_std(std_listener).unwrap(); // needs no new descriptor
        let freed_at = Rc::new(Cell::new(None));
        let ticks = Rc::new(Cell::new(0u32));
        let freer = aioloop::spawn({
            let (hog, freed_at) = (hog.clone(), freed_at.clone());
            async move {
                aioloop::sleep(ms(100)).await;
                hog.borrow_mut().clear();
                freed_at.set(Some(Instant::now()));
            }
        });
        let ticker = aioloop::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    aioloop::sleep(ms(5)).await;
                    ticks.set(ticks.get() + 1);
                }
            }
        });
        let mut accepted_at = Vec::new();
        for _ in 0..3 {
            let (s, _) = listener.accept().await.unwrap();
            accepted_at.push(Instant::now());
            (&s).write_all(b"served\n").await.unwrap();
        }
        freer.await.unwrap();
        ticker.cancel();
        (freed_at.get().unwrap(), accepted_at, ticks.get())
    });
    assert!(accepted_at[0] >= freed_at, "accepted before descriptors were freed?");
    assert!(ticks >= 5, "other tasks ran during the back-off: {ticks} ticks");
    // Backing off from 1 ms doubling, ~8 retries in the ~130 ms, plus the ticker's ~25 wakes;
    // a spinning accept loop would run tens of thousands of iterations.
    assert!(iterations < 300, "accept spun on EMFILE: {iterations} iterations");
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        c.read_to_string(&mut line).unwrap();
        assert_eq!(line, "served\n");
    }
    println!("EMFILE child ok: {hogged} descriptors taken, {iterations} iterations, {ticks} ticks");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets and a child process")]
fn accept_backs_off_while_out_of_descriptors_and_recovers() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        emfile_child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "ulimit -n 64 && exec \"$0\" --exact accept_backs_off_while_out_of_descriptors_and_recovers \
             --nocapture --test-threads=1",
        )
        .arg(&exe)
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("EMFILE child ok"), "the child did not run the scenario:\n{stdout}\n{stderr}");
}

/// Shutting down the writing side of a connection the peer already reset: the OS says
/// `NotConnected` (ENOTCONN), which hyper logged as "error shutting down connection" for most
/// connections under load; aioloop returns `Ok` for the writing side (`close()`,
/// `shutdown(Write)`, `shutdown(Both)`), as tokio does (tokio#4665).
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn shutting_down_the_writing_side_of_a_reset_connection_is_ok() {
    aioloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
        drop(s); // SO_LINGER 0: the close sends a reset
        let e = c.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        // What the OS says, underneath:
        let raw = c.get_ref().shutdown(Shutdown::Write).unwrap_err();
        assert_eq!(raw.kind(), io::ErrorKind::NotConnected, "{raw}");
        c.shutdown(Shutdown::Write).unwrap();
        c.shutdown(Shutdown::Both).unwrap();
        c.close().await.unwrap();
        (&c).close().await.unwrap();
        // The reading side alone keeps the OS's answer.
        assert_eq!(c.shutdown(Shutdown::Read).unwrap_err().kind(), io::ErrorKind::NotConnected);
    });
}

/// `TcpListener::incoming` and `UnixListener::incoming`: `Unpin` streams of accepted
/// connections (items `io::Result<TcpStream>` / `io::Result<UnixStream>`), each usable at once.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn incoming_streams_yield_every_accepted_connection() {
    use futures_lite::StreamExt;
    fn unpin_stream_of<T>(_: &(impl futures_core::Stream<Item = io::Result<T>> + Unpin)) {}
    let dir = TempDir::new("incoming");
    let path = dir.0.join("sock");
    aioloop::run(async {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let unix = UnixListener::bind(&path).unwrap();
        let addr = tcp.local_addr().unwrap();
        for i in 0..20u8 {
            aioloop::spawn(async move { TcpStream::connect(addr).await.unwrap().write_all(&[i]).await.unwrap() });
            let p = path.clone();
            aioloop::spawn(async move { UnixStream::connect(p).await.unwrap().write_all(&[100 + i]).await.unwrap() });
        }
        let mut incoming = tcp.incoming();
        unpin_stream_of::<TcpStream>(&incoming);
        let mut seen = Vec::new();
        for _ in 0..20 {
            let mut conn = incoming.next().await.expect("never ends").unwrap();
            assert_eq!(conn.peer_addr().unwrap().ip(), addr.ip());
            let mut byte = [0u8];
            conn.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        let mut incoming = unix.incoming();
        unpin_stream_of::<UnixStream>(&incoming);
        for _ in 0..20 {
            let mut conn = incoming.next().await.expect("never ends").unwrap();
            let mut byte = [0u8];
            conn.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        seen.sort();
        assert_eq!(seen, (0..20).chain(100..120).collect::<Vec<u8>>());
        // `accept` still works beside a stream that was dropped midway.
        let waiting = tcp.incoming();
        drop(waiting);
        aioloop::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        assert!(tcp.accept().await.is_ok());
    });
}
