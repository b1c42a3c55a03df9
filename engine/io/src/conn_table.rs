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
//! (`ConnTable<uring::UConn>`) 32 bytes; poll slot (`ConnTable<poll::PConn>`) 24 bytes (40 in
//! debug builds, where mio adds a selector id to each socket). A slot is its conn's bytes: the
//! generation lives in the conn ([`Slotted`]), and so does a 4-byte close reason
//! (`lifecycle::PackedReason`). Plus, only while bytes are
//! queued, the boxed `OutQueue` (64 bytes + buffer capacity), and for io_uring only while
//! connecting or detaching, the boxed `Extra` (sockaddr or leftover bytes).
//!
//! What it does not do: any I/O, or decide when a slot is freed (the backends free a slot only
//! after every operation that refers to it has completed).

use crate::{ConnId, SendError};

/// What a [`ConnTable`] holds: a value that keeps its slot's generation (in what would be its
/// padding), so a live slot is the value's bytes and no more (see `Slot`).
pub(crate) trait Slotted {
    fn generation(&self) -> u32;
    fn set_generation(&mut self, generation: u32);
}

/// A live value (holding the slot's generation) or a free slot with the generation its next
/// value gets: the size of `T` either way (the free variant sits in `T`'s niche), 8 bytes less
/// than a generation beside an `Option<T>`.
enum Slot<T> {
    Live(T),
    Free { generation: u32 },
}

impl<T: Slotted> Slot<T> {
    fn generation(&self) -> u32 {
        match self {
            Slot::Live(value) => value.generation(),
            Slot::Free { generation } => *generation,
        }
    }

    /// The value if `generation` is its slot's.
    fn value(&self, generation: u32) -> Option<&T> {
        match self {
            Slot::Live(value) if value.generation() == generation => Some(value),
            _ => None,
        }
    }

    fn value_mut(&mut self, generation: u32) -> Option<&mut T> {
        match self {
            Slot::Live(value) if value.generation() == generation => Some(value),
            _ => None,
        }
    }
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

impl<T: Slotted> ConnTable<T> {
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

    pub fn insert(&mut self, mut value: T) -> ConnId {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                // u32 indices: 4 billion conns per shard is far past any fd limit.
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                assert!(index < u32::MAX, "conn table full");
                self.slots.push(Slot::Free { generation: 0 });
                index
            }
        };
        self.len += 1;
        let slot = &mut self.slots[index as usize];
        debug_assert!(matches!(slot, Slot::Free { .. }));
        let generation = slot.generation();
        value.set_generation(generation);
        *slot = Slot::Live(value);
        ConnId { index, generation }
    }

    pub fn get(&self, id: ConnId) -> Option<&T> {
        self.slots.get(id.index as usize)?.value(id.generation)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        self.slots
            .get_mut(id.index as usize)?
            .value_mut(id.generation)
    }

    /// The current id of an occupied slot (used to resolve keys that carry only part of the
    /// generation).
    pub fn id_at(&self, index: u32) -> Option<ConnId> {
        match self.slots.get(index as usize)? {
            Slot::Live(value) => Some(ConnId {
                index,
                generation: value.generation(),
            }),
            Slot::Free { .. } => None,
        }
    }

    /// Frees the slot and makes `id` stale.
    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        slot.value(id.generation)?;
        let generation = id.generation.wrapping_add(1);
        let Slot::Live(value) = std::mem::replace(slot, Slot::Free { generation }) else {
            return None; // Not reached: checked live above.
        };
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

    /// A test value with the generation a table keeps in it.
    #[derive(Debug, PartialEq)]
    struct V<T>(T, u32);

    impl<T> Slotted for V<T> {
        fn generation(&self) -> u32 {
            self.1
        }

        fn set_generation(&mut self, generation: u32) {
            self.1 = generation;
        }
    }

    fn v<T>(value: T) -> V<T> {
        V(value, 0)
    }

    #[test]
    fn ids_are_generation_checked() {
        let mut t = ConnTable::new();
        let a = t.insert(v("a"));
        assert_eq!(t.get(a).map(|x| x.0), Some("a"));
        assert_eq!(t.remove(a).map(|x| x.0), Some("a"));
        assert!(t.get(a).is_none());
        assert!(t.remove(a).is_none());
        let b = t.insert(v("b"));
        assert_eq!(b.index, a.index, "free slot reused");
        assert_ne!(b.generation, a.generation);
        assert!(t.get(a).is_none(), "stale id must not reach the new conn");
        assert_eq!(t.get(b).map(|x| x.0), Some("b"));
        assert_eq!(t.id_at(b.index), Some(b));
    }

    #[test]
    fn free_list_is_lifo_and_len_tracks() {
        let mut t = ConnTable::new();
        let ids: Vec<_> = (0..5).map(|i| t.insert(v(i))).collect();
        assert_eq!(t.len(), 5);
        t.remove(ids[1]);
        t.remove(ids[3]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.insert(v(9)).index, 3);
        assert_eq!(t.insert(v(9)).index, 1);
        assert_eq!(t.insert(v(9)).index, 5);
        assert_eq!(t.len(), 6);
        let unknown = ConnId {
            index: 99,
            generation: 0,
        };
        assert!(t.get(unknown).is_none());
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
