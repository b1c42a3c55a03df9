//! The relay's counters, printed as one line on exit (`stats: ...`).
//!
//! Atomics with `Relaxed` ordering: each counter is read once at exit, after the runtime
//! stopped, and no other memory is published through them, so no ordering is needed. On the
//! single-threaded peers they are uncontended (a plain add on one cache line); tokio with
//! `--threads N` shares them between workers.
//!
//! What it does not do: rates or histograms (rookery-load measures those at the clients).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How long an accept loop pauses after a failed accept.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// See the module docs.
#[derive(Default, Debug)]
pub struct Stats {
    conns_accepted: AtomicU64,
    sessions_bound: AtomicU64,
    relayed: AtomicU64,
    dropped_unknown: AtomicU64,
    dropped_full: AtomicU64,
    accept_errors: AtomicU64,
}

impl Stats {
    pub fn conn_accepted(&self) {
        self.conns_accepted.fetch_add(1, Relaxed);
    }

    pub fn session_bound(&self) {
        self.sessions_bound.fetch_add(1, Relaxed);
    }

    /// A stanza written to its destination's queue.
    pub fn relayed(&self) {
        self.relayed.fetch_add(1, Relaxed);
    }

    /// A stanza to nobody bound (or not routable at all): dropped.
    pub fn dropped_unknown(&self) {
        self.dropped_unknown.fetch_add(1, Relaxed);
    }

    /// A stanza whose destination's queue was full: dropped.
    pub fn dropped_full(&self) {
        self.dropped_full.fetch_add(1, Relaxed);
    }

    /// An accept failed (EMFILE and friends): counted and logged, naming the likely fix. The
    /// caller then pauses [`ACCEPT_PAUSE`] on its own runtime's timer so the loop does not spin.
    pub fn accept_failed(&self, relay: &str, err: &dyn std::fmt::Display) {
        self.accept_errors.fetch_add(1, Relaxed);
        eprintln!("{relay}: accept failed: {err} (out of fds? raise ulimit -Hn)");
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats: conns_accepted={} sessions_bound={} messages_relayed={} \
             dropped_unknown_destination={} dropped_queue_full={} accept_errors={}",
            self.conns_accepted.load(Relaxed),
            self.sessions_bound.load(Relaxed),
            self.relayed.load(Relaxed),
            self.dropped_unknown.load(Relaxed),
            self.dropped_full.load(Relaxed),
            self.accept_errors.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_line_names_every_counter() {
        let stats = Stats::default();
        stats.conn_accepted();
        stats.conn_accepted();
        stats.session_bound();
        stats.relayed();
        stats.relayed();
        stats.relayed();
        stats.dropped_unknown();
        stats.dropped_full();
        assert_eq!(
            stats.to_string(),
            "stats: conns_accepted=2 sessions_bound=1 messages_relayed=3 \
             dropped_unknown_destination=1 dropped_queue_full=1 accept_errors=0"
        );
    }
}
