//! Presence to a room: joining (creating the room when missing), presence updates of an
//! occupant, and leaving; and the departure announcement other modules reuse (removal after
//! an affiliation or configuration change).
//!
//! What it does not do: persist occupants (live only) or track which rooms a session joined
//! (the user's shard does, and sends an unavailable presence on the session's behalf when it
//! ends).
//!
//! Invariants: a join is admitted (nick free or the user's own, occupant cap, members-only,
//! member cap, affiliation written) before anything is sent; the joiner gets, in order, the
//! presence of every other occupant whose role is broadcast, its own presence (110, 100, and
//! 201 on creation), then the subject; the others get the newcomer's presence from the
//! presence plan as it was before the join, so nobody but the joiner gets two copies. Every
//! leave to `room/nick` is answered to the leaving session with an unavailable presence from
//! `room/nick` (the user's shard waits for it, see `presence::departures`); the leave of a
//! session that is not in the room (the user's shard sends one for every room it remembers,
//! refused joins included) changes nothing and nobody else hears of it.

use std::borrow::Cow;
use std::sync::Arc;

use rookery_proto::framer::check_namespaces;
use rookery_proto::view::Child;
use rookery_proto::writer::unescape;
use rookery_proto::{ns, Jid, StanzaKind, StanzaView};

use super::persist;
use super::room::{Affiliation, Occupant, Room, RoomConfig, MAX_PRESENCE_PAYLOAD_BYTES};
use super::stanzas::{self, status, Head, Item, MucError, Refusal, MUC_NS, MUC_USER_NS};
use super::{Ctx, RoomsConfig};
use crate::effects::StanzaType;
use crate::maps::Map;

/// A presence to `room` or `room/nick`.
pub(crate) fn on_presence(rooms: &mut Map<Box<str>, Room>, ctx: &mut Ctx<'_, '_>) {
    match ctx.ty {
        StanzaType::Available => join_or_update(rooms, ctx),
        StanzaType::Unavailable => match rooms.get_mut(ctx.to.bare_str()) {
            Some(room) => leave(room, ctx),
            None => not_in_room(None, ctx),
        },
        // Subscriptions and probes mean nothing to a room.
        _ => {}
    }
}

fn join_or_update(rooms: &mut Map<Box<str>, Room>, ctx: &mut Ctx<'_, '_>) {
    let Some(nick) = ctx.to.resource() else {
        let text = "Join a group as group@service/nickname";
        ctx.refuse(Refusal::with_text(MucError::JidMalformed, text));
        return;
    };
    let payload = presence_payload(ctx.view);
    let Some(room) = rooms.get_mut(ctx.to.bare_str()) else {
        if let Some(room) = create(ctx, payload) {
            rooms.insert(room.jid.as_str().into(), room);
        }
        return;
    };
    match room.nick_of_session(ctx.from.as_str()) {
        Some(current) if current == nick => update(room, ctx, payload),
        Some(current) => {
            let old: Box<str> = current.into();
            change_nick(room, ctx, &old, payload);
        }
        None => match admit(room, ctx) {
            Ok(affiliation) => enter(room, ctx, affiliation, payload, false),
            Err(refusal) => ctx.refuse(refusal),
        },
    }
}

/// A join to a missing room creates it, the joiner its owner; within the shard's room cap and
/// the joiner's own.
fn create(ctx: &mut Ctx<'_, '_>, payload: Box<[u8]>) -> Option<Room> {
    if ctx.config.max_members == 0 {
        ctx.refuse(full(ctx.config.max_members));
        return None;
    }
    if ctx.room_count >= ctx.config.max_rooms {
        let text = "The group service is full: no new group can be made now";
        ctx.refuse(Refusal::with_text(MucError::ResourceConstraint, text));
        return None;
    }
    let cap = ctx.config.max_rooms_per_user;
    if ctx.owned_by(ctx.from.bare_str()) >= cap {
        let text = format!("You own the maximum of {cap} groups: destroy one first");
        ctx.refuse(Refusal::with_text(MucError::NotAllowed, text));
        return None;
    }
    let mut room = Room::new(
        ctx.to.to_bare(),
        RoomConfig::created(ctx.config.max_members, ctx.config.default_broadcast),
    );
    let saved = persist::save_room(ctx.store, &room).and_then(|()| {
        persist::save_affiliation(ctx.store, &room.jid, ctx.from, Affiliation::Owner)
    });
    if saved.is_err() {
        ctx.refuse(MucError::ResourceConstraint);
        return None;
    }
    room.set_affiliation(ctx.from, Affiliation::Owner);
    ctx.count_owner(ctx.from.bare_str(), true);
    enter(&mut room, ctx, Affiliation::Owner, payload, true);
    Some(room)
}

