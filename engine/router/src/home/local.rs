//! Stanzas of a bound session: the entry point that classifies them, and the answers the
//! server gives itself (iq ping, disco, roster, session; presence without `to`; messages to the
//! domain).
//!
//! What it does not do: route to other users (see `routing`), rosters (see `roster_iq`),
//! presence broadcast and subscriptions (see `presence`), or groups (see `groups`).
//!
//! Invariants: every iq get/set addressed to the server gets exactly one answer (a result or
//! `service-unavailable`), RFC 6120 8.2.3; results and errors addressed to it are ignored.

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::errors::StreamError;
use crate::home::blocking;
use crate::home::carbons::{carbons_request, Direction};
use crate::home::csi::CSI_NS;
use crate::home::mam::iq as mam;
use crate::home::presence::subscription::is_subscription;
use crate::home::push::{self, parse_request, PushRefusal, PUSH_NS};
use crate::home::routing::{kind_name, target, wants_error, Handled, Target};
use crate::home::sm::elements::SM_NS;
use crate::home::Home;
use crate::mail::AckRef;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::Next;

const DISCO_INFO_RESULT: &[u8] = b"<query xmlns='http://jabber.org/protocol/disco#info'>\
<identity category='server' type='im' name='Rookery'/>\
<feature var='http://jabber.org/protocol/disco#info'/>\
<feature var='http://jabber.org/protocol/disco#items'/>\
<feature var='urn:xmpp:ping'/>\
<feature var='urn:xmpp:blocking'/>\
<feature var='jabber:iq:roster'/>\
<feature var='urn:xmpp:carbons:2'/>\
<feature var='vcard-temp'/>\
<feature var='jabber:iq:private'/>\
<feature var='jabber:iq:last'/></query>";

/// Largest presence without `to` (as the client sent it), available or unavailable, that is
/// broadcast (and, available, kept); a larger one is refused with `not-acceptable` and
/// changes nothing.
pub(crate) const MAX_PRESENCE_BYTES: usize = 8 * 1024;

