//! The presence of this shard's sessions, by full JID: the last available presence each one
//! broadcast (answered to probes) and the rooms it joined (left for it when it goes away).
//!
//! What it does not do: decide who hears a presence (see `presence`) or keep rosters.
//!
//! Invariants: an entry exists only while its session has sent available presence or
//! occupies a room; it is taken out when the session's presence ends (unavailable, stream
//! end without resumption, resumption timeout), which is when the rooms are told.

use std::sync::Arc;

use rookery_proto::Jid;

use crate::effects::StanzaType;
use crate::maps::{HashState, Map};
use crate::router::Router;

/// One session's presence.
#[derive(Debug, Default)]
pub(crate) struct PresenceState {
    /// The last available presence as broadcast (`from` stamped, no `to`).
    pub last: Option<Arc<[u8]>>,
    /// Occupant JIDs (`room@groups/nick`) this session joined.
    pub rooms: Vec<Jid>,
}

/// Presence states of this shard's sessions.
#[derive(Debug)]
pub(crate) struct PresenceTable {
    by_full: Map<Box<str>, PresenceState>,
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
