//! Per-shard metrics and the Prometheus text endpoint on the admin port.
//!
//! Every metric is declared once, with `rookery_router::metric_struct!`: the router's in
//! [`RouterStats`], the shard loop's own (driver, mailbox, store, memory) in [`LoopStats`]
//! below. A shard publishes both into its [`ShardStats`], one slot per metric in the same
//! order, and [`render`] walks the same two tables, so whatever is counted is exported.
//!
//! Each shard owns one [`ShardStats`] and is its only writer: it publishes plain numbers with
//! `Relaxed` stores once per loop turn (no read-modify-write, allocation or formatting on the
//! hot path). The admin endpoint's request threads (`admin_http`) only load them. Relaxed is
//! enough: every value is an independent gauge or counter, and a scrape that sees one counter
//! a turn older than another is harmless.
//!
//! A cluster node adds its bridge's numbers ([`render_cluster`]: `rookery_cluster_*`, one
//! sample per node, and the cross-node latency histogram).
//!
//! What it does not do: aggregate shards (each sample has a `shard` label; the scraper sums).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rookery_cluster::stats::BridgeStats;
use rookery_router::{Metric, RouterStats};

use crate::admin_http;
use crate::cluster::EndpointStats;

rookery_router::metric_struct! {
    /// The numbers the shard loop measures itself, beside the router's.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct LoopStats {
        /// Open client conns (the driver's count, closing ones included).
        conns: Gauge("rookery_conns"),
        /// Flushes that found a lane full.
        mailbox_full: Counter("rookery_mailbox_full_total"),
        /// Mails staged, waiting for lane room.
        mailbox_staged: Gauge("rookery_mailbox_staged"),
        /// Event loop turns.
        loop_turns: Counter("rookery_loop_turns_total"),
        /// Kernel submission calls.
        submit_calls: Counter("rookery_submit_calls_total"),
        /// Conns refused: at the fd ceiling (RLIMIT_NOFILE), while shutting down, or accept
        /// failed.
        refused_conns: Counter("rookery_refused_conns_total"),
        /// Conns closed: output queue full.
        slow_consumer_closes: Counter("rookery_slow_consumer_closes_total"),
        /// Streams the router closed because of the client: its input, silence, close or
        /// limits (`rookery_router::Cause::Peer`).
        closes_peer: Counter("rookery_closes_peer_total"),
        /// Streams the router closed because of the OS or the transport (`Cause::Os`).
        closes_os: Counter("rookery_closes_os_total"),
        /// Streams the router refused at once because a configured limit said so
        /// (`Cause::Config`: the per-address budget of unauthenticated conns).
        closes_config: Counter("rookery_closes_config_total"),
        /// Streams the router closed for the shard's own reasons: shutdown, a session
        /// replaced by a newer one (`Cause::Shard`).
        closes_shard: Counter("rookery_closes_shard_total"),
        /// Heap bytes held by conn and session state (updated once a second).
        heap_bytes: Gauge("rookery_router_heap_bytes"),
        /// Bytes of the shard's durable log (updated once a second).
        log_bytes: Gauge("rookery_log_bytes"),
        /// Batches written to the durable log (group commits; with `--commit-delay-ms` several
        /// turns share one; updated once a second).
        log_writes: Counter("rookery_log_writes_total"),
        /// 1 while the durable log accepts writes.
        store_available: Gauge("rookery_store_available"),
        /// Bytes of queued messages in the store (records; --store-max-bytes; updated once a
        /// second).
        stored_bytes: Gauge("rookery_stored_bytes"),
        /// Heap bytes of the store's message index, stanzas stay in the log (updated once a
        /// second).
        store_index_bytes: Gauge("rookery_store_index_bytes"),
        /// Bytes of XEP-0198 unacked stanzas kept in memory (--sm-max-unacked-bytes per
        /// session; updated once a second).
        sm_kept_bytes: Gauge("rookery_sm_kept_bytes"),
        /// Upload usage events (files stored or removed) dropped because this shard's inbox
        /// was full: its quota ledger is off by those files until restart.
        upload_usage_dropped: Counter("rookery_upload_usage_dropped_total"),
        /// Conns under TLS now (direct TLS and STARTTLS).
        tls_sessions: Gauge("rookery_tls_sessions"),
        /// TLS handshakes completed.
        tls_handshakes: Counter("rookery_tls_handshakes_total"),
        /// TLS sessions that failed because of the peer (bad records, a refused handshake,
        /// a fatal alert): each conn was closed after our alert.
        tls_failures_peer: Counter("rookery_tls_failures_peer_total"),
        /// TLS sessions that failed on our side (crypto provider, configuration).
        tls_failures_local: Counter("rookery_tls_failures_local_total"),
        /// Heap bytes held by the conns' layers below the stream: TLS sessions (as rookery-tls
        /// estimates them) and WebSocket layers (updated once a second).
        tls_heap_bytes: Gauge("rookery_tls_heap_bytes"),
        /// Conns speaking XMPP over WebSocket (RFC 7395) now.
        websocket_sessions: Gauge("rookery_websocket_sessions"),
        /// WebSocket conns closed for a bad frame (unmasked 1002, binary 1003, over the
        /// message limit 1009, malformed 1002).
        websocket_frame_errors: Counter("rookery_websocket_frame_errors_total"),
        /// Keepalive pings sent to WebSocket conns quiet for --ws-ping-interval.
        websocket_keepalive_pings: Counter("rookery_websocket_keepalive_pings_total"),
        /// WebSocket conns closed (1001) because a keepalive ping went unanswered for
        /// --ws-ping-timeout.
        websocket_keepalive_timeouts: Counter("rookery_websocket_keepalive_timeouts_total"),
    }
}

