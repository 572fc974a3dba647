//! Socket workloads (the benchmarks issue, part 2): TCP echo and HTTP keep-alive, aioloop next to
//! tokio's current-thread runtime, smol, and two hand-written floors (on `polling`, as aioloop
//! is, and on raw epoll, as mio is; see [`servers`]), each server in a fresh process pinned to
//! one CPU and the load generator pinned to another.
//!
//! Run with: `cd bench && cargo run --release --bin net` (about 3 minutes). Options:
//! `--reps N` (default 3), `--servers aioloop,floor` and `--workloads echo100,http` to run a
//! subset. The other modes are what the driver runs in child processes:
//!
//! - `net server RUNTIME echo|http`: serves on 127.0.0.1, prints its port, runs until killed;
//! - `net client PORT CONNECTIONS SERVER_PID`: the echo load generator ([`client`]); prints
//!   `requests per_sec p50_us p99_us cpu_us_per_request cpu_load`.
//!
//! Workloads:
//! - `echo100`, `echo1000`: 64-byte round trips on 100 and 1,000 connections, closed loop, 0.5 s
//!   warm-up then 2 s measured;
//! - `http`: `wrk -t1 -c100 -d5s` against a hello-world HTTP/1.1 keep-alive server (wrk is
//!   installed with `apt-get install -y wrk` if missing).
//!
//! Server CPU per request is the server process's utime + stime (`/proc/<pid>/stat`, every
//! thread, 10 ms ticks) over the measured window, divided by the requests completed in it.
//! Runtimes are interleaved (rep 1 of every server, then rep 2...), and each figure is the
//! median of the repetitions.

mod client;
mod proto;
mod servers;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SERVERS: &[&str] = &["aioloop", "aioloop2", "tokio", "smol", "floor", "floor_buf", "epoll"];
const PEERS: &[&str] = &["tokio", "smol"];
const WORKLOADS: &[(&str, &str)] = &[
    ("echo100", "TCP echo, 64-byte round trips, 100 connections (2 s measured)"),
    ("echo1000", "TCP echo, 64-byte round trips, 1,000 connections (2 s measured)"),
    ("http", "HTTP/1.1 keep-alive hello world, wrk -t1 -c100 -d5s"),
];
const WARMUP: Duration = Duration::from_millis(500);
const WINDOW: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => servers::run(&args[1], proto::Kind::parse(&args[2])),
        Some("client") => {
            let (port, conns, pid) = (args[1].parse().unwrap(), args[2].parse().unwrap(), args[3].parse().unwrap());
            match client::run(port, conns, WARMUP, WINDOW, pid) {
                Ok(m) => println!(
                    "{} {:.1} {:.1} {:.1} {:.3} {:.3}",
                    m.requests, m.per_sec, m.p50_us, m.p99_us, m.cpu_us, m.cpu_load
                ),
                Err(e) => {
                    eprintln!("client: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => drive(&args),
    }
}

/// One measurement; NaN where a figure does not apply (wrk reports no percentiles we keep).
#[derive(Clone, Copy)]
struct Sample {
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    cpu_load: f64,
}

/// Where the server and the load generator run.
struct Cpus {
    server: Option<usize>,
    client: Option<usize>,
}

fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(list) = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")) else { return vec![] };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<usize>(), hi.parse::<usize>()) {
            cpus.extend(lo..=hi);
        }
    }
    cpus
}

