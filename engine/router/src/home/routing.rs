//! Routing of stanzas between users (RFC 6120 10, RFC 6121 8): where a session's stanza goes,
//! and how a stanza is delivered on the recipient's home shard (RFC 6121 8.5), including the
//! XEP-0198 accounting of everything written to a session.
//!
//! What it does not do: answer stanzas addressed to the server (see `local`), store messages
//! and flush offline queues (see `offline`, which adds to `Home`), or broadcast presence.
//!
//! Invariants:
//! - forwarded bytes are the client's bytes with only `from` stamped (the full JID of the
//!   session); everything else, XEP-0184 receipts included, passes through untouched;
//! - a stanza for a user is delivered only on the user's home shard: here when the home is
//!   this shard, else it goes out as one `Mail::Deliver`;
//! - every message of type normal or chat for a local user is stored before it is written
//!   anywhere (store-and-forward): no session available means it waits, not a bounce;
//! - every stanza written to a session with XEP-0198 goes through `Home::send` or
//!   `deliver_stored`, so the outbound count is exact;
//! - an error stanza never causes another error (no bounce loops); bounces are routed to the
//!   sender's full JID like any stanza, so they reach senders on other shards too;
//! - `route` returns `Handled::Later` only when someone will report the stanza handled:
//!   a commit waiter here, or the home shard's `Mail::Committed`;
//! - a message that is not stored, for the full JID of a detached XEP-0198 session, joins
//!   that session's unacked queue (written after `<resumed/>`) instead of being dropped.

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::deadlines::MailDeadlines;
use crate::effects::{Effects, StanzaType};
use crate::home::blocking;
use crate::home::carbons::Direction;
use crate::home::offline::is_stored_type;
use crate::home::presence::departures::RoomPresence;
use crate::home::presence::subscription;
use crate::home::sessions::Session;
use crate::home::sm::Unacked;
use crate::home::Home;
use crate::location::Location;
use crate::mail::{AckRef, Mail};
use crate::replies::{self, ReplyTo, StanzaError};
use crate::stats::RouterStats;
use crate::stream::conn::ConnSlab;

/// Where a session's stanza is addressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The server itself: no `to`, our domain (any resource), or, for an iq, the sender's own
    /// bare JID (`account` = true: the server answers on behalf of the account).
    Server { account: bool },
    /// A user at our domain.
    User(Jid),
    /// The group service, a group, or a group occupant (`groups.<domain>`).
    Room(Jid),
    /// The XEP-0363 upload service's domain (`upload.<domain>`), when configured.
    Upload(Jid),
    /// Another domain: no federation, so `remote-server-not-found`.
    Remote,
    /// `to` is not a JID.
    Malformed,
}

/// Classifies the `to` of a stanza sent by `from` (RFC 6120 10.3, 10.5; RFC 6121 8.1).
/// `upload` is the upload service's domain, if configured (else it is `Remote`).
pub(crate) fn target(
    to: Option<&str>,
    kind: StanzaKind,
    from: &Jid,
    (domain, groups, upload): (&Jid, &Jid, Option<&Jid>),
) -> Target {
    let Some(to) = to else {
        return Target::Server { account: false };
    };
    let Ok(to) = Jid::parse(to) else {
        return Target::Malformed;
    };
    if to.domain() == groups.domain() {
        return Target::Room(to);
    }
    if upload.is_some_and(|upload| to.domain() == upload.domain()) {
        return Target::Upload(to);
    }
    if to.domain() != domain.domain() {
        return Target::Remote;
    }
    if to.local().is_none() {
        return Target::Server { account: false };
    }
    if kind == StanzaKind::Iq && to.is_bare() && to.bare_str() == from.bare_str() {
        return Target::Server { account: true };
    }
    Target::User(to)
}

/// Whether a failed stanza of this kind and type gets an error back (RFC 6120 8.3.1: never for
/// an error; RFC 6121 8.5: presence failures are silent, headlines are dropped).
pub(crate) fn wants_error(kind: StanzaKind, ty: StanzaType) -> bool {
    match kind {
        StanzaKind::Message => {
            matches!(
                ty,
                StanzaType::Normal | StanzaType::Chat | StanzaType::Groupchat
            )
        }
        StanzaKind::Iq => ty.is_request() || ty == StanzaType::Invalid,
        StanzaKind::Presence | StanzaKind::Other => false,
    }
}

