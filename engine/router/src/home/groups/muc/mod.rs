//! Groups: XEP-0045 multi-user chat rooms homed on this shard (`room@groups.<domain>`), with
//! Rookery's group model (WhatsApp's): joining an open room makes the joiner a persistent
//! member, members stay members when they go offline, and a groupchat message reaches every
//! member, in the room or not (the router stores it for the absent ones).
//!
//! What it does: decides, per stanza a user sent to the service, a room or an occupant, what
//! goes out (`RoomAction`s the router carries out), and keeps rooms, affiliations and the
//! subject in the shard's store (`persist`). Modules: `room` (state and fan-out plans),
//! `occupants` (join, presence update, leave), `messages` (groupchat, subject, private
//! messages), `admin` (`muc#admin` affiliation lists and changes), `owner` (`muc#owner`
//! configuration form), `disco` (iq dispatch and service discovery), `stanzas` (bytes),
//! `persist` (encodings, load).
//!
//! Choices where XEP-0045 allows several: rooms are non-anonymous (status 100, real JIDs in
//! every item), persistent, unmoderated, without passwords, history or nick registration;
//! every room is "instant" (usable at once, status 201, configurable later); several
//! sessions of one user may share its nick (7.2 multi-session: the second session gets the
//! room's presences and the subject, the others see nothing new); one user holds one nick
//! (another nick from another session is a `conflict`); a presence to another nick from an
//! occupant's session is a nick change of the occupant, all its sessions (XEP-0045 7.6, 303);
//! owners and admins ban (outcast, 301: the user stops being a member and cannot join),
//! moderators kick (307: the user stays a member); any occupant may set the subject; `muc#roomconfig_
//! maxusers` caps occupants (nicks) and `max_members` caps affiliated users; the service's
//! disco#items lists the rooms of the shard that answers it (the service JID's home shard),
//! open rooms and those the requester belongs to, at most `MAX_LISTED_ROOMS`.
//!
//! Limits: `max_rooms_per_shard` rooms on a shard (creation past it: resource-constraint),
//! `max_rooms_per_user` rooms owned by one user on a shard (not-allowed), members only from
//! this server's domain (no federation yet: not-allowed). An owner may destroy a room
//! (XEP-0045 10.9): occupants hear it, its record and affiliations leave the store.
//!
//! What it does not do: voice (rooms are unmoderated), invitations, iq
//! forwarding to occupants (except XEP-0410 self-ping), or anything on another shard (the
//! router routes every room stanza to the room's home shard).
//!
//! Invariants: a room is touched only on its home shard; no error is ever answered with an
//! error (stanzas of type error are ignored); every change to configuration, subject or
//! affiliations is written to the store before it takes effect in memory, and a write the
//! store refuses leaves the room unchanged (`resource-constraint`).

mod admin;
mod disco;
mod messages;
mod occupants;
mod owner;
mod persist;
mod room;
mod stanzas;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_admin;
#[cfg(test)]
mod tests_privacy;

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind, StanzaView};
use rookery_store::Store;

use crate::effects::StanzaType;
use crate::home::groups::fanout::FanoutPlan;
use crate::home::mam::Archiver;
use crate::home::routing::{kind_name, wants_error};
use crate::location::{Location, Placement};
use crate::maps::{HashState, Map};
pub(crate) use room::Room;
use stanzas::Head;
pub(crate) use stanzas::MucError;
pub(crate) use stanzas::Refusal;

/// What a room asks the router to do.
#[derive(Debug)]
pub(crate) enum RoomAction {
    /// Deliver a complete stanza (`from` and `to` set) to one user JID (full or bare): an
    /// occupant's real JID, or the sender of a request.
    Send {
        to: Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: Vec<u8>,
    },
    /// Fan a stanza out: `stanza` has `from` (= `from`, the room or `room/nick`) stamped and no
    /// `to`; every recipient of `plan` gets its own `to` stamped.
    Broadcast {
        from: Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: Vec<u8>,
        plan: Arc<FanoutPlan>,
    },
}

