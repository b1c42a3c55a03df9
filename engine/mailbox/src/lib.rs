//! Bounded cross-shard mailboxes for Rookery.
//!
//! What it does: connects N shards with an N x N grid of bounded single-producer
//! single-consumer lanes, `lane[src][dst]` (seastar's smp queues, in spirit). A shard stages
//! mail per destination during its loop turn ([`Mailbox::stage`]), pushes it once per turn
//! ([`Mailbox::flush`]), and wakes a destination only if that destination sleeps. A shard reads
//! its inbound lanes round-robin with [`Mailbox::drain`], and goes to sleep through
//! [`Mailbox::prepare_to_sleep`], which closes the lost-wake-up race (see `mailbox.rs`).
//!
//! What it does not do: no I/O and no blocking. Waking a shard is a callback the shard
//! registers ([`Mailbox::set_waker`]; in the engine, the driver's `WakeHandle`: an eventfd
//! read kept armed in the io_uring ring, or a `mio::Waker`), so this crate does not depend on
//! `rookery-io`. It never drops mail: a full lane leaves the
//! messages staged, in order, for the next flush, and [`Mailbox::staged`] is the back-pressure
//! signal. It does not wake a *sender* when a receiver frees room: a shard holding staged mail
//! must retry on its next turn rather than sleep indefinitely.
//!
//! Invariants: each lane has one producer (the source shard's `Mailbox`) and one consumer (the
//! destination's), because a `Mailbox` is not `Clone` and `flush`/`drain` take `&mut self`; so
//! messages from one source to one destination arrive in staging order. A wake may be
//! spurious; it is never missed.
//!
//! Under `cfg(loom)` the lanes and atomics are loom's (see `sync.rs`). The model checks
//! (`tests/loom.rs`) run with, from the workspace root and with a separate target dir such as
//! `CARGO_TARGET_DIR=/work/target-loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p rookery-mailbox --test loom --release
//! ```
//!
//! (the preemption bound defaults to 2 in the test file; `LOOM_MAX_PREEMPTIONS` overrides it).

#![forbid(unsafe_code)]

mod mailbox;
mod sync;

use std::fmt;

pub use mailbox::Mailbox;

/// Index of a shard, `0..shards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The shard's position in the grid, for indexing per-shard tables.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}", self.0)
    }
}

/// How to wake a sleeping shard. Called from other shards' threads, possibly spuriously.
pub type WakeFn = Box<dyn Fn() + Send + Sync>;

/// The largest grid [`grid`] builds: every shard must be nameable by a [`ShardId`].
pub const MAX_SHARDS: usize = u16::MAX as usize + 1;

/// What one [`Mailbox::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Messages moved from staging into lanes.
    pub pushed: usize,
    /// Messages still staged afterwards (their lane was full).
    pub left_staged: usize,
    /// Sleeping destinations woken (at most one per destination).
    pub wakes: usize,
    /// Destinations whose lane filled up before their staged mail was all pushed.
    pub full_lanes: usize,
}

/// Builds the grid: one [`Mailbox`] per shard, in shard order, each to be moved into its
/// shard's thread. Every lane holds at most `lane_capacity` messages.
///
/// # Panics
/// If `shards` is 0 or above [`MAX_SHARDS`], or `lane_capacity` is 0: these are configuration
/// bugs the caller validates first.
pub fn grid<T: Send>(shards: usize, lane_capacity: usize) -> Vec<Mailbox<T>> {
    assert!(
        (1..=MAX_SHARDS).contains(&shards),
        "mailbox grid: {shards} shards, expected 1..={MAX_SHARDS}"
    );
    assert!(
        lane_capacity > 0,
        "mailbox grid: lane capacity must be at least 1"
    );
    let shared = sync::Arc::new(mailbox::Shared::new(shards, lane_capacity));
    (0..shards)
        .map(|index| {
            // In range: `shards <= MAX_SHARDS` was asserted above.
            let id = ShardId(u16::try_from(index).unwrap_or(u16::MAX));
            Mailbox::new(id, sync::Arc::clone(&shared))
        })
        .collect()
}
