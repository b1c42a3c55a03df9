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
//! What it does not do: timing (see `metrics`), or keep anything per message at the sender.

use std::collections::HashMap;

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
    fn split_counts_straddle_word_boundaries() {
        let bits = [u64::MAX, 0b1011];
        assert_eq!(count_split(&bits, 64), (64, 3));
        assert_eq!(count_split(&bits, 66), (66, 1));
        assert_eq!(count_split(&bits, 200), (67, 0));
        assert_eq!(count_split(&[], 10), (0, 0));
    }
}
