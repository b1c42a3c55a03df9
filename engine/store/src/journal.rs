//! The sans-IO commit protocol: pending records, the batch in flight, committed sequence
//! numbers, and the unavailable state after a failed write.
//!
//! What it does: mutations append encoded records to `pending`. `begin` moves them into a
//! [`CommitBatch`] (seq, file offset, bytes) that the caller writes; `finish` takes the batch
//! back with the write's result. Success commits it (`committed_seq` advances and the buffer is
//! recycled, so steady state allocates nothing); failure puts its bytes back in front of
//! `pending`, to be rewritten at the same offset, and makes the store unavailable until a retry
//! succeeds. Retries are paced by `retry_due(now_ms)`.
//!
//! What it does not do: I/O, clocks, or touching the tables.
//!
//! Invariants: at most one batch is in flight; a batch's offset is the end of the committed
//! part of the file, so the file is always header + committed records (+ a possibly torn
//! attempt past the end, which the next batch overwrites); `committed_seq < next_seq`, and
//! every record appended so far is committed once `committed_seq >= pending_seq()`. After a failure the retried bytes travel under a later seq, which only moves
//! their commit point later, never earlier.

use std::io;
use std::mem;

use crate::error::StoreError;

/// One group commit: write `bytes` at `offset` (then `fdatasync` if `sync_data`), and hand the
/// batch back to `Store::finish_commit` with the result.
#[derive(Debug)]
pub struct CommitBatch {
    seq: u64,
    offset: u64,
    bytes: Vec<u8>,
    sync_data: bool,
}

impl CommitBatch {
    /// Sequence number: once finished with success, `committed_seq() == seq`.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// File offset to write at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The encoded records. The heap buffer does not move while the batch lives, so an
    /// asynchronous writer may keep pointing into it until it hands the batch back.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the write must be followed by `fdatasync` (durability `Fsync`).
    pub fn sync_data(&self) -> bool {
        self.sync_data
    }

    /// Moves the encoded records out, for a writer that must own its buffer while the kernel
    /// writes it (io_uring). Hand them back with [`CommitBatch::restore_bytes`] before
    /// `finish_commit`, which checks the length and so catches a buffer never given back.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        mem::take(&mut self.bytes)
    }

    /// Puts back the buffer taken with [`CommitBatch::take_bytes`], unchanged.
    pub fn restore_bytes(&mut self, bytes: Vec<u8>) {
        self.bytes = bytes;
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    len: usize,
}

#[derive(Debug)]
struct Unavailable {
    reason: String,
    /// Baseline of the retry pacing: the last attempt, or the first `retry_due` call after
    /// the failure (the journal has no clock of its own).
    last_attempt_ms: Option<u64>,
    /// `retry_due` said yes: the next `begin` hands out a batch.
    armed: bool,
}

/// Commit state of one log.
#[derive(Debug)]
pub(crate) struct Journal {
    /// False for `Durability::Memory`: nothing is encoded, everything is committed at once.
    enabled: bool,
    sync_data: bool,
    pending: Vec<u8>,
    /// `pending` holds a keyed-table record (see `keyed_buffer`).
    pending_keyed: bool,
    /// A cleared buffer returned by the last successful batch, reused as the next `pending`.
    spare: Vec<u8>,
    in_flight: Option<InFlight>,
    committed_seq: u64,
    next_seq: u64,
    /// End of the committed bytes in the file.
    end_offset: u64,
    unavailable: Option<Unavailable>,
    retry_interval_ms: u64,
    commits: u64,
    failures: u64,
}

impl Journal {
    pub(crate) fn new(enabled: bool, sync_data: bool, end_offset: u64, retry_ms: u64) -> Self {
        Journal {
            enabled,
            sync_data,
            pending: Vec::new(),
            pending_keyed: false,
            spare: Vec::new(),
            in_flight: None,
            committed_seq: 0,
            next_seq: 1,
            end_offset,
            unavailable: None,
            retry_interval_ms: retry_ms,
            commits: 0,
            failures: 0,
        }
    }

    /// The buffer to encode a record onto, or `None` when nothing is logged (Memory).
    pub(crate) fn buffer(&mut self) -> Option<&mut Vec<u8>> {
        self.enabled.then_some(&mut self.pending)
    }

    /// `buffer` for a keyed-table record (rosters, accounts, rooms, profiles): the change was
    /// answered as stored, so the pending batch should not wait (see `pending_keyed`).
    pub(crate) fn keyed_buffer(&mut self) -> Option<&mut Vec<u8>> {
        self.pending_keyed |= self.enabled;
        self.buffer()
    }

