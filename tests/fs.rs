//! `aioloop::fs`: files on the executor pool (issue 11, section 3; reliability checklist
//! item 55: when written bytes reach the file, cancelled writes, sticky write errors).
//!
//! Real files in a temporary directory, a FIFO (made with `mkfifo`) where a test needs a write
//! that blocks until the test lets it go, and `/dev/full` for a real `ENOSPC`.

use std::future::Future;
use std::io::{self, Read, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use aioloop::fs::File;
use aioloop::sync::Lock;
use futures_lite::future::poll_once;
use futures_lite::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aioloop-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a FIFO at `path` with the `mkfifo` program.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `n` bytes that differ from one position to the next (so a hole or a shift shows).
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Returns the OS error number behind an `aioloop::fs` error (its source, or itself).
fn errno(e: &io::Error) -> Option<i32> {
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>());
    source.unwrap_or(e).raw_os_error()
}

/// Polls `fut` once (starting its job, if it has one), then drops it: a cancellation midway.
async fn start_then_drop<F: Future>(fut: F) -> bool {
    poll_once(fut).await.is_none()
}

#[test]
fn the_path_functions_round_trip() {
    let dir = TempDir::new("round-trip");
    let nested = dir.path("a/b/c");
    let file = nested.join("data.txt");
    let (bytes, text, len, is_file, gone) = aioloop::run(async {
        aioloop::fs::create_dir_all(&nested).await.unwrap();
        aioloop::fs::write(&file, "héllo, pool").await.unwrap();
        let bytes = aioloop::fs::read(&file).await.unwrap();
        let text = aioloop::fs::read_to_string(&file).await.unwrap();
        let meta = aioloop::fs::metadata(&file).await.unwrap();
        aioloop::fs::remove_file(&file).await.unwrap();
        let gone = aioloop::fs::metadata(&file).await.unwrap_err().kind();
        (bytes, text, meta.len(), meta.is_file(), gone)
    });
    assert_eq!(bytes, "héllo, pool".as_bytes());
    assert_eq!(text, "héllo, pool");
    assert_eq!(len, "héllo, pool".len() as u64);
    assert!(is_file);
    assert_eq!(gone, io::ErrorKind::NotFound);
    assert!(nested.is_dir(), "create_dir_all made every level");
}

/// std's errors name no path; ours do, and keep the OS's kind and (as their source) its errno.
#[test]
fn errors_name_the_path_and_keep_the_os_kind_and_errno() {
    let dir = TempDir::new("errors");
    let missing = dir.path("missing/file");
    let plain = dir.path("plain");
    std::fs::write(&plain, b"x").unwrap();
    let not_utf8 = dir.path("latin1");
    std::fs::write(&not_utf8, [0xe9, 0xff]).unwrap();
    let errors = aioloop::run(async {
        vec![
            ("read", aioloop::fs::read(&missing).await.unwrap_err(), missing.clone()),
            ("open", File::open(&missing).await.unwrap_err(), missing.clone()),
            ("write", aioloop::fs::write(&missing, b"x").await.unwrap_err(), missing.clone()),
            ("create", File::create(&missing).await.unwrap_err(), missing.clone()),
            ("mkdir", aioloop::fs::create_dir_all(plain.join("sub")).await.unwrap_err(), plain.join("sub")),
            ("remove", aioloop::fs::remove_file(&dir.0).await.unwrap_err(), dir.0.clone()),
            ("stat", aioloop::fs::metadata(&missing).await.unwrap_err(), missing.clone()),
            ("utf8", aioloop::fs::read_to_string(&not_utf8).await.unwrap_err(), not_utf8.clone()),
        ]
    });
    for (what, err, path) in &errors {
        let text = err.to_string();
        assert!(text.contains(&*path.to_string_lossy()), "{what}: the message names the path: {text}");
    }
    let kinds: Vec<_> = errors.iter().map(|(w, e, _)| (*w, e.kind(), errno(e))).collect();
    let enoent = Some(2);
    assert_eq!(kinds[0], ("read", io::ErrorKind::NotFound, enoent));
    assert_eq!(kinds[1], ("open", io::ErrorKind::NotFound, enoent));
    assert_eq!(kinds[2], ("write", io::ErrorKind::NotFound, enoent));
    assert_eq!(kinds[3], ("create", io::ErrorKind::NotFound, enoent));
    assert_eq!(kinds[4], ("mkdir", io::ErrorKind::NotADirectory, Some(20)));
    assert_eq!(kinds[5], ("remove", io::ErrorKind::IsADirectory, Some(21)));
    assert_eq!(kinds[6], ("stat", io::ErrorKind::NotFound, enoent));
    assert_eq!(kinds[7].1, io::ErrorKind::InvalidData);
}