fn full(max_members: usize) -> Refusal {
    let text = format!("This group is full: it has the maximum of {max_members} members");
    Refusal::with_text(MucError::Full, text)
}

/// Most occupants (nicks) `room` takes at once.
pub(crate) fn max_occupants(room: &Room, config: &RoomsConfig) -> usize {
    let configured = usize::try_from(room.config.max_users).unwrap_or(usize::MAX);
    configured.min(config.max_members).max(1)
}

/// Whether the sender may join as `ctx.to`'s nick; a newcomer to an open room becomes a
/// member (written to the store). Returns the sender's affiliation. A members-only room
/// refuses a non-member before anything else (nick conflicts, occupant cap), so the refusal
/// says nothing about its occupants.
fn admit(room: &mut Room, ctx: &mut Ctx<'_, '_>) -> Result<Affiliation, Refusal> {
    let bare = ctx.from.bare_str();
    let nick = ctx.to.resource().unwrap_or_default();
    let affiliation = room.affiliation(bare);
    if affiliation == Affiliation::Outcast {
        let text = "You are banned from this group";
        return Err(Refusal::with_text(MucError::Forbidden, text));
    }
    // First, so that a non-member learns nothing about who is in a members-only room.
    if affiliation == Affiliation::None && room.config.members_only {
        let text = "This group is members-only: ask an admin to add you";
        return Err(Refusal::with_text(MucError::RegistrationRequired, text));
    }
    let newcomer = match room.occupants.get(nick) {
        Some(holder) if holder.bare.as_str() != bare => {
            let text = "That nickname is used by another person in this group";
            return Err(Refusal::with_text(MucError::Conflict, text));
        }
        Some(_) => false,
        None => {
            if let Some(mine) = room.occupant_of_user(bare) {
                let text = format!("You are in this group as '{}'", mine.nick());
                return Err(Refusal::with_text(MucError::Conflict, text));
            }
            true
        }
    };
    if affiliation == Affiliation::None && room.member_count() >= ctx.config.max_members {
        return Err(full(ctx.config.max_members));
    }
    let max = max_occupants(room, ctx.config);
    if newcomer && room.occupants.len() >= max {
        let text = format!("This group has the maximum of {max} people in it");
        return Err(Refusal::with_text(MucError::Full, text));
    }
    if affiliation != Affiliation::None {
        return Ok(affiliation);
    }
    persist::save_affiliation(ctx.store, &room.jid, ctx.from, Affiliation::Member)
        .map_err(|_| Refusal::from(MucError::ResourceConstraint))?;
    room.set_affiliation(ctx.from, Affiliation::Member);
    Ok(Affiliation::Member)
}

