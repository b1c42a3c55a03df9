//! `muc#admin`: affiliation lists and affiliation changes (XEP-0045 9.1-9.8, 10.3-10.7),
//! bans (outcast, 9.1-9.2), kicks (8.2) and role lists.
//!
//! Who may do what: an owner any change; an admin may grant or revoke membership of users who
//! are not admins or owners, and ban them; anyone may set their own affiliation to `none`
//! (leave the group for good); a moderator occupant may kick (role `none`) an occupant who is
//! not an admin or owner. Lists (member, admin, owner, outcast; moderator, participant) are
//! for owners and admins. A banned user stops being a member, is removed from the room
//! (status 301) and cannot join (`forbidden`) until an owner or admin sets another
//! affiliation; a kicked occupant (307) stays a member and may join again.
//!
//! What it does not do: voice (rooms are unmoderated: other role changes are
//! `feature-not-implemented`), reasons or notifications to users outside the room.
//!
//! Invariants: a request is checked whole (permissions, the last owner kept, the member cap)
//! before anything changes; each change is written to the store before it takes effect in
//! memory; an occupant whose affiliation changes gets its new role and its presence is
//! broadcast, or, in a members-only room losing its membership, it is removed (status 321).

use std::collections::{BTreeMap, BTreeSet};

use rookery_proto::element::Element;
use rookery_proto::Jid;

use super::occupants::{announce, announce_departure};
use super::persist;
use super::room::{Affiliation, Role, Room, MAX_OUTCASTS};
use super::stanzas::{push_attr, status, MucError, Refusal, MUC_ADMIN_NS};
use super::Ctx;
use crate::effects::StanzaType;

/// An iq `muc#admin` query to a room.
pub(crate) fn on_admin(room: &mut Room, ctx: &mut Ctx<'_, '_>, query: &Element<'_>) {
    let items: Vec<&Element<'_>> = query
        .children()
        .filter(|c| c.local_name() == "item" && c.ns() == Some(MUC_ADMIN_NS))
        .collect();
    let result = match ctx.ty {
        StanzaType::Get => list(room, ctx, &items),
        StanzaType::Set => change(room, ctx, &items),
        _ => Ok(()),
    };
    if let Err(refusal) = result {
        ctx.refuse(refusal);
    }
}

fn forbidden() -> Refusal {
    let text = "Only an owner or an admin of the group may do that";
    Refusal::with_text(MucError::Forbidden, text)
}

fn roles_unsupported() -> Refusal {
    let text = "Groups are unmoderated: the only role change is a kick (role 'none')";
    Refusal::with_text(MucError::FeatureNotImplemented, text)
}

