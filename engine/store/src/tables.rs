//! The in-memory tables of one shard: offline queues per owner and an index by message id.
//!
//! What it does: FIFO queues keyed by the owner's bare JID, lookup and removal by id, and the
//! byte count of the live Put records (the log's non-dead part, for compaction).
//!
//! What it does not do: I/O or quota checks (the store checks before inserting).
//!
//! Invariants: every message is in exactly one queue and in the index, under the same id; a
//! queue is sorted by id (ids are handed out increasing, and insertion keeps order even if
//! they were not), so lookups inside a queue are binary searches; an empty queue is removed.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::kv::KvTables;

/// A message id, unique per shard across restarts. Ids start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(pub u64);

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message waiting in an offline queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: MsgId,
    /// Sender's full JID.
    pub from: Box<str>,
    /// Receive time, ms since the Unix epoch (for the XEP-0203 delay stamp).
    pub stamp_ms: u64,
    /// The stanza as routed.
    pub stanza: Box<[u8]>,
}

/// Where a message lives, and the size of its Put record.
#[derive(Debug)]
struct IndexEntry {
    owner: Arc<str>,
    record_len: u32,
}

/// Offline queues plus the id index.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    // `Arc` so the index shares the owner key instead of copying it per message; the store is
    // single-threaded, but `Arc` keeps it `Send` so a shard can be built before its thread.
    queues: HashMap<Arc<str>, VecDeque<StoredMessage>>,
    index: HashMap<u64, IndexEntry>,
    live_record_bytes: u64,
    /// The keyed tables (rosters, groups), beside the queues.
    pub(crate) kv: KvTables,
}

impl Tables {
    /// Adds `msg` at the end of `owner`'s queue. Returns false (and changes nothing) if the id
    /// is already present.
    pub(crate) fn insert(&mut self, owner: &str, msg: StoredMessage, record_len: u32) -> bool {
        let id = msg.id.0;
        if self.index.contains_key(&id) {
            return false;
        }
        let key = match self.queues.get_key_value(owner) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(owner),
        };
        let queue = self.queues.entry(Arc::clone(&key)).or_default();
        match queue.back() {
            Some(last) if last.id > msg.id => {
                let at = queue.partition_point(|m| m.id < msg.id);
                queue.insert(at, msg);
            }
            _ => queue.push_back(msg),
        }
        self.index.insert(
            id,
            IndexEntry {
                owner: key,
                record_len,
            },
        );
        self.live_record_bytes += u64::from(record_len);
        true
    }

    /// Removes message `id`; returns whether it existed.
    pub(crate) fn remove(&mut self, id: MsgId) -> bool {
        let Some(entry) = self.index.remove(&id.0) else {
            return false;
        };
        self.live_record_bytes -= u64::from(entry.record_len);
        if let Entry::Occupied(mut queue) = self.queues.entry(entry.owner) {
            let messages = queue.get_mut();
            if messages.front().is_some_and(|m| m.id == id) {
                // The common case: clients acknowledge in order.
                messages.pop_front();
            } else if let Ok(at) = messages.binary_search_by_key(&id, |m| m.id) {
                messages.remove(at);
            }
            if messages.is_empty() {
                queue.remove();
            }
        }
        true
    }

    /// The queue of `owner`, oldest first.
    pub(crate) fn queue(&self, owner: &str) -> impl Iterator<Item = &StoredMessage> {
        self.queues.get(owner).into_iter().flatten()
    }

    pub(crate) fn queue_len(&self, owner: &str) -> usize {
        self.queues.get(owner).map_or(0, VecDeque::len)
    }

    /// Owners with at least one message, in no particular order.
    pub(crate) fn owners(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(|k| &**k)
    }

    pub(crate) fn get(&self, id: MsgId) -> Option<&StoredMessage> {
        let entry = self.index.get(&id.0)?;
        let queue = self.queues.get(&entry.owner)?;
        let at = queue.binary_search_by_key(&id, |m| m.id).ok()?;
        queue.get(at)
    }

    /// The owner of message `id`.
    pub(crate) fn owner_of(&self, id: MsgId) -> Option<&str> {
        self.index.get(&id.0).map(|e| &*e.owner)
    }

    /// Every message with its owner: queues in no particular order, each oldest first.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &StoredMessage)> {
        self.queues
            .iter()
            .flat_map(|(owner, queue)| queue.iter().map(move |m| (&**owner, m)))
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn owner_count(&self) -> usize {
        self.queues.len()
    }

    /// Bytes of the live records: Puts of the live messages and Sets of the keyed entries.
    pub(crate) fn live_record_bytes(&self) -> u64 {
        self.live_record_bytes + self.kv.live_record_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64) -> StoredMessage {
        StoredMessage {
            id: MsgId(id),
            from: "a@x/r".into(),
            stamp_ms: id * 10,
            stanza: vec![id as u8; 3].into(),
        }
    }

    fn ids(tables: &Tables, owner: &str) -> Vec<u64> {
        tables.queue(owner).map(|m| m.id.0).collect()
    }

    #[test]
    fn fifo_per_owner_and_removal_anywhere() {
        let mut t = Tables::default();
        for id in 1..=5 {
            assert!(t.insert(if id % 2 == 0 { "b@x" } else { "c@x" }, msg(id), 10));
        }
        assert_eq!(ids(&t, "c@x"), [1, 3, 5]);
        assert_eq!(ids(&t, "b@x"), [2, 4]);
        assert_eq!(t.live_record_bytes(), 50);
        assert!(t.remove(MsgId(3)));
        assert!(!t.remove(MsgId(3)));
        assert_eq!(ids(&t, "c@x"), [1, 5]);
        assert_eq!(t.get(MsgId(5)).map(|m| m.stamp_ms), Some(50));
        assert_eq!(t.owner_of(MsgId(4)), Some("b@x"));
        assert!(t.remove(MsgId(2)) && t.remove(MsgId(4)));
        assert_eq!(t.owner_count(), 1, "empty queue removed");
        assert_eq!(t.queue_len("b@x"), 0);
        assert_eq!((t.len(), t.live_record_bytes()), (2, 20));
    }

    #[test]
    fn duplicate_ids_are_refused_and_order_is_kept() {
        let mut t = Tables::default();
        assert!(t.insert("o", msg(5), 1));
        assert!(!t.insert("o", msg(5), 1));
        assert!(t.insert("o", msg(2), 1));
        assert!(t.insert("o", msg(9), 1));
        assert_eq!(ids(&t, "o"), [2, 5, 9]);
        assert_eq!(t.get(MsgId(2)).map(|m| m.id), Some(MsgId(2)));
        assert_eq!(t.all().count(), 3);
    }
}