/// The element name of a stanza kind, for error replies.
pub(crate) fn kind_name(kind: StanzaKind) -> &'static str {
    match kind {
        StanzaKind::Message => "message",
        StanzaKind::Presence => "presence",
        StanzaKind::Iq | StanzaKind::Other => "iq",
    }
}

/// Mails `envelope` to shard `home` as one `Mail::Deliver`; with an ack, the home shard
/// reports the stanza handled (`Handled::Later`), or the deadline (see `deadlines`) does.
pub(crate) fn mail_deliver(
    home: Location,
    envelope: &Envelope<'_>,
    ack: Option<AckRef>,
    (stats, deadlines, now_ms): (&mut RouterStats, &mut MailDeadlines, u64),
    fx: &mut impl Effects,
) -> Handled {
    if let Some(ack) = ack {
        // The id only matters for an error the sender wants (and is parsed only then).
        let view = wants_error(envelope.kind, envelope.ty)
            .then(|| StanzaView::parse(envelope.stanza).ok())
            .flatten();
        let id = view.as_ref().and_then(StanzaView::id);
        let class = (envelope.kind, envelope.ty);
        let to = envelope.to.as_str();
        deadlines.watch_ack(now_ms, ack, class, to, id.as_deref());
    }
    fx.mail(
        home,
        Mail::Deliver {
            to: envelope.to.clone(),
            from: envelope.from.clone(),
            kind: envelope.kind,
            ty: envelope.ty,
            stanza: envelope.stanza.into(),
            ack,
        },
    );
    stats.mail_out += 1;
    match ack {
        Some(_) => Handled::Later,
        None => Handled::Now,
    }
}

/// Whether an inbound stanza (XEP-0198) is handled now, or once a store commits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    Now,
    Later,
}

/// A stanza on its way: addressing, classification and the bytes as they go on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Envelope<'a> {
    pub to: &'a Jid,
    pub from: &'a Jid,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    pub stanza: &'a [u8],
}

impl Home {
    /// Stamps a session's stanza with its full JID `from` and routes it to user `to`. `ack` names the
    /// stanza for XEP-0198 when the sender counts; only messages may be stored, so only they
    /// take it along.
    pub fn outbound(
        &mut self,
        conns: &ConnSlab,
        (from, to): (&Jid, &Jid),
        view: &StanzaView<'_>,
        ack: Option<AckRef>,
        stamp: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) -> Handled {
        stamp.clear();
        view.stamp(from.as_str(), None, stamp);
        let kind = view.kind();
        let ty = StanzaType::classify(kind, view.stanza_type().as_deref());
        let ack = ack.filter(|_| kind == StanzaKind::Message);
        if kind == StanzaKind::Message {
            self.archive_outgoing(from, to, ty, stamp);
        }
        let envelope = Envelope {
            to,
            from,
            kind,
            ty,
            stanza: stamp,
        };
        self.route(conns, &envelope, ack, fx)
    }

    /// Delivers here if `to` is homed on this shard, else mails its home shard.
    pub fn route(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        if let Some(name) = self.components.serving(envelope.to.domain()) {
            // Every address at a component's domain goes to the shard homing its name.
            let home = self.placement.home(name);
            if home == self.location {
                self.deliver_component(conns, envelope, fx);
                return Handled::Now;
            }
            let outgoing = (&mut self.stats, &mut self.deadlines, self.now_ms);
            return mail_deliver(home, envelope, ack, outgoing, fx);
        }
        let home = self.placement.home(envelope.to);
        if envelope.to.domain() == self.groups.domain() {
            // Only bounces get here (sessions' stanzas to rooms go through `Router::session_to_room`):
            // a room does not take errors about its own broadcasts.
            return Handled::Now;
        }
        if home == self.location {
            return self.deliver_home(conns, envelope, ack, fx);
        }
        let outgoing = (&mut self.stats, &mut self.deadlines, self.now_ms);
        mail_deliver(home, envelope, ack, outgoing, fx)
    }

