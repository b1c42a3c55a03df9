//! Per-shard counters and the Prometheus text endpoint on the admin port.
//!
//! Each shard owns one [`ShardStats`] and is its only writer: it publishes plain numbers with
//! `Relaxed` stores once per loop turn (no read-modify-write on the hot path). The admin
//! endpoint's request threads (`admin_http`) only load them. Relaxed is enough: every value is an independent gauge or counter, and a
//! scrape that sees one counter a turn older than another is harmless.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::admin_http;

/// One shard's published numbers.
#[derive(Default, Debug)]
pub struct ShardStats {
    pub conns: AtomicU64,
    pub sessions: AtomicU64,
    pub stanzas_in: AtomicU64,
    pub stanzas_out: AtomicU64,
    pub mail_out: AtomicU64,
    pub mail_in: AtomicU64,
    pub mailbox_full: AtomicU64,
    pub mailbox_staged: AtomicU64,
    pub loop_turns: AtomicU64,
    pub submit_calls: AtomicU64,
    pub handoffs_out: AtomicU64,
    pub handoffs_in: AtomicU64,
    pub auth_failures: AtomicU64,
    pub stream_errors: AtomicU64,
    pub refused_conns: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub heap_bytes: AtomicU64,
    pub stored_messages: AtomicU64,
    pub messages_stored: AtomicU64,
    pub store_refusals: AtomicU64,
    pub offline_delivered: AtomicU64,
    pub detached_sessions: AtomicU64,
    pub resumed: AtomicU64,
    pub log_bytes: AtomicU64,
    pub store_available: AtomicU64,
    pub fanouts: AtomicU64,
    pub presence_broadcasts: AtomicU64,
    pub probes_answered: AtomicU64,
    pub roster_pushes: AtomicU64,
    pub roster_items: AtomicU64,
    pub groups: AtomicU64,
    pub group_occupants: AtomicU64,
    pub presence_floods: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub store_index_bytes: AtomicU64,
    pub backlog_sessions: AtomicU64,
    pub backlogs_started: AtomicU64,
    pub log_reads: AtomicU64,
    pub log_read_errors: AtomicU64,
    pub sm_kept_bytes: AtomicU64,
    pub resource_refusals: AtomicU64,
    pub unauth_conns: AtomicU64,
    pub unauth_refusals: AtomicU64,
}

/// (metric name, type, help, accessor) for every published number.
type Field = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardStats) -> &AtomicU64,
);

