//! The sans-IO protocol of one client conn: bytes in, reply bytes and routing calls out.
//!
//! Login (RFC 6120): stream header -> features (SASL PLAIN) -> `<auth>` (any credentials
//! whose authcid is a valid local part are accepted) -> `<success/>` and a stream restart ->
//! features (bind) -> bind (the requested resource, or `relay-<stream id>` when none or an
//! invalid one is asked for) -> online. Online, a stanza addressed to a user of our domain goes
//! to [`Router::route`]; iq get/set to the server is answered (ping and the legacy session with
//! a result, anything else with `service-unavailable`, as RFC 6120 8.4 asks); presence without
//! `to` is dropped (no rosters); `</stream:stream>` is answered with ours and ends the conn.
//!
//! What it does not do: sockets, buffering of output (the caller owns `out`), stream
//! management (never offered; an `<enable/>` gets `<failed/>`), TLS, rosters, presence
//! broadcast, offline storage.
//!
//! Invariants: after [`Flow::Close`] the conn ignores further input and the caller closes the
//! socket once `out` is written. A session is bound (and [`Conn::jid`] is `Some`) from the
//! bind result on; only then is anything routed.

use std::sync::Arc;

use base64::Engine as _;
use rookery_proto::element::Element;
use rookery_proto::{ns, Frame, Framer, FramerLimits, Jid, StanzaKind, StanzaView};

use crate::replies;

/// Largest stanza accepted (rookery's default `--max-stanza-bytes`); larger ones end the
/// stream with `policy-violation`.
pub const MAX_STANZA_BYTES: usize = 65_536;
/// Failed SASL attempts before the stream is closed with `policy-violation`.
const MAX_AUTH_FAILURES: u8 = 3;
const NS_SM: &str = "urn:xmpp:sm:3";

/// Where the stanzas of a bound session go. Implemented once per runtime over its registry.
pub trait Router {
    /// This conn bound `jid`: stanzas to it (full, or bare) must reach this conn from now on.
    fn bind(&mut self, jid: &Jid);
    /// A stanza of the session `from` to the user `to`: write it to `to`'s conn stamped with
    /// `from` (`stanza.stamp(from.as_str(), None, ..)`), or drop and count it.
    fn route(&mut self, to: &Jid, from: &Jid, stanza: &StanzaView<'_>);
    /// A stanza that cannot reach any session (no or invalid `to`, another domain, a message
    /// to the server): dropped and counted.
    fn unroutable(&mut self);
}

/// Whether the conn goes on after the bytes just fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Open,
    /// The stream is over: write what `out` holds, then close the socket.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a stream header (the first, or the one after SASL success).
    Header,
    Auth,
    Bind,
    Online,
    Done,
}

/// One client conn's protocol state.
pub struct Conn {
    framer: Framer,
    core: Core,
}

/// Everything but the framer, so a frame borrowed from the framer can be handled by `&mut Core`.
struct Core {
    domain: Arc<str>,
    stream_id: u64,
    phase: Phase,
    /// The authenticated bare JID (after SASL success).
    user: Option<Jid>,
    /// The bound full JID (from bind on).
    jid: Option<Jid>,
    auth_failures: u8,
    /// SASL succeeded: reset the framer before the next byte is framed.
    restart: bool,
}

impl Conn {
    /// A conn of `domain`; `stream_id` names its stream (and a generated resource).
    pub fn new(domain: Arc<str>, stream_id: u64) -> Conn {
        Conn {
            framer: Framer::new(FramerLimits {
                max_stanza_bytes: MAX_STANZA_BYTES,
            }),
            core: Core {
                domain,
                stream_id,
                phase: Phase::Header,
                user: None,
                jid: None,
                auth_failures: 0,
                restart: false,
            },
        }
    }

    /// The bound full JID, once bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.core.jid.as_ref()
    }

    /// Feeds bytes read from the socket; replies are appended to `out`.
    pub fn on_data(&mut self, data: &[u8], out: &mut Vec<u8>, router: &mut impl Router) -> Flow {
        let mut input = data;
        while self.core.phase != Phase::Done {
            // Frame from a copy of the slice and advance `input` by what was consumed, so the
            // framer's borrow ends with this iteration's frame.
            let mut chunk = input;
            let before = chunk.len();
            let frame = match self.framer.next_frame(&mut chunk) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Flow::Open,
                Err(err) => {
                    replies::stream_error(out, err.condition());
                    self.core.phase = Phase::Done;
                    break;
                }
            };
            let consumed = before - chunk.len();
            self.core.on_frame(frame, out, router);
            input = &input[consumed..];
            if self.core.restart {
                self.core.restart = false;
                self.framer.reset();
            }
        }
        Flow::Close
    }
}

