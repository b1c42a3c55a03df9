//! The checkers' memory: every chat a client sent, what the server said about it, and every
//! delivery, with the rules of checkers 1 (durable => delivered) and 2 (per-pair order,
//! duplicates).
//!
//! Rules for checker 2, per (sender, recipient) pair, where a recipient *session* starts with
//! each successful resource bind and continues through XEP-0198 resumptions:
//! - within one session, deliveries carry strictly increasing send numbers (no duplicate, no
//!   reordering; a resumed stream must not replay what the client had counted);
//! - a message delivered for the first time must have a higher send number than every message
//!   of the pair delivered before it, in any session (nothing overtakes and arrives later);
//! - a duplicate (a message delivered before) is allowed only in a later session than its
//!   first delivery: that is the re-delivery after a non-resumed reconnect, carrying the
//!   original id. Gaps are allowed: unacknowledged or refused messages may be lost.
//!
//! Sessions without XEP-0198: the router deletes a stored message written to one only when it
//! hears that the conn drained (every byte written so far handed to the kernel). The world
//! tells the ledger when that happened (`on_confirmed`, for the chats the session received on
//! that conn until then), so a duplicate is sorted by what the router knew of the delivery
//! before it, and counted:
//! - `dup_causes.after_sm`: the earlier delivery was to a XEP-0198 session (not acknowledged, or its
//!   `<a h>` lost with the conn or its Ack record with a restart): as before;
//! - `dup_causes.undrained`: the earlier delivery was to a session without XEP-0198 whose conn died
//!   before it drained (the router could not know the message was read);
//! - `dup_causes.after_restart`: the router was told the earlier delivery drained, and the server
//!   restarted since (the Ack record may not have been committed).
//!
//! A duplicate of a delivery the router was told drained, with no restart since, is a
//! `duplicate` violation: the router deleted it (or must have) and still sent it again.
//! Checker 1 (no loss) holds whatever the recipient's sessions: every chat that is durable
//! reaches its recipient at least once. Durable: acknowledged to its sender (XEP-0198: the
//! router acks only after the commit), or seen in a commit batch that was written (the world
//! reads the batches, see `commit`), which is how a chat from a session without XEP-0198
//! becomes owed.
//!
//! What it does not do: know anything about the network or the routers (see `world`).
//!
//! Invariants: keys are unique (`MsgKey` = sender index + the sender's own counter); all maps
//! are `BTreeMap`, so reports are deterministic.

use std::collections::BTreeMap;

use crate::groups::GroupBook;
use crate::presence::PresenceBook;

/// Names one chat: its sender and the sender's counter (which orders every pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MsgKey {
    pub sender: usize,
    pub n: u64,
}

impl MsgKey {
    /// The stanza id carried on the wire.
    pub fn stanza_id(self) -> String {
        format!("m{}-{}", self.sender, self.n)
    }

    /// Parses a stanza id written by `stanza_id`.
    pub fn parse(id: &str) -> Option<MsgKey> {
        let (sender, n) = id.strip_prefix('m')?.split_once('-')?;
        Some(MsgKey {
            sender: sender.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

/// What is known about one sent chat.
#[derive(Clone, Debug, Default)]
pub struct Sent {
    pub to: usize,
    /// Covered by an `<a h>` or `<resumed h>` from the server.
    pub acked: bool,
    /// Stored by the recipient's home shard in a commit batch that was written.
    pub committed: bool,
    /// Bounced with a stanza error (quota, store unavailable): no delivery owed.
    pub errored: bool,
}

/// A broken rule, named by checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(checker: &'static str, detail: String) -> Violation {
        Violation { checker, detail }
    }
}

/// What the ledger knows of the latest delivery of one chat to its recipient.
#[derive(Clone, Copy, Debug)]
struct Delivered {
    /// Session of the first delivery.
    first_session: u64,
    /// Session of the latest delivery, and whether it used XEP-0198.
    last_session: u64,
    last_sm: bool,
    /// When the router was told the latest delivery drained (sessions without XEP-0198).
    drained_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct PairState {
    /// (session, n) of the last delivery.
    last: Option<(u64, u64)>,
    /// Highest n delivered for the first time.
    max_first: Option<u64>,
}

/// All sent chats and deliveries of one run.
/// Duplicate chat deliveries sorted by what allowed them (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DupCauses {
    pub after_sm: u64,
    pub undrained: u64,
    pub after_restart: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    sent: BTreeMap<MsgKey, Sent>,
    /// (recipient, key) -> its deliveries so far.
    first: BTreeMap<(usize, MsgKey), Delivered>,
    pairs: BTreeMap<(usize, usize), PairState>,
    pub deliveries: u64,
    /// Duplicates in all, and sorted by what allowed them (see the module docs).
    pub duplicates: u64,
    pub dup_causes: DupCauses,
    /// Deliveries to sessions without XEP-0198 that the router was told drained.
    pub drained: u64,
    /// Virtual time of the last server restart.
    last_restart_ms: Option<u64>,
    /// Presence sent and received (see `presence`).
    pub presence: PresenceBook,
    /// Groupchat sent and received (see `groups`).
    pub groups: GroupBook,
}

impl Ledger {
    pub fn with_books(presence: PresenceBook, groups: GroupBook) -> Ledger {
        Ledger {
            presence,
            groups,
            ..Ledger::default()
        }
    }

    pub fn on_sent(&mut self, key: MsgKey, to: usize) {
        self.sent.insert(
            key,
            Sent {
                to,
                ..Sent::default()
            },
        );
    }

    pub fn on_acked(&mut self, key: MsgKey) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.acked = true;
        }
    }

