//! Resource binding (RFC 6120 7), the hand-off of a conn to its user's home shard (to bind, or
//! to resume a XEP-0198 session), and the adoption of a handed-off conn.
//!
//! What it does not do: route stanzas of a bound session (see `routing`, `local`).
//!
//! Invariants:
//! - a bind completes only on the user's home shard, so every resource of a user lives in one
//!   directory and the conflict check is local;
//! - on conflict the *old* session is closed with `<conflict/>` (RFC 6120 7.7.2.2, override),
//!   and a detached (XEP-0198) session of the same full JID ends;
//! - a handed-off conn is removed from this router before `Effects::hand_off` returns, and the
//!   bytes already received after the bind iq travel in the `Handoff`, ahead of the leftover.

use rookery_proto::element::Element;
use rookery_proto::{ns, Framer, Jid, StanzaKind, StanzaView};

use crate::effects::{ConnKey, Effects, Handoff, HomeRequest};
use crate::errors::StreamError;
use crate::home::sm::elements::SM_NS;
use crate::location::ShardId;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::conn::{Conn, Phase};
use crate::stream::Next;

/// The parts of a bind iq the router needs.
struct BindIq {
    id: String,
    resource: Option<String>,
}

impl Router {
    /// A first-level element after SASL, before a resource is bound.
    pub(crate) fn on_pre_bind(&mut self, slot: u32, bytes: &[u8], fx: &mut impl Effects) -> Next {
        let Ok(view) = StanzaView::parse(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        if view.kind() == StanzaKind::Other && view.xmlns() == Some(SM_NS) {
            return self.on_sm_element(slot, bytes, fx);
        }
        let is_bind = view.kind() == StanzaKind::Iq
            && view.stanza_type().as_deref() == Some("set")
            && view.has_child("bind", ns::BIND);
        if !is_bind {
            let condition = match view.kind() {
                StanzaKind::Other => StreamError::UnsupportedStanzaType,
                _ => StreamError::NotAuthorized,
            };
            self.stream_error(slot, condition, fx);
            return Next::Stop;
        }
        self.home.stats.stanzas_in += 1;
        let Some(request) = parse_bind(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        self.on_bind(slot, request, fx)
    }

    fn on_bind(&mut self, slot: u32, request: BindIq, fx: &mut impl Effects) -> Next {
        let Some(bare) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return Next::Stop;
        };
        if let Some(resource) = &request.resource {
            if bare.with_resource(resource).is_err() {
                self.bind_error(slot, &request.id, StanzaError::BadRequest, fx);
                return Next::Continue;
            }
        }
        let dest = self.home.placement.home(bare);
        if dest.node != self.home.location.node {
            // Redirected at the restarted stream's header already; kept for safety.
            self.redirect_if_elsewhere(slot, false, fx);
            return Next::Stop;
        }
        if dest != self.home.location {
            let resource = request.resource.map(String::into_boxed_str);
            let request = HomeRequest::Bind {
                resource,
                id: request.id.into(),
            };
            return Next::HandOff {
                dest: dest.shard,
                request,
                claimed: None,
            };
        }
        self.complete_bind(slot, request.resource.as_deref(), &request.id, fx);
        Next::Continue
    }

    /// Binds `resource` (or a generated one) to the authenticated conn in `slot`, closing any
    /// older session of the same full JID, and sends the bind result.
    fn complete_bind(
        &mut self,
        slot: u32,
        resource: Option<&str>,
        id: &str,
        fx: &mut impl Effects,
    ) {
        let Some(bare) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return;
        };
        let full = match resource {
            Some(resource) => bare.with_resource(resource).ok(),
            None => self.fresh_resource(&bare),
        };
        let Some(full) = full else {
            self.bind_error(slot, id, StanzaError::BadRequest, fx);
            return;
        };
        let old = self.find_session(&full);
        if old.is_none() && self.sessions_of(&bare) >= self.config.max_resources {
            // RFC 6120 7.6.2.1: the account has reached its limit of connected resources.
            self.home.stats.resource_refusals += 1;
            self.bind_error(slot, id, StanzaError::ResourceConstraint, fx);
            return;
        }
        if let Some(old) = old {
            self.stream_error(old, StreamError::Conflict, fx);
        }
        self.end_detached(&full, fx);
        self.reply.clear();
        replies::bind_result(&mut self.reply, id, full.as_str());
        self.enter_directory(full.bare_str(), slot);
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        self.home.sessions.open(slot, conn.key);
        fx.send(conn.key, &self.reply);
        self.home.stats.stanzas_out += 1;
        conn.jid = Some(full);
        conn.phase = Phase::Bound;
    }

    /// Lists the session in `slot` under `bare` in the directory. The directory keys by a
    /// fingerprint of `bare`; the sessions already listed under it must be `bare`'s own.
    pub(crate) fn enter_directory(&mut self, bare: &str, slot: u32) {
        let listed = self.home.directory.slots(bare);
        let foreign = listed.iter().find(|&&other| {
            let bound = self.conns.get(other).and_then(|c| c.jid.as_ref());
            bound.is_some_and(|jid| jid.bare_str() != bare)
        });
        assert!(
            foreign.is_none(),
            "two bare JIDs share a directory fingerprint (a 2^-96 event): {bare}"
        );
        self.home.directory.insert(bare, slot);
    }

    /// A server-generated resource not bound yet for `bare` (re-drawn on a clash).
    fn fresh_resource(&mut self, bare: &Jid) -> Option<Jid> {
        loop {
            let full = bare.with_resource(&self.ids.resource()).ok()?;
            if self.find_session(&full).is_none() {
                return Some(full);
            }
        }
    }

