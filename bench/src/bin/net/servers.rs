//! The servers under test, one function per runtime, each the same program: accept, then one
//! task (or, for the floor, one slab entry) per connection that speaks the protocol of
//! [`proto`](crate::proto) until the peer closes. Every server sets `TCP_NODELAY` on accepted
//! connections, listens on 127.0.0.1 with a free port, prints the port on stdout, and serves
//! until it is killed.
//!
//! - `aioloop`: one `EventLoop`; `aioloop2`: two loops of `PerCore` with `SO_REUSEPORT`
//!   listeners on one port (the driver pins the process to one CPU, so both loops share it).
//! - `tokio`: the current-thread runtime with a `LocalSet` (`spawn_local`, like aioloop's
//!   `!Send` tasks).
//! - `smol`: async-io's reactor with async-executor's `LocalExecutor`.
//! - `floor`: a hand-written edge-triggered loop over the `polling` crate, which aioloop and
//!   smol also sit on: what any runtime on `polling` must pay. Per request a `read`, a `write`
//!   and the `read` that says `WouldBlock`; per wait, besides `epoll_wait`, polling's
//!   `timerfd_settime`, two `epoll_ctl`s and the notifier's `read`. It reads every connection
//!   into one shared buffer, which stays in the L1 cache.
//! - `floor_buf`: `floor` with a `BUF`-byte read buffer per connection, as every runtime's
//!   server here has (a task per connection, each with its own buffer): the same application
//!   as theirs, without a runtime.
//! - `epoll`: the same loop on raw epoll (rustix), the way mio (tokio) uses it: the wait is a
//!   lone `epoll_wait`, and sockets are registered with `EPOLLRDHUP`, so a short read means
//!   "drained" (a later byte brings a new edge, and a pending end of stream was reported with
//!   the event) and no `read` ends in `WouldBlock`. `polling` cannot ask for `EPOLLRDHUP`, which
//!   is why `floor` reads until `WouldBlock`: after a short read, an end of stream that arrived
//!   with the data would bring no new edge.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};

use crate::proto::{Http, Kind, BUF};

/// Runs the named server until the process is killed.
pub fn run(runtime: &str, kind: Kind) {
    match runtime {
        "aioloop" => aioloop_server(kind),
        "aioloop2" => aioloop_per_core(kind, 2),
        "tokio" => tokio_server(kind),
        "smol" => smol_server(kind),
        "floor" => floor_server(kind, false),
        "floor_buf" => floor_server(kind, true),
        "epoll" => epoll_server(kind),
        other => panic!("unknown server {other:?}"),
    }
}

/// Tells the driver where the server listens.
fn announce(addr: SocketAddr) {
    println!("{}", addr.port());
    io::stdout().flush().expect("stdout");
}

// ===== aioloop =====

async fn aioloop_conn(mut conn: aioloop::net::TcpStream, kind: Kind) -> io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF];
    let mut http = Http::default();
    let mut out = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match kind {
            Kind::Echo => conn.write_all(&buf[..n]).await?,
            Kind::Http => {
                out.clear();
                http.feed(&buf[..n], &mut out);
                conn.write_all(&out).await?;
            }
        }
    }
}

async fn aioloop_accept(listener: aioloop::net::TcpListener, kind: Kind) -> io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        aioloop::spawn(async move {
            let _ = aioloop_conn(conn, kind).await;
        });
    }
}

fn aioloop_server(kind: Kind) {
    let mut lp = aioloop::EventLoop::new().expect("loop");
    lp.run_until_complete(async {
        let listener = aioloop::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        announce(listener.local_addr().unwrap());
        aioloop_accept(listener, kind).await
    })
    .expect("server");
}

fn aioloop_per_core(kind: Kind, loops: usize) {
    use aioloop::net::{TcpListenOptions, TcpListener};
    // The first loop to bind picks the port; the others bind the same one.
    let port = Arc::new(Mutex::new(None::<SocketAddr>));
    let (bound_tx, bound) = mpsc::channel();
    let servers = aioloop::PerCore::new(loops)
        .spawn(move |_| {
            let (port, bound_tx) = (port.clone(), bound_tx.clone());
            async move {
                let listener = {
                    let mut port = port.lock().unwrap();
                    let addr = port.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
                    let l = TcpListener::bind_with(addr, TcpListenOptions::new().reuse_port(true))?;
                    *port = Some(l.local_addr()?);
                    l
                };
                bound_tx.send(listener.local_addr()?).unwrap();
                aioloop_accept(listener, kind).await
            }
        })
        .expect("start the loops");
    let addr = bound.recv().expect("a loop listens");
    for _ in 1..loops {
        bound.recv().expect("every loop listens");
    }
    announce(addr);
    let outcomes = servers.join();
    panic!("the server loops ended: {outcomes:?}");
}

