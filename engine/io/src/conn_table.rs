//! Conn slots and output queues, shared by both backends.
//!
//! - [`ConnTable`]: a slab (`Vec` of slots + a LIFO free list of indices). Every slot carries a
//!   generation that is bumped when the slot is freed, so a [`ConnId`] kept by an upper layer
//!   after its conn ended never reaches the conn that reuses the slot (`get` returns `None`).
//! - [`OutQueue`]: the bytes queued for one peer, as two buffers: `flight` (being written;
//!   under io_uring the kernel reads it, so it must not move or change until the send's
//!   completion is reaped) and `next` (accumulating new sends). When `flight` is fully written
//!   the two swap. The queue exists only while non-empty: an idle conn holds no heap buffer.
//! - [`QueuePool`]: a small per-driver stock of empty queues, so steady traffic does not
//!   allocate per message while idle conns still hold nothing.
//!
//! Slot sizes (x86_64), checked by unit tests in the backends (`slot_is_small`): io_uring slot
//! (`ConnTable<uring::UConn>`) 40 bytes; poll slot (`ConnTable<poll::PConn>`) 32 bytes (48 in
//! debug builds, where mio adds a selector id to each socket). Plus, only while bytes are
//! queued, the boxed `OutQueue` (64 bytes + buffer capacity), and for io_uring only while
//! connecting or detaching, the boxed `Extra` (sockaddr or leftover bytes).
//!
//! What it does not do: any I/O, or decide when a slot is freed (the backends free a slot only
//! after every operation that refers to it has completed).

use crate::{ConnId, SendError};

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Bytes one slot of a `ConnTable<T>` takes (for the size budget tests).
#[cfg(test)]
pub(crate) fn slot_bytes<T>() -> usize {
    std::mem::size_of::<Slot<T>>()
}

/// Slab of conns with generation-checked ids.
pub(crate) struct ConnTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> ConnTable<T> {
    pub fn new() -> ConnTable<T> {
        ConnTable {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, value: T) -> ConnId {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.value.is_none());
            slot.value = Some(value);
            return ConnId {
                index,
                generation: slot.generation,
            };
        }
        // u32 indices: 4 billion conns per shard is far past any fd limit.
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        assert!(index < u32::MAX, "conn table full");
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        ConnId {
            index,
            generation: 0,
        }
    }

    pub fn get(&self, id: ConnId) -> Option<&T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The current id of an occupied slot (used to resolve keys that carry only part of the
    /// generation).
    pub fn id_at(&self, index: u32) -> Option<ConnId> {
        let slot = self.slots.get(index as usize)?;
        slot.value.as_ref()?;
        Some(ConnId {
            index,
            generation: slot.generation,
        })
    }

    /// Frees the slot and makes `id` stale.
    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        Some(value)
    }
}

/// Bytes queued for one peer. See the module doc for the two-buffer invariant.
#[derive(Default)]
pub(crate) struct OutQueue {
    flight: Vec<u8>,
    /// Bytes of `flight` already written.
    flight_done: usize,
    next: Vec<u8>,
    /// A write of `flight[flight_done..]` is in progress: `flight` must not be touched.
    writing: bool,
}

impl OutQueue {
    pub fn queued(&self) -> usize {
        self.flight.len() - self.flight_done + self.next.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued() == 0
    }

    /// Appends to `next` (never to `flight`, which may be in the kernel's hands).
    pub fn push(&mut self, bytes: &[u8]) {
        self.next.extend_from_slice(bytes);
    }

    /// Starts a write: returns the bytes to write, or `None` if nothing is queued. The slice
    /// stays valid and unmoved until `end_write` (the only method touching `flight`).
    pub fn begin_write(&mut self) -> Option<&[u8]> {
        assert!(!self.writing, "one write at a time per conn");
        if self.flight_done == self.flight.len() {
            self.flight.clear();
            self.flight_done = 0;
            std::mem::swap(&mut self.flight, &mut self.next);
        }
        if self.flight.is_empty() {
            return None;
        }
        self.writing = true;
        Some(&self.flight[self.flight_done..])
    }

    /// Ends the write started by `begin_write`; `written` bytes left the queue.
    pub fn end_write(&mut self, written: usize) {
        debug_assert!(self.writing);
        self.writing = false;
        self.flight_done = (self.flight_done + written).min(self.flight.len());
    }

    /// Drops bytes not yet handed to a write (`Linger::Abort`); a write in progress keeps its
    /// buffer until `end_write`.
    pub fn drop_unsent(&mut self) {
        self.next.clear();
        if !self.writing {
            self.flight.clear();
            self.flight_done = 0;
        }
    }
}

/// How many empty queues a driver keeps for reuse.
const POOL_MAX_QUEUES: usize = 64;
/// Buffers above this capacity are shrunk before pooling, so the pool holds at most
/// `POOL_MAX_QUEUES * 2 * POOL_KEEP_BYTES` (2 MiB) per driver.
const POOL_KEEP_BYTES: usize = 16 * 1024;

