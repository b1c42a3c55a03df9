//! The control of a single-process run: it decides the phases by itself (the ramp starts
//! at once; the steady phase once every client settled or the ramp bound passed), keeps the
//! per-second series and prints the progress line.
//!
//! What it does not do: talk to other processes (see `procs::child` for that control).

use tracing::warn;

use super::{ramp_bound_ns, Control, STEADY_LEAD_NS};
use crate::cli::RunConfig;
use crate::live::{Shared, Snapshot};
use crate::metrics::Histograms;
use crate::series::Series;
use crate::sys::monotonic_ns;

/// The control of a single-process run: decides by itself, prints progress, keeps the series.
pub struct LocalControl {
    clients: u32,
    ramp_bound_ns: u64,
    quiet: bool,
    go_ns: u64,
    pub series: Series,
}

impl LocalControl {
    pub fn new(cfg: &RunConfig) -> LocalControl {
        LocalControl {
            clients: cfg.clients,
            ramp_bound_ns: ramp_bound_ns(cfg),
            quiet: cfg.quiet,
            go_ns: 0,
            series: Series::new(1),
        }
    }
}

impl Control for LocalControl {
    fn go(&mut self) -> Option<u64> {
        self.go_ns = monotonic_ns();
        Some(self.go_ns)
    }

    fn steady_start(&mut self, shared: &Shared, now: u64) -> Option<u64> {
        let snapshot = shared.snapshot();
        let stalled = now - self.go_ns > self.ramp_bound_ns;
        if snapshot.settled < u64::from(self.clients) && !stalled {
            return None;
        }
        if stalled {
            warn!(
                "ramp did not settle within {} ms; starting anyway",
                self.ramp_bound_ns / 1_000_000
            );
        }
        // In the future, so every worker sees the start before its first message is due (a
        // worker may sit in a wait of up to its longest turn).
        Some(now + STEADY_LEAD_NS)
    }

    fn tick(&mut self, second: u32, counts: Snapshot, latencies: &Histograms) {
        self.series.add(0, counts, latencies);
        self.series.close_second(second);
        if !self.quiet {
            eprintln!("{}", self.series.progress_line(self.clients));
        }
    }

    fn abort_requested(&mut self) -> bool {
        false
    }
}
