//! The client on a bound stream: messages (bodies, XEP-0184 receipts both ways), iq answers,
//! and the XEP-0198 elements (`<r/>`, `<a/>`, `<enabled/>`, `<failed/>`).
//!
//! Receipts: a message carrying `<request xmlns='urn:xmpp:receipts'/>` and an id is answered
//! with `<message to=SENDER><received xmlns='urn:xmpp:receipts' id=ID/></message>`, whoever
//! sent it, as a real client would; a `<received/>` is reported as [`ClientEvent::Receipt`]
//! (never as a chat message). Every stanza written here is counted for stream management.
//!
//! What it does not do: the login (see the parent module) or any timing (the worker's).

use std::borrow::Cow;

use rookery_proto::element::Element;
use rookery_proto::writer::{escape_attr, unescape};
use rookery_proto::{ns, StanzaKind, StanzaView};

use super::sm::{self, SmPhase};
use super::{ClientEvent, Core};

/// XEP-0203 delayed delivery.
const NS_DELAY: &str = "urn:xmpp:delay";

impl Core {
    /// A stanza (or stream management element) on a bound stream.
    pub(super) fn on_online_stanza<F>(
        &mut self,
        view: &StanzaView<'_>,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        if view.kind() == StanzaKind::Other {
            return self.on_sm_element(view, out, sink);
        }
        if let Some(sm) = &mut self.sm {
            sm.received_stanza();
        }
        let reports = self.profile.reports_presence();
        match view.kind() {
            StanzaKind::Message if view.stanza_type().as_deref() == Some("error") => {
                sink(ClientEvent::Bounced)
            }
            StanzaKind::Message
                if reports && view.stanza_type().as_deref() == Some("groupchat") =>
            {
                if let (Some(from), Some(body)) = (view.from(), message_body(view)) {
                    sink(ClientEvent::GroupMessage { from, body });
                }
            }
            StanzaKind::Message => self.on_message(view, out, sink),
            StanzaKind::Iq if reports && self.on_fanout_iq(view, out, sink) => {}
            StanzaKind::Iq => {
                if answer_iq(view, out) {
                    self.count_sent();
                }
            }
            StanzaKind::Presence if reports => self.on_presence(view, sink),
            StanzaKind::Presence | StanzaKind::Other => {}
        }
    }

    /// Counts one stanza we sent, for stream management.
    pub(super) fn count_sent(&mut self) {
        if let Some(sm) = &mut self.sm {
            sm.sent_stanza();
        }
    }

    fn on_message<F>(&mut self, view: &StanzaView<'_>, out: &mut Vec<u8>, sink: &mut F)
    where
        F: FnMut(ClientEvent<'_>),
    {
        for child in view.children() {
            if child.xmlns != Some(ns::RECEIPTS) {
                continue;
            }
            match child.local_name {
                "received" => {
                    let id = StanzaView::parse(child.bytes).ok().and_then(|c| c.id());
                    if let Some(id) = id {
                        sink(ClientEvent::Receipt { id });
                    }
                }
                "request" => {
                    if let (Some(id), Some(from)) = (view.id(), view.from()) {
                        write_receipt(&from, &id, out);
                        self.count_sent();
                    }
                }
                _ => {}
            }
        }
        if let Some(body) = message_body(view) {
            // XEP-0203: how a server marks a message it stored (XEP-0160 offline delivery).
            let delayed = view.has_child("delay", NS_DELAY);
            sink(ClientEvent::Message { body, delayed });
        }
    }

    fn on_sm_element<F>(&mut self, view: &StanzaView<'_>, out: &mut Vec<u8>, sink: &mut F)
    where
        F: FnMut(ClientEvent<'_>),
    {
        if view.xmlns() != Some(sm::NS) {
            return;
        }
        let Some(state) = &mut self.sm else {
            // Not enabled by us: a server sending these anyway is ignored, not answered.
            return;
        };
        match view.local_name() {
            "r" => sm::write_ack(state.inbound, out),
            "a" => {
                let Some(h) = view.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return;
                };
                state.on_ack(h, |intended_ns| sink(ClientEvent::SmAcked { intended_ns }));
            }
            "enabled" if state.phase == SmPhase::Requested => {
                state.phase = SmPhase::Enabled;
                sink(ClientEvent::SmEnabled);
            }
            "failed" => {
                self.sm = None;
                sink(ClientEvent::SmFailed);
            }
            _ => {}
        }
    }
}

/// `<message to='FROM'><received xmlns='urn:xmpp:receipts' id='ID'/></message>`.
fn write_receipt(to: &str, id: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<message to='");
    escape_attr(to, out);
    out.extend_from_slice(b"'><received xmlns='urn:xmpp:receipts' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"'/></message>");
}

/// Answers an iq get/set addressed to us: ping gets a result, the rest service-unavailable.
/// Returns whether it wrote a stanza.
fn answer_iq(view: &StanzaView<'_>, out: &mut Vec<u8>) -> bool {
    let kind = view.stanza_type();
    if !matches!(kind.as_deref(), Some("get" | "set")) {
        return false;
    }
    let id = view.id().unwrap_or_default();
    let ping = kind.as_deref() == Some("get") && view.has_child("ping", ns::PING);
    out.extend_from_slice(if ping {
        b"<iq type='result' id='"
    } else {
        b"<iq type='error' id='"
    });
    escape_attr(&id, out);
    out.push(b'\'');
    if let Some(from) = view.from() {
        out.extend_from_slice(b" to='");
        escape_attr(&from, out);
        out.push(b'\'');
    }
    if ping {
        out.extend_from_slice(b"/>");
    } else {
        out.extend_from_slice(
            b"><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        );
    }
    true
}

/// The text of the message's first `<body>`, borrowed unless it contains entities.
fn message_body<'a>(view: &StanzaView<'a>) -> Option<Cow<'a, str>> {
    child_text(view, "body")
}

/// The text of the stanza's first child named `name`, borrowed unless it contains entities.
pub(super) fn child_text<'a>(view: &StanzaView<'a>, name: &str) -> Option<Cow<'a, str>> {
    let child = view.children().find(|c| c.local_name == name)?;
    let raw = std::str::from_utf8(element_content(child.bytes)?).ok()?;
    if raw.contains("<![CDATA[") {
        // Rare (never from rookery); take the slow, allocating path through the element tree.
        return Element::parse(child.bytes)
            .ok()
            .map(|e| Cow::Owned(e.text()));
    }
    unescape(raw).ok()
}

/// The bytes between an element's start tag and its end tag (empty for `<x/>`).
pub(super) fn element_content(bytes: &[u8]) -> Option<&[u8]> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') if i > 0 && bytes[i - 1] == b'/' => return Some(&[]),
            (None, b'>') => {
                let end = bytes.iter().rposition(|&c| c == b'<')?;
                return bytes.get(i + 1..end);
            }
            _ => {}
        }
    }
    None
}