    /// RFC 6121 8.5 on the recipient's home shard.
    pub fn deliver_home(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        if self.components.serving(envelope.to.domain()).is_some() {
            self.deliver_component(conns, envelope, fx);
            return Handled::Now;
        }
        if envelope.from.domain() == self.groups.domain() {
            let addressing = (envelope.to, envelope.from);
            let class = (envelope.kind, envelope.ty);
            let seen = &mut self.seen_occupants;
            if blocking::room_copy_blocked(&self.store, seen, addressing, class, envelope.stanza) {
                return Handled::Now;
            }
        }
        if blocking::blocks(&self.store, envelope.to.bare_str(), envelope.from) {
            // XEP-0191 3.3: presence and iq results dropped, messages and iq requests
            // answered service-unavailable (`bounce` knows which kinds get an error).
            if envelope.kind != StanzaKind::Presence {
                self.bounce(conns, envelope, StanzaError::ServiceUnavailable, fx);
            }
            return Handled::Now;
        }
        match envelope.kind {
            StanzaKind::Message => return self.deliver_message(conns, envelope, ack, fx),
            StanzaKind::Presence => self.deliver_presence(conns, envelope, fx),
            StanzaKind::Iq => self.deliver_iq(conns, envelope, fx),
            StanzaKind::Other => {}
        }
        Handled::Now
    }

    fn deliver_message(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let marked = self.archive_incoming(envelope);
        let marked_envelope;
        let envelope = match &marked {
            Some(stanza) => {
                marked_envelope = Envelope {
                    stanza,
                    ..*envelope
                };
                &marked_envelope
            }
            None => envelope,
        };
        let ty = envelope.ty;
        let storable = is_stored_type(ty);
        if envelope.to.resource().is_some() {
            if let Some(slot) = self.session(conns, envelope.to) {
                let before = self.undelivered();
                let handled = if storable {
                    self.store_and_deliver(conns, envelope, Some(slot), ack, fx)
                } else {
                    self.send(slot, envelope.stanza, fx);
                    Handled::Now
                };
                if self.undelivered() == before {
                    self.received_carbons(conns, envelope, |other, _| other == slot, fx);
                }
                return handled;
            }
            // A detached XEP-0198 session is still the session of that full JID: it gets the
            // message when resumed (a bounce for its client, say) instead of losing it.
            if !storable && self.queue_for_detached(envelope.to, envelope.stanza) {
                return Handled::Now;
            }
            // RFC 6121 8.5.3.2.1: only normal and chat fall back to the bare JID.
            if !storable {
                self.bounce(conns, envelope, StanzaError::ServiceUnavailable, fx);
                return Handled::Now;
            }
        }
        // RFC 6121 8.5.2.1.1: groupchat to a bare JID is refused; errors are never delivered.
        if matches!(ty, StanzaType::Groupchat | StanzaType::Error) {
            self.bounce(conns, envelope, StanzaError::ServiceUnavailable, fx);
            return Handled::Now;
        }
        if ty == StanzaType::Headline {
            // Headlines are not stored: no available resource means they are dropped.
            self.send_to_available(envelope.to, envelope.stanza, |priority| priority >= 0, fx);
            return Handled::Now;
        }
        let before = self.undelivered();
        let handled = self.store_and_deliver(conns, envelope, None, ack, fx);
        // Written to every reachable session: only the others (negative priority) get a copy.
        if self.undelivered() == before {
            self.received_carbons(conns, envelope, |_, session| session.reachable(), fx);
        }
        handled
    }

    /// Messages refused by the store or filtered as resends so far: when a delivery moved
    /// it, the message was not written now, so its carbons are not either.
    fn undelivered(&self) -> (u64, u64) {
        (self.stats.store_refusals, self.stats.duplicates_filtered)
    }

    /// XEP-0280 received copies of a message delivered to a session of `envelope.to`, for
    /// its other sessions (`skip` names those that got the original). Not for a message a
    /// user sends to one of their own resources (its sender's copy is the sent carbon).
    fn received_carbons(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        skip: impl Fn(u32, &Session) -> bool,
        fx: &mut impl Effects,
    ) {
        if envelope.from.bare_str() == envelope.to.bare_str() {
            return;
        }
        let what = (Direction::Received, envelope.ty, envelope.stanza);
        self.carbon_copies(conns, envelope.to, what, skip, fx);
    }

