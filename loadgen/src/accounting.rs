//! Message accounting: every probe's fate (delivered, lost, duplicated, out of order).
//!
//! Each worker thread keeps one [`Ledger`] for the recipients it owns: per sender that
//! delivered to them, a bitmap of the sequence numbers delivered (sparse: a sender that never
//! wrote to this thread costs nothing, see `rows`); per (sender, recipient) pair, the highest sequence number
//! seen, so a lower one arriving later is out of order. At the end the ledgers of all threads
//! are merged (bitmaps OR-ed; a bit set in two ledgers is a duplicate across threads) and
//! compared with what each sender says it sent: a sent sequence number with no bit is lost.
//!
//! Invariants: a sender's sequence numbers are 0, 1, 2, ... in send order, each sent to one
//! recipient; sequence numbers at or above `max_seq` are refused as unexpected, so a hostile
//! or broken body cannot make a bitmap grow without bound. The pair table holds at most
//! [`MAX_PAIRS`] pairs per thread (about 32 bytes each); deliveries of pairs beyond it are
//! counted in `order_unchecked` instead of being checked for order.
//!
//! Worker processes send their ledger to the parent as a [`LedgerWire`]: the bitmaps
//! (base64 of little-endian words, only senders with a delivery) and the counters. The pair
//! table stays behind: a recipient lives in one process, so every order check of its pairs
//! was made there and only the count travels.
//!
//! What it does not do: timing (see `metrics`), or keep anything per message at the sender.

use std::collections::HashMap;

use base64::Engine as _;

mod rows;
use rows::Rows;

/// Most (sender, recipient) pairs one ledger tracks for ordering.
pub const MAX_PAIRS: usize = 8 << 20;

/// Outcome of recording one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// First time this (sender, seq) arrived, in order for its pair.
    InOrder,
    /// First time, but after a higher seq of the same pair.
    OutOfOrder,
    /// Already delivered once.
    Duplicate,
    /// Sender index or sequence number out of range.
    Unexpected,
}

/// The deliveries one worker thread saw.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: Rows,
    /// Senders of the run: indices at or above are refused as unexpected.
    senders: u32,
    max_seq: u32,
    last_seq: HashMap<u64, u32>,
    deliveries: u64,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    order_unchecked: u64,
    max_pairs: usize,
}

/// The fate of every message of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageTotals {
    pub sent: u64,
    /// Distinct messages delivered.
    pub delivered: u64,
    pub lost: u64,
    /// Deliveries beyond the first of a message.
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Probe bodies with a sender or sequence number no sender used.
    pub unexpected: u64,
    /// Deliveries not checked for order (the pair table was full).
    pub order_unchecked: u64,
}

impl Ledger {
    /// A ledger for a run of `clients` senders, none of which sends `max_seq` messages or more.
    /// Nothing is allocated per sender until it delivers.
    pub fn new(clients: u32, max_seq: u32) -> Ledger {
        Ledger {
            senders: clients,
            max_seq,
            max_pairs: MAX_PAIRS,
            ..Ledger::default()
        }
    }

    /// Records that `recipient` received message `seq` of `sender`.
    pub fn record(&mut self, sender: u32, recipient: u32, seq: u32) -> Delivery {
        let first = self.record_unordered(sender, seq);
        if first != Delivery::InOrder {
            return first;
        }
        let pair = (u64::from(sender) << 32) | u64::from(recipient);
        if self.last_seq.len() >= self.max_pairs && !self.last_seq.contains_key(&pair) {
            self.order_unchecked += 1;
            return Delivery::InOrder;
        }
        let last = self.last_seq.entry(pair).or_insert(seq);
        if seq < *last {
            self.out_of_order += 1;
            return Delivery::OutOfOrder;
        }
        *last = seq;
        Delivery::InOrder
    }

    /// Records message `seq` of `sender` without any order check (receipts, which may cross
    /// between peers): `InOrder` means "first time".
    pub fn record_unordered(&mut self, sender: u32, seq: u32) -> Delivery {
        if sender >= self.senders || seq >= self.max_seq {
            self.unexpected += 1;
            return Delivery::Unexpected;
        }
        let bits = self.seen.row_mut(sender, self.senders);
        self.deliveries += 1;
        let (word, mask) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & mask != 0 {
            self.duplicates += 1;
            return Delivery::Duplicate;
        }
        bits[word] |= mask;
        Delivery::InOrder
    }

