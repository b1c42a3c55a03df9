//! `Store`: one shard's tables and the log that makes them durable.
//!
//! What it does: opens (creating, locking, replaying, repairing) `<data_dir>/shard-<N>.log`;
//! applies mutations to the tables at once and appends their records to the journal's pending
//! batch; exposes the sans-IO commit protocol (`begin_commit` / `finish_commit`, or `commit`
//! with a `LogWriter`); reads of the tables; stats.
//!
//! What it does not do: decide when to commit or compact (the shard loop does, once per turn
//! and when idle), clocks (time comes in as `now_ms` / `stamp_ms`), logging, or locking for
//! threads: a `Store` belongs to its shard's thread (`&mut self` everywhere).
//!
//! Invariants: the tables always hold every mutation made, committed or not; the log holds
//! the committed ones in order; a mutation refused with an error changed nothing. Callers
//! acknowledge a stored stanza to its sender only once `is_committed(seq)` for the
//! `pending_seq()` read right after storing it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{Durability, StoreConfig};
use crate::error::{OpenError, StoreError};
use crate::files;
use crate::format::{self, PutRecord, HEADER_LEN};
use crate::journal::{CommitBatch, Journal};
use crate::replay::{self, ReplayReport};
use crate::tables::{MsgId, StoredMessage, Tables};
use crate::writer::LogWriter;

/// The log file of a durable store.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

/// A snapshot of counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Live messages.
    pub messages: usize,
    /// Owners with at least one message.
    pub owners: usize,
    /// Bytes of the log once everything appended is written.
    pub log_bytes: u64,
    /// Bytes of the log that are header or live Put records.
    pub live_bytes: u64,
    /// `log_bytes - live_bytes`: records of acknowledged messages and their acks.
    pub dead_bytes: u64,
    /// Bytes appended and not yet handed to a writer.
    pub pending_bytes: u64,
    /// Last committed batch.
    pub committed_seq: u64,
    /// Batches committed since open.
    pub commits: u64,
    /// Batch writes that failed since open.
    pub commit_failures: u64,
    /// Compactions since open.
    pub compactions: u64,
    /// False while writes are failing.
    pub available: bool,
    /// The next message id.
    pub next_id: u64,
    /// Keyed entries, all tables.
    pub kv_entries: usize,
}

/// One shard's durable store.
#[derive(Debug)]
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) log: Option<Log>,
    pub(crate) tables: Tables,
    pub(crate) journal: Journal,
    pub(crate) next_id: u64,
    report: ReplayReport,
    pub(crate) compactions: u64,
}

impl Store {
    /// Opens the store of `config.shard`: with durability `Memory` it touches no file and
    /// starts empty; otherwise it creates the directory and log if missing, takes the lock,
    /// replays the log and truncates a damaged tail (see `replay_report`).
    pub fn open(config: StoreConfig) -> Result<Store, OpenError> {
        let mut tables = Tables::default();
        if config.durability == Durability::Memory {
            let journal = Journal::new(false, false, 0, config.retry_interval_ms);
            return Ok(Store::assemble(
                config,
                None,
                tables,
                journal,
                1,
                ReplayReport::default(),
            ));
        }
        let path = config.log_path();
        let file = files::open_log(&config.data_dir, &path)?;
        files::remove_stale(&config.compact_path())?;
        let replayed = replay::replay(&file, &path, &mut tables)?;
        files::repair(&file, &path, &replayed.report)?;
        let end_offset = replayed.report.valid_bytes.max(HEADER_LEN as u64);
        let sync_data = config.durability == Durability::Fsync;
        let journal = Journal::new(true, sync_data, end_offset, config.retry_interval_ms);
        let log = Some(Log { file, path });
        Ok(Store::assemble(
            config,
            log,
            tables,
            journal,
            replayed.next_id,
            replayed.report,
        ))
    }

    fn assemble(
        config: StoreConfig,
        log: Option<Log>,
        tables: Tables,
        journal: Journal,
        next_id: u64,
        report: ReplayReport,
    ) -> Store {
        Store {
            config,
            log,
            tables,
            journal,
            next_id,
            report,
            compactions: 0,
        }
    }

