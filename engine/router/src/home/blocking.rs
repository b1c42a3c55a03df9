//! XEP-0191 Blocking Command: a user's blocklist (get, block, unblock, unblock-all), kept in
//! the store of the user's home shard, and its enforcement there: stanzas from a blocked JID
//! are not delivered, stanzas to one are refused.
//!
//! What it does: `Router::blocking_iq` answers `urn:xmpp:blocking` requests of the user's own
//! sessions and pushes each change to the sessions that asked for the list (XEP-0191 3.3,
//! 3.4: only those); blocking a contact that receives the user's presence sends it
//! unavailable presence, unblocking sends the current presence again. `blocks` says whether a
//! user's list matches a JID (XEP-0191 6, the XEP-0016 rules: a full JID item matches that
//! JID, a bare item the bare JID and its resources, `domain/resource` that JID, a domain
//! item every JID of the domain). `refuse_blocked` writes the `not-acceptable` +
//! `<blocked xmlns='urn:xmpp:blocking:errors'/>` error for a stanza the user sent to a
//! blocked JID.
//!
//! Where it is enforced (the callers): `routing` drops inbound presence and iq results from
//! a blocked JID and answers messages and iq requests with `service-unavailable`
//! (XEP-0191 3.3); `local` refuses outbound stanzas to one; `presence` leaves blocked
//! contacts out of presence broadcasts.
//!
//! In groups (`room_copy_blocked`, called for room stanzas on the recipient's home shard): an
//! occupant's presence carries its real JID (rooms are non-anonymous), so presence of a
//! blocked person is dropped and, for users with a blocklist, each occupant JID's real JID is
//! remembered (`SeenOccupants`) so its groupchat messages are dropped too. Limits: an
//! occupant whose presence the user did not receive with a blocklist in place (joined before
//! the first block, or a message stored while the user was away from the room) is not known,
//! and its messages pass.
//!
//! What it does not do: privacy lists (XEP-0016), or anything for users of another shard.
//!
//! Storage: table `tables::BLOCKLIST`, key `user-bare \0 blocked-jid`, value `[1]` (a version
//! byte); nothing in memory but one bit per session (`Session::blocklist_wanted`). A user
//! holds at most `MAX_BLOCKED` items: a block past it is refused (`resource-constraint`) and
//! changes nothing.
//!
//! Invariants: a request changes the list all or nothing; its result is written only once
//! the store committed the change; every shard with no blocklist at all pays one length check
//! per stanza (`Store::kv_len`), a user without a list one range lookup.

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaKind, StanzaView};
use rookery_store::Store;

use crate::effects::{Effects, StanzaType};
use crate::home::routing::kind_name;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::tables::{self, BLOCKLIST};

/// The protocol's namespace (XEP-0191).
pub(crate) const BLOCKING_NS: &str = "urn:xmpp:blocking";
/// The application error of a stanza sent to a blocked JID.
const BLOCKING_ERRORS_NS: &str = "urn:xmpp:blocking:errors";
/// Most items in one user's blocklist.
pub(crate) const MAX_BLOCKED: usize = 1000;
/// The stored value of an item (a version byte; nothing else is kept).
const ITEM_VALUE: &[u8] = &[1];

/// Whether `request` (an iq) carries a blocking payload.
pub(crate) fn is_blocking_request(view: &StanzaView<'_>) -> bool {
    ["blocklist", "block", "unblock"]
        .iter()
        .any(|name| view.has_child(name, BLOCKING_NS))
}

/// Whether the blocklist of `owner` (a bare JID homed on this shard) matches `other`.
pub(crate) fn blocks(store: &Store, owner: &str, other: &Jid) -> bool {
    if store.kv_len(BLOCKLIST) == 0 {
        return false;
    }
    let prefix = tables::prefix(owner);
    if store.kv_scan(BLOCKLIST, &prefix).next().is_none() {
        return false;
    }
    let domain = other.domain();
    let mut candidates: [Option<String>; 4] = [None, None, None, None];
    candidates[0] = Some(domain.to_owned());
    if let Some(resource) = other.resource() {
        candidates[1] = Some(format!("{domain}/{resource}"));
    }
    if other.local().is_some() {
        candidates[2] = Some(other.bare_str().to_owned());
        if other.resource().is_some() {
            candidates[3] = Some(other.as_str().to_owned());
        }
    }
    let mut key = String::with_capacity(prefix.len() + other.as_str().len());
    candidates.iter().flatten().any(|candidate| {
        key.clear();
        key.push_str(&prefix);
        key.push_str(candidate);
        store.kv_get(BLOCKLIST, &key).is_some()
    })
}

