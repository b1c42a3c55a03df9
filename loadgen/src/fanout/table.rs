//! The last receipt of every change: for each status change (presence) or group message, how
//! many of its recipients got it and the latest of their latencies, so the run can time the
//! fan-out to the *last* recipient (`presence_fanout_last`, `group_fanout_last`).
//!
//! A change's recipients live on many threads and processes, so each worker thread keeps a
//! table of the changes it saw, and the run merges them (counts add up, latencies take the
//! maximum) before judging: a change whose count reached the expected fan-out was delivered
//! to everyone, and its maximum latency is its fan-out latency; the others are incomplete.
//! Only first deliveries are recorded (the ledger filters duplicates and strangers first).
//!
//! Worker processes ship it as base64 of little-endian records `row u32, seq u32, count u32,
//! max latency u64 (us)`, checked on the way back in against the run's rows and sequences.
//!
//! What it does not do: decide what a delivery is (see `accounting`). Invariant: at most
//! [`MAX_CHANGES`] changes per table; receipts of changes beyond it are counted in
//! `untracked`, never silently dropped.

use std::collections::HashMap;

use base64::Engine as _;

/// Most changes one table follows (about 40 bytes each): far beyond any planned run.
pub const MAX_CHANGES: usize = 16 << 20;

/// Receipts seen of one change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    count: u32,
    max_us: u64,
}

/// The changes one worker (or, merged, the whole run) saw.
#[derive(Debug, PartialEq, Eq)]
pub struct LastReceipts {
    entries: HashMap<u64, Entry>,
    /// Receipts of changes past `max_changes`.
    pub untracked: u64,
    max_changes: usize,
}

impl Default for LastReceipts {
    fn default() -> Self {
        LastReceipts {
            entries: HashMap::new(),
            untracked: 0,
            max_changes: MAX_CHANGES,
        }
    }
}

/// How the changes of a run fared, once merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Completion {
    /// Changes every expected recipient got.
    pub complete: u64,
    /// Changes some (not all) recipients got.
    pub partial: u64,
}

/// Why a shipped table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    Base64,
    Truncated,
    /// A row or sequence beyond the run's.
    OutOfRange,
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableError::Base64 => "fan-out table is not base64",
            TableError::Truncated => "fan-out table is cut short",
            TableError::OutOfRange => "fan-out table names a row or sequence beyond the run's",
        })
    }
}

impl std::error::Error for TableError {}

const RECORD_BYTES: usize = 20;

fn key(row: u32, seq: u32) -> u64 {
    (u64::from(row) << 32) | u64::from(seq)
}

impl LastReceipts {
    /// One recipient got change `seq` of `row` this long after it was due.
    pub fn record(&mut self, row: u32, seq: u32, latency_us: u64) {
        let k = key(row, seq);
        if self.entries.len() >= self.max_changes && !self.entries.contains_key(&k) {
            self.untracked += 1;
            return;
        }
        let e = self.entries.entry(k).or_default();
        e.count += 1;
        e.max_us = e.max_us.max(latency_us);
    }

    pub fn merge(&mut self, other: LastReceipts) {
        self.untracked += other.untracked;
        for (k, theirs) in other.entries {
            let e = self.entries.entry(k).or_default();
            e.count += theirs.count;
            e.max_us = e.max_us.max(theirs.max_us);
        }
    }

    /// Calls `record_last` with the last-recipient latency of every change that reached
    /// `expected` recipients; counts complete and partial changes.
    pub fn finish(&self, expected: u32, record_last: &mut dyn FnMut(u64)) -> Completion {
        let mut done = Completion::default();
        for e in self.entries.values() {
            if e.count >= expected {
                done.complete += 1;
                record_last(e.max_us);
            } else {
                done.partial += 1;
            }
        }
        done
    }

