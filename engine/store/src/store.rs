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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::config::{Durability, StoreConfig};
use crate::error::{OpenError, StoreError};
use crate::files;
use crate::format::{self, PutRecord, Record, FRAME_LEN, HEADER_LEN};
use crate::journal::{CommitBatch, Journal};
use crate::replay::{self, ReplayReport};
use crate::tables::{MsgId, Queued, Tables};
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
    /// Record bytes of the live messages (what `max_stored_bytes` bounds).
    pub message_bytes: u64,
    /// Heap bytes of the in-memory message index (not the stanzas: they stay in the log).
    pub index_heap_bytes: u64,
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
        if config.durability == Durability::Memory {
            let tables = Tables::with_bodies();
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
        let mut tables = Tables::default();
        let mut replayed = replay::replay(&file, &path, &mut tables)?;
        files::repair(&file, &path, &config, &mut replayed.report)?;
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
    /// owner's queue is full (messages or bytes), when the store holds its byte budget, when
    /// the store is unavailable, or when the record is too large.
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
        let too_large = StoreError::TooLarge {
            stanza_len: stanza.len(),
        };
        let record_len = format::put_len(owner.len(), from.len(), stanza.len()).ok_or(too_large)?;
        self.check_budgets(owner, record_len)?;
        let stanza_len = stanza.len() as u32; // fits: record_len bounds it
        let head_len =
            u16::try_from(record_len - stanza_len).map_err(|_| StoreError::TooLarge {
                stanza_len: stanza.len(),
            })?;
        let id = self.next_id;
        self.next_id += 1;
        // The record goes at the end of everything appended so far; its stanza ends it.
        let record_at = if self.log.is_some() {
            self.journal.log_bytes()
        } else {
            0
        };
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
        let msg = Queued {
            id: MsgId(id),
            stamp_ms,
            stanza_at: record_at + u64::from(head_len),
            stanza_len,
            head_len,
        };
        let inserted = self.tables.insert(owner, msg, Some(stanza));
        debug_assert!(inserted, "fresh id {id} already present");
        Ok(MsgId(id))
    }

    /// The count and byte budgets a new record of `record_len` bytes for `owner` must fit.
    fn check_budgets(&self, owner: &str, record_len: u32) -> Result<(), StoreError> {
        let config = &self.config;
        if self.tables.queue_len(owner) >= config.offline_max {
            return Err(StoreError::QuotaExceeded {
                limit: config.offline_max,
            });
        }
        let record_len = u64::from(record_len);
        if self.tables.queue_bytes(owner) + record_len > config.offline_max_bytes {
            return Err(StoreError::OwnerBytesExceeded {
                limit: config.offline_max_bytes,
            });
        }
        if self.tables.message_record_bytes() + record_len > config.max_stored_bytes {
            return Err(StoreError::StoreFull {
                limit: config.max_stored_bytes,
            });
        }
        Ok(())
    }

    /// Deletes message `id` of `owner` (its recipient acknowledged it). Returns whether it
    /// existed; acknowledging an unknown id appends nothing. Accepted even while unavailable:
    /// the record waits with the pending ones, and refusing would only redeliver the message.
    pub fn ack(&mut self, owner: &str, id: MsgId) -> Result<bool, StoreError> {
        if !self.tables.remove(owner, id) {
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
        if let Some(buf) = self.journal.keyed_buffer() {
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
        if let Some(buf) = self.journal.keyed_buffer() {
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

    /// The entries of `table` whose key starts with `prefix` and sorts after `after`, in key
    /// order (to continue a scan where an earlier one stopped).
    pub fn kv_scan_after<'a>(
        &'a self,
        table: u8,
        prefix: &'a str,
        after: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.tables.kv.scan_after(table, prefix, after)
    }

    /// Entries in `table`.
    pub fn kv_len(&self, table: u8) -> usize {
        self.tables.kv.table_len(table)
    }

    /// `owner`'s queue, oldest first.
    pub fn queue(&self, owner: &str) -> impl Iterator<Item = &Queued> {
        self.tables.queue(owner)
    }

    /// The messages of `owner`'s queue with an id above `after`, oldest first.
    pub fn queue_after(&self, owner: &str, after: MsgId) -> impl Iterator<Item = &Queued> {
        self.tables.queue_after(owner, after)
    }

    /// Messages in `owner`'s queue.
    pub fn queue_len(&self, owner: &str) -> usize {
        self.tables.queue_len(owner)
    }

    /// Record bytes in `owner`'s queue (what `offline_max_bytes` bounds).
    pub fn queue_bytes(&self, owner: &str) -> u64 {
        self.tables.queue_bytes(owner)
    }

    /// Owners with at least one message, in no particular order.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.tables.owners()
    }

    /// Message `id` of `owner`, if queued.
    pub fn get(&self, owner: &str, id: MsgId) -> Option<&Queued> {
        self.tables.get(owner, id)
    }

    /// Where the stanza of `msg` is: here (a store without a log), in the log (read the span
    /// and pass the bytes to `read_back`), or not written yet (its commit is still to come:
    /// ask again after `finish_commit`).
    pub fn body(&self, msg: &Queued) -> Body<'_> {
        if self.log.is_none() {
            // A store without a log keeps every stanza (Tables::with_bodies).
            return self.tables.body(msg.id).map_or(Body::Pending, Body::Here);
        }
        let record_end = msg.stanza_at + u64::from(msg.stanza_len);
        if record_end > self.journal.committed_end() {
            return Body::Pending;
        }
        Body::InLog(LogSpan {
            offset: msg.record_at(),
            len: msg.record_len(),
        })
    }

    /// The stanza of `msg` from its record's bytes as read from the log (the span `body`
    /// gave): checks the frame, CRC and id, so a damaged read is an error, never forwarded.
    pub fn read_back<'b>(&self, msg: &Queued, record: &'b [u8]) -> Result<&'b [u8], StoreError> {
        let corrupt = StoreError::Corrupt {
            id: msg.id.0,
            offset: msg.record_at(),
        };
        let Some(stanza) = decode_put_record(record, msg.id.0) else {
            return Err(corrupt);
        };
        if stanza.len() != msg.stanza_len() {
            return Err(corrupt);
        }
        Ok(stanza)
    }

    /// The stanza of `msg`, read synchronously (`pread` for a log): for tools and tests. The
    /// shard reads through its driver instead (`body`, then `read_back`), never blocking.
    pub fn stanza_now(&self, msg: &Queued) -> Result<Vec<u8>, StoreError> {
        match self.body(msg) {
            Body::Here(stanza) => Ok(stanza.to_vec()),
            Body::Pending => Err(StoreError::Uncommitted { id: msg.id.0 }),
            Body::InLog(span) => {
                let mut record = vec![0; span.len as usize];
                let corrupt = StoreError::Corrupt {
                    id: msg.id.0,
                    offset: span.offset,
                };
                let log = self.log.as_ref().ok_or(StoreError::Unavailable)?;
                log.file
                    .read_exact_at(&mut record, span.offset)
                    .map_err(|_| corrupt)?;
                self.read_back(msg, &record).map(<[u8]>::to_vec)
            }
        }
    }

    /// Bytes appended and not yet handed to a writer (grows with every mutation of a
    /// durable store; a caller can tell whether a call wrote anything).
    pub fn pending_bytes(&self) -> usize {
        self.journal.pending_bytes()
    }

    /// Whether the records not yet handed to a writer include a keyed-table change (a roster,
    /// an account, a room, a profile), not only message puts and acks. Such changes are
    /// usually answered as stored at once, so a writer that lets message records wait for
    /// company (the shard's `--commit-delay-ms`) writes these in the turn that made them.
    pub fn pending_keyed(&self) -> bool {
        self.journal.pending_keyed()
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
            message_bytes: self.tables.message_record_bytes(),
            index_heap_bytes: self.tables.index_heap_bytes() as u64,
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

/// Where a queued stanza is (see [`Store::body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// In memory (a store without a log).
    Here(&'a [u8]),
    /// In the log: read this span and hand it to [`Store::read_back`].
    InLog(LogSpan),
    /// Appended but not committed yet: readable after the commit.
    Pending,
}

/// A record's place in the current log file. Compaction moves records: read a span in the
/// same loop turn `body` gave it (the shard compacts only with no read in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSpan {
    /// File offset of the record (its frame).
    pub offset: u64,
    /// Bytes of the record, frame included.
    pub len: u32,
}

/// The stanza of a whole Put record (frame included) if the frame, CRC and kind check out and
/// its id is `id`.
fn decode_put_record(record: &[u8], id: u64) -> Option<&[u8]> {
    let frame: [u8; FRAME_LEN] = record.get(..FRAME_LEN)?.try_into().ok()?;
    let format::FrameCheck::Body { len, crc } = format::check_frame(frame) else {
        return None;
    };
    let body = record.get(FRAME_LEN..)?;
    if body.len() != len as usize || crate::crc::crc32c(body) != crc {
        return None;
    }
    match format::decode_body(body).ok()? {
        Record::Put(put) if put.id == id => Some(put.stanza),
        _ => None,
    }
}
