//! The examples of processes and signals, run as a user would: `subprocess` (several children
//! at once, outputs gathered) and `graceful_shutdown` (an echo server that drains on SIGTERM).
//!
//! `graceful_shutdown` runs as a separate process that this test sends SIGTERM to, with requests
//! in flight and idle connections open: every request sent before the signal gets its whole
//! reply, the idle connections are closed, new connections are refused once the server said it
//! stopped accepting, and it exits 0. The examples are built with `cargo build` first (Cargo
//! gives tests no path to example binaries), as tests/examples.rs does with `cargo run`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the example and returns the path of its binary.
fn build_example(name: &str) -> std::path::PathBuf {
    let status = Command::new(env!("CARGO")).args(["build", "--quiet", "--example", name]).status().unwrap();
    assert!(status.success(), "cargo build --example {name}");
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join(name)
}

#[test]
#[cfg_attr(miri, ignore = "runs processes")]
fn subprocess_runs_three_children_at_once_and_reports_each() {
    let out = Command::new(build_example("subprocess")).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("['ls /zzz' exited with "), "{stdout}");
    assert!(!stdout.contains("['ls /zzz' exited with 0]"), "{stdout}");
    assert!(stdout.contains("[stderr]\nls: "), "{stdout}");
    assert!(stdout.contains("['sleep 1; echo \"hello\"' exited with 0]\n[stdout]\nhello\n"), "{stdout}");
    assert!(stdout.contains("[stdout]\nHELLO FROM THE PARENT\n"), "{stdout}");
    // The quick children report before the one that sleeps.
    assert!(stdout.find("ls /zzz").unwrap() < stdout.find("sleep 1").unwrap(), "{stdout}");
    let took: f64 = stdout.rsplit("all three took ").next().unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((0.9..1.9).contains(&took), "the children did not run concurrently: {took} s");
}

#[test]
#[cfg_attr(miri, ignore = "runs processes")]
fn graceful_shutdown_loses_no_request_in_flight_at_sigterm() {
    let mut server = Command::new(build_example("graceful_shutdown"))
        .args(["--addr", "127.0.0.1:0", "--work-ms", "300"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("listening on ").unwrap().split(' ').next().unwrap().to_string();

    let busy: Vec<(TcpStream, String)> = (0..10)
        .map(|i| {
            let mut conn = TcpStream::connect(&addr).unwrap();
            let request = format!("request {i}\n");
            conn.write_all(request.as_bytes()).unwrap();
            (conn, request)
        })
        .collect();
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100)); // read by the server, being worked on
                                                    // SAFETY: kill(2) on our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);

    let stopped = lines.next().unwrap().unwrap();
    assert_eq!(stopped, "SIGTERM: stopped accepting; 10 requests in flight");
    let refused = TcpStream::connect(&addr);
    assert!(refused.is_err(), "a connection was accepted after the server stopped accepting");

    for (mut conn, request) in busy {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap(); // the reply, then the server closes
        assert_eq!(reply, request);
    }
    for mut conn in idle {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(conn.read(&mut [0u8; 8]).unwrap(), 0, "an idle connection was left open");
    }
    let started = Instant::now();
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let last = lines.next().unwrap().unwrap();
    assert_eq!(last, "drained 10 requests, closed 3 idle connections, 0 connections cut at the deadline (13 finished)");
}

#[test]
#[cfg_attr(miri, ignore = "runs processes")]
fn graceful_shutdown_demo_drains_its_own_clients() {
    let out = Command::new(build_example("graceful_shutdown")).arg("--demo").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("SIGTERM: stopped accepting; 20 requests in flight"), "{stdout}");
    assert!(stdout.contains("drained 20 requests, closed 5 idle connections, 0 connections cut"), "{stdout}");
    assert!(stdout.contains("demo: 20 of 20 replies received; idle connections closed: true"), "{stdout}");
}
