//! The duplicate window of a home shard: a one-to-one message that reaches its recipient's
//! home a second time (same sender, same recipient, same stanza id) is not stored or written
//! again, and its sender is acknowledged as for the first copy.
//!
//! Why: across nodes a sender's node answers `remote-server-timeout` when a `Deliver` or its
//! `Committed` is lost for good, and a client resends what was not acknowledged after a
//! reconnect or a XEP-0198 resumption that failed; when the home had stored the first copy,
//! the resend would reach the recipient twice. The window catches those resends.
//!
//! What it does: remembers, per shard, the key `sender bare JID, recipient bare JID, id` of
//! every stored one-to-one message that carries an id, with the store seq of its put; FIFO,
//! bounded by entries and bytes (`RouterConfig::dup_window_entries`, `dup_window_bytes`):
//! when either is full the oldest key leaves. The recipient is part of the key (the brief
//! asked for sender and id): ids are only unique per sender in practice, and a client that
//! reuses an id for another contact must not lose that message.
//!
//! What it does not do: survive a restart (it lives in memory: a resend after the home node
//! restarted is stored again), filter messages without an id, group messages (a resend to a
//! room is a new room message) or anything that is not stored (headlines, presence, iq), or
//! hold ids longer than [`MAX_ID_BYTES`] (not filtered).
//!
//! Invariants: `len() <= max_entries` and `bytes() <= max_bytes` after every call; a lookup
//! only answers `Some` for a key equal byte for byte to one remembered (the map is keyed by
//! a keyed SipHash of the key, and the key itself is compared): a hash collision forgets the
//! older key (a duplicate might then pass: it fails open, never drops a new message).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use crate::maps::{HashState, Map};

/// Ids longer than this are not remembered (so a message with one is never filtered).
pub const MAX_ID_BYTES: usize = 256;
/// Bytes an entry costs besides its key: the map slot, the FIFO slot and the allocation.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// The window of one shard (see the module docs).
#[derive(Debug)]
pub(crate) struct DupWindow {
    hash: HashState,
    by_hash: Map<u64, Remembered>,
    /// Oldest first: the key's hash and its serial (a stale slot, whose key was replaced in
    /// the map, is skipped when it leaves).
    order: VecDeque<(u64, u64)>,
    next_serial: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Scratch for the key being looked up; reused.
    key: Vec<u8>,
}

#[derive(Debug)]
struct Remembered {
    serial: u64,
    /// The store seq of the first copy's put: its commit acknowledges the duplicates too.
    seq: u64,
    key: Box<[u8]>,
}

impl Remembered {
    fn cost(&self) -> usize {
        self.key.len() + ENTRY_OVERHEAD_BYTES
    }
}

impl DupWindow {
    /// A window of at most `max_entries` keys and `max_bytes` bytes (either 0: disabled).
    pub fn new(hash: HashState, max_entries: usize, max_bytes: usize) -> DupWindow {
        DupWindow {
            hash,
            by_hash: hash.map(),
            order: VecDeque::new(),
            next_serial: 0,
            bytes: 0,
            max_entries,
            max_bytes,
            key: Vec::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// Builds the key into the scratch; false when it is not filtered (no window, long id).
    fn build_key(&mut self, sender: &str, recipient: &str, id: &str) -> bool {
        if !self.enabled() || id.len() > MAX_ID_BYTES {
            return false;
        }
        // NUL cannot occur in a JID or in an XML attribute: the parts cannot run together.
        self.key.clear();
        for part in [sender, recipient, id] {
            self.key.extend_from_slice(part.as_bytes());
            self.key.push(0);
        }
        true
    }

    /// The store seq of the first copy of this message, if it is in the window.
    pub fn original(&mut self, sender: &str, recipient: &str, id: &str) -> Option<u64> {
        if !self.build_key(sender, recipient, id) {
            return None;
        }
        let hash = self.hash.hash_one(&self.key[..]);
        let found = self.by_hash.get(&hash)?;
        (*found.key == self.key[..]).then_some(found.seq)
    }

    /// Remembers a message stored at store seq `seq`; the oldest keys leave to make room.
    pub fn remember(&mut self, sender: &str, recipient: &str, id: &str, seq: u64) {
        if !self.build_key(sender, recipient, id) {
            return;
        }
        let key: Box<[u8]> = self.key.as_slice().into();
        let hash = self.hash.hash_one(&key[..]);
        let entry = Remembered {
            serial: self.next_serial,
            seq,
            key,
        };
        let cost = entry.cost();
        if cost > self.max_bytes {
            return;
        }
        while self.order.len() >= self.max_entries || self.bytes + cost > self.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        self.order.push_back((hash, self.next_serial));
        self.next_serial += 1;
        self.bytes += cost;
        if let Some(replaced) = self.by_hash.insert(hash, entry) {
            // A collision (or the same key again): the older key is forgotten now.
            self.bytes -= replaced.cost();
        }
    }

    /// Drops the oldest FIFO slot (and its key, unless it was replaced); false when empty.
    fn evict_oldest(&mut self) -> bool {
        let Some((hash, serial)) = self.order.pop_front() else {
            return false;
        };
        if self.by_hash.get(&hash).is_some_and(|e| e.serial == serial) {
            if let Some(gone) = self.by_hash.remove(&hash) {
                self.bytes -= gone.cost();
            }
        }
        true
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Bytes the keys are charged (key bytes plus [`ENTRY_OVERHEAD_BYTES`] each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(entries: usize, bytes: usize) -> DupWindow {
        DupWindow::new(HashState::from_seed(7), entries, bytes)
    }

    #[test]
    fn a_key_is_sender_recipient_and_id_exactly() {
        let mut w = window(16, 1 << 20);
        w.remember("a@x", "b@x", "m1", 5);
        assert_eq!(w.original("a@x", "b@x", "m1"), Some(5));
        assert_eq!(w.original("a@x", "c@x", "m1"), None, "another recipient");
        assert_eq!(w.original("c@x", "b@x", "m1"), None, "another sender");
        assert_eq!(w.original("a@x", "b@x", "m2"), None, "another id");
        assert_eq!(
            w.original("a@x", "b@xm1", ""),
            None,
            "parts do not run together"
        );
    }

    #[test]
    fn the_oldest_key_leaves_when_entries_or_bytes_are_full() {
        let mut w = window(3, 1 << 20);
        for (n, id) in ["1", "2", "3", "4"].iter().enumerate() {
            w.remember("a@x", "b@x", id, n as u64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.original("a@x", "b@x", "1"), None);
        assert_eq!(w.original("a@x", "b@x", "4"), Some(3));

        let cost = "a@x b@x 1 ".len() + ENTRY_OVERHEAD_BYTES;
        let mut w = window(100, 2 * cost);
        for id in ["1", "2", "3"] {
            w.remember("a@x", "b@x", id, 1);
        }
        assert_eq!((w.len(), w.bytes()), (2, 2 * cost));
        assert_eq!(w.original("a@x", "b@x", "1"), None);
        assert_eq!(w.original("a@x", "b@x", "3"), Some(1));
    }

    #[test]
    fn disabled_or_long_ids_are_never_filtered() {
        let mut off = window(0, 1 << 20);
        off.remember("a@x", "b@x", "m", 1);
        assert_eq!(off.original("a@x", "b@x", "m"), None);
        let mut w = window(4, 1 << 20);
        let long = "i".repeat(MAX_ID_BYTES + 1);
        w.remember("a@x", "b@x", &long, 1);
        assert_eq!((w.len(), w.original("a@x", "b@x", &long)), (0, None));
    }
}