    /// What replay found at open (empty for `Memory`).
    pub fn replay_report(&self) -> &ReplayReport {
        &self.report
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Stores a message for `owner` (a bare JID). Refused, with nothing changed, when the
    /// owner's queue is full, when the store is unavailable, or when the record is too large.
    pub fn put(
        &mut self,
        owner: &str,
        from: &str,
        stamp_ms: u64,
        stanza: &[u8],
    ) -> Result<MsgId, StoreError> {
        if !self.journal.is_available() {
            return Err(StoreError::Unavailable);
        }
        if self.tables.queue_len(owner) >= self.config.offline_max {
            return Err(StoreError::QuotaExceeded {
                limit: self.config.offline_max,
            });
        }
        let record_len =
            format::put_len(owner.len(), from.len(), stanza.len()).ok_or(StoreError::TooLarge {
                stanza_len: stanza.len(),
            })?;
        let id = self.next_id;
        self.next_id += 1;
        if let Some(buf) = self.journal.buffer() {
            let record = PutRecord {
                id,
                stamp_ms,
                owner,
                from,
                stanza,
            };
            format::encode_put(buf, &record);
        }
        let msg = StoredMessage {
            id: MsgId(id),
            from: from.into(),
            stamp_ms,
            stanza: stanza.into(),
        };
        let inserted = self.tables.insert(owner, msg, record_len);
        debug_assert!(inserted, "fresh id {id} already present");
        Ok(MsgId(id))
    }

    /// Deletes message `id` (its recipient acknowledged it). Returns whether it existed;
    /// acknowledging an unknown id appends nothing. Accepted even while unavailable: the
    /// record waits with the pending ones, and refusing would only redeliver the message.
    pub fn ack(&mut self, id: MsgId) -> Result<bool, StoreError> {
        if !self.tables.remove(id) {
            return Ok(false);
        }
        if let Some(buf) = self.journal.buffer() {
            format::encode_ack(buf, id.0);
        }
        Ok(true)
    }

    /// Sets keyed entry `key` of `table` to `value` (replacing it). Refused only when the
    /// record is too large (a key over 65535 bytes). Accepted even while unavailable, like
    /// `ack`: the record waits in the pending batch, and the caller (a roster change that
    /// another shard already made on its side) has no one to refuse it to.
    pub fn kv_set(&mut self, table: u8, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let record_len = format::set_len(key.len(), value.len()).ok_or(StoreError::TooLarge {
            stanza_len: key.len() + value.len(),
        })?;
        if let Some(buf) = self.journal.buffer() {
            format::encode_set(buf, table, key, value);
        }
        self.tables.kv.set(table, key, value, record_len);
        Ok(())
    }

    /// Removes keyed entry `key` of `table`; returns whether it existed (an unknown key
    /// appends nothing).
    pub fn kv_delete(&mut self, table: u8, key: &str) -> bool {
        if !self.tables.kv.delete(table, key) {
            return false;
        }
        if let Some(buf) = self.journal.buffer() {
            // The key was stored, so its length passed set_len.
            format::encode_delete(buf, table, key);
        }
        true
    }

    /// The value of keyed entry `key` of `table`.
    pub fn kv_get(&self, table: u8, key: &str) -> Option<&[u8]> {
        self.tables.kv.get(table, key)
    }

    /// The entries of `table` whose key starts with `prefix`, in key order.
    pub fn kv_scan<'a>(
        &'a self,
        table: u8,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.tables.kv.scan(table, prefix)
    }

    /// Entries in `table`.
    pub fn kv_len(&self, table: u8) -> usize {
        self.tables.kv.table_len(table)
    }

    /// `owner`'s queue, oldest first.
    pub fn queue(&self, owner: &str) -> impl Iterator<Item = &StoredMessage> {
        self.tables.queue(owner)
    }

    /// Messages in `owner`'s queue.
    pub fn queue_len(&self, owner: &str) -> usize {
        self.tables.queue_len(owner)
    }

