//! Per-conn state and the slab that holds it.
//!
//! What it does not do: interpret frames (see `stream`, `routing`, `local`) or decide
//! deadlines (see `Router::deadline_ms`). It is plain storage with a small state enum.
//!
//! Storage choice: a slab (`Vec` of slots + free list) indexed by a `u32` slot number, plus an
//! index from the server's opaque key to the slot: a hash table of bare slot numbers, hashed
//! by their conn's key and compared against the key in the slab (hashbrown's `HashTable`), so
//! an entry is 4 bytes (+1 control byte), not the 16 of a `(ConnKey, u32)` map entry. The index
//! keeps the router independent of how the server numbers its conns. Slot generations make
//! stale timer entries harmless after a slot is reused.
//!
//! Stream state only: a bound session's presence, rate budget, XEP-0198 token and pending
//! resumption are the home layer's (`home::sessions::Session`, by slot); the full JID stays
//! here and is passed to the home layer as `&Jid`.
//!
//! Size (measured by the `conn_state_is_small` test, x86_64): `Conn` is 80 bytes with a
//! 24-byte framer; one slab slot is 80 bytes, the slot's generation included (plus 32 for a
//! bound session's `Session`).
//! An idle conn owns no buffer: the framer drops its heap part between stanzas and the only
//! other heap is the JID string.
//!
//! Invariants: a slot is `Live` exactly while its conn's key is in `index`; `framer` is
//! `None` only while `on_data` is feeding that conn (it is moved out to free `&mut Router`);
//! while its session has a pending resumption the framer parses nothing (bytes go to
//! `PendingResume::held`).

use rookery_proto::{Framer, Jid};

use crate::effects::ConnKey;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::maps::HashState;
use crate::stream::header::Dialect;
use crate::timers::TimerEntry;

/// Where a conn is in RFC 6120's sequence (header, SASL, restart, bind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected; waiting for the client's stream header.
    AwaitHeader,
    /// Header and pre-auth features sent; waiting for `<auth/>`.
    AwaitAuth,
    /// `<auth/>` came without an initial response; an empty challenge was sent.
    AwaitResponse,
    /// SASL succeeded; waiting for the restarted stream header.
    AwaitRestart,
    /// Restarted; waiting for the bind iq.
    AwaitBind,
    /// A session: resource bound, in the directory.
    Bound,
    /// Stream closed by us; waiting for `on_closed`. Input is ignored.
    Closing,
    /// A XEP-0114 component's conn (the component listener): waiting for its header.
    ComponentHeader,
    /// A component's header was answered; waiting for its `<handshake>`.
    ComponentHandshake,
    /// A component that completed its handshake, attached on its home shard.
    Component,
}

/// One conn of this shard.
pub struct Conn {
    pub key: ConnKey,
    pub framer: Option<Framer>,
    /// Bare JID after SASL success, full JID once bound.
    pub jid: Option<Jid>,
    /// When the conn's auth-and-bind window opened: at connect, and again when a resumption
    /// that made the client wait failed (see `resume`).
    pub connected_ms: u64,
    /// Last time any byte arrived (whitespace keepalives count).
    pub active_ms: u64,
    pub phase: Phase,
    /// Our stream header went out for the current stream (a stream error must follow one).
    pub header_sent: bool,
    pub auth_failures: u8,
    /// The framing of its stream (RFC 6120 or RFC 7395; see `header`).
    pub dialect: Dialect,
    /// Its slab slot's generation (set by `ConnSlab::insert`; kept here, in what would be
    /// padding, so a slot is the conn's 80 bytes and no more: see `Slot`).
    generation: u32,
}

