//! Rooms a session left whose answer has not come back yet: until it does, presence from
//! such a room to that full JID was sent for the session that left, not for a newer session
//! bound to the same full JID since (same resource after a reconnect), and is dropped.
//!
//! Why: a room's stanzas to an occupant carry only its full JID. When a session ends, its
//! home sends each room it joined an unavailable presence; the room's answers to the old
//! session's join and leave (its own presence with status 110, then its departure) may still
//! be on their way (a cross-node link retransmitting, say) when the client logs in again with
//! the same resource and rejoins. Without this the new session hears "you are in the room",
//! then "you left the room", before the answer to its own join.
//!
//! Ordering makes counting enough: the home's stanzas to a room travel in order and the room
//! handles them in order, and so do the room's stanzas back; so everything the room sends to
//! the full JID before its answer to the last leave sent (answers are unavailable presence
//! from the occupant JID the leave went to, one per leave) belongs to sessions that left, and
//! everything after it to a newer join. Several leaves of one room may be on their way (two
//! short sessions in a row): the wait ends with the answer to the last. The answers are
//! delivered: a session that went unavailable and is still bound must hear it left (a newer
//! session treats it as news about a room it has not joined yet). Rooms answer every leave,
//! of an occupant or not (see `muc::occupants`), so the wait ends.
//!
//! What it does not do: filter messages (a groupchat copy for the old session reaches the
//! newer one, or the offline queue, as before), or decide what a room answers.
//!
//! Limits and invariants: a room's entry lives until the answers to all its leaves or
//! `wait_ms` (the mail timeout: past it a leave or its answer is taken as lost) after its
//! last leave, whichever comes first; expired entries leave on `expire` (the deadline queue
//! is in deadline order because `wait_ms` is fixed), so the table holds at most the leaves
//! of the last `wait_ms`, and at most [`MAX_LEAVES`] per room and full JID.

use std::collections::VecDeque;

use rookery_proto::Jid;

use crate::effects::StanzaType;
use crate::maps::{HashState, Map};

/// Leaves of one room and full JID awaited at most; past it the oldest is forgotten (its
/// answer, when it comes, ends the wait early: a stale presence may then get through).
pub(crate) const MAX_LEAVES: usize = 16;

/// The leaves of one room on their way: the occupant JIDs (`room@groups/nick`) they went
/// to, oldest first, and until when the answer to the last is waited for.
#[derive(Debug)]
struct Leave {
    occupants: VecDeque<Jid>,
    until_ms: u64,
}

impl Leave {
    fn room(&self) -> &str {
        self.occupants.front().map_or("", Jid::bare_str)
    }
}

/// Leaves whose answers are awaited, by the full JID that left.
#[derive(Debug)]
pub(crate) struct Departures {
    by_full: Map<Box<str>, Vec<Leave>>,
    /// (until_ms, full JID) in deadline order: one per `Leave`.
    deadlines: VecDeque<(u64, Box<str>)>,
    wait_ms: u64,
}

/// What to do with a presence from a room to a full JID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoomPresence {
    /// Deliver it: no leave of that room is awaited (or this is its answer).
    Deliver,
    /// Drop it: it was sent for a session that has left the room.
    Stale,
}

impl Departures {
    pub fn new(hash: HashState, wait_ms: u64) -> Departures {
        Departures {
            by_full: hash.map(),
            deadlines: VecDeque::new(),
            wait_ms,
        }
    }

    /// `full` sent a leave to `occupant`: wait for its answer, and for those of the leaves
    /// of that room still on their way.
    pub fn left(&mut self, full: &Jid, occupant: &Jid, now_ms: u64) {
        let until_ms = now_ms.saturating_add(self.wait_ms);
        let leaves = match self.by_full.get_mut(full.as_str()) {
            Some(leaves) => leaves,
            None => self.by_full.entry(full.as_str().into()).or_default(),
        };
        let room = occupant.bare_str();
        match leaves.iter_mut().find(|leave| leave.room() == room) {
            Some(leave) => {
                if leave.occupants.len() == MAX_LEAVES {
                    leave.occupants.pop_front();
                }
                leave.occupants.push_back(occupant.clone());
                leave.until_ms = until_ms;
            }
            None => leaves.push(Leave {
                occupants: VecDeque::from([occupant.clone()]),
                until_ms,
            }),
        }
        self.deadlines.push_back((until_ms, full.as_str().into()));
    }

    /// Judges a presence of type `ty` from `from` (a room or an occupant) to `to`; the answer
    /// to the last awaited leave of the room (unavailable, from the occupant JID the leave
    /// went to) ends the wait.
    pub fn judge(&mut self, to: &Jid, from: &Jid, ty: StanzaType, now_ms: u64) -> RoomPresence {
        if self.by_full.is_empty() || to.resource().is_none() {
            return RoomPresence::Deliver;
        }
        let Some(leaves) = self.by_full.get_mut(to.as_str()) else {
            return RoomPresence::Deliver;
        };
        let room = from.bare_str();
        let Some(index) = leaves.iter().position(|l| l.room() == room) else {
            return RoomPresence::Deliver;
        };
        let leave = &mut leaves[index];
        let verdict = if leave.until_ms <= now_ms {
            // Waited long enough: the leave or its answer was lost.
            leave.occupants.clear();
            RoomPresence::Deliver
        } else if ty == StanzaType::Unavailable {
            // An answer ends the wait for its leave (answers come in the order of the leaves).
            match leave.occupants.iter().position(|o| o == from) {
                Some(answered) => {
                    leave.occupants.remove(answered);
                    RoomPresence::Deliver
                }
                None => RoomPresence::Stale,
            }
        } else {
            RoomPresence::Stale
        };
        if leave.occupants.is_empty() {
            leaves.swap_remove(index);
            if leaves.is_empty() {
                self.by_full.remove(to.as_str());
            }
        }
        verdict
    }