    /// Owners with at least one message, in no particular order.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.tables.owners()
    }

    /// Message `id`, if live.
    pub fn get(&self, id: MsgId) -> Option<&StoredMessage> {
        self.tables.get(id)
    }

    /// The owner of message `id`, if live.
    pub fn owner_of(&self, id: MsgId) -> Option<&str> {
        self.tables.owner_of(id)
    }

    /// Live messages, all owners.
    pub fn live_messages(&self) -> usize {
        self.tables.len()
    }

    /// The seq that commits every mutation made so far: read it right after a `put` and
    /// acknowledge the sender once `is_committed` of it holds. With `Memory` everything is
    /// committed already.
    pub fn pending_seq(&self) -> u64 {
        self.journal.pending_seq()
    }

    /// The last committed seq.
    pub fn committed_seq(&self) -> u64 {
        self.journal.committed_seq()
    }

    /// Whether mutations made under `seq` are committed.
    pub fn is_committed(&self, seq: u64) -> bool {
        self.journal.committed_seq() >= seq
    }

    /// Hands out the next batch to write, or `None` (nothing pending, a batch already in
    /// flight, durability `Memory`, or unavailable with no retry due). The caller writes it at
    /// its offset in `log_file()` and returns it through `finish_commit`.
    pub fn begin_commit(&mut self) -> Option<CommitBatch> {
        self.journal.begin()
    }

    /// Takes back the batch from `begin_commit` with the result of writing it. `Ok(seq)`: its
    /// records are committed. `Err`: the store is unavailable (`put` refuses) and the records
    /// are written again, at the same offset, by the next batch once `retry_due`; the error
    /// (also kept as `unavailable_reason`) is for the caller to log.
    ///
    /// # Panics
    /// If `batch` is not the batch in flight.
    pub fn finish_commit(
        &mut self,
        batch: CommitBatch,
        result: io::Result<()>,
    ) -> Result<u64, StoreError> {
        self.journal.finish(batch, result)
    }

    /// `begin_commit`, write with `writer`, `finish_commit`. `Ok(None)`: nothing to write.
    pub fn commit(&mut self, writer: &mut impl LogWriter) -> Result<Option<u64>, StoreError> {
        let Some(batch) = self.journal.begin() else {
            return Ok(None);
        };
        let result = match &self.log {
            Some(log) => writer.write_batch(&log.file, &batch),
            // The journal hands out batches only when enabled, i.e. when there is a log.
            None => unreachable!("a commit batch without a log file"),
        };
        self.journal.finish(batch, result).map(Some)
    }

    /// While unavailable: whether the next retry is due at `now_ms` (every
    /// `retry_interval_ms`, counted from the first call after a failure). When it returns
    /// true the next `begin_commit` hands out the pending records again.
    pub fn retry_due(&mut self, now_ms: u64) -> bool {
        self.journal.retry_due(now_ms)
    }

    /// False after a failed write, until a retry or a compaction succeeds.
    pub fn is_available(&self) -> bool {
        self.journal.is_available()
    }

    /// The last write error while unavailable, as text naming cause and fix.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.journal.unavailable_reason()
    }

    /// The current log file (`None` for `Memory`). Compaction replaces it: look it up again
    /// for every batch.
    pub fn log_file(&self) -> Option<&File> {
        self.log.as_ref().map(|log| &log.file)
    }

    /// Path of the log (`None` for `Memory`).
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_ref().map(|log| log.path.as_path())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StoreStats {
        let log_bytes = if self.log.is_some() {
            self.journal.log_bytes()
        } else {
            0
        };
        let live_bytes = if self.log.is_some() {
            HEADER_LEN as u64 + self.tables.live_record_bytes()
        } else {
            0
        };
        StoreStats {
            messages: self.tables.len(),
            owners: self.tables.owner_count(),
            log_bytes,
            live_bytes,
            dead_bytes: log_bytes.saturating_sub(live_bytes),
            pending_bytes: self.journal.pending_bytes() as u64,
            committed_seq: self.journal.committed_seq(),
            commits: self.journal.commits(),
            commit_failures: self.journal.failures(),
            compactions: self.compactions,
            available: self.journal.is_available(),
            next_id: self.next_id,
            kv_entries: self.tables.kv.len(),
        }
    }
}
