//! A hello-world HTTP/1.1 server: hyper on aioloop's loop, one task per connection, with
//! hyper's header-read timeout running on the loop's timer.
//!
//! Run with: `cargo run --example hyper_server --features hyper`, then `curl http://127.0.0.1:3000/`.
//! `--port N` picks the port (0: any free one; the address is printed), and `--once` serves one
//! connection and exits (how `.ci/run` checks it with curl).

use std::convert::Infallible;
use std::time::Duration;

use aioloop::hyper::{HyperIo, HyperTimer};
use aioloop::net::TcpListener;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from("Hello, World!\n"))))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.iter().position(|a| a == "--port") {
        Some(i) => args.get(i + 1).and_then(|p| p.parse().ok()).ok_or(std::io::ErrorKind::InvalidInput)?,
        None => 3000,
    };
    let once = args.iter().any(|a| a == "--once");

    aioloop::run(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        println!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let conn = aioloop::spawn(async move {
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(HyperTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(HyperIo::new(stream), hyper::service::service_fn(hello))
                    .await;
                if let Err(e) = served {
                    eprintln!("connection error: {e}");
                }
            });
            if once {
                let _ = conn.await;
                return Ok(());
            }
        }
    })
}