#[test]
fn a_file_reads_writes_and_seeks() {
    let dir = TempDir::new("rws");
    let path = dir.path("f");
    let (head, middle, end_pos, tail, all) = aioloop::run(async {
        let mut f =
            File::open_with(&path, std::fs::OpenOptions::new().read(true).write(true).create(true)).await.unwrap();
        f.write_all(b"0123456789").await.unwrap();
        assert_eq!(f.seek(SeekFrom::Start(0)).await.unwrap(), 0);
        let mut head = [0u8; 3];
        f.read_exact(&mut head).await.unwrap();
        assert_eq!(f.seek(SeekFrom::Current(2)).await.unwrap(), 5);
        let mut middle = [0u8; 2];
        f.read_exact(&mut middle).await.unwrap();
        f.write_all(b"AB").await.unwrap(); // at 7
        let end_pos = f.seek(SeekFrom::End(-1)).await.unwrap();
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).await.unwrap();
        f.set_len(12).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 12);
        f.seek(SeekFrom::Start(0)).await.unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).await.unwrap();
        f.close().await.unwrap();
        (head, middle, end_pos, tail, all)
    });
    assert_eq!(&head, b"012");
    assert_eq!(&middle, b"56");
    assert_eq!(end_pos, 9);
    assert_eq!(tail, b"9");
    assert_eq!(all, b"0123456AB9\0\0");
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456AB9\0\0");
}

/// Item 55, the contract: a write returns once its bytes are in the OS, so a `File` dropped
/// without flush or close has nothing to lose. 10,000 times: create, write 4 KiB, drop, and the
/// standard library reads back exactly those bytes at once.
#[test]
fn item_55_ten_thousand_files_dropped_unflushed_read_back_whole() {
    let dir = TempDir::new("item-55-drop");
    let path = dir.path("f");
    let mismatches = aioloop::run(async {
        let mut mismatches = Vec::new();
        for i in 0..10_000u32 {
            let data = pattern(4096, i as u8);
            let mut f = File::create(&path).await.unwrap();
            f.write_all(&data).await.unwrap();
            drop(f); // no flush, no close
            let back = std::fs::read(&path).unwrap();
            if back != data {
                mismatches.push((i, back.len()));
            }
        }
        mismatches
    });
    assert!(
        mismatches.is_empty(),
        "{} of 10,000 files read back wrong: {:?}",
        mismatches.len(),
        &mismatches[..5.min(mismatches.len())]
    );
}

/// Item 55: a task cancelled in the middle of a 64 MiB `write_all` leaves a prefix of its data
/// and no hole; `flush` waits for the job it abandoned, and the next write lands right after.
#[test]
fn item_55_a_cancelled_write_all_leaves_a_prefix_without_a_hole() {
    let dir = TempDir::new("item-55-cancel");
    let path = dir.path("f");
    let data = Rc::new(pattern(64 << 20, 7)); // 64 jobs of 1 MiB: cancelled long before the end
    let (prefix_len, tail_at) = aioloop::run({
        let (path, data) = (path.clone(), data.clone());
        async move {
            let file = Rc::new(Lock::new(File::create(&path).await.unwrap()));
            let (f, d) = (file.clone(), data.clone());
            let writer = aioloop::spawn(async move {
                let mut f = f.lock().await;
                let _ = f.write_all(&d).await;
                unreachable!("cancelled before 64 MiB went through");
            });
            let start = Instant::now();
            while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
                assert!(start.elapsed() < Duration::from_secs(10), "the writer never wrote");
                aioloop::sleep(ms(1)).await;
            }
            writer.cancel();
            assert!(writer.await.unwrap_err().is_cancelled());
            let mut f = file.lock().await;
            f.flush().await.unwrap(); // waits for the job the cancelled write_all left running
            let prefix_len = f.seek(SeekFrom::Current(0)).await.unwrap() as usize;
            assert_eq!(std::fs::metadata(&path).unwrap().len(), prefix_len as u64, "nothing lands after flush");
            f.write_all(b"TAIL").await.unwrap();
            (prefix_len, f.seek(SeekFrom::Current(0)).await.unwrap())
        }
    });
    let back = std::fs::read(&path).unwrap();
    assert!(prefix_len > 0 && prefix_len < data.len(), "cancelled midway: {prefix_len} bytes");
    assert!(back[..prefix_len] == data[..prefix_len], "the file is a prefix of the data, no hole");
    assert_eq!(&back[prefix_len..], b"TAIL");
    assert_eq!(tail_at, prefix_len as u64 + 4);
}