/// Most room occupants remembered per user with a blocklist (`SeenOccupants`); past it new
/// occupants are not remembered (their groupchat messages are not filtered).
pub(crate) const MAX_SEEN_OCCUPANTS: usize = 4096;

/// For users of this shard with a blocklist: the real JID of each room occupant
/// (`room@groups/nick`) whose presence reached them (rooms are non-anonymous: the room's
/// `<item jid=.../>`), so a groupchat message from a blocked person's occupant JID is not
/// delivered. An entry is added by an occupant's available presence and removed by its
/// unavailable one; users without a blocklist have none.
#[derive(Debug, Default)]
pub(crate) struct SeenOccupants {
    by_user: std::collections::BTreeMap<Box<str>, std::collections::BTreeMap<Box<str>, Jid>>,
}

/// The real JID in a room's occupant presence (its `muc#user` item).
fn occupant_real_jid(stanza: &[u8]) -> Option<Jid> {
    let view = StanzaView::parse(stanza).ok()?;
    let x = view
        .children()
        .find(|c| c.name == "x" && c.xmlns == Some("http://jabber.org/protocol/muc#user"))?;
    let x = Element::parse(x.bytes).ok()?;
    let item = x.children().find(|c| c.local_name() == "item")?;
    Jid::parse(item.attr("jid")?).ok()
}

/// Whether a room's stanza from occupant `from` (`room@groups/nick`) to user `to` comes
/// from someone `to` blocks: its presence (remembered, see `SeenOccupants`) or its groupchat
/// message. Only for users with a blocklist; everyone else costs one length check.
pub(crate) fn room_copy_blocked(
    store: &Store,
    seen: &mut SeenOccupants,
    (to, from): (&Jid, &Jid),
    (kind, ty): (StanzaKind, StanzaType),
    stanza: &[u8],
) -> bool {
    if store.kv_len(BLOCKLIST) == 0 || from.resource().is_none() {
        return false;
    }
    let owner = to.bare_str();
    if store
        .kv_scan(BLOCKLIST, &tables::prefix(owner))
        .next()
        .is_none()
    {
        seen.by_user.remove(owner);
        return false;
    }
    match kind {
        StanzaKind::Presence => {
            let real = occupant_real_jid(stanza);
            let user = seen.by_user.entry(owner.into()).or_default();
            match (&real, ty) {
                (Some(real), StanzaType::Available) => {
                    if user.len() < MAX_SEEN_OCCUPANTS || user.contains_key(from.as_str()) {
                        user.insert(from.as_str().into(), real.clone());
                    }
                }
                _ => {
                    user.remove(from.as_str());
                }
            }
            if user.is_empty() {
                seen.by_user.remove(owner);
            }
            real.is_some_and(|real| blocks(store, owner, &real))
        }
        StanzaKind::Message if ty == StanzaType::Groupchat => {
            let real = seen.by_user.get(owner).and_then(|u| u.get(from.as_str()));
            real.is_some_and(|real| blocks(store, owner, real))
        }
        _ => false,
    }
}

/// The blocked JIDs of `owner`, in key order.
fn items<'a>(store: &'a Store, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    store
        .kv_scan(BLOCKLIST, prefix)
        .map(move |(key, _)| tables::item(key, prefix))
}

