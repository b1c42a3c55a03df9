//! Presence (RFC 6121 3 and 4): subscription stanzas on both sides, broadcast of a session's
//! presence to the contacts subscribed to it, probes at login, and the unavailable broadcast
//! when a session's presence ends.
//!
//! What it does: on the user's home shard, outbound subscription stanzas update the user's
//! item, push it, and route the stanza (from the bare JID) to the contact; on the contact's
//! home shard, inbound ones update the contact's item, push it and deliver (or, already
//! approved, answer `subscribed` on its behalf). Available presence without `to` is
//! remembered (answers to probes; a plain `<presence/>` only as the session's availability,
//! see `table`), written to the user's other resources and fanned out to
//! every contact with a `from` subscription: one mail per destination shard; initial presence
//! also probes the contacts with a `to` subscription, brings the other resources' presence,
//! and re-delivers subscription requests not answered yet. Probes go out in chunks of
//! [`PROBE_CHUNK`] contacts, the next one only when the prober's conn has room again: the
//! answers of a 10,000-contact roster never pile up past its output cap.
//!
//! What it does not do: directed presence bookkeeping beyond rooms (presence sent to a user
//! with `to` is routed, and not withdrawn at the end), blocking, or pre-approval.
//!
//! Invariants: contacts are read from the user's roster in the shard's store at the moment of
//! the broadcast; probes are answered only for a prober the contact has approved (`from`);
//! every session whose presence was available gets exactly one unavailable broadcast when it
//! ends (explicit unavailable, stream end without resumption, or resumption timeout).

pub(crate) mod departures;
pub(crate) mod roster;
pub(crate) mod roster_iq;
pub(crate) mod subscription;
pub(crate) mod table;

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::blocking;
use crate::home::groups::fanout::{Broadcast, FanoutPlan};
use crate::home::routing::Envelope;
use crate::home::Home;
use crate::mail::{Fanout, Recipient};
use crate::replies;
use crate::router::Router;
use crate::stream::conn::ConnSlab;
use crate::tables;
use roster::RosterItem;

/// Contacts probed at once at login; the next chunk follows when the prober's conn has taken
/// the answers (its queue is below the backlog mark). Answers are at most 8 KiB per contact
/// resource (`MAX_PRESENCE_BYTES`), a few hundred bytes typically.
pub(crate) const PROBE_CHUNK: usize = 64;

/// The `type` attribute value of a presence type.
fn type_name(ty: StanzaType) -> &'static str {
    match ty {
        StanzaType::Subscribe => "subscribe",
        StanzaType::Subscribed => "subscribed",
        StanzaType::Unsubscribe => "unsubscribe",
        StanzaType::Unsubscribed => "unsubscribed",
        StanzaType::Unavailable => "unavailable",
        StanzaType::Probe => "probe",
        _ => "",
    }
}

/// `<presence type='TY' from=.. to=../>` (`to` omitted when None).
fn presence_stanza(from: &str, to: Option<&str>, ty: StanzaType, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<presence type='");
    out.extend_from_slice(type_name(ty).as_bytes());
    out.push(b'\'');
    replies::attr(out, "from", from);
    if let Some(to) = to {
        replies::attr(out, "to", to);
    }
    out.extend_from_slice(b"/>");
}

impl Router {
    /// Takes one presence stanza from the session's budget (a token bucket of
    /// `presence_burst`, refilled at `presence_rate_per_s`); false when it is empty.
    pub(crate) fn presence_allowed(&mut self, slot: u32) -> bool {
        let rate = u64::from(self.config.presence_rate_per_s.max(1));
        let burst = self.config.presence_burst.max(1);
        let now_ms = self.home.now_ms;
        let Some(conn) = self.home.sessions.get_mut(slot) else {
            return false;
        };
        let earned = now_ms.saturating_sub(conn.presence_refill_ms) * rate / 1000;
        if earned > 0 {
            // Advance by the time the earned tokens took, keeping the fraction.
            conn.presence_refill_ms += earned * 1000 / rate;
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            conn.presence_spent = conn.presence_spent.saturating_sub(earned);
        }
        if conn.presence_spent == 0 {
            conn.presence_refill_ms = now_ms;
        }
        if conn.presence_spent >= burst {
            return false;
        }
        conn.presence_spent += 1;
        true
    }

