//! Iq to the group service, a room or an occupant: dispatch by payload namespace, service
//! discovery (XEP-0030) of the service and of rooms, ping (XEP-0199) and occupant self-ping
//! (XEP-0410).
//!
//! What it does not do: the `muc#owner` and `muc#admin` protocols themselves (see `owner`,
//! `admin`), or forward iq to occupants (`feature-not-implemented`).
//!
//! Invariants: every iq get/set gets exactly one answer (result or error, RFC 6120 8.2.3);
//! results are ignored; an unknown payload namespace is `service-unavailable`, a known one
//! used in an unsupported way `feature-not-implemented`. A members-only room shows a
//! non-member nothing it holds: its disco#info is the identity (without the room's name) and
//! features only, so a client can still learn that it is members-only before trying to join
//! (XEP-0045 6.4 asks clients to look first), without the `muc#roominfo` form (occupant
//! count, subject); its disco#items is empty for everyone (XEP-0045 6.5 allows keeping
//! occupants private; the presence a joiner gets is the way to see them).

use rookery_proto::element::Element;
use rookery_proto::{ns, StanzaKind};

use super::room::Room;
use super::stanzas::{
    push_attr, push_value, MucError, Refusal, DATA_NS, MUC_ADMIN_NS, MUC_NS, MUC_OWNER_NS,
};
use super::{admin, owner, Ctx};
use crate::effects::StanzaType;
use crate::home::mam::{self, MAM_NS};
use crate::maps::Map;

/// Most rooms the service's disco#items lists (no result set management).
pub(crate) const MAX_LISTED_ROOMS: usize = 500;

/// The node clients ask for a reserved nickname (XEP-0045 7.12); nicks are not reserved.
const ROOMUSER_NODE: &str = "x-roomuser-item";

const SERVICE_INFO: &[u8] = b"<query xmlns='http://jabber.org/protocol/disco#info'>\
<identity category='conference' type='text' name='Groups'/>\
<feature var='http://jabber.org/protocol/disco#info'/>\
<feature var='http://jabber.org/protocol/disco#items'/>\
<feature var='http://jabber.org/protocol/muc'/></query>";

/// The request's payload: its first child's local name, namespace and the parsed element.
struct Payload<'a> {
    xmlns: Option<&'a str>,
    element: Option<Element<'a>>,
}

/// The iq's payload, or `None` (after answering `bad-request`) when the iq cannot be handled.
fn payload<'a>(ctx: &mut Ctx<'_, 'a>) -> Option<Payload<'a>> {
    if ctx.ty == StanzaType::Invalid {
        ctx.refuse(MucError::BadRequest);
        return None;
    }
    if !ctx.ty.is_request() {
        return None;
    }
    let Some(child) = ctx.view.children().next() else {
        ctx.refuse(MucError::BadRequest);
        return None;
    };
    Some(Payload {
        xmlns: child.xmlns,
        element: Element::parse(child.bytes).ok(),
    })
}

/// A stanza to the service itself (`groups.<domain>`).
pub(crate) fn on_service_stanza(rooms: &Map<Box<str>, Room>, ctx: &mut Ctx<'_, '_>) {
    match ctx.kind {
        StanzaKind::Iq => {}
        StanzaKind::Message => {
            ctx.refuse(MucError::ServiceUnavailable);
            return;
        }
        StanzaKind::Presence | StanzaKind::Other => return,
    }
    let Some(request) = payload(ctx) else {
        return;
    };
    let node = request.element.as_ref().and_then(|e| e.attr("node"));
    match (ctx.ty, request.xmlns) {
        (StanzaType::Get, Some(ns::DISCO_INFO)) if node.is_none() => ctx.result(SERVICE_INFO),
        (StanzaType::Get, Some(ns::DISCO_ITEMS)) if node.is_none() => {
            let items = service_items(rooms, ctx.from.bare_str());
            ctx.result(&items);
        }
        (StanzaType::Get, Some(ns::DISCO_INFO | ns::DISCO_ITEMS)) => {
            ctx.refuse(MucError::ItemNotFound);
        }
        (StanzaType::Get, Some(ns::PING)) => ctx.result(b""),
        _ => ctx.refuse(MucError::ServiceUnavailable),
    }
}

/// The open rooms of this shard and those `user` belongs to, by JID.
fn service_items(rooms: &Map<Box<str>, Room>, user: &str) -> Vec<u8> {
    let mut listed: Vec<&Room> = rooms
        .values()
        .filter(|room| !room.config.members_only || room.affiliations.contains_key(user))
        .collect();
    listed.sort_unstable_by(|a, b| a.jid.cmp(&b.jid));
    listed.truncate(MAX_LISTED_ROOMS);
    let mut out = Vec::with_capacity(64 + listed.len() * 64);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#items'>");
    for room in listed {
        out.extend_from_slice(b"<item");
        push_attr(&mut out, "jid", room.jid.as_str());
        if !room.config.name.is_empty() {
            push_attr(&mut out, "name", &room.config.name);
        }
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"</query>");
    out
}