impl Router {
    /// An error straight back to the session in `slot` (it is on this shard by
    /// construction), about the stanza `view` it sent; `error_from` names who refuses it.
    pub(crate) fn reply_error(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        error_from: Option<&str>,
        error: StanzaError,
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let to = conn.jid.as_ref().map(Jid::as_str);
        let id = view.id();
        self.reply.clear();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: error_from,
            to,
        };
        replies::stanza_error(&mut self.reply, kind_name(view.kind()), reply, error);
        self.home.send(slot, &self.reply, fx);
    }

    /// One stanza from a bound session: answered here or routed. With XEP-0198 it gets the
    /// next inbound number, marked handled now or (a stored message) once committed.
    pub(crate) fn on_session_stanza(
        &mut self,
        slot: u32,
        bytes: &[u8],
        fx: &mut impl Effects,
    ) -> Next {
        let Ok(view) = StanzaView::parse(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        let kind = view.kind();
        if kind == StanzaKind::Other && view.xmlns() == Some(SM_NS) {
            return self.on_sm_element(slot, bytes, fx);
        }
        if kind == StanzaKind::Other && view.xmlns() == Some(CSI_NS) {
            return self.on_client_state(slot, &view, fx);
        }
        if kind == StanzaKind::Other || view.xmlns().is_some_and(|x| x != ns::CLIENT) {
            self.stream_error(slot, StreamError::UnsupportedStanzaType, fx);
            return Next::Stop;
        }
        self.home.stats.stanzas_in += 1;
        if kind == StanzaKind::Presence && !self.presence_allowed(slot) {
            self.home.stats.presence_floods += 1;
            self.stream_error(slot, StreamError::PolicyViolation, fx);
            return Next::Stop;
        }
        let ack = self.sm_receive(slot);
        let handled = self.dispatch(slot, &view, ack, fx);
        if let (Handled::Now, Some(ack)) = (handled, ack) {
            self.home.sm.mark_handled(ack.session, ack.stanza, fx);
        }
        Next::Continue
    }

    fn dispatch(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let kind = view.kind();
        let ty = StanzaType::classify(kind, view.stanza_type().as_deref());
        let to = view.to();
        let Some(from) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return Handled::Now;
        };
        let upload = self.home.upload.as_ref().map(|u| &u.service);
        let domains = (&self.home.domain, self.home.rooms.service(), upload);
        let component = to.as_deref().and_then(|to| self.home.components.target(to));
        let target = component.unwrap_or_else(|| target(to.as_deref(), kind, from, domains));
        if let Target::Room(room) = target {
            return self.session_to_room(slot, &room, view, ack, fx);
        }
        match target {
            _ if kind == StanzaKind::Iq && ty == StanzaType::Invalid => {
                self.reply_error(slot, view, to.as_deref(), StanzaError::BadRequest, fx);
            }
            Target::User(to) if blocking::blocks(&self.home.store, from.bare_str(), &to) => {
                self.refuse_blocked(slot, view, ty, fx);
            }
            Target::User(to) if kind == StanzaKind::Presence && is_subscription(ty) => {
                self.outbound_subscription(slot, &to, ty, fx);
            }
            Target::User(to) => {
                let Some(from) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                    return Handled::Now;
                };
                let (stamp, conns) = (&mut self.stamp, &self.conns);
                let handled = self.home.outbound(conns, (from, &to), view, ack, stamp, fx);
                if to.bare_str() != from.bare_str() {
                    let sent = (Direction::Sent, ty, &self.stamp[..]);
                    self.home
                        .carbon_copies(conns, from, sent, |o, _| o == slot, fx);
                }
                return handled;
            }
            Target::Server { account } => self.on_server_stanza(slot, view, ty, account, fx),
            Target::Upload(to) => self.session_to_upload(slot, &to, view, ty, fx),
            Target::Remote if wants_error(kind, ty) => {
                let error = StanzaError::RemoteServerNotFound;
                self.reply_error(slot, view, to.as_deref(), error, fx);
            }
            Target::Malformed if wants_error(kind, ty) => {
                self.reply_error(slot, view, None, StanzaError::JidMalformed, fx);
            }
            Target::Remote | Target::Malformed | Target::Room(_) => {}
        }
        Handled::Now
    }

    fn on_server_stanza(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        account: bool,
        fx: &mut impl Effects,
    ) {
        match view.kind() {
            StanzaKind::Presence if view.to().is_none() => self.set_presence(slot, view, ty, fx),
            StanzaKind::Iq => self.answer_iq(slot, view, ty, account, fx),
            StanzaKind::Message if wants_error(StanzaKind::Message, ty) => {
                self.service_unavailable(slot, view, fx);
            }
            // Presence to the domain, and messages that get no error: nothing to do yet.
            _ => {}
        }
    }

    /// The server offers nothing for this stanza: service-unavailable back to its sender,
    /// from the address it was sent to.
    fn service_unavailable(&mut self, slot: u32, view: &StanzaView<'_>, fx: &mut impl Effects) {
        let to = view.to();
        self.reply_error(
            slot,
            view,
            to.as_deref(),
            StanzaError::ServiceUnavailable,
            fx,
        );
    }

    /// Answers an iq get/set addressed to the server (`account`: to the sender's bare JID).
    fn answer_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        account: bool,
        fx: &mut impl Effects,
    ) {
        if !ty.is_request() {
            return;
        }
        if view.has_child("query", ns::ROSTER) {
            self.roster_iq(slot, view, ty, fx);
            return;
        }
        if blocking::is_blocking_request(view) {
            self.blocking_iq(slot, view, ty, fx);
            return;
        }
        if view.has_child("query", ns::REGISTER) {
            self.register_iq(slot, view, ty, fx);
            return;
        }
        if self.mam_iq(slot, view, ty, fx) {
            return;
        }
        if ty == StanzaType::Set && view.children().any(|c| c.xmlns == Some(PUSH_NS)) {
            return self.push_iq(slot, view, fx);
        }
        if let Some(enable) = carbons_request(view) {
            return self.carbons_iq(slot, view, ty, enable, fx);
        }
        // The account's own answers, its disco#info included (see `account`).
        if self.own_account_iq(slot, view, ty, account, fx) {
            return;
        }
        let Some(payload) = server_answer(view, ty, account, &self.home.disco_items) else {
            return self.service_unavailable(slot, view, fx);
        };
        // Taken so the reply can be built with `&mut self`; a short copy of a constant.
        let payload = payload.to_vec();
        self.answer_result(slot, view, &payload, fx);
    }

    /// XEP-0357 `<enable/>` / `<disable/>` from the session in `slot`, for its account.
    fn push_iq(&mut self, slot: u32, view: &StanzaView<'_>, fx: &mut impl Effects) {
        let Some(owner) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return;
        };
        let owner = owner.bare_str().to_owned();
        let outcome = parse_request(view).and_then(|r| self.home.push_request(&owner, r));
        match outcome {
            Ok(()) => self.answer_result(slot, view, b"", fx),
            Err(PushRefusal::BadRequest) => {
                self.reply_error(slot, view, None, StanzaError::BadRequest, fx)
            }
            Err(PushRefusal::TooMany) => {
                self.reply_error(slot, view, None, StanzaError::ResourceConstraint, fx)
            }
        }
    }

    /// An iq result with `payload` to the session in `slot`, for its request `view`.
    pub(crate) fn answer_result(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        payload: &[u8],
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let (id, to) = (view.id(), view.to());
        let reply = ReplyTo {
            id: id.as_deref(),
            from: to.as_deref(),
            to: conn.jid.as_ref().map(|j| j.as_str()),
        };
        self.reply.clear();
        replies::iq_result(&mut self.reply, reply, payload);
        self.home.send(slot, &self.reply, fx);
    }

    /// XEP-0280 `<enable/>`/`<disable/>` (a set; a get is a bad request): the session's flag.
    fn carbons_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        enable: bool,
        fx: &mut impl Effects,
    ) {
        if ty != StanzaType::Set {
            let to = view.to();
            return self.reply_error(slot, view, to.as_deref(), StanzaError::BadRequest, fx);
        }
        if let Some(session) = self.home.sessions.get_mut(slot) {
            session.carbons = enable;
        }
        self.empty_result(slot, view, fx);
    }

    /// XEP-0352 `<inactive/>`/`<active/>` of a bound session: no answer, not counted by
    /// XEP-0198; anything else in the namespace is an unsupported element.
    fn on_client_state(&mut self, slot: u32, view: &StanzaView<'_>, fx: &mut impl Effects) -> Next {
        match view.local_name() {
            "inactive" => self.home.set_client_state(slot, true, fx),
            "active" => self.home.set_client_state(slot, false, fx),
            _ => {
                self.stream_error(slot, StreamError::UnsupportedStanzaType, fx);
                return Next::Stop;
            }
        }
        Next::Continue
    }

    /// The empty result of the iq `view` the session in `slot` sent to the server.
    fn empty_result(&mut self, slot: u32, view: &StanzaView<'_>, fx: &mut impl Effects) {
        self.answer_result(slot, view, b"", fx);
    }

    /// Initial/updated presence (RFC 6121 4.2, 4.4) or unavailable presence (4.5) of a session,
    /// broadcast to its contacts (see `presence`). Becoming available with a non-negative
    /// priority flushes the offline queue to it (XEP-0160 3).
    fn set_presence(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let broadcast = matches!(ty, StanzaType::Available | StanzaType::Unavailable);
        if broadcast && view.bytes().len() > MAX_PRESENCE_BYTES {
            // Copied to every contact (and an available one kept for probes): a bounded size,
            // or one session could hold 64 KiB per contact in flight.
            self.reply_error(slot, view, None, StanzaError::NotAcceptable, fx);
            return;
        }
        let Some(conn) = self.home.sessions.get_mut(slot) else {
            return;
        };
        match ty {
            StanzaType::Available => {
                let was_available = conn.available;
                let reachable_before = conn.reachable();
                conn.available = true;
                conn.priority = priority(view);
                let reachable = conn.priority >= 0;
                self.broadcast_own_presence(slot, view, ty, was_available, fx);
                if !reachable_before && reachable {
                    self.home.flush(&self.conns, slot, fx);
                }
            }
            StanzaType::Unavailable => {
                let was_available = conn.available;
                conn.available = false;
                self.broadcast_own_presence(slot, view, ty, was_available, fx);
            }
            _ => {}
        }
    }
}