    fn deliver_presence(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        fx: &mut impl Effects,
    ) {
        // Subscriptions change the recipient's roster first (RFC 6121 3.x.3). Probes from
        // clients are ignored: the server probes for them (see `presence`).
        if subscription::is_subscription(envelope.ty) {
            self.inbound_subscription(conns, envelope, fx);
            return;
        }
        if matches!(envelope.ty, StanzaType::Probe | StanzaType::Invalid) {
            return;
        }
        if envelope.to.resource().is_some() {
            if self.stale_room_presence(envelope.to, envelope.from, envelope.ty) {
                return;
            }
            if let Some(slot) = self.session(conns, envelope.to) {
                self.send(slot, envelope.stanza, fx);
            }
            return;
        }
        self.send_to_available(envelope.to, envelope.stanza, |_| true, fx);
    }

    /// A room's presence to the full JID `to` sent before the answer to a leave of that
    /// session: meant for the session that left, not for a newer one (see `departures`).
    pub(crate) fn stale_room_presence(&mut self, to: &Jid, from: &Jid, ty: StanzaType) -> bool {
        if from.domain() != self.groups.domain() {
            return false;
        }
        let verdict = self.departures.judge(to, from, ty, self.now_ms);
        if verdict == RoomPresence::Stale {
            self.stats.stale_room_presence += 1;
            return true;
        }
        false
    }

    fn deliver_iq(&mut self, conns: &ConnSlab, envelope: &Envelope<'_>, fx: &mut impl Effects) {
        if self.push_answer(envelope) {
            return;
        }
        // RFC 6121 8.5.1: the server answers for the account (PEP, vCard, last activity...).
        if self.answer_for_account(conns, envelope, fx) {
            return;
        }
        if let Some(slot) = self.session(conns, envelope.to) {
            self.send(slot, envelope.stanza, fx);
            return;
        }
        self.bounce(conns, envelope, StanzaError::ServiceUnavailable, fx);
    }

