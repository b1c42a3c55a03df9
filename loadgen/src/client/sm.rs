//! XEP-0198 stream management, client side, as bookkeeping only: the counters and the queue
//! of unacknowledged messages of one stream.
//!
//! The client enables it (when the server offers `<sm xmlns='urn:xmpp:sm:3'/>` after
//! authentication and the run wants it) by sending `<enable/>` right after binding. From then
//! on it counts every stanza it sends (`outbound`) and, once the server said `<enabled/>`,
//! every stanza it receives (`inbound`, the `h` of our `<a/>` answers to the server's `<r/>`).
//! Each chat message is remembered with its outbound number and intended send time until an
//! `<a h=N/>` with `N` at or past that number comes back; that is the `sm_ack` latency.
//!
//! It also counts how many of our chat messages the server acknowledged (`messages_acked`):
//! `h` minus the non-message stanzas (presence, iq answers, receipts) numbered at or below
//! it. Those are kept as runs of consecutive numbers (`others`), so a stream of messages
//! interleaved with a few other stanzas costs a few entries. Messages go out in sequence
//! order on one stream, so the acknowledged ones are exactly the first `messages_acked`:
//! that prefix is what `--verify` holds the server to.
//!
//! What it does not do: resumption (`resume='true'`), or resending unacknowledged stanzas:
//! rookery-load measures, it does not recover. Invariants: `pending` holds at most
//! [`MAX_PENDING`] entries, in increasing outbound order; beyond it a message is not timed
//! (counted in `untimed`) so a server that never acks cannot grow it without bound. `others`
//! holds at most [`MAX_OTHER_RUNS`] runs; past it the acknowledged count stops advancing
//! (`count_frozen`), which undercounts acks (messages then show as unacknowledged, never as
//! acknowledged and lost).

use std::collections::VecDeque;

/// The XEP-0198 namespace (version 3).
pub const NS: &str = "urn:xmpp:sm:3";
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

/// Where the stream's stream management stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmPhase {
    /// `<enable/>` sent, no answer yet: our stanzas are counted (the server counts from its
    /// receipt of `<enable/>`, which precedes all of them on the wire).
    Requested,
    Enabled,
}

/// One stream's counters. Boxed in the client, so a stream without it costs a pointer.
#[derive(Debug)]
pub struct StreamMgmt {
    pub phase: SmPhase,
    /// Stanzas received since `<enabled/>` (mod 2^32, as XEP-0198 counts).
    pub inbound: u32,
    /// Stanzas sent since `<enable/>`.
    pub outbound: u32,
    /// (outbound number, intended send ns) of messages not yet acknowledged.
    pending: VecDeque<(u32, u64)>,
    /// Messages sent while `pending` was full: not timed.
    pub untimed: u32,
    /// Runs (first outbound number, count) of non-message stanzas not yet acknowledged.
    others: VecDeque<(u32, u32)>,
    /// Non-message stanzas acknowledged so far.
    others_acked: u32,
    /// The highest `h` the server sent.
    acked_h: u32,
    /// `others` overflowed: `messages_acked` no longer advances.
    count_frozen: bool,
    /// Chat messages acknowledged, as of the last ack.
    messages_acked: u32,
}

impl StreamMgmt {
    pub fn requested() -> StreamMgmt {
        StreamMgmt {
            phase: SmPhase::Requested,
            inbound: 0,
            outbound: 0,
            pending: VecDeque::new(),
            untimed: 0,
            others: VecDeque::new(),
            others_acked: 0,
            acked_h: 0,
            count_frozen: false,
            messages_acked: 0,
        }
    }

    /// We sent a stanza that is not a chat message (presence, iq answer, receipt).
    pub fn sent_stanza(&mut self) {
        self.outbound = self.outbound.wrapping_add(1);
        let n = self.outbound;
        if let Some((first, count)) = self.others.back_mut() {
            if first.wrapping_add(*count) == n {
                *count += 1;
                return;
            }
        }
        if self.others.len() < MAX_OTHER_RUNS {
            self.others.push_back((n, 1));
        } else {
            self.count_frozen = true;
        }
    }

    /// Chat messages the server acknowledged on this stream: our first `messages_acked()`.
    pub fn messages_acked(&self) -> u32 {
        self.messages_acked
    }

