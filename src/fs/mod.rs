//! Files without blocking the loop: every call runs on the executor pool (as aiofiles and
//! async-fs do) and the task awaits its result.
//!
//! Regular files cannot be polled: epoll refuses them and kqueue calls them always ready, so
//! [`Async`](crate::Async) cannot drive them. The only way to read a file without stalling the
//! loop's other tasks is to do the read on another thread. Each function here is one job on the
//! pool of [`run_in_executor`](crate::run_in_executor) (`min(32, cpus + 4)` threads), and
//! [`File`] sends each read, write or seek there as one job.
//!
//! # Errors
//!
//! Every error is the OS's `io::Error`, with its `ErrorKind`, and with the path in its message,
//! which the standard library's errors lack (`cannot open /etc/nope: No such file or directory
//! (os error 2)`). The OS error itself, with its `raw_os_error`, is the error's
//! [`source`](std::error::Error::source).
//!
//! # Cancellation
//!
//! Dropping one of these futures (cancelling the task) does not stop the job: a file being
//! written is still written, a directory being created is still created. The result is dropped.
//!
//! # Invariants
//! - No call here blocks the loop's thread, except dropping a [`File`] with nothing in flight,
//!   which closes its descriptor there (as dropping a `std::fs::File` does).
//! - A [`File`] runs at most one job at a time, and starts the next only after the previous
//!   one, even one whose future was dropped, has finished: operations on a file happen in the
//!   order they were asked for.
//!
//! Production note: tokio and async-fs buffer writes and return before the bytes reach the OS;
//! [`File`] does not (see its documentation), which costs one trip to the pool per write and
//! makes what a write reported true when it returns.

mod file;

pub use file::File;

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::executor::run_blocking_io;

/// Runs `f(path)` on the executor pool; an error gets `what` and the path in its message.
async fn on_pool<R: Send + 'static>(
    what: &'static str,
    path: &Path,
    f: impl FnOnce(&Path) -> io::Result<R> + Send + 'static,
) -> io::Result<R> {
    let path = path.to_owned();
    let job = run_blocking_io(move || f(&path).map_err(|e| with_path(what, Some(&path), e)))?;
    job.await.unwrap_or_else(|e| Err(io::Error::other(format!("{what}: the job panicked: {e}"))))
}

/// An OS error with the path it concerns (the source of the `io::Error`s of this module).
#[derive(Debug)]
struct PathError {
    /// What failed, as "cannot read".
    what: &'static str,
    /// The path, when known (not for a `File` made with `from_std`).
    path: Option<PathBuf>,
    /// The OS's error.
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {}: {}", self.what, p.display(), self.source),
            None => write!(f, "{}: {}", self.what, self.source),
        }
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Returns `e` with `what` and `path` in its message, keeping its kind (and the original as its
/// source). Without a path, `e` is returned as it is.
fn with_path(what: &'static str, path: Option<&Path>, e: io::Error) -> io::Error {
    match path {
        Some(p) => io::Error::new(e.kind(), PathError { what, path: Some(p.to_owned()), source: e }),
        None => e,
    }
}

/// Reads a whole file into a vector (`std::fs::read`, on the executor pool).
///
/// # Errors
///
/// The OS's: `NotFound`, `PermissionDenied`, `IsADirectory`..., with the path in the message.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("aioloop-doc-read-{}", std::process::id()));
/// std::fs::write(&path, b"hello").unwrap();
/// let bytes = aioloop::run(aioloop::fs::read(&path)).unwrap();
/// assert_eq!(bytes, b"hello");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    on_pool("cannot read", path.as_ref(), |p| std::fs::read(p)).await
}

/// Reads a whole file into a string (`std::fs::read_to_string`, on the executor pool).
///
/// # Errors
///
/// The OS's, with the path in the message; `InvalidData` if the file is not UTF-8.
///
/// # Examples
///
/// ```
/// let err = aioloop::run(aioloop::fs::read_to_string("/no/such/dir/file.txt")).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().contains("/no/such/dir/file.txt"), "{err}");
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    on_pool("cannot read", path.as_ref(), |p| std::fs::read_to_string(p)).await
}

/// Writes `contents` as the whole file, creating it or truncating it first (`std::fs::write`,
/// on the executor pool). The bytes are copied for the job.
///
/// # Errors
///
/// The OS's (`NotFound` for a missing directory, `StorageFull`...), with the path in the
/// message.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("aioloop-doc-write-{}", std::process::id()));
/// aioloop::run(aioloop::fs::write(&path, "written off the loop")).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "written off the loop");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let contents = contents.as_ref().to_vec();
    on_pool("cannot write", path.as_ref(), move |p| std::fs::write(p, contents)).await
}

/// Creates a directory and every missing parent (`std::fs::create_dir_all`, on the pool).
///
/// # Errors
///
/// The OS's (`PermissionDenied`, `NotADirectory`...), with the path in the message.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("aioloop-doc-mkdir-{}", std::process::id()));
/// aioloop::run(aioloop::fs::create_dir_all(dir.join("a/b/c"))).unwrap();
/// assert!(dir.join("a/b/c").is_dir());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool("cannot create directory", path.as_ref(), |p| std::fs::create_dir_all(p)).await
}

/// Removes a file (`std::fs::remove_file`, on the executor pool).
///
/// # Errors
///
/// The OS's (`NotFound`, `PermissionDenied`, `IsADirectory`...), with the path in the message.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("aioloop-doc-rm-{}", std::process::id()));
/// std::fs::write(&path, b"x").unwrap();
/// aioloop::run(async {
///     aioloop::fs::remove_file(&path).await.unwrap();
///     let again = aioloop::fs::remove_file(&path).await.unwrap_err();
///     assert_eq!(again.kind(), std::io::ErrorKind::NotFound);
/// });
/// ```
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool("cannot remove", path.as_ref(), |p| std::fs::remove_file(p)).await
}

/// Returns a path's metadata, following symbolic links (`std::fs::metadata`, on the pool).
///
/// # Errors
///
/// The OS's (`NotFound`, `PermissionDenied`...), with the path in the message.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("aioloop-doc-meta-{}", std::process::id()));
/// std::fs::write(&path, b"12345").unwrap();
/// let meta = aioloop::run(aioloop::fs::metadata(&path)).unwrap();
/// assert_eq!(meta.len(), 5);
/// assert!(meta.is_file());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    on_pool("cannot stat", path.as_ref(), |p| std::fs::metadata(p)).await
}