/// Puts the sender's session in the room and tells everyone (see the module invariants).
fn enter(
    room: &mut Room,
    ctx: &mut Ctx<'_, '_>,
    affiliation: Affiliation,
    payload: Box<[u8]>,
    created: bool,
) {
    let nick = ctx.to.resource().unwrap_or_default();
    let returning = room.occupants.contains_key(nick);
    let broadcast = room.config.broadcast;
    let others = room.presence_plan(&ctx.config.placement);
    send_occupants(room, ctx, nick);
    let role = affiliation.role();
    room.add_session(ctx.to, ctx.from, role, payload);
    let Some(occupant) = room.occupants.get(nick) else {
        return;
    };
    let item = occupant_item(room, occupant);
    if !returning && broadcast.contains(occupant.role) {
        let mut stanza = Vec::new();
        let head = Head {
            id: None,
            from: occupant.jid.as_str(),
            to: None,
        };
        stanzas::occupant_presence(&mut stanza, head, false, &occupant.payload, item, &[]);
        ctx.broadcast(&occupant.jid, StanzaType::Available, stanza, others);
    }
    let mut codes = vec![status::NON_ANONYMOUS, status::SELF];
    if created {
        codes.push(status::CREATED);
    }
    let mut stanza = Vec::new();
    let head = Head {
        id: ctx.id,
        from: occupant.jid.as_str(),
        to: Some(ctx.from.as_str()),
    };
    stanzas::occupant_presence(&mut stanza, head, false, &occupant.payload, item, &codes);
    ctx.send(
        ctx.from,
        StanzaKind::Presence,
        StanzaType::Available,
        stanza,
    );
    crate::home::mam::history::send(room, ctx);
    send_subject(room, ctx);
}

/// The presence of every occupant but `nick` whose role is broadcast, to the sender.
fn send_occupants(room: &Room, ctx: &mut Ctx<'_, '_>, nick: &str) {
    let shown = room
        .occupants
        .values()
        .filter(|o| o.nick() != nick && room.config.broadcast.contains(o.role));
    for occupant in shown {
        let mut stanza = Vec::new();
        let head = Head {
            id: None,
            from: occupant.jid.as_str(),
            to: Some(ctx.from.as_str()),
        };
        let item = occupant_item(room, occupant);
        stanzas::occupant_presence(&mut stanza, head, false, &occupant.payload, item, &[]);
        let ty = StanzaType::Available;
        ctx.send(ctx.from, StanzaKind::Presence, ty, stanza);
    }
}

/// The subject message to the sender: from `room/setter` when someone set it, else the room.
fn send_subject(room: &Room, ctx: &mut Ctx<'_, '_>) {
    let setter = (!room.subject.nick.is_empty())
        .then(|| room.jid.with_resource(&room.subject.nick).ok())
        .flatten();
    let from = setter.as_ref().unwrap_or(&room.jid);
    let mut stanza = Vec::new();
    let head = Head {
        id: None,
        from: from.as_str(),
        to: Some(ctx.from.as_str()),
    };
    stanzas::subject_message(&mut stanza, head, &room.subject.text);
    ctx.send(ctx.from, StanzaKind::Message, StanzaType::Groupchat, stanza);
}

/// The item of `occupant`'s presence: its affiliation and role, the real JID shown.
pub(crate) fn occupant_item<'a>(room: &Room, occupant: &'a Occupant) -> Item<'a> {
    Item {
        affiliation: room.affiliation(occupant.bare.as_str()),
        role: occupant.role,
        jid: occupant.sessions.first().map(Jid::as_str),
    }
}

/// An occupant's new presence (show, status): kept for later joiners and broadcast.
fn update(room: &mut Room, ctx: &mut Ctx<'_, '_>, payload: Box<[u8]>) {
    let nick = ctx.to.resource().unwrap_or_default();
    let Some(occupant) = room.occupants.get_mut(nick) else {
        return;
    };
    occupant.payload = payload;
    announce(room, ctx, nick);
}

/// Broadcasts occupant `nick`'s current presence to every occupant (itself included), if
/// its role is broadcast.
pub(crate) fn announce(room: &mut Room, ctx: &mut Ctx<'_, '_>, nick: &str) {
    let plan = room.presence_plan(&ctx.config.placement);
    let Some(occupant) = room.occupants.get(nick) else {
        return;
    };
    if !room.config.broadcast.contains(occupant.role) {
        return;
    }
    let mut stanza = Vec::new();
    let head = Head {
        id: None,
        from: occupant.jid.as_str(),
        to: None,
    };
    let item = occupant_item(room, occupant);
    stanzas::occupant_presence(&mut stanza, head, false, &occupant.payload, item, &[]);
    ctx.broadcast(&occupant.jid, StanzaType::Available, stanza, plan);
}