    /// Whether the pending records include a keyed-table change (not only message puts and
    /// acks).
    pub(crate) fn pending_keyed(&self) -> bool {
        self.pending_keyed
    }

    /// The next batch to write, if there is one and it may go now.
    pub(crate) fn begin(&mut self) -> Option<CommitBatch> {
        if !self.enabled || self.in_flight.is_some() || self.pending.is_empty() {
            return None;
        }
        if let Some(unavailable) = &mut self.unavailable {
            if !unavailable.armed {
                return None;
            }
            unavailable.armed = false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = mem::replace(&mut self.pending, mem::take(&mut self.spare));
        self.pending_keyed = false;
        self.in_flight = Some(InFlight {
            seq,
            len: bytes.len(),
        });
        Some(CommitBatch {
            seq,
            offset: self.end_offset,
            bytes,
            sync_data: self.sync_data,
        })
    }

    /// Takes back the batch `begin` handed out, with the result of writing it.
    ///
    /// # Panics
    /// If `batch` is not the batch in flight: a caller bug that would corrupt the log's order.
    pub(crate) fn finish(
        &mut self,
        batch: CommitBatch,
        result: io::Result<()>,
    ) -> Result<u64, StoreError> {
        let in_flight = self.in_flight.take();
        assert!(
            in_flight.is_some_and(|f| f.seq == batch.seq && f.len == batch.bytes.len()),
            "finish_commit for batch {} but {:?} is in flight",
            batch.seq,
            in_flight.map(|f| f.seq)
        );
        let CommitBatch {
            seq, offset, bytes, ..
        } = batch;
        match result {
            Ok(()) => {
                self.committed_seq = seq;
                self.end_offset = offset + bytes.len() as u64;
                self.unavailable = None;
                self.commits += 1;
                self.recycle(bytes);
                Ok(seq)
            }
            Err(source) => {
                let len = bytes.len();
                // The failed records go first: they must land before anything appended since.
                let mut retry = bytes;
                retry.extend_from_slice(&self.pending);
                let old = mem::replace(&mut self.pending, retry);
                self.recycle(old);
                // What the failed batch carried is not known here: assume the worst.
                self.pending_keyed = true;
                self.failures += 1;
                let error = StoreError::Write {
                    offset,
                    len,
                    source,
                };
                let last_attempt_ms = self.unavailable.as_ref().and_then(|u| u.last_attempt_ms);
                self.unavailable = Some(Unavailable {
                    reason: error.to_string(),
                    last_attempt_ms,
                    armed: false,
                });
                Err(error)
            }
        }
    }

    fn recycle(&mut self, mut bytes: Vec<u8>) {
        bytes.clear();
        if bytes.capacity() > self.spare.capacity() {
            self.spare = bytes;
        }
    }

    /// While unavailable: whether a retry is due at `now_ms`; if so, the next `begin` hands
    /// out the pending records again. The first call after a failure starts the clock.
    pub(crate) fn retry_due(&mut self, now_ms: u64) -> bool {
        let interval_ms = self.retry_interval_ms;
        let Some(unavailable) = &mut self.unavailable else {
            return false;
        };
        if unavailable.armed {
            return true;
        }
        let Some(last_ms) = unavailable.last_attempt_ms else {
            unavailable.last_attempt_ms = Some(now_ms);
            return false;
        };
        if now_ms.saturating_sub(last_ms) < interval_ms {
            return false;
        }
        unavailable.last_attempt_ms = Some(now_ms);
        unavailable.armed = true;
        true
    }

    /// After compaction replaced the file with one of `end_offset` bytes.
    pub(crate) fn reset_after_compaction(&mut self, end_offset: u64) {
        debug_assert!(
            self.is_idle(),
            "compaction with records pending or in flight"
        );
        self.end_offset = end_offset;
    }

    /// Nothing pending, nothing in flight: every record appended is committed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_none()
    }

    pub(crate) fn committed_seq(&self) -> u64 {
        self.committed_seq
    }

    /// The seq that commits every record appended so far: the next batch's if records are
    /// pending, else the batch in flight's, else the last committed one.
    pub(crate) fn pending_seq(&self) -> u64 {
        if !self.pending.is_empty() {
            self.next_seq
        } else if let Some(in_flight) = self.in_flight {
            in_flight.seq
        } else {
            self.committed_seq
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        self.unavailable.is_none()
    }

    pub(crate) fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable.as_ref().map(|u| u.reason.as_str())
    }

    /// End of the committed bytes in the file: records before it can be read back.
    pub(crate) fn committed_end(&self) -> u64 {
        self.end_offset
    }

    /// Bytes of the log once everything appended is written.
    pub(crate) fn log_bytes(&self) -> u64 {
        let in_flight = self.in_flight.map_or(0, |f| f.len);
        self.end_offset + (in_flight + self.pending.len()) as u64
    }

    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn commits(&self) -> u64 {
        self.commits
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(28)
    }

