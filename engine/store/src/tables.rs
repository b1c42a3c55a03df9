//! The in-memory tables of one shard: an index of the offline queues (per owner, FIFO) and, for
//! a store without a log, the stanzas themselves.
//!
//! Why an index: a durable store keeps every queued stanza in its log, so memory holds only
//! where each one is ([`Queued`], 32 bytes) and reads the stanza back when it is delivered.
//! Memory then grows with the number of queued messages, not their size: 1,000,000 queued
//! messages cost ~32-64 MB (the queue's capacity slack) however large they are. A `Memory`
//! store has no log, so it keeps the stanzas here, by id.
//!
//! What it does: FIFO queues keyed by the owner's bare JID, lookup and removal by (owner, id),
//! byte counts per owner and in all (for quotas and compaction).
//!
//! What it does not do: I/O or quota checks (the store checks before inserting).
//!
//! Invariants: every message is in exactly one queue; a queue is sorted by id (ids are handed
//! out increasing, and insertion keeps order even if they were not), so lookups inside a queue
//! are binary searches; an empty queue is removed; `bodies` is `Some` exactly for a store
//! without a log and then holds one entry per queued message.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::kv::KvTables;

/// A message id, unique per shard across restarts. Ids start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MsgId(pub u64);

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message waiting in an offline queue: its id, stamp and where its stanza is. The stanza
/// itself is read with `Store::body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Its id.
    pub id: MsgId,
    /// Receive time, ms since the Unix epoch (for the XEP-0203 delay stamp).
    pub stamp_ms: u64,
    /// Log offset of the stanza bytes (the end of its Put record); 0 without a log.
    pub(crate) stanza_at: u64,
    /// Bytes of the stanza.
    pub(crate) stanza_len: u32,
    /// Bytes of its Put record before the stanza (frame, fixed fields, owner, sender).
    pub(crate) head_len: u16,
}

impl Queued {
    /// Bytes of the stanza as routed (without a delay stamp).
    pub fn stanza_len(&self) -> usize {
        self.stanza_len as usize
    }

    /// Bytes of its Put record, frame included.
    pub fn record_len(&self) -> u32 {
        self.stanza_len + u32::from(self.head_len)
    }

    /// Log offset of its Put record.
    pub fn record_at(&self) -> u64 {
        self.stanza_at - u64::from(self.head_len)
    }
}

/// One owner's queue and its size.
#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Queued>,
    /// Sum of the record bytes of `messages`.
    record_bytes: u64,
}

/// Offline queues plus, without a log, the stanzas.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    queues: HashMap<Arc<str>, Queue>,
    /// Bytes of the owner keys in `queues` (for the O(1) memory estimate).
    owner_key_bytes: usize,
    live_messages: usize,
    live_record_bytes: u64,
    /// The stanzas by id, for a store without a log (see the module doc).
    bodies: Option<HashMap<u64, Box<[u8]>>>,
    /// The keyed tables (rosters, groups), beside the queues.
    pub(crate) kv: KvTables,
}

impl Tables {
    /// Tables that keep the stanzas in memory (a store without a log).
    pub(crate) fn with_bodies() -> Tables {
        Tables {
            bodies: Some(HashMap::new()),
            ..Tables::default()
        }
    }

    /// Adds `msg` at the end of `owner`'s queue, with its stanza when this table keeps them.
    /// Returns false (and changes nothing) if the id is already in that queue.
    pub(crate) fn insert(&mut self, owner: &str, msg: Queued, stanza: Option<&[u8]>) -> bool {
        if !self.queues.contains_key(owner) {
            self.owner_key_bytes += owner.len();
        }
        let queue = match self.queues.get_mut(owner) {
            Some(queue) => queue,
            None => self.queues.entry(Arc::from(owner)).or_default(),
        };
        let at = match queue.messages.back() {
            Some(last) if last.id >= msg.id => {
                match queue.messages.binary_search_by_key(&msg.id, |m| m.id) {
                    Ok(_) => return false,
                    Err(at) => at,
                }
            }
            _ => queue.messages.len(),
        };
        queue.messages.insert(at, msg);
        queue.record_bytes += u64::from(msg.record_len());
        self.live_messages += 1;
        self.live_record_bytes += u64::from(msg.record_len());
        if let (Some(bodies), Some(stanza)) = (self.bodies.as_mut(), stanza) {
            bodies.insert(msg.id.0, stanza.into());
        }
        true
    }

