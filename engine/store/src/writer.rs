//! Writers of commit batches: the `LogWriter` trait and `SyncWriter`, the blocking one.
//!
//! What it does: `SyncWriter` writes a batch with `pwrite` (`write_all_at`) at the batch's
//! offset and, when the batch asks for it (durability `Fsync`), `fdatasync`s (`sync_data`).
//! The poll backend and the tests use it through `Store::commit`. A `LogWriter` is handed the
//! store's current log file on every call rather than owning one, because compaction replaces
//! the file: a writer holding its own descriptor would go on writing to the unlinked old log.
//!
//! What it does not do: io_uring (the driver submits write + fsync operations itself, using
//! `Store::log_file`, `begin_commit` and `finish_commit`), or retries (the store paces them).
//!
//! Invariants: a writer returns `Ok` only once every byte is written (and synced if asked); a
//! partial write is an error, and the store rewrites the whole batch at the same offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::journal::CommitBatch;

/// Something that can write a commit batch to the log file.
pub trait LogWriter {
    /// Writes `batch.bytes()` at `batch.offset()` of `file`, then syncs if
    /// `batch.sync_data()`; returns only when done.
    fn write_batch(&mut self, file: &File, batch: &CommitBatch) -> io::Result<()>;
}

/// Blocking `pwrite` (+ `fdatasync` for `Fsync`) writer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncWriter;

impl LogWriter for SyncWriter {
    fn write_batch(&mut self, file: &File, batch: &CommitBatch) -> io::Result<()> {
        file.write_all_at(batch.bytes(), batch.offset())?;
        if batch.sync_data() {
            // fdatasync also flushes the new file size, which reading the appended bytes needs.
            file.sync_data()?;
        }
        Ok(())
    }
}
