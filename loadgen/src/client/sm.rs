//! XEP-0198 bookkeeping of the load generator: which of our chat messages the server
//! acknowledged, and how long that took. The protocol (`<enable/>`, the counters, `<r/>`
//! answered, `<a h/>` checked) is `rookery_client`'s; this is its per-session data.
//!
//! Each chat message is remembered with its outbound number (from the client's counter) and
//! intended send time until an `<a h=N/>` with `N` at or past that number comes back; that
//! is the `sm_ack` latency.
//!
//! It also counts how many of our chat messages the server acknowledged (`messages_acked`):
//! `h` minus the non-message stanzas (presence, iq answers, receipts) numbered at or below
//! it. Those are kept as runs of consecutive numbers (`others`), so a stream of messages
//! interleaved with a few other stanzas costs a few entries. Messages go out in sequence
//! order on one stream, so the acknowledged ones are exactly the first `messages_acked`:
//! that prefix is what `--verify` holds the server to.
//!
//! Layout, for the 512-byte budget per simulated client: this struct lives inside the
//! client's one XEP-0198 heap block (with the crate's counters), so it is 32 bytes (that
//! block is then 56 bytes, one 64-byte malloc chunk; it was 104 in a 112-byte chunk, plus a
//! 48-byte queue buffer for the initial presence, when the queues were inline). The oldest
//! run of non-message stanzas is kept inline: an idle client after login holds exactly one
//! (its initial presence, which nothing asks the server to acknowledge while it idles), so an
//! idle stream owns nothing beyond the block. Everything else unacknowledged (timed
//! messages, later runs) is in `Queues`, boxed only while it holds something: a chatting
//! client's box lives from a message to its ack (a few milliseconds).
//!
//! What it does not do: resumption (`resume='true'`), or resending unacknowledged stanzas:
//! rookery-load measures, it does not recover. Invariants: `pending` holds at most
//! [`MAX_PENDING`] entries, in increasing outbound order; beyond it a message is not timed
//! (counted in `untimed`) so a server that never acks cannot grow it without bound. `others`
//! holds at most [`MAX_OTHER_RUNS`] runs (the inline one counted); past it the acknowledged
//! count stops advancing (`count_frozen`), which undercounts acks (messages then show as
//! unacknowledged, never as acknowledged and lost). The inline run is empty only when no
//! run is unacknowledged; `queues` is `None` when both its queues are empty. Every `h` given
//! to `on_ack` advances (the client reports only those) and is at most the number of
//! stanzas sent (the client refuses any other).

use std::collections::VecDeque;

/// Most unacknowledged messages timed per stream.
pub const MAX_PENDING: usize = 64;
/// Most runs of unacknowledged non-message stanzas remembered per stream.
pub const MAX_OTHER_RUNS: usize = 1024;

/// Whether the client enables stream management when offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmPolicy {
    EnableWhenOffered,
    Off,
}

/// One stream's bookkeeping; lives in the client's XEP-0198 block, so a stream without it
/// costs nothing. 32 bytes (see the module doc and `stream_mgmt_is_small`).
#[derive(Debug, Default)]
pub struct StreamMgmt {
    /// What is unacknowledged beyond `oldest_other`; `None` when nothing is.
    queues: Option<Box<Queues>>,
    /// The oldest run (first outbound number, count) of non-message stanzas not yet
    /// acknowledged; count 0 when there is none (then `queues` holds no run either).
    oldest_other: (u32, u32),
    /// Messages sent while `pending` was full: not timed.
    pub untimed: u32,
    /// Non-message stanzas acknowledged so far.
    others_acked: u32,
    /// Chat messages acknowledged, as of the last ack.
    messages_acked: u32,
    /// `others` overflowed: `messages_acked` no longer advances.
    count_frozen: bool,
}

/// The unacknowledged stanzas of a stream beyond its oldest run of other stanzas.
#[derive(Debug, Default)]
struct Queues {
    /// (outbound number, intended send ns) of messages not yet acknowledged.
    pending: VecDeque<(u32, u64)>,
    /// Runs (first outbound number, count) of non-message stanzas after `oldest_other`.
    later_others: VecDeque<(u32, u32)>,
}

