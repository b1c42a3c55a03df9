//! XEP-0357 Push Notifications on the user's home shard: `<enable/>` and `<disable/>`
//! (registrations kept per user in the store, table `PUSH`), and the notification published to
//! the app server when a one-to-one message with a body is stored for a user none of whose
//! sessions is reachable (all detached with XEP-0198, or none at all: offline).
//!
//! The notification is an iq set from the user's bare JID to the registration's `jid`:
//! `<pubsub><publish node=NODE><item><notification xmlns='urn:xmpp:push:0'>` with the summary
//! form (`urn:xmpp:push:summary`: `message-count`, `last-message-sender`, and
//! `last-message-body` only with `--push-include-body`), plus the registration's
//! `<publish-options>` form as the client gave it. Rate: at most one per registration per
//! `--push-interval`; messages in between are coalesced into the next one (its count says how
//! many), sent by the tick once the interval passed. An error answer from the app server
//! disables that registration (XEP-0357 section 8). The iq id is `push-<hex node>-<n>`, so an
//! answer names its registration without any table of iqs in flight.
//!
//! What it does not do: push for group messages to absent members, for stanzas other than
//! messages with a body, or resend a notification the app server did not answer.
//!
//! Memory: registrations live in the store (at most `MAX_REGISTRATIONS` per user, node at most
//! `MAX_NODE_BYTES`, publish-options at most `MAX_OPTIONS_BYTES`); in memory, one `Pending`
//! per registration that was notified within the last interval or has messages waiting.

use rookery_proto::element::Element;
use rookery_proto::writer::{escape_attr, escape_text};
use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::routing::Envelope;
use crate::home::Home;
use crate::maps::{HashState, Map};
use crate::stream::conn::ConnSlab;
use crate::tables;

/// XEP-0357's namespace.
pub(crate) const PUSH_NS: &str = "urn:xmpp:push:0";
/// What push adds to an account's disco#info.
pub(crate) const ACCOUNT_FEATURES: &[u8] = b"<feature var='urn:xmpp:push:0'/>";
/// Most registrations one user may have; an enable past it gets `resource-constraint`.
pub(crate) const MAX_REGISTRATIONS: usize = 8;
/// Largest node name accepted in `<enable/>`.
pub(crate) const MAX_NODE_BYTES: usize = 256;
/// Largest publish-options form kept with a registration.
pub(crate) const MAX_OPTIONS_BYTES: usize = 2048;
/// The part of a coalesced message body kept for the summary (with `--push-include-body`).
const MAX_BODY_CHARS: usize = 256;
const DATA_NS: &str = "jabber:x:data";
/// How often the tick walks the pending registrations (it runs every loop turn).
const CHECK_EVERY_MS: u64 = 100;

/// What an `<enable/>` or `<disable/>` asks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushRequest {
    /// Register `jid` + `node`, with the publish-options form's bytes (may be empty).
    Enable {
        jid: Jid,
        node: String,
        options: Vec<u8>,
    },
    /// Remove `jid`'s registrations: the one for `node`, or all of them.
    Disable { jid: Jid, node: Option<String> },
}

/// Why a push iq is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushRefusal {
    /// Missing or invalid `jid`, missing `node` on enable, a too large node or form.
    BadRequest,
    /// `MAX_REGISTRATIONS` reached.
    TooMany,
}

/// Reads the `<enable/>` or `<disable/>` child of an iq set.
pub(crate) fn parse_request(view: &StanzaView<'_>) -> Result<PushRequest, PushRefusal> {
    let child = view
        .children()
        .find(|c| c.xmlns == Some(PUSH_NS))
        .ok_or(PushRefusal::BadRequest)?;
    let element = Element::parse(child.bytes).map_err(|_| PushRefusal::BadRequest)?;
    let jid = element.attr("jid").and_then(|j| Jid::parse(j).ok());
    let jid = jid.ok_or(PushRefusal::BadRequest)?;
    let node = element.attr("node").map(str::to_owned);
    if node
        .as_ref()
        .is_some_and(|n| n.len() > MAX_NODE_BYTES || n.is_empty())
    {
        return Err(PushRefusal::BadRequest);
    }
    match child.local_name {
        "enable" => {
            let node = node.ok_or(PushRefusal::BadRequest)?;
            let inner = StanzaView::parse(child.bytes).map_err(|_| PushRefusal::BadRequest)?;
            let form = inner
                .children()
                .find(|c| c.local_name == "x" && c.xmlns == Some(DATA_NS));
            let options = form.map_or_else(Vec::new, |f| f.bytes.to_vec());
            if options.len() > MAX_OPTIONS_BYTES {
                return Err(PushRefusal::BadRequest);
            }
            Ok(PushRequest::Enable { jid, node, options })
        }
        "disable" => Ok(PushRequest::Disable { jid, node }),
        _ => Err(PushRefusal::BadRequest),
    }
}

/// Messages waiting to be told to one registration, and when it was last notified.
#[derive(Debug, Default)]
struct Pending {
    count: u32,
    last_sent_ms: Option<u64>,
    last_sender: String,
    last_body: Option<String>,
}