/// The sender's occupant takes the nick it sent its presence to (XEP-0045 7.6), with every
/// session of it: the others hear it leave the old nick (303, the new nick in the item) and
/// arrive under the new one; its own sessions get the same with 110. A nick another user
/// holds is a `conflict` and changes nothing.
fn change_nick(room: &mut Room, ctx: &mut Ctx<'_, '_>, old: &str, payload: Box<[u8]>) {
    let new = ctx.to.resource().unwrap_or_default();
    if room.occupants.contains_key(new) {
        let text = "That nickname is used by another person in this group";
        ctx.refuse(Refusal::with_text(MucError::Conflict, text));
        return;
    }
    let Some(occupant) = room.remove_occupant(old) else {
        return;
    };
    let affiliation = room.affiliation(occupant.bare.as_str());
    let shown = room.config.broadcast.contains(occupant.role);
    // Everyone but the occupant itself (it is out of the room until re-added below).
    let others = room.presence_plan(&ctx.config.placement);
    let first = occupant.sessions.first().map(Jid::as_str);
    let item = |jid| Item {
        affiliation,
        role: occupant.role,
        jid,
    };
    let head = |to| Head {
        id: None,
        from: occupant.jid.as_str(),
        to,
    };
    if shown {
        let mut stanza = Vec::new();
        let codes = [status::NICK_CHANGE];
        stanzas::nick_change_presence(&mut stanza, head(None), item(first), new, &codes);
        ctx.broadcast(
            &occupant.jid,
            StanzaType::Unavailable,
            stanza,
            Arc::clone(&others),
        );
    }
    let own_codes = [status::NICK_CHANGE, status::SELF];
    for session in &occupant.sessions {
        let mut stanza = Vec::new();
        let (head, item) = (head(Some(session.as_str())), item(Some(session.as_str())));
        stanzas::nick_change_presence(&mut stanza, head, item, new, &own_codes);
        ctx.send(
            session,
            StanzaKind::Presence,
            StanzaType::Unavailable,
            stanza,
        );
    }
    for session in &occupant.sessions {
        room.add_session(ctx.to, session, occupant.role, payload.clone());
    }
    let Some(renamed) = room.occupants.get(new) else {
        return;
    };
    let item = occupant_item(room, renamed);
    let head = |to| Head {
        id: None,
        from: renamed.jid.as_str(),
        to,
    };
    if shown {
        let mut stanza = Vec::new();
        stanzas::occupant_presence(&mut stanza, head(None), false, &renamed.payload, item, &[]);
        ctx.broadcast(&renamed.jid, StanzaType::Available, stanza, others);
    }
    for session in &renamed.sessions {
        let mut stanza = Vec::new();
        let codes = [status::SELF];
        let head = head(Some(session.as_str()));
        stanzas::occupant_presence(&mut stanza, head, false, &renamed.payload, item, &codes);
        ctx.send(session, StanzaKind::Presence, StanzaType::Available, stanza);
    }
}

/// The sender's session leaves the room.
fn leave(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let occupant = room
        .nick_of_session(ctx.from.as_str())
        .and_then(|nick| room.occupants.get(nick));
    let Some(occupant) = occupant else {
        not_in_room(Some(room), ctx);
        return;
    };
    let mut departed = occupant.clone();
    departed.payload = presence_payload(ctx.view);
    if room.remove_session(ctx.from.as_str()).is_none() {
        // Other sessions keep the nick: only this one hears that it left.
        departed.sessions.retain(|s| s == ctx.from);
        let affiliation = room.affiliation(departed.bare.as_str());
        let stanza = departure(&departed, affiliation, &[status::SELF], ctx.from);
        ctx.send(
            ctx.from,
            StanzaKind::Presence,
            StanzaType::Unavailable,
            stanza,
        );
        return;
    }
    let me = std::slice::from_ref(ctx.from);
    announce_departure(room, ctx, &departed, me, &[]);
}