    /// A subscription stanza from the session in `slot` to `contact` (RFC 6121 3.x.2).
    pub(crate) fn outbound_subscription(
        &mut self,
        slot: u32,
        contact: &Jid,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let Some(user) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let (owner, contact) = (user.to_bare(), contact.to_bare());
        if owner == contact {
            return;
        }
        let mut item =
            roster::get(&self.home.store, owner.bare_str(), contact.bare_str()).unwrap_or_default();
        let before = item.clone();
        if ty == StanzaType::Subscribe
            && !before.in_roster
            && roster::shown_count(&self.home.store, owner.bare_str()) >= self.config.roster_max
        {
            // The roster is full: the request would add an item; nothing is sent.
            return;
        }
        let outcome = subscription::outbound(&mut item, ty);
        if outcome.changed {
            roster::put(
                &mut self.home.store,
                owner.bare_str(),
                contact.bare_str(),
                &item,
            );
            if (item.in_roster || before.in_roster) && !item.shows_same_as(&before) {
                self.home.push_roster(
                    &self.conns,
                    owner.bare_str(),
                    contact.bare_str(),
                    Some(&item),
                    fx,
                );
            }
        }
        if !outcome.route {
            return;
        }
        self.home
            .route_subscription(&self.conns, &owner, &contact, ty, fx);
        match ty {
            // RFC 6121 3.1.5: the new subscriber gets the user's current presence.
            StanzaType::Subscribed => {
                self.home
                    .send_own_presence(&self.conns, &owner, &contact, fx);
            }
            // RFC 6121 3.2.2: and the former one learns the user is gone for it.
            StanzaType::Unsubscribed => {
                self.home
                    .send_own_unavailable(&self.conns, &owner, &contact, fx)
            }
            _ => {}
        }
    }

    /// Presence without `to` from the session in `slot`: available (initial or update) or
    /// unavailable (RFC 6121 4.2, 4.4, 4.5). `was_available`: the session was available before
    /// this stanza (an available one that was not is its initial presence).
    pub(crate) fn broadcast_own_presence(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        was_available: bool,
        fx: &mut impl Effects,
    ) {
        let Some(user) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let mut stanza = Vec::with_capacity(view.bytes().len() + 48);
        view.stamp(user.as_str(), None, &mut stanza);
        if ty == StanzaType::Unavailable {
            self.end_presence(&user, Some(&stanza), was_available, fx);
            return;
        }
        // A plain `<presence/>` is not kept: `Home::last_presence` rebuilds it.
        let kept = !table::is_plain_presence(user.as_str(), &stanza);
        let last = kept.then(|| Arc::<[u8]>::from(stanza.as_slice()));
        self.home.presences.set_last(user.as_str(), last);
        self.send_to_own_resources(&user, &stanza, fx);
        self.broadcast_to_contacts(&user, StanzaType::Available, &stanza, fx);
        if !was_available {
            self.on_initial_presence(slot, &user, fx);
        }
    }