/// An iq to an existing room or one of its occupants.
pub(crate) fn on_room_iq(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let Some(request) = payload(ctx) else {
        return;
    };
    if ctx.to.resource().is_some() {
        occupant_iq(room, ctx, request.xmlns);
        return;
    }
    let node = request.element.as_ref().and_then(|e| e.attr("node"));
    match (ctx.ty, request.xmlns) {
        (StanzaType::Get, Some(ns::DISCO_INFO)) => room_info(room, ctx, node),
        (StanzaType::Get, Some(ns::DISCO_ITEMS)) if node.is_none() => {
            // Occupants are not listed: the presence a joiner gets is the way to see them.
            ctx.result(b"<query xmlns='http://jabber.org/protocol/disco#items'/>");
        }
        (StanzaType::Get, Some(ns::DISCO_ITEMS)) => ctx.refuse(MucError::ItemNotFound),
        (StanzaType::Get, Some(ns::PING)) => ctx.result(b""),
        (_, Some(MUC_OWNER_NS)) => match request.element {
            Some(query) => owner::on_owner(room, ctx, &query),
            None => ctx.refuse(MucError::BadRequest),
        },
        (_, Some(MUC_ADMIN_NS)) => match request.element {
            Some(query) => admin::on_admin(room, ctx, &query),
            None => ctx.refuse(MucError::BadRequest),
        },
        (_, Some(MAM_NS)) if ctx.archive.is_some() => mam::iq::room_iq(room, ctx, request.element),
        _ => ctx.refuse(MucError::ServiceUnavailable),
    }
}

/// Iq to `room/nick`: only XEP-0410 self-ping is answered; nothing is forwarded.
fn occupant_iq(room: &Room, ctx: &mut Ctx<'_, '_>, xmlns: Option<&str>) {
    let mine = room.nick_of_session(ctx.from.as_str());
    let target = ctx.to.resource();
    if ctx.ty == StanzaType::Get && xmlns == Some(ns::PING) {
        match mine {
            Some(nick) if Some(nick) == target => ctx.result(b""),
            Some(_) => ctx.refuse(MucError::FeatureNotImplemented),
            None => ctx.refuse(Refusal::with_text(
                MucError::NotAcceptable,
                "You are not in this group",
            )),
        }
        return;
    }
    let text = "Requests to occupants are not forwarded";
    ctx.refuse(Refusal::with_text(MucError::FeatureNotImplemented, text));
}

/// disco#info of a room: identity, MUC features and the `muc#roominfo` form.
fn room_info(room: &Room, ctx: &mut Ctx<'_, '_>, node: Option<&str>) {
    let visible = room.visible_to(ctx.from.bare_str());
    match node {
        None => {}
        Some(ROOMUSER_NODE) => {
            // No reserved nicknames: an empty answer (XEP-0045 7.12).
            let mut out = Vec::new();
            out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#info'");
            push_attr(&mut out, "node", ROOMUSER_NODE);
            out.extend_from_slice(b"/>");
            ctx.result(&out);
            return;
        }
        Some(_) => {
            ctx.refuse(MucError::ItemNotFound);
            return;
        }
    }
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#info'>");
    out.extend_from_slice(b"<identity category='conference' type='text'");
    let name = match &*room.config.name {
        "" => room.jid.local().unwrap_or_default(),
        name => name,
    };
    if visible {
        push_attr(&mut out, "name", name);
    }
    out.extend_from_slice(b"/>");
    let access = if room.config.members_only {
        "muc_membersonly"
    } else {
        "muc_open"
    };
    let features = [
        ns::DISCO_INFO,
        MUC_NS,
        "muc_persistent",
        access,
        "muc_nonanonymous",
        "muc_unmoderated",
        "muc_unsecured",
        // XEP-0410: a ping to the occupant's own JID is answered by the room itself.
        "http://jabber.org/protocol/muc#self-ping-optimization",
    ];
    let archive = ctx.archive.is_some().then_some(MAM_NS);
    for feature in features.into_iter().chain(archive) {
        out.extend_from_slice(b"<feature");
        push_attr(&mut out, "var", feature);
        out.extend_from_slice(b"/>");
    }
    if !visible {
        out.extend_from_slice(b"</query>");
        ctx.result(&out);
        return;
    }
    out.extend_from_slice(b"<x xmlns='");
    out.extend_from_slice(DATA_NS.as_bytes());
    out.extend_from_slice(b"' type='result'><field var='FORM_TYPE' type='hidden'>");
    push_value(&mut out, "http://jabber.org/protocol/muc#roominfo");
    out.extend_from_slice(b"</field><field var='muc#roominfo_occupants'>");
    push_value(&mut out, &room.occupants.len().to_string());
    out.extend_from_slice(b"</field><field var='muc#roominfo_subject'>");
    push_value(&mut out, &room.subject.text);
    out.extend_from_slice(b"</field></x></query>");
    ctx.result(&out);
}