/// Settings of the group service.
#[derive(Clone, Debug)]
pub(crate) struct RoomsConfig {
    /// The service domain (`groups.<domain>`).
    pub service: Jid,
    /// The server's own domain: the only one whose users may be members.
    pub local_domain: Box<str>,
    pub max_members: usize,
    /// Most rooms on this shard, and most rooms one user owns on it.
    pub max_rooms: usize,
    pub max_rooms_per_user: usize,
    /// Where every JID is homed, and where this shard is.
    pub placement: Placement,
    pub location: Location,
    /// Roles whose presence a new room broadcasts (`--group-presence-broadcast`).
    pub default_broadcast: crate::config::BroadcastRoles,
    /// Keys the room tables (see `maps`).
    pub hash: HashState,
}

/// Every room homed on this shard.
#[derive(Debug)]
pub(crate) struct Rooms {
    config: RoomsConfig,
    rooms: Map<Box<str>, Room>,
    /// Rooms of this shard each user owns (bare JID -> count), for `max_rooms_per_user`.
    owned: Map<Box<str>, u32>,
}

impl Rooms {
    /// The rooms of this shard, restored from the store's keyed tables.
    pub fn load(config: RoomsConfig, store: &Store) -> Rooms {
        let rooms = persist::load(&config, store);
        let mut owned: Map<Box<str>, u32> = config.hash.map();
        for room in rooms.values() {
            for (user, affiliated) in &room.affiliations {
                if affiliated.affiliation == room::Affiliation::Owner {
                    *owned.entry(user.clone()).or_default() += 1;
                }
            }
        }
        Rooms {
            config,
            rooms,
            owned,
        }
    }

    /// The service domain.
    pub fn service(&self) -> &Jid {
        &self.config.service
    }

    /// A stanza from user `from` (an authenticated full JID) to `to` (the service, a room, or
    /// `room/nick`), as stamped by the user's shard (`from` set). Appends what to do to `out`.
    pub fn on_stanza(
        &mut self,
        from: &Jid,
        to: &Jid,
        view: &StanzaView<'_>,
        (store, archive): (&mut Store, Option<&mut Archiver>),
        out: &mut Vec<RoomAction>,
    ) {
        let kind = view.kind();
        let ty = StanzaType::classify(kind, view.stanza_type().as_deref());
        // Never answer an error; a bounce of a room's own stanza changes nothing either.
        if ty == StanzaType::Error || kind == StanzaKind::Other {
            return;
        }
        let id = view.id();
        let mut ctx = Ctx {
            config: &self.config,
            owned: &mut self.owned,
            room_count: self.rooms.len(),
            store,
            archive,
            out,
            from,
            to,
            view,
            kind,
            ty,
            id: id.as_deref(),
        };
        if to.local().is_none() {
            disco::on_service_stanza(&self.rooms, &mut ctx);
            return;
        }
        match kind {
            StanzaKind::Presence => occupants::on_presence(&mut self.rooms, &mut ctx),
            StanzaKind::Message => match self.rooms.get_mut(to.bare_str()) {
                Some(room) => messages::on_message(room, &mut ctx),
                None => ctx.refuse(stanzas::MucError::ItemNotFound),
            },
            StanzaKind::Iq => match self.rooms.get_mut(to.bare_str()) {
                Some(room) => {
                    disco::on_room_iq(room, &mut ctx);
                    if room.destroyed {
                        self.rooms.remove(to.bare_str());
                    }
                }
                None => ctx.refuse(stanzas::MucError::ItemNotFound),
            },
            StanzaKind::Other => {}
        }
    }

    /// Rooms and occupants (nicks), for stats.
    pub fn counts(&self) -> (usize, usize) {
        let occupants = self.rooms.values().map(|r| r.occupants.len()).sum();
        (self.rooms.len(), occupants)
    }

