//! What a worker hands back when it ends, and how reports fold together.
//!
//! What it does not do: compute the run's totals (see `run::finish`) or travel between
//! processes (see `procs::protocol`).

use crate::accounting::Ledger;
use crate::fanout::table::LastReceipts;
use crate::fanout::JoinError;
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
    /// See-other-host redirects followed (a new conn to the named node each).
    pub redirects: u64,
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
    /// `--keepalive`: whitespace keepalives sent.
    pub keepalives: u64,
    /// Chat with `--storm-fraction`: clients dropped at the storm's start, when it started
    /// and when the last of its logins completed (CLOCK_MONOTONIC ns; merged with max).
    pub storm_dropped: u64,
    pub storm_start_ns: u64,
    pub storm_last_login_ns: u64,
    /// Messages still unacknowledged when their sender's stream dropped (see
    /// [`crate::accounting::UnackedRange`]).
    pub unacked_at_drop: Vec<crate::accounting::UnackedRange>,
    /// TLS handshakes (full, resumed), TLS failures, what was negotiated.
    pub tls: crate::security::TlsCounters,
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
    /// Presence and group: receipts per change, for the last-recipient latency.
    pub last_receipts: LastReceipts,
    /// Presence and group: setup and join counts.
    pub fan: FanCounters,
}

/// What the presence and group scenarios count besides receipts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FanCounters {
    /// Presence: clients whose setup subscribed their contacts / found the ring in place.
    pub setup_runs: u64,
    pub setup_skipped: u64,
    /// Presence: clients whose setup ran out of `--setup-ms`.
    pub setup_timeouts: u64,
    /// Presence: (client, contact) links not mutual when the setup ended, counted at both
    /// ends of a pair.
    pub setup_incomplete_links: u64,
    /// Presence: `subscribe` requests answered with `subscribed`.
    pub subscribes_answered: u64,
    /// Presence: contacts seen available between the initial presence and the measurement,
    /// and how many were expected (K per client that sent its initial presence).
    pub initial_presences: u64,
    pub initial_expected: u64,
    /// Presence: the latest of those arrived this long after the steady start (max).
    pub initial_last_ms: u64,
    /// Presence: contacts' initial presences that arrived after the measurement began.
    pub initial_late: u64,
    /// Presence: status changes from users subscribed outside the ring (an earlier run's).
    pub outside_ring: u64,
    /// Group: joins done, retried (room locked), rooms created and configured.
    pub joins: u64,
    pub join_retries: u64,
    pub rooms_created: u64,
    pub rooms_configured: u64,
    pub room_config_errors: u64,
    /// Group: failed joins by condition (indexed by [`JoinError`]).
    #[serde(skip)]
    pub join_errors: [u64; JoinError::ALL.len()],
}

impl FanCounters {
    fn absorb(&mut self, o: &FanCounters) {
        let last_ms = self.initial_last_ms.max(o.initial_last_ms);
        let mut theirs = *o;
        for ((_, a), (_, b)) in self.named().into_iter().zip(theirs.named()) {
            *a += *b;
        }
        // The one that is a maximum, not a sum.
        self.initial_last_ms = last_ms;
    }

    /// Every counter by name (the join errors as `join_error_<condition>`).
    pub fn named(&mut self) -> Vec<(String, &mut u64)> {
        let mut out: Vec<(String, &mut u64)> = vec![
            ("setup_runs".into(), &mut self.setup_runs),
            ("setup_skipped".into(), &mut self.setup_skipped),
            ("setup_timeouts".into(), &mut self.setup_timeouts),
            (
                "setup_incomplete_links".into(),
                &mut self.setup_incomplete_links,
            ),
            ("subscribes_answered".into(), &mut self.subscribes_answered),
            ("initial_presences".into(), &mut self.initial_presences),
            ("initial_expected".into(), &mut self.initial_expected),
            ("initial_late".into(), &mut self.initial_late),
            ("initial_last_ms".into(), &mut self.initial_last_ms),
            ("outside_ring".into(), &mut self.outside_ring),
            ("joins".into(), &mut self.joins),
            ("join_retries".into(), &mut self.join_retries),
            ("rooms_created".into(), &mut self.rooms_created),
            ("rooms_configured".into(), &mut self.rooms_configured),
            ("room_config_errors".into(), &mut self.room_config_errors),
        ];
        for (e, n) in JoinError::ALL.iter().zip(self.join_errors.iter_mut()) {
            out.push((format!("join_error_{}", e.name()), n));
        }
        out
    }

    /// Failed joins by condition, non-zero ones.
    pub fn join_errors(&self) -> Vec<(&'static str, u64)> {
        JoinError::ALL
            .iter()
            .zip(self.join_errors)
            .filter(|(_, n)| *n > 0)
            .map(|(e, n)| (e.name(), n))
            .collect()
    }
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
        self.redirects += other.redirects;
        self.foreign += other.foreign;
        self.skipped_no_peer += other.skipped_no_peer;
        self.send_retries += other.send_retries;
        self.stale += other.stale;
        self.storm_logins += other.storm_logins;
        self.keepalives += other.keepalives;
        self.storm_dropped += other.storm_dropped;
        self.storm_start_ns = self.storm_start_ns.max(other.storm_start_ns);
        self.storm_last_login_ns = self.storm_last_login_ns.max(other.storm_last_login_ns);
        self.unacked_at_drop.extend(other.unacked_at_drop);
        self.tls.absorb(&other.tls);
        self.sm_enabled += other.sm_enabled;
        self.sm_failed += other.sm_failed;
        self.sm_unavailable += other.sm_unavailable;
        self.offline_deliveries += other.offline_deliveries;
        self.delay_missing += other.delay_missing;
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
        self.last_receipts.merge(other.last_receipts);
        self.fan.absorb(&other.fan);
    }
}
