//! The group checker's memory: every groupchat message a client sent to a room, what the
//! server said about it, which rooms each client session joined (and when), and every copy a
//! member received (live as an occupant, or from its offline queue).
//!
//! Rules checked on every copy: it comes from `room/nick` of its sender's room and nick; it
//! reaches only members of that room; never twice in one recipient session, and a duplicate
//! only in a later session than its first delivery (the re-delivery of a stored copy after a
//! non-resumed reconnect); per (room, sender, recipient, channel) the order rules of `ledger`
//! hold (strictly increasing within a recipient session, a first delivery never below an
//! earlier first delivery). The channels are *live* (written as the room sends it: occupant
//! copies, and member copies written at once to an available session) and *delayed* (flushed
//! from the offline queue with a XEP-0203 `<delay/>`): the router writes a login's offline
//! backlog in pieces as the client acknowledges, and occupant copies do not wait behind it,
//! so the two channels interleave in any order. A session that joined a room is never told
//! it left (the client never leaves).
//!
//! Rules checked at the end, for every message acknowledged to its sender (XEP-0198: the room
//! took it and every shard stored its copies for absent members; a sender without XEP-0198
//! is never told, so its messages are never owed) and not refused, for each member X of the
//! room:
//! - present: X's final session (open at the end) had joined the room before the message was
//!   sent: X got it in that session (exactly once, by the rules above);
//! - absent: no session of X was an occupant at any time between the send and the ack (no
//!   join sent before the ack by a session that had not ended by the send, with `LEAVE_SLACK_MS`
//!   for the room to hear of an ended session): X got it at least once, from its offline queue
//!   or written to a session that had not joined;
//! - otherwise (X joined or dropped around the message) nothing is owed: an occupant's copy
//!   is written to its session, not stored, and dies with a session that is not resumed;
//! - a copy the member's home shard refused to store (quota full, or unavailable after a
//!   failed write) is reported by the router to the sender with a `resource-constraint`
//!   error, which makes the message not owed (`errored`); with `strict_refusals` off (the
//!   old lenient mode, `--lenient-group-refusals`) a refusal on X's home shard between the
//!   send and the ack also excuses X.
//!
//! What it does not do: look at the routers (the `world` reports refusals and sessions).
//!
//! Invariants: keys are unique (sender index + the sender's own counter); maps are
//! `BTreeMap`, so reports are deterministic.

use std::collections::BTreeMap;

use crate::ledger::Violation;

/// How long after a session ended its room may still count it as an occupant (the
/// unavailable travels by mail to the room's shard; lanes deliver within a few ms).
pub const LEAVE_SLACK_MS: u64 = 500;

/// Names one groupchat message: its sender and the sender's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub sender: usize,
    pub n: u64,
}

impl GroupKey {
    pub fn stanza_id(self) -> String {
        format!("q{}-{}", self.sender, self.n)
    }

