//! XEP-0114 external components, stream side: a conn accepted on the component listener
//! (`Router::on_component_connect`) sends a header in `jabber:component:accept` with `to`
//! a configured component name, gets ours with a fresh stream id, and authenticates with
//! `<handshake>` = lowercase hex SHA-1(stream id + secret) (XEP-0114 section 3). Success moves
//! the conn to the home shard of its name (`HomeRequest::Component`, like a bind), where it is
//! attached (`home::components`) and gets `<handshake/>`; then its stanzas are routed like a
//! session's, with the `from` it wrote, which must be at its own domain.
//!
//! What it does not do: deliver to components (see `home::components`), federation, or
//! answer a component's stanzas to the server itself (iq requests to the domain get
//! `service-unavailable`; a component talks to users and to other components). Stanzas to
//! rooms are not routed (dropped; an iq request gets `service-unavailable`).
//!
//! Errors (stream errors, then close): a header in another namespace `invalid-namespace`; an
//! unknown `to` `host-unknown`; a wrong handshake `not-authorized`; a name connected already
//! `conflict`; in a cluster, a component connected to a node that does not home its name
//! `host-unknown` with a text saying so; a stanza without `to` `improper-addressing`, with a
//! `from` outside its domain `invalid-from`.
//!
//! Invariants: a component conn never enters the user directory (`Phase::Component`, not
//! `Bound`); the auth timeout runs until the handshake succeeded; the expected digest is kept
//! (40 bytes, by slot in `Router::handshakes`) only between the header and the handshake.
//! Budgets are a client conn's: the framer's stanza limit, the driver's output cap.

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaKind, StanzaView};
use sha1::{Digest, Sha1};

use crate::effects::{ConnKey, Effects, HomeRequest, StanzaType};
use crate::errors::{Cause, Fault, StreamError};
use crate::home::routing::{kind_name, wants_error, Envelope};
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::Next;

/// The content namespace of a component's stream (XEP-0114).
pub const COMPONENT_NS: &str = "jabber:component:accept";

/// The handshake's answer on success.
const HANDSHAKE_OK: &[u8] = b"<handshake/>";

impl Router {
    /// A new conn accepted on the component listener from `peer`: like `on_connect`, but its
    /// stream is a XEP-0114 component's.
    pub fn on_component_connect(
        &mut self,
        conn: ConnKey,
        peer: Option<std::net::IpAddr>,
        now_ms: u64,
        fx: &mut impl Effects,
    ) {
        self.on_connect(conn, peer, now_ms, fx);
        let Some(state) = self.conns.slot_of(conn).and_then(|s| self.conns.get_mut(s)) else {
            return;
        };
        // A conn refused at once (per-address budget) is `Closing` already.
        if state.phase == Phase::AwaitHeader {
            state.phase = Phase::ComponentHeader;
        }
    }

    /// The component's stream header: answered with ours, then the handshake is awaited.
    pub(crate) fn on_component_header(
        &mut self,
        slot: u32,
        header: &[u8],
        fx: &mut impl Effects,
    ) -> Next {
        let id = self.ids.stream_id();
        let name = match check_component_header(header) {
            Ok(name) => name,
            Err(error) => return self.component_error(slot, &id, error.into(), fx),
        };
        let Some(secret) = self.home.components.secret(name.domain()) else {
            return self.component_error(slot, &id, StreamError::HostUnknown.into(), fx);
        };
        let digest = handshake_digest(&id, secret);
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        self.reply.clear();
        component_header(&mut self.reply, &id, name.domain());
        fx.send(conn.key, &self.reply);
        conn.header_sent = true;
        conn.phase = Phase::ComponentHandshake;
        conn.jid = Some(name);
        self.handshakes.insert(slot, digest);
        Next::Continue
    }

