//! hyper 1.x on the loop through `aioloop::hyper` (the `hyper` feature): HTTP/1 and HTTP/2
//! servers and clients on one loop with `!Send` services, 100 concurrent h2 streams, a client
//! cancelled midway, header-read timeouts, and graceful shutdown (reliability checklist items
//! 57-59, "hyper integration").
//!
//! Real sockets on 127.0.0.1 where the network matters; an in-memory stream (any futures-io
//! stream works with `HyperIo`) where the test is about time, so it runs on virtual time.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aioloop::hyper::{HyperExecutor, HyperIo, HyperTimer};
use aioloop::net::{TcpListener, TcpStream};
use aioloop::sync::Event;
use aioloop::{EventLoop, ReturnWhen, Task};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::Timer;
use hyper::{Request, Response, StatusCode, Version};

type Reply = Response<Full<Bytes>>;

fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The number of unfinished tasks on the running loop.
fn live_tasks() -> usize {
    aioloop::all_tasks().tasks.len()
}

/// A service holding `Rc` state: it counts its requests and answers "<version> <path> #<n>",
/// after sleeping the number of milliseconds in a `?ms=` query, if any.
fn counting(
    count: Rc<Cell<usize>>,
) -> impl hyper::service::Service<Request<Incoming>, Response = Reply, Error = Infallible> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let count = count.clone();
        async move {
            let ms = req.uri().query().and_then(|q| q.strip_prefix("ms=")).map_or(0, |v| v.parse().unwrap());
            aioloop::sleep(Duration::from_millis(ms)).await;
            count.set(count.get() + 1);
            let body = format!("{:?} {} #{}", req.version(), req.uri().path(), count.get());
            Ok(Response::new(Full::new(Bytes::from(body))))
        }
    })
}

fn get(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).header("host", "localhost").body(Empty::new()).unwrap()
}

async fn text(resp: Response<Incoming>) -> String {
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Serves HTTP/1 on one accepted connection, with the loop's timer and a header-read timeout.
fn serve_h1<S>(listener: Rc<TcpListener>, service: S, header_timeout: Duration) -> Task<Result<(), hyper::Error>>
where
    S: hyper::service::Service<Request<Incoming>, Response = Reply, Error = Infallible> + 'static,
{
    aioloop::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(HyperIo::new(stream), service)
            .await
    })
}

/// Serves HTTP/2 with prior knowledge (h2c) on one accepted connection.
fn serve_h2<S>(listener: Rc<TcpListener>, service: S) -> Task<Result<(), hyper::Error>>
where
    S: hyper::service::Service<Request<Incoming>, Response = Reply, Error = Infallible> + 'static,
{
    aioloop::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer::new())
            .max_concurrent_streams(200)
            .serve_connection(HyperIo::new(stream), service)
            .await
    })
}

async fn h2_client<T>(io: T) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>>
where
    T: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(HyperExecutor::new(), HyperIo::new(io)).await.unwrap();
    aioloop::spawn(conn);
    sender
}

fn bind() -> Rc<TcpListener> {
    Rc::new(TcpListener::bind("127.0.0.1:0").unwrap())
}

// ===== Item 57 (a real request through the timer) and 58: HTTP/1 and HTTP/2 on one loop =====

#[test]
fn http1_and_http2_servers_and_clients_share_one_loop_with_rc_services() {
    aioloop::run(async {
        let count = Rc::new(Cell::new(0));
        let (l1, l2) = (bind(), bind());
        let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
        // A configured header-read timeout needs the timer (without one hyper panics per connection).
        let s1 = serve_h1(l1, counting(count.clone()), secs(5));
        let s2 = serve_h2(l2, counting(count.clone()));

        // HTTP/1.1: three requests on one keep-alive connection.
        let io = TcpStream::connect(a1).await.unwrap();
        let (mut h1, conn) = hyper::client::conn::http1::handshake(HyperIo::new(io)).await.unwrap();
        let h1_conn = aioloop::spawn(conn);
        for path in ["/a", "/b", "/c"] {
            h1.ready().await.unwrap();
            let resp = h1.send_request(get(path)).await.unwrap();
            assert_eq!((resp.status(), resp.version()), (StatusCode::OK, Version::HTTP_11));
            assert!(text(resp).await.starts_with(&format!("HTTP/1.1 {path} #")));
        }

        // HTTP/2 (prior knowledge): three requests, concurrently, on one connection.
        let h2 = h2_client(TcpStream::connect(a2).await.unwrap()).await;
        let reqs = ["/x", "/y", "/z"].map(|path| {
            let mut h2 = h2.clone();
            aioloop::spawn(async move {
                let resp = h2.send_request(get(&format!("http://localhost{path}"))).await.unwrap();
                assert_eq!((resp.status(), resp.version()), (StatusCode::OK, Version::HTTP_2));
                text(resp).await
            })
        });
        let bodies = aioloop::gather(reqs).await.unwrap();
        for (body, path) in bodies.iter().zip(["/x", "/y", "/z"]) {
            assert!(body.starts_with(&format!("HTTP/2.0 {path} #")), "{body}");
        }
        assert_eq!(count.get(), 6, "both servers' services share one Rc counter");

        // Closing the clients ends both server connections cleanly.
        drop((h1, h2));
        assert!(h1_conn.await.unwrap().is_ok());
        assert!(s1.await.unwrap().is_ok());
        assert!(s2.await.unwrap().is_ok());
    });
}

