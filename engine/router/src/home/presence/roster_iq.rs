//! The roster protocol (RFC 6121 2): `jabber:iq:roster` get, set and remove from a user's own
//! sessions, and roster pushes to every session of the user.
//!
//! What it does not do: subscription state changes from presence (see `presence`), roster
//! versioning (XEP-0237 `ver` is not offered), or rosters of other users (a request to another
//! user's bare JID is routed to them like any iq).
//!
//! Invariants: every get/set gets exactly one answer; a set carries exactly one item (else
//! bad-request); a set that would add an item past `roster_max` is refused with not-allowed
//! and changes nothing; every stored change of a shown item is pushed to each of the user's
//! sessions on this shard, which is all of them (the user's home shard); a set's result is
//! written only once the store committed the change, so a client never hears "saved" for a
//! roster change a crash can lose.

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::offline::Release;
use crate::home::presence::roster::{self, RosterItem};
use crate::home::routing::Handled;
use crate::home::Home;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::conn::ConnSlab;
use crate::tables;

/// Most groups per item accepted in a roster set.
const MAX_GROUPS: usize = 64;

/// A parsed roster set: one item.
struct ItemSet {
    contact: Jid,
    remove: bool,
    name: Option<Box<str>>,
    groups: Vec<Box<str>>,
}

impl Router {
    /// The result of iq `view` (to `user`'s session in `slot`) with `payload`; a set's result
    /// promises the change is stored, so it waits for the store's commit. A result may be
    /// large (a whole roster or blocklist): it goes out past the output budget's soft mark.
    pub(crate) fn stored_result(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        user: &str,
        ty: StanzaType,
        payload: &[u8],
        fx: &mut impl Effects,
    ) {
        let (id, to) = (view.id(), view.to());
        let reply = ReplyTo {
            id: id.as_deref(),
            from: to.as_deref(),
            to: Some(user),
        };
        let mut bytes = Vec::with_capacity(64 + payload.len());
        replies::iq_result(&mut bytes, reply, payload);
        let key = self.conns.get(slot).map(|c| c.key);
        let release = key
            .filter(|_| ty == StanzaType::Set)
            .map(|key| Release::Reply {
                slot,
                key,
                bytes: bytes.as_slice().into(),
            });
        if self.home.settle(release) == Handled::Now {
            self.home.send_large(&self.conns, slot, &bytes, fx);
        }
    }

    /// A `jabber:iq:roster` request of the session in `slot` about its own roster.
    pub(crate) fn roster_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let Some(user) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let outcome = match ty {
            StanzaType::Get => Ok(self.roster_result(user.bare_str())),
            StanzaType::Set => match parse_set(view) {
                Some(set) => self.roster_set(&user, set, fx),
                None => Err(StanzaError::BadRequest),
            },
            _ => return,
        };
        match outcome {
            // A roster result can be large (10,000 items); a set's result is small.
            Ok(payload) => self.stored_result(slot, view, user.as_str(), ty, &payload, fx),
            Err(error) => {
                let to = view.to();
                self.reply_error(slot, view, to.as_deref(), error, fx);
            }
        }
    }

    /// `<query xmlns='jabber:iq:roster'>` with every shown item.
    fn roster_result(&self, owner: &str) -> Vec<u8> {
        let prefix = tables::prefix(owner);
        const OPEN: &[u8] = b"<query xmlns='jabber:iq:roster'>";
        let mut out = OPEN.to_vec();
        for (contact, item) in roster::items(&self.home.store, &prefix) {
            if item.in_roster {
                item.write_xml(contact, &mut out);
            }
        }
        if out.len() == OPEN.len() {
            return b"<query xmlns='jabber:iq:roster'/>".to_vec();
        }
        out.extend_from_slice(b"</query>");
        out
    }

    /// Adds, updates or removes one item; the result payload is empty.
    fn roster_set(
        &mut self,
        user: &Jid,
        set: ItemSet,
        fx: &mut impl Effects,
    ) -> Result<Vec<u8>, StanzaError> {
        let owner = user.bare_str();
        let contact = set.contact.bare_str();
        if contact == owner {
            return Err(StanzaError::NotAllowed);
        }
        let current = roster::get(&self.home.store, owner, contact);
        if set.remove {
            let Some(item) = current.filter(|i| i.in_roster || i.pending_in) else {
                return Err(StanzaError::ItemNotFound);
            };
            self.home
                .remove_item(&self.conns, user, &set.contact, &item, fx);
            return Ok(Vec::new());
        }
        let mut item = current.unwrap_or_default();
        if !item.in_roster && roster::shown_count(&self.home.store, owner) >= self.home.roster_max {
            return Err(StanzaError::NotAllowed);
        }
        item.in_roster = true;
        item.name = set.name;
        item.groups = set.groups;
        roster::put(&mut self.home.store, owner, contact, &item);
        self.home
            .push_roster(&self.conns, owner, contact, Some(&item), fx);
        Ok(Vec::new())
    }
}

