//! Several child processes at once, their outputs gathered: the example of asyncio's
//! documentation ("Subprocesses": `create_subprocess_shell`, `communicate`, `gather`), ported.
//!
//! ```python
//! async def run(cmd):
//!     proc = await asyncio.create_subprocess_shell(cmd, stdout=PIPE, stderr=PIPE)
//!     stdout, stderr = await proc.communicate()
//!     print(f'[{cmd!r} exited with {proc.returncode}]')
//!     if stdout:
//!         print(f'[stdout]\n{stdout.decode()}')
//!     if stderr:
//!         print(f'[stderr]\n{stderr.decode()}')
//!
//! async def main():
//!     await asyncio.gather(run('ls /zzz'), run('sleep 1; echo "hello"'))
//! ```
//!
//! Each `run` is a task; the children run at the same time, so the whole takes as long as the
//! slowest (1 s), not the sum. A third command shows a child fed through its stdin while its
//! stdout is read. Each report is printed when its child ends, so the quick ones come first.
//!
//! Run with: `cargo run --example subprocess`

use std::io;
use std::process::Stdio;
use std::time::Instant;

use aioloop::process::Command;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Runs `cmd` with `sh -c` and prints its exit code and outputs (asyncio's `run`).
async fn run(cmd: &'static str) -> io::Result<i32> {
    let out = Command::new("sh").args(["-c", cmd]).output().await?;
    let code = out.status.code().unwrap_or(-1);
    println!("['{cmd}' exited with {code}]");
    if !out.stdout.is_empty() {
        println!("[stdout]\n{}", String::from_utf8_lossy(&out.stdout));
    }
    if !out.stderr.is_empty() {
        println!("[stderr]\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(code)
}

/// Feeds `text` to `tr a-z A-Z` through its stdin while reading its stdout.
async fn shout(text: &'static str) -> io::Result<i32> {
    let mut child = Command::new("tr").args(["a-z", "A-Z"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = aioloop::spawn(async move {
        stdin.write_all(text.as_bytes()).await?;
        stdin.close().await // end of file for tr
    });
    let mut upper = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut upper).await?;
    writer.await.expect("the writer never panics")?;
    let code = child.wait().await?.code().unwrap_or(-1);
    println!("['tr a-z A-Z' fed {text:?} exited with {code}]\n[stdout]\n{upper}\n");
    Ok(code)
}

fn main() -> io::Result<()> {
    let start = Instant::now();
    let codes = aioloop::run(async {
        let tasks = vec![
            aioloop::spawn(run("ls /zzz")),
            aioloop::spawn(run("sleep 1; echo \"hello\"")),
            aioloop::spawn(shout("hello from the parent")),
        ];
        aioloop::gather(tasks).await.expect("no task panics")
    });
    let codes: Vec<i32> = codes.into_iter().collect::<io::Result<_>>()?;
    println!("exit codes {codes:?}; all three took {:.1} s together", start.elapsed().as_secs_f64());
    Ok(())
}