// ===== Item 58: per-stream tasks through the executor =====

#[test]
fn h2_serves_100_concurrent_streams_each_a_task_of_the_loop() {
    aioloop::run(async {
        let listener = bind();
        let addr = listener.local_addr().unwrap();
        // Every handler waits until all 100 are in flight at once, so they must be concurrent.
        let in_flight = Rc::new(Cell::new(0usize));
        let all_in = Rc::new(Event::new());
        let (i, ev) = (in_flight.clone(), all_in.clone());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (i, ev) = (i.clone(), ev.clone());
            async move {
                i.set(i.get() + 1);
                if i.get() == 100 {
                    ev.set();
                }
                ev.wait().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(req.uri().path().to_owned()))))
            }
        });
        let server = serve_h2(listener, service);
        let h2 = h2_client(TcpStream::connect(addr).await.unwrap()).await;
        let baseline_during = Rc::new(Cell::new(0));
        let requests: Vec<_> = (0..100)
            .map(|n| {
                let mut h2 = h2.clone();
                aioloop::spawn(async move {
                    let resp = h2.send_request(get(&format!("http://localhost/{n}"))).await.unwrap();
                    assert_eq!(resp.status(), StatusCode::OK);
                    text(resp).await
                })
            })
            .collect();
        // While the handlers wait, each stream's handler is a task of this loop.
        let b = baseline_during.clone();
        let watcher = aioloop::spawn(async move {
            all_in.wait().await;
            b.set(live_tasks());
        });
        let bodies = aioloop::gather(requests).await.unwrap();
        assert_eq!(bodies, (0..100).map(|n| format!("/{n}")).collect::<Vec<_>>());
        assert_eq!(in_flight.get(), 100);
        watcher.await.unwrap();
        // main + server + client conn + 100 requests + 100 server stream tasks (+ hyper's own).
        assert!(baseline_during.get() >= 203, "{} tasks with 100 streams open", baseline_during.get());
        drop(h2);
        assert!(server.await.unwrap().is_ok());
    });
}

#[test]
fn cancelling_an_h2_client_midway_returns_the_live_task_count_to_baseline() {
    aioloop::run(async {
        let baseline = live_tasks();
        let listener = bind();
        let addr = listener.local_addr().unwrap();
        let started = Rc::new(Cell::new(0usize));
        let dropped = Rc::new(Cell::new(0usize));
        let (s, d) = (started.clone(), dropped.clone());
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            s.set(s.get() + 1);
            let guard = OnDrop(d.clone());
            async move {
                let _guard = guard;
                aioloop::sleep(secs(3600)).await; // never answers in time
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        });
        let server = serve_h2(listener, service);

        // The client: its connection task and 100 request tasks.
        let client_tasks = Rc::new(RefCell::new(vec![]));
        let ct = client_tasks.clone();
        let client = aioloop::spawn(async move {
            let io = HyperIo::new(TcpStream::connect(addr).await.unwrap());
            let (sender, conn) = hyper::client::conn::http2::handshake(HyperExecutor::new(), io).await.unwrap();
            ct.borrow_mut().push(aioloop::spawn(async move {
                let _ = conn.await;
            }));
            for n in 0..100 {
                let mut sender = sender.clone();
                ct.borrow_mut().push(aioloop::spawn(async move {
                    let _ = sender.send_request(get(&format!("http://localhost/{n}"))).await;
                }));
            }
        });
        client.await.unwrap();
        while started.get() < 100 {
            aioloop::sleep(Duration::from_millis(1)).await;
        }
        assert!(live_tasks() >= baseline + 202, "server + client conn + 100 requests + 100 streams");

        // Cancel the client midway: its connection (and socket) and every request task.
        for t in client_tasks.borrow().iter() {
            t.cancel();
        }
        // The server sees the connection end; every stream task spawned through the executor
        // finishes, dropping its handler.
        let deadline = Instant::now() + secs(5);
        while live_tasks() > baseline && Instant::now() < deadline {
            aioloop::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(live_tasks(), baseline, "{}", aioloop::all_tasks());
        assert_eq!(dropped.get(), 100, "every handler future was dropped");
        assert!(server.is_done());
    });
}

