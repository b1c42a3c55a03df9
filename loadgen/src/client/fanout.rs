//! The client's side of the presence and group scenarios: presence stanzas, the roster
//! (RFC 6121 2: our get and its result, pushes, which are answered), answers to our other iqs,
//! and groupchat messages, all reported as [`ClientEvent`]s for the worker to act on.
//!
//! Only clients built with a [`Profile`] that reports them do this; the chat profile keeps
//! ignoring presence and iq answers as before (nothing is parsed that nobody reads).
//!
//! What it does not do: decide anything (subscribe answers, joins, retries are the worker's),
//! or check who sent a roster push (a load tool trusts its server).

use std::borrow::Cow;

use rookery_proto::writer::escape_attr;
use rookery_proto::{ns, StanzaView};

use super::online::child_text;
use super::ClientEvent;
use crate::fanout::wire::NS_MUC_USER;

/// The id of our roster get.
pub const ROSTER_ID: &str = "roster1";

/// What a client does besides logging in and chatting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// hold, chat, storm, offline: initial presence at login; presence and iq answers ignored.
    Chat,
    /// presence: no initial presence at login (the worker sends it when the setup is done);
    /// presence, roster and iq answers reported.
    Roster,
    /// group: initial presence at login; presence, iq answers and groupchat reported.
    Group,
}

impl Profile {
    pub fn sends_initial_presence(self) -> bool {
        self != Profile::Roster
    }

    pub fn reports_presence(self) -> bool {
        self != Profile::Chat
    }
}

/// The `type` of a presence stanza (RFC 6121 4.7.1; none means available).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceKind {
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
    Other,
}

impl PresenceKind {
    fn of(kind: Option<&str>) -> PresenceKind {
        match kind {
            None => PresenceKind::Available,
            Some("unavailable") => PresenceKind::Unavailable,
            Some("subscribe") => PresenceKind::Subscribe,
            Some("subscribed") => PresenceKind::Subscribed,
            Some("unsubscribe") => PresenceKind::Unsubscribe,
            Some("unsubscribed") => PresenceKind::Unsubscribed,
            Some("probe") => PresenceKind::Probe,
            Some("error") => PresenceKind::Error,
            Some(_) => PresenceKind::Other,
        }
    }
}

/// A roster item's subscription state (RFC 6121 2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    None,
    To,
    From,
    Both,
    Remove,
}

impl Subscription {
    fn of(text: Option<&str>) -> Subscription {
        match text {
            Some("to") => Subscription::To,
            Some("from") => Subscription::From,
            Some("both") => Subscription::Both,
            Some("remove") => Subscription::Remove,
            _ => Subscription::None,
        }
    }

    /// We see their presence.
    pub fn to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// They see ours.
    pub fn from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
}

/// A presence stanza, as far as the scenarios care.
#[derive(Debug, PartialEq, Eq)]
pub struct PresenceEvent<'a> {
    pub from: Cow<'a, str>,
    pub kind: PresenceKind,
    /// The `<status/>` text.
    pub status: Option<Cow<'a, str>>,
    /// XEP-0045 status code 110: this is our own presence in a room (the join is done).
    pub muc_self: bool,
    /// XEP-0045 status code 201: the join created the room.
    pub muc_created: bool,
    /// type='error': the condition (the `<error/>` child in the stanzas namespace).
    pub error: Option<&'a str>,
}

/// A presence stanza on a bound stream, for profiles that report it.
pub(super) fn on_presence<F>(view: &StanzaView<'_>, sink: &mut F)
where
    F: FnMut(ClientEvent<'_>),
{
    let Some(from) = view.from() else { return };
    let kind = PresenceKind::of(view.stanza_type().as_deref());
    let mut event = PresenceEvent {
        from,
        kind,
        status: child_text(view, "status"),
        muc_self: false,
        muc_created: false,
        error: None,
    };
    for child in view.children() {
        match (child.local_name, child.xmlns) {
            ("x", Some(NS_MUC_USER)) => {
                let Ok(x) = StanzaView::parse(child.bytes) else {
                    continue;
                };
                for status in x.children().filter(|c| c.local_name == "status") {
                    let code = StanzaView::parse(status.bytes)
                        .ok()
                        .and_then(|s| s.attr("code"));
                    match code.as_deref() {
                        Some("110") => event.muc_self = true,
                        Some("201") => event.muc_created = true,
                        _ => {}
                    }
                }
            }
            ("error", _) if kind == PresenceKind::Error => {
                event.error = Some(error_condition(child.bytes));
            }
            _ => {}
        }
    }
    sink(ClientEvent::Presence(event));
}

/// An iq on a bound stream, for profiles that report them: our roster's result, a roster
/// push (answered with a result), or the answer to another iq of ours. Returns the stanzas
/// written, or `None` for the iqs it leaves to the common answer (gets and sets other than
/// roster pushes).
pub(super) fn on_fanout_iq<F>(view: &StanzaView<'_>, out: &mut Vec<u8>, sink: &mut F) -> Option<u32>
where
    F: FnMut(ClientEvent<'_>),
{
    let kind = view.stanza_type();
    let id = view.id().unwrap_or_default();
    match kind.as_deref() {
        Some("result") if id == ROSTER_ID => {
            report_items(view, sink);
            sink(ClientEvent::RosterLoaded);
        }
        Some("result") => sink(ClientEvent::IqAnswer { id, ok: true }),
        Some("error") => sink(ClientEvent::IqAnswer { id, ok: false }),
        Some("set") if view.has_child("query", ns::ROSTER) => {
            // RFC 6121 2.1.6: a push is acknowledged with an empty result.
            out.extend_from_slice(b"<iq type='result' id='");
            escape_attr(&id, out);
            out.extend_from_slice(b"'/>");
            report_items(view, sink);
            return Some(1);
        }
        _ => return None,
    }
    Some(0)
}

/// Reports every `<item/>` of the iq's roster query.
fn report_items<F>(view: &StanzaView<'_>, sink: &mut F)
where
    F: FnMut(ClientEvent<'_>),
{
    let Some(query) = view.children().find(|c| c.local_name == "query") else {
        return;
    };
    let Ok(query) = StanzaView::parse(query.bytes) else {
        return;
    };
    for item in query.children().filter(|c| c.local_name == "item") {
        let Ok(item) = StanzaView::parse(item.bytes) else {
            continue;
        };
        let Some(jid) = item.attr("jid") else {
            continue;
        };
        let subscription = Subscription::of(item.attr("subscription").as_deref());
        sink(ClientEvent::RosterItem { jid, subscription });
    }
}

/// The defined condition inside an `<error/>` element (`undefined-condition` if none).
fn error_condition(error: &[u8]) -> &str {
    StanzaView::parse(error)
        .ok()
        .and_then(|e| {
            e.children()
                .find(|c| c.xmlns == Some(ns::STANZAS_ERRORS))
                .map(|c| c.local_name)
        })
        .unwrap_or("undefined-condition")
}

/// `<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`.
pub fn write_roster_get(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<iq type='get' id='");
    out.extend_from_slice(ROSTER_ID.as_bytes());
    out.extend_from_slice(b"'><query xmlns='jabber:iq:roster'/></iq>");
}
