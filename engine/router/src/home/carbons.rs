//! XEP-0280 Message Carbons: a user's sessions that enabled carbons get a copy of the chats
//! its other sessions send (`<sent/>`) and receive (`<received/>`), so every device sees both
//! sides of a conversation.
//!
//! What it does: the `<enable/>`/`<disable/>` iq (a flag on the `Session`), which messages are
//! eligible (XEP-0280 section 6), the wrapping (`<forwarded xmlns='urn:xmpp:forward:0'>`, the
//! inner message in `jabber:client`), and the fan-out to the owner's other enabled sessions
//! on this (their home) shard.
//!
//! What it does not do: store copies (a copy is never put offline or queued for a detached
//! XEP-0198 session), or decide delivery of the original (see `routing`, `offline`).
//!
//! Invariants:
//! - a copy goes only to an attached, carbons-enabled session of the owner other than the one
//!   that sent or already received the original; never to a session that got the original
//!   itself (a bare-JID message written to several resources is not copied to them);
//! - copies use `Home::send`, the normal output path: XEP-0198 counted, XEP-0352 aware;
//! - nothing is copied when no other session of the owner enabled carbons, and the stanza is
//!   parsed only then (the cost of carbons for users without them is one directory walk).

use rookery_proto::writer::escape_attr;
use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::sessions::Session;
use crate::home::Home;
use crate::stream::conn::ConnSlab;

pub(crate) const CARBONS_NS: &str = "urn:xmpp:carbons:2";
const FORWARD_NS: &str = "urn:xmpp:forward:0";
const HINTS_NS: &str = "urn:xmpp:hints";
const CHAT_STATES_NS: &str = "http://jabber.org/protocol/chatstates";
const RECEIPTS_NS: &str = "urn:xmpp:receipts";
const MARKERS_NS: &str = "urn:xmpp:chat-markers:0";

/// Which side of the conversation a copy shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A message one of the owner's sessions received.
    Received,
    /// A message one of the owner's sessions sent.
    Sent,
}

impl Direction {
    fn element(self) -> &'static str {
        match self {
            Direction::Received => "received",
            Direction::Sent => "sent",
        }
    }
}

/// The carbons iq of a session: `Some(true)` for `<enable/>`, `Some(false)` for `<disable/>`,
/// None when the iq is not about carbons.
pub(crate) fn carbons_request(view: &StanzaView<'_>) -> Option<bool> {
    if view.has_child("enable", CARBONS_NS) {
        return Some(true);
    }
    view.has_child("disable", CARBONS_NS).then_some(false)
}

/// Whether a message of type `ty` is copied (XEP-0280 section 6): chat; normal with a body or
/// IM payload (chat states, receipts, markers); never error, groupchat or headline, never one
/// marked `<private/>` + `<no-copy/>` (either suffices) or one that is already a copy.
/// A private message to a group occupant is of type chat (its `muc#user` x rides along).
pub(crate) fn eligible(view: &StanzaView<'_>, ty: StanzaType) -> bool {
    if view.kind() != StanzaKind::Message || view.local_name() != "message" {
        return false;
    }
    let mut im = false;
    for child in view.children() {
        match (child.local_name, child.xmlns) {
            ("private" | "received" | "sent", Some(CARBONS_NS)) => return false,
            ("no-copy", Some(HINTS_NS)) => return false,
            ("body", None) => im = true,
            (_, Some(CHAT_STATES_NS | RECEIPTS_NS | MARKERS_NS)) => im = true,
            _ => {}
        }
    }
    match ty {
        StanzaType::Chat => true,
        StanzaType::Normal => im,
        _ => false,
    }
}