/// Per-driver stock of empty output queues.
#[derive(Default)]
pub(crate) struct QueuePool {
    // Boxed on purpose: conns hold `Box<OutQueue>`, and the pool recycles those boxes.
    #[allow(clippy::vec_box)]
    free: Vec<Box<OutQueue>>,
}

impl QueuePool {
    pub fn take(&mut self) -> Box<OutQueue> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a queue that is empty and not being written.
    pub fn give(&mut self, mut queue: Box<OutQueue>) {
        assert!(
            !queue.writing,
            "a queue in flight must never be freed or reused"
        );
        if self.free.len() >= POOL_MAX_QUEUES {
            return;
        }
        queue.drop_unsent();
        queue.flight.shrink_to(POOL_KEEP_BYTES);
        queue.next.shrink_to(POOL_KEEP_BYTES);
        self.free.push(queue);
    }
}

/// `send` for either backend: checks the limit (an empty queue takes any one write), then
/// appends to the conn's queue (created on demand from the pool). Nothing is queued on
/// error.
pub(crate) fn enqueue(
    out: &mut Option<Box<OutQueue>>,
    pool: &mut QueuePool,
    bytes: &[u8],
    max_output_bytes: usize,
) -> Result<(), SendError> {
    let queued = out.as_ref().map_or(0, |q| q.queued());
    // An empty queue takes one write of any size (contract point 2).
    if queued > 0 && queued.saturating_add(bytes.len()) > max_output_bytes {
        return Err(SendError::QueueFull);
    }
    out.get_or_insert_with(|| pool.take()).push(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generation_checked() {
        let mut t = ConnTable::new();
        let a = t.insert("a");
        assert_eq!(t.get(a), Some(&"a"));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.get(a), None);
        assert_eq!(t.remove(a), None);
        let b = t.insert("b");
        assert_eq!(b.index, a.index, "free slot reused");
        assert_ne!(b.generation, a.generation);
        assert_eq!(t.get(a), None, "stale id must not reach the new conn");
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.id_at(b.index), Some(b));
    }

    #[test]
    fn free_list_is_lifo_and_len_tracks() {
        let mut t = ConnTable::new();
        let ids: Vec<_> = (0..5).map(|i| t.insert(i)).collect();
        assert_eq!(t.len(), 5);
        t.remove(ids[1]);
        t.remove(ids[3]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.insert(9).index, 3);
        assert_eq!(t.insert(9).index, 1);
        assert_eq!(t.insert(9).index, 5);
        assert_eq!(t.len(), 6);
        assert_eq!(
            t.get(ConnId {
                index: 99,
                generation: 0
            }),
            None
        );
    }

    #[test]
    fn out_queue_swaps_buffers_and_keeps_flight_still() {
        let mut q = OutQueue::default();
        q.push(b"hello");
        let ptr = q.begin_write().unwrap().as_ptr();
        q.push(b" world"); // goes to `next` while `flight` is being written
        assert_eq!(q.queued(), 11);
        q.end_write(2);
        assert_eq!(q.begin_write().unwrap(), b"llo");
        assert_eq!(
            q.flight.as_ptr(),
            ptr,
            "flight did not move during the write"
        );
        q.end_write(3);
        assert_eq!(q.begin_write().unwrap(), b" world");
        q.end_write(6);
        assert!(q.is_empty());
        assert!(q.begin_write().is_none());
    }

    #[test]
    fn out_queue_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<OutQueue>(), 64);
    }

    #[test]
    fn drop_unsent_spares_a_write_in_progress() {
        let mut q = OutQueue::default();
        q.push(b"abc");
        q.begin_write().unwrap();
        q.push(b"def");
        q.drop_unsent();
        assert_eq!(q.queued(), 3);
        q.end_write(3);
        assert!(q.is_empty());
    }

    #[test]
    fn enqueue_enforces_limit_atomically() {
        let mut pool = QueuePool::default();
        let mut out = None;
        assert_eq!(enqueue(&mut out, &mut pool, &[0; 6], 10), Ok(()));
        assert_eq!(
            enqueue(&mut out, &mut pool, &[0; 5], 10),
            Err(SendError::QueueFull)
        );
        assert_eq!(out.as_ref().unwrap().queued(), 6);
        assert_eq!(enqueue(&mut out, &mut pool, &[0; 4], 10), Ok(()));
        let mut empty = None;
        assert_eq!(
            enqueue(&mut empty, &mut pool, &[0; 11], 10),
            Ok(()),
            "one big write"
        );
        assert_eq!(
            enqueue(&mut empty, &mut pool, &[0; 1], 10),
            Err(SendError::QueueFull)
        );
        let q = out.take().unwrap();
        pool.give(q);
        assert!(pool.take().is_empty());
    }
}
