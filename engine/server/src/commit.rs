//! Group commit of a shard's durable log through its driver.
//!
//! Once per loop turn the shard asks its store for the records appended during the turn
//! (`begin_commit`) and hands them to the driver as one file write (io_uring: a Write + Fsync
//! chain in the ring, so the shard keeps serving sockets while the disk works; poll: pwrite +
//! fdatasync at once). When `Event::FileWritten` comes back, `finish_commit` marks the batch
//! committed and the router releases what waited for it (acknowledgements to senders). One
//! batch is in flight at a time; records appended meanwhile ride in the next one.
//!
//! Records nobody waits for may wait a little (`--commit-delay-ms`, `hold_ms` here) to share
//! a write with the next ones: a chat message from a sender without stream management is
//! acknowledged to no one, so until its commit it is exactly as safe as it would be in a
//! write in flight. Measured on one core (results/20261208-0606*-relays-vs-rookery and the
//! three runs after it): at 8,000 msgs/s one write per turn cost 68 us per message against
//! 41 us with a 5 ms delay: about as much CPU as everything else the shard does. Anything that
//! waits for a commit (`Router::commit_awaited`: XEP-0198 acknowledgements, room answers,
//! replies to stored changes, a backlog at an uncommitted message, any keyed-table change such
//! as a roster, an account or a profile), an admin account change, a due compaction, shutdown,
//! a failing store or `HOLD_MAX_BYTES` pending starts the write at once: only chat message
//! records wait.
//!
//! What it does not do: decide durability (the store's config does: Memory never writes,
//! Fsync asks for the sync) or log; it returns what happened and the shard reports it.

use std::fs::File;
use std::io;

use rookery_io::{Driver, FileId, FileSync, Ops};
use rookery_router::Router;
use rookery_store::{CommitBatch, CompactReport, Store};

/// Pending bytes that start a write even when nobody waits for them.
const HOLD_MAX_BYTES: usize = 256 * 1024;

/// The driver-side state of one shard's log writes.
#[derive(Default)]
pub struct Committer {
    file: Option<FileId>,
    in_flight: Option<(u64, CommitBatch)>,
    /// How long records nobody waits for may stay pending (0: every turn writes).
    hold_ms: u64,
    /// Since when the pending records have been held (`None`: nothing held).
    held_since_ms: Option<u64>,
}

impl Committer {
    /// A committer that holds records nobody waits for up to `hold_ms` (see the module doc).
    pub fn new(hold_ms: u64) -> Committer {
        Committer {
            hold_ms,
            ..Committer::default()
        }
    }

    /// Registers the store's log file with the driver (a duplicate fd: the store keeps its
    /// own for replay, compaction and locking). No-op for a Memory store.
    pub fn attach<D: Driver>(&mut self, driver: &mut D, store: &Store) -> io::Result<()> {
        if let Some(file) = store.log_file() {
            self.file = Some(driver.register_file(file.try_clone()?)?);
        }
        Ok(())
    }

    /// Whether a write is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The log as registered with the driver (`None` for a Memory store), for reads of
    /// stored messages (see `Reads`).
    pub fn file(&self) -> Option<FileId> {
        self.file
    }

    /// Starts the next write if none is in flight, the records may not wait longer (see the
    /// module doc; `urgent`: the caller needs them committed now), and the store hands out a
    /// batch (it does not while unavailable and no retry is due; the router's tick paces
    /// retries).
    ///
    /// The archive's held records are written first (whether or not the log has a file), so
    /// a committed message is archived in the file too.
    pub fn pump(&mut self, router: &mut Router, io: &mut impl Ops, now_ms: u64, urgent: bool) {
        if self.in_flight.is_some() || self.holds(router, now_ms, urgent) {
            return;
        }
        router.flush_archive();
        let Some(file) = self.file else { return };
        self.held_since_ms = None;
        let Some(mut batch) = router.begin_commit() else {
            return;
        };
        let sync = if batch.sync_data() {
            FileSync::Data
        } else {
            FileSync::None
        };
        let token = io.write_file(file, batch.offset(), batch.take_bytes(), sync);
        self.in_flight = Some((token, batch));
    }

    /// Whether the pending records keep waiting (and since when, from the first call that
    /// saw them held).
    fn holds(&mut self, router: &Router, now_ms: u64, urgent: bool) -> bool {
        let pending = router.store().pending_bytes();
        if self.hold_ms == 0
            || urgent
            || pending == 0
            || pending >= HOLD_MAX_BYTES
            || !router.store().is_available()
            || router.commit_awaited()
        {
            return false;
        }
        let since_ms = *self.held_since_ms.get_or_insert(now_ms);
        now_ms.saturating_sub(since_ms) < self.hold_ms
    }

    /// Whether pending records are being held (see `hold_left_ms`).
    pub fn holding(&self) -> bool {
        self.held_since_ms.is_some()
    }

    /// Milliseconds until held records must be written (`None`: nothing held), so the shard
    /// wakes for them even when nothing else happens.
    pub fn hold_left_ms(&self, now_ms: u64) -> Option<u64> {
        let since_ms = self.held_since_ms?;
        Some((since_ms + self.hold_ms).saturating_sub(now_ms))
    }

    /// Takes a `FileWritten` completion and gives back the batch with its result, for
    /// `Router::finish_commit`. `None` when the token is not the write in flight.
    pub fn on_written(
        &mut self,
        token: u64,
        result: Result<(), i32>,
        buffer: Vec<u8>,
    ) -> Option<(CommitBatch, io::Result<()>)> {
        if self.in_flight.as_ref().map(|(t, _)| *t) != Some(token) {
            return None;
        }
        let (_, mut batch) = self.in_flight.take()?;
        batch.restore_bytes(buffer);
        Some((batch, result.map_err(io::Error::from_raw_os_error)))
    }

    /// Compacts the log when it is due and nothing is in flight, then registers the new file
    /// with the driver. Synchronous: the shard stalls about 2 ms per MB of live data
    /// (measured by the store's bench), plus the syncs; the old file's release is the
    /// reaper's. The error text names what failed.
    pub fn compact_if_due<D: Driver>(
        &mut self,
        driver: &mut D,
        router: &mut Router,
        reads_in_flight: bool,
    ) -> Option<Result<CompactReport, String>> {
        // Compaction moves records: never under a read (its span would name the old file).
        if self.in_flight.is_some() || reads_in_flight || !router.store().compaction_due() {
            return None;
        }
        // The old file's last close frees its page cache (milliseconds per MiB): the store
        // closes its descriptor during compaction, this one closes last, on the reaper.
        let old: Option<File> = self.file.take().and_then(|id| driver.unregister_file(id));
        let report = router
            .compact_log_if_due()
            .unwrap_or_else(|| Ok(CompactReport::default()))
            .map_err(|err| format!("log compaction failed: {err}"));
        if let Some(old) = old {
            crate::reaper::close_later(old);
        }
        if let Err(err) = self.attach(driver, router.store()) {
            return Some(Err(format!(
                "after compaction, registering the log failed: {err}"
            )));
        }
        Some(report)
    }
}
