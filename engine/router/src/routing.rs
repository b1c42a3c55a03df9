//! Routing of stanzas between users (RFC 6120 10, RFC 6121 8): where a session's stanza goes,
//! and how a stanza is delivered on the recipient's home shard (RFC 6121 8.5).
//!
//! What it does not do: answer stanzas addressed to the server (see `local`), store offline
//! messages or broadcast presence (later issues: rosters, offline store).
//!
//! Invariants:
//! - forwarded bytes are the client's bytes with only `from` stamped (the full JID of the
//!   session); everything else, XEP-0184 receipts included, passes through untouched;
//! - a stanza for a user is delivered only on the user's home shard: here when the home is
//!   this shard, else it goes out as one `Mail::Deliver`;
//! - an error stanza never causes another error (no bounce loops); bounces are routed to the
//!   sender's full JID like any stanza, so they reach senders on other shards too;
//! - the steady-state local path allocates nothing but the parsed recipient `Jid` (proto has
//!   no borrowed JID parse yet): both byte buffers are reused.

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::conn::ConnSlab;
use crate::effects::{Effects, Mail, StanzaType};
use crate::home_shard;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::sessions::Directory;
use crate::stats::RouterStats;

/// Where a session's stanza is addressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The server itself: no `to`, our domain (any resource), or, for an iq, the sender's own
    /// bare JID (`account` = true: the server answers on behalf of the account).
    Server { account: bool },
    /// A user at our domain.
    User(Jid),
    /// Another domain: no federation, so `remote-server-not-found`.
    Remote,
    /// `to` is not a JID.
    Malformed,
}

/// Classifies the `to` of a stanza sent by `from` (RFC 6120 10.3, 10.5; RFC 6121 8.1).
pub(crate) fn target(to: Option<&str>, kind: StanzaKind, from: &Jid, domain: &Jid) -> Target {
    let Some(to) = to else {
        return Target::Server { account: false };
    };
    let Ok(to) = Jid::parse(to) else {
        return Target::Malformed;
    };
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

/// The parts of the router that routing reads or counts; borrowed apart from the conn slab so
/// a sender's JID (which lives in the slab) can be used while delivering.
pub(crate) struct Routes<'a> {
    pub conns: &'a ConnSlab,
    pub directory: &'a Directory,
    pub stats: &'a mut RouterStats,
    pub reply: &'a mut Vec<u8>,
    pub shard: u16,
    pub shards: u16,
}

impl Router {
    /// Routing access plus the stamping buffer.
    pub(crate) fn routes(&mut self) -> (Routes<'_>, &mut Vec<u8>) {
        let routes = Routes {
            conns: &self.conns,
            directory: &self.directory,
            stats: &mut self.stats,
            reply: &mut self.reply,
            shard: self.shard,
            shards: self.shards,
        };
        (routes, &mut self.stamp)
    }
}