// ===== tokio =====

async fn tokio_conn(mut conn: tokio::net::TcpStream, kind: Kind) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF];
    let mut http = Http::default();
    let mut out = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match kind {
            Kind::Echo => conn.write_all(&buf[..n]).await?,
            Kind::Http => {
                out.clear();
                http.feed(&buf[..n], &mut out);
                conn.write_all(&out).await?;
            }
        }
    }
}

fn tokio_server(kind: Kind) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local
        .block_on(&rt, async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            announce(listener.local_addr()?);
            loop {
                let (conn, _) = listener.accept().await?;
                conn.set_nodelay(true)?;
                tokio::task::spawn_local(async move {
                    let _ = tokio_conn(conn, kind).await;
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
        .expect("server");
}

// ===== smol =====

async fn smol_conn(mut conn: async_io::Async<TcpStream>, kind: Kind) -> io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF];
    let mut http = Http::default();
    let mut out = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match kind {
            Kind::Echo => conn.write_all(&buf[..n]).await?,
            Kind::Http => {
                out.clear();
                http.feed(&buf[..n], &mut out);
                conn.write_all(&out).await?;
            }
        }
    }
}

fn smol_server(kind: Kind) {
    let ex = Rc::new(async_executor::LocalExecutor::new());
    let spawner = ex.clone();
    async_io::block_on(ex.run(async move {
        let listener = async_io::Async::<TcpListener>::bind(([127, 0, 0, 1], 0))?;
        announce(listener.get_ref().local_addr()?);
        loop {
            let (conn, _) = listener.accept().await?;
            conn.get_ref().set_nodelay(true)?;
            spawner
                .spawn(async move {
                    let _ = smol_conn(conn, kind).await;
                })
                .detach();
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    }))
    .expect("server");
}

// ===== the floor: edge-triggered epoll by hand =====

/// A connection of the floor server.
struct FloorConn {
    stream: TcpStream,
    http: Http,
    /// Bytes to write that the socket did not take yet.
    unsent: Vec<u8>,
    /// Its own read buffer (`floor_buf` only; `floor` reads every connection into one buffer).
    buf: Vec<u8>,
}

/// The `polling` floor. `own_buffers`: each connection reads into a read buffer of its own, as
/// in the servers of the runtimes (a task per connection, each with its `BUF`-byte buffer), rather
/// than into one buffer shared by all (which stays in the L1 cache: at 1,000 connections that
/// alone saves about 8 % of the server's CPU per request).
fn floor_server(kind: Kind, own_buffers: bool) {
    use polling::{Event, Events, PollMode, Poller};
    const LISTENER: usize = usize::MAX - 1;
    let poller = Poller::new().expect("poller");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    // SAFETY: the listener outlives the poller's use of it (the process is killed, never
    // returning from this function).
    unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Edge) }.unwrap();
    announce(listener.local_addr().unwrap());
    let mut conns: slab::Slab<FloorConn> = slab::Slab::new();
    let mut events = Events::new();
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::new();
    loop {
        events.clear();
        poller.wait(&mut events, None).expect("wait");
        for ev in events.iter() {
            if ev.key == LISTENER {
                // Edge-triggered: accept until the backlog is empty.
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true).unwrap();
                            stream.set_nodelay(true).unwrap();
                            let entry = conns.vacant_entry();
                            // SAFETY: deleted from the poller before the stream is dropped
                            // (`close` below).
                            unsafe { poller.add_with_mode(&stream, Event::readable(entry.key()), PollMode::Edge) }
                                .unwrap();
                            let buf = if own_buffers { vec![0u8; BUF] } else { Vec::new() };
                            entry.insert(FloorConn { stream, http: Http::default(), unsent: Vec::new(), buf });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                continue;
            }
            let key = ev.key;
            let Some(c) = conns.get_mut(key) else { continue };
            let mut closed = false;
            if ev.writable && !c.unsent.is_empty() {
                closed |= flush(&poller, key, c).is_err();
            }
            if ev.readable && !closed {
                closed = if own_buffers {
                    let mut own = std::mem::take(&mut c.buf);
                    let r = floor_read(&poller, key, c, kind, &mut own, &mut out);
                    c.buf = own;
                    r.is_err()
                } else {
                    floor_read(&poller, key, c, kind, &mut buf, &mut out).is_err()
                };
            }
            if closed {
                let c = conns.remove(key);
                poller.delete(&c.stream).unwrap();
            }
        }
    }
}

