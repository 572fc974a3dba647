//! [`File`]: an open file whose reads, writes and seeks run on the executor pool, one job at a
//! time, behind futures-io's `AsyncRead`, `AsyncWrite` and `AsyncSeek`.
//!
//! # How it works
//!
//! A `File` is a small state machine. `Idle` holds the `std::fs::File` and a buffer; an operation
//! moves both into a job on the pool (`Busy`), and the job gives them back with its outcome
//! (`done`). The operation that asked for the outcome claims it; an outcome nobody claims (its
//! future was dropped) is *settled* by the next operation, which starts only after the job is
//! over. That is what keeps a cancelled operation from reordering the file:
//!
//! ```text
//!  write_all(a)  ─► Busy(write a[..n])  ─(future dropped)─┐
//!  flush()       ─► waits for the job ◄───────────────────┘ ─► settles: a[..n] is in the file,
//!                                                              or its error becomes sticky
//! ```
//!
//! # Invariants
//! - At most one job per file; every operation first waits for the one in flight and settles
//!   its outcome, so operations reach the OS in the order they were asked for.
//! - A write outcome is claimed only by a `poll_write` whose buffer starts with the bytes that
//!   were written: the caller is then told the truth (those bytes of *its* buffer are in the
//!   file). Any other write outcome is settled: an abandoned write's bytes stay in the file, an
//!   abandoned write's error becomes the sticky error.
//! - Bytes a read brought in that no caller took (`unread`) are served first by the next read;
//!   a write or a seek first moves the OS position back over them, so the position the user
//!   sees never counts bytes they did not get.
//! - After a write fails, the failure is sticky: every later write, flush and close fails with
//!   it (checklist item 55: a background write error must not turn into a silent `Ok`).

use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::executor::{running_remote, submit, Blocking};

use super::{with_path, PathError};

/// The most bytes one job reads or writes (a larger buffer is done in several jobs, each a copy).
const MAX_CHUNK: usize = 1 << 20;

/// A file on the executor pool, as aiofiles' and async-fs's: `File::open(path).await`, then
/// read, write and seek with the futures-io traits (through the extension traits of
/// `futures-lite` or `futures-util`).
///
/// # When written bytes reach the file
///
/// Writes are **not** buffered in `File`: a write returns only once its `write(2)` call, made on
/// a pool thread, has returned. So every byte a write reported is in the OS when the write
/// returns: another reader sees it, and it stays if the `File` is then dropped without a flush.
/// There is nothing for `flush` to push, and nothing is lost on drop. What `flush` (and
/// `close`, the same here) does is wait for an operation still in flight whose future was
/// dropped, and report a write error nobody saw. For durability across a crash, call
/// [`sync_all`](File::sync_all).
///
/// Each write costs one trip to the pool (tens of microseconds); for many small writes, wrap
/// the file in a `BufWriter` (from `futures-lite` or `futures-util`), and flush or close the
/// `BufWriter` before dropping it: its buffer, unlike `File`, is lost on drop.
///
/// # Cancellation
///
/// Dropping a read, write or seek future midway does not stop the job on the pool: the
/// operation completes, and the next operation on the file starts only after it has. A write
/// abandoned this way leaves a prefix of its data in the file (no hole: writes are sequential),
/// and `flush().await` then waits for it and reports its error if it failed. Dropping the
/// `File` while a job runs lets the job finish on its own; the descriptor is closed there.
///
/// # Errors
///
/// The OS's `io::Error`s, with the path in the message when the file was opened by path. After
/// a write fails, every later write, flush and close fails too, with the same kind ("an earlier
/// write failed on PATH: ..."); reads and seeks still work.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
/// use std::io::SeekFrom;
///
/// let path = std::env::temp_dir().join(format!("aioloop-doc-file-{}", std::process::id()));
/// aioloop::run(async {
///     let mut f = aioloop::fs::File::create(&path).await?;
///     f.write_all(b"hello, file").await?;
///     // Written: visible to any reader already, flushed or not.
///     assert_eq!(std::fs::read(&path)?, b"hello, file");
///
///     let mut f = aioloop::fs::File::open(&path).await?;
///     f.seek(SeekFrom::Start(7)).await?;
///     let mut rest = String::new();
///     f.read_to_string(&mut rest).await?;
///     assert_eq!(rest, "file");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    /// The file and its buffer, or the job that holds them.
    state: State,
    /// The outcome of the last job, until an operation claims or settles it (only when `Idle`).
    done: Option<Done>,
    /// Bytes a read brought in and no caller took yet; the OS position is past them.
    unread: Vec<u8>,
    /// How many bytes of `unread` were taken already.
    unread_at: usize,
    /// The first write error; from then on every write, flush and close fails with it.
    write_error: Option<Sticky>,
    /// The path it was opened with, for error messages (`None` after `from_std`).
    path: Option<PathBuf>,
}

