//! The presence checker's memory: every presence a client sent (`<status>sim C SEQ</status>`,
//! its initial presence included), and every available / unavailable presence each client
//! received, per (recipient, recipient session, sender).
//!
//! Rules checked on every receipt (any session, any time):
//! - only a planned contact ever sends a client available or unavailable presence;
//! - a broadcast copy (addressed to the recipient's bare JID) carries a higher SEQ than
//!   everything the recipient's session got from that sender before: in the sender's order,
//!   never twice. A probe answer (addressed to the full JID, RFC 6121 4.3) repeats the
//!   sender's current presence, so it may equal the last SEQ seen, never go below it;
//! - after an unavailable, nothing from the sender's session seen last before it (or an
//!   earlier one) comes again: a session that ended stays ended.
//!
//! Rules checked at the end, only where delivery is guaranteed. A recipient D is *stable
//! since S* when its current conn stayed open (client and router side) from time S to the end
//! of the quiet period and S is when D learnt its session was available at the router (the
//! ack covering its initial presence, or `<resumed/>` for a session whose initial presence
//! was acknowledged before; without XEP-0198, the answer to the ping sent after it, which
//! stands for the ack of any presence, see `social`). Presence is not stored (queued for a
//! detached session only until its resumption window ends), so a drop, a resumption window
//! or a restart (which loses every session by design) excuses
//! missed presence; only stable recipients are owed anything:
//! - (a) every presence of a contact C acknowledged to C (XEP-0198: the router handled it)
//!   and sent at or after S (and after the rosters were final) reached D exactly once as a
//!   broadcast copy;
//! - (b) for every session k of C that D's stable conn saw available (a copy received at or
//!   after S): if C's client moved on to a later session (k ended without resumption: clean
//!   close, resumption timeout, or replaced by a fresh bind), exactly one unavailable follows
//!   k's last presence in D's log; if k is C's current session, none does.
//!
//! What it does not do: look at the network or the routers (the `world` decides stability),
//! or check subscription stanzas (see `social`, which checks rosters).
//!
//! Invariants: SEQs are unique per sender and increase with time, so they order a sender's
//! presences across its sessions; every map is a `BTreeMap` (deterministic reports).

use std::collections::{BTreeMap, BTreeSet};

use crate::ledger::Violation;

/// One received presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Available with the sender's SEQ; `probe` when addressed to the full JID.
    Available {
        seq: u64,
        probe: bool,
    },
    Unavailable,
}

#[derive(Clone, Copy, Debug)]
struct SentPresence {
    session: u64,
    sent_ms: u64,
    acked: bool,
}

#[derive(Clone, Copy, Debug)]
enum Seen {
    Available { seq: u64, session: u64, probe: bool },
    Unavailable,
}

/// What one recipient session got from one sender.
#[derive(Debug, Default)]
struct Log {
    events: Vec<Seen>,
    last_seq: Option<u64>,
    /// After an unavailable: sessions up to this one are over.
    ended_through: Option<u64>,
    broadcasts: BTreeSet<u64>,
}

/// Presence sent and received in one run.
#[derive(Debug, Default)]
pub struct PresenceBook {
    contacts: Vec<BTreeSet<usize>>,
    sent: BTreeMap<(usize, u64), SentPresence>,
    logs: BTreeMap<(usize, u64, usize), Log>,
    /// When the rosters became final (end of the setup phase).
    final_since_ms: Option<u64>,
    pub received: u64,
    pub unavailable: u64,
    /// Deliveries and unavailables the end check proved.
    pub proven: u64,
}

impl PresenceBook {
    pub fn new(contacts: Vec<BTreeSet<usize>>) -> PresenceBook {
        PresenceBook {
            contacts,
            ..PresenceBook::default()
        }
    }

    /// The rosters are final from now on: later presences are owed to stable contacts.
    pub fn rosters_final(&mut self, now_ms: u64) {
        self.final_since_ms = Some(now_ms);
    }

    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    pub fn on_sent(&mut self, sender: usize, seq: u64, session: u64, now_ms: u64) {
        let sent = SentPresence {
            session,
            sent_ms: now_ms,
            acked: false,
        };
        self.sent.insert((sender, seq), sent);
    }

    pub fn on_acked(&mut self, sender: usize, seq: u64) {
        if let Some(sent) = self.sent.get_mut(&(sender, seq)) {
            sent.acked = true;
        }
    }