/// `taskset -c CPU program args...`, or the program itself without a CPU.
fn pinned(cpu: Option<usize>, program: &str, args: &[&str]) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program).args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(cpus: &Cpus, runtime: &str, kind: &str) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut child = pinned(cpus.server, exe.to_str().unwrap(), &["server", runtime, kind])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the server's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("{runtime} server printed {line:?}, not a port"));
        Server { child, port }
    }

    /// The server's pid (taskset execs the program, so it is the child's).
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo(cpus: &Cpus, runtime: &str, connections: usize) -> Option<Sample> {
    let server = Server::start(cpus, runtime, "echo");
    let exe = std::env::current_exe().unwrap();
    let (port, conns, pid) = (server.port.to_string(), connections.to_string(), server.pid().to_string());
    let out =
        pinned(cpus.client, exe.to_str().unwrap(), &["client", &port, &conns, &pid]).output().expect("run the client");
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    if !out.status.success() || v.len() != 6 {
        eprintln!("  {runtime} echo{connections}: client failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    Some(Sample { per_sec: v[1], p50_us: v[2], p99_us: v[3], cpu_us: v[4], cpu_load: v[5] })
}

fn http(cpus: &Cpus, runtime: &str) -> Option<Sample> {
    let server = Server::start(cpus, runtime, "http");
    let url = format!("http://127.0.0.1:{}/", server.port);
    let before = client::cpu_ticks(server.pid());
    let t = std::time::Instant::now();
    let out = pinned(cpus.client, "wrk", &["-t1", "-c100", "-d5s", &url]).output().expect("run wrk");
    let elapsed = t.elapsed();
    let cpu = client::cpu_ticks(server.pid()) - before;
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    let total: Option<f64> =
        text.lines().find(|l| l.contains(" requests in ")).and_then(|l| l.split_whitespace().next()?.parse().ok());
    let per_sec: Option<f64> =
        text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok());
    if let Some(bad) = text.lines().find(|l| l.contains("Socket errors") || l.contains("Non-2xx")) {
        eprintln!("  {runtime} http: wrk reports: {}", bad.trim());
    }
    let (Some(total), Some(per_sec)) = (total, per_sec) else {
        eprintln!("  {runtime} http: cannot read wrk's output: {text}");
        return None;
    };
    Some(Sample {
        per_sec,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        cpu_us: cpu as f64 * client::TICK_US / total,
        cpu_load: cpu as f64 * client::TICK_US / 1e6 / elapsed.as_secs_f64(),
    })
}

/// Makes sure wrk is installed (`apt-get install -y wrk`); false if it cannot be.
fn ensure_wrk() -> bool {
    let have = || Command::new("wrk").arg("--version").output().is_ok();
    if have() {
        return true;
    }
    println!("wrk is missing: apt-get install -y wrk ...");
    let _ = Command::new("apt-get").args(["install", "-y", "wrk"]).stdout(Stdio::null()).status();
    have()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPUs, Linux {}", kernel.trim())
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn drive(args: &[String]) {
    let reps: usize = flag(args, "--reps").map_or(3, |r| r.parse().expect("--reps N"));
    let servers: Vec<&str> = flag(args, "--servers").map_or(SERVERS.to_vec(), |s| s.split(',').collect());
    let mut workloads: Vec<(&str, &str)> = match flag(args, "--workloads") {
        Some(w) => WORKLOADS.iter().copied().filter(|(name, _)| w.split(',').any(|x| x == *name)).collect(),
        None => WORKLOADS.to_vec(),
    };
    let allowed = allowed_cpus();
    let cpus = if allowed.len() >= 2 {
        Cpus { server: Some(allowed[0]), client: Some(allowed[1]) }
    } else {
        Cpus { server: None, client: None }
    };
    if workloads.iter().any(|(w, _)| *w == "http") && !ensure_wrk() {
        println!("wrk could not be installed: the http workload is skipped");
        workloads.retain(|(w, _)| *w != "http");
    }
    println!("aioloop socket benchmarks on {}", machine());
    match (cpus.server, cpus.client) {
        (Some(s), Some(c)) => println!("server pinned to CPU {s}, load generator to CPU {c} (taskset); aioloop2 = 2 loops (PerCore) on that one server CPU"),
        _ => println!("fewer than 2 CPUs: nothing pinned"),
    }
    println!("{reps} interleaved repetitions, medians; each server in a fresh process.\n");

    // samples[workload][server] = one Sample per repetition.
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); servers.len()]; workloads.len()];
    for rep in 0..reps {
        eprintln!("repetition {}/{reps}", rep + 1);
        for (w, (workload, _)) in workloads.iter().enumerate() {
            for (s, server) in servers.iter().enumerate() {
                let sample = match *workload {
                    "echo100" => echo(&cpus, server, 100),
                    "echo1000" => echo(&cpus, server, 1000),
                    _ => http(&cpus, server),
                };
                samples[w][s].extend(sample);
            }
        }
    }
    print_table(&servers, &workloads, &samples);
}

fn print_table(servers: &[&str], workloads: &[(&str, &str)], samples: &[Vec<Vec<Sample>>]) {
    println!(
        "{:<9} {:<9} {:>9} {:>6} {:>8} {:>8} {:>9} {:>6} {:>7} {:>5}",
        "workload", "server", "req/s", "x peer", "p50 µs", "p99 µs", "CPU µs/r", "x peer", "x floor", "load"
    );
    for (w, (workload, what)) in workloads.iter().enumerate() {
        let med = |s: usize, f: fn(&Sample) -> f64| median(samples[w][s].iter().map(f).collect());
        let rows: Vec<(&str, [f64; 5])> = servers
            .iter()
            .enumerate()
            .map(|(s, name)| {
                (
                    *name,
                    [
                        med(s, |x| x.per_sec),
                        med(s, |x| x.p50_us),
                        med(s, |x| x.p99_us),
                        med(s, |x| x.cpu_us),
                        med(s, |x| x.cpu_load),
                    ],
                )
            })
            .collect();
        let peers = rows.iter().filter(|(n, _)| PEERS.contains(n));
        let best_rate = peers.clone().map(|(_, v)| v[0]).fold(f64::NAN, f64::max);
        let best_cpu = peers.map(|(_, v)| v[3]).fold(f64::NAN, f64::min);
        let floor_cpu = rows.iter().find(|(n, _)| *n == "floor").map_or(f64::NAN, |(_, v)| v[3]);
        for (name, v) in &rows {
            let n = samples[w][servers.iter().position(|s| s == name).unwrap()].len();
            let fmt = |x: f64, p: usize| if x.is_nan() { "-".to_string() } else { format!("{x:.p$}") };
            println!(
                "{:<9} {:<9} {:>9} {:>6} {:>8} {:>8} {:>9} {:>6} {:>7} {:>5}{}",
                workload,
                name,
                fmt(v[0], 0),
                fmt(v[0] / best_rate, 2),
                fmt(v[1], 0),
                fmt(v[2], 0),
                fmt(v[3], 2),
                fmt(v[3] / best_cpu, 2),
                fmt(v[3] / floor_cpu, 2),
                fmt(v[4], 2),
                if n < 3 { format!("  ({n} runs)") } else { String::new() }
            );
        }
        println!("{:<9} ({what})", "");
    }
    println!("\nx peer: ratio to the best of tokio and smol (req/s: higher is better; CPU: lower is better).");
    println!("x floor: CPU per request over the hand-written `polling` server's (epoll: the same on raw epoll with");
    println!("EPOLLRDHUP, no read that ends in WouldBlock; floor_buf: a read buffer per connection, as the");
    println!("runtimes' servers have, where floor shares one). load: server CPU time / wall time.");
}