impl Home {
    /// RFC 6121 2.5.2: cancels both subscription directions, deletes, pushes the removal.
    fn remove_item(
        &mut self,
        conns: &ConnSlab,
        user: &Jid,
        contact: &Jid,
        item: &RosterItem,
        fx: &mut impl Effects,
    ) {
        let owner = user.to_bare();
        let contact = contact.to_bare();
        if item.to || item.ask_out {
            self.route_subscription(conns, &owner, &contact, StanzaType::Unsubscribe, fx);
        }
        if item.from || item.pending_in {
            self.route_subscription(conns, &owner, &contact, StanzaType::Unsubscribed, fx);
        }
        roster::put(
            &mut self.store,
            owner.bare_str(),
            contact.bare_str(),
            &RosterItem::default(),
        );
        self.push_roster(conns, owner.bare_str(), contact.bare_str(), None, fx);
    }

    /// Sends a roster push for `contact` (`None`: removed) to every session of `owner`.
    pub fn push_roster(
        &mut self,
        conns: &ConnSlab,
        owner: &str,
        contact: &str,
        item: Option<&RosterItem>,
        fx: &mut impl Effects,
    ) {
        if self.directory.slots(owner).is_empty() {
            return;
        }
        let mut query = b"<query xmlns='jabber:iq:roster'>".to_vec();
        match item {
            Some(item) => item.write_xml(contact, &mut query),
            None => {
                query.extend_from_slice(b"<item jid='");
                rookery_proto::writer::escape_attr(contact, &mut query);
                query.extend_from_slice(b"' subscription='remove'/>");
            }
        }
        query.extend_from_slice(b"</query>");
        let mut push = Vec::with_capacity(96 + query.len());
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(owner, index) else {
                break;
            };
            let Some(full) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            self.stats.roster_pushes += 1;
            push.clear();
            push.extend_from_slice(b"<iq type='set' id='push");
            push.extend_from_slice(self.stats.roster_pushes.to_string().as_bytes());
            push.push(b'\'');
            replies::attr(&mut push, "to", full.as_str());
            push.push(b'>');
            push.extend_from_slice(&query);
            push.extend_from_slice(b"</iq>");
            self.send(slot, &push, fx);
        }
    }
}

/// The one item of a roster set, or None (bad-request): no query, not exactly one item, a
/// missing or invalid jid, too many groups, or an empty group name.
fn parse_set(view: &StanzaView<'_>) -> Option<ItemSet> {
    let iq = Element::parse(view.bytes()).ok()?;
    let query = iq.child("query", ns::ROSTER)?;
    let mut items = query.children().filter(|c| c.local_name() == "item");
    let item = items.next()?;
    if items.next().is_some() {
        return None;
    }
    let contact = Jid::parse(item.attr("jid")?).ok()?;
    let remove = item.attr("subscription") == Some("remove");
    let name = item
        .attr("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.into());
    let mut groups: Vec<Box<str>> = Vec::new();
    for group in item.children().filter(|c| c.local_name() == "group") {
        let text = group.text();
        if text.is_empty() || groups.iter().any(|g| **g == *text) {
            return None;
        }
        groups.push(text.into());
    }
    if groups.len() > MAX_GROUPS {
        return None;
    }
    Some(ItemSet {
        contact,
        remove,
        name,
        groups,
    })
}