    /// `recipient`, in its session `session`, got `what` from `sender`.
    pub fn on_received(
        &mut self,
        recipient: usize,
        session: u64,
        sender: usize,
        what: Received,
    ) -> Result<(), Violation> {
        self.received += 1;
        if !self
            .contacts
            .get(recipient)
            .is_some_and(|c| c.contains(&sender))
        {
            let detail = format!("client {recipient} got {what:?} from non-contact {sender}");
            return Err(Violation::new("presence-contact", detail));
        }
        let log = self.logs.entry((recipient, session, sender)).or_default();
        let pair = format!("{sender}->{recipient} (session {session})");
        let Received::Available { seq, probe } = what else {
            self.unavailable += 1;
            log.ended_through = log
                .last_seq
                .and_then(|seq| session_of(&self.sent, sender, seq));
            log.events.push(Seen::Unavailable);
            return Ok(());
        };
        let Some(sent_session) = session_of(&self.sent, sender, seq) else {
            let detail = format!("{pair}: presence SEQ {seq} was never sent");
            return Err(Violation::new("presence-order", detail));
        };
        if let Some(last) = log.last_seq {
            if seq < last || (seq == last && !probe) {
                let detail = format!("{pair}: SEQ {seq} (probe answer: {probe}) after {last}");
                return Err(Violation::new("presence-order", detail));
            }
        }
        if log.ended_through.is_some_and(|ended| sent_session <= ended) {
            let detail =
                format!("{pair}: SEQ {seq} of session {sent_session} after its unavailable");
            return Err(Violation::new("presence-order", detail));
        }
        log.last_seq = Some(seq);
        if !probe {
            log.broadcasts.insert(seq);
        }
        log.events.push(Seen::Available {
            seq,
            session: sent_session,
            probe,
        });
        Ok(())
    }

    /// Rules (a) and (b) for `recipient`, stable since `since_ms` in its session `session`;
    /// `sessions[c]` is client c's current session.
    pub fn check_stable(
        &mut self,
        recipient: usize,
        session: u64,
        since_ms: u64,
        sessions: &[u64],
    ) -> Result<(), Violation> {
        let Some(final_ms) = self.final_since_ms else {
            return Ok(());
        };
        let from_ms = since_ms.max(final_ms);
        let contacts: Vec<usize> = self.contacts[recipient].iter().copied().collect();
        let empty = Log::default();
        for sender in contacts {
            let log = self
                .logs
                .get(&(recipient, session, sender))
                .unwrap_or(&empty);
            let owed = self
                .sent
                .range((sender, 0)..=(sender, u64::MAX))
                .filter(|(_, s)| s.acked && s.sent_ms >= from_ms);
            for (&(_, seq), _) in owed {
                if !log.broadcasts.contains(&seq) {
                    let detail = format!(
                        "presence SEQ {seq} of client {sender} (acknowledged) never reached \
                         contact {recipient}, available since {since_ms}ms"
                    );
                    return Err(Violation::new("presence-delivered", detail));
                }
                self.proven += 1;
            }
            let current = sessions.get(sender).copied().unwrap_or(0);
            let fresh = |seq: u64| {
                self.sent
                    .get(&(sender, seq))
                    .is_some_and(|s| s.sent_ms >= from_ms)
            };
            self.proven += check_unavailable(log, fresh, current).map_err(|detail| {
                Violation::new(
                    "presence-unavailable",
                    format!("client {sender} seen by client {recipient}: {detail}"),
                )
            })?;
        }
        Ok(())
    }
}

fn session_of(sent: &BTreeMap<(usize, u64), SentPresence>, sender: usize, seq: u64) -> Option<u64> {
    sent.get(&(sender, seq)).map(|s| s.session)
}

