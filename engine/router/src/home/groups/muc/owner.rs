//! `muc#owner`: the room configuration form (XEP-0045 10.1-10.2), owners only. `get` returns
//! the form with current values; `set` with `<x type='submit'>` applies the fields it knows
//! (an empty submission keeps everything: the instant-room acceptance), `type='cancel'` does
//! nothing.
//!
//! Fields: `muc#roomconfig_roomname` (at most `MAX_NAME_BYTES`), `_membersonly` (boolean),
//! `_persistentroom` (any value accepted; rooms are always persistent), `_maxusers` (a
//! positive number or `none`, clamped to the service's member cap), `_presencebroadcast`
//! (any of moderator/participant/visitor). Other fields (FORM_TYPE included) are ignored.
//!
//! Destruction (XEP-0045 10.9): `<destroy jid='..'><reason/></destroy>` ends the room: its
//! record and affiliations leave the store, every occupant session hears an unavailable
//! presence with the `<destroy/>` (alternate venue and reason), the owner gets the result.
//!
//! What it does not do: passwords, moderation, logging or any other `muc#roomconfig` field.
//!
//! Invariants: a submission is checked whole before anything changes (a bad field changes
//! nothing, `bad-request`); the new configuration is written to the store before it takes
//! effect; a room turned members-only removes its occupants that are not members (322).

use rookery_proto::element::Element;

use super::occupants::announce_departure;
use super::persist;
use super::room::{Affiliation, Role, RoleSet, Room, RoomConfig, MAX_NAME_BYTES};
use super::stanzas::{
    self, push_attr, push_value, status, Head, MucError, Refusal, DATA_NS, MUC_OWNER_NS,
};
use super::Ctx;
use crate::effects::StanzaType;
use rookery_proto::StanzaKind;

const ROOMCONFIG_NS: &str = "http://jabber.org/protocol/muc#roomconfig";

/// An iq `muc#owner` query to a room.
pub(crate) fn on_owner(room: &mut Room, ctx: &mut Ctx<'_, '_>, query: &Element<'_>) {
    if room.affiliation(ctx.from.bare_str()) != Affiliation::Owner {
        let text = "Only an owner may configure the group";
        ctx.refuse(Refusal::with_text(MucError::Forbidden, text));
        return;
    }
    match ctx.ty {
        StanzaType::Get => ctx.result(&form(room, ctx.config.max_members)),
        StanzaType::Set => submit(room, ctx, query),
        _ => {}
    }
}

fn submit(room: &mut Room, ctx: &mut Ctx<'_, '_>, query: &Element<'_>) {
    if let Some(destroy) = query.child("destroy", MUC_OWNER_NS) {
        return destroy_room(room, ctx, destroy);
    }
    let Some(x) = query.child("x", DATA_NS) else {
        ctx.refuse(MucError::BadRequest);
        return;
    };
    match x.attr("type") {
        Some("cancel") => {
            ctx.result(b"");
            return;
        }
        Some("submit") => {}
        _ => {
            ctx.refuse(MucError::BadRequest);
            return;
        }
    }
    let config = match parse_submission(&room.config, x, ctx.config.max_members) {
        Ok(config) => config,
        Err(refusal) => {
            ctx.refuse(refusal);
            return;
        }
    };
    let previous = std::mem::replace(&mut room.config, config);
    if persist::save_room(ctx.store, room).is_err() {
        room.config = previous;
        ctx.refuse(MucError::ResourceConstraint);
        return;
    }
    ctx.result(b"");
    if room.config.members_only && !previous.members_only {
        remove_non_members(room, ctx);
    }
}

/// Destroys `room` (see the module doc); the shard drops it after this stanza.
fn destroy_room(room: &mut Room, ctx: &mut Ctx<'_, '_>, destroy: &Element<'_>) {
    if persist::delete_room(ctx.store, &room.jid).is_err() {
        ctx.refuse(MucError::ResourceConstraint);
        return;
    }
    let venue = destroy.attr("jid");
    let reason = destroy.child("reason", MUC_OWNER_NS).map(|r| r.text());
    let occupants = std::mem::take(&mut room.occupants);
    room.sessions.clear();
    for occupant in occupants.values() {
        for session in &occupant.sessions {
            let mut stanza = Vec::new();
            let head = Head {
                id: None,
                from: occupant.jid.as_str(),
                to: Some(session.as_str()),
            };
            stanzas::destroyed_presence(&mut stanza, head, venue, reason.as_deref());
            ctx.send(
                session,
                StanzaKind::Presence,
                StanzaType::Unavailable,
                stanza,
            );
        }
    }
    let owners: Vec<Box<str>> = room
        .affiliations
        .iter()
        .filter(|(_, a)| a.affiliation == Affiliation::Owner)
        .map(|(user, _)| user.clone())
        .collect();
    for owner in owners {
        ctx.count_owner(&owner, false);
    }
    room.affiliations.clear();
    room.invalidate();
    room.destroyed = true;
    ctx.result(b"");
}

