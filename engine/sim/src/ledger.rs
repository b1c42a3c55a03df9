//! The checkers' memory: every chat a client sent, what the server said about it, and every
//! delivery, with the rules of checkers 1 (acknowledged => delivered) and 2 (per-pair order).
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

#[derive(Clone, Copy, Debug, Default)]
struct PairState {
    /// (session, n) of the last delivery.
    last: Option<(u64, u64)>,
    /// Highest n delivered for the first time.
    max_first: Option<u64>,
}

/// All sent chats and deliveries of one run.
#[derive(Debug, Default)]
pub struct Ledger {
    sent: BTreeMap<MsgKey, Sent>,
    /// (recipient, key) -> session of the first delivery.
    first: BTreeMap<(usize, MsgKey), u64>,
    pairs: BTreeMap<(usize, usize), PairState>,
    pub deliveries: u64,
    pub duplicates: u64,
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

    pub fn on_error(&mut self, key: MsgKey) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.errored = true;
        }
    }

    /// A chat reached `recipient` in its session number `session`.
    pub fn on_delivered(
        &mut self,
        recipient: usize,
        session: u64,
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
        match self.first.get(&(recipient, key)) {
            None => {
                if let Some(max) = pair.max_first.filter(|&max| max >= key.n) {
                    let detail = format!(
                        "pair {}->{recipient}: first delivery of n={} after n={max}",
                        key.sender, key.n
                    );
                    return Err(Violation::new("order", detail));
                }
                pair.max_first = Some(key.n);
                self.first.insert((recipient, key), session);
            }
            Some(&first) if first >= session => {
                let detail = format!("{key:?} delivered twice in session {session}");
                return Err(Violation::new("order", detail));
            }
            Some(_) => self.duplicates += 1,
        }
        Ok(())
    }

    /// Checker 1: every acknowledged, non-refused chat reached its recipient.
    pub fn check_acked_delivered(&self) -> Result<(), Violation> {
        for (key, sent) in &self.sent {
            if sent.acked && !sent.errored && !self.first.contains_key(&(sent.to, *key)) {
                let detail = format!(
                    "{} to client {} was acknowledged but never delivered",
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
        assert!(l.on_delivered(1, 1, key(1)).is_ok());
        assert!(l.on_delivered(1, 1, key(3)).is_ok());
        let err = l.on_delivered(1, 2, key(2)).unwrap_err();
        assert_eq!(err.checker, "order");
    }

    #[test]
    fn duplicates_only_in_a_later_session() {
        let mut l = ledger(&[1, 2]);
        assert!(l.on_delivered(1, 1, key(1)).is_ok());
        assert!(l.on_delivered(1, 1, key(2)).is_ok());
        assert!(l.on_delivered(1, 2, key(1)).is_ok());
        assert!(l.on_delivered(1, 2, key(2)).is_ok());
        assert_eq!(l.duplicates, 2);
        assert!(l.on_delivered(1, 2, key(2)).is_err());
    }

    #[test]
    fn acked_but_undelivered_is_caught() {
        let mut l = ledger(&[1, 2]);
        l.on_acked(key(1));
        l.on_acked(key(2));
        l.on_error(key(2));
        assert!(l.check_acked_delivered().is_err());
        assert!(l.on_delivered(1, 1, key(1)).is_ok());
        assert!(l.check_acked_delivered().is_ok());
    }
}
