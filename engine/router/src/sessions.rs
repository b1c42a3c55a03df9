//! The session directory of one shard: bare JID -> the conn slots of its bound resources.
//!
//! What it does not do: hold per-session data (resource, priority and availability live on the
//! `Conn`; the directory only indexes slots) or know about other shards (every resource of a
//! user is on the user's home shard, so this directory is complete for the users it homes).
//!
//! Storage: keys are a 96-bit keyed fingerprint of the bare JID (`HashState::fingerprint`),
//! not the string: the JID's bytes live once, in each session's `Conn`. A user with one
//! session is an entry of `one` (16 bytes: fingerprint and slot, no heap); a user with two or
//! more sessions is an entry of `many` instead (its slots in a boxed slice), so the common
//! case pays for no list. A lookup by a full JID's `bare_str()` allocates nothing.
//!
//! Invariants: a fingerprint is in at most one of `one` and `many`; a list in `many` has two
//! or more slots; a slot appears under at most one bare JID, at most once. Two bare JIDs never
//! share a fingerprint in practice (2^-96 per pair under keys drawn from the OS); the session
//! directory's binders check it anyway (`Router::enter_directory` asserts that the slots
//! already listed are bound to the same bare JID), and users of `SmTable`'s detached index
//! compare the kept JID where it decides anything (`end_detached`).

use crate::maps::{Fingerprint, HashState, Map};

/// Bare JID -> session slots, for the users homed on this shard.
#[derive(Debug)]
pub struct Directory {
    /// Users with exactly one session.
    one: Map<Fingerprint, u32>,
    /// Users with two or more: a boxed slice, not a `Vec` (no spare capacity); a bind or an
    /// end rebuilds it (users have a handful of resources).
    many: Map<Fingerprint, Box<[u32]>>,
    hash: HashState,
    sessions: usize,
}

impl Directory {
    pub fn new(hash: HashState) -> Directory {
        Directory {
            one: hash.map(),
            many: hash.map(),
            hash,
            sessions: 0,
        }
    }

    /// Adds a bound session. The caller has checked the full JID is not bound already.
    pub fn insert(&mut self, bare: &str, slot: u32) {
        let key = self.hash.fingerprint(bare);
        if let Some(first) = self.one.remove(&key) {
            self.many.insert(key, Box::new([first, slot]));
        } else if let Some(list) = self.many.get_mut(&key) {
            let mut slots = list.to_vec();
            slots.push(slot);
            *list = slots.into_boxed_slice();
        } else {
            self.one.insert(key, slot);
        }
        self.sessions += 1;
    }

    /// Removes a session; a no-op if it is not there.
    pub fn remove(&mut self, bare: &str, slot: u32) {
        let key = self.hash.fingerprint(bare);
        if self.one.get(&key) == Some(&slot) {
            self.one.remove(&key);
            self.sessions -= 1;
            return;
        }
        let Some(list) = self.many.get_mut(&key) else {
            return;
        };
        if !list.contains(&slot) {
            return;
        }
        self.sessions -= 1;
        let kept: Vec<u32> = list.iter().copied().filter(|&s| s != slot).collect();
        if let [only] = kept.as_slice() {
            self.many.remove(&key);
            self.one.insert(key, *only);
        } else {
            *list = kept.into_boxed_slice();
        }
    }

    /// The session slots of `bare` (empty if it has none here).
    pub fn slots(&self, bare: &str) -> &[u32] {
        let key = self.hash.fingerprint(bare);
        if let Some(slot) = self.one.get(&key) {
            return std::slice::from_ref(slot);
        }
        if self.many.is_empty() {
            return &[];
        }
        self.many.get(&key).map_or(&[], |list| list)
    }

    /// The `index`th slot of `bare`'s sessions: for walking them while the caller mutates
    /// other tables (a hash lookup per step, no copy of the list).
    pub fn slot_at(&self, bare: &str, index: usize) -> Option<u32> {
        self.slots(bare).get(index).copied()
    }

    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Both tables by capacity x (key + value + control byte), plus the slot slices of users
    /// with more than one session.
    pub fn heap_bytes(&self) -> usize {
        let one = std::mem::size_of::<(Fingerprint, u32)>() + 1;
        let many = std::mem::size_of::<(Fingerprint, Box<[u32]>)>() + 1;
        let lists: usize = self
            .many
            .values()
            .map(|l| std::mem::size_of_val(&**l))
            .sum();
        self.one.capacity() * one + self.many.capacity() * many + lists
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
        assert_eq!(dir.one.len() + dir.many.len(), 1, "only b's entry is left");
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
        assert_eq!(dir.one.get(&key), Some(&6));
        assert!(dir.many.is_empty());
    }

    #[test]
    fn an_entry_of_a_user_with_one_session_is_16_bytes() {
        let entry = std::mem::size_of::<(Fingerprint, u32)>();
        assert!(entry <= 16, "a directory entry grew to {entry} bytes");
    }
}
