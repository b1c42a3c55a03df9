//! The recipient's ledger: every message of the backlog must arrive exactly once, and each
//! sender's messages in the order it sent them (RFC 6120 10.1: in-order processing per
//! sender; the server interleaves senders as it stored them, so only per-sender order is
//! checked).
//!
//! One bit per expected message plus two counters per sender: 100,000 messages cost about
//! 12 KiB.
//!
//! What it does not do: parse stanzas (see `body`) or time anything (see `recv`).
//! Invariant: `unique` counts set bits; a message counts once as unique, and every later
//! copy as a duplicate.

/// How one arrival counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First copy, after every earlier-sent message of its sender that arrived so far.
    InOrder,
    /// First copy, but a later message of the same sender arrived before it.
    OutOfOrder,
    /// Seen before.
    Duplicate,
    /// Another run's, or a sender or sequence number this run never sent.
    Foreign,
}

/// What the recipient got, over the whole backlog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub expected: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

impl Tally {
    /// Expected messages that never arrived.
    pub fn missing(&self) -> u64 {
        self.expected - self.unique
    }
}

pub struct Ledger {
    run: u32,
    /// Per sender: messages it sends, and one past the highest sequence number seen.
    sent: Vec<u32>,
    high: Vec<u32>,
    /// Per sender: a bit per sequence number, from `offsets[sender]` in `seen`.
    offsets: Vec<usize>,
    seen: Vec<u64>,
    tally: Tally,
}

impl Ledger {
    /// A ledger for run `run`, whose sender `s` sends `sent[s]` messages (seq 0..sent[s]).
    pub fn new(run: u32, sent: Vec<u32>) -> Ledger {
        let mut offsets = Vec::with_capacity(sent.len());
        let mut words = 0usize;
        for &n in &sent {
            offsets.push(words);
            words += (n as usize).div_ceil(64);
        }
        let expected = sent.iter().map(|&n| u64::from(n)).sum();
        Ledger {
            run,
            high: vec![0; sent.len()],
            sent,
            offsets,
            seen: vec![0; words],
            tally: Tally {
                expected,
                ..Tally::default()
            },
        }
    }

    /// Counts one arrival of message `seq` of `sender` of run `run`.
    pub fn record(&mut self, run: u32, sender: u32, seq: u32) -> Arrival {
        let s = sender as usize;
        if run != self.run || self.sent.get(s).is_none_or(|&n| seq >= n) {
            self.tally.foreign += 1;
            return Arrival::Foreign;
        }
        let bit = self.offsets[s] * 64 + seq as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.tally.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= mask;
        self.tally.unique += 1;
        if seq < self.high[s] {
            self.tally.out_of_order += 1;
            return Arrival::OutOfOrder;
        }
        self.high[s] = seq + 1;
        Arrival::InOrder
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Every expected message arrived.
    pub fn complete(&self) -> bool {
        self.tally.unique == self.tally.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_order_duplicates_and_strangers() {
        let mut l = Ledger::new(9, vec![3, 70]);
        assert_eq!(l.tally().expected, 73);
        assert_eq!(l.record(9, 0, 0), Arrival::InOrder);
        assert_eq!(
            l.record(9, 1, 0),
            Arrival::InOrder,
            "senders interleave freely"
        );
        assert_eq!(
            l.record(9, 0, 2),
            Arrival::InOrder,
            "a gap is not yet a fault"
        );
        assert_eq!(
            l.record(9, 0, 1),
            Arrival::OutOfOrder,
            "arrived after seq 2"
        );
        assert_eq!(l.record(9, 0, 1), Arrival::Duplicate);
        assert_eq!(l.record(9, 0, 3), Arrival::Foreign, "sender 0 sent 3");
        assert_eq!(l.record(9, 2, 0), Arrival::Foreign, "no sender 2");
        assert_eq!(l.record(8, 1, 1), Arrival::Foreign, "another run");
        // Sender 1's bits span two words, next to sender 0's.
        for q in 1..70 {
            assert_eq!(l.record(9, 1, q), Arrival::InOrder, "{q}");
        }
        assert_eq!(l.record(9, 1, 69), Arrival::Duplicate);
        assert_eq!(l.record(9, 1, 64), Arrival::Duplicate);
        assert!(l.complete());
        let t = l.tally();
        assert_eq!(
            (
                t.unique,
                t.duplicates,
                t.out_of_order,
                t.foreign,
                t.missing()
            ),
            (73, 3, 1, 3, 0)
        );
    }

    #[test]
    fn missing_messages_keep_it_incomplete() {
        let mut l = Ledger::new(1, vec![2, 0, 1]);
        assert_eq!(
            l.record(1, 1, 0),
            Arrival::Foreign,
            "sender 1 sends nothing"
        );
        l.record(1, 0, 1);
        l.record(1, 2, 0);
        assert!(!l.complete());
        assert_eq!(l.tally().missing(), 1);
    }
}