/// The users with one affiliation.
fn list(room: &Room, ctx: &mut Ctx<'_, '_>, items: &[&Element<'_>]) -> Result<(), Refusal> {
    let requester = room.affiliation(ctx.from.bare_str());
    if !matches!(requester, Affiliation::Owner | Affiliation::Admin) {
        return Err(forbidden());
    }
    let [item] = items else {
        return Err(MucError::BadRequest.into());
    };
    if item.attr("affiliation").is_none() {
        if let Some(role) = item.attr("role") {
            let role = Role::parse(role).ok_or(MucError::BadRequest)?;
            return list_role(room, ctx, role);
        }
    }
    let wanted = match item.attr("affiliation") {
        Some("outcast") => {
            list_outcasts(room, ctx);
            return Ok(());
        }
        Some(value) => match Affiliation::parse(value) {
            Some(Affiliation::None) | None => return Err(MucError::BadRequest.into()),
            known => known,
        },
        None => return Err(MucError::BadRequest.into()),
    };
    let nicks: BTreeMap<&str, &str> = room
        .occupants
        .values()
        .map(|o| (o.bare.as_str(), o.nick()))
        .collect();
    let mut out = Vec::with_capacity(64 + room.member_count() * 64);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/muc#admin'>");
    let listed = room
        .affiliations
        .values()
        .filter(|a| Some(a.affiliation) == wanted);
    for affiliated in listed {
        out.extend_from_slice(b"<item");
        push_attr(&mut out, "affiliation", affiliated.affiliation.as_str());
        push_attr(&mut out, "jid", affiliated.jid.as_str());
        if let Some(nick) = nicks.get(affiliated.jid.as_str()) {
            push_attr(&mut out, "nick", nick);
            push_attr(&mut out, "role", affiliated.affiliation.role().as_str());
        }
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"</query>");
    ctx.result(&out);
    Ok(())
}

/// The banned users.
fn list_outcasts(room: &Room, ctx: &mut Ctx<'_, '_>) {
    let mut out = Vec::with_capacity(64 + room.outcasts.len() * 64);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/muc#admin'>");
    for jid in room.outcasts.values() {
        out.extend_from_slice(b"<item affiliation='outcast'");
        push_attr(&mut out, "jid", jid.as_str());
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"</query>");
    ctx.result(&out);
}

/// The occupants with one role.
fn list_role(room: &Room, ctx: &mut Ctx<'_, '_>, role: Role) -> Result<(), Refusal> {
    let mut out = Vec::with_capacity(64 + room.occupants.len() * 64);
    out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/muc#admin'>");
    for occupant in room.occupants.values().filter(|o| o.role == role) {
        out.extend_from_slice(b"<item");
        push_attr(
            &mut out,
            "affiliation",
            room.affiliation(occupant.bare.as_str()).as_str(),
        );
        push_attr(&mut out, "jid", occupant.bare.as_str());
        push_attr(&mut out, "nick", occupant.nick());
        push_attr(&mut out, "role", role.as_str());
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"</query>");
    ctx.result(&out);
    Ok(())
}

/// Kicks (XEP-0045 8.2): every item names an occupant by nick with role `none`; the
/// requester is a moderator occupant and no target is an admin or owner. All or nothing.
fn change_roles(
    room: &mut Room,
    ctx: &mut Ctx<'_, '_>,
    items: &[&Element<'_>],
) -> Result<(), Refusal> {
    let moderator = room
        .nick_of_session(ctx.from.as_str())
        .and_then(|nick| room.occupants.get(nick))
        .is_some_and(|o| o.role == Role::Moderator);
    if !moderator {
        let text = "Only a moderator in the group may change roles";
        return Err(Refusal::with_text(MucError::Forbidden, text));
    }
    let mut kicked: Vec<Box<str>> = Vec::with_capacity(items.len());
    for item in items {
        if item.attr("affiliation").is_some() {
            return Err(MucError::BadRequest.into());
        }
        match item.attr("role") {
            Some("none") => {}
            Some(other) if Role::parse(other).is_some() => return Err(roles_unsupported()),
            _ => return Err(MucError::BadRequest.into()),
        }
        let nick = item.attr("nick").ok_or(MucError::BadRequest)?;
        let Some(target) = room.occupants.get(nick) else {
            return Err(MucError::ItemNotFound.into());
        };
        if matches!(
            room.affiliation(target.bare.as_str()),
            Affiliation::Owner | Affiliation::Admin
        ) {
            let text = "An admin or owner of the group cannot be kicked";
            return Err(Refusal::with_text(MucError::NotAllowed, text));
        }
        if !kicked.iter().any(|k| **k == *nick) {
            kicked.push(nick.into());
        }
    }
    for nick in &kicked {
        if let Some(occupant) = room.remove_occupant(nick) {
            let own = occupant.sessions.clone();
            announce_departure(room, ctx, &occupant, &own, &[status::KICKED]);
        }
    }
    ctx.result(b"");
    Ok(())
}

/// One requested change: the user's bare JID, its current and its new affiliation.
struct Change {
    user: Jid,
    current: Affiliation,
    new: Affiliation,
}

/// Affiliation changes, all or nothing.
fn change(room: &mut Room, ctx: &mut Ctx<'_, '_>, items: &[&Element<'_>]) -> Result<(), Refusal> {
    if items.is_empty() {
        return Err(MucError::BadRequest.into());
    }
    if items
        .iter()
        .all(|i| i.attr("role").is_some() && i.attr("affiliation").is_none())
    {
        return change_roles(room, ctx, items);
    }
    let requester = room.affiliation(ctx.from.bare_str());
    let mut changes: Vec<Change> = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for item in items {
        let change = requested(room, item, &ctx.config.local_domain)?;
        if !seen.insert(change.user.as_str().to_owned()) {
            return Err(MucError::BadRequest.into());
        }
        let own = change.user.as_str() == ctx.from.bare_str();
        if !allowed(requester, own, change.current, change.new) {
            return Err(forbidden());
        }
        changes.push(change);
    }
    check_totals(room, &changes, ctx.config.max_members)?;
    for change in &changes {
        persist::save_affiliation(ctx.store, &room.jid, &change.user, change.new)
            .map_err(|_| Refusal::from(MucError::ResourceConstraint))?;
        room.set_affiliation(&change.user, change.new);
        let (was, is) = (change.current, change.new);
        if (was == Affiliation::Owner) != (is == Affiliation::Owner) {
            ctx.count_owner(change.user.as_str(), is == Affiliation::Owner);
        }
    }
    ctx.result(b"");
    for change in &changes {
        occupant_follows(room, ctx, change);
    }
    Ok(())
}

/// Parses one `<item affiliation='..' jid='..'/>` (or `nick='..'` naming an occupant).
fn requested(room: &Room, item: &Element<'_>, local_domain: &str) -> Result<Change, Refusal> {
    let new = match item.attr("affiliation") {
        Some(value) => Affiliation::parse(value).ok_or(MucError::BadRequest)?,
        None => return Err(MucError::BadRequest.into()),
    };
    let user = match (item.attr("jid"), item.attr("nick")) {
        (Some(jid), _) => Jid::parse(jid).map_err(|_| MucError::JidMalformed)?,
        (None, Some(nick)) => match room.occupants.get(nick) {
            Some(occupant) => occupant.bare.clone(),
            None => return Err(MucError::ItemNotFound.into()),
        },
        (None, None) => return Err(MucError::BadRequest.into()),
    };
    let user = user.to_bare();
    if user.local().is_none() {
        return Err(MucError::JidMalformed.into());
    }
    if user.domain() != local_domain && new.is_member() {
        // A member gets every message stored for it: only users who can log in here.
        let text = format!("Only users of {local_domain} can belong to a group (no federation)");
        return Err(Refusal::with_text(MucError::NotAllowed, text));
    }
    let current = room.affiliation(user.as_str());
    Ok(Change { user, current, new })
}

/// Whether a requester with `requester` affiliation may make this change.
pub(crate) fn allowed(
    requester: Affiliation,
    own: bool,
    current: Affiliation,
    new: Affiliation,
) -> bool {
    let plain = |a| {
        matches!(
            a,
            Affiliation::None | Affiliation::Member | Affiliation::Outcast
        )
    };
    match requester {
        Affiliation::Owner => true,
        _ if own && new == Affiliation::None => true,
        Affiliation::Admin => plain(current) && plain(new),
        Affiliation::Member | Affiliation::None | Affiliation::Outcast => false,
    }
}

/// The room keeps an owner, and grows past the member cap only if it does not grow.
fn check_totals(room: &Room, changes: &[Change], max_members: usize) -> Result<(), Refusal> {
    let (mut members, mut owners) = (room.member_count(), room.owner_count());
    let mut outcasts = room.outcasts.len();
    for change in changes {
        let (was, is) = (change.current, change.new);
        members += usize::from(!was.is_member() && is.is_member());
        members -= usize::from(was.is_member() && !is.is_member());
        outcasts += usize::from(was != Affiliation::Outcast && is == Affiliation::Outcast);
        outcasts -= usize::from(was == Affiliation::Outcast && is != Affiliation::Outcast);
        owners += usize::from(was != Affiliation::Owner && is == Affiliation::Owner);
        owners -= usize::from(was == Affiliation::Owner && is != Affiliation::Owner);
    }
    if owners == 0 && room.owner_count() > 0 {
        let text = "A group needs an owner: make someone else owner first";
        return Err(Refusal::with_text(MucError::Conflict, text));
    }
    if outcasts > MAX_OUTCASTS && outcasts > room.outcasts.len() {
        let text = format!("This group has the maximum of {MAX_OUTCASTS} banned users");
        return Err(Refusal::with_text(MucError::NotAllowed, text));
    }
    if members > max_members && members > room.member_count() {
        let text = format!("This group is full: it has the maximum of {max_members} members");
        return Err(Refusal::with_text(MucError::NotAllowed, text));
    }
    Ok(())
}

/// An occupant whose affiliation changed: new role and presence, or removal (321) from a
/// members-only room it no longer belongs to.
fn occupant_follows(room: &mut Room, ctx: &mut Ctx<'_, '_>, change: &Change) {
    let Some(nick) = room
        .occupant_of_user(change.user.as_str())
        .map(|o| Box::<str>::from(o.nick()))
    else {
        return;
    };
    let removal = match change.new {
        Affiliation::Outcast => Some(status::BANNED),
        Affiliation::None if room.config.members_only => Some(status::AFFILIATION_CHANGE),
        _ => None,
    };
    if let Some(code) = removal {
        if let Some(occupant) = room.remove_occupant(&nick) {
            let own = occupant.sessions.clone();
            let statuses = [code];
            announce_departure(room, ctx, &occupant, &own, &statuses);
        }
        return;
    }
    if let Some(occupant) = room.occupants.get_mut(&nick) {
        occupant.role = change.new.role();
    }
    announce(room, ctx, &nick);
}
