//! The echo load generator shared by every server: one thread, level-triggered epoll (the
//! `polling` crate), N connections each in a closed loop of 64-byte requests (send, wait for the
//! whole echo, check it, send the next).
//!
//! It connects in waves of 100 (each connection proven accepted by one echo before the next
//! wave, so no server's listen backlog overflows), warms up, then measures for a fixed time:
//! completed round trips, their latencies, and the server process's CPU time (utime + stime from
//! `/proc/<pid>/stat`, all its threads) over exactly that window.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The size of a request and of its echo.
const REQUEST: usize = 64;
/// Connections opened at once before checking them.
const WAVE: usize = 100;

/// One connection's state in the closed loop.
struct Conn {
    stream: TcpStream,
    /// The request in flight (its echo must match).
    request: [u8; REQUEST],
    /// Bytes of the echo received so far.
    reply: [u8; REQUEST],
    got: usize,
    /// When the request in flight was sent.
    sent: Instant,
    seq: u64,
}

impl Conn {
    fn next_request(&mut self, id: usize) {
        self.seq += 1;
        self.request[..8].copy_from_slice(&(id as u64).to_le_bytes());
        self.request[8..16].copy_from_slice(&self.seq.to_le_bytes());
        self.got = 0;
    }

    /// Sends the request in flight (64 bytes into an empty send buffer: one `write`).
    fn send(&mut self) -> io::Result<()> {
        self.sent = Instant::now();
        match self.stream.write(&self.request)? {
            REQUEST => Ok(()),
            n => Err(io::Error::other(format!("short write of {n} bytes"))),
        }
    }
}

/// What the client measured.
pub struct Measured {
    pub requests: u64,
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server CPU time per request, µs.
    pub cpu_us: f64,
    /// Server CPU time / wall time over the window.
    pub cpu_load: f64,
}

/// Reads utime + stime of a process, in clock ticks (USER_HZ, 100 per second on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's /proc/<pid>/stat");
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("(comm)") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Microseconds per clock tick of `/proc/<pid>/stat`.
pub const TICK_US: f64 = 10_000.0;

fn connect_all(port: u16, n: usize) -> io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let wave = WAVE.min(n - conns.len());
        let start = conns.len();
        for id in start..start + wave {
            let stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_nodelay(true)?;
            let mut c =
                Conn { stream, request: [0; REQUEST], reply: [0; REQUEST], got: 0, sent: Instant::now(), seq: 0 };
            c.next_request(id);
            c.send()?;
            conns.push(c);
        }
        for c in &mut conns[start..] {
            c.stream.read_exact(&mut c.reply)?;
            if c.reply != c.request {
                return Err(io::Error::other("a first echo differs from its request"));
            }
        }
    }
    Ok(conns)
}

/// Runs the closed loop on `connections` connections to `port`: `warmup`, then `window`
/// measured, reading the CPU time of process `server_pid` at both ends of the window.
pub fn run(port: u16, connections: usize, warmup: Duration, window: Duration, server_pid: u32) -> io::Result<Measured> {
    use polling::{Event, Events, PollMode, Poller};
    let mut conns = connect_all(port, connections)?;
    let poller = Poller::new()?;
    for (key, c) in conns.iter_mut().enumerate() {
        c.stream.set_nonblocking(true)?;
        // SAFETY: every stream is deleted from the poller below, before `conns` is dropped.
        unsafe { poller.add_with_mode(&c.stream, Event::readable(key), PollMode::Level)? };
        c.next_request(key);
        c.send()?;
    }
    let mut events = Events::new();
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let (mut measuring, mut window_start, mut cpu_start) = (false, start, 0);
    let mut requests = 0u64;
    loop {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(10)))?;
        for ev in events.iter() {
            let key = ev.key;
            let c = &mut conns[key];
            let n = match c.stream.read(&mut c.reply[c.got..]) {
                Ok(0) => return Err(io::Error::other("the server closed a connection")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            c.got += n;
            if c.got < REQUEST {
                continue;
            }
            if c.reply != c.request {
                return Err(io::Error::other("an echo differs from its request"));
            }
            if measuring {
                latencies.push(c.sent.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                requests += 1;
            }
            c.next_request(key);
            c.send()?;
        }
        let now = Instant::now();
        if !measuring && now - start >= warmup {
            measuring = true;
            window_start = now;
            cpu_start = cpu_ticks(server_pid);
        } else if measuring && now - window_start >= window {
            let cpu = cpu_ticks(server_pid) - cpu_start;
            let elapsed = now - window_start;
            for c in &conns {
                poller.delete(&c.stream)?;
            }
            if latencies.is_empty() {
                return Err(io::Error::other("no request completed in the measured window"));
            }
            latencies.sort_unstable();
            let pct = |p: usize| f64::from(latencies[(latencies.len() * p / 100).min(latencies.len() - 1)]) / 1e3;
            return Ok(Measured {
                requests,
                per_sec: requests as f64 / elapsed.as_secs_f64(),
                p50_us: pct(50),
                p99_us: pct(99),
                cpu_us: cpu as f64 * TICK_US / requests.max(1) as f64,
                cpu_load: cpu as f64 * TICK_US / 1e6 / elapsed.as_secs_f64(),
            });
        }
    }
}