/// The configuration a submitted form asks for, starting from `current`.
pub(crate) fn parse_submission(
    current: &RoomConfig,
    x: &Element<'_>,
    max_members: usize,
) -> Result<RoomConfig, Refusal> {
    let mut config = current.clone();
    let fields = x.children().filter(|c| c.local_name() == "field");
    for field in fields {
        let Some(var) = field.attr("var") else {
            continue;
        };
        let values: Vec<String> = field
            .children()
            .filter(|c| c.local_name() == "value")
            .map(Element::text)
            .collect();
        let first = values.first().map_or("", String::as_str);
        match var {
            "muc#roomconfig_roomname" if first.len() > MAX_NAME_BYTES => {
                let text = format!("A group name is at most {MAX_NAME_BYTES} bytes long");
                return Err(Refusal::with_text(MucError::BadRequest, text));
            }
            "muc#roomconfig_roomname" => config.name = first.into(),
            "muc#roomconfig_membersonly" => config.members_only = boolean(var, first)?,
            "muc#roomconfig_maxusers" => config.max_users = max_users(first, max_members)?,
            "muc#roomconfig_presencebroadcast" => {
                let mut roles = RoleSet(0);
                for value in &values {
                    let role = Role::parse(value).ok_or_else(|| bad_value(var))?;
                    roles.insert(role);
                }
                config.broadcast = roles;
            }
            // Always persistent (accepted, whatever the value), and fields we do not have.
            _ => {}
        }
    }
    Ok(config)
}

fn bad_value(var: &str) -> Refusal {
    Refusal::with_text(MucError::BadRequest, format!("Bad value for {var}"))
}

fn boolean(var: &str, value: &str) -> Result<bool, Refusal> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(bad_value(var)),
    }
}

fn max_users(value: &str, max_members: usize) -> Result<u32, Refusal> {
    let cap = u32::try_from(max_members).unwrap_or(u32::MAX);
    if value.is_empty() || value == "none" {
        return Ok(cap);
    }
    match value.parse::<u32>() {
        Ok(0) | Err(_) => Err(bad_value("muc#roomconfig_maxusers")),
        Ok(n) => Ok(n.min(cap)),
    }
}

/// Occupants without an affiliation leave a room that became members-only (status 322).
fn remove_non_members(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let outsiders: Vec<Box<str>> = room
        .occupants
        .iter()
        .filter(|(_, o)| room.affiliation(o.bare.as_str()) == Affiliation::None)
        .map(|(nick, _)| nick.clone())
        .collect();
    for nick in outsiders {
        if let Some(occupant) = room.remove_occupant(&nick) {
            let own = occupant.sessions.clone();
            announce_departure(room, ctx, &occupant, &own, &[status::MEMBERS_ONLY]);
        }
    }
}

/// The configuration form with the room's current values.
fn form(room: &Room, max_members: usize) -> Vec<u8> {
    let config = &room.config;
    let mut out = Vec::with_capacity(1536);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='");
    out.extend_from_slice(DATA_NS.as_bytes());
    out.extend_from_slice(b"' type='form'><title>Group configuration</title>");
    field(&mut out, "FORM_TYPE", "hidden", None);
    push_value(&mut out, ROOMCONFIG_NS);
    end_field(&mut out);
    field(
        &mut out,
        "muc#roomconfig_roomname",
        "text-single",
        Some("Name"),
    );
    push_value(&mut out, &config.name);
    end_field(&mut out);
    let label = Some("Only members may join");
    field(&mut out, "muc#roomconfig_membersonly", "boolean", label);
    push_value(&mut out, if config.members_only { "1" } else { "0" });
    end_field(&mut out);
    let label = Some("Persistent (always)");
    field(&mut out, "muc#roomconfig_persistentroom", "boolean", label);
    push_value(&mut out, "1");
    end_field(&mut out);
    let label = format!("Most people in the group at once (at most {max_members})");
    field(
        &mut out,
        "muc#roomconfig_maxusers",
        "text-single",
        Some(&label),
    );
    push_value(&mut out, &config.max_users.to_string());
    end_field(&mut out);
    let label = Some("Roles whose presence is broadcast");
    field(
        &mut out,
        "muc#roomconfig_presencebroadcast",
        "list-multi",
        label,
    );
    for role in [Role::Moderator, Role::Participant, Role::Visitor] {
        out.extend_from_slice(b"<option");
        push_attr(&mut out, "label", role.as_str());
        out.push(b'>');
        push_value(&mut out, role.as_str());
        out.extend_from_slice(b"</option>");
    }
    for role in config.broadcast.roles() {
        push_value(&mut out, role.as_str());
    }
    end_field(&mut out);
    out.extend_from_slice(b"</x></query>");
    out
}

fn field(out: &mut Vec<u8>, var: &str, ty: &str, label: Option<&str>) {
    out.extend_from_slice(b"<field");
    push_attr(out, "var", var);
    push_attr(out, "type", ty);
    if let Some(label) = label {
        push_attr(out, "label", label);
    }
    out.push(b'>');
}

fn end_field(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</field>");
}