    /// Our header (in the component namespace) and the stream error.
    fn component_error(
        &mut self,
        slot: u32,
        id: &str,
        fault: Fault,
        fx: &mut impl Effects,
    ) -> Next {
        if let Some(conn) = self.conns.get_mut(slot) {
            self.reply.clear();
            component_header(&mut self.reply, id, self.home.domain.as_str());
            fx.send(conn.key, &self.reply);
            conn.header_sent = true;
        }
        self.stream_error(slot, fault, fx);
        Next::Stop
    }

    /// `<handshake>`: checked against the digest; success continues on the name's home shard.
    pub(crate) fn on_handshake(&mut self, slot: u32, bytes: &[u8], fx: &mut impl Effects) -> Next {
        let expected = self.handshakes.remove(&slot);
        let sent = Element::parse(bytes)
            .ok()
            .filter(|e| e.local_name() == "handshake")
            .map(|e| e.text().trim().to_ascii_lowercase());
        let matches = match (expected, sent) {
            (Some(expected), Some(sent)) => constant_time_eq(&expected, sent.as_bytes()),
            _ => false,
        };
        if !matches {
            self.home.stats.auth_failures += 1;
            self.stream_error(slot, StreamError::NotAuthorized, fx);
            return Next::Stop;
        }
        let Some(name) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return Next::Stop;
        };
        let home = self.home.placement.home(&name);
        if home == self.home.location {
            self.attach_component(slot, fx);
            return Next::Continue;
        }
        if home.node != self.home.location.node {
            let fault = Fault {
                error: StreamError::HostUnknown,
                text: Some("this component's name is homed on another node: connect it there"),
                cause: Cause::Config,
            };
            self.stream_error(slot, fault, fx);
            return Next::Stop;
        }
        Next::HandOff {
            dest: home.shard,
            request: HomeRequest::Component,
            claimed: None,
        }
    }

    /// Attaches the component in `slot` here (its name's home shard), or refuses a second one.
    pub(crate) fn attach_component(&mut self, slot: u32, fx: &mut impl Effects) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(name) = conn.jid.as_ref() else {
            return;
        };
        if !self.home.components.attach(name.domain(), conn.key) {
            self.stream_error(slot, StreamError::Conflict, fx);
            return;
        }
        conn.phase = Phase::Component;
        fx.send(conn.key, HANDSHAKE_OK);
    }

    /// A stanza from an attached component: routed with the `from` it wrote.
    pub(crate) fn on_component_stanza(
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
        let foreign_ns = view.xmlns().is_some_and(|x| x != COMPONENT_NS);
        if kind == StanzaKind::Other || foreign_ns {
            self.stream_error(slot, StreamError::UnsupportedStanzaType, fx);
            return Next::Stop;
        }
        let Some(name) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return Next::Stop;
        };
        let from = view.from().and_then(|f| Jid::parse(&f).ok());
        let Some(from) = from.filter(|f| f.domain() == name.domain()) else {
            self.stream_error(slot, StreamError::InvalidFrom, fx);
            return Next::Stop;
        };
        let Some(to) = view.to().and_then(|t| Jid::parse(&t).ok()) else {
            self.stream_error(slot, StreamError::ImproperAddressing, fx);
            return Next::Stop;
        };
        self.home.stats.stanzas_in += 1;
        let ty = StanzaType::classify(kind, view.stanza_type().as_deref());
        let stanza = self.unqualified(&view);
        let envelope = Envelope {
            to: &to,
            from: &from,
            kind,
            ty,
            stanza: &stanza,
        };
        let ours = to.domain() == self.home.domain.domain();
        let user = ours && to.local().is_some();
        if user || self.home.components.serving(to.domain()).is_some() {
            self.home.route(&self.conns, &envelope, None, fx);
        } else if wants_error(kind, ty) {
            let error = match ours || to.domain() == self.home.groups.domain() {
                true => StanzaError::ServiceUnavailable,
                false => StanzaError::RemoteServerNotFound,
            };
            self.answer_component(slot, &view, (&to, &from), error, fx);
        }
        Next::Continue
    }

    /// The stanza's bytes for a client stream: an explicit `xmlns='jabber:component:accept'`
    /// becomes `jabber:client` (what the component meant on its own stream).
    fn unqualified(&self, view: &StanzaView<'_>) -> Vec<u8> {
        let bytes = view.bytes();
        if view.xmlns() != Some(COMPONENT_NS) {
            return bytes.to_vec();
        }
        let text = String::from_utf8_lossy(bytes);
        let head_end = text.find('>').unwrap_or(text.len());
        let (head, tail) = text.split_at(head_end);
        let head = head
            .replacen("'jabber:component:accept'", "'jabber:client'", 1)
            .replacen("\"jabber:component:accept\"", "\"jabber:client\"", 1);
        format!("{head}{tail}").into_bytes()
    }

    /// A stanza error straight back to the component in `slot`, from `to`.
    fn answer_component(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        (to, from): (&Jid, &Jid),
        error: StanzaError,
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let id = view.id();
        self.reply.clear();
        let reply = ReplyTo {
            id: id.as_deref(),
            from: Some(to.as_str()),
            to: Some(from.as_str()),
        };
        replies::stanza_error(&mut self.reply, kind_name(view.kind()), reply, error);
        fx.send(conn.key, &self.reply);
    }
}