#[test]
fn a_panicking_h2_handler_resets_its_stream_only_and_is_reported() {
    let mut lp = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(vec![]));
    let r = reports.clone();
    lp.set_exception_handler(move |ctx| {
        let payload = ctx.panic.and_then(|p| p.downcast_ref::<&str>()).copied().unwrap_or("?");
        r.borrow_mut().push(format!("{}: {payload}", ctx.message));
    });
    lp.run_until_complete(async {
        let listener = bind();
        let addr = listener.local_addr().unwrap();
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            aioloop::yield_now().await; // the panic happens in the stream's task, mid-way
            if req.uri().path() == "/panic" {
                panic!("handler panicked");
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("fine"))))
        });
        let server = serve_h2(listener, service);
        let h2 = h2_client(TcpStream::connect(addr).await.unwrap()).await;
        let send = |path: &'static str| {
            let mut h2 = h2.clone();
            aioloop::spawn(async move { h2.send_request(get(&format!("http://localhost{path}"))).await })
        };
        let (bad, good) = (send("/panic"), send("/ok"));
        assert!(bad.await.unwrap().is_err(), "the panicking stream is reset");
        assert_eq!(text(good.await.unwrap().unwrap()).await, "fine");
        // The connection goes on serving after the panic.
        assert_eq!(text(send("/again").await.unwrap().unwrap()).await, "fine");
        drop(h2);
        assert!(server.await.unwrap().is_ok());
    });
    assert_eq!(*reports.borrow(), ["Task exception was never retrieved: handler panicked"]);
}