/// How many metrics a shard publishes: the router's, then the loop's.
const METRICS_LEN: usize = RouterStats::LEN + LoopStats::LEN;

/// Every metric, in slot order.
fn metrics() -> impl Iterator<Item = &'static Metric> {
    RouterStats::METRICS.iter().chain(LoopStats::METRICS)
}

/// One shard's published numbers: slot `i` holds the value of the `i`th of [`metrics`].
#[derive(Debug)]
pub struct ShardStats {
    slots: [AtomicU64; METRICS_LEN],
}

impl Default for ShardStats {
    fn default() -> ShardStats {
        ShardStats {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ShardStats {
    /// Publishes one turn's numbers (only the owning shard calls this). Relaxed: see the
    /// module doc; the loads in [`render`] pair with nothing else.
    pub fn publish(&self, router: &RouterStats, own: &LoopStats) {
        let values = router.values().into_iter().chain(own.values());
        for (slot, value) in self.slots.iter().zip(values) {
            slot.store(value, Relaxed);
        }
    }
}

/// Renders every shard's numbers in the Prometheus text format (version 0.0.4).
pub fn render(shards: &[Arc<ShardStats>]) -> String {
    let mut out = String::with_capacity(METRICS_LEN * (160 + 48 * shards.len()));
    // Writing into a String cannot fail: the results of `writeln!` are ignored.
    for (i, metric) in metrics().enumerate() {
        let Metric { name, kind, help } = metric;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
        for (index, stats) in shards.iter().enumerate() {
            let value = stats.slots[i].load(Relaxed);
            let _ = writeln!(out, "{name}{{shard=\"{index}\"}} {value}");
        }
    }
    out
}

/// A cluster node's bridge numbers: the bridge's (NATS, link) and its endpoint's (mail).
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    /// This node's id (the `node` label of every sample).
    pub node: u16,
    pub bridge: Arc<BridgeStats>,
    pub endpoint: Arc<EndpointStats>,
}

/// Appends the bridge's numbers (one sample each, labelled with the node: the bridge is per
/// node, not per shard) and the cross-node latency histogram,
/// `rookery_cluster_latency_seconds`.
pub fn render_cluster(out: &mut String, cluster: &ClusterMetrics) {
    let node = cluster.node;
    let mut sample = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}"
        );
    };
    cluster.bridge.visit(&mut sample);
    cluster.endpoint.visit(&mut sample);
    let name = "rookery_cluster_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Bus latency of batches from other nodes (receive time minus the \
         sender's first send)\n# TYPE {name} histogram"
    );
    let (buckets, sum_us) = cluster.bridge.latency();
    let mut count = 0;
    for (bound, cumulative) in buckets {
        count = cumulative;
        let le = bound.map_or("+Inf".to_owned(), |us| (us as f64 / 1e6).to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{node=\"{node}\",le=\"{le}\"}} {cumulative}"
        );
    }
    let sum = sum_us as f64 / 1e6;
    let _ = writeln!(
        out,
        "{name}_sum{{node=\"{node}\"}} {sum}\n{name}_count{{node=\"{node}\"}} {count}"
    );
}