/// Checks a component's stream header: the streams namespace, content namespace
/// `jabber:component:accept`, and `to` a JID without local part or resource (the name asked
/// for; whether it is configured is the caller's question).
fn check_component_header(bytes: &[u8]) -> Result<Jid, StreamError> {
    let header = Element::parse_open_tag(bytes).map_err(|_| StreamError::NotWellFormed)?;
    if header.local_name() != "stream" || header.ns() != Some(ns::STREAM) {
        return Err(StreamError::InvalidNamespace);
    }
    if header.attr("xmlns") != Some(COMPONENT_NS) {
        return Err(StreamError::InvalidNamespace);
    }
    let to = header.attr("to").and_then(|to| Jid::parse(to).ok());
    to.filter(|to| to.local().is_none() && to.resource().is_none())
        .ok_or(StreamError::HostUnknown)
}

/// Our header to a component: its name as `from`, the stream id the handshake hashes.
fn component_header(out: &mut Vec<u8>, id: &str, name: &str) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
    out.extend_from_slice(COMPONENT_NS.as_bytes());
    out.extend_from_slice(b"' xmlns:stream='http://etherx.jabber.org/streams'");
    replies::attr(out, "id", id);
    replies::attr(out, "from", name);
    out.push(b'>');
}

/// Lowercase hex SHA-1 of the stream id followed by the secret (XEP-0114 section 3).
pub fn handshake_digest(id: &str, secret: &str) -> [u8; 40] {
    let mut hasher = Sha1::new();
    hasher.update(id.as_bytes());
    hasher.update(secret.as_bytes());
    let digest = hasher.finalize();
    let mut hex = [0u8; 40];
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in digest.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    hex
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha1_of_id_then_secret() {
        // Python: hashlib.sha1(b'3BF96D32secret').hexdigest()
        let digest = handshake_digest("3BF96D32", "secret");
        assert_eq!(&digest[..], b"b09ea9b3b7f586be8a08d0a3dd7466f110aeb136");
        assert!(constant_time_eq(&digest, &digest));
        assert!(!constant_time_eq(&digest, &digest[1..]));
    }

    #[test]
    fn headers_are_checked() {
        let good = b"<stream:stream xmlns='jabber:component:accept' \
            xmlns:stream='http://etherx.jabber.org/streams' to='push.example.com'>";
        assert_eq!(
            check_component_header(good).map(|j| j.as_str().to_owned()),
            Ok("push.example.com".to_owned())
        );
        let client = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='push.example.com'>";
        assert_eq!(
            check_component_header(client),
            Err(StreamError::InvalidNamespace)
        );
        let user = b"<stream:stream xmlns='jabber:component:accept' \
            xmlns:stream='http://etherx.jabber.org/streams' to='a@push.example.com'>";
        assert_eq!(check_component_header(user), Err(StreamError::HostUnknown));
    }
}