    /// The end of a session's presence: rooms are left and, if it was available
    /// (`was_available`, or a kept last presence says so), every contact and other resource
    /// hears `stanza` (the client's unavailable presence) or a generated one. Called for
    /// explicit unavailable and for sessions that are gone.
    pub(crate) fn end_presence(
        &mut self,
        user: &Jid,
        stanza: Option<&[u8]>,
        was_available: bool,
        fx: &mut impl Effects,
    ) {
        let state = self.home.presences.take(user.as_str()).unwrap_or_default();
        let mut unavailable = Vec::new();
        for occupant in &state.rooms {
            // Before the send: a room on this shard answers at once.
            let now_ms = self.home.now_ms;
            self.home.departures.left(user, occupant, now_ms);
            unavailable.clear();
            presence_stanza(
                user.as_str(),
                Some(occupant.as_str()),
                StanzaType::Unavailable,
                &mut unavailable,
            );
            let envelope = Envelope {
                to: occupant,
                from: user,
                kind: StanzaKind::Presence,
                ty: StanzaType::Unavailable,
                stanza: &unavailable,
            };
            self.send_to_room(&envelope, None, fx);
        }
        if !was_available && state.last.is_none() {
            return;
        }
        let bytes = match stanza {
            Some(bytes) => bytes.to_vec(),
            None => {
                unavailable.clear();
                presence_stanza(
                    user.as_str(),
                    None,
                    StanzaType::Unavailable,
                    &mut unavailable,
                );
                std::mem::take(&mut unavailable)
            }
        };
        self.send_to_own_resources(user, &bytes, fx);
        self.broadcast_to_contacts(user, StanzaType::Unavailable, &bytes, fx);
    }

    /// Writes `stanza` (from `user`, no `to`) to the user's other available sessions.
    fn send_to_own_resources(&mut self, user: &Jid, stanza: &[u8], fx: &mut impl Effects) {
        let Ok(view) = StanzaView::parse(stanza) else {
            return;
        };
        let mut copy = Vec::with_capacity(stanza.len() + 48);
        let conns = &self.conns;
        for index in 0.. {
            let Some(other) = self.home.directory.slot_at(user.bare_str(), index) else {
                break;
            };
            let Some(conn) = conns.get(other) else {
                continue;
            };
            let Some(full) = conn.jid.as_ref().filter(|j| *j != user) else {
                continue;
            };
            if self.home.sessions.get(other).is_some_and(|s| s.available) {
                copy.clear();
                view.stamp(user.as_str(), Some(full.as_str()), &mut copy);
                self.home.send(other, &copy, fx);
            }
        }
    }

    /// Fans `stanza` out to every contact of `user` with a `from` subscription (`ty`
    /// Available/Unavailable). Probes go out in chunks instead (`probe_contacts`).
    fn broadcast_to_contacts(
        &mut self,
        user: &Jid,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        let prefix = tables::prefix(user.bare_str());
        let contacts = roster::items(&self.home.store, &prefix)
            .filter(|(_, item)| item.from)
            .filter_map(|(contact, _)| Jid::parse(contact).ok())
            .filter(|contact| !blocking::blocks(&self.home.store, user.bare_str(), contact))
            .map(Recipient::Available);
        let plan = FanoutPlan::build(contacts, &self.home.placement);
        if plan.is_empty() {
            return;
        }
        self.home.stats.presence_broadcasts += plan.len() as u64;
        let broadcast = Broadcast {
            from: user,
            kind: StanzaKind::Presence,
            ty,
            stanza,
        };
        self.broadcast(broadcast, &plan, None, fx);
    }

    /// Initial presence: offline messages, probes, the other resources' presence, and the
    /// subscription requests still waiting for an answer.
    fn on_initial_presence(&mut self, slot: u32, user: &Jid, fx: &mut impl Effects) {
        self.probe_contacts(slot, user, None, fx);
        let conns = &self.conns;
        let mut copy = Vec::new();
        for index in 0.. {
            let Some(other) = self.home.directory.slot_at(user.bare_str(), index) else {
                break;
            };
            let Some(full) = conns.get(other).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            if full == user {
                continue;
            }
            if let Some(last) = self.home.last_presence(other, full) {
                if let Ok(view) = StanzaView::parse(&last) {
                    copy.clear();
                    view.stamp(full.as_str(), Some(user.as_str()), &mut copy);
                    self.home.send(slot, &copy, fx);
                }
            }
        }
        let prefix = tables::prefix(user.bare_str());
        let pending: Vec<String> = roster::items(&self.home.store, &prefix)
            .filter(|(_, item)| item.pending_in)
            .map(|(contact, _)| contact.to_owned())
            .collect();
        for contact in pending {
            copy.clear();
            presence_stanza(
                &contact,
                Some(user.bare_str()),
                StanzaType::Subscribe,
                &mut copy,
            );
            self.home.send(slot, &copy, fx);
        }
    }