const FIELDS: &[Field] = &[
    (
        "rookery_fanouts_total",
        "counter",
        "Fan-outs started (presence broadcasts, group messages): one mail per destination shard",
        |s| &s.fanouts,
    ),
    (
        "rookery_presence_broadcasts_total",
        "counter",
        "Presence stanzas broadcast to contacts (one per contact)",
        |s| &s.presence_broadcasts,
    ),
    (
        "rookery_probes_answered_total",
        "counter",
        "Presence probes answered for contacts",
        |s| &s.probes_answered,
    ),
    (
        "rookery_roster_pushes_total",
        "counter",
        "Roster pushes sent",
        |s| &s.roster_pushes,
    ),
    (
        "rookery_roster_items",
        "gauge",
        "Roster items stored on this shard",
        |s| &s.roster_items,
    ),
    (
        "rookery_groups",
        "gauge",
        "Groups homed on this shard",
        |s| &s.groups,
    ),
    (
        "rookery_group_occupants",
        "gauge",
        "Occupants of the groups homed on this shard",
        |s| &s.group_occupants,
    ),
    (
        "rookery_presence_floods_total",
        "counter",
        "Streams closed for exceeding the presence rate",
        |s| &s.presence_floods,
    ),
    ("rookery_conns", "gauge", "Open client conns", |s| &s.conns),
    ("rookery_sessions", "gauge", "Bound sessions", |s| {
        &s.sessions
    }),
    (
        "rookery_stanzas_in_total",
        "counter",
        "Stanzas received",
        |s| &s.stanzas_in,
    ),
    (
        "rookery_stanzas_out_total",
        "counter",
        "Stanzas written",
        |s| &s.stanzas_out,
    ),
    (
        "rookery_mail_out_total",
        "counter",
        "Cross-shard mails sent",
        |s| &s.mail_out,
    ),
    (
        "rookery_mail_in_total",
        "counter",
        "Cross-shard mails received",
        |s| &s.mail_in,
    ),
    (
        "rookery_mailbox_full_total",
        "counter",
        "Flushes that found a lane full",
        |s| &s.mailbox_full,
    ),
    (
        "rookery_mailbox_staged",
        "gauge",
        "Mails staged, waiting for lane room",
        |s| &s.mailbox_staged,
    ),
    (
        "rookery_loop_turns_total",
        "counter",
        "Event loop turns",
        |s| &s.loop_turns,
    ),
    (
        "rookery_submit_calls_total",
        "counter",
        "Kernel submission calls",
        |s| &s.submit_calls,
    ),
    (
        "rookery_handoffs_out_total",
        "counter",
        "Conns handed to their home shard",
        |s| &s.handoffs_out,
    ),
    (
        "rookery_handoffs_in_total",
        "counter",
        "Conns adopted from another shard",
        |s| &s.handoffs_in,
    ),
    (
        "rookery_auth_failures_total",
        "counter",
        "Failed SASL attempts",
        |s| &s.auth_failures,
    ),
    (
        "rookery_stream_errors_total",
        "counter",
        "Streams closed with a stream error",
        |s| &s.stream_errors,
    ),
    (
        "rookery_refused_conns_total",
        "counter",
        "Conns refused at the fd ceiling",
        |s| &s.refused_conns,
    ),
    (
        "rookery_slow_consumer_closes_total",
        "counter",
        "Conns closed: output queue full",
        |s| &s.slow_consumer_closes,
    ),
    (
        "rookery_router_heap_bytes",
        "gauge",
        "Heap bytes held by conn and session state",
        |s| &s.heap_bytes,
    ),
    (
        "rookery_stored_messages",
        "gauge",
        "Messages in the store (offline or unacked)",
        |s| &s.stored_messages,
    ),
    (
        "rookery_messages_stored_total",
        "counter",
        "Messages put in the store",
        |s| &s.messages_stored,
    ),
    (
        "rookery_store_refusals_total",
        "counter",
        "Stanzas refused: quota or store unavailable",
        |s| &s.store_refusals,
    ),
    (
        "rookery_offline_delivered_total",
        "counter",
        "Stored messages delivered at login",
        |s| &s.offline_delivered,
    ),
    (
        "rookery_detached_sessions",
        "gauge",
        "Sessions waiting for XEP-0198 resumption",
        |s| &s.detached_sessions,
    ),
    (
        "rookery_resumed_total",
        "counter",
        "XEP-0198 resumptions",
        |s| &s.resumed,
    ),
    (
        "rookery_log_bytes",
        "gauge",
        "Bytes of the shard's durable log",
        |s| &s.log_bytes,
    ),
    (
        "rookery_store_available",
        "gauge",
        "1 while the durable log accepts writes",
        |s| &s.store_available,
    ),
    (
        "rookery_stored_bytes",
        "gauge",
        "Bytes of queued messages in the store (records; --store-max-bytes)",
        |s| &s.stored_bytes,
    ),
    (
        "rookery_store_index_bytes",
        "gauge",
        "Heap bytes of the store's message index (stanzas stay in the log)",
        |s| &s.store_index_bytes,
    ),
    (
        "rookery_backlog_sessions",
        "gauge",
        "Sessions whose stored messages are delivered as they take them",
        |s| &s.backlog_sessions,
    ),
    (
        "rookery_backlogs_started_total",
        "counter",
        "Sessions that went into backlog (slow reader or XEP-0198 window full)",
        |s| &s.backlogs_started,
    ),
    (
        "rookery_log_reads_total",
        "counter",
        "Stored messages read back from the log for delivery",
        |s| &s.log_reads,
    ),
    (
        "rookery_log_read_errors_total",
        "counter",
        "Stored messages whose read back failed (they stay queued)",
        |s| &s.log_read_errors,
    ),
    (
        "rookery_sm_kept_bytes",
        "gauge",
        "Bytes of XEP-0198 unacked stanzas kept in memory (--sm-max-unacked-bytes per session)",
        |s| &s.sm_kept_bytes,
    ),
    (
        "rookery_resource_refusals_total",
        "counter",
        "Binds refused: the user had --max-resources sessions",
        |s| &s.resource_refusals,
    ),
    (
        "rookery_unauth_conns",
        "gauge",
        "Conns not yet authenticated",
        |s| &s.unauth_conns,
    ),
    (
        "rookery_unauth_refusals_total",
        "counter",
        "Conns closed: their address had --max-unauth-per-address waiting",
        |s| &s.unauth_refusals,
    ),
];

/// Renders every shard's numbers in the Prometheus text format (version 0.0.4).
pub fn render(shards: &[Arc<ShardStats>]) -> String {
    let mut out = String::with_capacity(4096);
    for (name, kind, help, field) in FIELDS {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (index, stats) in shards.iter().enumerate() {
            let value = field(stats).load(Relaxed);
            out.push_str(&format!("{name}{{shard=\"{index}\"}} {value}\n"));
        }
    }
    out
}

/// Serves `GET /metrics` on `addr` (see `admin_http`: a deadline per request, requests
/// served side by side, accept errors backed off). A bind failure is returned so the operator
/// sees it at start.
pub fn serve(addr: SocketAddr, shards: Vec<Arc<ShardStats>>) -> std::io::Result<SocketAddr> {
    admin_http::serve(addr, admin_http::Limits::default(), move || render(&shards))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;

    #[test]
    fn render_lists_every_shard() {
        let a = Arc::new(ShardStats::default());
        let b = Arc::new(ShardStats::default());
        b.sessions.store(7, Relaxed);
        let text = render(&[a, b]);
        assert!(text.contains("rookery_sessions{shard=\"1\"} 7\n"));
        assert!(text.contains("rookery_conns{shard=\"0\"} 0\n"));
        assert!(text.contains("# TYPE rookery_stanzas_in_total counter"));
    }

    #[test]
    fn a_request_in_several_segments_gets_its_answer() {
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            vec![Arc::new(ShardStats::default())],
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
        stats.loop_turns.store(42, Relaxed);
        let addr = serve("127.0.0.1:0".parse().unwrap(), vec![stats]).unwrap();
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"));
        assert!(reply.contains("rookery_loop_turns_total{shard=\"0\"} 42"));
    }
}