    /// Removes message `id` of `owner`; returns whether it existed.
    pub(crate) fn remove(&mut self, owner: &str, id: MsgId) -> bool {
        let Some(queue) = self.queues.get_mut(owner) else {
            return false;
        };
        let found = if queue.messages.front().is_some_and(|m| m.id == id) {
            Some(0) // the common case: clients acknowledge in order
        } else {
            queue.messages.binary_search_by_key(&id, |m| m.id).ok()
        };
        let Some(msg) = found.and_then(|at| queue.messages.remove(at)) else {
            return false;
        };
        queue.record_bytes -= u64::from(msg.record_len());
        let (len, capacity) = (queue.messages.len(), queue.messages.capacity());
        if len == 0 {
            self.queues.remove(owner);
            self.owner_key_bytes -= owner.len();
        } else if capacity > 64 && len * 4 < capacity {
            // A drained backlog gives its memory back instead of keeping its peak.
            queue.messages.shrink_to(len * 2);
        }
        self.live_messages -= 1;
        self.live_record_bytes -= u64::from(msg.record_len());
        if let Some(bodies) = self.bodies.as_mut() {
            bodies.remove(&id.0);
        }
        true
    }

    /// The queue of `owner`, oldest first.
    pub(crate) fn queue(&self, owner: &str) -> impl Iterator<Item = &Queued> {
        self.queues
            .get(owner)
            .into_iter()
            .flat_map(|q| q.messages.iter())
    }

    /// The messages of `owner`'s queue with an id above `after`, oldest first.
    pub(crate) fn queue_after(&self, owner: &str, after: MsgId) -> impl Iterator<Item = &Queued> {
        let messages = self.queues.get(owner).map(|q| &q.messages);
        let start = messages.map_or(0, |m| m.partition_point(|q| q.id <= after));
        messages.into_iter().flat_map(move |m| m.range(start..))
    }

    /// Message `id` of `owner`, if queued.
    pub(crate) fn get(&self, owner: &str, id: MsgId) -> Option<&Queued> {
        let messages = &self.queues.get(owner)?.messages;
        let at = messages.binary_search_by_key(&id, |m| m.id).ok()?;
        messages.get(at)
    }

    /// The kept stanza of message `id` (tables with bodies only).
    pub(crate) fn body(&self, id: MsgId) -> Option<&[u8]> {
        self.bodies.as_ref()?.get(&id.0).map(|b| &**b)
    }

    pub(crate) fn queue_len(&self, owner: &str) -> usize {
        self.queues.get(owner).map_or(0, |q| q.messages.len())
    }

    /// Record bytes of `owner`'s queue.
    pub(crate) fn queue_bytes(&self, owner: &str) -> u64 {
        self.queues.get(owner).map_or(0, |q| q.record_bytes)
    }

    /// Owners with at least one message, in no particular order.
    pub(crate) fn owners(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(|k| &**k)
    }

    /// Every queue, in an order that stays the same while the tables do not change
    /// (compaction copies the records in this order, then moves the index with `queues_mut`).
    pub(crate) fn queues(&self) -> impl Iterator<Item = &VecDeque<Queued>> {
        self.queues.values().map(|q| &q.messages)
    }

    /// Every queue, mutably, in the order of `queues`.
    pub(crate) fn queues_mut(&mut self) -> impl Iterator<Item = &mut VecDeque<Queued>> {
        self.queues.values_mut().map(|q| &mut q.messages)
    }

    /// The owner key shared by every message of `owner` (replay indexes acks by it).
    pub(crate) fn owner_key(&self, owner: &str) -> Option<Arc<str>> {
        self.queues.get_key_value(owner).map(|(k, _)| Arc::clone(k))
    }

    pub(crate) fn len(&self) -> usize {
        self.live_messages
    }

