//! XEP-0352 Client State Indication: a client that says `<inactive/>` (a phone with its
//! screen off) gets only what is urgent; presence updates and chat states wait, coalesced,
//! until it says `<active/>` or something urgent has to go out.
//!
//! What it does: classifies what is written to an inactive session (`holdable`), holds it in
//! the session's [`Held`] list (latest per sender and class wins, in order of arrival), and
//! flushes the list in order before anything urgent and on `<active/>`.
//!
//! What is held: presence of type available or unavailable, and messages that carry only
//! XEP-0085 chat states (no body). Everything else is urgent and goes out at once, after the
//! held list: messages with a body, iq, errors, subscriptions, anything with a
//! `urn:xmpp:hints` child (a store hint means the sender wants it kept), carbon copies.
//! XEP-0198 `<a/>`/`<r/>` never pass here (they are written directly) and flush nothing.
//!
//! What it does not do: answer the nonzas (none is answered, XEP-0352 section 2; none is
//! counted by XEP-0198), or keep held stanzas past the session: a session that ends loses
//! what was held (presence is re-sent by probes at next login; chat states are ephemeral);
//! a XEP-0198 session that detaches keeps it in its unacked queue, written on resumption.
//!
//! Invariants:
//! - memory: nothing per session until it goes inactive (a side map entry in `Sessions`),
//!   at most `MAX_HELD_BYTES` held per session; a stanza that would pass it flushes all
//!   held and goes out itself;
//! - order: a held stanza is written before anything written after it was held, except that
//!   a coalesced one takes the place of the newest (its predecessor from the same sender is
//!   dropped); held stanzas are XEP-0198 counted when written, never before.

use std::borrow::Cow;

use rookery_proto::{StanzaKind, StanzaView};

use crate::effects::Effects;
use crate::home::sm::{SessionRef, Unacked};
use crate::home::Home;

pub(crate) const CSI_NS: &str = "urn:xmpp:csi:0";
/// Bytes held for one inactive session (stanzas + senders' JIDs + bookkeeping).
pub(crate) const MAX_HELD_BYTES: usize = 16 * 1024;
const HINTS_NS: &str = "urn:xmpp:hints";
const CHAT_STATES_NS: &str = "http://jabber.org/protocol/chatstates";

/// What kind of non-urgent stanza is held: coalescing is per sender and class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Presence,
    ChatState,
}

/// The stanzas held for one inactive session, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Their cost (`bytes()`) is summed when needed, not kept: the list is walked on every
    /// hold anyway (coalescing), and the side map's entry stays at 32 B.
    entries: Vec<HeldStanza>,
}

#[derive(Debug)]
struct HeldStanza {
    class: Class,
    from: Box<str>,
    bytes: Box<[u8]>,
}

impl HeldStanza {
    fn cost(&self) -> usize {
        std::mem::size_of::<HeldStanza>() + self.from.len() + self.bytes.len()
    }
}

/// What became of a stanza offered to `Held::hold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Held (`true`: it replaced an older one from the same sender and class).
    Held { coalesced: bool },
    /// It would pass `MAX_HELD_BYTES`: not held; flush everything, then write it.
    Full,
}

impl Held {
    /// Holds `bytes` from `from`, dropping an earlier one of the same sender and class.
    pub fn hold(&mut self, class: Class, from: &str, bytes: &[u8]) -> Hold {
        let entry = HeldStanza {
            class,
            from: from.into(),
            bytes: bytes.into(),
        };
        let old = self
            .entries
            .iter()
            .position(|e| e.class == class && *e.from == *from);
        let freed = old.map_or(0, |i| self.entries[i].cost());
        if self.bytes() - freed + entry.cost() > MAX_HELD_BYTES {
            return Hold::Full;
        }
        if let Some(i) = old {
            self.entries.remove(i);
        }
        self.entries.push(entry);
        Hold::Held {
            coalesced: old.is_some(),
        }
    }

    /// Everything held, oldest first; the list is left empty (its capacity is released).
    pub fn take(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| e.bytes)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes charged against `MAX_HELD_BYTES`.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(HeldStanza::cost).sum()
    }

    /// Heap bytes: the list by capacity, the stanzas and senders.
    pub fn heap_bytes(&self) -> usize {
        let spare = self.entries.capacity() - self.entries.len();
        self.bytes() + spare * std::mem::size_of::<HeldStanza>()
    }
}

/// The class and sender of a stanza an inactive session may wait for, or None when it is
/// urgent. `stanza` is as it goes on the wire (its `from` stamped by us).
pub(crate) fn holdable(stanza: &[u8]) -> Option<(Class, Cow<'_, str>)> {
    let view = StanzaView::parse(stanza).ok()?;
    let from = view.from()?;
    let ty = view.stanza_type();
    let mut children = view.children();
    match view.kind() {
        StanzaKind::Presence => {
            let broadcast = matches!(ty.as_deref(), None | Some("unavailable"));
            let hinted = children.any(|c| c.xmlns == Some(HINTS_NS));
            (broadcast && !hinted).then_some((Class::Presence, from))
        }
        StanzaKind::Message => {
            if matches!(ty.as_deref(), Some("error")) {
                return None;
            }
            let mut states = 0;
            for child in children {
                if child.xmlns != Some(CHAT_STATES_NS) {
                    return None;
                }
                states += 1;
            }
            (states > 0).then_some((Class::ChatState, from))
        }
        StanzaKind::Iq | StanzaKind::Other => None,
    }
}