impl Home {
    /// The account features of modules outside `account` (each module's list in one const),
    /// for the account's disco#info (XEP-0030 on the bare JID; see `account::pubsub`).
    pub(crate) fn other_account_features(&self, out: &mut Vec<u8>) {
        if self.mam.is_some() {
            out.extend_from_slice(mam::ACCOUNT_FEATURES);
        }
        out.extend_from_slice(push::ACCOUNT_FEATURES);
    }
}

/// The payload of the server's result for a known request, or None (service-unavailable);
/// `items` is the domain's disco#items (its services).
fn server_answer<'a>(
    view: &StanzaView<'_>,
    ty: StanzaType,
    account: bool,
    items: &'a [u8],
) -> Option<&'a [u8]> {
    let get = ty == StanzaType::Get;
    if get && view.has_child("ping", ns::PING) {
        return Some(b"");
    }
    if get && !account && view.has_child("query", ns::DISCO_INFO) {
        return Some(DISCO_INFO_RESULT);
    }
    if get && !account && view.has_child("query", ns::DISCO_ITEMS) {
        return Some(items);
    }
    if ty == StanzaType::Set && view.has_child("session", ns::SESSION) {
        return Some(b"");
    }
    None
}

/// The `<priority/>` of a presence (RFC 6121 4.7.2.3): -128..=127, default 0.
fn priority(view: &StanzaView<'_>) -> i8 {
    let Some(child) = view.children().find(|c| c.name == "priority") else {
        return 0;
    };
    let Ok(element) = Element::parse(child.bytes) else {
        return 0;
    };
    let Ok(value) = element.text().trim().parse::<i64>() else {
        return 0;
    };
    // Lossless: clamped into i8's range first.
    value.clamp(i64::from(i8::MIN), i64::from(i8::MAX)) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bytes: &[u8]) -> StanzaView<'_> {
        StanzaView::parse(bytes).expect("valid test stanza")
    }

    #[test]
    fn priority_is_parsed_and_clamped() {
        assert_eq!(priority(&view(b"<presence/>")), 0);
        assert_eq!(
            priority(&view(b"<presence><priority>5</priority></presence>")),
            5
        );
        assert_eq!(
            priority(&view(b"<presence><priority> -3 </priority></presence>")),
            -3
        );
        assert_eq!(
            priority(&view(b"<presence><priority>900</priority></presence>")),
            127
        );
        assert_eq!(
            priority(&view(b"<presence><priority>-900</priority></presence>")),
            -128
        );
        assert_eq!(
            priority(&view(b"<presence><priority>x</priority></presence>")),
            0
        );
    }

    #[test]
    fn known_requests_have_answers() {
        let ping = view(b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert_eq!(
            server_answer(&ping, StanzaType::Get, false, b""),
            Some(&b""[..])
        );
        let disco =
            view(b"<iq type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
        assert_eq!(
            server_answer(&disco, StanzaType::Get, false, b""),
            Some(DISCO_INFO_RESULT)
        );
        assert_eq!(server_answer(&disco, StanzaType::Get, true, b""), None);
        // Rosters are answered by `roster_iq` before this table is consulted.
        let roster = view(b"<iq type='get'><query xmlns='jabber:iq:roster'/></iq>");
        assert_eq!(server_answer(&roster, StanzaType::Get, true, b""), None);
        let vcard = view(b"<iq type='get'><vCard xmlns='vcard-temp'/></iq>");
        assert_eq!(server_answer(&vcard, StanzaType::Get, false, b""), None);
    }
}
