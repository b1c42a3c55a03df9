//! One shard's end of the grid: staging, flush, drain, and the sleep/wake protocol.
//!
//! What it does: [`Mailbox`] owns this shard's staging buffers (one `VecDeque` per destination,
//! reused across turns, so no allocation per message once they are warm) and shares the grid
//! (`Shared`: all lanes plus one asleep flag and waker per shard) with the other shards.
//!
//! What it does not do: block, spin, or allocate on the hot path; decide when a shard sleeps
//! (the shard's loop does, through `prepare_to_sleep`).
//!
//! # The sleep/wake protocol (Dekker)
//!
//! Receiver R (in `prepare_to_sleep`): `asleep[R].swap(true); fence(SeqCst); check lanes[*][R]`.
//! Sender S (in `flush`, per destination R that received mail): `push lanes[S][R];
//! fence(SeqCst); if asleep[R] (load) and asleep[R].swap(false) { wake R }`.
//!
//! The two SeqCst fences are totally ordered. If S's fence comes first, every write S made to
//! the lane before it is visible to R's check after R's fence, so R sees mail and does not
//! block. If R's fence comes first, S's load after its fence sees `asleep[R] = true` or a later
//! value in the flag's modification order; a later value is `false` written either by R itself
//! (it is awake again and checks lanes before any new sleep) or by another sender's swap (that
//! sender wakes R). Either way R is not left asleep with mail. The fences, not the accesses,
//! carry the argument: `ArrayQueue`'s internal orderings are not documented as SeqCst, and loom
//! models SeqCst fences faithfully but not SeqCst accesses.
//!
//! The sender's plain load before the swap is a fast path: while the receiver is awake (the
//! common case under load) the flag's cache line stays shared instead of bouncing to every
//! sender on every flush. It is sound because the fence-to-load edge above needs no RMW; the
//! swap only decides *which* sender wakes R, so a sleeping R gets one wake, not several.
//!
//! Every write to the flag is a swap (an RMW), the receiver's included. On x86 a SeqCst store
//! is an `xchg` anyway, so this costs nothing there, and it is off the hot path (once per sleep).
//! It makes the flag's modification order explicit to loom: loom orders a plain store only
//! after the stores its thread has seen, so with plain `store(true)` it explores a sender load
//! reading the sender's own older `false` after the receiver's newer `true` (impossible in
//! C++, where the RMW sits right after the store it read), and reports a false lost wake-up.
//! An RMW always reads the newest write, so every write sees the one before it.
//!
//! Invariants: `staged == sum(staging[d].len())`; `staging[self]` stays empty; a shard's flag
//! is only set while its waker is registered.

use std::collections::VecDeque;
use std::fmt;
use std::sync::OnceLock;

use crate::sync::{fence, Arc, AtomicBool, Lane, Ordering};
use crate::{FlushStats, ShardId, WakeFn};

/// Per-shard state other shards touch: the asleep flag and how to wake the shard. Aligned to
/// two cache lines (the adjacent-line prefetcher pairs lines) so that one shard's flag traffic
/// does not slow its neighbours'.
#[repr(align(128))]
struct Peer {
    /// Set by `prepare_to_sleep`; cleared by it (mail found), by `awake`, or by the one sender
    /// whose swap wakes the shard.
    asleep: AtomicBool,
    waker: OnceLock<WakeFn>,
}

/// The grid every [`Mailbox`] of one engine shares.
pub(crate) struct Shared<T> {
    shards: usize,
    /// `lanes[src * shards + dst]`; the diagonal is never used (capacity 1, to stay simple).
    lanes: Vec<Lane<T>>,
    peers: Vec<Peer>,
}

impl<T> Shared<T> {
    pub(crate) fn new(shards: usize, lane_capacity: usize) -> Self {
        let lanes = (0..shards * shards)
            .map(|i| {
                let diagonal = i / shards == i % shards;
                Lane::new(if diagonal { 1 } else { lane_capacity })
            })
            .collect();
        let peers = (0..shards)
            .map(|_| Peer {
                asleep: AtomicBool::new(false),
                waker: OnceLock::new(),
            })
            .collect();
        Self {
            shards,
            lanes,
            peers,
        }
    }