impl Home {
    /// The XEP-0352 gate of `Home::send`: true when `stanza` was held for the inactive
    /// session in `slot`; false when it is to be written now (and what was held went first).
    /// `chat_state_only`: hold only a chat state (a stored message's live copy).
    pub(crate) fn csi_hold(
        &mut self,
        slot: u32,
        stanza: &[u8],
        chat_state_only: bool,
        fx: &mut impl Effects,
    ) -> bool {
        if !self.sessions.is_inactive(slot) {
            return false;
        }
        let class = holdable(stanza).filter(|(c, _)| !chat_state_only || *c == Class::ChatState);
        let Some((class, from)) = class else {
            self.flush_held(slot, fx);
            return false;
        };
        let Some(held) = self.sessions.held_mut(slot) else {
            return false;
        };
        match held.hold(class, &from, stanza) {
            Hold::Held { coalesced } => {
                self.stats.csi_held += 1;
                self.stats.csi_coalesced += u64::from(coalesced);
                true
            }
            Hold::Full => {
                self.flush_held(slot, fx);
                false
            }
        }
    }

    /// Writes everything held for the session in `slot`, oldest first (it stays inactive).
    pub(crate) fn flush_held(&mut self, slot: u32, fx: &mut impl Effects) {
        let Some(held) = self.sessions.held_mut(slot) else {
            return;
        };
        if held.is_empty() {
            return;
        }
        for bytes in held.take() {
            self.send_now(slot, &bytes, fx);
        }
    }

    /// The session `token` (XEP-0198) detached while inactive: what was held joins its
    /// unacked queue, written after `<resumed/>` (as far as the queue has room; what does not
    /// fit is lost like anything else for a detached session).
    pub(crate) fn keep_held_for_resume(&mut self, token: SessionRef, mut held: Held) {
        let max = self.sm_max_unacked_bytes;
        let Some(session) = self.sm.get_mut(token) else {
            return;
        };
        for bytes in held.take() {
            if session.room_for_any(bytes.len(), max) {
                let _ = session.push_unacked(Unacked::Bytes(bytes));
            }
        }
    }

    /// `<inactive/>` (true) or `<active/>` (false) from the session in `slot`; becoming
    /// active writes what was held and frees the list.
    pub(crate) fn set_client_state(&mut self, slot: u32, inactive: bool, fx: &mut impl Effects) {
        if inactive {
            self.sessions.set_inactive(slot);
            return;
        }
        self.flush_held(slot, fx);
        self.sessions.set_active(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(stanza: &str) -> Option<Class> {
        holdable(stanza.as_bytes()).map(|(c, _)| c)
    }

    #[test]
    fn only_presence_and_chat_states_wait() {
        assert_eq!(class("<presence from='a@x/1'/>"), Some(Class::Presence));
        assert_eq!(
            class("<presence from='a@x/1' type='unavailable'/>"),
            Some(Class::Presence)
        );
        assert_eq!(class("<presence from='a@x/1' type='subscribe'/>"), None);
        assert_eq!(class("<presence from='a@x/1' type='error'/>"), None);
        assert_eq!(
            class("<presence from='a@x/1'><store xmlns='urn:xmpp:hints'/></presence>"),
            None
        );
        let state = "<message from='a@x/1' type='chat'>\
                     <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(class(state), Some(Class::ChatState));
        let with_body = "<message from='a@x/1' type='chat'><body>x</body>\
                         <active xmlns='http://jabber.org/protocol/chatstates'/></message>";
        assert_eq!(class(with_body), None);
        assert_eq!(class("<message from='a@x/1' type='chat'/>"), None);
        assert_eq!(class("<iq from='a@x/1' type='get' id='1'/>"), None);
    }

    #[test]
    fn an_inactive_session_costs_one_small_entry() {
        assert_eq!(std::mem::size_of::<(u32, Held)>(), 32);
    }

    #[test]
    fn latest_per_sender_wins_and_the_budget_holds() {
        let mut held = Held::default();
        let first = held.hold(Class::Presence, "a@x/1", b"<presence n='1'/>");
        assert_eq!(first, Hold::Held { coalesced: false });
        held.hold(Class::Presence, "b@x/1", b"<presence n='2'/>");
        let again = held.hold(Class::Presence, "a@x/1", b"<presence n='3'/>");
        assert_eq!(again, Hold::Held { coalesced: true });
        held.hold(Class::ChatState, "a@x/1", b"<message n='4'/>");
        let big = vec![b'x'; MAX_HELD_BYTES];
        assert_eq!(held.hold(Class::Presence, "c@x/1", &big), Hold::Full);
        let order: Vec<_> = held.take().into_iter().collect();
        let order: Vec<&[u8]> = order.iter().map(|b| &b[..]).collect();
        assert_eq!(
            order,
            [
                &b"<presence n='2'/>"[..],
                b"<presence n='3'/>",
                b"<message n='4'/>"
            ]
        );
        assert_eq!(held.bytes(), 0);
        assert!(held.is_empty());
    }
}