/// Where the file is.
enum State {
    /// Here, with no job running.
    Idle(Inner),
    /// On the pool: the job gives back the file, its buffer, and the outcome.
    Busy(Blocking<(Inner, Done)>),
    /// Gone: a job panicked with it (not expected of `std::fs::File`'s calls).
    Lost,
}

/// What a job takes to the pool and gives back.
struct Inner {
    /// The file.
    file: std::fs::File,
    /// The bytes of the last read or write (kept to reuse its allocation).
    buf: Vec<u8>,
}

/// An operation, as a job runs it.
enum Op {
    /// Reads at most this many bytes into `buf`.
    Read(usize),
    /// Writes `buf`, after moving back `rewind` bytes (unread ones).
    Write { rewind: u64 },
    /// Seeks to `to` (already corrected for unread bytes); `asked` is what the caller asked.
    Seek { asked: SeekFrom, to: SeekFrom },
    /// `fsync`.
    SyncAll,
    /// Truncates or extends the file.
    SetLen(u64),
    /// `fstat`.
    Metadata,
}

/// An operation's outcome.
enum Done {
    Read(io::Result<usize>),
    Write(io::Result<usize>),
    Seek(SeekFrom, io::Result<u64>),
    SyncAll(io::Result<()>),
    SetLen(u64, io::Result<()>),
    Metadata(io::Result<std::fs::Metadata>),
}

/// A write error, kept to be given again (an `io::Error` is not `Clone`).
struct Sticky {
    kind: io::ErrorKind,
    os: Option<i32>,
    message: String,
}

impl Op {
    /// Runs the operation on a pool thread.
    fn run(self, inner: &mut Inner) -> Done {
        match self {
            Op::Read(n) => {
                inner.buf.clear();
                inner.buf.resize(n, 0);
                let r = retry(|| inner.file.read(&mut inner.buf));
                Done::Read(r)
            }
            Op::Write { rewind } => {
                // A non-seekable file (a pipe, a device) has no position to move back: ignore.
                if rewind > 0 {
                    let back = i64::try_from(rewind).unwrap_or(i64::MAX);
                    if let Err(e) = inner.file.seek(SeekFrom::Current(-back)) {
                        if e.raw_os_error() != Some(rustix::io::Errno::SPIPE.raw_os_error()) {
                            return Done::Write(Err(e));
                        }
                    }
                }
                Done::Write(retry(|| inner.file.write(&inner.buf)))
            }
            Op::Seek { asked, to } => Done::Seek(asked, inner.file.seek(to)),
            Op::SyncAll => Done::SyncAll(inner.file.sync_all()),
            Op::SetLen(len) => Done::SetLen(len, inner.file.set_len(len)),
            Op::Metadata => Done::Metadata(inner.file.metadata()),
        }
    }
}

/// Calls `f` again while it fails with `Interrupted`.
fn retry<R>(mut f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

impl Sticky {
    fn new(e: &io::Error) -> Sticky {
        Sticky { kind: e.kind(), os: e.raw_os_error(), message: e.to_string() }
    }

    /// Returns the error again, as "an earlier write failed on PATH: ...".
    fn error(&self, path: Option<&Path>) -> io::Error {
        let source = match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        };
        let what = if path.is_some() { "an earlier write failed on" } else { "an earlier write failed" };
        io::Error::new(self.kind, PathError { what, path: path.map(Path::to_owned), source })
    }
}