    /// The slot of the session bound to `full`, if any (on its home shard).
    pub(crate) fn find_session(&self, full: &Jid) -> Option<u32> {
        let resource = full.resource()?;
        let mut slots = self.home.directory.slots(full.bare_str()).iter().copied();
        slots.find(|&slot| {
            let bound = self.conns.get(slot).and_then(|c| c.jid.as_ref());
            bound.and_then(Jid::resource) == Some(resource)
        })
    }

    /// Sessions of `bare` on this (its home) shard: bound conns and resumable detached ones.
    fn sessions_of(&self, bare: &Jid) -> usize {
        let detached = self.home.sm.detached_of(bare.bare_str());
        let detached = detached
            .into_iter()
            .filter(|&t| self.home.sm.get(t).is_some_and(|s| s.conn().is_none()))
            .count();
        self.home.directory.slots(bare.bare_str()).len() + detached
    }

    fn bind_error(&mut self, slot: u32, id: &str, error: StanzaError, fx: &mut impl Effects) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        self.reply.clear();
        let reply = ReplyTo {
            id: Some(id),
            from: None,
            to: None,
        };
        replies::stanza_error(&mut self.reply, "iq", reply, error);
        fx.send(conn.key, &self.reply);
        self.home.stats.stanzas_out += 1;
    }

    /// Moves the conn in `slot` to shard `dest`, to complete `request` there.
    pub(crate) fn hand_off(
        &mut self,
        slot: u32,
        framer: Framer,
        (dest, request, claimed): (ShardId, HomeRequest, Option<Jid>),
        pending: &[u8],
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.remove(slot) else {
            return;
        };
        self.home.sessions.remove(slot);
        self.unauth.release(slot);
        self.sasl.forget(slot);
        self.throttle.forget(slot);
        let Some(jid) = conn.jid.or(claimed) else {
            return;
        };
        let handoff = Handoff {
            framer,
            jid,
            request,
            pending: pending.to_vec(),
            dialect: conn.dialect,
        };
        self.home.stats.handoffs_out += 1;
        fx.hand_off(conn.key, dest, handoff);
    }

    /// Continues a handed-off stream here: completes the bind, resumption or authentication, then feeds the
    /// bytes that followed the request (those the old shard had, then those the server
    /// collected).
    pub(crate) fn adopt(
        &mut self,
        key: ConnKey,
        handoff: Handoff,
        leftover: &[u8],
        now_ms: u64,
        fx: &mut impl Effects,
    ) {
        let Handoff {
            framer,
            jid,
            request,
            pending,
            dialect,
        } = handoff;
        let mut conn = Conn::new(key, framer, now_ms);
        conn.dialect = dialect;
        conn.jid = Some(jid);
        conn.phase = Phase::AwaitBind;
        conn.header_sent = true;
        let mut peer = None;
        let mut claimed = None;
        if let HomeRequest::Authenticate {
            failures,
            peer: address,
            ..
        }
        | HomeRequest::Register {
            failures,
            peer: address,
            ..
        } = &request
        {
            claimed = conn.jid.take();
            conn.phase = Phase::AwaitAuth;
            conn.auth_failures = *failures;
            peer = *address;
        }
        let slot = self.insert_conn(conn, now_ms);
        if let Some(peer) = peer {
            // Still unauthenticated, from that address: counted here now (never refused: the
            // conn was admitted where it connected).
            self.unauth.admit(slot, peer, usize::MAX);
        }
        match request {
            HomeRequest::Authenticate {
                mechanism, first, ..
            } => {
                if let Next::Restart = self.authenticate_here(slot, mechanism, &first, fx) {
                    if let Some(framer) = self.conns.get_mut(slot).and_then(|c| c.framer.as_mut()) {
                        framer.reset();
                    }
                }
            }
            HomeRequest::Register {
                id, credentials, ..
            } => {
                if let Some(user) = claimed {
                    self.register_here(slot, (&id, &user, &credentials), fx);
                }
            }
            HomeRequest::Bind { resource, id } => {
                self.complete_bind(slot, resource.as_deref(), &id, fx)
            }
            HomeRequest::Component => self.attach_component(slot, fx),
            HomeRequest::Resume { previd, h } => {
                // A pause is recorded on the conn: the feeds below then hold the bytes.
                let _ = self.complete_resume(slot, &previd, h, fx);
            }
        }
        for bytes in [pending.as_slice(), leftover] {
            let alive = self
                .conns
                .get(slot)
                .is_some_and(|c| c.phase != Phase::Closing);
            if alive && !bytes.is_empty() {
                self.feed(slot, bytes, fx);
            }
        }
    }
}

/// Reads the id and the requested resource of a bind iq (an empty resource means none).
fn parse_bind(bytes: &[u8]) -> Option<BindIq> {
    let iq = Element::parse(bytes).ok()?;
    let bind = iq.child("bind", ns::BIND)?;
    let resource = bind
        .child("resource", ns::BIND)
        .map(|r| r.text())
        .filter(|r| !r.is_empty());
    let id = iq.attr("id").unwrap_or_default().to_owned();
    Some(BindIq { id, resource })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_iq_fields_are_read() {
        let iq = b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <resource>phone</resource></bind></iq>";
        let parsed = parse_bind(iq).expect("a bind iq");
        assert_eq!(parsed.id, "b1");
        assert_eq!(parsed.resource.as_deref(), Some("phone"));
    }

    #[test]
    fn an_empty_resource_means_none() {
        let iq = b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <resource/></bind></iq>";
        assert_eq!(parse_bind(iq).and_then(|b| b.resource), None);
        let iq = b"<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
        assert_eq!(parse_bind(iq).map(|b| b.id), Some("b3".to_owned()));
    }
}