    pub(crate) fn owner_count(&self) -> usize {
        self.queues.len()
    }

    /// Bytes of the live records: Puts of the live messages and Sets of the keyed entries.
    pub(crate) fn live_record_bytes(&self) -> u64 {
        self.live_record_bytes + self.kv.live_record_bytes()
    }

    /// Bytes of the live Put records alone (the stored-bytes budget counts these).
    pub(crate) fn message_record_bytes(&self) -> u64 {
        self.live_record_bytes
    }

    /// Heap bytes of the message index (queues and their keys), estimated in O(1): entries
    /// by length (a queue's spare capacity is not counted: up to as much again), the map by
    /// capacity, keys with their `Arc` counts.
    pub(crate) fn index_heap_bytes(&self) -> usize {
        let map = self.queues.capacity() * (std::mem::size_of::<(Arc<str>, Queue)>() + 1);
        let keys = self.owner_key_bytes + self.queues.len() * 16;
        map + keys + self.live_messages * std::mem::size_of::<Queued>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64) -> Queued {
        Queued {
            id: MsgId(id),
            stamp_ms: id * 10,
            stanza_at: 100 * id,
            stanza_len: 7,
            head_len: 3,
        }
    }

    fn ids(tables: &Tables, owner: &str) -> Vec<u64> {
        tables.queue(owner).map(|m| m.id.0).collect()
    }

    #[test]
    fn queued_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Queued>(), 32);
    }

    #[test]
    fn fifo_per_owner_and_removal_anywhere() {
        let mut t = Tables::default();
        for id in 1..=5 {
            assert!(t.insert(if id % 2 == 0 { "b@x" } else { "c@x" }, msg(id), None));
        }
        assert_eq!(ids(&t, "c@x"), [1, 3, 5]);
        assert_eq!(ids(&t, "b@x"), [2, 4]);
        assert_eq!(t.live_record_bytes(), 50);
        assert_eq!(t.queue_bytes("c@x"), 30);
        assert!(t.remove("c@x", MsgId(3)));
        assert!(!t.remove("c@x", MsgId(3)));
        assert!(!t.remove("b@x", MsgId(1)), "another owner's id");
        assert_eq!(ids(&t, "c@x"), [1, 5]);
        assert_eq!(t.get("c@x", MsgId(5)).map(|m| m.stamp_ms), Some(50));
        assert!(t.remove("b@x", MsgId(2)) && t.remove("b@x", MsgId(4)));
        assert_eq!(t.owner_count(), 1, "empty queue removed");
        assert_eq!(t.queue_len("b@x"), 0);
        assert_eq!((t.len(), t.live_record_bytes()), (2, 20));
    }

    #[test]
    fn duplicate_ids_are_refused_and_order_is_kept() {
        let mut t = Tables::default();
        assert!(t.insert("o", msg(5), None));
        assert!(!t.insert("o", msg(5), None));
        assert!(t.insert("o", msg(2), None));
        assert!(t.insert("o", msg(9), None));
        assert_eq!(ids(&t, "o"), [2, 5, 9]);
        let after: Vec<u64> = t.queue_after("o", MsgId(2)).map(|m| m.id.0).collect();
        assert_eq!(after, [5, 9]);
        let after: Vec<u64> = t.queue_after("o", MsgId(0)).map(|m| m.id.0).collect();
        assert_eq!(after, [2, 5, 9]);
        assert_eq!(t.queue_after("o", MsgId(9)).count(), 0);
        assert_eq!(t.queue_after("nobody", MsgId(0)).count(), 0);
    }

    #[test]
    fn bodies_are_kept_only_when_asked_and_go_with_their_message() {
        let mut t = Tables::with_bodies();
        assert!(t.insert("o", msg(1), Some(b"<m/>")));
        assert_eq!(t.body(MsgId(1)), Some(&b"<m/>"[..]));
        assert!(t.remove("o", MsgId(1)));
        assert_eq!(t.body(MsgId(1)), None);
        let mut t = Tables::default();
        assert!(t.insert("o", msg(1), Some(b"<m/>")));
        assert_eq!(t.body(MsgId(1)), None);
    }
}
