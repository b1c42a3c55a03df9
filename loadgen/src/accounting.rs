//! Message accounting: every probe's fate (delivered, lost, duplicated, out of order).
//!
//! Each worker thread keeps one [`Ledger`] for the recipients it owns: per sender, a bitmap of
//! the sequence numbers delivered; per (sender, recipient) pair, the highest sequence number
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
    seen: Vec<Vec<u64>>,
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
    pub fn new(clients: u32, max_seq: u32) -> Ledger {
        let mut seen = Vec::new();
        seen.resize_with(clients as usize, Vec::new);
        Ledger {
            seen,
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
        let Some(bits) = self
            .seen
            .get_mut(sender as usize)
            .filter(|_| seq < self.max_seq)
        else {
            self.unexpected += 1;
            return Delivery::Unexpected;
        };
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
        if self.seen.len() < other.seen.len() {
            self.seen.resize_with(other.seen.len(), Vec::new);
        }
        for (mine, theirs) in self.seen.iter_mut().zip(other.seen) {
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
            let bits = self.seen.get(sender).map_or(&[][..], Vec::as_slice);
            let (below, above) = count_split(bits, count);
            totals.delivered += below;
            totals.unexpected += above;
        }
        // Senders beyond `sent` sent nothing: whatever arrived from them is unexpected.
        for bits in self.seen.iter().skip(sent.len()) {
            totals.unexpected += bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        totals.lost = totals.sent - totals.delivered;
        totals
    }
}

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
        for (sender, bits) in self.seen.iter().enumerate() {
            if bits.iter().all(|&w| w == 0) {
                continue;
            }
            bytes.extend_from_slice(&(sender as u32).to_le_bytes());
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
            let sender = take_u32(&mut rest)? as usize;
            let words = take_u32(&mut rest)? as usize;
            if sender >= ledger.seen.len() || words > max_words {
                return Err(WireError::OutOfRange);
            }
            let row = &mut ledger.seen[sender];
            for _ in 0..words {
                let (word, tail) = rest.split_first_chunk::<8>().ok_or(WireError::Truncated)?;
                row.push(u64::from_le_bytes(*word));
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
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_and_out_of_order() {
        let mut ledger = Ledger::new(3, 1000);
        // Sender 0 sent 5 to recipient 1: 0,1,3,2 arrive (2 late), 4 is lost, 1 arrives twice.
        for seq in [0, 1, 3] {
            assert_eq!(ledger.record(0, 1, seq), Delivery::InOrder);
        }
        assert_eq!(ledger.record(0, 1, 2), Delivery::OutOfOrder);
        assert_eq!(ledger.record(0, 1, 1), Delivery::Duplicate);
        // Sender 2 sent 2 to two recipients: order is per pair, so this is in order.
        assert_eq!(ledger.record(2, 0, 1), Delivery::InOrder);
        assert_eq!(ledger.record(2, 1, 0), Delivery::InOrder);
        let totals = ledger.totals(&[5, 0, 2]);
        assert_eq!(
            totals,
            MessageTotals {
                sent: 7,
                delivered: 6,
                lost: 1,
                duplicated: 1,
                out_of_order: 1,
                unexpected: 0,
                order_unchecked: 0,
            }
        );
    }

    #[test]
    fn pairs_beyond_the_table_are_counted_not_checked() {
        let mut ledger = Ledger::new(4, 100);
        ledger.max_pairs = 2;
        ledger.record(0, 1, 5);
        ledger.record(1, 2, 5);
        // A third pair does not fit: its inversion goes unchecked, but it is still delivered.
        assert_eq!(ledger.record(2, 3, 5), Delivery::InOrder);
        assert_eq!(ledger.record(2, 3, 4), Delivery::InOrder);
        // Known pairs are still checked.
        assert_eq!(ledger.record(0, 1, 4), Delivery::OutOfOrder);
        let totals = ledger.totals(&[6, 6, 6, 0]);
        assert_eq!(
            (
                totals.order_unchecked,
                totals.out_of_order,
                totals.delivered
            ),
            (2, 1, 5)
        );
    }

    #[test]
    fn unexpected_senders_and_sequences_are_refused() {
        let mut ledger = Ledger::new(2, 100);
        assert_eq!(ledger.record(5, 0, 0), Delivery::Unexpected);
        assert_eq!(ledger.record(0, 1, 100), Delivery::Unexpected);
        // In range but above what the sender says it sent.
        assert_eq!(ledger.record(1, 0, 70), Delivery::InOrder);
        let totals = ledger.totals(&[0, 3]);
        assert_eq!(
            (totals.unexpected, totals.lost, totals.delivered),
            (3, 3, 0)
        );
    }

    #[test]
    fn merge_across_threads_finds_cross_thread_duplicates() {
        let mut a = Ledger::new(2, 1000);
        let mut b = Ledger::new(2, 1000);
        for seq in 0..130 {
            // Even seqs went to a recipient on thread a, odd ones to thread b.
            let ledger = if seq % 2 == 0 { &mut a } else { &mut b };
            ledger.record(0, 1, seq);
        }
        b.record(0, 1, 64); // seq 64 also delivered on the other thread: a misroute
        a.merge(b);
        let totals = a.totals(&[131, 0]);
        assert_eq!(totals.delivered, 130);
        assert_eq!(totals.lost, 1);
        assert_eq!(totals.duplicated, 1);
        assert_eq!(a.deliveries(), 131);
    }

    #[test]
    fn ledgers_cross_processes_exactly() {
        // Process A's recipients got seqs 0..70 of sender 1 and seq 3 of sender 0; process B's
        // got 70..100 of sender 1 plus seq 5 again (a duplicate across processes), and one
        // out-of-order delivery of its own.
        let mut a = Ledger::new(3, 1000);
        let mut b = Ledger::new(3, 1000);
        for seq in 0..70 {
            a.record(1, 0, seq);
        }
        a.record(0, 2, 3);
        for seq in (70..100).rev() {
            b.record(1, 2, seq);
        }
        b.record(1, 2, 5);
        let wire_a = a.to_wire();
        let wire_b = b.to_wire();
        let mut merged = Ledger::from_wire(&wire_a, 3).unwrap();
        merged.merge(Ledger::from_wire(&wire_b, 3).unwrap());
        let totals = merged.totals(&[4, 101, 0]);
        assert_eq!(totals.sent, 105);
        assert_eq!(totals.delivered, 101);
        assert_eq!(totals.lost, 4, "3 of sender 0 and seq 100 of sender 1");
        assert_eq!(totals.duplicated, 1);
        // 98..70 after 99, and 5 after 99: counted where the pair lives.
        assert_eq!(totals.out_of_order, 30);
        assert_eq!(merged.deliveries(), 102);

        assert_eq!(
            Ledger::from_wire(&wire_a, 1).err(),
            Some(WireError::OutOfRange)
        );
        let mut cut = wire_a.clone();
        cut.seen = base64::engine::general_purpose::STANDARD.encode([1u8, 0, 0, 0, 2, 0]);
        assert_eq!(Ledger::from_wire(&cut, 3).err(), Some(WireError::Truncated));
        cut.seen = "!!".into();
        assert_eq!(Ledger::from_wire(&cut, 3).err(), Some(WireError::Base64));
        let empty = Ledger::new(3, 10).to_wire();
        assert!(empty.seen.is_empty());
    }

    #[test]
    fn receipts_are_counted_without_order() {
        let mut receipts = Ledger::new(2, 100);
        assert_eq!(receipts.record_unordered(1, 5), Delivery::InOrder);
        assert_eq!(
            receipts.record_unordered(1, 2),
            Delivery::InOrder,
            "no order check"
        );
        assert_eq!(receipts.record_unordered(1, 5), Delivery::Duplicate);
        assert_eq!(receipts.record_unordered(9, 0), Delivery::Unexpected);
        let totals = receipts.totals(&[0, 7]);
        assert_eq!(
            (
                totals.delivered,
                totals.lost,
                totals.duplicated,
                totals.out_of_order
            ),
            (2, 5, 1, 0)
        );
    }

    #[test]
    fn split_counts_straddle_word_boundaries() {
        let bits = [u64::MAX, 0b1011];
        assert_eq!(count_split(&bits, 64), (64, 3));
        assert_eq!(count_split(&bits, 66), (66, 1));
        assert_eq!(count_split(&bits, 200), (67, 0));
        assert_eq!(count_split(&[], 10), (0, 0));
    }
}