/// Item 55 on one `File`: a `write_all` whose job is in flight is dropped; `flush` then waits
/// for that job, and the file holds exactly a prefix of the data; the next write follows it.
#[test]
fn item_55_flush_after_a_cancelled_write_all_waits_for_its_job() {
    let dir = TempDir::new("item-55-flush");
    let path = dir.path("f");
    let data = pattern(16 << 20, 9);
    let d = data.clone();
    let p = path.clone();
    let (cancelled, pos) = aioloop::run(async move {
        let mut f = File::create(&p).await.unwrap();
        // One poll starts the first 1 MiB job (and, if the pool is quick, a few more).
        let cancelled = start_then_drop(f.write_all(&d)).await;
        f.flush().await.unwrap(); // waits for the job in flight
        let pos = f.seek(SeekFrom::Current(0)).await.unwrap();
        f.write_all(b"NEXT").await.unwrap();
        (cancelled, pos)
    });
    assert!(cancelled, "the write_all was still pending when dropped");
    let back = std::fs::read(&path).unwrap();
    let n = pos as usize;
    assert!(n > 0 && n < data.len(), "the abandoned job ran to its end, the rest never started: {n}");
    assert!(back[..n] == data[..n], "a prefix of the data");
    assert_eq!(&back[n..], b"NEXT", "the next write lands right after it");
}