impl StreamMgmt {
    /// We sent stanza number `n`, not a chat message (presence, iq answer, receipt).
    pub fn sent_stanza(&mut self, n: u32) {
        if self.oldest_other.1 == 0 {
            self.oldest_other = (n, 1);
            return;
        }
        let runs = self.queues.as_deref().map_or(0, |q| q.later_others.len());
        let newest = match self
            .queues
            .as_deref_mut()
            .and_then(|q| q.later_others.back_mut())
        {
            Some(run) => run,
            None => &mut self.oldest_other,
        };
        if newest.0.wrapping_add(newest.1) == n {
            newest.1 += 1;
            return;
        }
        if 1 + runs < MAX_OTHER_RUNS {
            self.queues_mut().later_others.push_back((n, 1));
        } else {
            self.count_frozen = true;
        }
    }

    /// Chat messages the server acknowledged on this stream: our first `messages_acked()`.
    pub fn messages_acked(&self) -> u32 {
        self.messages_acked
    }

    /// We sent chat message number `n`, due at `intended_ns`; it is timed until acknowledged.
    pub fn sent_message(&mut self, n: u32, intended_ns: u64) {
        if self.pending() < MAX_PENDING {
            self.queues_mut().pending.push_back((n, intended_ns));
        } else {
            self.untimed += 1;
        }
    }

    /// The server acknowledged `h` of our stanzas: calls `acked` with the intended send time
    /// of every message that covers, oldest first.
    pub fn on_ack(&mut self, h: u32, mut acked: impl FnMut(u64)) {
        self.count_acked(h);
        if let Some(queues) = self.queues.as_deref_mut() {
            // Serial arithmetic: `n` is covered when it is at most `h`, modulo 2^32.
            while let Some(&(n, intended_ns)) = queues.pending.front() {
                if (h.wrapping_sub(n) as i32) < 0 {
                    break;
                }
                queues.pending.pop_front();
                acked(intended_ns);
            }
        }
        self.drop_empty_queues();
    }

    /// Advances `messages_acked` to `h`: every stanza up to `h` minus the non-message ones.
    fn count_acked(&mut self, h: u32) {
        if self.count_frozen {
            return;
        }
        while self.oldest_other.1 > 0 {
            let (first, count) = self.oldest_other;
            if (h.wrapping_sub(first) as i32) < 0 {
                break;
            }
            let covered = h.wrapping_sub(first).wrapping_add(1);
            if covered >= count {
                self.others_acked = self.others_acked.wrapping_add(count);
                self.oldest_other = self
                    .queues
                    .as_deref_mut()
                    .and_then(|q| q.later_others.pop_front())
                    .unwrap_or((0, 0));
            } else {
                self.others_acked = self.others_acked.wrapping_add(covered);
                self.oldest_other = (h.wrapping_add(1), count - covered);
                break;
            }
        }
        self.messages_acked = h.wrapping_sub(self.others_acked);
    }

    fn queues_mut(&mut self) -> &mut Queues {
        self.queues.get_or_insert_with(Box::default)
    }

    /// Frees the queues' box (and their buffers) once both are empty: an idle stream holds no
    /// heap beyond the client's block.
    fn drop_empty_queues(&mut self) {
        let Some(queues) = self.queues.as_deref_mut() else {
            return;
        };
        if queues.pending.is_empty() && queues.later_others.is_empty() {
            self.queues = None;
        } else if queues.pending.is_empty() {
            queues.pending = VecDeque::new();
        }
    }

    /// Messages awaiting an ack and timed.
    pub fn pending(&self) -> usize {
        self.queues.as_deref().map_or(0, |q| q.pending.len())
    }

    /// Heap bytes held beyond the client's block (the queues' box and buffers), for tests.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.queues.as_deref().map_or(0, |q| {
            std::mem::size_of::<Queues>()
                + q.pending.capacity() * std::mem::size_of::<(u32, u64)>()
                + q.later_others.capacity() * std::mem::size_of::<(u32, u32)>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers stanzas like the client's counter does.
    #[derive(Default)]
    struct Sent {
        sm: StreamMgmt,
        n: u32,
    }

    impl Sent {
        fn stanza(&mut self) {
            self.n = self.n.wrapping_add(1);
            self.sm.sent_stanza(self.n);
        }
        fn message(&mut self, intended_ns: u64) {
            self.n = self.n.wrapping_add(1);
            self.sm.sent_message(self.n, intended_ns);
        }
    }