/// `<iq type='error'>` (or message, presence) from `to` back to its sender `from`: the
/// stanza went to a JID the sender blocks (XEP-0191 3.3).
pub(crate) fn blocked_error(out: &mut Vec<u8>, kind: StanzaKind, reply: ReplyTo<'_>) {
    let name = kind_name(kind);
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" type='error'");
    if let Some(id) = reply.id {
        replies::attr(out, "id", id);
    }
    if let Some(from) = reply.from {
        replies::attr(out, "from", from);
    }
    if let Some(to) = reply.to {
        replies::attr(out, "to", to);
    }
    out.extend_from_slice(b"><error type='cancel'><not-acceptable xmlns='");
    out.extend_from_slice(ns::STANZAS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/><blocked xmlns='");
    out.extend_from_slice(BLOCKING_ERRORS_NS.as_bytes());
    out.extend_from_slice(b"'/></error></");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

/// A parsed request.
enum Request {
    Get,
    Block(Vec<Jid>),
    /// Empty: unblock everything.
    Unblock(Vec<Jid>),
}

/// The request in `view`, or the error to answer.
fn parse(view: &StanzaView<'_>, ty: StanzaType) -> Result<Request, StanzaError> {
    let iq = Element::parse(view.bytes()).map_err(|_| StanzaError::BadRequest)?;
    if ty == StanzaType::Get {
        return match iq.child("blocklist", BLOCKING_NS) {
            Some(_) => Ok(Request::Get),
            None => Err(StanzaError::BadRequest),
        };
    }
    let (payload, block) = match (
        iq.child("block", BLOCKING_NS),
        iq.child("unblock", BLOCKING_NS),
    ) {
        (Some(block), None) => (block, true),
        (None, Some(unblock)) => (unblock, false),
        _ => return Err(StanzaError::BadRequest),
    };
    let mut jids: Vec<Jid> = Vec::new();
    for item in payload.children().filter(|c| c.local_name() == "item") {
        if jids.len() >= MAX_BLOCKED {
            return Err(StanzaError::ResourceConstraint);
        }
        let jid = item.attr("jid").ok_or(StanzaError::BadRequest)?;
        let jid = Jid::parse(jid).map_err(|_| StanzaError::JidMalformed)?;
        if !jids.contains(&jid) {
            jids.push(jid);
        }
    }
    match block {
        // XEP-0191 3.3: a block without items is a bad request.
        true if jids.is_empty() => Err(StanzaError::BadRequest),
        true => Ok(Request::Block(jids)),
        false => Ok(Request::Unblock(jids)),
    }
}

impl Router {
    /// A `urn:xmpp:blocking` request of the session in `slot` about its own blocklist.
    pub(crate) fn blocking_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let Some(user) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let outcome = parse(view, ty).and_then(|request| match request {
            Request::Get => {
                if let Some(session) = self.home.sessions.get_mut(slot) {
                    session.blocklist_wanted = true;
                }
                Ok(self.blocklist(user.bare_str()))
            }
            Request::Block(jids) => self.block(&user, jids, fx).map(|()| Vec::new()),
            Request::Unblock(jids) => self.unblock(&user, jids, fx).map(|()| Vec::new()),
        });
        let payload = match outcome {
            Ok(payload) => payload,
            Err(error) => {
                let to = view.to();
                self.reply_error(slot, view, to.as_deref(), error, fx);
                return;
            }
        };
        self.stored_result(slot, view, user.as_str(), ty, &payload, fx);
    }

    /// `<blocklist>` with every item of `owner`.
    fn blocklist(&self, owner: &str) -> Vec<u8> {
        let prefix = tables::prefix(owner);
        let mut out = b"<blocklist xmlns='urn:xmpp:blocking'>".to_vec();
        for jid in items(&self.home.store, &prefix) {
            out.extend_from_slice(b"<item");
            replies::attr(&mut out, "jid", jid);
            out.extend_from_slice(b"/>");
        }
        out.extend_from_slice(b"</blocklist>");
        out
    }

    /// Adds `jids` to the list of `user`, pushes the change, and tells each newly blocked
    /// contact that receives the user's presence that the user is unavailable.
    fn block(
        &mut self,
        user: &Jid,
        jids: Vec<Jid>,
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        let owner = user.bare_str();
        let prefix = tables::prefix(owner);
        let store = &self.home.store;
        let new: Vec<Jid> = jids
            .into_iter()
            .filter(|jid| {
                store
                    .kv_get(BLOCKLIST, &tables::key(owner, jid.as_str()))
                    .is_none()
            })
            .collect();
        let held = items(store, &prefix).count();
        if held + new.len() > MAX_BLOCKED {
            return Err(StanzaError::ResourceConstraint);
        }
        for jid in &new {
            let key = tables::key(owner, jid.as_str());
            self.home
                .store
                .kv_set(BLOCKLIST, &key, ITEM_VALUE)
                .map_err(|_| StanzaError::ResourceConstraint)?;
        }
        self.push_blocklist_change(owner, "block", &new, fx);
        for contact in new.iter().filter(|j| j.local().is_some() && j.is_bare()) {
            if self.receives_presence(owner, contact) {
                self.home
                    .send_own_unavailable(&self.conns, &user.to_bare(), contact, fx);
            }
        }
        Ok(())
    }

    /// Removes `jids` (all items when empty) from the list of `user`, pushes the change, and
    /// sends the user's presence again to unblocked contacts that receive it.
    fn unblock(
        &mut self,
        user: &Jid,
        jids: Vec<Jid>,
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        let owner = user.bare_str();
        let all = jids.is_empty();
        let removed: Vec<Jid> = if all {
            let prefix = tables::prefix(owner);
            items(&self.home.store, &prefix)
                .filter_map(|jid| Jid::parse(jid).ok())
                .collect()
        } else {
            jids
        };
        let mut gone = Vec::with_capacity(removed.len());
        for jid in removed {
            let key = tables::key(owner, jid.as_str());
            if self.home.store.kv_delete(BLOCKLIST, &key) {
                gone.push(jid);
            }
        }
        // Unblock-all is pushed as it was asked (no items), XEP-0191 3.5.
        let pushed: &[Jid] = if all { &[] } else { &gone };
        self.push_blocklist_change(owner, "unblock", pushed, fx);
        for contact in gone.iter().filter(|j| j.local().is_some() && j.is_bare()) {
            if self.receives_presence(owner, contact) {
                self.home
                    .send_own_presence(&self.conns, &user.to_bare(), contact, fx);
            }
        }
        Ok(())
    }

    /// Whether `contact` has a subscription to the presence of `owner`.
    fn receives_presence(&self, owner: &str, contact: &Jid) -> bool {
        crate::home::presence::roster::get(&self.home.store, owner, contact.as_str())
            .is_some_and(|item| item.from)
    }

    /// `<iq type='set'><block|unblock>items</...></iq>` to every session of `owner` that asked
    /// for its blocklist.
    fn push_blocklist_change(
        &mut self,
        owner: &str,
        element: &str,
        jids: &[Jid],
        fx: &mut impl Effects,
    ) {
        let mut payload = Vec::with_capacity(64 + jids.len() * 48);
        payload.push(b'<');
        payload.extend_from_slice(element.as_bytes());
        payload.extend_from_slice(b" xmlns='urn:xmpp:blocking'>");
        for jid in jids {
            payload.extend_from_slice(b"<item");
            replies::attr(&mut payload, "jid", jid.as_str());
            payload.extend_from_slice(b"/>");
        }
        payload.extend_from_slice(b"</");
        payload.extend_from_slice(element.as_bytes());
        payload.push(b'>');
        let seq = self.home.store.pending_seq().to_string();
        let mut push = Vec::with_capacity(96 + payload.len());
        for index in 0.. {
            let Some(slot) = self.home.directory.slot_at(owner, index) else {
                break;
            };
            if !self
                .home
                .sessions
                .get(slot)
                .is_some_and(|s| s.blocklist_wanted)
            {
                continue;
            }
            let Some(full) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            push.clear();
            // The change's store sequence number: unique per change on this shard.
            push.extend_from_slice(b"<iq type='set' id='blockpush");
            push.extend_from_slice(seq.as_bytes());
            push.push(b'\'');
            replies::attr(&mut push, "to", full.as_str());
            push.push(b'>');
            push.extend_from_slice(&payload);
            push.extend_from_slice(b"</iq>");
            self.home.send(slot, &push, fx);
        }
    }

    /// The session in `slot` sent `view` to a JID it blocks: refused with `not-acceptable`
    /// and `<blocked/>` (XEP-0191 3.3), unless it is a stanza that never gets an error.
    pub(crate) fn refuse_blocked(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        if ty == StanzaType::Error || (view.kind() == StanzaKind::Iq && !ty.is_request()) {
            return;
        }
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let (id, to) = (view.id(), view.to());
        self.reply.clear();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: to.as_deref(),
            to: conn.jid.as_ref().map(Jid::as_str),
        };
        blocked_error(&mut self.reply, view.kind(), reply);
        self.home.send(slot, &self.reply, fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_error_names_the_condition_and_the_blocking_error() {
        let mut out = Vec::new();
        let reply = ReplyTo {
            id: Some("1"),
            from: Some("b@x"),
            to: Some("a@x/r"),
        };
        blocked_error(&mut out, StanzaKind::Message, reply);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("<message type='error' id='1' from='b@x' to='a@x/r'>"));
        assert!(text.contains("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"));
        assert!(text.contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"));
    }
}
