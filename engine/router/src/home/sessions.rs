//! Per-session home state, keyed by the conn's slot: what the home layer needs of a bound
//! session (its conn key to write to, presence, the presence rate budget, its XEP-0198
//! session, a `<resume/>` waiting for its answer), apart from the stream layer's `Conn`.
//!
//! What it does not do: hold the session's full JID (that stays on the stream layer's `Conn`
//! and is passed in as `&Jid` where needed) or index sessions by JID (see `Directory`).
//!
//! Storage: a `Vec` indexed by slot, like the conn slab, so a lookup is an index and an idle
//! session costs `size_of::<Option<Session>>()` (32 B on x86_64) here on top of its `Conn`
//! (80 B): 112 B in all (`Conn` alone was 160 B before the split and the boxed framer).
//! Pending resumptions are rare and live in a side map.
//!
//! Invariants: an entry exists from bind (or a `<resume/>` that waits, or an attach) until
//! the conn leaves the directory or is removed from the slab; `open` with another key
//! replaces a stale entry, so a reused slot never sees the previous occupant's state.

use crate::effects::ConnKey;
use crate::home::csi::Held;
use crate::home::sm::SessionRef;
use crate::maps::{HashState, Map};

/// One bound session (or a conn whose `<resume/>` waits) on this shard.
#[derive(Debug)]
pub(crate) struct Session {
    /// The conn it writes to.
    pub key: ConnKey,
    /// Initial presence sent and not withdrawn (RFC 6121 4.2).
    pub available: bool,
    pub priority: i8,
    /// Presence stanzas taken from its rate budget and not yet earned back, and when the
    /// budget was last refilled (see `Router::presence_allowed`).
    pub presence_spent: u32,
    pub presence_refill_ms: u64,
    /// Its XEP-0198 session, once `<enable/>` succeeded (the state lives in `SmTable`): see
    /// `sm()`.
    sm: SmLink,
    /// XEP-0280 carbons enabled (see `carbons`).
    pub carbons: bool,
    /// It asked for its XEP-0191 blocklist: it gets the list's pushes.
    pub blocklist_wanted: bool,
}

/// An `Option<SessionRef>` in 8 bytes, not 16: `NONE` is a token no session has (slot index
/// `u32::MAX`, which `SmTable` never hands out: its slots fit in `u32` and one is never
/// reached). It keeps `Session` at 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SmLink(u64);

impl SmLink {
    const NONE: SmLink = SmLink(u64::MAX);

    fn new(token: Option<SessionRef>) -> SmLink {
        match token {
            Some(token) => {
                assert!(token.index() != u32::MAX, "sm slot u32::MAX is reserved");
                SmLink(token.0)
            }
            None => SmLink::NONE,
        }
    }

    fn get(self) -> Option<SessionRef> {
        (self != SmLink::NONE).then_some(SessionRef(self.0))
    }
}

/// A `<resume/>` waiting until the old stream's stanzas are handled (see `sm::resume`).
#[derive(Debug)]
pub(crate) struct PendingResume {
    /// The session being resumed.
    pub token: SessionRef,
    /// Past it the resumption fails (`SM_RESUME_WAIT_MS` after the `<resume/>`).
    pub deadline_ms: u64,
    /// What the client sent after `<resume/>`: parsed once it is answered.
    pub held: Vec<u8>,
}

impl Session {
    fn new(key: ConnKey) -> Session {
        Session {
            key,
            available: false,
            priority: 0,
            presence_spent: 0,
            presence_refill_ms: 0,
            sm: SmLink::NONE,
            carbons: false,
            blocklist_wanted: false,
        }
    }

    /// Its XEP-0198 session, once `<enable/>` succeeded (the state lives in `SmTable`).
    pub fn sm(&self) -> Option<SessionRef> {
        self.sm.get()
    }

    pub fn set_sm(&mut self, token: Option<SessionRef>) {
        self.sm = SmLink::new(token);
    }

    /// Available with a non-negative priority: gets messages sent to the bare JID.
    pub fn reachable(&self) -> bool {
        self.available && self.priority >= 0
    }
}

/// The sessions of this shard by slot.
#[derive(Debug)]
pub(crate) struct Sessions {
    slots: Vec<Option<Session>>,
    /// `<resume/>`s waiting for their answer, by slot: rare, so kept apart and `Session`
    /// stays small. A slot here always has a `Session` with the same conn key.
    pending: Map<u32, PendingResume>,
    /// XEP-0352 inactive sessions, by slot, with what is held for them (see `csi`): only
    /// inactive sessions have an entry. A slot here always has a `Session`.
    held: Map<u32, Held>,
}

impl Sessions {
    pub fn new(hash: HashState) -> Sessions {
        Sessions {
            slots: Vec::new(),
            pending: hash.map(),
            held: hash.map(),
        }
    }