    fn lane(&self, src: usize, dst: usize) -> &Lane<T> {
        &self.lanes[src * self.shards + dst]
    }
}

/// One shard's mailbox. `Send`: moved into the shard's thread once; from then on used by that
/// thread only (`flush` and `drain` take `&mut self`, which keeps every lane SPSC).
pub struct Mailbox<T> {
    id: ShardId,
    shared: Arc<Shared<T>>,
    /// Outbound mail per destination shard, in staging order.
    staging: Vec<VecDeque<T>>,
    /// Total messages in `staging`.
    staged: usize,
    /// Next source `drain` reads first, so that a `max` cut-off does not favour low shards.
    drain_cursor: usize,
}

impl<T: Send> Mailbox<T> {
    pub(crate) fn new(id: ShardId, shared: Arc<Shared<T>>) -> Self {
        let shards = shared.shards;
        let staging = (0..shards).map(|_| VecDeque::new()).collect();
        Self {
            id,
            shared,
            staging,
            staged: 0,
            // With one shard there is no source; `drain` never reads the cursor then.
            drain_cursor: next_source(id.index(), id.index(), shards),
        }
    }

    /// This shard's id.
    pub fn shard(&self) -> ShardId {
        self.id
    }

    /// Number of shards in the grid.
    pub fn shards(&self) -> usize {
        self.shared.shards
    }

    /// Registers how to wake this shard. Called once, before the shard's first sleep.
    ///
    /// # Panics
    /// If a waker is already registered for this shard: a second one would silently not be
    /// used, which is a wiring bug.
    pub fn set_waker(&self, wake: WakeFn) {
        let registered = self.shared.peers[self.id.index()].waker.set(wake).is_ok();
        assert!(registered, "mailbox: {} registered a waker twice", self.id);
    }

    /// Stages a message for `dest`. Staged messages leave at the next [`flush`](Self::flush).
    ///
    /// # Panics
    /// If `dest` is this shard or outside the grid: the router never sends mail to itself.
    pub fn stage(&mut self, dest: ShardId, msg: T) {
        assert!(
            dest != self.id && dest.index() < self.shared.shards,
            "mailbox: {} cannot stage mail for {dest}",
            self.id
        );
        self.staging[dest.index()].push_back(msg);
        self.staged += 1;
    }

    /// Pushes staged messages into their lanes, in order. What does not fit stays staged, in
    /// order, for the next flush. Wakes each destination that received something and sleeps,
    /// at most once per destination.
    pub fn flush(&mut self) -> FlushStats {
        let mut stats = FlushStats::default();
        if self.staged == 0 {
            return stats;
        }
        for dest in 0..self.shared.shards {
            if self.staging[dest].is_empty() {
                continue;
            }
            let (pushed, full) = self.push_lane(dest);
            stats.pushed += pushed;
            stats.full_lanes += usize::from(full);
            if pushed > 0 && self.wake_if_asleep(dest) {
                stats.wakes += 1;
            }
        }
        self.staged -= stats.pushed;
        stats.left_staged = self.staged;
        stats
    }

    /// Moves `staging[dest]` into `lane[self][dest]` until it is empty or the lane is full.
    /// Returns how many moved and whether the lane was full.
    fn push_lane(&mut self, dest: usize) -> (usize, bool) {
        let lane = self.shared.lane(self.id.index(), dest);
        let queue = &mut self.staging[dest];
        let mut pushed = 0;
        while let Some(msg) = queue.pop_front() {
            if let Err(msg) = lane.push(msg) {
                // Back to the front: order is kept and nothing is dropped.
                queue.push_front(msg);
                return (pushed, true);
            }
            pushed += 1;
        }
        (pushed, false)
    }