    /// Deliveries recorded so far (including duplicates), for live progress.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Folds another thread's ledger into this one.
    pub fn merge(&mut self, other: Ledger) {
        self.senders = self.senders.max(other.senders);
        for (sender, theirs) in other.seen.into_rows() {
            if theirs.iter().all(|&w| w == 0) {
                continue;
            }
            let mine = self.seen.row_mut(sender, self.senders);
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                self.duplicates += u64::from((*a & b).count_ones());
                *a |= b;
            }
        }
        self.max_seq = self.max_seq.max(other.max_seq);
        self.deliveries += other.deliveries;
        // Duplicates the other ledger saw within itself (the loop above found those between).
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.order_unchecked += other.order_unchecked;
    }

    /// Compares deliveries with `sent[s]`, the number of messages sender `s` sent.
    pub fn totals(&self, sent: &[u32]) -> MessageTotals {
        let mut totals = MessageTotals {
            duplicated: self.duplicates,
            out_of_order: self.out_of_order,
            unexpected: self.unexpected,
            order_unchecked: self.order_unchecked,
            ..MessageTotals::default()
        };
        for (sender, &count) in sent.iter().enumerate() {
            totals.sent += u64::from(count);
            let (below, above) = count_split(self.seen.row(sender as u32), count);
            totals.delivered += below;
            totals.unexpected += above;
        }
        // Senders beyond `sent` sent nothing: whatever arrived from them is unexpected.
        for (_, bits) in self.seen.iter().filter(|(s, _)| *s as usize >= sent.len()) {
            totals.unexpected += bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        totals.lost = totals.sent - totals.delivered;
        totals
    }
}

/// The fate of every message, split by whether the server acknowledged it (XEP-0198):
/// what `--verify` and the offline scenario judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AckTotals {
    /// Messages the server acknowledged.
    pub acknowledged: u64,
    pub acked_delivered: u64,
    /// Acknowledged and never delivered: the server broke its guarantee.
    pub acked_lost: u64,
    /// Messages sent but never acknowledged (the sender's stream ended first, or the server
    /// never acked within the wait).
    pub unacked: u64,
    pub unacked_delivered: u64,
    /// Not acknowledged and not delivered: no guarantee was given, so reported, not failed.
    pub unacked_lost: u64,
}

impl Ledger {
    /// Compares deliveries with what each sender sent (`sent[s]`) and had acknowledged
    /// (`acked[s]`: its first that many messages, at most `sent[s]`, except the ranges
    /// `unacked[k] = (s, from, to)`: messages `from..to` of sender `s` were still
    /// unacknowledged when its stream dropped, and the next stream's acks start after them).
    pub fn ack_totals(&self, sent: &[u32], acked: &[u32], unacked: &[UnackedRange]) -> AckTotals {
        let mut t = AckTotals::default();
        for (sender, &count) in sent.iter().enumerate() {
            let acked = acked.get(sender).copied().unwrap_or(0).min(count);
            let bits = self.seen.row(sender as u32);
            let (delivered_acked, _) = count_split(bits, acked);
            let (delivered_all, _) = count_split(bits, count);
            t.acknowledged += u64::from(acked);
            t.acked_delivered += delivered_acked;
            t.unacked += u64::from(count - acked);
            t.unacked_delivered += delivered_all - delivered_acked;
        }
        for &(sender, from, to) in unacked {
            let count = sent.get(sender as usize).copied().unwrap_or(0);
            let acked = acked.get(sender as usize).copied().unwrap_or(0).min(count);
            let to = to.min(acked);
            if from >= to {
                continue; // outside the acknowledged prefix already
            }
            let bits = self.seen.row(sender);
            let delivered = count_split(bits, to).0 - count_split(bits, from).0;
            let moved = u64::from(to - from);
            t.acknowledged -= moved;
            t.acked_delivered -= delivered;
            t.unacked += moved;
            t.unacked_delivered += delivered;
        }
        t.acked_lost = t.acknowledged - t.acked_delivered;
        t.unacked_lost = t.unacked - t.unacked_delivered;
        t
    }
}

