//! What a worker hands back when it ends, and how reports fold together.
//!
//! What it does not do: compute the run's totals (see `run::finish`) or travel between
//! processes (see `procs::protocol`).

use crate::accounting::Ledger;
use crate::metrics::{ErrorCounts, Histograms};

/// What one worker hands back when it ends (also what a worker process hands its parent,
/// every thread's report folded into one with [`WorkerReport::absorb`]).
#[derive(Debug, Default)]
pub struct WorkerReport {
    pub histograms: Histograms,
    pub ledger: Ledger,
    /// Receipts that came back, per original sender (`--receipts`).
    pub receipts: Ledger,
    /// `(client index, messages sent)` for each client of this thread.
    pub sent: Vec<(u32, u32)>,
    /// `(client index, messages the server acknowledged)` (XEP-0198), non-zero ones only:
    /// the client's first that many messages.
    pub acked: Vec<(u32, u32)>,
    pub errors: ErrorCounts,
    pub logins: u64,
    pub peak_online: u64,
    /// Error messages from the server (our message bounced).
    pub bounced: u64,
    /// Messages whose body is not a probe.
    pub foreign: u64,
    /// Messages not sent because no online peer was found.
    pub skipped_no_peer: u64,
    /// Times a message waited because the conn's output queue was full.
    pub send_retries: u64,
    /// Probes from an earlier run (the server had stored them offline).
    pub stale: u64,
    /// Storm: logins completed while the storm ran.
    pub storm_logins: u64,
    /// Streams on which the server enabled / refused XEP-0198.
    pub sm_enabled: u64,
    pub sm_failed: u64,
    /// Streams that came online without stream management (not offered, or refused) in a
    /// run that counts acks (`--verify`, offline): the run cannot be judged.
    pub sm_unavailable: u64,
    /// Offline: deliveries (first ones and duplicates) to recipients in phase 2.
    pub offline_deliveries: u64,
    /// Offline: of those, how many lacked the XEP-0203 `<delay/>` of a stored message.
    pub delay_missing: u64,
    /// CLOCK_MONOTONIC ns of the last offline delivery (0: none). Merged with max.
    pub last_delivery_ns: u64,
}

impl WorkerReport {
    /// Folds another report into this one (threads of a process, or processes of a run).
    pub fn absorb(&mut self, other: WorkerReport) {
        self.histograms.merge(&other.histograms);
        self.ledger.merge(other.ledger);
        self.receipts.merge(other.receipts);
        self.sent.extend(other.sent);
        self.acked.extend(other.acked);
        self.errors.merge(&other.errors);
        self.logins += other.logins;
        // Threads peak at different moments; the sum bounds the true peak from above.
        self.peak_online += other.peak_online;
        self.bounced += other.bounced;
        self.foreign += other.foreign;
        self.skipped_no_peer += other.skipped_no_peer;
        self.send_retries += other.send_retries;
        self.stale += other.stale;
        self.storm_logins += other.storm_logins;
        self.sm_enabled += other.sm_enabled;
        self.sm_failed += other.sm_failed;
        self.sm_unavailable += other.sm_unavailable;
        self.offline_deliveries += other.offline_deliveries;
        self.delay_missing += other.delay_missing;
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
    }
}