    /// Probes the next [`PROBE_CHUNK`] contacts of `user` (the session in `slot`) with a `to`
    /// subscription, after contact key `after`; remembers where to go on when more remain
    /// (see `Router::continue_probes`).
    pub(crate) fn probe_contacts(
        &mut self,
        slot: u32,
        user: &Jid,
        after: Option<&str>,
        fx: &mut impl Effects,
    ) {
        let prefix = tables::prefix(user.bare_str());
        let after_key = after.map(|contact| format!("{prefix}{contact}"));
        let items: Box<dyn Iterator<Item = (&str, RosterItem)>> = match &after_key {
            Some(key) => Box::new(roster::items_after(&self.home.store, &prefix, key)),
            None => Box::new(roster::items(&self.home.store, &prefix)),
        };
        let mut chunk = Vec::new();
        let mut last = None;
        let mut more = false;
        for (contact, _) in items.filter(|(_, item)| item.to) {
            if chunk.len() == PROBE_CHUNK {
                more = true;
                break;
            }
            last = Some(contact);
            if let Ok(jid) = Jid::parse(contact) {
                chunk.push(Recipient::Available(jid));
            }
        }
        let resume_at: Option<Box<str>> = last.filter(|_| more).map(Into::into);
        let plan = FanoutPlan::build(chunk, &self.home.placement);
        if !plan.is_empty() {
            let mut probe = Vec::with_capacity(96);
            presence_stanza(user.as_str(), None, StanzaType::Probe, &mut probe);
            let broadcast = Broadcast {
                from: user,
                kind: StanzaKind::Presence,
                ty: StanzaType::Probe,
                stanza: &probe,
            };
            self.broadcast(broadcast, &plan, None, fx);
        }
        if let (Some(next), Some(key)) = (resume_at, self.conns.get(slot).map(|c| c.key)) {
            self.home.deliveries.probe_later(slot, key, next);
        }
    }

    /// Probes the next chunk for every session whose login probes wait and whose conn has room
    /// again (called on drains and ticks).
    pub(crate) fn continue_probes(&mut self, fx: &mut impl Effects) {
        let low = self.config.max_output_bytes / crate::home::delivery::BACKLOG_LOW_DIVISOR;
        for (slot, key, after) in self
            .home
            .deliveries
            .take_probes(|key| fx.queued_bytes(key) < low)
        {
            let user = self.conns.get(slot).filter(|c| c.key == key);
            let Some(user) = user.and_then(|c| c.jid.clone()) else {
                continue;
            };
            self.probe_contacts(slot, &user, Some(&after), fx);
        }
    }

    /// This shard's part of a probe fan-out: every probed contact that approved the prober
    /// answers with the presence of each of its available sessions.
    pub(crate) fn answer_probes(&mut self, fanout: &Fanout, fx: &mut impl Effects) {
        let prober = &fanout.from;
        for recipient in fanout.recipients.iter() {
            let contact = recipient.jid();
            let approved = roster::get(&self.home.store, contact.bare_str(), prober.bare_str())
                .is_some_and(|item| item.from)
                && !blocking::blocks(&self.home.store, contact.bare_str(), prober);
            if approved {
                let answered = self
                    .home
                    .send_own_presence(&self.conns, contact, prober, fx);
                self.home.stats.probes_answered += answered;
            }
        }
    }
}

impl Home {
    /// Routes `<presence type=ty from=owner to=contact/>` (both bare, RFC 6121 3.1.2).
    pub fn route_subscription(
        &mut self,
        conns: &ConnSlab,
        owner: &Jid,
        contact: &Jid,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let mut stanza = Vec::with_capacity(96);
        presence_stanza(owner.as_str(), Some(contact.as_str()), ty, &mut stanza);
        let envelope = Envelope {
            to: contact,
            from: owner,
            kind: StanzaKind::Presence,
            ty,
            stanza: &stanza,
        };
        self.route(conns, &envelope, None, fx);
    }