/// The home shard's push state: settings and the registrations with something pending.
#[derive(Debug)]
pub(crate) struct Push {
    interval_ms: u64,
    include_body: bool,
    /// By store key (`owner \0 jid \0 node`).
    pending: Map<String, Pending>,
    sent: u64,
    /// When the tick last walked `pending`.
    checked_ms: u64,
}

impl Push {
    pub fn new(interval_ms: u64, include_body: bool, hash: HashState) -> Push {
        Push {
            interval_ms,
            include_body,
            pending: hash.map(),
            sent: 0,
            checked_ms: 0,
        }
    }
}

/// The store item of a registration: `jid \0 node`.
fn item(jid: &str, node: &str) -> String {
    tables::key(jid, node)
}

impl Home {
    /// Applies an enable or disable for `owner` (a bare JID).
    pub fn push_request(&mut self, owner: &str, request: PushRequest) -> Result<(), PushRefusal> {
        match request {
            PushRequest::Enable { jid, node, options } => {
                let key = tables::key(owner, &item(jid.as_str(), &node));
                let prefix = tables::prefix(owner);
                let count = self.store.kv_scan(tables::PUSH, &prefix).count();
                if self.store.kv_get(tables::PUSH, &key).is_none() && count >= MAX_REGISTRATIONS {
                    return Err(PushRefusal::TooMany);
                }
                self.store
                    .kv_set(tables::PUSH, &key, &options)
                    .map_err(|_| PushRefusal::TooMany)
            }
            PushRequest::Disable { jid, node } => {
                let prefix = match &node {
                    Some(node) => tables::key(owner, &item(jid.as_str(), node)),
                    None => tables::key(owner, &tables::prefix(jid.as_str())),
                };
                let keys: Vec<String> = self
                    .store
                    .kv_scan(tables::PUSH, &prefix)
                    .map(|(key, _)| key.to_owned())
                    .filter(|key| node.is_none() || *key == prefix)
                    .collect();
                for key in keys {
                    self.store.kv_delete(tables::PUSH, &key);
                    self.push.pending.remove(&key);
                }
                Ok(())
            }
        }
    }

    /// A message was stored for `to` (bare) and no session of it took it live: each of its
    /// registrations is told now, or at the end of its interval.
    pub fn push_stored(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        fx: &mut impl Effects,
    ) {
        let owner = envelope.to.bare_str();
        let prefix = tables::prefix(owner);
        let keys: Vec<String> = self
            .store
            .kv_scan(tables::PUSH, &prefix)
            .map(|(key, _)| key.to_owned())
            .collect();
        if keys.is_empty() {
            return;
        }
        let Some(body) = message_body(envelope.stanza) else {
            return;
        };
        for key in keys {
            let pending = self.push.pending.entry(key.clone()).or_default();
            pending.count = pending.count.saturating_add(1);
            pending.last_sender = envelope.from.bare_str().to_owned();
            pending.last_body = Some(body.chars().take(MAX_BODY_CHARS).collect());
            let due = pending
                .last_sent_ms
                .is_none_or(|t| self.now_ms >= t.saturating_add(self.push.interval_ms));
            if due {
                self.push_send(conns, &key, fx);
            }
        }
    }