// Manual: `Framer` has no Debug impl; show whether it is present and what it buffers.
impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("key", &self.key)
            .field(
                "framer_buffered",
                &self.framer.as_ref().map(Framer::buffered_bytes),
            )
            .field("jid", &self.jid)
            .field("phase", &self.phase)
            .field("active_ms", &self.active_ms)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub fn new(key: ConnKey, framer: Framer, now_ms: u64) -> Conn {
        Conn {
            key,
            framer: Some(framer),
            jid: None,
            connected_ms: now_ms,
            active_ms: now_ms,
            phase: Phase::AwaitHeader,
            header_sent: false,
            auth_failures: 0,
            dialect: Dialect::Stream,
            generation: 0,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let jid = self.jid.as_ref().map_or(0, Jid::heap_bytes);
        jid + self.framer.as_ref().map_or(0, Framer::heap_bytes)
    }
}

/// A live conn (which holds the slot's generation: `Conn::generation`) or a free slot with
/// the generation of its next conn: 80 bytes either way (the free variant sits in the live
/// one's niche), not 88 as a generation beside an `Option<Conn>` was.
#[derive(Debug)]
enum Slot {
    Live(Conn),
    Free { generation: u32 },
}

impl Slot {
    fn generation(&self) -> u32 {
        match self {
            Slot::Live(conn) => conn.generation,
            Slot::Free { generation } => *generation,
        }
    }

    fn conn(&self) -> Option<&Conn> {
        match self {
            Slot::Live(conn) => Some(conn),
            Slot::Free { .. } => None,
        }
    }

    fn conn_mut(&mut self) -> Option<&mut Conn> {
        match self {
            Slot::Live(conn) => Some(conn),
            Slot::Free { .. } => None,
        }
    }
}

/// All conns of this shard.
#[derive(Debug)]
pub struct ConnSlab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The slot of every live conn, hashed by the conn's key (see the module doc).
    index: HashTable<u32>,
    hash: HashState,
}

/// The key of the live conn in `slot` (every slot in the index is live).
fn key_in(slots: &[Slot], slot: u32) -> Option<ConnKey> {
    Some(slots.get(slot as usize)?.conn()?.key)
}

impl ConnSlab {
    pub fn new(hash: HashState) -> ConnSlab {
        ConnSlab {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hash,
        }
    }

    /// Stores `conn`; returns its slot. The caller removes any conn with the same key first;
    /// if it did not, the old conn is dropped here so the index stays one-to-one.
    pub fn insert(&mut self, mut conn: Conn) -> u32 {
        if let Some(old) = self.slot_of(conn.key) {
            self.remove(old);
        }
        let key = conn.key;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // Invariant: more than 4 billion conns on one shard is impossible (fd limits).
                let slot = u32::try_from(self.slots.len()).expect("conn slots fit in u32");
                self.slots.push(Slot::Free { generation: 0 });
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        conn.generation = entry.generation();
        *entry = Slot::Live(conn);
        let (slots, hash) = (&self.slots, self.hash);
        let rehash = |&other: &u32| hash.hash_one(key_in(slots, other));
        self.index
            .insert_unique(hash.hash_one(Some(key)), slot, rehash);
        slot
    }

    /// Takes the conn out of `slot`; later timer entries for the slot become stale.
    pub fn remove(&mut self, slot: u32) -> Option<Conn> {
        let entry = self.slots.get_mut(slot as usize)?;
        let generation = entry.conn()?.generation.wrapping_add(1);
        let Slot::Live(conn) = std::mem::replace(entry, Slot::Free { generation }) else {
            return None; // Not reached: checked live above.
        };
        let hash = self.hash.hash_one(Some(conn.key));
        if let Ok(indexed) = self.index.find_entry(hash, |&other| other == slot) {
            indexed.remove();
        }
        self.free.push(slot);
        Some(conn)
    }