/// Answers the leave of a session that is not in the room (or of a missing room): it hears
/// it is out (unavailable, 110), from the occupant JID it left, and nobody else hears
/// anything. Its shard waits for this answer to tell the room's presence for the session
/// that left from presence for a newer session of the same full JID (`presence::departures`).
fn not_in_room(room: Option<&Room>, ctx: &mut Ctx<'_, '_>) {
    if ctx.to.resource().is_none() {
        return;
    }
    let affiliation = room.map_or(Affiliation::None, |r| r.affiliation(ctx.from.bare_str()));
    let head = Head {
        id: None,
        from: ctx.to.as_str(),
        to: Some(ctx.from.as_str()),
    };
    let item = Item {
        affiliation,
        role: super::room::Role::None,
        jid: Some(ctx.from.as_str()),
    };
    let mut stanza = Vec::new();
    stanzas::occupant_presence(&mut stanza, head, true, &[], item, &[status::SELF]);
    let to = ctx.from.clone();
    ctx.send(&to, StanzaKind::Presence, StanzaType::Unavailable, stanza);
}

/// Tells the room that `departed` (already removed) left: the others from the presence
/// plan if its role is broadcast, and each of `own` with `statuses` plus 110.
pub(crate) fn announce_departure(
    room: &mut Room,
    ctx: &mut Ctx<'_, '_>,
    departed: &Occupant,
    own: &[Jid],
    statuses: &[u16],
) {
    let affiliation = room.affiliation(departed.bare.as_str());
    if room.config.broadcast.contains(departed.role) {
        let plan = room.presence_plan(&ctx.config.placement);
        let mut stanza = Vec::new();
        let head = Head {
            id: None,
            from: departed.jid.as_str(),
            to: None,
        };
        let item = Item {
            affiliation,
            role: super::room::Role::None,
            jid: departed.sessions.first().map(Jid::as_str),
        };
        stanzas::occupant_presence(&mut stanza, head, true, &departed.payload, item, statuses);
        ctx.broadcast(&departed.jid, StanzaType::Unavailable, stanza, plan);
    }
    let mut codes = statuses.to_vec();
    codes.push(status::SELF);
    for session in own {
        let stanza = departure(departed, affiliation, &codes, session);
        ctx.send(
            session,
            StanzaKind::Presence,
            StanzaType::Unavailable,
            stanza,
        );
    }
}

/// The unavailable presence of `departed` to one of its own sessions.
fn departure(departed: &Occupant, affiliation: Affiliation, codes: &[u16], to: &Jid) -> Vec<u8> {
    let mut stanza = Vec::new();
    let head = Head {
        id: None,
        from: departed.jid.as_str(),
        to: Some(to.as_str()),
    };
    let item = Item {
        affiliation,
        role: super::room::Role::None,
        jid: Some(to.as_str()),
    };
    stanzas::occupant_presence(&mut stanza, head, true, &departed.payload, item, codes);
    stanza
}

/// A presence's children without any element in the MUC namespaces (the client's join
/// request, and any `muc#user` extension a client writes to pass for the room's own, however
/// it is written: default namespace or a prefix, escaped like `muc&#35;user`, or inherited from
/// the presence itself), and without children that use a declaration of the presence (copied
/// alone they would not be well-formed); empty when larger than the cap.
pub(crate) fn presence_payload(view: &StanzaView<'_>) -> Box<[u8]> {
    let inherited = view.attr("xmlns");
    let mut payload = Vec::new();
    for child in view.children() {
        if is_kept(&child, inherited.as_deref()) {
            payload.extend_from_slice(child.bytes);
        }
    }
    if payload.len() > MAX_PRESENCE_PAYLOAD_BYTES {
        payload.clear();
    }
    payload.into_boxed_slice()
}

/// Whether a child of a client's presence may be copied into the room's presence.
fn is_kept(child: &Child<'_>, inherited: Option<&str>) -> bool {
    if check_namespaces(child.bytes).is_err() {
        return false;
    }
    // Self-contained, so a prefixed child declares its own prefix (or uses `stream`).
    let namespace = match child.xmlns {
        Some(raw) => match unescape(raw) {
            Ok(value) => value,
            Err(_) => return false,
        },
        None if child.name.contains(':') => return true,
        None => Cow::Borrowed(inherited.unwrap_or(ns::CLIENT)),
    };
    !matches!(&*namespace, MUC_NS | MUC_USER_NS)
}