struct OnDrop(Rc<Cell<usize>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ===== Item 57: header-read timeouts and HyperTimer =====

#[test]
fn a_real_request_gets_200_and_a_half_sent_header_is_closed_after_the_timeout() {
    aioloop::run(async {
        let count = Rc::new(Cell::new(0));
        let listener = bind();
        let addr = listener.local_addr().unwrap();

        // A whole request within the timeout: 200.
        let server = serve_h1(listener.clone(), counting(count.clone()), Duration::from_millis(300));
        let mut s = TcpStream::connect(addr).await.unwrap();
        AsyncWriteExt::write_all(&mut s, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut reply = String::new();
        AsyncReadExt::read_to_string(&mut s, &mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(server.await.unwrap().is_ok());

        // Half a header, then silence: closed after the 300 ms timeout, not before.
        let server = serve_h1(listener, counting(count.clone()), Duration::from_millis(300));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let sent = Instant::now();
        AsyncWriteExt::write_all(&mut s, b"GET /half HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut rest = vec![];
        let n = AsyncReadExt::read_to_end(&mut s, &mut rest).await.unwrap();
        let waited = sent.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < secs(3), "closed after {waited:?}");
        assert_eq!(n, 0, "closed without a response");
        let err = server.await.unwrap().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(count.get(), 1, "the half request never reached the service");
    });
}

#[test]
fn a_half_sent_header_is_closed_at_the_timeout_on_virtual_time() {
    let mut lp = vloop();
    let t0 = lp.time();
    let (server_end, mut client_end) = duplex();
    lp.run_until_complete(async move {
        let server = aioloop::spawn(
            hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .header_read_timeout(secs(30))
                .serve_connection(HyperIo::new(server_end), counting(Rc::new(Cell::new(0)))),
        );
        client_end.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        aioloop::sleep(secs(29)).await;
        assert!(!server.is_done(), "still within the timeout");
        let mut rest = vec![];
        assert_eq!(client_end.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(aioloop::now() - t0, secs(30), "closed at the timeout, to the nanosecond");
        assert!(server.await.unwrap().unwrap_err().is_timeout());
    });
}

#[test]
fn hyper_timer_reset_moves_a_waiting_sleep_earlier_and_later_on_loop_time() {
    let mut lp = vloop();
    let t0 = lp.time();
    lp.run_until_complete(async move {
        let timer = HyperTimer::new();
        assert_eq!(timer.now(), aioloop::now(), "the loop's (virtual) clock");
        let earlier = Rc::new(RefCell::new(timer.sleep(secs(30))));
        let later = Rc::new(RefCell::new(timer.sleep_until(t0 + secs(2))));
        let wait = |s: &Rc<RefCell<Pin<Box<dyn hyper::rt::Sleep>>>>| {
            let s = s.clone();
            aioloop::spawn(async move {
                std::future::poll_fn(|cx| s.borrow_mut().as_mut().poll(cx)).await;
                aioloop::now() - t0
            })
        };
        let (w1, w2) = (wait(&earlier), wait(&later));
        aioloop::sleep(secs(1)).await; // both tasks are parked on their timers
        timer.reset(&mut earlier.borrow_mut(), t0 + secs(5));
        timer.reset(&mut later.borrow_mut(), t0 + secs(7));
        // (Bounded, so a lost wake-up fails the test instead of hanging it.)
        assert_eq!(aioloop::timeout(secs(100), w1).await.expect("woken").unwrap(), secs(5));
        aioloop::sleep_until(t0 + Duration::from_millis(6999)).await;
        assert!(!w2.is_done(), "not woken at the old 2 s deadline");
        assert_eq!(aioloop::timeout(secs(100), w2).await.expect("woken").unwrap(), secs(7));
    });
}

// ===== Item 59: graceful shutdown with connections in flight =====

/// Drives a server connection until `shutdown` is set, then shuts it down gracefully and drives
/// it to its end.
async fn until_shutdown<C: Future>(conn: C, shutdown: Rc<Event>, graceful: impl FnOnce(Pin<&mut C>)) -> C::Output {
    let mut conn = pin!(conn);
    let early = futures_lite::future::or(async { Some(conn.as_mut().await) }, async {
        shutdown.wait().await;
        None
    })
    .await;
    match early {
        Some(out) => out,
        None => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}

#[test]
fn graceful_shutdown_closes_idle_connections_at_once_finishes_in_flight_ones_and_is_bounded() {
    let mut lp = vloop();
    let t0 = lp.time();
    let log = Rc::new(RefCell::new(Vec::<(u64, String)>::new()));
    let at = move || (aioloop::now() - t0).as_millis() as u64;
    let note = {
        let log = log.clone();
        move |what: String| log.borrow_mut().push((at(), what))
    };
    lp.run_until_complete(async move {
        let shutdown = Rc::new(Event::new());
        let count = Rc::new(Cell::new(0));
        let mut conns = vec![];
        let mut h1 = |name: &'static str| {
            let (server_end, client_end) = duplex();
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .serve_connection(HyperIo::new(server_end), counting(count.clone()));
            conns.push((name, aioloop::spawn(until_shutdown(conn, shutdown.clone(), |c| c.graceful_shutdown()))));
            client_end
        };
        let (silent, idle, busy, stuck) = (h1("a silent"), h1("b idle"), h1("c busy"), h1("e stuck"));
        let (server_end, h2_end) = duplex();
        let conn = hyper::server::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer::new())
            .serve_connection(HyperIo::new(server_end), counting(count.clone()));
        conns.push(("d h2", aioloop::spawn(until_shutdown(conn, shutdown.clone(), |c| c.graceful_shutdown()))));

        // The clients. (a) sends nothing and waits for the server to close.
        let n = note.clone();
        let a = aioloop::spawn(async move {
            let mut silent = silent;
            assert_eq!(silent.read(&mut [0; 16]).await.unwrap(), 0);
            n("a closed".into());
        });
        // (b) one request, then idle on the kept-alive connection.
        let n = note.clone();
        let b = aioloop::spawn(async move {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(HyperIo::new(idle)).await.unwrap();
            let conn = aioloop::spawn(conn);
            assert_eq!(tx.send_request(get("/b")).await.unwrap().status(), StatusCode::OK);
            n("b answered".into());
            assert!(conn.await.unwrap().is_ok());
            n("b closed".into());
        });
        // (c) and (e): a request whose handler takes 2 s, and one whose handler takes 60 s.
        let client = |io: DuplexEnd, uri: &'static str, n: Rc<dyn Fn(String)>| {
            aioloop::spawn(async move {
                let (mut tx, conn) = hyper::client::conn::http1::handshake(HyperIo::new(io)).await.unwrap();
                let conn = aioloop::spawn(conn);
                match tx.send_request(get(uri)).await {
                    Ok(resp) => {
                        let close = resp.headers().get("connection").map(|v| v.to_str().unwrap().to_owned());
                        n(format!("{uri} {} connection: {close:?} {}", resp.status(), text(resp).await));
                    }
                    Err(e) => n(format!("{uri} failed: incomplete {}", e.is_incomplete_message())),
                }
                let _ = conn.await;
                n(format!("{uri} closed"));
            })
        };
        let n: Rc<dyn Fn(String)> = Rc::new(note.clone());
        let c = client(busy, "/c?ms=2000", n.clone());
        let e = client(stuck, "/e?ms=60000", n.clone());
        // (d) an h2 connection with one open stream (2 s); a second stream asked after shutdown.
        let n2 = note.clone();
        let d = aioloop::spawn(async move {
            let h2 = h2_client(h2_end).await;
            let mut first = h2.clone();
            let open = aioloop::spawn(async move { first.send_request(get("http://localhost/d?ms=2000")).await });
            aioloop::sleep_until(t0 + Duration::from_millis(1500)).await;
            let mut late = h2.clone();
            let refused = late.send_request(get("http://localhost/late")).await;
            n2(format!("d late stream refused: {}", refused.is_err()));
            let resp = open.await.unwrap().unwrap();
            n2(format!("d {} {}", resp.status(), text(resp).await));
        });

        // Shut down at 1 s, with a 5 s bound: then the remaining connections are dropped.
        aioloop::sleep_until(t0 + secs(1)).await;
        note("shutdown".into());
        shutdown.set();
        let tasks = conns.into_iter().map(|(name, t)| {
            t.set_name(name);
            t
        });
        let (done, pending) = aioloop::wait(tasks, Some(secs(5)), ReturnWhen::AllCompleted).await;
        note(format!("shutdown done, {} dropped", pending.len()));
        for t in done {
            let name = t.name();
            assert!(t.await.unwrap().is_ok(), "{name} ended cleanly");
        }
        for t in pending {
            assert_eq!(t.name(), "e stuck");
            t.cancel();
            assert!(t.await.unwrap_err().is_cancelled());
        }
        for t in [a, b, c, d, e] {
            t.await.unwrap();
        }
    });
    let log = log.borrow().clone();
    let expected: Vec<(u64, &str)> = vec![
        (0, "b answered"),
        (1000, "shutdown"),
        (1000, "a closed"),
        (1000, "b closed"),
        (1500, "d late stream refused: true"),
        (2000, "/c?ms=2000 200 OK connection: Some(\"close\") HTTP/1.1 /c #2"),
        (2000, "/c?ms=2000 closed"),
        (2000, "d 200 OK HTTP/2.0 /d #3"),
        (6000, "shutdown done, 1 dropped"),
        (6000, "/e?ms=60000 failed: incomplete true"),
        (6000, "/e?ms=60000 closed"),
    ];
    let got: Vec<(u64, &str)> = log.iter().map(|(t, s)| (*t, s.as_str())).collect();
    assert_eq!(got, expected);
}

// ===== An in-memory stream: hyper over any futures-io stream, and virtual time =====

/// One direction of a [`duplex`]: bytes written and not yet read.
#[derive(Default)]
struct Pipe {
    buf: VecDeque<u8>,
    /// The writer closed its side (or was dropped): reads return 0 once `buf` is empty.
    eof: bool,
    /// The reader was dropped: writes fail.
    reader_gone: bool,
    /// The reader waiting for bytes.
    waker: Option<Waker>,
}

/// One end of an in-memory, unbounded, bidirectional byte stream.
struct DuplexEnd {
    rx: Rc<RefCell<Pipe>>,
    tx: Rc<RefCell<Pipe>>,
}

fn duplex() -> (DuplexEnd, DuplexEnd) {
    let (ab, ba) = (Rc::new(RefCell::new(Pipe::default())), Rc::new(RefCell::new(Pipe::default())));
    (DuplexEnd { rx: ba.clone(), tx: ab.clone() }, DuplexEnd { rx: ab, tx: ba })
}

impl futures_io::AsyncRead for DuplexEnd {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.borrow_mut();
        if rx.buf.is_empty() && !rx.eof {
            rx.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = out.len().min(rx.buf.len());
        for (o, b) in out.iter_mut().zip(rx.buf.drain(..n)) {
            *o = b;
        }
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for DuplexEnd {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut tx = self.tx.borrow_mut();
        if tx.reader_gone || tx.eof {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        tx.buf.extend(data);
        if let Some(w) = tx.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut tx = self.tx.borrow_mut();
        tx.eof = true;
        if let Some(w) = tx.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for DuplexEnd {
    fn drop(&mut self) {
        self.rx.borrow_mut().reader_gone = true;
        let mut tx = self.tx.borrow_mut();
        tx.eof = true;
        if let Some(w) = tx.waker.take() {
            w.wake();
        }
    }
}