/// Serves `GET /metrics` on `addr` (see `admin_http`: a deadline per request, requests
/// served side by side, accept errors backed off): every shard's numbers, and a cluster
/// node's bridge's. A bind failure is returned so the operator sees it at start.
pub fn serve(
    addr: SocketAddr,
    shards: Vec<Arc<ShardStats>>,
    cluster: Option<ClusterMetrics>,
) -> std::io::Result<SocketAddr> {
    serve_with(addr, shards, cluster, |_| {}, None)
}

/// Like [`serve`], with `extra` appending more families at the end (the HTTP upload server's,
/// which have no shard label), and the account routes of `accounts` (`--auth file`).
pub fn serve_with(
    addr: SocketAddr,
    shards: Vec<Arc<ShardStats>>,
    cluster: Option<ClusterMetrics>,
    extra: impl Fn(&mut String) + Send + Sync + 'static,
    accounts: Option<Arc<crate::admin_accounts::AccountDesk>>,
) -> std::io::Result<SocketAddr> {
    let render = move || {
        let mut text = render(&shards);
        if let Some(cluster) = &cluster {
            render_cluster(&mut text, cluster);
        }
        extra(&mut text);
        text
    };
    admin_http::serve_with_accounts(addr, admin_http::Limits::default(), render, accounts)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use rookery_router::MetricKind;

    use super::*;

    /// The names published before the metrics were declared once: dashboards, tests and
    /// scripts scrape them, so none may change.
    const PUBLISHED_BEFORE: &[&str] = &[
        "rookery_fanouts_total",
        "rookery_presence_broadcasts_total",
        "rookery_probes_answered_total",
        "rookery_roster_pushes_total",
        "rookery_roster_items",
        "rookery_groups",
        "rookery_group_occupants",
        "rookery_presence_floods_total",
        "rookery_conns",
        "rookery_sessions",
        "rookery_stanzas_in_total",
        "rookery_stanzas_out_total",
        "rookery_mail_out_total",
        "rookery_mail_in_total",
        "rookery_mailbox_full_total",
        "rookery_mailbox_staged",
        "rookery_loop_turns_total",
        "rookery_submit_calls_total",
        "rookery_handoffs_out_total",
        "rookery_handoffs_in_total",
        "rookery_auth_failures_total",
        "rookery_stream_errors_total",
        "rookery_refused_conns_total",
        "rookery_slow_consumer_closes_total",
        "rookery_router_heap_bytes",
        "rookery_stored_messages",
        "rookery_messages_stored_total",
        "rookery_store_refusals_total",
        "rookery_offline_delivered_total",
        "rookery_detached_sessions",
        "rookery_resumed_total",
        "rookery_log_bytes",
        "rookery_store_available",
        "rookery_stored_bytes",
        "rookery_store_index_bytes",
        "rookery_backlog_sessions",
        "rookery_backlogs_started_total",
        "rookery_log_reads_total",
        "rookery_log_read_errors_total",
        "rookery_sm_kept_bytes",
        "rookery_resource_refusals_total",
        "rookery_unauth_conns",
        "rookery_unauth_refusals_total",
    ];

    fn loop_turns(n: u64) -> LoopStats {
        LoopStats {
            loop_turns: n,
            ..LoopStats::default()
        }
    }

    #[test]
    fn render_lists_every_shard() {
        let a = Arc::new(ShardStats::default());
        let b = Arc::new(ShardStats::default());
        let router = RouterStats {
            sessions: 7,
            ..RouterStats::default()
        };
        b.publish(&router, &loop_turns(3));
        let text = render(&[a, b]);
        assert!(text.contains("rookery_sessions{shard=\"1\"} 7\n"));
        assert!(text.contains("rookery_sessions{shard=\"0\"} 0\n"));
        assert!(text.contains("rookery_loop_turns_total{shard=\"1\"} 3\n"));
        assert!(text.contains("rookery_conns{shard=\"0\"} 0\n"));
        assert!(text.contains("# TYPE rookery_stanzas_in_total counter"));
    }

    #[test]
    fn every_metric_is_exported_with_help_type_and_its_own_value() {
        let stats = Arc::new(ShardStats::default());
        for (i, slot) in stats.slots.iter().enumerate() {
            slot.store(1000 + i as u64, Relaxed);
        }
        let text = render(&[stats]);
        let mut families = 0;
        for (i, m) in metrics().enumerate() {
            let head = format!(
                "# HELP {0} {1}\n# TYPE {0} {2}\n",
                m.name,
                m.help,
                m.kind.as_str()
            );
            let sample = format!("{}{{shard=\"0\"}} {}\n", m.name, 1000 + i);
            assert!(
                text.contains(&(head + &sample)),
                "{} missing or wrong",
                m.name
            );
            families += 1;
        }
        assert_eq!(families, METRICS_LEN);
        assert_eq!(text.matches("# TYPE ").count(), METRICS_LEN);
        assert_eq!(text.lines().count(), METRICS_LEN * 3);
    }

    #[test]
    fn every_router_field_is_exported_with_help_and_type() {
        // A field of RouterStats is a metric by declaration; publish puts its value in its own
        // sample. resume_failures and resumes_delayed were once counted but never exported.
        let router = RouterStats {
            resume_failures: 11,
            resumes_delayed: 12,
            log_reads_in_flight: 13,
            conns: 14,
            ..RouterStats::default()
        };
        let stats = Arc::new(ShardStats::default());
        stats.publish(&router, &LoopStats::default());
        let text = render(&[stats]);
        for (m, value) in RouterStats::METRICS.iter().zip(router.values()) {
            assert!(
                text.contains(&format!("# HELP {} {}\n", m.name, m.help)),
                "{}",
                m.name
            );
            assert!(text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.as_str())));
            assert!(text.contains(&format!("{}{{shard=\"0\"}} {value}\n", m.name)));
        }
        assert!(text.contains("rookery_resume_failures_total{shard=\"0\"} 11\n"));
        assert!(text.contains("rookery_resumes_delayed_total{shard=\"0\"} 12\n"));
        assert!(text.contains("rookery_log_reads_in_flight{shard=\"0\"} 13\n"));
        assert!(text.contains("rookery_router_conns{shard=\"0\"} 14\n"));
    }

    #[test]
    fn published_names_are_kept_and_none_is_declared_twice() {
        let declared: Vec<&str> = metrics().map(|m| m.name).collect();
        for name in PUBLISHED_BEFORE {
            assert!(declared.contains(name), "{name} is no longer exported");
        }
        let mut unique = declared.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), declared.len(), "a name is declared twice");
        for m in metrics() {
            assert!(m.name.starts_with("rookery_"), "{}", m.name);
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == MetricKind::Counter,
                "{}",
                m.name
            );
            // HELP is one line of text: the format would need these escaped.
            assert!(
                !m.help.is_empty() && !m.help.contains(['\\', '\n']),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn a_cluster_node_exports_its_bridge_once_with_a_latency_histogram() {
        let cluster = ClusterMetrics {
            node: 3,
            bridge: Arc::new(BridgeStats::default()),
            endpoint: Arc::new(EndpointStats::default()),
        };
        cluster.bridge.msgs_out.store(5, Relaxed);
        cluster.bridge.observe_latency(300);
        cluster.endpoint.mails_in.store(9, Relaxed);
        let mut text = String::new();
        render_cluster(&mut text, &cluster);
        assert!(text.contains("# TYPE rookery_cluster_nats_messages_out_total counter\n"));
        assert!(text.contains("\nrookery_cluster_nats_messages_out_total{node=\"3\"} 5\n"));
        assert!(text.contains("\nrookery_cluster_mails_in_total{node=\"3\"} 9\n"));
        let bucket = "rookery_cluster_latency_seconds_bucket{node=\"3\",le=";
        assert!(
            text.contains(&format!("{bucket}\"0.000256\"}} 0\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{bucket}\"0.000512\"}} 1\n")));
        assert!(text.contains(&format!("{bucket}\"+Inf\"}} 1\n")));
        assert!(text.contains("rookery_cluster_latency_seconds_sum{node=\"3\"} 0.0003\n"));
        assert!(text.contains("rookery_cluster_latency_seconds_count{node=\"3\"} 1\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(name.starts_with("rookery_cluster_"), "{name}");
            let counter = line.ends_with(" counter");
            assert_eq!(name.ends_with("_total"), counter, "{name}");
        }
    }

    #[test]
    fn a_request_in_several_segments_gets_its_answer() {
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            vec![Arc::new(ShardStats::default())],
            None,
        )
        .unwrap();
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        conn.write_all(b"host: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    }

    #[test]
    fn serves_metrics_over_http() {
        let stats = Arc::new(ShardStats::default());
        stats.publish(&RouterStats::default(), &loop_turns(42));
        let addr = serve("127.0.0.1:0".parse().unwrap(), vec![stats], None).unwrap();
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"));
        assert!(reply.contains("rookery_loop_turns_total{shard=\"0\"} 42"));
    }
}