    /// Sends what waits for registrations whose interval passed; forgets idle ones.
    pub fn push_tick(&mut self, conns: &ConnSlab, fx: &mut impl Effects) {
        let now_ms = self.now_ms;
        let walk_due = now_ms >= self.push.checked_ms.saturating_add(CHECK_EVERY_MS);
        if self.push.pending.is_empty() || !walk_due {
            return;
        }
        self.push.checked_ms = now_ms;
        let interval_ms = self.push.interval_ms;
        let due: Vec<String> = self
            .push
            .pending
            .iter()
            .filter(|(_, p)| {
                p.count > 0
                    && p.last_sent_ms
                        .is_none_or(|t| now_ms >= t.saturating_add(interval_ms))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.push_send(conns, &key, fx);
        }
        self.push.pending.retain(|_, p| {
            p.count > 0
                || p.last_sent_ms
                    .is_some_and(|t| now_ms < t.saturating_add(interval_ms))
        });
    }

    /// Publishes the summary of registration `key` to its app server and resets its count.
    fn push_send(&mut self, conns: &ConnSlab, key: &str, fx: &mut impl Effects) {
        let Some(options) = self.store.kv_get(tables::PUSH, key).map(<[u8]>::to_vec) else {
            self.push.pending.remove(key);
            return;
        };
        let mut parts = key.splitn(3, '\0');
        let (Some(owner), Some(jid), Some(node)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (Ok(owner), Ok(app)) = (Jid::parse(owner), Jid::parse(jid)) else {
            return;
        };
        let Some(pending) = self.push.pending.get_mut(key) else {
            return;
        };
        let body = pending.last_body.take().filter(|_| self.push.include_body);
        let summary = Summary {
            count: pending.count,
            sender: &pending.last_sender,
            body: body.as_deref(),
        };
        self.push.sent += 1;
        let id = format!("push-{}-{}", hex(node), self.push.sent);
        let mut iq = Vec::with_capacity(512 + options.len());
        notification(
            &mut iq,
            (&id, owner.as_str(), app.as_str(), node),
            &summary,
            &options,
        );
        pending.count = 0;
        pending.last_sent_ms = Some(self.now_ms);
        self.stats.push_notifications += 1;
        let envelope = Envelope {
            to: &app,
            from: &owner,
            kind: StanzaKind::Iq,
            ty: StanzaType::Set,
            stanza: &iq,
        };
        self.route(conns, &envelope, None, fx);
    }

    /// An answer to one of our notifications (an iq result or error to a bare JID whose id
    /// we made): an error disables that registration. True if it was ours.
    pub fn push_answer(&mut self, envelope: &Envelope<'_>) -> bool {
        if !envelope.to.is_bare() || !matches!(envelope.ty, StanzaType::Error | StanzaType::Result)
        {
            return false;
        }
        let Some(id) = StanzaView::parse(envelope.stanza).ok().and_then(|v| v.id()) else {
            return false;
        };
        let Some(node) = id.strip_prefix("push-").and_then(node_of_id) else {
            return false;
        };
        if envelope.ty == StanzaType::Error {
            let key = tables::key(
                envelope.to.bare_str(),
                &item(envelope.from.bare_str(), &node),
            );
            if self.store.kv_delete(tables::PUSH, &key) {
                self.stats.push_disabled += 1;
            }
            self.push.pending.remove(&key);
        }
        true
    }
}

/// The body of a message stanza, if it has one.
fn message_body(stanza: &[u8]) -> Option<String> {
    let view = StanzaView::parse(stanza).ok()?;
    let body = view.children().find(|c| c.local_name == "body")?;
    Some(Element::parse(body.bytes).ok()?.text())
}

struct Summary<'a> {
    count: u32,
    sender: &'a str,
    body: Option<&'a str>,
}

/// The notification iq (XEP-0357 section 7, example 11).
fn notification(
    out: &mut Vec<u8>,
    (id, from, to, node): (&str, &str, &str, &str),
    summary: &Summary<'_>,
    options: &[u8],
) {
    out.extend_from_slice(b"<iq type='set' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"' from='");
    escape_attr(from, out);
    out.extend_from_slice(b"' to='");
    escape_attr(to, out);
    out.extend_from_slice(b"'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='");
    escape_attr(node, out);
    out.extend_from_slice(b"'><item><notification xmlns='urn:xmpp:push:0'>");
    out.extend_from_slice(b"<x xmlns='jabber:x:data' type='form'>");
    field(out, "FORM_TYPE", "urn:xmpp:push:summary");
    field(out, "message-count", &summary.count.to_string());
    field(out, "last-message-sender", summary.sender);
    if let Some(body) = summary.body {
        field(out, "last-message-body", body);
    }
    out.extend_from_slice(b"</x></notification></item></publish>");
    if !options.is_empty() {
        out.extend_from_slice(b"<publish-options>");
        out.extend_from_slice(options);
        out.extend_from_slice(b"</publish-options>");
    }
    out.extend_from_slice(b"</pubsub></iq>");
}

fn field(out: &mut Vec<u8>, var: &str, value: &str) {
    out.extend_from_slice(b"<field var='");
    escape_attr(var, out);
    out.extend_from_slice(b"'><value>");
    escape_text(value, out);
    out.extend_from_slice(b"</value></field>");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The node encoded in `<hex node>-<n>`.
fn node_of_id(rest: &str) -> Option<String> {
    let (hex, _) = rest.rsplit_once('-')?;
    if hex.len() % 2 != 0 || hex.len() > 2 * MAX_NODE_BYTES {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_node() {
        let id = format!("{}-{}", hex("yxs32/ü"), 7);
        assert_eq!(node_of_id(&id).as_deref(), Some("yxs32/ü"));
        assert_eq!(node_of_id("zz-1"), None);
    }

    #[test]
    fn requests_are_read() {
        let iq = b"<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example.com' \
            node='n1'><x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s</value>\
            </field></x></enable></iq>";
        let view = StanzaView::parse(iq).expect("valid");
        let Ok(PushRequest::Enable { jid, node, options }) = parse_request(&view) else {
            panic!("an enable");
        };
        assert_eq!((jid.as_str(), node.as_str()), ("push.example.com", "n1"));
        assert!(options.starts_with(b"<x xmlns='jabber:x:data'"));
        let no_node =
            b"<iq type='set'><enable xmlns='urn:xmpp:push:0' jid='push.example.com'/></iq>";
        let view = StanzaView::parse(no_node).expect("valid");
        assert_eq!(parse_request(&view), Err(PushRefusal::BadRequest));
        let disable =
            b"<iq type='set'><disable xmlns='urn:xmpp:push:0' jid='push.example.com'/></iq>";
        let view = StanzaView::parse(disable).expect("valid");
        assert!(matches!(
            parse_request(&view),
            Ok(PushRequest::Disable { node: None, .. })
        ));
    }
}
