//! File-system steps of the store: open and lock the log, repair it after replay (keeping a
//! damaged tail in a sibling file), sync the directory.
//!
//! What it does not do: read or write records (replay and the writers do).
//!
//! Invariants: the log is locked (advisory, `flock` semantics via `File::try_lock`) for as
//! long as the store holds it, so a second process on the same file fails at open instead of
//! interleaving writes; a file this module creates or cuts is synced, and so is its directory
//! entry, before anything is appended to it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::StoreConfig;
use crate::error::OpenError;
use crate::format::{self, HEADER_LEN};
use crate::replay::ReplayReport;

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` if missing, then opens (creating if missing) and locks the log at `path`.
pub(crate) fn open_log(dir: &Path, path: &Path) -> Result<File, OpenError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error("open", path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match lock(&file) {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(source)) => return Err(io_error("lock", path)(source)),
        }
    }
}

/// How long opening waits for a lock that is held: a process killed with SIGKILL releases
/// its lock only when its last reference to the file goes, and io_uring tears a dead
/// process's ring (which holds the log it had registered) down asynchronously, so a restart
/// right after a kill -9 can find the lock held for a moment. A live second server keeps it
/// and the open fails after the wait.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Takes the advisory lock; a file system without locks (some network ones) is accepted
/// without it, since refusing to run there would be worse than the unlikely double open.
pub(crate) fn lock(file: &File) -> Result<(), TryLockError> {
    match file.try_lock() {
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        other => other,
    }
}

/// Deletes a `.compact` file left by a crash during compaction. It was never renamed over
/// the log, so the log is complete without it.
pub(crate) fn remove_stale(path: &Path) -> Result<(), OpenError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Makes the file match the report: cut after the good records, or (re)write the header of a
/// new log. Both are synced so a crash cannot bring the dropped bytes back. Bytes cut after
/// the good records are first copied, synced, to a `.corrupt-<offset>` sibling
/// (`StoreConfig::corrupt_path`), recorded in the report: a damaged record in the middle
/// keeps everything after it for inspection or recovery instead of destroying it.
pub(crate) fn repair(
    file: &File,
    path: &Path,
    config: &StoreConfig,
    report: &mut ReplayReport,
) -> Result<(), OpenError> {
    if report.created {
        file.set_len(0).map_err(io_error("truncate", path))?;
        file.write_all_at(&format::header(), 0)
            .map_err(io_error("write header of", path))?;
        file.sync_all().map_err(io_error("sync", path))?;
        let dir = parent(path);
        return sync_dir(&dir).map_err(io_error("sync directory", &dir));
    }
    if report.bytes_dropped > 0 {
        debug_assert!(report.valid_bytes >= HEADER_LEN as u64);
        let kept = config.corrupt_path(report.valid_bytes);
        keep_tail(file, report.valid_bytes, &kept)?;
        report.kept_in = Some(kept);
        file.set_len(report.valid_bytes)
            .map_err(io_error("truncate", path))?;
        file.sync_all().map_err(io_error("sync", path))?;
    }
    Ok(())
}

/// Copies `file` from `offset` to its end into a new file at `to`, synced with its directory.
fn keep_tail(file: &File, offset: u64, to: &Path) -> Result<(), OpenError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)
        .map_err(io_error("create", to))?;
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(io_error("seek in the log before copying to", to))?;
    io::copy(&mut reader, &mut out).map_err(io_error("copy the damaged tail to", to))?;
    out.sync_all().map_err(io_error("sync", to))?;
    let dir = parent(to);
    sync_dir(&dir).map_err(io_error("sync directory", &dir))
}

/// Syncs a directory, so a created or renamed entry in it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory of the log at `path`.
pub(crate) fn parent(path: &Path) -> PathBuf {
    path.parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