    #[test]
    fn batches_commit_in_order_and_recycle_buffers() {
        let mut j = Journal::new(true, false, 16, 100);
        assert!(j.begin().is_none(), "nothing pending");
        assert_eq!(j.pending_seq(), 0, "nothing appended: nothing to wait for");
        j.buffer().unwrap().extend_from_slice(b"abc");
        assert_eq!(j.pending_seq(), 1);
        let batch = j.begin().unwrap();
        assert_eq!(
            (batch.seq(), batch.offset(), batch.bytes()),
            (1, 16, &b"abc"[..])
        );
        assert_eq!(j.pending_seq(), 1, "in flight");
        j.buffer().unwrap().extend_from_slice(b"de");
        assert_eq!(j.pending_seq(), 2);
        assert!(j.begin().is_none(), "one batch in flight at a time");
        assert_eq!(j.log_bytes(), 21);
        assert_eq!(j.finish(batch, Ok(())).unwrap(), 1);
        assert_eq!(j.committed_seq(), 1);
        let batch = j.begin().unwrap();
        assert_eq!(
            (batch.seq(), batch.offset(), batch.bytes()),
            (2, 19, &b"de"[..])
        );
        j.finish(batch, Ok(())).unwrap();
        assert_eq!((j.committed_seq(), j.commits()), (2, 2));
    }

    #[test]
    fn failure_keeps_bytes_at_same_offset_and_paces_retries() {
        let mut j = Journal::new(true, true, 16, 100);
        j.buffer().unwrap().extend_from_slice(b"abc");
        let batch = j.begin().unwrap();
        assert!(batch.sync_data());
        j.buffer().unwrap().extend_from_slice(b"de");
        let err = j.finish(batch, Err(enospc())).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Write {
                offset: 16,
                len: 3,
                ..
            }
        ));
        assert!(!j.is_available());
        assert!(j.unavailable_reason().unwrap().contains("os error 28"));
        assert_eq!(j.committed_seq(), 0);
        assert!(j.begin().is_none(), "no retry before it is due");
        assert!(!j.retry_due(1_000), "first call starts the clock");
        assert!(!j.retry_due(1_099));
        assert!(j.retry_due(1_100));
        let batch = j.begin().unwrap();
        assert_eq!(
            (batch.seq(), batch.offset(), batch.bytes()),
            (2, 16, &b"abcde"[..])
        );
        j.finish(batch, Err(enospc())).unwrap_err();
        assert!(!j.retry_due(1_150), "paced from the last attempt");
        assert!(j.retry_due(1_200));
        let batch = j.begin().unwrap();
        assert_eq!(batch.seq(), 3);
        assert_eq!(j.finish(batch, Ok(())).unwrap(), 3);
        assert!(j.is_available() && !j.retry_due(5_000));
        assert_eq!((j.failures(), j.log_bytes()), (2, 21));
    }

    #[test]
    fn keyed_records_mark_the_pending_batch_until_it_leaves() {
        let mut j = Journal::new(true, false, 16, 100);
        j.buffer().unwrap().extend_from_slice(b"put");
        assert!(!j.pending_keyed(), "message records alone may wait");
        j.keyed_buffer().unwrap().extend_from_slice(b"set");
        assert!(j.pending_keyed());
        let batch = j.begin().unwrap();
        assert!(!j.pending_keyed(), "the keyed record left with the batch");
        j.buffer().unwrap().extend_from_slice(b"ack");
        j.finish(batch, Err(enospc())).unwrap_err();
        assert!(
            j.pending_keyed(),
            "a failed batch's records are back, keyed or not"
        );
        let mut memory = Journal::new(false, false, 0, 100);
        assert!(memory.keyed_buffer().is_none() && !memory.pending_keyed());
    }

    #[test]
    fn memory_mode_never_hands_out_batches() {
        let mut j = Journal::new(false, false, 0, 100);
        assert!(j.buffer().is_none());
        assert!(j.begin().is_none());
        assert_eq!(j.pending_seq(), j.committed_seq());
    }

    #[test]
    #[should_panic(expected = "finish_commit")]
    fn finishing_a_foreign_batch_panics() {
        let mut j = Journal::new(true, false, 16, 100);
        j.buffer().unwrap().push(1);
        let batch = j.begin().unwrap();
        j.finish(batch, Ok(())).unwrap();
        let forged = CommitBatch {
            seq: 1,
            offset: 16,
            bytes: vec![1],
            sync_data: false,
        };
        let _ = j.finish(forged, Ok(()));
    }
}