    pub fn parse(id: &str) -> Option<GroupKey> {
        let (sender, n) = id.strip_prefix('q')?.split_once('-')?;
        Some(GroupKey {
            sender: sender.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct SentGroup {
    room: usize,
    sent_ms: u64,
    acked_ms: Option<u64>,
    errored: bool,
}

/// One session's stay in a room, as its client saw it.
#[derive(Clone, Copy, Debug)]
struct Join {
    session: u64,
    room: usize,
    sent_ms: u64,
    joined_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct PairState {
    last: Option<(u64, u64)>,
    max_first: Option<u64>,
}

/// Groupchat sent and received in one run.
#[derive(Debug, Default)]
pub struct GroupBook {
    members: Vec<Vec<usize>>,
    sent: BTreeMap<GroupKey, SentGroup>,
    joins: BTreeMap<usize, Vec<Join>>,
    /// (client, session) -> when its client learnt the session was bound.
    session_start_ms: BTreeMap<(usize, u64), u64>,
    /// (recipient, key) -> sessions it was delivered in, first delivery first.
    seen: BTreeMap<(usize, GroupKey), Vec<u64>>,
    /// (room, sender, recipient, delayed) -> order state of that channel.
    pairs: BTreeMap<(usize, usize, usize, bool), PairState>,
    /// Store refusals: (shard, when).
    refusals: Vec<(u16, u64)>,
    strict_refusals: bool,
    pub deliveries: u64,
    pub duplicates: u64,
    /// Copies the end check proved owed and delivered.
    pub proven: u64,
    /// Copies excused by a store refusal.
    pub excused: u64,
}

impl GroupBook {
    pub fn new(members: Vec<Vec<usize>>, strict_refusals: bool) -> GroupBook {
        GroupBook {
            members,
            strict_refusals,
            ..GroupBook::default()
        }
    }

    pub fn is_member(&self, room: usize, client: usize) -> bool {
        self.members
            .get(room)
            .is_some_and(|m| m.binary_search(&client).is_ok())
    }

    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    pub fn acked_count(&self) -> usize {
        self.sent.values().filter(|s| s.acked_ms.is_some()).count()
    }

    pub fn on_sent(&mut self, key: GroupKey, room: usize, now_ms: u64) {
        let sent = SentGroup {
            room,
            sent_ms: now_ms,
            acked_ms: None,
            errored: false,
        };
        self.sent.insert(key, sent);
    }

    pub fn on_acked(&mut self, key: GroupKey, now_ms: u64) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.acked_ms.get_or_insert(now_ms);
        }
    }

    pub fn on_error(&mut self, key: GroupKey) {
        if let Some(sent) = self.sent.get_mut(&key) {
            sent.errored = true;
        }
    }

    pub fn on_session(&mut self, client: usize, session: u64, now_ms: u64) {
        self.session_start_ms.insert((client, session), now_ms);
    }

    pub fn on_refusal(&mut self, shard: u16, now_ms: u64) {
        self.refusals.push((shard, now_ms));
    }

    pub fn on_join_sent(&mut self, client: usize, session: u64, room: usize, now_ms: u64) {
        let join = Join {
            session,
            room,
            sent_ms: now_ms,
            joined_ms: None,
        };
        self.joins.entry(client).or_default().push(join);
    }

    /// `client`'s session got its own occupant presence from `room`.
    pub fn on_joined(&mut self, client: usize, session: u64, room: usize, now_ms: u64) {
        let joins = self.joins.entry(client).or_default();
        let pending = joins
            .iter_mut()
            .rev()
            .find(|j| j.session == session && j.room == room);
        if let Some(join) = pending {
            join.joined_ms.get_or_insert(now_ms);
        }
    }

    /// A copy of `key` from `room/nick` reached `recipient` in its session `session`.
    pub fn on_delivered(
        &mut self,
        recipient: usize,
        session: u64,
        key: GroupKey,
        room: usize,
        delayed: bool,
    ) -> Result<(), Violation> {
        self.deliveries += 1;
        let Some(sent) = self.sent.get(&key) else {
            let detail = format!("unknown groupchat {key:?} reached client {recipient}");
            return Err(Violation::new("group-order", detail));
        };
        if sent.room != room {
            let detail = format!("{key:?} for room {} came from room {room}", sent.room);
            return Err(Violation::new("group-order", detail));
        }
        if !self.is_member(room, recipient) {
            let detail = format!("{key:?} of room {room} reached non-member {recipient}");
            return Err(Violation::new("group-member", detail));
        }
        let pair_name = format!(
            "room {room}: {}->{recipient} (delayed: {delayed})",
            key.sender
        );
        let pair = self
            .pairs
            .entry((room, key.sender, recipient, delayed))
            .or_default();
        if let Some((last_session, last_n)) = pair.last {
            if last_session == session && last_n >= key.n {
                let detail = format!(
                    "{pair_name}: n={} after n={last_n} in session {session}",
                    key.n
                );
                return Err(Violation::new("group-order", detail));
            }
        }
        pair.last = Some((session, key.n));
        let seen = self.seen.entry((recipient, key)).or_default();
        match seen.first() {
            None => {
                // A first delivery: nothing newer came first before it in this channel.
                if let Some(max) = pair.max_first.filter(|&max| max >= key.n) {
                    let detail =
                        format!("{pair_name}: first delivery of n={} after n={max}", key.n);
                    return Err(Violation::new("group-order", detail));
                }
                pair.max_first = Some(key.n);
            }
            Some(_) if seen.contains(&session) => {
                let detail =
                    format!("{key:?} reached client {recipient} twice in session {session}");
                return Err(Violation::new("group-order", detail));
            }
            Some(_) => self.duplicates += 1,
        }
        seen.push(session);
        Ok(())
    }

    /// The end rules, with each client's final session and its home shard.
    pub fn check_end(&mut self, final_sessions: &[u64], homes: &[u16]) -> Result<(), Violation> {
        let owed: Vec<(GroupKey, SentGroup)> = self
            .sent
            .iter()
            .filter(|(_, s)| s.acked_ms.is_some() && !s.errored)
            .map(|(k, s)| (*k, *s))
            .collect();
        for (key, sent) in owed {
            let acked_ms = sent.acked_ms.unwrap_or(u64::MAX);
            let members = self.members.get(sent.room).cloned().unwrap_or_default();
            for member in members {
                let final_session = final_sessions.get(member).copied().unwrap_or(0);
                let home = homes.get(member).copied().unwrap_or(0);
                let excused = !self.strict_refusals
                    && self
                        .refusals
                        .iter()
                        .any(|&(s, at)| s == home && (sent.sent_ms..=acked_ms).contains(&at));
                let got = self.seen.get(&(member, key));
                let owed_in = if self.present(member, final_session, sent) {
                    Some(Some(final_session))
                } else if self.absent(member, sent.room, sent.sent_ms, acked_ms) {
                    Some(None)
                } else {
                    None
                };
                let Some(session) = owed_in else {
                    continue;
                };
                let delivered = match session {
                    Some(s) => got.is_some_and(|v| v.contains(&s)),
                    None => got.is_some_and(|v| !v.is_empty()),
                };
                if delivered {
                    self.proven += 1;
                } else if excused {
                    self.excused += 1;
                } else {
                    let how = match session {
                        Some(s) => format!("joined in its final session {s}"),
                        None => "absent from the room".to_owned(),
                    };
                    let detail = format!(
                        "{} (room {}, sent {}ms, acked {acked_ms}ms) never reached member \
                         {member}, {how}",
                        key.stanza_id(),
                        sent.room,
                        sent.sent_ms
                    );
                    return Err(Violation::new("group-delivered", detail));
                }
            }
        }
        Ok(())
    }

    /// X's final session joined the room before the message was sent.
    fn present(&self, member: usize, session: u64, sent: SentGroup) -> bool {
        let joins = self.joins.get(&member).map(Vec::as_slice).unwrap_or(&[]);
        joins.iter().any(|j| {
            j.session == session
                && j.room == sent.room
                && j.joined_ms.is_some_and(|at| at <= sent.sent_ms)
        })
    }

    /// No session of X could have been an occupant between `from_ms` and `to_ms`.
    fn absent(&self, member: usize, room: usize, from_ms: u64, to_ms: u64) -> bool {
        let joins = self.joins.get(&member).map(Vec::as_slice).unwrap_or(&[]);
        !joins.iter().filter(|j| j.room == room).any(|j| {
            let next = self.session_start_ms.get(&(member, j.session + 1));
            let gone_ms = next.map_or(u64::MAX, |&at| at.saturating_add(LEAVE_SLACK_MS));
            j.sent_ms <= to_ms && gone_ms >= from_ms
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sender: usize, n: u64) -> GroupKey {
        GroupKey { sender, n }
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(GroupKey::parse(&key(3, 9).stanza_id()), Some(key(3, 9)));
        assert_eq!(GroupKey::parse("m3-9"), None);
    }

    /// Room 0: members 0, 1, 2; client 3 is not a member.
    fn book() -> GroupBook {
        let mut book = GroupBook::new(vec![vec![0, 1, 2]], false);
        for n in 1..=3 {
            book.on_sent(key(0, n), 0, 1000 * n);
        }
        book
    }

    #[test]
    fn copies_keep_order_per_channel_and_reach_members_only() {
        let mut b = book();
        assert!(b.on_delivered(1, 1, key(0, 2), 0, false).is_ok());
        // An older message from the offline queue may interleave with live copies...
        assert!(b.on_delivered(1, 1, key(0, 1), 0, true).is_ok());
        // ...but not arrive twice in one session, nor go backwards in its channel.
        assert!(b.on_delivered(1, 1, key(0, 1), 0, false).is_err());
        let mut b = book();
        assert!(b.on_delivered(1, 1, key(0, 2), 0, false).is_ok());
        assert!(b.on_delivered(1, 1, key(0, 1), 0, false).is_err());
        // A later session may get a stored copy again.
        let mut b = book();
        assert!(b.on_delivered(1, 1, key(0, 1), 0, true).is_ok());
        assert!(b.on_delivered(1, 2, key(0, 1), 0, true).is_ok());
        assert_eq!(b.duplicates, 1);
        let err = b.on_delivered(3, 1, key(0, 3), 0, false).unwrap_err();
        assert_eq!(err.checker, "group-member");
        assert!(
            b.on_delivered(1, 1, key(0, 3), 1, false).is_err(),
            "wrong room"
        );
    }

    #[test]
    fn present_and_absent_members_are_owed_their_copy() {
        let mut b = book();
        b.on_acked(key(0, 1), 1500);
        // Member 0 sent it (at 1000) from session 1, joined at 50; member 1 never joined
        // after its session 1 ended (session 2 began at 60); member 2 joined around the
        // message, so nothing is owed to it.
        for (client, session, at) in [(0, 1, 40), (1, 1, 10), (2, 1, 1200)] {
            b.on_session(client, session, at);
            b.on_join_sent(client, session, 0, at);
            b.on_joined(client, session, 0, at + 10);
        }
        b.on_session(1, 2, 60);
        let homes = [0, 1, 2];
        let err = b.check_end(&[1, 2, 1], &homes).unwrap_err();
        assert_eq!(err.checker, "group-delivered");
        assert!(b.on_delivered(0, 1, key(0, 1), 0, false).is_ok());
        let err = b.check_end(&[1, 2, 1], &homes).unwrap_err();
        assert!(err.detail.contains("member 1, absent"), "{err:?}");
        // A refusal on member 1's home shard while the message was in flight excuses it.
        b.on_refusal(1, 1200);
        assert!(b.check_end(&[1, 2, 1], &homes).is_ok());
        assert_eq!((b.excused, b.proven), (1, 2));
    }
}