/// Rule (b) on one log; returns how many sessions it proved. `fresh(seq)`: the sender sent
/// `seq` once the recipient was stable, so its broadcast was made while the recipient was
/// attached, and so was everything after it (a copy received after `S` may be older: a
/// resumption resends what the dead conn lost, and a probe answer may have waited).
fn check_unavailable(log: &Log, fresh: impl Fn(u64) -> bool, current: u64) -> Result<u64, String> {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (at, event) in log.events.iter().enumerate() {
        if let Seen::Available {
            seq,
            session,
            probe,
        } = *event
        {
            if (!probe && fresh(seq)) || seen.contains_key(&session) {
                seen.insert(session, at);
            }
        }
    }
    let mut proven = 0;
    for (&session, &last) in &seen {
        let after = &log.events[last + 1..];
        let unavailable = after
            .iter()
            .take_while(|e| matches!(e, Seen::Unavailable))
            .count();
        let want = usize::from(session < current);
        if unavailable != want {
            return Err(format!(
                "session {session} (current {current}) followed by {unavailable} unavailable"
            ));
        }
        proven += 1;
    }
    Ok(proven)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> PresenceBook {
        let contacts = vec![BTreeSet::from([1]), BTreeSet::from([0]), BTreeSet::new()];
        let mut book = PresenceBook::new(contacts);
        book.rosters_final(0);
        book
    }

    fn avail(seq: u64) -> Received {
        Received::Available { seq, probe: false }
    }

    #[test]
    fn order_duplicates_and_strangers_are_caught() {
        let mut b = book();
        for seq in 1..=3 {
            b.on_sent(0, seq, 1, 10);
        }
        assert!(b.on_received(1, 1, 0, avail(1)).is_ok());
        let probe = Received::Available {
            seq: 1,
            probe: true,
        };
        assert!(b.on_received(1, 1, 0, probe).is_ok(), "a probe may repeat");
        assert!(
            b.on_received(1, 1, 0, avail(1)).is_err(),
            "a broadcast may not"
        );
        assert!(b.on_received(1, 1, 0, avail(3)).is_ok());
        assert!(b.on_received(1, 1, 0, avail(2)).is_err());
        assert!(
            b.on_received(1, 2, 0, avail(2)).is_ok(),
            "a new session starts over"
        );
        let err = b.on_received(2, 1, 0, avail(3)).unwrap_err();
        assert_eq!(err.checker, "presence-contact");
    }

    #[test]
    fn a_session_that_ended_stays_ended_and_owes_one_unavailable() {
        let mut b = book();
        b.on_sent(0, 1, 1, 10);
        b.on_sent(0, 2, 2, 30);
        b.on_sent(0, 3, 2, 40);
        assert!(b.on_received(1, 1, 0, avail(1)).is_ok());
        assert!(b.on_received(1, 1, 0, Received::Unavailable).is_ok());
        assert!(b.on_received(1, 1, 0, avail(2)).is_ok());
        // Client 0 is in session 2: session 1 owes one unavailable, session 2 none.
        assert!(b.check_stable(1, 1, 0, &[2, 1, 0]).is_ok());
        // Once client 0 moved on to session 3, session 2 owes one too.
        assert!(b.check_stable(1, 1, 0, &[3, 1, 0]).is_err());
        assert!(b.on_received(1, 1, 0, Received::Unavailable).is_ok());
        let err = b.on_received(1, 1, 0, avail(3)).unwrap_err();
        assert_eq!(err.checker, "presence-order");
    }

    #[test]
    fn acknowledged_presence_is_owed_to_stable_contacts_only() {
        let mut b = book();
        b.on_sent(0, 1, 1, 10);
        b.on_sent(0, 2, 1, 100);
        b.on_acked(0, 1);
        b.on_acked(0, 2);
        // Stable since 50: SEQ 1 was sent before, not owed; SEQ 2 is.
        let err = b.check_stable(1, 1, 50, &[1, 1, 0]).unwrap_err();
        assert_eq!(err.checker, "presence-delivered");
        assert!(b.on_received(1, 1, 0, avail(1)).is_ok());
        assert!(b.on_received(1, 1, 0, avail(2)).is_ok());
        assert!(b.check_stable(1, 1, 50, &[1, 1, 0]).is_ok());
        // Session 1 of client 0 ended; its SEQs came after S but were sent before (resent by
        // a resumption): its unavailable is not owed. A fresh SEQ of it would owe one.
        assert!(b.check_stable(1, 1, 200, &[2, 1, 0]).is_ok());
        b.on_sent(0, 3, 1, 300);
        assert!(b.on_received(1, 1, 0, avail(3)).is_ok());
        let err = b.check_stable(1, 1, 200, &[2, 1, 0]).unwrap_err();
        assert_eq!(err.checker, "presence-unavailable");
    }
}