    pub fn get(&self, slot: u32) -> Option<&Session> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Session> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The session of the conn `key` in `slot`, created if there is none (or only a stale
    /// one of an earlier occupant).
    pub fn open(&mut self, slot: u32, key: ConnKey) -> &mut Session {
        let index = slot as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        let entry = &mut self.slots[index];
        if entry.as_ref().is_some_and(|s| s.key != key) {
            *entry = None;
            self.pending.remove(&slot);
            self.held.remove(&slot);
        }
        entry.get_or_insert_with(|| Session::new(key))
    }

    pub fn remove(&mut self, slot: u32) -> Option<Session> {
        self.pending.remove(&slot);
        self.held.remove(&slot);
        self.slots.get_mut(slot as usize)?.take()
    }

    /// Whether the session in `slot` said `<inactive/>` (XEP-0352) and not `<active/>` since.
    pub fn is_inactive(&self, slot: u32) -> bool {
        !self.held.is_empty() && self.held.contains_key(&slot)
    }

    /// What is held for the inactive session in `slot`.
    pub fn held_mut(&mut self, slot: u32) -> Option<&mut Held> {
        if self.held.is_empty() {
            return None;
        }
        self.held.get_mut(&slot)
    }

    /// Marks the session in `slot` inactive (nothing held yet); no session, no entry.
    pub fn set_inactive(&mut self, slot: u32) {
        if self.get(slot).is_some() {
            self.held.entry(slot).or_default();
        }
    }

    /// What was held for the session in `slot`, taken (it is no longer inactive).
    pub fn take_held(&mut self, slot: u32) -> Option<Held> {
        self.held.remove(&slot)
    }

    /// Marks the session in `slot` active, dropping its (flushed) list.
    pub fn set_active(&mut self, slot: u32) {
        self.held.remove(&slot);
    }

    /// Makes the conn `key` in `slot` wait for the answer to its `<resume/>`.
    pub fn hold(&mut self, slot: u32, key: ConnKey, pending: PendingResume) {
        self.open(slot, key);
        self.pending.insert(slot, pending);
    }

    /// The `<resume/>` the conn in `slot` waits on, if any.
    pub fn pending(&self, slot: u32) -> Option<&PendingResume> {
        self.pending.get(&slot)
    }

    pub fn pending_mut(&mut self, slot: u32) -> Option<&mut PendingResume> {
        self.pending.get_mut(&slot)
    }

    /// Ends the wait of the conn in `slot` (answered or given up).
    pub fn take_pending(&mut self, slot: u32) -> Option<PendingResume> {
        self.pending.remove(&slot)
    }

    /// The table by capacity, the pending map by capacity (entry + 1 control byte) and the
    /// bytes held for pending resumptions.
    pub fn heap_bytes(&self) -> usize {
        let table = self.slots.capacity() * std::mem::size_of::<Option<Session>>();
        let entry = std::mem::size_of::<(u32, PendingResume)>() + 1;
        let held: usize = self.pending.values().map(|r| r.held.capacity()).sum();
        let inactive = std::mem::size_of::<(u32, Held)>() + 1;
        let kept: usize = self.held.values().map(Held::heap_bytes).sum();
        table + self.pending.capacity() * entry + held + self.held.capacity() * inactive + kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gets_a_fresh_session() {
        let mut sessions = Sessions::new(HashState::from_seed(0));
        let first = sessions.open(3, ConnKey(1));
        first.available = true;
        first.priority = 5;
        assert!(sessions.get(3).is_some_and(Session::reachable));
        // Same conn: the same session.
        assert_eq!(sessions.open(3, ConnKey(1)).priority, 5);
        // Another conn in the slot: nothing of the old occupant survives.
        let second = sessions.open(3, ConnKey(2));
        assert!(!second.available);
        assert_eq!(second.priority, 0);
        assert!(sessions.get(2).is_none());
        let pending = PendingResume {
            token: SessionRef::new(0, 0),
            deadline_ms: 5,
            held: Vec::new(),
        };
        sessions.hold(3, ConnKey(2), pending);
        assert!(sessions.pending(3).is_some());
        // A new occupant does not inherit the wait either.
        sessions.open(3, ConnKey(4));
        assert!(sessions.pending(3).is_none());
        assert!(sessions.remove(3).is_some());
        assert!(sessions.get(3).is_none());
    }

    #[test]
    fn the_sm_link_round_trips() {
        let mut session = Session::new(ConnKey(1));
        assert_eq!(session.sm(), None);
        let token = SessionRef::new(7, u32::MAX);
        session.set_sm(Some(token));
        assert_eq!(session.sm(), Some(token));
        session.set_sm(None);
        assert_eq!(session.sm(), None);
    }

    #[test]
    fn session_state_is_small() {
        let bytes = std::mem::size_of::<Option<Session>>();
        println!("Option<Session> {bytes} B");
        assert!(bytes <= 32, "Session grew to {bytes} bytes");
    }
}
