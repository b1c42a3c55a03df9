//! User-space memory per simulated client, from this process' resident set size.
//!
//! Two numbers: the growth from before the ramp to the steady start divided by the clients
//! online (includes fixed per-thread costs, such as io_uring receive buffers touched for the
//! first time), and the *marginal* cost: growth between the moment half the target was
//! online and the steady start, divided by the clients added in between, which cancels the
//! fixed costs. The worker's slab of client slots is allocated and written before the ramp,
//! so the marginal number misses it; `per_client_bytes` adds it back, plus what the steady
//! phase grew (chat: ledger rows of the senders heard from, the pair table, output queues;
//! highest RSS while sending minus RSS at the steady start, per client online), and is the
//! number to hold against the 512-byte budget.
//!
//! Nothing sized by the client count may be written before the baseline without being added
//! here (the slab is; the ledger rows are sparse and grow during the steady phase).
//!
//! What it does not do: kernel memory (socket buffers, inodes: about 4 KB per idle TCP socket
//! on Linux, not in RSS), or the server's memory.

use serde::{Deserialize, Serialize};

use crate::env::rss_kib;

/// What a run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUse {
    pub rss_growth_per_online_client_bytes: Option<u64>,
    pub rss_marginal_per_client_bytes: Option<u64>,
    /// Growth of RSS from the steady start to its highest while sending, per client online.
    #[serde(default)]
    pub rss_steady_growth_per_client_bytes: Option<u64>,
    /// Marginal RSS plus the slab slot written before the ramp plus the steady growth.
    pub per_client_bytes: Option<u64>,
}

/// A point of the ramp: clients online and RSS then.
type Sample = (u64, u64);

/// Samples RSS during the ramp.
#[derive(Debug, Default)]
pub struct MemoryProbe {
    before_kib: Option<u64>,
    half: Option<Sample>,
    /// At the steady start: clients online and RSS.
    steady: Option<Sample>,
    /// Highest RSS seen while sending.
    steady_peak_kib: u64,
    /// The ramp's numbers and the slot size, kept from `finish` to add the steady growth.
    ramp: MemoryUse,
    slot_bytes: u64,
}

impl MemoryProbe {
    /// Takes the baseline (call before the ramp starts).
    pub fn start() -> MemoryProbe {
        MemoryProbe {
            before_kib: rss_kib(),
            ..MemoryProbe::default()
        }
    }

    /// Called while ramping: samples once, when half of `clients` are online.
    pub fn observe(&mut self, online: u64, clients: u64) {
        if self.half.is_none() && online > 0 && online * 2 >= clients {
            self.half = rss_kib().map(|kib| (online, kib));
        }
    }

    /// Called at the steady start with the clients online then; `slot_bytes` is the size of
    /// one client's slot in the slab allocated before the ramp.
    pub fn finish(&mut self, online: u64, slot_bytes: u64) -> MemoryUse {
        let Some(now_kib) = rss_kib() else {
            return MemoryUse::default();
        };
        let marginal = self
            .half
            .and_then(|half| per_client(half, (online, now_kib)));
        self.steady = Some((online, now_kib));
        self.steady_peak_kib = now_kib;
        self.slot_bytes = slot_bytes;
        self.ramp = MemoryUse {
            rss_growth_per_online_client_bytes: self
                .before_kib
                .and_then(|before| per_client((0, before), (online, now_kib))),
            rss_marginal_per_client_bytes: marginal,
            rss_steady_growth_per_client_bytes: None,
            per_client_bytes: marginal.map(|m| m + slot_bytes),
        };
        self.ramp
    }

    /// Called while the steady phase sends (after `finish`): keeps the highest RSS.
    pub fn observe_steady(&mut self) {
        if self.steady.is_some() {
            let now = rss_kib().unwrap_or(0);
            self.steady_peak_kib = self.steady_peak_kib.max(now);
        }
    }

    /// The ramp's numbers plus the steady growth (what `finish` gave when nothing was
    /// observed while sending).
    pub fn with_steady(&self) -> MemoryUse {
        let Some((online, at_start_kib)) = self.steady else {
            return self.ramp;
        };
        let growth = steady_growth((online, at_start_kib), self.steady_peak_kib);
        MemoryUse {
            rss_steady_growth_per_client_bytes: growth,
            per_client_bytes: self
                .ramp
                .rss_marginal_per_client_bytes
                .map(|m| m + self.slot_bytes + growth.unwrap_or(0)),
            ..self.ramp
        }
    }
}

/// Bytes per client online that RSS grew from the steady start to its peak.
fn steady_growth((online, at_start_kib): Sample, peak_kib: u64) -> Option<u64> {
    (online > 0).then(|| peak_kib.saturating_sub(at_start_kib) * 1024 / online)
}

/// Bytes per client between two samples; `None` when no client was added.
fn per_client(from: Sample, to: Sample) -> Option<u64> {
    let added = to.0.checked_sub(from.0).filter(|&n| n > 0)?;
    Some(to.1.saturating_sub(from.1) * 1024 / added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_cost_between_samples() {
        assert_eq!(per_client((0, 1000), (1000, 2000)), Some(1024));
        assert_eq!(per_client((500, 1500), (1000, 1750)), Some(512));
        assert_eq!(per_client((1000, 1500), (1000, 1750)), None);
        assert_eq!(
            per_client((0, 2000), (10, 1000)),
            Some(0),
            "RSS shrank: no cost, no panic"
        );
    }

    #[test]
    fn steady_growth_is_the_peak_over_the_start() {
        assert_eq!(steady_growth((1000, 5000), 5250), Some(256));
        assert_eq!(steady_growth((1000, 5000), 4000), Some(0), "RSS shrank");
        assert_eq!(steady_growth((0, 5000), 6000), None);
    }

    #[test]
    fn probe_samples_once_at_half() {
        let mut probe = MemoryProbe::start();
        probe.observe(10, 100);
        assert!(probe.half.is_none());
        probe.observe(50, 100);
        let first = probe.half;
        probe.observe(90, 100);
        assert_eq!(probe.half, first);
        if cfg!(target_os = "linux") {
            assert!(first.is_some());
            let usage = probe.finish(100, 112);
            let marginal = usage.rss_marginal_per_client_bytes.unwrap();
            assert_eq!(usage.per_client_bytes, Some(marginal + 112));
            // Other tests allocate in this process too, so only the sum is checked here (the
            // growth itself: `steady_growth_is_the_peak_over_the_start`).
            probe.observe_steady();
            let usage = probe.with_steady();
            let growth = usage.rss_steady_growth_per_client_bytes.unwrap();
            assert_eq!(usage.per_client_bytes, Some(marginal + 112 + growth));
        }
    }
}