impl Routes<'_> {
    /// Stamps a session's stanza with its full JID and routes it to user `to`.
    pub fn outbound(
        &mut self,
        slot: u32,
        to: &Jid,
        view: &StanzaView<'_>,
        ty: StanzaType,
        stamp: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) {
        let conns = self.conns;
        let Some(from) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return;
        };
        stamp.clear();
        view.stamp(from.as_str(), None, stamp);
        self.route(to, from, view.kind(), ty, stamp, fx);
    }

    /// Delivers here if `to` is homed on this shard, else mails its home shard.
    fn route(
        &mut self,
        to: &Jid,
        from: &Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        let home = home_shard(to, self.shards);
        if home == self.shard {
            self.deliver_home(to, from, kind, ty, stanza, fx);
            return;
        }
        let stanza = stanza.into();
        fx.mail(
            home,
            Mail::Deliver {
                to: to.clone(),
                from: from.clone(),
                kind,
                ty,
                stanza,
            },
        );
        self.stats.mail_out += 1;
    }

    /// RFC 6121 8.5 on the recipient's home shard.
    pub fn deliver_home(
        &mut self,
        to: &Jid,
        from: &Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        match kind {
            StanzaKind::Message => self.deliver_message(to, from, ty, stanza, fx),
            StanzaKind::Presence => self.deliver_presence(to, ty, stanza, fx),
            StanzaKind::Iq => self.deliver_iq(to, from, ty, stanza, fx),
            StanzaKind::Other => {}
        }
    }

    fn deliver_message(
        &mut self,
        to: &Jid,
        from: &Jid,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        if to.resource().is_some() {
            if let Some(slot) = self.session(to) {
                self.send(slot, stanza, fx);
                return;
            }
            // RFC 6121 8.5.3.2.1: only normal and chat fall back to the bare JID.
            if !matches!(ty, StanzaType::Normal | StanzaType::Chat) {
                self.bounce(to, from, StanzaKind::Message, ty, stanza, fx);
                return;
            }
        }
        // RFC 6121 8.5.2.1.1: groupchat to a bare JID is refused; errors are never delivered.
        if matches!(ty, StanzaType::Groupchat | StanzaType::Error) {
            self.bounce(to, from, StanzaKind::Message, ty, stanza, fx);
            return;
        }
        let delivered = self.send_to_available(to, stanza, |priority| priority >= 0, fx);
        if delivered == 0 {
            self.bounce(to, from, StanzaKind::Message, ty, stanza, fx);
        }
    }

    fn deliver_presence(&mut self, to: &Jid, ty: StanzaType, stanza: &[u8], fx: &mut impl Effects) {
        // Probes are the server's business (answered from rosters, a later issue).
        if matches!(ty, StanzaType::Probe | StanzaType::Invalid) {
            return;
        }
        if to.resource().is_some() {
            if let Some(slot) = self.session(to) {
                self.send(slot, stanza, fx);
            }
            return;
        }
        self.send_to_available(to, stanza, |_| true, fx);
    }

    fn deliver_iq(
        &mut self,
        to: &Jid,
        from: &Jid,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        if let Some(slot) = self.session(to) {
            self.send(slot, stanza, fx);
            return;
        }
        self.bounce(to, from, StanzaKind::Iq, ty, stanza, fx);
    }

    /// Sends to every available session of `to`'s bare JID whose priority passes; returns
    /// how many got it.
    fn send_to_available(
        &mut self,
        to: &Jid,
        stanza: &[u8],
        priority_ok: impl Fn(i8) -> bool,
        fx: &mut impl Effects,
    ) -> usize {
        let conns = self.conns;
        let mut delivered = 0;
        for &slot in self.directory.slots(to.bare_str()) {
            let Some(conn) = conns.get(slot) else {
                continue;
            };
            if conn.available && priority_ok(conn.priority) {
                fx.send(conn.key, stanza);
                delivered += 1;
            }
        }
        self.stats.stanzas_out += delivered as u64;
        delivered
    }

    /// The session bound to full JID `to` on this shard.
    fn session(&self, to: &Jid) -> Option<u32> {
        let resource = to.resource()?;
        let mut slots = self.directory.slots(to.bare_str()).iter().copied();
        slots.find(|&slot| {
            let jid = self.conns.get(slot).and_then(|c| c.jid.as_ref());
            jid.and_then(Jid::resource) == Some(resource)
        })
    }

    fn send(&mut self, slot: u32, stanza: &[u8], fx: &mut impl Effects) {
        if let Some(conn) = self.conns.get(slot) {
            fx.send(conn.key, stanza);
            self.stats.stanzas_out += 1;
        }
    }

    /// Sends `service-unavailable` back to `from`, on behalf of `to`, if the stanza warrants
    /// an error (never for errors, results, presence or headlines). The error is routed.
    fn bounce(
        &mut self,
        to: &Jid,
        from: &Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: &[u8],
        fx: &mut impl Effects,
    ) {
        if !wants_error(kind, ty) {
            return;
        }
        let id = StanzaView::parse(stanza).ok().and_then(|view| view.id());
        // Taken so the error can be routed with `&mut self`; put back to keep its capacity.
        let mut error = std::mem::take(self.reply);
        error.clear();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: Some(to.as_str()),
            to: Some(from.as_str()),
        };
        replies::stanza_error(
            &mut error,
            kind_name(kind),
            reply,
            StanzaError::ServiceUnavailable,
        );
        self.route(from, to, kind, StanzaType::Error, &error, fx);
        *self.reply = error;
    }

    /// An error straight back to the session in `slot` (it is on this shard by construction).
    pub fn reply_error(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        error_from: Option<&str>,
        error: StanzaError,
        fx: &mut impl Effects,
    ) {
        let conns = self.conns;
        let Some(conn) = conns.get(slot) else {
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
        replies::stanza_error(self.reply, kind_name(view.kind()), reply, error);
        fx.send(conn.key, self.reply);
        self.stats.stanzas_out += 1;
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
        let t = |to, kind| target(to, kind, &me, &domain);
        assert_eq!(t(None, StanzaKind::Iq), Target::Server { account: false });
        assert_eq!(
            t(Some("example.com"), StanzaKind::Message),
            Target::Server { account: false }
        );
        assert_eq!(
            t(Some("Example.COM/x"), StanzaKind::Iq),
            Target::Server { account: false }
        );
        assert_eq!(
            t(Some("alice@example.com"), StanzaKind::Iq),
            Target::Server { account: true }
        );
        assert_eq!(
            t(Some("alice@example.com"), StanzaKind::Message),
            Target::User(jid("alice@example.com"))
        );
        assert_eq!(
            t(Some("Bob@example.com/x"), StanzaKind::Iq),
            Target::User(jid("bob@example.com/x"))
        );
        assert_eq!(
            t(Some("bob@other.org"), StanzaKind::Message),
            Target::Remote
        );
        assert_eq!(
            t(Some("@example.com"), StanzaKind::Message),
            Target::Malformed
        );
    }

    #[test]
    fn errors_are_wanted_only_where_rfc_allows() {
        use StanzaType::*;
        assert!(wants_error(StanzaKind::Message, Chat));
        assert!(wants_error(StanzaKind::Message, Groupchat));
        assert!(!wants_error(StanzaKind::Message, Headline));
        assert!(!wants_error(StanzaKind::Message, Error));
        assert!(wants_error(StanzaKind::Iq, Get));
        assert!(!wants_error(StanzaKind::Iq, Result));
        assert!(!wants_error(StanzaKind::Iq, Error));
        assert!(!wants_error(StanzaKind::Presence, Available));
    }
}
