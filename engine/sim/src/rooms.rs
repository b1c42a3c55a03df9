//! The client's rooms (XEP-0045): joins by presence to `g<R>@groups.<domain>/u<C>`,
//! groupchat messages with unique ids (`q<C>-<N>`), and what rooms send back (occupant
//! presence, the subject, groupchat copies live or from the offline queue), reported to the
//! `GroupBook`.
//!
//! What it does: every planned room is joined during setup (which makes the client a member
//! for good); after setup, a fresh session rejoins every planned room except the ones the
//! plan marks absent for this client, so those members only ever get the room's messages
//! from their offline queue. The client never leaves a room on its own.
//!
//! What it does not do: decide when to send (the `world` does), or judge deliveries (see
//! `groups`).
//!
//! Invariants: `joined` lists the rooms whose own occupant presence arrived in the current
//! session; a session is never told it left a room it joined (there is no leave to answer).

use std::collections::BTreeSet;

use rookery_proto::element::Element;
use rookery_testkit::TEST_DOMAIN;

use crate::client::{user_name, Client, Phase, Tag};
use crate::groups::GroupKey;
use crate::ledger::{Ledger, Violation};
use crate::plan::{parse_room, room_name};

const MUC_NS: &str = "http://jabber.org/protocol/muc";

/// One client's rooms.
#[derive(Debug, Default)]
pub struct Rooms {
    /// Rooms this client is a planned member of.
    pub planned: Vec<usize>,
    /// Planned rooms it does not rejoin after setup.
    pub absent: BTreeSet<usize>,
    joined: BTreeSet<usize>,
    ever_joined: BTreeSet<usize>,
    next_n: u64,
}

impl Rooms {
    /// A new session is bound: it has joined nothing yet (a departure notice for the old
    /// session, which had the same full JID, may still arrive before its joins).
    pub fn forget_joined(&mut self) {
        self.joined.clear();
    }

    /// Rooms joined in the current session.
    pub fn joined(&self) -> Vec<usize> {
        self.joined.iter().copied().collect()
    }
}

/// `g<R>@groups.<domain>`.
pub fn room_jid(room: usize) -> String {
    format!("{}@groups.{TEST_DOMAIN}", room_name(room))
}

/// (room, nick) of `g<R>@groups.<domain>/<nick>`.
pub(crate) fn parse_occupant(jid: &str) -> Option<(usize, Option<&str>)> {
    let (bare, nick) = match jid.split_once('/') {
        Some((bare, nick)) => (bare, Some(nick)),
        None => (jid, None),
    };
    let (local, domain) = bare.split_once('@')?;
    let service = domain.strip_prefix("groups.")?;
    (service == TEST_DOMAIN).then_some(())?;
    Some((parse_room(local)?, nick))
}

impl Client {
    /// Every planned room joined once (the setup's goal).
    pub(crate) fn rooms_done(&self) -> bool {
        let rooms = &self.rooms;
        rooms.planned.iter().all(|r| rooms.ever_joined.contains(r))
    }

    /// A fresh session: join the rooms it stays in (all of them during setup).
    pub(crate) fn join_rooms(&mut self, ledger: &mut Ledger) {
        ledger
            .groups
            .on_session(self.index, self.session, self.now_ms);
        let setup = !self.social.locked;
        let rooms: Vec<usize> = self.rooms.planned.clone();
        for room in rooms {
            if !setup && self.rooms.absent.contains(&room) {
                continue;
            }
            let join = format!(
                "<presence to='{}/{}'><x xmlns='{MUC_NS}'/></presence>",
                room_jid(room),
                self.user
            );
            ledger
                .groups
                .on_join_sent(self.index, self.session, room, self.now_ms);
            self.send_counted(join.into_bytes(), Tag::Other);
        }
    }

    /// Sends a groupchat message to `room` (joined in this session).
    pub fn send_groupchat(&mut self, room: usize, ledger: &mut Ledger) {
        self.rooms.next_n += 1;
        let key = GroupKey {
            sender: self.index,
            n: self.rooms.next_n,
        };
        let stanza = format!(
            "<message to='{}' type='groupchat' id='{}'><body>{}</body></message>",
            room_jid(room),
            key.stanza_id(),
            key.n
        );
        ledger.groups.on_sent(key, room, self.now_ms);
        self.send_counted(stanza.into_bytes(), Tag::Group(key));
    }

    /// A presence from a room or an occupant.
    pub(crate) fn on_room_presence(
        &mut self,
        el: &Element<'_>,
        room: usize,
        nick: Option<&str>,
        ledger: &mut Ledger,
    ) -> Result<(), Violation> {
        let ty = el.attr("type");
        if ty == Some("error") || nick.is_none() {
            return Ok(()); // a refused join: the session simply is not in the room
        }
        let nick = nick.unwrap_or_default();
        let member = nick
            .strip_prefix('u')
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|c| ledger.groups.is_member(room, c));
        if !member {
            let detail = format!("client {} saw non-member {nick} in room {room}", self.index);
            return Err(Violation::new("group-member", detail));
        }
        if nick != self.user {
            return Ok(());
        }
        match ty {
            None => {
                self.rooms.joined.insert(room);
                self.rooms.ever_joined.insert(room);
                ledger
                    .groups
                    .on_joined(self.index, self.session, room, self.now_ms);
                Ok(())
            }
            Some("unavailable") if self.rooms.joined.contains(&room) => {
                let detail = format!(
                    "client {} (session {}) was removed from room {room} it never left",
                    self.index, self.session
                );
                Err(Violation::new("group-left", detail))
            }
            _ => Ok(()),
        }
    }

    /// A groupchat message: a copy of a member's message, or the subject (no id of ours).
    pub(crate) fn on_groupchat(
        &mut self,
        el: &Element<'_>,
        ledger: &mut Ledger,
    ) -> Result<(), Violation> {
        let Some(key) = el.attr("id").and_then(GroupKey::parse) else {
            return Ok(());
        };
        let from = el.attr("from").unwrap_or("");
        let Some((room, Some(nick))) = parse_occupant(from) else {
            let detail = format!("{key:?} came from {from:?}");
            return Err(Violation::new("group-order", detail));
        };
        if nick != user_name(key.sender) {
            let detail = format!("{key:?} came from nick {nick}");
            return Err(Violation::new("group-order", detail));
        }
        // Bound is enough: the session of the same full JID before may still be an occupant.
        if !matches!(
            self.phase,
            Phase::AwaitEnabled | Phase::Online | Phase::Closing
        ) {
            let detail = format!("client {} got {key:?} while {:?}", self.index, self.phase);
            return Err(Violation::new("closed-session", detail));
        }
        let delayed = el.children().any(|c| c.local_name() == "delay");
        ledger
            .groups
            .on_delivered(self.index, self.session, key, room, delayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupant_jids_parse() {
        assert_eq!(
            parse_occupant("g3@groups.example.com/u1"),
            Some((3, Some("u1")))
        );
        assert_eq!(parse_occupant("g3@groups.example.com"), Some((3, None)));
        assert_eq!(parse_occupant("g3@example.com/u1"), None);
        assert_eq!(parse_occupant("u3@groups.other.org"), None);
    }
}