/// `(sender, from, to)`: the sender's messages `from..to` were unacknowledged when its
/// stream dropped (a reconnect storm), so no acknowledgement covers them.
pub type UnackedRange = (u32, u32, u32);

/// A ledger on its way from a worker process to the parent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerWire {
    /// base64 of records `sender u32, words u32, words x u64`, little-endian.
    pub seen: String,
    pub max_seq: u32,
    pub deliveries: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    pub order_unchecked: u64,
}

/// Why a [`LedgerWire`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    Base64,
    /// A record is cut short.
    Truncated,
    /// A sender index beyond the run's clients, or more words than `max_seq` needs.
    OutOfRange,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireError::Base64 => "ledger bitmaps are not base64",
            WireError::Truncated => "ledger bitmaps are cut short",
            WireError::OutOfRange => "ledger names a sender or sequence beyond the run's",
        })
    }
}

impl std::error::Error for WireError {}

impl Ledger {
    pub fn to_wire(&self) -> LedgerWire {
        let mut bytes = Vec::new();
        // In sender order, so the same ledger always gives the same text.
        let mut rows: Vec<(u32, &Vec<u64>)> = self
            .seen
            .iter()
            .filter(|(_, bits)| bits.iter().any(|&w| w != 0))
            .collect();
        rows.sort_unstable_by_key(|&(sender, _)| sender);
        for (sender, bits) in rows {
            bytes.extend_from_slice(&sender.to_le_bytes());
            bytes.extend_from_slice(&(bits.len() as u32).to_le_bytes());
            for word in bits {
                bytes.extend_from_slice(&word.to_le_bytes());
            }
        }
        LedgerWire {
            seen: base64::engine::general_purpose::STANDARD.encode(bytes),
            max_seq: self.max_seq,
            deliveries: self.deliveries,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            unexpected: self.unexpected,
            order_unchecked: self.order_unchecked,
        }
    }

    /// Rebuilds a ledger of a run of `clients` senders (for merging, not for recording).
    pub fn from_wire(wire: &LedgerWire, clients: u32) -> Result<Ledger, WireError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&wire.seen)
            .map_err(|_| WireError::Base64)?;
        let mut ledger = Ledger::new(clients, wire.max_seq);
        let max_words = (wire.max_seq as usize).div_ceil(64);
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let sender = take_u32(&mut rest)?;
            let words = take_u32(&mut rest)? as usize;
            if sender >= clients || words > max_words {
                return Err(WireError::OutOfRange);
            }
            let row = ledger.seen.row_mut(sender, clients);
            if row.len() < words {
                row.resize(words, 0);
            }
            for slot in row.iter_mut().take(words) {
                let (word, tail) = rest.split_first_chunk::<8>().ok_or(WireError::Truncated)?;
                *slot |= u64::from_le_bytes(*word);
                rest = tail;
            }
        }
        ledger.deliveries = wire.deliveries;
        ledger.duplicates = wire.duplicates;
        ledger.out_of_order = wire.out_of_order;
        ledger.unexpected = wire.unexpected;
        ledger.order_unchecked = wire.order_unchecked;
        Ok(ledger)
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, WireError> {
    let (word, tail) = rest.split_first_chunk::<4>().ok_or(WireError::Truncated)?;
    *rest = tail;
    Ok(u32::from_le_bytes(*word))
}

/// Bits set below `limit`, and at or above it.
fn count_split(bits: &[u64], limit: u32) -> (u64, u64) {
    let (full_words, rest) = ((limit / 64) as usize, limit % 64);
    let mut below = 0u64;
    let mut above = 0u64;
    for (i, &word) in bits.iter().enumerate() {
        let ones = u64::from(word.count_ones());
        if i < full_words {
            below += ones;
        } else if i == full_words {
            let low = u64::from((word & ((1u64 << rest) - 1)).count_ones());
            below += low;
            above += ones - low;
        } else {
            above += ones;
        }
    }
    (below, above)
}

#[cfg(test)]
mod tests;
