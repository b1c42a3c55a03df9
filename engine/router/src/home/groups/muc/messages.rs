//! Messages to a room: groupchat (broadcast to occupants and absent members, archived with a
//! XEP-0359 stanza-id when the archive is on), subject changes, and private messages between
//! occupants.
//!
//! What it does not do: store messages for absent members (the router does, for every
//! `Recipient::Member` of the plan), or handle invitations and voice requests
//! (`feature-not-implemented`).
//!
//! Invariants: a groupchat message costs one stamp of the stanza and one `Arc` clone of the
//! room's cached plan (no rebuild); it goes out from the sender's occupant JID with the
//! stanza otherwise unchanged (id kept, so the sender recognises its reflection). Only an
//! occupant may send to the room or to another occupant (`not-acceptable` otherwise).

use rookery_proto::element::Element;
use rookery_proto::{ns, StanzaKind, StanzaView};

use super::persist;
use super::room::{Room, MAX_SUBJECT_BYTES};
use super::stanzas::{MucError, Refusal};
use super::Ctx;
use crate::effects::StanzaType;
use crate::home::mam::has_body;
use rookery_store::archive::Direction;

/// A message to `room` or `room/nick`.
pub(crate) fn on_message(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let private = ctx.to.resource().is_some();
    match (ctx.ty, private) {
        (StanzaType::Headline, _) => {}
        (StanzaType::Groupchat, false) => groupchat(room, ctx),
        (StanzaType::Groupchat, true) => {
            let text = "Send private messages to an occupant as type 'chat'";
            ctx.refuse(Refusal::with_text(MucError::BadRequest, text));
        }
        (_, true) => private_message(room, ctx),
        // Invitations, voice requests and registration forms travel as normal messages.
        (_, false) => ctx.refuse(MucError::FeatureNotImplemented),
    }
}

fn not_in_room() -> Refusal {
    let text = "Join the group before sending to it";
    Refusal::with_text(MucError::NotAcceptable, text)
}

fn groupchat(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let Some(nick) = room.nick_of_session(ctx.from.as_str()) else {
        ctx.refuse(not_in_room());
        return;
    };
    let Some(occupant) = room.occupants.get(nick) else {
        ctx.refuse(not_in_room());
        return;
    };
    let from = occupant.jid.clone();
    if let Some(subject) = subject_change(ctx.view) {
        if let Err(refusal) = set_subject(room, ctx, subject) {
            ctx.refuse(refusal);
            return;
        }
    }
    let mut stanza = Vec::with_capacity(ctx.view.bytes().len() + from.as_str().len() + 16);
    ctx.view.stamp(from.as_str(), None, &mut stanza);
    if let Some(archiver) = ctx.archive.as_deref_mut().filter(|_| has_body(ctx.view)) {
        // Archived with its stanza-id by the room, which every occupant then gets; a failed
        // write is counted by the archive and the message goes out unmarked.
        let room_jid = room.jid.bare_str();
        let marked = archiver.archive_marked(room_jid, from.as_str(), Direction::Incoming, &stanza);
        stanza = marked.unwrap_or(stanza);
    }
    let plan = room.message_plan(&ctx.config.placement);
    ctx.broadcast(&from, StanzaType::Groupchat, stanza, plan);
}

/// The new subject, if the message is a subject change (a `<subject/>` and no `<body/>`,
/// XEP-0045 8.1).
fn subject_change(view: &StanzaView<'_>) -> Option<String> {
    let mut subject = None;
    for child in view.children() {
        let client = matches!(child.xmlns, None | Some(ns::CLIENT));
        match child.local_name {
            "body" if client => return None,
            "subject" if client && subject.is_none() => subject = Some(child.bytes),
            _ => {}
        }
    }
    let element = Element::parse(subject?).ok()?;
    Some(element.text())
}

fn set_subject(room: &mut Room, ctx: &mut Ctx<'_, '_>, text: String) -> Result<(), Refusal> {
    if text.len() > MAX_SUBJECT_BYTES {
        let text = format!("A subject is at most {MAX_SUBJECT_BYTES} bytes long");
        return Err(Refusal::with_text(MucError::NotAcceptable, text));
    }
    let nick = room
        .nick_of_session(ctx.from.as_str())
        .unwrap_or_default()
        .into();
    let previous = std::mem::replace(
        &mut room.subject,
        super::room::Subject {
            text: text.into(),
            nick,
        },
    );
    if persist::save_room(ctx.store, room).is_err() {
        room.subject = previous;
        return Err(MucError::ResourceConstraint.into());
    }
    Ok(())
}

fn private_message(room: &mut Room, ctx: &mut Ctx<'_, '_>) {
    let sender = room.nick_of_session(ctx.from.as_str());
    let Some(sender) = sender.and_then(|nick| room.occupants.get(nick)) else {
        ctx.refuse(not_in_room());
        return;
    };
    let target = ctx.to.resource().unwrap_or_default();
    let Some(target) = room.occupants.get(target) else {
        let text = "No one in this group has that nickname";
        ctx.refuse(Refusal::with_text(MucError::ItemNotFound, text));
        return;
    };
    for session in &target.sessions {
        let mut stanza = Vec::new();
        ctx.view
            .stamp(sender.jid.as_str(), Some(session.as_str()), &mut stanza);
        ctx.send(session, StanzaKind::Message, ctx.ty, stanza);
    }
}
