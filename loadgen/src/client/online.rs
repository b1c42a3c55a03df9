//! The client on a bound stream: messages (bodies, XEP-0184 receipts both ways) and iq
//! answers (the XEP-0198 elements are the `rookery_client`'s).
//!
//! Receipts: a message carrying `<request xmlns='urn:xmpp:receipts'/>` and an id is answered
//! with `<message to=SENDER><received xmlns='urn:xmpp:receipts' id=ID/></message>`, whoever
//! sent it, as a real client would; a `<received/>` is reported as [`ClientEvent::Receipt`]
//! (never as a chat message). Every stanza written here is counted for stream management
//! by the caller.
//!
//! What it does not do: the login (see the parent module) or any timing (the worker's).

use std::borrow::Cow;

use rookery_client::element_text;
use rookery_proto::writer::escape_attr;
use rookery_proto::{ns, StanzaKind, StanzaView};

use super::fanout::{self, Profile};
use super::ClientEvent;

/// XEP-0203 delayed delivery.
const NS_DELAY: &str = "urn:xmpp:delay";

/// A stanza on a bound stream (the client answered XEP-0198 elements already). Returns how
/// many stanzas it wrote to `out` (for the XEP-0198 count).
pub(super) fn on_stanza<F>(
    view: &StanzaView<'_>,
    profile: Profile,
    out: &mut Vec<u8>,
    sink: &mut F,
) -> u32
where
    F: FnMut(ClientEvent<'_>),
{
    let reports = profile.reports_presence();
    match view.kind() {
        StanzaKind::Message if view.stanza_type().as_deref() == Some("error") => {
            sink(ClientEvent::Bounced);
            0
        }
        StanzaKind::Message if reports && view.stanza_type().as_deref() == Some("groupchat") => {
            if let (Some(from), Some(body)) = (view.from(), message_body(view)) {
                sink(ClientEvent::GroupMessage { from, body });
            }
            0
        }
        StanzaKind::Message => on_message(view, out, sink),
        StanzaKind::Iq if reports => match fanout::on_fanout_iq(view, out, sink) {
            Some(written) => written,
            None => u32::from(answer_iq(view, out)),
        },
        StanzaKind::Iq => u32::from(answer_iq(view, out)),
        StanzaKind::Presence if reports => {
            fanout::on_presence(view, sink);
            0
        }
        StanzaKind::Presence | StanzaKind::Other => 0,
    }
}

/// Reports receipts and bodies, answers receipt requests; returns the stanzas written.
fn on_message<F>(view: &StanzaView<'_>, out: &mut Vec<u8>, sink: &mut F) -> u32
where
    F: FnMut(ClientEvent<'_>),
{
    let mut written = 0;
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
                    written += 1;
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
    written
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
    element_text(child.bytes)
}
