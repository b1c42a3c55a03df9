//! The shard loop's seams to the outside world that are not the socket driver: its clock and
//! its cross-shard mail transport. The server plugs in the monotonic clock and the mailbox
//! grid (`rookery_mailbox`); the simulator (`rookery-sim`) plugs in a virtual clock and a
//! seeded in-memory mailbox, so the same loop runs deterministically in one thread.
//!
//! What it does not do: the driver seam (that is `rookery_io::Driver`, already generic), or
//! anything per conn.
//!
//! Invariants: a `Clock` never goes backwards; a `MailTransport` keeps mail FIFO per
//! (source, destination) pair and hands back nothing it dropped (a full lane keeps the mail
//! staged).

use std::time::Instant;

use rookery_mailbox::{FlushStats, Mailbox, ShardId, WakeFn};

/// Milliseconds for the router's timers, the shutdown grace and the log pacing.
pub trait Clock {
    /// Milliseconds since an origin fixed when the clock was made; never decreases.
    fn now_ms(&self) -> u64;
}

/// The production clock: milliseconds since the process started (`Instant`, monotonic).
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    pub started: Instant,
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A shard's side of cross-shard mail: what the loop does with `rookery_mailbox::Mailbox`.
/// Mail is staged during a turn, flushed once at its end, drained at the top of the next.
pub trait MailTransport<T> {
    /// Registers how to wake this shard when mail arrives while it sleeps.
    fn set_waker(&self, wake: WakeFn);
    /// Stages `msg` for `dest`; it leaves at the next `flush`.
    fn stage(&mut self, dest: ShardId, msg: T);
    /// Pushes staged mail into the lanes (what does not fit stays staged).
    fn flush(&mut self) -> FlushStats;
    /// Hands up to `max` inbound mails to `f`, with their source shard. Returns how many.
    fn drain(&mut self, max: usize, f: impl FnMut(ShardId, T)) -> usize;
    /// Marks the shard asleep; false (and not asleep) when mail already arrived.
    fn prepare_to_sleep(&self) -> bool;
    /// Clears the asleep mark after a wait.
    fn awake(&self);
    /// Mails staged and not yet pushed (a full lane: back-pressure).
    fn staged(&self) -> usize;
}

impl<T: Send> MailTransport<T> for Mailbox<T> {
    fn set_waker(&self, wake: WakeFn) {
        Mailbox::set_waker(self, wake)
    }
    fn stage(&mut self, dest: ShardId, msg: T) {
        Mailbox::stage(self, dest, msg)
    }
    fn flush(&mut self) -> FlushStats {
        Mailbox::flush(self)
    }
    fn drain(&mut self, max: usize, f: impl FnMut(ShardId, T)) -> usize {
        Mailbox::drain(self, max, f)
    }
    fn prepare_to_sleep(&self) -> bool {
        Mailbox::prepare_to_sleep(self)
    }
    fn awake(&self) {
        Mailbox::awake(self)
    }
    fn staged(&self) -> usize {
        Mailbox::staged(self)
    }
}