    pub fn slot_of(&self, key: ConnKey) -> Option<u32> {
        let hash = self.hash.hash_one(Some(key));
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&slot| key_in(slots, slot) == Some(key));
        found.copied()
    }

    pub fn get(&self, slot: u32) -> Option<&Conn> {
        self.slots.get(slot as usize)?.conn()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)?.conn_mut()
    }

    /// The timer entry naming the current occupant of `slot`.
    pub fn timer_entry(&self, slot: u32) -> TimerEntry {
        let generation = self.slots.get(slot as usize).map_or(0, Slot::generation);
        TimerEntry { slot, generation }
    }

    /// The conn a timer entry names, if it is still the same occupant.
    pub fn resolve(&self, entry: TimerEntry) -> Option<&Conn> {
        let conn = self.slots.get(entry.slot as usize)?.conn()?;
        (conn.generation == entry.generation).then_some(conn)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Slots of every live conn (a snapshot, so the caller may mutate while walking it).
    pub fn live_slots(&self) -> Vec<u32> {
        let occupied = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn().is_some());
        occupied.map(|(i, _)| i as u32).collect()
    }

    /// Heap bytes in three: slab and free list, key index, the conns' own heap (JID, framer
    /// buffer). The index
    /// is counted as capacity x (entry + 1 control byte), like hashbrown lays it out.
    pub fn heap_parts(&self) -> (usize, usize, usize) {
        let slab = self.slots.capacity() * std::mem::size_of::<Slot>();
        let free = self.free.capacity() * std::mem::size_of::<u32>();
        let index = self.index.capacity() * (std::mem::size_of::<u32>() + 1);
        let owned: usize = self
            .slots
            .iter()
            .filter_map(Slot::conn)
            .map(Conn::heap_bytes)
            .sum();
        (slab + free, index, owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::FramerLimits;

    fn conn(key: u64) -> Conn {
        Conn::new(
            ConnKey(key),
            Framer::new(FramerLimits {
                max_stanza_bytes: 1024,
            }),
            0,
        )
    }

    #[test]
    fn conn_state_is_small() {
        let conn_bytes = std::mem::size_of::<Conn>();
        let slot_bytes = std::mem::size_of::<Slot>();
        println!(
            "Conn {conn_bytes} B, Slot {slot_bytes} B, Framer {} B",
            std::mem::size_of::<Framer>()
        );
        assert!(conn_bytes <= 80, "Conn grew to {conn_bytes} bytes");
        assert!(slot_bytes <= 80, "Slot grew to {slot_bytes} bytes");
    }

    #[test]
    fn slots_are_reused_and_generations_make_old_entries_stale() {
        let mut slab = ConnSlab::new(HashState::from_seed(0));
        let a = slab.insert(conn(1));
        let stale = slab.timer_entry(a);
        assert!(slab.resolve(stale).is_some());
        assert!(slab.remove(a).is_some());
        assert!(slab.resolve(stale).is_none());
        assert_eq!(slab.slot_of(ConnKey(1)), None);
        let b = slab.insert(conn(2));
        assert_eq!(a, b);
        assert!(slab.resolve(stale).is_none());
        assert_eq!(slab.get(b).map(|c| c.key), Some(ConnKey(2)));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn the_index_finds_every_live_conn_through_growth_and_removals() {
        let mut slab = ConnSlab::new(HashState::from_seed(3));
        let slots: Vec<u32> = (0..3_000)
            .map(|key| slab.insert(conn(key << 32 | 7)))
            .collect();
        for key in (0..3_000).step_by(2) {
            assert!(slab.remove(slots[key as usize]).is_some());
        }
        for key in 0..3_000u64 {
            let found = slab.slot_of(ConnKey(key << 32 | 7));
            let expected = (key % 2 == 1).then_some(slots[key as usize]);
            assert_eq!(found, expected, "key {key}");
        }
        assert_eq!(slab.len(), 1_500);
        // Reused slots are found under their new keys, never the old ones.
        let reused = slab.insert(conn(1 << 40));
        assert_eq!(slab.slot_of(ConnKey(1 << 40)), Some(reused));
        assert_eq!(slab.get(reused).map(|c| c.key), Some(ConnKey(1 << 40)));
    }

    #[test]
    fn a_reused_key_replaces_the_old_conn() {
        let mut slab = ConnSlab::new(HashState::from_seed(0));
        slab.insert(conn(5));
        slab.insert(conn(5));
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.live_slots().len(), 1);
    }
}