/// Item 55: the operation after a cancelled one starts only once the cancelled job finished.
/// A FIFO makes the job block: 256 KiB do not fit in the pipe, so the cancelled write's job
/// waits for a reader the test holds back; the next write must wait too, and the reader then
/// gets the whole 256 KiB and then the next write's bytes, in order, nothing interleaved.
#[test]
fn item_55_the_next_operation_starts_after_the_cancelled_job_finished() {
    let dir = TempDir::new("item-55-fifo");
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let (go, gate) = mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = thread::spawn(move || {
        let mut r = std::fs::File::open(&reader_path).unwrap(); // meets the loop's open for writing
        gate.recv().unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    let data = pattern(256 << 10, 3);
    let d = data.clone();
    let (cancelled, waited, elapsed_ok) = aioloop::run(async move {
        let mut f = File::open_with(&fifo, std::fs::OpenOptions::new().write(true)).await.unwrap();
        let cancelled = start_then_drop(f.write_all(&d)).await;
        // The job blocks in write(2) on the full pipe: the next write must not start meanwhile.
        let waited = aioloop::timeout(ms(200), f.write_all(b"END")).await.is_err();
        go.send(()).unwrap();
        let start = Instant::now();
        f.write_all(b"END").await.unwrap();
        f.close().await.unwrap();
        (cancelled, waited, start.elapsed() < Duration::from_secs(10))
    });
    let got = reader.join().unwrap();
    assert!(cancelled);
    assert!(waited, "the next write waited for the cancelled job, blocked on the pipe");
    assert!(elapsed_ok);
    assert_eq!(got.len(), data.len() + 3);
    assert!(got[..data.len()] == data[..], "the cancelled job's 256 KiB came first, whole");
    assert_eq!(&got[data.len()..], b"END");
}

/// Item 55: a write error (a real `ENOSPC` from `/dev/full`) surfaces, with the path, and every
/// later write, flush and close fails with it: never a silent `Ok`. Reads are unaffected.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "needs /dev/full")]
fn item_55_a_write_error_surfaces_and_is_sticky() {
    let errors = aioloop::run(async {
        let mut f = File::open_with("/dev/full", std::fs::OpenOptions::new().read(true).write(true)).await.unwrap();
        let mut errors = vec![f.write_all(&[1u8; 4096]).await.unwrap_err()];
        for _ in 0..3 {
            errors.push(f.flush().await.unwrap_err());
        }
        errors.push(f.write_all(b"again").await.unwrap_err());
        errors.push(f.sync_all().await.unwrap_err());
        errors.push(f.close().await.unwrap_err());
        let mut zeros = [9u8; 8];
        f.read_exact(&mut zeros).await.unwrap(); // /dev/full reads as zeros
        assert_eq!(zeros, [0; 8]);
        errors
    });
    for e in &errors {
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert_eq!(errno(e), Some(28), "ENOSPC: {e}");
        assert!(e.to_string().contains("/dev/full"), "{e}");
    }
    assert!(errors[1].to_string().contains("an earlier write failed"), "{}", errors[1]);
}

/// Item 55: the error of a write nobody awaited (its future was dropped while the job ran)
/// surfaces at the next flush, and at every one after.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "needs /dev/full")]
fn item_55_the_error_of_a_cancelled_write_surfaces_at_the_next_flush() {
    let (attempts, kinds) = aioloop::run(async {
        // A write to /dev/full fails at once; now and then the pool finishes the job before the
        // first poll returns, and the write is not cancelled but failed: try again then.
        for attempt in 1..=1000 {
            let mut f = File::open_with("/dev/full", std::fs::OpenOptions::new().write(true)).await.unwrap();
            if !start_then_drop(f.write_all(&[1u8; 4096])).await {
                continue;
            }
            let mut kinds = Vec::new();
            for _ in 0..3 {
                kinds.push(f.flush().await.map_err(|e| e.kind()));
            }
            kinds.push(f.close().await.map_err(|e| e.kind()));
            return (attempt, kinds);
        }
        panic!("no write was still in flight after its first poll in 1000 attempts");
    });
    assert!(attempts >= 1);
    assert_eq!(kinds, vec![Err(io::ErrorKind::StorageFull); 4]);
}

/// The bytes of a read whose future was dropped while its job waited (on a FIFO with no data
/// yet) are not lost: they come first at the next read.
#[test]
fn bytes_of_a_cancelled_read_come_first() {
    let dir = TempDir::new("unread-fifo");
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let (go, gate) = mpsc::channel::<()>();
    let writer_path = fifo.clone();
    let writer = thread::spawn(move || {
        let mut w = std::fs::File::options().write(true).open(&writer_path).unwrap();
        gate.recv().unwrap();
        std::io::Write::write_all(&mut w, b"abcdefghij").unwrap(); // atomic: under PIPE_BUF
    });
    let (cancelled, first, rest) = aioloop::run(async move {
        let mut f = File::open(&fifo).await.unwrap();
        let mut big = [0u8; 10];
        let cancelled = start_then_drop(f.read(&mut big)).await; // blocks: nothing written yet
        go.send(()).unwrap();
        let mut first = [0u8; 4];
        f.read_exact(&mut first).await.unwrap();
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        (cancelled, first, rest)
    });
    writer.join().unwrap();
    assert!(cancelled, "the read was waiting for the writer");
    assert_eq!(&first, b"abcd");
    assert_eq!(rest, b"efghij");
}

/// A read whose future is dropped while its job runs: its bytes come first at the next read,
/// and a seek or a write counts from where the reader really is, not from where the job left
/// the OS's position.
#[test]
fn after_a_cancelled_read_positions_stay_true() {
    let dir = TempDir::new("unread");
    let path = dir.path("f");
    let (attempts, first, pos) = aioloop::run(async {
        for attempt in 1..=1000 {
            std::fs::write(&path, b"abcdefghij").unwrap();
            let mut f = File::open_with(&path, std::fs::OpenOptions::new().read(true).write(true)).await.unwrap();
            let mut big = [0u8; 10];
            if !start_then_drop(f.read(&mut big)).await {
                continue; // the pool was quicker than the first poll: not a cancellation
            }
            let mut first = [0u8; 4];
            f.read_exact(&mut first).await.unwrap();
            let pos = f.seek(SeekFrom::Current(0)).await.unwrap();
            f.write_all(b"XY").await.unwrap();
            return (attempt, first, pos);
        }
        panic!("no read was still in flight after its first poll in 1000 attempts");
    });
    assert!(attempts >= 1);
    assert_eq!(&first, b"abcd");
    assert_eq!(pos, 4, "the position counts only the bytes the caller got");
    assert_eq!(std::fs::read(&path).unwrap(), b"abcdXYghij");
}

/// Opening a FIFO blocks until a writer comes; on the pool, the loop ticks meanwhile.
#[test]
fn a_blocking_open_does_not_stall_the_loop() {
    let dir = TempDir::new("open-blocks");
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let writer_path = fifo.clone();
    let (ticks, text) = aioloop::run(async move {
        let ticker = aioloop::spawn(async {
            for _ in 0..10 {
                aioloop::sleep(ms(5)).await;
            }
            10
        });
        let opener = aioloop::spawn(async move {
            let mut f = File::open(&fifo).await.unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).await.unwrap();
            s
        });
        let ticks = ticker.await.unwrap();
        // Only now a writer comes: the open was blocked all along, and the loop ticked.
        assert!(!opener.is_done());
        std::fs::write(&writer_path, b"through the fifo").unwrap();
        (ticks, opener.await.unwrap())
    });
    assert_eq!(ticks, 10);
    assert_eq!(text, "through the fifo");
}

/// Without a running loop, a file operation is an `io::Error`, not a panic.
#[test]
fn outside_a_loop_file_operations_are_errors() {
    let err = futures_lite::future::block_on(aioloop::fs::read("/dev/null")).unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
    let mut f = aioloop::run(File::open("/dev/null")).unwrap();
    let err = futures_lite::future::block_on(f.read(&mut [0u8; 4])).unwrap_err();
    assert!(err.to_string().contains("no running event loop"), "{err}");
    // The file was not lost: inside a loop it works again.
    assert_eq!(aioloop::run(async move { f.read(&mut [0u8; 4]).await.unwrap() }), 0);
}