    /// The last available presence of the session in `slot`, bound to `full`, as broadcast
    /// (`from` stamped, no `to`): the kept copy, or `<presence from='full'/>` rebuilt when the
    /// session is available and its presence was plain; `None` when it is not available.
    pub(crate) fn last_presence(&self, slot: u32, full: &Jid) -> Option<Arc<[u8]>> {
        if let Some(last) = self
            .presences
            .get(full.as_str())
            .and_then(|s| s.last.clone())
        {
            return Some(last);
        }
        if !self.sessions.get(slot).is_some_and(|s| s.available) {
            return None;
        }
        let mut plain = Vec::new();
        table::plain_presence(full.as_str(), &mut plain);
        Some(Arc::from(plain))
    }

    /// Sends the last presence of each available session of `owner` to `contact`; returns
    /// how many went out.
    pub(crate) fn send_own_presence(
        &mut self,
        conns: &ConnSlab,
        owner: &Jid,
        contact: &Jid,
        fx: &mut impl Effects,
    ) -> u64 {
        let mut sent = 0;

        let mut copy = Vec::new();
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(owner.bare_str(), index) else {
                break;
            };
            let Some(full) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            let last = self.last_presence(slot, full);
            let Some(view) = last.as_deref().and_then(|b| StanzaView::parse(b).ok()) else {
                continue;
            };
            copy.clear();
            view.stamp(full.as_str(), Some(contact.as_str()), &mut copy);
            let envelope = Envelope {
                to: contact,
                from: full,
                kind: StanzaKind::Presence,
                ty: StanzaType::Available,
                stanza: &copy,
            };
            self.route(conns, &envelope, None, fx);
            sent += 1;
        }
        sent
    }

    /// Sends unavailable from each available session of `owner` to `contact`.
    pub(crate) fn send_own_unavailable(
        &mut self,
        conns: &ConnSlab,
        owner: &Jid,
        contact: &Jid,
        fx: &mut impl Effects,
    ) {
        let mut stanza = Vec::new();
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(owner.bare_str(), index) else {
                break;
            };
            if !self.sessions.get(slot).is_some_and(|s| s.available) {
                continue;
            }
            let Some(full) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            stanza.clear();
            presence_stanza(
                full.as_str(),
                Some(contact.as_str()),
                StanzaType::Unavailable,
                &mut stanza,
            );
            let envelope = Envelope {
                to: contact,
                from: full,
                kind: StanzaKind::Presence,
                ty: StanzaType::Unavailable,
                stanza: &stanza,
            };
            self.route(conns, &envelope, None, fx);
        }
    }

    /// An inbound subscription stanza on the recipient's home shard (RFC 6121 3.x.3).
    pub fn inbound_subscription(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        fx: &mut impl Effects,
    ) {
        let (owner, sender) = (envelope.to.to_bare(), envelope.from.to_bare());
        let mut item =
            roster::get(&self.store, owner.bare_str(), sender.bare_str()).unwrap_or_default();
        let before = item.clone();
        let outcome = subscription::inbound(&mut item, envelope.ty);
        if outcome.changed {
            roster::put(&mut self.store, owner.bare_str(), sender.bare_str(), &item);
            if (item.in_roster || before.in_roster) && !item.shows_same_as(&before) {
                self.push_roster(conns, owner.bare_str(), sender.bare_str(), Some(&item), fx);
            }
        }
        if outcome.auto_subscribed {
            self.route_subscription(conns, &owner, &sender, StanzaType::Subscribed, fx);
        }
        if outcome.deliver {
            let mut stanza = Vec::with_capacity(96);
            presence_stanza(
                sender.as_str(),
                Some(owner.as_str()),
                envelope.ty,
                &mut stanza,
            );
            self.send_to_available(&owner, &stanza, |_| true, fx);
        }
    }
}