/// Reads until `WouldBlock`, answering each read; `Err` when the peer closed or failed.
fn floor_read(
    poller: &polling::Poller,
    key: usize,
    c: &mut FloorConn,
    kind: Kind,
    buf: &mut [u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        let n = match c.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        if respond(c, kind, &buf[..n], out)? {
            want_writable(poller, key, c)?;
        }
    }
}

/// Answers `input` on `c`: writes the reply, or queues what the socket did not take; returns
/// true if the connection must now wait for writability.
fn respond(c: &mut FloorConn, kind: Kind, input: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
    let reply: &[u8] = match kind {
        Kind::Echo => input,
        Kind::Http => {
            out.clear();
            c.http.feed(input, out);
            out
        }
    };
    if !c.unsent.is_empty() {
        c.unsent.extend_from_slice(reply);
        return Ok(false);
    }
    match c.stream.write(reply) {
        Ok(m) if m == reply.len() => Ok(false),
        Ok(m) => {
            c.unsent.extend_from_slice(&reply[m..]);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            c.unsent.extend_from_slice(reply);
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

fn want_writable(poller: &polling::Poller, key: usize, c: &FloorConn) -> io::Result<()> {
    poller.modify_with_mode(&c.stream, polling::Event::all(key), polling::PollMode::Edge)
}

/// Writes what is pending; back to read interest only once it is all out.
fn flush(poller: &polling::Poller, key: usize, c: &mut FloorConn) -> io::Result<()> {
    while !c.unsent.is_empty() {
        match c.stream.write(&c.unsent) {
            Ok(m) => drop(c.unsent.drain(..m)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    poller.modify_with_mode(&c.stream, polling::Event::readable(key), polling::PollMode::Edge)
}

// ===== raw epoll with EPOLLRDHUP (what mio does) =====

fn epoll_server(kind: Kind) {
    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::{self, EventData, EventFlags};
    const LISTENER: u64 = u64::MAX;
    let conn_flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ET;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN | EventFlags::ET).unwrap();
    announce(listener.local_addr().unwrap());
    let mut conns: slab::Slab<FloorConn> = slab::Slab::new();
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::new();
    loop {
        events.clear();
        match epoll::wait(&ep, spare_capacity(&mut events), None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for ev in &events {
            let (key, flags) = (ev.data.u64(), ev.flags);
            if key == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true).unwrap();
                            stream.set_nodelay(true).unwrap();
                            let entry = conns.vacant_entry();
                            epoll::add(&ep, &stream, EventData::new_u64(entry.key() as u64), conn_flags).unwrap();
                            entry.insert(FloorConn { stream, http: Http::default(), unsent: Vec::new(), buf: Vec::new() });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                continue;
            }
            let key = key as usize;
            let Some(c) = conns.get_mut(key) else { continue };
            let mut closed = flags.intersects(EventFlags::ERR);
            if !closed && flags.contains(EventFlags::OUT) && !c.unsent.is_empty() {
                closed = epoll_flush(&ep, key, c, conn_flags).is_err();
            }
            if !closed && flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::HUP) {
                // After RDHUP, read on to the end of the stream; otherwise a short read drained it.
                let to_the_end = flags.intersects(EventFlags::RDHUP | EventFlags::HUP);
                closed = epoll_read(&ep, key, c, kind, &mut buf, &mut out, conn_flags, to_the_end).is_err();
            }
            if closed {
                let c = conns.remove(key);
                epoll::delete(&ep, &c.stream).unwrap();
            }
        }
    }
}

/// Reads until a short read (or, with `to_the_end`, until the end of the stream or
/// `WouldBlock`), answering each read.
#[allow(clippy::too_many_arguments)]
fn epoll_read(
    ep: &std::os::fd::OwnedFd,
    key: usize,
    c: &mut FloorConn,
    kind: Kind,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    flags: rustix::event::epoll::EventFlags,
    to_the_end: bool,
) -> io::Result<()> {
    use rustix::event::epoll::{self, EventData, EventFlags};
    loop {
        let n = match c.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        if respond(c, kind, &buf[..n], out)? {
            epoll::modify(ep, &c.stream, EventData::new_u64(key as u64), flags | EventFlags::OUT)?;
        }
        if n < buf.len() && !to_the_end {
            return Ok(());
        }
    }
}

fn epoll_flush(
    ep: &std::os::fd::OwnedFd,
    key: usize,
    c: &mut FloorConn,
    flags: rustix::event::epoll::EventFlags,
) -> io::Result<()> {
    use rustix::event::epoll::{self, EventData};
    while !c.unsent.is_empty() {
        match c.stream.write(&c.unsent) {
            Ok(m) => drop(c.unsent.drain(..m)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(epoll::modify(ep, &c.stream, EventData::new_u64(key as u64), flags)?)
}