    /// Sends to every available session of `to`'s bare JID whose priority passes.
    pub fn send_to_available(
        &mut self,
        to: &Jid,
        stanza: &[u8],
        priority_ok: impl Fn(i8) -> bool,
        fx: &mut impl Effects,
    ) {
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(to.bare_str(), index) else {
                break;
            };
            let Some(session) = self.sessions.get(slot) else {
                continue;
            };
            if session.available && priority_ok(session.priority) {
                self.send(slot, stanza, fx);
            }
        }
    }

    /// The session bound to full JID `to` on this shard (attached sessions only).
    pub fn session(&self, conns: &ConnSlab, to: &Jid) -> Option<u32> {
        let resource = to.resource()?;
        let mut slots = self.directory.slots(to.bare_str()).iter().copied();
        slots.find(|&slot| {
            let jid = conns.get(slot).and_then(|c| c.jid.as_ref());
            jid.and_then(Jid::resource) == Some(resource)
        })
    }

    /// Queues `stanza` for the detached (resumable) session bound to full JID `to`, to be
    /// written after `<resumed/>` with the rest of its unacked queue; false if there is no
    /// such session or its queue is full (the caller then treats `to` as offline).
    pub fn queue_for_detached(&mut self, to: &Jid, stanza: &[u8]) -> bool {
        let tokens = self.sm.detached_of(to.bare_str());
        let max = self.sm_max_unacked_bytes;
        let found = tokens.into_iter().find(|&token| {
            let session = self.sm.get(token);
            session
                .is_some_and(|s| s.detached_jid() == Some(to) && s.room_for_any(stanza.len(), max))
        });
        let Some(session) = found.and_then(|token| self.sm.get_mut(token)) else {
            return false;
        };
        // No `<r/>` pacing: nothing goes on a wire until the resumption resends the queue.
        let _ = session.push_unacked(Unacked::Bytes(stanza.into()));
        true
    }

    /// Queues `stanza` for every detached XEP-0198 session of `bare` that was available (a
    /// presence broadcast): written after `<resumed/>`, so a resumed client misses no
    /// contact's change. A full queue skips that session (it will be probed at next login).
    pub fn queue_for_detached_available(&mut self, bare: &Jid, stanza: &[u8]) {
        for token in self.sm.detached_of(bare.bare_str()) {
            let Some(session) = self.sm.get_mut(token) else {
                continue;
            };
            let room = session.room_for_any(stanza.len(), self.sm_max_unacked_bytes);
            let available = session.detached.as_ref().is_some_and(|d| d.available);
            if available && room {
                let _ = session.push_unacked(Unacked::Bytes(stanza.into()));
            }
        }
    }

    /// Writes a stanza that is not a stored message to the session in `slot`; with XEP-0198
    /// it is kept for retransmission until acknowledged, and a full queue dooms the stream.
    /// An inactive session (XEP-0352) may have it held instead (see `csi`).
    pub fn send(&mut self, slot: u32, stanza: &[u8], fx: &mut impl Effects) {
        if self.csi_hold(slot, stanza, false, fx) {
            return;
        }
        self.send_now(slot, stanza, fx);
    }

    /// `send` past the XEP-0352 gate.
    pub(crate) fn send_now(&mut self, slot: u32, stanza: &[u8], fx: &mut impl Effects) {
        let Some(conn) = self.sessions.get(slot) else {
            return;
        };
        let session = conn
            .sm()
            .and_then(|token| Some((token, self.sm.get_mut(token)?)));
        let Some((token, session)) = session else {
            fx.send(conn.key, stanza);
            self.stats.stanzas_out += 1;
            return;
        };
        if !session.room_for_any(stanza.len(), self.sm_max_unacked_bytes) {
            self.doomed.push(slot);
            return;
        }
        fx.send(conn.key, stanza);
        self.stats.stanzas_out += 1;
        let request_now = session.push_unacked(Unacked::Bytes(stanza.into()));
        if self.sm.after_send(token, request_now, self.now_ms) {
            fx.send(conn.key, replies::SM_REQUEST);
        }
    }

    /// Sends `error` back to the sender, on behalf of the recipient, if the stanza warrants
    /// an error (never for errors, results, presence or headlines). The error is routed.
    pub fn bounce(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        error: StanzaError,
        fx: &mut impl Effects,
    ) {
        if !wants_error(envelope.kind, envelope.ty) {
            return;
        }
        let id = StanzaView::parse(envelope.stanza)
            .ok()
            .and_then(|view| view.id());
        // Taken so the error can be routed with `&mut self`; put back to keep its capacity.
        let mut bytes = std::mem::take(&mut self.bounce);
        bytes.clear();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: Some(envelope.to.as_str()),
            to: Some(envelope.from.as_str()),
        };
        replies::stanza_error(&mut bytes, kind_name(envelope.kind), reply, error);
        let back = Envelope {
            to: envelope.from,
            from: envelope.to,
            kind: envelope.kind,
            ty: StanzaType::Error,
            stanza: &bytes,
        };
        self.route(conns, &back, None, fx);
        self.bounce = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).expect("valid test JID")
    }

    #[test]
    fn targets_follow_rfc6120_section_10() {
        let (me, domain) = (jid("alice@example.com/phone"), jid("example.com"));
        let groups = jid("groups.example.com");
        let upload = jid("upload.example.com");
        use StanzaKind::{Iq, Message, Presence};
        let server = || Target::Server { account: false };
        let account = Target::Server { account: true };
        let user = |s| Target::User(jid(s));
        let room = |s| Target::Room(jid(s));
        #[rustfmt::skip]
        let cases = [
            (None, Iq, server()),
            (Some("example.com"), Message, server()),
            (Some("Example.COM/x"), Iq, server()),
            (Some("alice@example.com"), Iq, account),
            (Some("alice@example.com"), Message, user("alice@example.com")),
            (Some("Bob@example.com/x"), Iq, user("bob@example.com/x")),
            (Some("bob@other.org"), Message, Target::Remote),
            (Some("Team@Groups.example.com/nick"), Presence, room("team@groups.example.com/nick")),
            (Some("groups.example.com"), Iq, room("groups.example.com")),
            (Some("@example.com"), Message, Target::Malformed),
            (Some("Upload.example.com"), Iq, Target::Upload(jid("upload.example.com"))),
        ];
        for (to, kind, want) in cases {
            assert_eq!(
                target(to, kind, &me, (&domain, &groups, Some(&upload))),
                want,
                "to={to:?} {kind:?}"
            );
        }
        // Without an upload service its domain is another server's.
        let unconfigured = target(
            Some("upload.example.com"),
            Iq,
            &me,
            (&domain, &groups, None),
        );
        assert_eq!(unconfigured, Target::Remote);
    }
}