    /// A written commit batch stored this chat: it is durable, so owed to its recipient.
    pub fn on_committed(&mut self, key: MsgKey) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.committed = true;
        }
    }

    pub fn on_error(&mut self, key: MsgKey) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.errored = true;
        }
    }

    /// The server restarted: Ack records not yet committed are lost.
    pub fn on_restart(&mut self, now_ms: u64) {
        self.last_restart_ms = Some(now_ms);
    }

    /// The router was told that the conn of `recipient`'s session without XEP-0198 drained
    /// after these chats reached it: it deletes them now.
    pub fn on_confirmed(&mut self, recipient: usize, keys: &[MsgKey], now_ms: u64) {
        for key in keys {
            if let Some(d) = self.first.get_mut(&(recipient, *key)) {
                d.drained_ms = Some(now_ms);
                self.drained += 1;
            }
        }
    }

    /// A chat reached `recipient` in its session number `session` (`sm`: one with XEP-0198).
    pub fn on_delivered(
        &mut self,
        recipient: usize,
        session: u64,
        sm: bool,
        key: MsgKey,
    ) -> Result<(), Violation> {
        self.deliveries += 1;
        let Some(sent) = self.sent.get(&key) else {
            return Err(Violation::new("order", format!("unknown message {key:?}")));
        };
        if sent.to != recipient {
            let detail = format!("{key:?} for client {} reached client {recipient}", sent.to);
            return Err(Violation::new("order", detail));
        }
        let pair = self.pairs.entry((key.sender, recipient)).or_default();
        if let Some((last_session, last_n)) = pair.last {
            if last_session == session && last_n >= key.n {
                let detail = format!(
                    "pair {}->{recipient}: n={} after n={last_n} in session {session}",
                    key.sender, key.n
                );
                return Err(Violation::new("order", detail));
            }
        }
        pair.last = Some((session, key.n));
        let Some(&before) = self.first.get(&(recipient, key)) else {
            if let Some(max) = pair.max_first.filter(|&max| max >= key.n) {
                let detail = format!(
                    "pair {}->{recipient}: first delivery of n={} after n={max}",
                    key.sender, key.n
                );
                return Err(Violation::new("order", detail));
            }
            pair.max_first = Some(key.n);
            let delivered = Delivered {
                first_session: session,
                last_session: session,
                last_sm: sm,
                drained_ms: None,
            };
            self.first.insert((recipient, key), delivered);
            return Ok(());
        };
        if before.first_session >= session {
            let detail = format!("{key:?} delivered twice in session {session}");
            return Err(Violation::new("order", detail));
        }
        self.on_duplicate(recipient, session, key, before)?;
        let delivered = Delivered {
            last_session: session,
            last_sm: sm,
            drained_ms: None,
            ..before
        };
        self.first.insert((recipient, key), delivered);
        Ok(())
    }

    /// Sorts a duplicate by what the router knew of the delivery before it.
    fn on_duplicate(
        &mut self,
        recipient: usize,
        session: u64,
        key: MsgKey,
        before: Delivered,
    ) -> Result<(), Violation> {
        self.duplicates += 1;
        match before.drained_ms {
            _ if before.last_sm => self.dup_causes.after_sm += 1,
            None => self.dup_causes.undrained += 1,
            Some(drained_ms) if self.last_restart_ms.is_some_and(|r| r >= drained_ms) => {
                self.dup_causes.after_restart += 1;
            }
            Some(drained_ms) => {
                let detail = format!(
                    "{} reached client {recipient} again in session {session}: the router was \
                     told at {drained_ms}ms that session {} (without XEP-0198) had it, and \
                     did not restart since",
                    key.stanza_id(),
                    before.last_session
                );
                return Err(Violation::new("duplicate", detail));
            }
        }
        Ok(())
    }

    /// Checker 1: every acknowledged or committed, non-refused chat reached its recipient.
    pub fn check_acked_delivered(&self) -> Result<(), Violation> {
        for (key, sent) in &self.sent {
            let owed = (sent.acked || sent.committed) && !sent.errored;
            if owed && !self.first.contains_key(&(sent.to, *key)) {
                let how = match (sent.acked, sent.committed) {
                    (true, true) => "acknowledged and committed",
                    (true, false) => "acknowledged",
                    _ => "committed (its sender without XEP-0198 was never told)",
                };
                let detail = format!(
                    "{} to client {} was {how} but never delivered",
                    key.stanza_id(),
                    sent.to
                );
                return Err(Violation::new("acked-delivered", detail));
            }
        }
        Ok(())
    }

    pub fn sent(&self, key: MsgKey) -> Option<&Sent> {
        self.sent.get(&key)
    }

    /// Whether `key` reached its recipient at least once.
    pub fn is_delivered(&self, key: MsgKey) -> bool {
        self.sent
            .get(&key)
            .is_some_and(|s| self.first.contains_key(&(s.to, key)))
    }

    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    pub fn errored_count(&self) -> usize {
        self.sent.values().filter(|s| s.errored).count()
    }

    pub fn acked_count(&self) -> usize {
        self.sent.values().filter(|s| s.acked).count()
    }

    /// Chats owed to their recipient (acknowledged or committed, not refused).
    pub fn owed_count(&self) -> usize {
        self.sent
            .values()
            .filter(|s| (s.acked || s.committed) && !s.errored)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> MsgKey {
        MsgKey { sender: 0, n }
    }

    fn ledger(ns: &[u64]) -> Ledger {
        let mut ledger = Ledger::default();
        for &n in ns {
            ledger.on_sent(key(n), 1);
        }
        ledger
    }

    #[test]
    fn ids_round_trip() {
        let k = MsgKey { sender: 12, n: 345 };
        assert_eq!(MsgKey::parse(&k.stanza_id()), Some(k));
        assert_eq!(MsgKey::parse("x1-2"), None);
    }

    #[test]
    fn gaps_are_allowed_reordering_is_not() {
        let mut l = ledger(&[1, 2, 3]);
        assert!(l.on_delivered(1, 1, true, key(1)).is_ok());
        assert!(l.on_delivered(1, 1, true, key(3)).is_ok());
        let err = l.on_delivered(1, 2, true, key(2)).unwrap_err();
        assert_eq!(err.checker, "order");
    }

    #[test]
    fn duplicates_only_in_a_later_session() {
        let mut l = ledger(&[1, 2]);
        assert!(l.on_delivered(1, 1, true, key(1)).is_ok());
        assert!(l.on_delivered(1, 1, true, key(2)).is_ok());
        assert!(l.on_delivered(1, 2, true, key(1)).is_ok());
        assert!(l.on_delivered(1, 2, true, key(2)).is_ok());
        assert_eq!(l.duplicates, 2);
        assert!(l.on_delivered(1, 2, true, key(2)).is_err());
    }

    #[test]
    fn duplicates_without_sm_need_an_undrained_conn_or_a_restart() {
        let mut l = ledger(&[1, 2, 3]);
        // Session 1 without XEP-0198 got 1 and 2; its conn drained after 1 only.
        l.on_delivered(1, 1, false, key(1)).unwrap();
        l.on_confirmed(1, &[key(1)], 100);
        l.on_delivered(1, 1, false, key(2)).unwrap();
        // 2 again in session 2: written, never drained: allowed.
        l.on_delivered(1, 2, true, key(2)).unwrap();
        assert_eq!((l.duplicates, l.dup_causes.undrained), (1, 1));
        // 1 again: the router was told it drained and nothing restarted.
        let err = l.on_delivered(1, 3, true, key(1)).unwrap_err();
        assert_eq!(err.checker, "duplicate");
        // After a restart that may have lost the Ack record, it is allowed.
        let mut l = ledger(&[1]);
        l.on_delivered(1, 1, false, key(1)).unwrap();
        l.on_confirmed(1, &[key(1)], 100);
        l.on_restart(150);
        l.on_delivered(1, 2, false, key(1)).unwrap();
        assert_eq!(l.dup_causes.after_restart, 1);
        // A restart before the drain excuses nothing.
        let mut l = ledger(&[1]);
        l.on_restart(50);
        l.on_delivered(1, 1, false, key(1)).unwrap();
        l.on_confirmed(1, &[key(1)], 100);
        assert!(l.on_delivered(1, 2, false, key(1)).is_err());
    }

    #[test]
    fn acked_but_undelivered_is_caught() {
        let mut l = ledger(&[1, 2]);
        l.on_acked(key(1));
        l.on_acked(key(2));
        l.on_error(key(2));
        assert!(l.check_acked_delivered().is_err());
        assert!(l.on_delivered(1, 1, true, key(1)).is_ok());
        assert!(l.check_acked_delivered().is_ok());
    }
}