/// Writes into `out` (cleared) the copy of `inner` (a message as it went on the wire) for the
/// session `to`, from the owner's bare JID: `<message from to type><received|sent><forwarded>`.
pub(crate) fn wrap(
    out: &mut Vec<u8>,
    direction: Direction,
    (bare, to): (&str, &str),
    inner: &StanzaView<'_>,
) {
    let element = direction.element();
    out.clear();
    out.extend_from_slice(b"<message from='");
    escape_attr(bare, out);
    out.extend_from_slice(b"' to='");
    escape_attr(to, out);
    out.extend_from_slice(b"' type='");
    let ty = inner.stanza_type();
    escape_attr(ty.as_deref().unwrap_or("normal"), out);
    out.extend_from_slice(b"'><");
    out.extend_from_slice(element.as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(CARBONS_NS.as_bytes());
    out.extend_from_slice(b"'><forwarded xmlns='");
    out.extend_from_slice(FORWARD_NS.as_bytes());
    out.extend_from_slice(b"'>");
    let bytes = inner.bytes();
    match (inner.xmlns(), bytes.strip_prefix(b"<message")) {
        // Forwarded stanzas keep their namespace (XEP-0297): it is the stream's default.
        (None, Some(rest)) => {
            out.extend_from_slice(b"<message xmlns='jabber:client'");
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(bytes),
    }
    out.extend_from_slice(b"</forwarded></");
    out.extend_from_slice(element.as_bytes());
    out.extend_from_slice(b"></message>");
}

impl Home {
    /// Copies `stanza` (a message of type `ty`, as written on the wire) to the sessions of
    /// `owner` that enabled carbons, except those `skip` names (the session that sent it or
    /// the ones that received it).
    pub fn carbon_copies(
        &mut self,
        conns: &ConnSlab,
        owner: &Jid,
        (direction, ty, stanza): (Direction, StanzaType, &[u8]),
        skip: impl Fn(u32, &Session) -> bool,
        fx: &mut impl Effects,
    ) {
        if !matches!(ty, StanzaType::Chat | StanzaType::Normal) {
            return;
        }
        let bare = owner.bare_str();
        let mut view = None;
        let mut out = std::mem::take(&mut self.carbon);
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(bare, index) else {
                break;
            };
            let enabled = self.sessions.get(slot).filter(|s| s.carbons);
            if enabled.is_none_or(|s| skip(slot, s)) {
                continue;
            }
            let Some(to) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            if view.is_none() {
                match StanzaView::parse(stanza) {
                    Ok(parsed) if eligible(&parsed, ty) => view = Some(parsed),
                    _ => break,
                }
            }
            let Some(inner) = view.as_ref() else {
                break;
            };
            wrap(&mut out, direction, (bare, to.as_str()), inner);
            self.stats.carbons_out += 1;
            self.send(slot, &out, fx);
        }
        // Put back to keep its capacity (a copy is never copied again: no reentry).
        self.carbon = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bytes: &[u8]) -> StanzaView<'_> {
        StanzaView::parse(bytes).expect("valid test stanza")
    }

    fn is_eligible(bytes: &[u8]) -> bool {
        let view = view(bytes);
        let ty = StanzaType::classify(view.kind(), view.stanza_type().as_deref());
        eligible(&view, ty)
    }

    #[test]
    fn eligibility_follows_section_6() {
        assert!(is_eligible(
            b"<message type='chat'><body>x</body></message>"
        ));
        assert!(is_eligible(
            b"<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ));
        assert!(is_eligible(b"<message><body>x</body></message>"));
        assert!(!is_eligible(b"<message><subject>x</subject></message>"));
        assert!(!is_eligible(
            b"<message type='groupchat'><body>x</body></message>"
        ));
        assert!(!is_eligible(
            b"<message type='headline'><body>x</body></message>"
        ));
        assert!(!is_eligible(
            b"<message type='error'><body>x</body></message>"
        ));
        assert!(!is_eligible(
            b"<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>"
        ));
        assert!(!is_eligible(
            b"<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>"
        ));
        assert!(!is_eligible(
            b"<message type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>"
        ));
        assert!(is_eligible(
            b"<message type='chat'><body>pm</body>\
              <x xmlns='http://jabber.org/protocol/muc#user'/></message>"
        ));
    }

    #[test]
    fn the_copy_forwards_the_message_in_jabber_client() {
        let inner =
            view(b"<message to='bob@x/b' type='chat' from='alice@x/a'><body>hi</body></message>");
        let mut out = Vec::new();
        wrap(&mut out, Direction::Sent, ("alice@x", "alice@x/c'"), &inner);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "<message from='alice@x' to='alice@x/c&apos;' type='chat'>\
             <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' to='bob@x/b' type='chat' from='alice@x/a'>\
             <body>hi</body></message></forwarded></sent></message>"
        );
    }

    #[test]
    fn enable_and_disable_are_recognised() {
        let enable = view(b"<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
        let disable = view(b"<iq type='set'><disable xmlns='urn:xmpp:carbons:2'/></iq>");
        let other = view(b"<iq type='set'><enable xmlns='urn:xmpp:sm:3'/></iq>");
        assert_eq!(carbons_request(&enable), Some(true));
        assert_eq!(carbons_request(&disable), Some(false));
        assert_eq!(carbons_request(&other), None);
    }
}