    /// The sender's half of the protocol (module docs), after pushing to `dest`'s lane.
    fn wake_if_asleep(&self, dest: usize) -> bool {
        let peer = &self.shared.peers[dest];
        // SeqCst fence pairs with the one in `prepare_to_sleep`: orders our lane push before
        // the flag read below, whatever orderings the lane uses inside.
        fence(Ordering::SeqCst);
        // Relaxed load: the fence above supplies the ordering (module docs, fast path).
        if !peer.asleep.load(Ordering::Relaxed) {
            return false;
        }
        // SeqCst swap: exactly one party turns a given `true` into `false`, and only it wakes.
        // Acquire (part of SeqCst) pairs with the receiver's swap to `true` and so also makes
        // its earlier `set_waker` visible.
        if !peer.asleep.swap(false, Ordering::SeqCst) {
            return false;
        }
        if let Some(wake) = peer.waker.get() {
            wake();
        }
        true
    }

    /// Pops up to `max` messages from the inbound lanes, round-robin across sources (one per
    /// source per round) and FIFO per source, handing each to `f` with its source shard.
    /// Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(ShardId, T)) -> usize {
        let shards = self.shared.shards;
        let me = self.id.index();
        let sources = shards - 1;
        let mut taken = 0;
        // Consecutive sources found empty; a full round of them means nothing is left.
        let mut empty_in_a_row = 0;
        while taken < max && empty_in_a_row < sources {
            let src = self.drain_cursor;
            self.drain_cursor = next_source(src, me, shards);
            debug_assert_ne!(src, me, "drain cursor landed on its own shard");
            match self.shared.lane(src, me).pop() {
                Some(msg) => {
                    empty_in_a_row = 0;
                    taken += 1;
                    // `src < shards <= MAX_SHARDS`, so it fits a u16.
                    f(ShardId(src as u16), msg);
                }
                None => empty_in_a_row += 1,
            }
        }
        taken
    }

    /// Before blocking: marks this shard asleep, then re-checks the inbound lanes. Returns true
    /// when it is safe to block (no mail: any later mail comes with a wake); false when mail
    /// arrived, in which case the mark is cleared again and the shard should drain.
    ///
    /// # Panics
    /// If no waker was registered: a sleeping shard nobody can wake is a wiring bug.
    pub fn prepare_to_sleep(&self) -> bool {
        let peer = &self.shared.peers[self.id.index()];
        assert!(
            peer.waker.get().is_some(),
            "mailbox: {} sleeps without a waker; call set_waker first",
            self.id
        );
        // The fence below is what pairs with the sender's fence in `wake_if_asleep` (module
        // docs); Release (part of SeqCst) pairs with the sender's swap. A swap rather than a
        // store: see "Every write to the flag is a swap" in the module docs.
        peer.asleep.swap(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_mail() {
            // Not sleeping after all. A sender that swapped our `true` meanwhile has woken us
            // spuriously; that is allowed.
            peer.asleep.swap(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// After waking: clears the asleep mark (a no-op if a sender's swap already did).
    pub fn awake(&self) {
        // Any ordering would be correct here (`prepare_to_sleep` re-checks the lanes before
        // every sleep); SeqCst swap for the reason in the module docs.
        self.shared.peers[self.id.index()]
            .asleep
            .swap(false, Ordering::SeqCst);
    }

    /// Messages staged and not yet pushed: the back-pressure signal.
    pub fn staged(&self) -> usize {
        self.staged
    }

    /// Messages waiting in this shard's inbound lanes (approximate while senders push).
    pub fn inbox_len(&self) -> usize {
        let me = self.id.index();
        (0..self.shared.shards)
            .filter(|&src| src != me)
            .map(|src| self.shared.lane(src, me).len())
            .sum()
    }

    fn has_mail(&self) -> bool {
        let me = self.id.index();
        (0..self.shared.shards).any(|src| src != me && !self.shared.lane(src, me).is_empty())
    }
}

impl<T> fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("shard", &self.id)
            .field("shards", &self.shared.shards)
            .field("staged", &self.staged)
            .finish_non_exhaustive()
    }
}

/// The source after `src` in round-robin order, skipping `me`.
fn next_source(src: usize, me: usize, shards: usize) -> usize {
    let next = (src + 1) % shards;
    if next == me {
        (next + 1) % shards
    } else {
        next
    }
}

#[cfg(test)]
mod tests;
