//! Upload usage from the HTTP server's threads to the shards' quota ledgers.
//!
//! What it does: rookery-http reports every file stored or removed as a `UsageEvent` on its
//! own threads. [`UsageRouter::report`] (the server's usage sink) pushes each event into the
//! [`UsageInbox`] of the owner's home shard, a bounded lock-free queue (crossbeam
//! `ArrayQueue`, many producers, one consumer); the shard drains it at the top of each turn
//! into `Router::on_usage`, at most [`MAX_USAGE_PER_TURN`] events a turn.
//!
//! What it does not do: wake a sleeping shard (the event waits for its next turn: at most the
//! loop's longest wait, 100 ms, a delay no quota check notices), block the HTTP side, or
//! touch the mailbox grid.
//!
//! Invariants: a full inbox drops the event and counts it (`rookery_upload_usage_dropped_total`
//! on the owner's shard): the ledger then under- or over-counts that file until restart,
//! when it is rebuilt from the files on disk; a shard never waits on this queue.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use rookery_proto::Jid;
use rookery_router::Placement;
use rookery_upload::UsageEvent;

/// Events a shard takes from its inbox per turn; the rest wait for the next turn.
pub const MAX_USAGE_PER_TURN: usize = 1024;

/// One shard's inbound usage events.
#[derive(Debug)]
pub struct UsageInbox {
    queue: ArrayQueue<UsageEvent>,
    dropped: AtomicU64,
}

impl UsageInbox {
    /// Events held at most: each is one upload or removal, drained every turn, so this only
    /// fills if a shard stops turning while thousands of files land.
    pub const CAPACITY: usize = 4096;

    pub fn new(capacity: usize) -> UsageInbox {
        UsageInbox {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `event`; a full inbox drops it and counts the drop.
    pub fn push(&self, event: UsageEvent) {
        if self.queue.push(event).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Hands at most `max` queued events to `apply`, oldest first (the owning shard only).
    pub fn drain(&self, max: usize, mut apply: impl FnMut(&UsageEvent)) {
        for _ in 0..max {
            let Some(event) = self.queue.pop() else {
                return;
            };
            apply(&event);
        }
    }

    /// Events dropped because the inbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// Sends each event to the inbox of its owner's home shard.
#[derive(Clone, Debug)]
pub struct UsageRouter {
    inboxes: Arc<[Arc<UsageInbox>]>,
    placement: Placement,
}

impl UsageRouter {
    /// One inbox of `capacity` per shard.
    pub fn new(shards: u16, capacity: usize) -> UsageRouter {
        let shards = shards.max(1);
        UsageRouter {
            inboxes: (0..shards)
                .map(|_| Arc::new(UsageInbox::new(capacity)))
                .collect(),
            placement: Placement::local(shards),
        }
    }

    /// Shard `index`'s inbox.
    pub fn inbox(&self, index: usize) -> Arc<UsageInbox> {
        Arc::clone(&self.inboxes[index])
    }

    /// The home shard of `owner` (a bare JID).
    pub fn home_of(&self, owner: &Jid) -> usize {
        usize::from(self.placement.home(owner).shard.0)
    }

    /// The usage sink: called on the HTTP server's threads.
    pub fn report(&self, event: UsageEvent) {
        let (UsageEvent::Stored { owner, .. } | UsageEvent::Removed { owner, .. }) = &event;
        let shard = self.home_of(owner);
        self.inboxes[shard].push(event);
    }
}

#[cfg(test)]
mod tests {
    use rookery_upload::SlotToken;

    use super::*;

    fn stored(owner: &str, size_bytes: u64) -> UsageEvent {
        UsageEvent::Stored {
            owner: Jid::parse(owner).unwrap(),
            token: SlotToken::from_random([1; 16]),
            size_bytes,
        }
    }

    #[test]
    fn events_go_to_the_owners_home_shard_and_overflow_is_counted() {
        let router = UsageRouter::new(4, 2);
        let owner = "alice@example.test";
        let home = usize::from(
            Placement::local(4)
                .home(&Jid::parse(owner).unwrap())
                .shard
                .0,
        );
        for size in 1..=3 {
            router.report(stored(owner, size));
        }
        let mut seen = Vec::new();
        for shard in 0..4 {
            router.inbox(shard).drain(10, |event| {
                let UsageEvent::Stored { size_bytes, .. } = event else {
                    panic!("only stored events were sent");
                };
                seen.push((shard, *size_bytes));
            });
        }
        assert_eq!(seen, [(home, 1), (home, 2)]);
        assert_eq!(router.inbox(home).dropped(), 1);
    }

    #[test]
    fn a_drain_takes_at_most_its_budget() {
        let inbox = UsageInbox::new(8);
        for size in 0..5 {
            inbox.push(stored("bob@example.test", size));
        }
        let mut count = 0;
        inbox.drain(3, |_| count += 1);
        assert_eq!(count, 3);
        inbox.drain(10, |_| count += 1);
        assert_eq!(count, 5);
    }
}
