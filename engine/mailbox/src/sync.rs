//! The synchronisation primitives the mailbox is built from, swapped for loom's under `cfg(loom)`.
//!
//! What it does: names one `Lane<T>` type (a bounded queue with `push`/`pop`/`is_empty`/`len`),
//! plus the atomics, fence and `Arc` the protocol uses. In normal builds `Lane` is
//! crossbeam-queue's lock-free `ArrayQueue`; under `cfg(loom)` it is [`LoomLane`], a small
//! bounded ring written with loom atomics so that loom explores our protocol.
//!
//! What it does not do: the loom lane is not a model of `ArrayQueue`'s internals. It models the
//! *contract* the mailbox relies on, and no more: FIFO, bounded, a full push hands the value
//! back, and emptiness is decided by plain atomic loads of the indices (Acquire/Release only, no
//! lock around the check). That last point matters: a lane behind a `Mutex` would make
//! `prepare_to_sleep`'s check synchronise with the sender's push through the lock and hide a
//! missing SeqCst fence from loom. With this ring, removing either fence in `mailbox.rs` makes
//! the loom tests fail (checked by hand when the model was written).
//!
//! Invariants (loom lane): one producer and one consumer per lane (the grid's SPSC rule);
//! `tail - head <= capacity`; a slot `i % capacity` holds `Some` exactly when
//! `head <= i < tail`.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

/// One single-producer single-consumer lane of the grid.
#[cfg(not(loom))]
pub(crate) type Lane<T> = crossbeam_queue::ArrayQueue<T>;

/// One single-producer single-consumer lane of the grid (loom build).
#[cfg(loom)]
pub(crate) type Lane<T> = LoomLane<T>;

#[cfg(loom)]
pub(crate) use loom_lane::LoomLane;

#[cfg(loom)]
mod loom_lane {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Mutex;

    /// A bounded SPSC ring on loom atomics. Slots sit behind loom mutexes only because this
    /// crate forbids `unsafe` (no `UnsafeCell` ring); the slot lock is never what decides
    /// whether the lane is empty or full, the indices are.
    pub(crate) struct LoomLane<T> {
        /// Next index to pop; written by the consumer only.
        head: AtomicUsize,
        /// Next index to push; written by the producer only.
        tail: AtomicUsize,
        slots: Vec<Mutex<Option<T>>>,
    }

    impl<T> LoomLane<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            assert!(capacity > 0, "lane capacity must be at least 1");
            Self {
                head: AtomicUsize::new(0),
                tail: AtomicUsize::new(0),
                slots: (0..capacity).map(|_| Mutex::new(None)).collect(),
            }
        }

        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            // Relaxed: only this producer writes `tail`.
            let tail = self.tail.load(Ordering::Relaxed);
            // Acquire pairs with the consumer's Release store of `head` in `pop`: the slot we
            // are about to reuse has been emptied.
            let head = self.head.load(Ordering::Acquire);
            if tail - head == self.slots.len() {
                return Err(value);
            }
            let mut slot = lock(&self.slots[tail % self.slots.len()]);
            assert!(slot.is_none(), "loom lane: pushing into an occupied slot");
            *slot = Some(value);
            drop(slot);
            // Release pairs with the consumer's Acquire load of `tail`: the value is published.
            self.tail.store(tail + 1, Ordering::Release);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Option<T> {
            // Relaxed: only this consumer writes `head`.
            let head = self.head.load(Ordering::Relaxed);
            // Acquire pairs with the producer's Release store of `tail` in `push`.
            let tail = self.tail.load(Ordering::Acquire);
            if head == tail {
                return None;
            }
            let value = lock(&self.slots[head % self.slots.len()]).take();
            assert!(
                value.is_some(),
                "loom lane: popping an empty slot below tail"
            );
            // Release pairs with the producer's Acquire load of `head`: the slot is free.
            self.head.store(head + 1, Ordering::Release);
            value
        }

        pub(crate) fn len(&self) -> usize {
            // Acquire on both: an estimate, like `ArrayQueue::len`, never used for correctness.
            let tail = self.tail.load(Ordering::Acquire);
            let head = self.head.load(Ordering::Acquire);
            tail.saturating_sub(head)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    fn lock<T>(slot: &Mutex<Option<T>>) -> loom::sync::MutexGuard<'_, Option<T>> {
        // A poisoned slot means a loom thread already panicked; the model has failed anyway.
        match slot.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
