//! The presence of this shard's sessions, by full JID: the last available presence each one
//! broadcast (answered to probes) when it said more than a plain `<presence/>`, and the rooms
//! it joined (left for it when it goes away).
//!
//! What it does not do: decide who hears a presence (see `presence`), keep rosters, or say
//! whether a session is available (`Session::available`, `Detached::available` do).
//!
//! Storage: an idle session that sent a plain `<presence/>` has no entry at all (its
//! broadcast, `<presence from='full'/>`, is rebuilt from the JID: see `plain_presence`), so
//! the common case costs neither a second copy of the full JID as key nor the stanza.
//!
//! Invariants: an entry exists only while its session's last available presence was not
//! plain or it occupies a room; it is taken out when the session's presence ends
//! (unavailable, stream end without resumption, resumption timeout), which is when the rooms
//! are told. `last` is `Some` only while the session is available.

use std::sync::Arc;

use rookery_proto::Jid;

use crate::effects::StanzaType;
use crate::maps::{HashState, Map};
use crate::replies;
use crate::router::Router;

/// One session's presence.
#[derive(Debug, Default)]
pub(crate) struct PresenceState {
    /// The last available presence as broadcast (`from` stamped, no `to`), unless it was
    /// plain (then `None`, and `plain_presence` rebuilds it).
    pub last: Option<Arc<[u8]>>,
    /// Occupant JIDs (`room@groups/nick`) this session joined.
    pub rooms: Vec<Jid>,
}

/// Presence states of this shard's sessions.
#[derive(Debug)]
pub(crate) struct PresenceTable {
    by_full: Map<Box<str>, PresenceState>,
}

/// The broadcast form of a plain `<presence/>` from `full`: `<presence from='full'/>`, as
/// `StanzaView::stamp` writes it.
pub(crate) fn plain_presence(full: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<presence");
    replies::attr(out, "from", full);
    out.extend_from_slice(b"/>");
}

/// Whether `stanza` (a stamped available presence from `full`) is plain, so that no copy need
/// be kept. Without allocating: a JID with a byte that escaping changes never counts as plain
/// (its presence is kept, which is merely less compact).
pub(crate) fn is_plain_presence(full: &str, stanza: &[u8]) -> bool {
    let escaped = |b: &u8| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'');
    stanza
        .strip_prefix(b"<presence from='")
        .and_then(|rest| rest.strip_suffix(b"'/>"))
        .is_some_and(|middle| middle == full.as_bytes() && !middle.iter().any(escaped))
}

impl PresenceTable {
    pub fn new(hash: HashState) -> PresenceTable {
        PresenceTable {
            by_full: hash.map(),
        }
    }

    pub fn get(&self, full: &str) -> Option<&PresenceState> {
        self.by_full.get(full)
    }

    pub fn entry(&mut self, full: &str) -> &mut PresenceState {
        if !self.by_full.contains_key(full) {
            self.by_full.insert(full.into(), PresenceState::default());
        }
        // Inserted just above when missing.
        self.by_full.get_mut(full).expect("entry present")
    }

    /// Remembers `full`'s last available presence: `None` when it was plain.
    pub fn set_last(&mut self, full: &str, last: Option<Arc<[u8]>>) {
        match last {
            Some(last) => self.entry(full).last = Some(last),
            None => {
                if let Some(state) = self.by_full.get_mut(full) {
                    state.last = None;
                }
                self.tidy(full);
            }
        }
    }

    pub fn take(&mut self, full: &str) -> Option<PresenceState> {
        self.by_full.remove(full)
    }

    /// Drops the entry if it holds nothing.
    pub fn tidy(&mut self, full: &str) {
        if self
            .by_full
            .get(full)
            .is_some_and(|s| s.last.is_none() && s.rooms.is_empty())
        {
            self.by_full.remove(full);
        }
    }
}

impl Router {
    /// Remembers (available) or forgets (unavailable) that `from` occupies `occupant`
    /// (`room@groups/nick`), so the room hears of it if the session goes away; a leave waits
    /// for its answer (see `departures`).
    pub(crate) fn track_room_presence(&mut self, from: &Jid, occupant: &Jid, ty: StanzaType) {
        if occupant.resource().is_none() {
            return;
        }
        let state = self.home.presences.entry(from.as_str());
        state
            .rooms
            .retain(|joined| joined.bare_str() != occupant.bare_str());
        if ty == StanzaType::Available {
            state.rooms.push(occupant.clone());
        }
        self.home.presences.tidy(from.as_str());
        if ty == StanzaType::Unavailable {
            let now_ms = self.home.now_ms;
            self.home.departures.left(from, occupant, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stamped_empty_presence_is_plain() {
        let full = "a@e.com/r";
        let mut plain = Vec::new();
        plain_presence(full, &mut plain);
        assert_eq!(plain, b"<presence from='a@e.com/r'/>");
        assert!(is_plain_presence(full, &plain));
        assert!(!is_plain_presence("a@e.com/s", &plain));
        assert!(!is_plain_presence(
            full,
            b"<presence from='a@e.com/r'><show>away</show></presence>"
        ));
        assert!(!is_plain_presence(
            full,
            b"<presence id='x' from='a@e.com/r'/>"
        ));
        assert!(!is_plain_presence(
            full,
            b"<presence from='a@e.com/r' xml:lang='en'/>"
        ));
        // A JID that escaping changes is kept rather than compared escaped.
        let odd = "a@e.com/it's";
        let mut escaped = Vec::new();
        plain_presence(odd, &mut escaped);
        assert!(!is_plain_presence(odd, &escaped));
    }

    #[test]
    fn a_plain_presence_after_a_kept_one_drops_the_entry_unless_rooms_need_it() {
        let mut table = PresenceTable::new(HashState::from_seed(0));
        let rich: Arc<[u8]> =
            Arc::from(&b"<presence from='a@e.com/r'><show>dnd</show></presence>"[..]);
        table.set_last("a@e.com/r", Some(Arc::clone(&rich)));
        assert!(table.get("a@e.com/r").is_some_and(|s| s.last.is_some()));
        table.set_last("a@e.com/r", None);
        assert!(table.get("a@e.com/r").is_none(), "nothing left to keep");
        table.set_last("a@e.com/r", Some(rich));
        let occupant = Jid::parse("room@groups.e.com/nick").expect("a valid occupant JID");
        table.entry("a@e.com/r").rooms.push(occupant);
        table.set_last("a@e.com/r", None);
        let state = table.get("a@e.com/r").expect("kept for its room");
        assert!(state.last.is_none());
        assert_eq!(state.rooms.len(), 1);
    }
}