    /// Drops the leaves waited for until `now_ms` or before.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some((until_ms, _)) = self.deadlines.front() {
            if *until_ms > now_ms {
                return;
            }
            let Some((_, full)) = self.deadlines.pop_front() else {
                return;
            };
            if let Some(leaves) = self.by_full.get_mut(&full) {
                leaves.retain(|leave| leave.until_ms > now_ms);
                if leaves.is_empty() {
                    self.by_full.remove(&full);
                }
            }
        }
    }

    /// Full JIDs with a leave awaited.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_full.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).expect("valid test JID")
    }

    const ME: &str = "u0@example.com/sim";
    const OCCUPANT: &str = "g1@groups.example.com/u0";

    #[test]
    fn presence_before_the_answer_is_stale_and_the_answer_ends_the_wait() {
        let mut departures = Departures::new(HashState::from_seed(0), 1_000);
        let (me, occupant) = (jid(ME), jid(OCCUPANT));
        departures.left(&me, &occupant, 10);
        let other = jid("g1@groups.example.com/u5");
        let available = StanzaType::Available;
        // The old join's answers: another occupant, then the session's own presence.
        assert_eq!(
            departures.judge(&me, &other, available, 20),
            RoomPresence::Stale
        );
        assert_eq!(
            departures.judge(&me, &occupant, available, 20),
            RoomPresence::Stale
        );
        // Another room, another resource, the bare JID: not concerned.
        let elsewhere = jid("g2@groups.example.com/u0");
        assert_eq!(
            departures.judge(&me, &elsewhere, available, 20),
            RoomPresence::Deliver
        );
        let laptop = jid("u0@example.com/laptop");
        assert_eq!(
            departures.judge(&laptop, &occupant, available, 20),
            RoomPresence::Deliver
        );
        let bare = jid("u0@example.com");
        assert_eq!(
            departures.judge(&bare, &occupant, available, 20),
            RoomPresence::Deliver
        );
        // Another occupant leaving is not the answer.
        let unavailable = StanzaType::Unavailable;
        assert_eq!(
            departures.judge(&me, &other, unavailable, 30),
            RoomPresence::Stale
        );
        // The answer is delivered, and what follows is the newer session's.
        assert_eq!(
            departures.judge(&me, &occupant, unavailable, 30),
            RoomPresence::Deliver
        );
        assert_eq!(departures.len(), 0);
        assert_eq!(
            departures.judge(&me, &occupant, available, 40),
            RoomPresence::Deliver
        );
    }

    #[test]
    fn the_wait_ends_with_the_answer_to_the_last_leave() {
        // Two short sessions in a row: the first one's answer is not the end of the wait,
        // the second one's join and leave answers still come.
        let mut departures = Departures::new(HashState::from_seed(0), 1_000);
        let (me, occupant) = (jid(ME), jid(OCCUPANT));
        departures.left(&me, &occupant, 10);
        departures.left(&me, &occupant, 20);
        let (available, unavailable) = (StanzaType::Available, StanzaType::Unavailable);
        assert_eq!(
            departures.judge(&me, &occupant, unavailable, 30),
            RoomPresence::Deliver
        );
        assert_eq!(
            departures.judge(&me, &occupant, available, 30),
            RoomPresence::Stale
        );
        assert_eq!(
            departures.judge(&me, &occupant, unavailable, 30),
            RoomPresence::Deliver
        );
        assert_eq!(departures.len(), 0);
        assert_eq!(
            departures.judge(&me, &occupant, available, 30),
            RoomPresence::Deliver
        );
        // At most MAX_LEAVES are counted.
        for n in 0..MAX_LEAVES + 5 {
            departures.left(&me, &occupant, 40 + n as u64);
        }
        for _ in 0..MAX_LEAVES {
            assert_eq!(
                departures.judge(&me, &occupant, available, 100),
                RoomPresence::Stale
            );
            assert_eq!(
                departures.judge(&me, &occupant, unavailable, 100),
                RoomPresence::Deliver
            );
        }
        assert_eq!(departures.len(), 0);
    }

    #[test]
    fn a_lost_answer_ends_the_wait_after_wait_ms() {
        let mut departures = Departures::new(HashState::from_seed(0), 1_000);
        let (me, occupant) = (jid(ME), jid(OCCUPANT));
        departures.left(&me, &occupant, 10);
        let available = StanzaType::Available;
        assert_eq!(
            departures.judge(&me, &occupant, available, 1_009),
            RoomPresence::Stale
        );
        assert_eq!(
            departures.judge(&me, &occupant, available, 1_010),
            RoomPresence::Deliver
        );
        // Expiry empties the table even when nothing comes for that JID any more.
        departures.left(&me, &occupant, 2_000);
        departures.expire(2_999);
        assert_eq!(departures.len(), 1);
        departures.expire(3_000);
        assert_eq!(departures.len(), 0);
    }
}