impl File {
    /// Opens a file for reading (`std::fs::File::open`, on the executor pool).
    ///
    /// # Errors
    ///
    /// The OS's (`NotFound`, `PermissionDenied`...), with the path in the message; an error if
    /// no loop is running on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = aioloop::run(aioloop::fs::File::open("/no/such/file")).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/no/such/file"));
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        File::open_with(path, std::fs::OpenOptions::new().read(true)).await
    }

    /// Opens a file for writing, creating it or truncating it (`std::fs::File::create`, on the
    /// executor pool).
    ///
    /// # Errors
    ///
    /// The OS's (`NotFound` for a missing directory, `PermissionDenied`...), with the path in
    /// the message; an error if no loop is running on this thread.
    ///
    /// # Examples
    ///
    /// See [`File`].
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        File::open_with(path, std::fs::OpenOptions::new().write(true).create(true).truncate(true)).await
    }

    /// Opens a file with the standard library's options (append, read and write, create a new
    /// file only...), on the executor pool.
    ///
    /// # Errors
    ///
    /// The OS's (`AlreadyExists` with `create_new`...), with the path in the message; an error
    /// if no loop is running on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::AsyncWriteExt;
    /// let path = std::env::temp_dir().join(format!("aioloop-doc-append-{}", std::process::id()));
    /// std::fs::write(&path, b"one ").unwrap();
    /// aioloop::run(async {
    ///     let mut log = aioloop::fs::File::open_with(&path, std::fs::OpenOptions::new().append(true)).await?;
    ///     log.write_all(b"two").await
    /// })
    /// .unwrap();
    /// assert_eq!(std::fs::read(&path).unwrap(), b"one two");
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub async fn open_with(path: impl AsRef<Path>, options: &std::fs::OpenOptions) -> io::Result<File> {
        let (path, options) = (path.as_ref().to_owned(), options.clone());
        let file = super::on_pool("cannot open", &path, move |p| options.open(p)).await?;
        let mut f = File::from_std(file);
        f.path = Some(path);
        Ok(f)
    }

    /// Wraps a standard library file. Its errors then carry no path.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::AsyncReadExt;
    /// aioloop::run(async {
    ///     let mut f = aioloop::fs::File::from_std(std::fs::File::open("/dev/null")?);
    ///     let mut buf = Vec::new();
    ///     assert_eq!(f.read_to_end(&mut buf).await?, 0);
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn from_std(file: std::fs::File) -> File {
        File {
            state: State::Idle(Inner { file, buf: Vec::new() }),
            done: None,
            unread: Vec::new(),
            unread_at: 0,
            write_error: None,
            path: None,
        }
    }

    /// Waits for the operation in flight, if any, and returns the standard library file, its
    /// position where the reads the caller got left it.
    ///
    /// # Errors
    ///
    /// If the file was lost to a panicking job, or moving its position back over bytes read
    /// ahead fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = aioloop::run(async {
    ///     let f = aioloop::fs::File::open("/dev/null").await?;
    ///     f.into_std().await
    /// });
    /// assert!(f.unwrap().metadata().is_ok());
    /// ```
    pub async fn into_std(mut self) -> io::Result<std::fs::File> {
        if self.unread_at < self.unread.len() {
            // A seek to here moves the OS position back over the bytes nobody took.
            poll_fn(|cx| self.poll_seek_inner(cx, SeekFrom::Current(0))).await?;
        }
        poll_fn(|cx| self.poll_idle(cx)).await?;
        match std::mem::replace(&mut self.state, State::Lost) {
            State::Idle(inner) => Ok(inner.file),
            _ => Err(self.lost()),
        }
    }

    /// Flushes the file's data and metadata to the disk (`fsync`), on the executor pool.
    ///
    /// # Errors
    ///
    /// The OS's (`EIO` where a device failed), with the path in the message; the sticky error
    /// of an earlier write.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::AsyncWriteExt;
    /// let path = std::env::temp_dir().join(format!("aioloop-doc-sync-{}", std::process::id()));
    /// aioloop::run(async {
    ///     let mut f = aioloop::fs::File::create(&path).await?;
    ///     f.write_all(b"durable").await?;
    ///     f.sync_all().await
    /// })
    /// .unwrap();
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub async fn sync_all(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await?;
        let done = poll_fn(|cx| self.poll_run(cx, &|| Op::SyncAll, &|d| matches!(d, Done::SyncAll(_)))).await?;
        match done {
            Done::SyncAll(r) => r.map_err(|e| self.err("cannot sync", e)),
            _ => unreachable!("claimed a SyncAll outcome"),
        }
    }

    /// Truncates or extends the file to `len` bytes (`ftruncate`), on the executor pool. The
    /// position does not move.
    ///
    /// # Errors
    ///
    /// The OS's (`InvalidInput` for a file not opened for writing...), with the path in the
    /// message.
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("aioloop-doc-setlen-{}", std::process::id()));
    /// aioloop::run(async {
    ///     let mut f = aioloop::fs::File::create(&path).await?;
    ///     f.set_len(10).await
    /// })
    /// .unwrap();
    /// assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub async fn set_len(&mut self, len: u64) -> io::Result<()> {
        let done =
            poll_fn(|cx| self.poll_run(cx, &|| Op::SetLen(len), &|d| matches!(d, Done::SetLen(l, _) if *l == len)))
                .await?;
        match done {
            Done::SetLen(_, r) => r.map_err(|e| self.err("cannot set the length of", e)),
            _ => unreachable!("claimed a SetLen outcome"),
        }
    }

    /// Returns the open file's metadata (`fstat`), on the executor pool.
    ///
    /// # Errors
    ///
    /// The OS's, with the path in the message.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let mut f = aioloop::fs::File::open("/dev/null").await?;
    ///     assert!(!f.metadata().await?.is_dir());
    ///     Ok::<(), std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn metadata(&mut self) -> io::Result<std::fs::Metadata> {
        let done = poll_fn(|cx| self.poll_run(cx, &|| Op::Metadata, &|d| matches!(d, Done::Metadata(_)))).await?;
        match done {
            Done::Metadata(r) => r.map_err(|e| self.err("cannot stat", e)),
            _ => unreachable!("claimed a Metadata outcome"),
        }
    }

    // ===== The engine =====

    /// Waits until no job runs; its outcome is then in `done`.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let State::Busy(job) = &mut self.state else {
            return Poll::Ready(if matches!(self.state, State::Lost) { Err(self.lost()) } else { Ok(()) });
        };
        let outcome = ready!(Pin::new(job).poll(cx));
        match outcome {
            Ok((inner, done)) => {
                self.state = State::Idle(inner);
                self.done = Some(done);
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.state = State::Lost;
                Poll::Ready(Err(io::Error::other(format!("a file job failed: {e}"))))
            }
        }
    }

    /// Starts `op` on the pool (the file must be idle, with no outcome left unsettled).
    fn start(&mut self, op: Op) -> io::Result<()> {
        debug_assert!(self.done.is_none(), "an outcome is settled before the next job");
        let remote = running_remote()?;
        let State::Idle(mut inner) = std::mem::replace(&mut self.state, State::Lost) else {
            return Err(self.lost());
        };
        self.state = State::Busy(submit(remote, move || {
            let done = op.run(&mut inner);
            (inner, done)
        }));
        Ok(())
    }

    /// Settles an outcome its operation did not claim: read bytes wait for the next read, a
    /// write error becomes sticky, the rest happened and is forgotten.
    fn settle(&mut self, done: Done) {
        match done {
            Done::Read(Ok(n)) if n > 0 => {
                if let State::Idle(inner) = &self.state {
                    self.unread.drain(..self.unread_at);
                    self.unread_at = 0;
                    self.unread.extend_from_slice(&inner.buf[..n]);
                }
            }
            Done::Write(Err(e)) => self.stick(&e),
            _ => {}
        }
    }

    /// Runs one operation to its outcome: waits for the job in flight and settles its outcome
    /// unless `claim` recognizes it as this operation's, then starts `op` and waits for it.
    fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        op: &dyn Fn() -> Op,
        claim: &dyn Fn(&Done) -> bool,
    ) -> Poll<io::Result<Done>> {
        loop {
            ready!(self.poll_idle(cx))?;
            if let Some(done) = self.done.take() {
                if claim(&done) {
                    return Poll::Ready(Ok(done));
                }
                self.settle(done);
            }
            self.start(op())?;
        }
    }

    /// Makes the write error `e` the sticky one (the first one stays).
    fn stick(&mut self, e: &io::Error) {
        if self.write_error.is_none() {
            // `e` may already carry the path ("cannot write P: ..."): keep the OS's part.
            let os = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>());
            self.write_error = Some(Sticky::new(os.unwrap_or(e)));
        }
    }

    /// Returns `e` with `what` and this file's path in its message.
    fn err(&self, what: &'static str, e: io::Error) -> io::Error {
        with_path(what, self.path.as_deref(), e)
    }

    fn lost(&self) -> io::Error {
        self.err("file lost", io::Error::other("a job on the pool panicked while it held the file"))
    }

    fn poll_read_inner(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx))?;
            // Bytes read ahead (by a read whose future was dropped) come first.
            if self.unread_at < self.unread.len() {
                let n = buf.len().min(self.unread.len() - self.unread_at);
                buf[..n].copy_from_slice(&self.unread[self.unread_at..self.unread_at + n]);
                self.unread_at += n;
                if self.unread_at == self.unread.len() {
                    self.unread.clear();
                    self.unread_at = 0;
                }
                return Poll::Ready(Ok(n));
            }
            match self.done.take() {
                Some(Done::Read(Ok(n))) => {
                    let State::Idle(inner) = &self.state else { unreachable!("idle after poll_idle") };
                    let k = n.min(buf.len());
                    buf[..k].copy_from_slice(&inner.buf[..k]);
                    self.unread.extend_from_slice(&inner.buf[k..n]);
                    return Poll::Ready(Ok(k));
                }
                Some(Done::Read(Err(e))) => return Poll::Ready(Err(self.err("cannot read", e))),
                Some(other) => self.settle(other),
                None => {}
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            self.start(Op::Read(buf.len().min(MAX_CHUNK)))?;
        }
    }

    fn poll_write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx))?;
            match self.done.take() {
                // This caller's write (its buffer starts with the bytes written): claim it.
                Some(Done::Write(Ok(n))) if self.wrote_prefix_of(n, buf) => return Poll::Ready(Ok(n)),
                // An abandoned write landed; its bytes are in the file.
                Some(Done::Write(Ok(_))) => {}
                Some(Done::Write(Err(e))) => {
                    self.stick(&e);
                    return Poll::Ready(Err(self.err("cannot write", e)));
                }
                Some(other) => self.settle(other),
                None => {}
            }
            if let Some(sticky) = &self.write_error {
                return Poll::Ready(Err(sticky.error(self.path.as_deref())));
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let State::Idle(inner) = &mut self.state else { unreachable!("idle after poll_idle") };
            inner.buf.clear();
            inner.buf.extend_from_slice(&buf[..buf.len().min(MAX_CHUNK)]);
            let rewind = self.take_unread();
            self.start(Op::Write { rewind })?;
        }
    }

    /// Returns true if the last write's `n` bytes are the start of `buf`.
    fn wrote_prefix_of(&self, n: usize, buf: &[u8]) -> bool {
        let State::Idle(inner) = &self.state else { return false };
        n <= buf.len() && n <= inner.buf.len() && inner.buf[..n] == buf[..n]
    }

    /// Forgets the bytes read ahead and returns how many the OS position is past the user's.
    fn take_unread(&mut self) -> u64 {
        let n = self.unread.len() - self.unread_at;
        self.unread.clear();
        self.unread_at = 0;
        n as u64
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_idle(cx))?;
        if let Some(done) = self.done.take() {
            self.settle(done);
        }
        match &self.write_error {
            Some(sticky) => Poll::Ready(Err(sticky.error(self.path.as_deref()))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_seek_inner(&mut self, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        loop {
            ready!(self.poll_idle(cx))?;
            match self.done.take() {
                Some(Done::Seek(asked, r)) if asked == pos => {
                    return Poll::Ready(r.map_err(|e| self.err("cannot seek in", e)));
                }
                Some(other) => self.settle(other),
                None => {}
            }
            let rewind = self.take_unread();
            let to = match pos {
                // The user's position is `rewind` bytes before the OS's.
                SeekFrom::Current(k) => SeekFrom::Current(k.saturating_sub(i64::try_from(rewind).unwrap_or(i64::MAX))),
                other => other,
            };
            self.start(Op::Seek { asked: pos, to })?;
        }
    }
}

impl futures_io::AsyncRead for File {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_inner(cx, buf)
    }
}

impl futures_io::AsyncWrite for File {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_inner(cx, buf)
    }

    /// Waits for an operation still in flight and reports a write error (sticky); writes are
    /// not buffered, so there is nothing else to flush.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }

    /// The same as `poll_flush`; the descriptor is closed when the `File` is dropped.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }
}

impl futures_io::AsyncSeek for File {
    fn poll_seek(self: Pin<&mut Self>, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        self.get_mut().poll_seek_inner(cx, pos)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle(_) => "idle",
            State::Busy(_) => "busy",
            State::Lost => "lost",
        };
        f.debug_struct("File")
            .field("path", &self.path)
            .field("state", &state)
            .field("write_error", &self.write_error.as_ref().map(|s| &s.message))
            .finish()
    }
}
