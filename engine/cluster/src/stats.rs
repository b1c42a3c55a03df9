//! The bridge's counters, published with `Relaxed` stores by the bridge thread and read by the
//! metrics endpoint (each value is an independent counter or gauge), and the cross-node
//! latency histogram (power-of-two microsecond buckets).
//!
//! What it does not do: format Prometheus text (the server's metrics endpoint renders what
//! [`BridgeStats::visit`] gives it, with the rest of the node's metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Buckets of the latency histogram: `le` = 2^k microseconds, k = 0..LATENCY_BUCKETS-1,
/// the last one open-ended (about 34 s and up).
pub const LATENCY_BUCKETS: usize = 26;

/// One exported value: name, Prometheus type, help.
pub type Visit<'a> = &'a mut dyn FnMut(&'static str, &'static str, &'static str, u64);

/// Counters of one node's bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub connected: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub msgs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub payloads_out: AtomicU64,
    pub payloads_in: AtomicU64,
    pub retransmits: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub given_up: AtomicU64,
    pub peer_restarts: AtomicU64,
    pub stale: AtomicU64,
    pub bad_frames: AtomicU64,
    pub publish_errors: AtomicU64,
    pub pending_bytes: AtomicU64,
    pub queue_depth: AtomicU64,
    pub acks_sent: AtomicU64,
    pub retry_ms: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_sum_us: AtomicU64,
}

impl BridgeStats {
    /// Records one payload's bus latency (receive time minus the sender's first send).
    pub fn observe_latency(&self, micros: u64) {
        let bucket = (64 - micros.leading_zeros()) as usize;
        self.latency[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(micros, Relaxed);
    }

    /// Walks every counter and gauge (not the histogram: see `latency`).
    pub fn visit(&self, f: Visit<'_>) {
        let fields: [(&'static str, &'static str, &'static str, &AtomicU64); 19] = [
            (
                "rookery_cluster_connected",
                "gauge",
                "1 while the bridge is connected to NATS",
                &self.connected,
            ),
            (
                "rookery_cluster_nats_messages_out_total",
                "counter",
                "NATS messages published (frames, acks included)",
                &self.msgs_out,
            ),
            (
                "rookery_cluster_nats_bytes_out_total",
                "counter",
                "Bytes published to NATS",
                &self.bytes_out,
            ),
            (
                "rookery_cluster_nats_messages_in_total",
                "counter",
                "NATS messages received",
                &self.msgs_in,
            ),
            (
                "rookery_cluster_nats_bytes_in_total",
                "counter",
                "Bytes received from NATS",
                &self.bytes_in,
            ),
            (
                "rookery_cluster_batches_out_total",
                "counter",
                "Batches of mail sent to other nodes (one per destination per wake-up)",
                &self.payloads_out,
            ),
            (
                "rookery_cluster_batches_in_total",
                "counter",
                "Batches of mail delivered in order from other nodes",
                &self.payloads_in,
            ),
            (
                "rookery_cluster_retransmits_total",
                "counter",
                "Frames sent again (not acknowledged in time)",
                &self.retransmits,
            ),
            (
                "rookery_cluster_duplicates_total",
                "counter",
                "Frames received twice and filtered",
                &self.duplicates,
            ),
            (
                "rookery_cluster_refused_total",
                "counter",
                "Batches refused: a peer's pending bytes were at their budget",
                &self.refused,
            ),
            (
                "rookery_cluster_given_up_total",
                "counter",
                "Batches given up after the retry timeout (their senders get errors)",
                &self.given_up,
            ),
            (
                "rookery_cluster_peer_restarts_total",
                "counter",
                "Peers seen restarting (a new epoch)",
                &self.peer_restarts,
            ),
            (
                "rookery_cluster_stale_frames_total",
                "counter",
                "Frames of a peer's earlier incarnation, ignored",
                &self.stale,
            ),
            (
                "rookery_cluster_bad_frames_total",
                "counter",
                "NATS messages that were not cluster frames",
                &self.bad_frames,
            ),
            (
                "rookery_cluster_publish_errors_total",
                "counter",
                "Publishes the NATS client refused (retransmitted later)",
                &self.publish_errors,
            ),
            (
                "rookery_cluster_pending_bytes",
                "gauge",
                "Bytes sent and not yet acknowledged by peers",
                &self.pending_bytes,
            ),
            (
                "rookery_cluster_bridge_queue",
                "gauge",
                "Mail waiting in the bridge's lanes from and to the shards",
                &self.queue_depth,
            ),
            (
                "rookery_cluster_pure_acks_total",
                "counter",
                "Acks sent as NATS messages of their own (no frame going back carried them)",
                &self.acks_sent,
            ),
            (
                "rookery_cluster_retry_timeout_ms",
                "gauge",
                "The largest per-peer retry timeout now (measured round trip + 4 x its \
                 variation, within the link's bounds; 0 before a round trip was measured)",
                &self.retry_ms,
            ),
        ];
        for (name, kind, help, value) in fields {
            f(name, kind, help, value.load(Relaxed));
        }
    }

    /// The latency histogram: cumulative counts per `le` bound in microseconds (the last
    /// bound is `None`: +Inf), and the sum.
    pub fn latency(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS);
        for (k, count) in self.latency.iter().enumerate() {
            total += count.load(Relaxed);
            let bound = (k + 1 < LATENCY_BUCKETS).then(|| 1u64 << k);
            buckets.push((bound, total));
        }
        (buckets, self.latency_sum_us.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_powers_of_two() {
        let stats = BridgeStats::default();
        for micros in [0, 1, 3, 900, 1_000_000_000_000] {
            stats.observe_latency(micros);
        }
        let (buckets, sum) = stats.latency();
        assert_eq!(buckets[0], (Some(1), 1), "0 us");
        assert_eq!(buckets[1], (Some(2), 2), "1 us");
        assert_eq!(buckets[2], (Some(4), 3), "3 us");
        assert_eq!(buckets[10], (Some(1024), 4), "900 us");
        assert_eq!(buckets.last(), Some(&(None, 5)));
        assert_eq!(sum, 1_000_000_000_904);
        let mut names = Vec::new();
        stats.visit(&mut |name, _, _, _| names.push(name));
        assert_eq!(names.len(), 19);
    }
}