impl Core {
    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<u8>, router: &mut impl Router) {
        match frame {
            Frame::StreamOpen(_) if self.phase == Phase::Header => {
                let authenticated = self.user.is_some();
                replies::stream_header(out, self.stream_id, &self.domain, authenticated);
                self.phase = if authenticated {
                    Phase::Bind
                } else {
                    Phase::Auth
                };
            }
            Frame::StreamOpen(_) => self.end(out, "invalid-xml"),
            Frame::StreamClose => {
                out.extend_from_slice(replies::STREAM_CLOSE);
                self.phase = Phase::Done;
            }
            Frame::Stanza(bytes) => {
                let Ok(view) = StanzaView::parse(bytes) else {
                    return self.end(out, "not-well-formed");
                };
                match self.phase {
                    Phase::Auth => self.on_auth(&view, out),
                    Phase::Bind => self.on_bind(&view, out, router),
                    Phase::Online => self.on_online(&view, out, router),
                    // The framer yields no stanza before a stream header.
                    Phase::Header | Phase::Done => {}
                }
            }
        }
    }

    /// Ends the stream with a stream error.
    fn end(&mut self, out: &mut Vec<u8>, condition: &str) {
        replies::stream_error(out, condition);
        self.phase = Phase::Done;
    }

    fn on_auth(&mut self, view: &StanzaView<'_>, out: &mut Vec<u8>) {
        if view.local_name() != "auth" || view.xmlns() != Some(ns::SASL) {
            return self.end(out, "not-authorized");
        }
        if view.attr("mechanism").as_deref() != Some("PLAIN") {
            return self.auth_failed(out, "invalid-mechanism");
        }
        match plain_authcid(view.bytes()).and_then(|authcid| {
            Jid::new(Some(&authcid), &self.domain, None).map_err(|_| "not-authorized")
        }) {
            Ok(user) => {
                out.extend_from_slice(replies::SASL_SUCCESS);
                self.user = Some(user);
                self.restart = true;
                self.phase = Phase::Header;
            }
            Err(condition) => self.auth_failed(out, condition),
        }
    }

    fn auth_failed(&mut self, out: &mut Vec<u8>, condition: &str) {
        self.auth_failures += 1;
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return self.end(out, "policy-violation");
        }
        replies::sasl_failure(out, condition);
    }

    fn on_bind(&mut self, view: &StanzaView<'_>, out: &mut Vec<u8>, router: &mut impl Router) {
        let is_bind = view.kind() == StanzaKind::Iq
            && view.stanza_type().as_deref() == Some("set")
            && view.has_child("bind", ns::BIND);
        if !is_bind {
            return match view.kind() {
                StanzaKind::Iq => self.answer_iq(view, out),
                // RFC 6120 7.1: no stanzas before binding; dropped.
                _ => router.unroutable(),
            };
        }
        // SASL success set `user` before the stream could reach this phase.
        let Some(user) = &self.user else {
            return self.end(out, "not-authorized");
        };
        let jid = requested_resource(view.bytes())
            .and_then(|resource| user.with_resource(&resource).ok())
            .or_else(|| {
                user.with_resource(&format!("relay-{}", self.stream_id))
                    .ok()
            });
        let Some(jid) = jid else {
            return self.end(out, "internal-server-error");
        };
        router.bind(&jid);
        replies::bind_result(out, view.id().as_deref().unwrap_or_default(), jid.as_str());
        self.jid = Some(jid);
        self.phase = Phase::Online;
    }

    fn on_online(&mut self, view: &StanzaView<'_>, out: &mut Vec<u8>, router: &mut impl Router) {
        let Some(from) = &self.jid else { return };
        let kind = view.kind();
        if kind == StanzaKind::Other {
            if view.local_name() == "enable" && view.xmlns() == Some(NS_SM) {
                out.extend_from_slice(replies::SM_FAILED);
            }
            return;
        }
        match (kind, destination(view, &self.domain, from)) {
            (_, Dest::User(to)) => router.route(&to, from, view),
            (StanzaKind::Iq, Dest::Server) => self.answer_iq(view, out),
            // Initial or broadcast presence: no rosters here, nobody to tell.
            (StanzaKind::Presence, Dest::Server) => {}
            _ => router.unroutable(),
        }
    }

    /// An iq to the server: ping and the legacy session succeed, the rest is not served.
    fn answer_iq(&self, view: &StanzaView<'_>, out: &mut Vec<u8>) {
        let id = view.id().unwrap_or_default();
        match view.stanza_type().as_deref() {
            Some("get") if view.has_child("ping", ns::PING) => replies::iq_result(out, &id),
            Some("set") if view.has_child("session", ns::SESSION) => replies::iq_result(out, &id),
            Some("get" | "set") => replies::iq_error(out, &id, "service-unavailable"),
            // Results and errors to the server answer nothing we asked: ignored.
            _ => {}
        }
    }
}

/// Where an online session's stanza is addressed.
enum Dest {
    /// The server itself: no `to`, our domain, or the sender's own bare JID.
    Server,
    /// A user of our domain (full or bare JID).
    User(Jid),
    /// An unparsable `to`, or another domain.
    Invalid,
}

fn destination(view: &StanzaView<'_>, domain: &str, from: &Jid) -> Dest {
    let Some(to) = view.to() else {
        return Dest::Server;
    };
    let Ok(to) = Jid::parse(&to) else {
        return Dest::Invalid;
    };
    if to.domain() != domain {
        return Dest::Invalid;
    }
    let own_account = to.is_bare() && to.bare_str() == from.bare_str();
    if to.local().is_none() || (own_account && view.kind() == StanzaKind::Iq) {
        return Dest::Server;
    }
    Dest::User(to)
}

/// The authcid of a SASL PLAIN `<auth>` (RFC 4616: `[authzid] NUL authcid NUL passwd`); the
/// password is not checked.
fn plain_authcid(auth: &[u8]) -> Result<String, &'static str> {
    let element = Element::parse(auth).map_err(|_| "malformed-request")?;
    let encoded = element.text();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "incorrect-encoding")?;
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(_authzid), Some(authcid), Some(_passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed-request");
    };
    String::from_utf8(authcid.to_vec()).map_err(|_| "malformed-request")
}

/// The `<resource>` a bind request asks for, when it names a non-empty one.
fn requested_resource(iq: &[u8]) -> Option<String> {
    let element = Element::parse(iq).ok()?;
    let bind = element.child("bind", ns::BIND)?;
    let resource = bind.children().find(|c| c.local_name() == "resource")?;
    Some(resource.text()).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests;