    #[test]
    fn acks_cover_messages_in_order() {
        let mut s = Sent::default();
        s.stanza(); // presence: 1
        s.message(100); // 2
        s.message(200); // 3
        s.stanza(); // receipt: 4
        s.message(300); // 5
        let mut acked = Vec::new();
        s.sm.on_ack(1, |t| acked.push(t));
        assert!(acked.is_empty());
        s.sm.on_ack(3, |t| acked.push(t));
        assert_eq!(acked, vec![100, 200]);
        s.sm.on_ack(5, |t| acked.push(t));
        assert_eq!(acked, vec![100, 200, 300]);
        assert_eq!(s.sm.pending(), 0);
    }

    #[test]
    fn messages_acked_skips_other_stanzas() {
        let mut s = Sent::default();
        s.stanza(); // presence: 1
        s.message(10); // 2
        s.stanza(); // iq result: 3
        s.stanza(); // receipt: 4
        s.message(20); // 5
        s.message(30); // 6
        s.sm.on_ack(1, |_| {});
        assert_eq!(s.sm.messages_acked(), 0);
        s.sm.on_ack(3, |_| {});
        assert_eq!(
            s.sm.messages_acked(),
            1,
            "3 covers the presence, one message, one iq"
        );
        s.sm.on_ack(5, |_| {});
        assert_eq!(s.sm.messages_acked(), 2);
        s.sm.on_ack(6, |_| {});
        assert_eq!(s.sm.messages_acked(), 3);
        s.stanza(); // 7
        s.sm.on_ack(7, |_| {});
        assert_eq!(s.sm.messages_acked(), 3);
    }

    #[test]
    fn too_many_other_runs_freeze_the_count_low() {
        let mut s = Sent::default();
        for _ in 0..=MAX_OTHER_RUNS {
            s.message(0);
            s.stanza();
        }
        s.sm.on_ack(s.n, |_| {});
        // Frozen: acks are undercounted (here: not counted), never overcounted.
        assert_eq!(s.sm.messages_acked(), 0);
    }

    #[test]
    fn numbers_wrap_like_xep_0198() {
        let mut s = Sent {
            n: u32::MAX - 1,
            ..Sent::default()
        };
        s.message(1); // u32::MAX
        s.message(2); // 0 after wrapping
        let mut acked = Vec::new();
        s.sm.on_ack(u32::MAX, |t| acked.push(t));
        assert_eq!(acked, vec![1]);
        s.sm.on_ack(0, |t| acked.push(t));
        assert_eq!(acked, vec![1, 2]);
    }

    #[test]
    fn pending_is_bounded() {
        let mut s = Sent::default();
        for t in 0..(MAX_PENDING as u64 + 3) {
            s.message(t);
        }
        assert_eq!((s.sm.pending(), s.sm.untimed), (MAX_PENDING, 3));
    }

    #[test]
    fn stream_mgmt_is_small() {
        // The client's XEP-0198 block is the crate's counters (16 B) and this, plus its
        // pointer to the rare block (8 B): 56 B, a 64-byte malloc chunk.
        let size = std::mem::size_of::<StreamMgmt>();
        assert!(size <= 32, "StreamMgmt is {size} bytes");
    }

    #[test]
    fn idle_after_presence_holds_no_heap_and_acks_free_the_queues() {
        let mut s = Sent::default();
        s.stanza(); // the initial presence, never acknowledged while the client idles
        assert_eq!(
            s.sm.heap_bytes(),
            0,
            "one run of other stanzas is kept inline"
        );
        s.message(100); // 2
        s.stanza(); // 3: a second run
        s.message(200); // 4
        assert!(s.sm.heap_bytes() > 0);
        let mut acked = Vec::new();
        s.sm.on_ack(2, |t| acked.push(t));
        assert_eq!((acked.as_slice(), s.sm.messages_acked()), (&[100][..], 1));
        assert!(s.sm.heap_bytes() > 0, "message 4 is still pending");
        s.sm.on_ack(4, |t| acked.push(t));
        assert_eq!(
            (acked.as_slice(), s.sm.messages_acked()),
            (&[100, 200][..], 2)
        );
        assert_eq!(s.sm.heap_bytes(), 0, "nothing unacknowledged: no box");
        s.stanza(); // 5
        s.stanza(); // 6
        assert_eq!(
            s.sm.heap_bytes(),
            0,
            "consecutive stanzas extend the inline run"
        );
        s.sm.on_ack(5, |_| {});
        s.message(300); // 7
        s.sm.on_ack(7, |t| acked.push(t));
        assert_eq!(
            (acked.as_slice(), s.sm.messages_acked()),
            (&[100, 200, 300][..], 3)
        );
        assert_eq!(s.sm.heap_bytes(), 0);
    }
}