    pub fn to_wire(&self) -> String {
        let mut bytes = Vec::with_capacity(self.entries.len() * RECORD_BYTES + 8);
        bytes.extend_from_slice(&self.untracked.to_le_bytes());
        for (&k, e) in &self.entries {
            bytes.extend_from_slice(&((k >> 32) as u32).to_le_bytes());
            bytes.extend_from_slice(&(k as u32).to_le_bytes());
            bytes.extend_from_slice(&e.count.to_le_bytes());
            bytes.extend_from_slice(&e.max_us.to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads back [`LastReceipts::to_wire`] of a run with `rows` rows and sequences below
    /// `max_seq`. An empty text is an empty table (a report from before this table existed).
    pub fn from_wire(text: &str, rows: u32, max_seq: u32) -> Result<LastReceipts, TableError> {
        let mut table = LastReceipts::default();
        if text.is_empty() {
            return Ok(table);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| TableError::Base64)?;
        let (head, mut rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(TableError::Truncated)?;
        table.untracked = u64::from_le_bytes(*head);
        while !rest.is_empty() {
            let (record, tail) = rest
                .split_first_chunk::<RECORD_BYTES>()
                .ok_or(TableError::Truncated)?;
            rest = tail;
            let word = |at: usize| {
                u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
            };
            let (row, seq, count) = (word(0), word(4), word(8));
            if row >= rows || seq >= max_seq {
                return Err(TableError::OutOfRange);
            }
            let mut max = [0u8; 8];
            max.copy_from_slice(&record[12..20]);
            let e = table.entries.entry(key(row, seq)).or_default();
            e.count += count;
            e.max_us = e.max_us.max(u64::from_le_bytes(max));
        }
        Ok(table)
    }

    /// Changes followed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_threads_and_times_the_last_recipient() {
        let mut a = LastReceipts::default();
        let mut b = LastReceipts::default();
        // Change (0, 0): 3 recipients, two on thread a, one (the slowest) on b.
        a.record(0, 0, 100);
        a.record(0, 0, 300);
        b.record(0, 0, 900);
        // Change (1, 4): only 2 of 3 arrived.
        b.record(1, 4, 50);
        a.record(1, 4, 70);
        a.merge(b);
        assert_eq!(a.len(), 2);
        let mut lasts = Vec::new();
        let done = a.finish(3, &mut |us| lasts.push(us));
        assert_eq!(lasts, vec![900]);
        assert_eq!(
            done,
            Completion {
                complete: 1,
                partial: 1
            }
        );
    }

    #[test]
    fn ships_between_processes_and_refuses_strangers() {
        let mut t = LastReceipts::default();
        t.record(2, 7, 1234);
        t.record(2, 7, 99);
        t.record(0, 1, 5);
        t.untracked = 3;
        let back = LastReceipts::from_wire(&t.to_wire(), 3, 8).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            LastReceipts::from_wire(&t.to_wire(), 2, 8),
            Err(TableError::OutOfRange)
        );
        assert_eq!(
            LastReceipts::from_wire(&t.to_wire(), 3, 7),
            Err(TableError::OutOfRange)
        );
        assert_eq!(
            LastReceipts::from_wire("***", 3, 8),
            Err(TableError::Base64)
        );
        let cut = base64::engine::general_purpose::STANDARD.encode([0u8; 12]);
        assert_eq!(
            LastReceipts::from_wire(&cut, 3, 8),
            Err(TableError::Truncated)
        );
        assert_eq!(
            LastReceipts::from_wire("", 3, 8),
            Ok(LastReceipts::default())
        );
    }

    #[test]
    fn changes_past_the_cap_are_counted_not_followed() {
        let mut t = LastReceipts {
            max_changes: 2,
            ..LastReceipts::default()
        };
        t.record(0, 0, 5);
        t.record(0, 1, 5);
        t.record(1, 0, 5);
        t.record(0, 0, 5);
        assert_eq!((t.untracked, t.len()), (1, 2));
    }
}
