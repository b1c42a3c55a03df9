//! The session directory of one shard: bare JID -> the conn slots of its bound resources.
//!
//! What it does not do: hold per-session data (resource, priority and availability live on the
//! `Conn`; the directory only indexes slots) or know about other shards (every resource of a
//! user is on the user's home shard, so this directory is complete for the users it homes).
//!
//! Storage: keys are a 128-bit keyed fingerprint of the bare JID (`HashState::fingerprint`),
//! not the string: the JID's bytes live once, in each session's `Conn`. An entry is 32 bytes
//! and owns no heap for a user with one resource (`SlotList::One`). A lookup by a full JID's
//! `bare_str()` allocates nothing.
//!
//! Invariants: a slot appears under at most one bare JID, at most once; a key with no slot is
//! removed. Two bare JIDs never share a fingerprint in practice (2^-128 per pair under keys
//! drawn from the OS); the session directory's binders check it anyway
//! (`Router::enter_directory` asserts that the slots already listed are bound to the same
//! bare JID), and users of `SmTable`'s detached index compare the kept JID where it decides
//! anything (`end_detached`).

use crate::maps::{HashState, Map};

/// The slots of one user's sessions: 16 bytes (the `One` slot sits beside the box pointer's
/// null niche), so a directory entry is 32 bytes with its key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SlotList {
    One(u32),
    /// Two or more: a boxed slice, not a `Vec`, since the spare capacity would cost 8 bytes
    /// on every entry; a bind or an end rebuilds it (users have a handful of resources).
    Many(Box<[u32]>),
}

impl SlotList {
    fn as_slice(&self) -> &[u32] {
        match self {
            SlotList::One(slot) => std::slice::from_ref(slot),
            SlotList::Many(slots) => slots,
        }
    }

    fn push(&mut self, slot: u32) {
        let mut slots = self.as_slice().to_vec();
        slots.push(slot);
        *self = SlotList::Many(slots.into_boxed_slice());
    }

    /// Removes `slot`; returns true when the list became empty.
    fn remove(&mut self, slot: u32) -> bool {
        let kept: Vec<u32> = self
            .as_slice()
            .iter()
            .copied()
            .filter(|&s| s != slot)
            .collect();
        match kept.as_slice() {
            [] => return true,
            [only] => *self = SlotList::One(*only),
            _ => *self = SlotList::Many(kept.into_boxed_slice()),
        }
        false
    }

    fn heap_bytes(&self) -> usize {
        match self {
            SlotList::One(_) => 0,
            SlotList::Many(slots) => std::mem::size_of_val::<[u32]>(slots),
        }
    }
}

/// Bare JID -> session slots, for the users homed on this shard.
#[derive(Debug)]
pub struct Directory {
    users: Map<u128, SlotList>,
    hash: HashState,
    sessions: usize,
}

impl Directory {
    pub fn new(hash: HashState) -> Directory {
        Directory {
            users: hash.map(),
            hash,
            sessions: 0,
        }
    }

    /// Adds a bound session. The caller has checked the full JID is not bound already.
    pub fn insert(&mut self, bare: &str, slot: u32) {
        let key = self.hash.fingerprint(bare);
        match self.users.get_mut(&key) {
            Some(list) => list.push(slot),
            None => {
                self.users.insert(key, SlotList::One(slot));
            }
        }
        self.sessions += 1;
    }

    /// Removes a session; a no-op if it is not there.
    pub fn remove(&mut self, bare: &str, slot: u32) {
        let key = self.hash.fingerprint(bare);
        let Some(list) = self.users.get_mut(&key) else {
            return;
        };
        if !list.as_slice().contains(&slot) {
            return;
        }
        self.sessions -= 1;
        if list.remove(slot) {
            self.users.remove(&key);
        }
    }

    /// The session slots of `bare` (empty if it has none here).
    pub fn slots(&self, bare: &str) -> &[u32] {
        let key = self.hash.fingerprint(bare);
        self.users.get(&key).map_or(&[], SlotList::as_slice)
    }

    /// The `index`th slot of `bare`'s sessions: for walking them while the caller mutates
    /// other tables (a hash lookup per step, no copy of the list).
    pub fn slot_at(&self, bare: &str, index: usize) -> Option<u32> {
        self.slots(bare).get(index).copied()
    }

    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Table capacity x (key + value + control byte), plus the slot slices of users with
    /// more than one resource.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u128, SlotList)>() + 1;
        let owned: usize = self.users.values().map(SlotList::heap_bytes).sum();
        self.users.capacity() * entry + owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_added_and_removed_per_user() {
        let mut dir = Directory::new(HashState::from_seed(0));
        dir.insert("a@e.com", 1);
        dir.insert("a@e.com", 2);
        dir.insert("b@e.com", 3);
        assert_eq!(dir.slots("a@e.com"), &[1, 2]);
        assert_eq!(dir.sessions(), 3);
        dir.remove("a@e.com", 1);
        assert_eq!(dir.slots("a@e.com"), &[2]);
        dir.remove("a@e.com", 2);
        assert!(dir.slots("a@e.com").is_empty());
        assert_eq!(dir.sessions(), 1);
        assert_eq!(dir.users.len(), 1, "only b's entry is left");
    }

    #[test]
    fn removing_an_unknown_session_changes_nothing() {
        let mut dir = Directory::new(HashState::from_seed(0));
        dir.insert("a@e.com", 1);
        dir.remove("a@e.com", 9);
        dir.remove("z@e.com", 1);
        assert_eq!(dir.sessions(), 1);
        assert_eq!(dir.slots("a@e.com"), &[1]);
    }

    #[test]
    fn three_resources_shrink_back_to_one() {
        let mut dir = Directory::new(HashState::from_seed(0));
        for slot in [4, 5, 6] {
            dir.insert("a@e.com", slot);
        }
        dir.remove("a@e.com", 5);
        dir.remove("a@e.com", 4);
        let key = dir.hash.fingerprint("a@e.com");
        assert_eq!(dir.users.get(&key), Some(&SlotList::One(6)));
    }

    #[test]
    fn an_entry_is_32_bytes() {
        let entry = std::mem::size_of::<(u128, SlotList)>();
        assert!(entry <= 32, "a directory entry grew to {entry} bytes");
    }
}