    /// We sent a chat message due at `intended_ns`; it is timed until acknowledged.
    pub fn sent_message(&mut self, intended_ns: u64) {
        self.outbound = self.outbound.wrapping_add(1);
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back((self.outbound, intended_ns));
        } else {
            self.untimed += 1;
        }
    }

    /// We received a stanza (counted only once the server enabled stream management).
    pub fn received_stanza(&mut self) {
        if self.phase == SmPhase::Enabled {
            self.inbound = self.inbound.wrapping_add(1);
        }
    }

    /// The server acknowledged `h` of our stanzas: calls `acked` with the intended send time
    /// of every message that covers, oldest first.
    pub fn on_ack(&mut self, h: u32, mut acked: impl FnMut(u64)) {
        self.count_acked(h);
        // Serial arithmetic: `n` is covered when it is at most `h`, modulo 2^32.
        while let Some(&(n, intended_ns)) = self.pending.front() {
            if (h.wrapping_sub(n) as i32) < 0 {
                break;
            }
            self.pending.pop_front();
            acked(intended_ns);
        }
        if self.pending.is_empty() {
            // Give the queue's buffer back: an idle stream holds no heap beyond the box.
            self.pending = VecDeque::new();
        }
    }

    /// Advances `messages_acked` to `h`: every stanza up to `h` minus the non-message ones.
    fn count_acked(&mut self, h: u32) {
        // An `h` behind the last one (or beyond what we sent) is stale or bogus: ignored.
        let ahead = h.wrapping_sub(self.acked_h) as i32 > 0;
        let sent = (self.outbound.wrapping_sub(h) as i32) >= 0;
        if !ahead || !sent || self.count_frozen {
            return;
        }
        self.acked_h = h;
        while let Some(&(first, count)) = self.others.front() {
            let covered = h.wrapping_sub(first).wrapping_add(1);
            if (h.wrapping_sub(first) as i32) < 0 {
                break;
            }
            if covered >= count {
                self.others_acked = self.others_acked.wrapping_add(count);
                self.others.pop_front();
            } else {
                self.others_acked = self.others_acked.wrapping_add(covered);
                self.others[0] = (h.wrapping_add(1), count - covered);
                break;
            }
        }
        self.messages_acked = h.wrapping_sub(self.others_acked);
        if self.others.is_empty() {
            self.others = VecDeque::new();
        }
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// `<a xmlns='urn:xmpp:sm:3' h='N'/>`.
pub fn write_ack(h: u32, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "<a xmlns='{NS}' h='{h}'/>");
}

/// `<r xmlns='urn:xmpp:sm:3'/>`.
pub fn write_request(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
}

/// `<enable xmlns='urn:xmpp:sm:3'/>`.
pub fn write_enable(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<enable xmlns='urn:xmpp:sm:3'/>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_cover_messages_in_order() {
        let mut sm = StreamMgmt::requested();
        sm.sent_stanza(); // presence: 1
        sm.sent_message(100); // 2
        sm.sent_message(200); // 3
        sm.sent_stanza(); // receipt: 4
        sm.sent_message(300); // 5
        let mut acked = Vec::new();
        sm.on_ack(1, |t| acked.push(t));
        assert!(acked.is_empty());
        sm.on_ack(3, |t| acked.push(t));
        assert_eq!(acked, vec![100, 200]);
        sm.on_ack(3, |t| acked.push(t));
        assert_eq!(acked.len(), 2, "a repeated ack acks nothing new");
        sm.on_ack(5, |t| acked.push(t));
        assert_eq!(acked, vec![100, 200, 300]);
        assert_eq!(sm.pending(), 0);
    }

    #[test]
    fn messages_acked_skips_other_stanzas() {
        let mut sm = StreamMgmt::requested();
        sm.sent_stanza(); // presence: 1
        sm.sent_message(10); // 2
        sm.sent_stanza(); // iq result: 3
        sm.sent_stanza(); // receipt: 4
        sm.sent_message(20); // 5
        sm.sent_message(30); // 6
        sm.on_ack(1, |_| {});
        assert_eq!(sm.messages_acked(), 0);
        sm.on_ack(3, |_| {});
        assert_eq!(
            sm.messages_acked(),
            1,
            "3 covers the presence, one message, one iq"
        );
        sm.on_ack(5, |_| {});
        assert_eq!(sm.messages_acked(), 2);
        sm.on_ack(4, |_| {});
        assert_eq!(sm.messages_acked(), 2, "an older h changes nothing");
        sm.on_ack(99, |_| {});
        assert_eq!(
            sm.messages_acked(),
            2,
            "an h beyond what we sent is ignored"
        );
        sm.on_ack(6, |_| {});
        assert_eq!(sm.messages_acked(), 3);
        sm.sent_stanza(); // 7
        sm.on_ack(7, |_| {});
        assert_eq!(sm.messages_acked(), 3);
    }

    #[test]
    fn too_many_other_runs_freeze_the_count_low() {
        let mut sm = StreamMgmt::requested();
        for _ in 0..=MAX_OTHER_RUNS {
            sm.sent_message(0);
            sm.sent_stanza();
        }
        sm.on_ack(sm.outbound, |_| {});
        // Frozen: acks are undercounted (here: not counted), never overcounted.
        assert_eq!(sm.messages_acked(), 0);
    }

    #[test]
    fn counters_wrap_like_xep_0198() {
        let mut sm = StreamMgmt::requested();
        sm.outbound = u32::MAX - 1;
        sm.sent_message(1); // u32::MAX
        sm.sent_message(2); // 0 after wrapping
        let mut acked = Vec::new();
        sm.on_ack(u32::MAX, |t| acked.push(t));
        assert_eq!(acked, vec![1]);
        sm.on_ack(0, |t| acked.push(t));
        assert_eq!(acked, vec![1, 2]);
    }

    #[test]
    fn inbound_counts_only_once_enabled_and_pending_is_bounded() {
        let mut sm = StreamMgmt::requested();
        sm.received_stanza();
        assert_eq!(sm.inbound, 0);
        sm.phase = SmPhase::Enabled;
        sm.received_stanza();
        assert_eq!(sm.inbound, 1);
        for t in 0..(MAX_PENDING as u64 + 3) {
            sm.sent_message(t);
        }
        assert_eq!((sm.pending(), sm.untimed), (MAX_PENDING, 3));
        let mut out = Vec::new();
        write_ack(7, &mut out);
        write_request(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<a xmlns='urn:xmpp:sm:3' h='7'/><r xmlns='urn:xmpp:sm:3'/>"
        );
    }
}
