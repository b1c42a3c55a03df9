//! What the coordinator and the worker threads share while a run is live.
//!
//! Shared: the phase (when the steady phase started; abort), a bitmap of online clients (so a
//! sender can pick an online peer owned by another thread), and per-thread published counters
//! and a histogram of latencies recorded since the coordinator last looked. Workers publish at
//! most every [`PUBLISH_INTERVAL_NS`] with plain stores; nothing here is on the per-message
//! path except one relaxed load of the online bitmap per message.
//!
//! In a multi-process run each process has its own `Shared`: the bits of other processes'
//! clients are set once, at the steady start, from the parent's list of clients that are not
//! online (see `procs`), and are not updated after it.
//!
//! What it does not do: final accounting (workers return their full results when they end), or
//! the progress line (see `series`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::Histograms;

/// How often a worker publishes its counters and live histogram (a divisor of a second, so
/// every second's end is a publishing instant).
pub const PUBLISH_INTERVAL_NS: u64 = 250_000_000;
const _: () = assert!(1_000_000_000 % PUBLISH_INTERVAL_NS == 0);
/// How long after a second's end its counters are read: every worker has published by then
/// (it wakes for the publishing instant; this covers a loop turn busy with I/O).
pub const TICK_DELAY_NS: u64 = 60_000_000;

/// A published per-thread counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Connects started.
    Attempts,
    /// Clients online now.
    Online,
    /// Logins completed (ever).
    Logins,
    /// Clients that reached online or failed: the ramp is over when all have.
    Settled,
    Sent,
    Received,
    Errors,
}

const COUNTERS: usize = 7;

/// One worker's published state.
#[derive(Debug, Default)]
pub struct ThreadLive {
    counters: [AtomicU64; COUNTERS],
    /// Latencies recorded since the coordinator last drained it.
    pub recent: Mutex<Histograms>,
}

impl ThreadLive {
    /// Publishes a counter. Relaxed: a statistic, read only for display; it orders nothing.
    pub fn publish(&self, counter: Counter, value: u64) {
        self.counters[counter as usize].store(value, Ordering::Relaxed);
    }

    fn read(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }
}

/// State shared by the coordinator and every worker of one run.
#[derive(Debug)]
pub struct Shared {
    /// CLOCK_MONOTONIC ns at which the steady phase starts; 0 while ramping.
    steady_start_ns: AtomicU64,
    abort: AtomicBool,
    /// Workers whose driver is ready.
    ready: AtomicUsize,
    /// CLOCK_MONOTONIC ns at which the ramp starts; 0 until every worker is ready.
    go_ns: AtomicU64,
    online: Vec<AtomicU64>,
    pub threads: Vec<ThreadLive>,
}

/// Counters summed over threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub attempts: u64,
    pub online: u64,
    pub logins: u64,
    pub settled: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    /// Resident set size of the process that took the snapshot, in KiB (set by the
    /// coordinator at each tick; 0 when unknown).
    #[serde(default)]
    pub rss_kib: u64,
}

impl Shared {
    pub fn new(clients: u32, threads: usize) -> Shared {
        Shared {
            steady_start_ns: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            ready: AtomicUsize::new(0),
            go_ns: AtomicU64::new(0),
            online: (0..(clients as usize).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            threads: (0..threads).map(|_| ThreadLive::default()).collect(),
        }
    }

    /// Starts the steady phase at `at_ns`. Release pairs with the Acquire in `steady_start`:
    /// the value itself is the only data it carries.
    pub fn start_steady(&self, at_ns: u64) {
        self.steady_start_ns.store(at_ns.max(1), Ordering::Release);
    }

    pub fn steady_start(&self) -> Option<u64> {
        Some(self.steady_start_ns.load(Ordering::Acquire)).filter(|&ns| ns != 0)
    }

    /// Called by a worker once its driver exists; waits for the coordinator's go and returns
    /// the ramp start, or `None` if the run was aborted meanwhile.
    pub fn ready_and_wait(&self) -> Option<u64> {
        // Release pairs with the coordinator's Acquire in `ready_workers`; it carries no data.
        self.ready.fetch_add(1, Ordering::Release);
        loop {
            // Acquire pairs with the Release store in `go`; again only the value matters.
            let go = self.go_ns.load(Ordering::Acquire);
            if go != 0 {
                return Some(go);
            }
            if self.aborted() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn ready_workers(&self) -> usize {
        self.ready.load(Ordering::Acquire)
    }

    /// Lets every waiting worker start its ramp at `at_ns`.
    pub fn go(&self, at_ns: u64) {
        self.go_ns.store(at_ns.max(1), Ordering::Release);
    }

    /// Asks every worker to close its clients now (Release/Acquire pair as above).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    /// Marks client `index` online or offline. Relaxed: a hint for peer choice only; a stale
    /// read picks a peer that just left (the message is then bounced and counted) or skips
    /// one that just arrived.
    pub fn set_online(&self, index: u32, online: bool) {
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        if online {
            self.online[word].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.online[word].fetch_and(!bit, Ordering::Relaxed);
        }
    }

    pub fn is_online(&self, index: u32) -> bool {
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        self.online
            .get(word)
            .is_some_and(|w| w.load(Ordering::Relaxed) & bit != 0)
    }

    pub fn snapshot(&self) -> Snapshot {
        let sum = |c| self.threads.iter().map(|t| t.read(c)).sum();
        Snapshot {
            attempts: sum(Counter::Attempts),
            online: sum(Counter::Online),
            logins: sum(Counter::Logins),
            settled: sum(Counter::Settled),
            sent: sum(Counter::Sent),
            received: sum(Counter::Received),
            errors: sum(Counter::Errors),
            rss_kib: 0,
        }
    }

    /// Moves every thread's recent latencies into `into`.
    pub fn drain_recent(&self, into: &mut Histograms) {
        for thread in &self.threads {
            // A poisoned lock means a worker panicked mid-merge; the run fails on join anyway,
            // and the histogram is still usable for display.
            let mut recent = thread.recent.lock().unwrap_or_else(|p| p.into_inner());
            into.merge(&recent);
            recent.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_bitmap_and_phase() {
        let shared = Shared::new(130, 2);
        assert!(!shared.is_online(129));
        shared.set_online(129, true);
        shared.set_online(0, true);
        assert!(shared.is_online(129) && shared.is_online(0) && !shared.is_online(64));
        shared.set_online(129, false);
        assert!(!shared.is_online(129));
        assert!(
            !shared.is_online(100_000),
            "out of range is offline, not a panic"
        );
        assert_eq!(shared.steady_start(), None);
        shared.start_steady(42);
        assert_eq!(shared.steady_start(), Some(42));
    }
}