    /// A room, for tests.
    #[cfg(test)]
    pub(crate) fn room(&self, bare: &str) -> Option<&Room> {
        self.rooms.get(bare)
    }
}

/// One stanza being handled: who sent it, what it addressed, and where answers go.
pub(crate) struct Ctx<'a, 'v> {
    pub config: &'a RoomsConfig,
    /// Rooms each user owns on this shard (kept by creation, ownership changes, destruction).
    pub owned: &'a mut Map<Box<str>, u32>,
    /// Rooms on this shard before this stanza.
    pub room_count: usize,
    pub store: &'a mut Store,
    /// The shard's message archive (XEP-0313), when on: room archives and history.
    pub archive: Option<&'a mut Archiver>,
    pub out: &'a mut Vec<RoomAction>,
    /// The sender's real full JID.
    pub from: &'a Jid,
    /// What the sender addressed: the service, a room or `room/nick`.
    pub to: &'a Jid,
    pub view: &'a StanzaView<'v>,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    pub id: Option<&'a str>,
}

impl Ctx<'_, '_> {
    /// Counts `user` (a bare JID) as owner of one more (`gained`) or one fewer room.
    pub fn count_owner(&mut self, user: &str, gained: bool) {
        if gained {
            *self.owned.entry(user.into()).or_default() += 1;
        } else if let Some(count) = self.owned.get_mut(user) {
            *count -= 1;
            if *count == 0 {
                self.owned.remove(user);
            }
        }
    }

    /// Rooms `user` (a bare JID) owns on this shard.
    pub fn owned_by(&self, user: &str) -> usize {
        self.owned.get(user).map_or(0, |&n| n as usize)
    }

    /// Answers the sender with a stanza error from what it addressed, unless the stanza is
    /// one that never gets an error (errors, iq results, headlines; presence other than a
    /// join is never refused, so its refusals always go out).
    pub fn refuse(&mut self, refusal: impl Into<Refusal>) {
        let answerable = match self.kind {
            StanzaKind::Presence => self.ty != StanzaType::Error,
            kind => wants_error(kind, self.ty),
        };
        if !answerable {
            return;
        }
        let mut stanza = Vec::new();
        let head = self.reply_head();
        stanzas::error(&mut stanza, kind_name(self.kind), head, &refusal.into());
        self.send(self.from, self.kind, StanzaType::Error, stanza);
    }

    /// Answers an iq request with a result carrying `payload` (router-built markup).
    pub fn result(&mut self, payload: &[u8]) {
        let mut stanza = Vec::new();
        stanzas::iq_result(&mut stanza, self.reply_head(), payload);
        self.send(self.from, StanzaKind::Iq, StanzaType::Result, stanza);
    }

    /// Addressing of an answer: the request's id, from what it addressed, to the sender.
    fn reply_head(&self) -> Head<'_> {
        Head {
            id: self.id,
            from: self.to.as_str(),
            to: Some(self.from.as_str()),
        }
    }

    pub fn send(&mut self, to: &Jid, kind: StanzaKind, ty: StanzaType, stanza: Vec<u8>) {
        self.out.push(RoomAction::Send {
            to: to.clone(),
            kind,
            ty,
            stanza,
        });
    }

    /// Fans `stanza` (from `from`, no `to`) out to `plan`, unless the plan is empty. Rooms
    /// broadcast only groupchat messages and presence, so `ty` names the kind.
    pub fn broadcast(
        &mut self,
        from: &Jid,
        ty: StanzaType,
        stanza: Vec<u8>,
        plan: Arc<FanoutPlan>,
    ) {
        if plan.is_empty() {
            return;
        }
        let kind = match ty {
            StanzaType::Groupchat => StanzaKind::Message,
            _ => StanzaKind::Presence,
        };
        self.out.push(RoomAction::Broadcast {
            from: from.clone(),
            kind,
            ty,
            stanza,
            plan,
        });
    }
}
