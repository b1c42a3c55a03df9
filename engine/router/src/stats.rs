//! Counters of one router, read by the server's metrics endpoint through `Router::stats`, and
//! the one way a Rookery metric is declared: [`metric_struct!`].
//!
//! A metric is declared once, as a field of a plain struct of `u64`s with its Prometheus name
//! and type beside it; its doc comment is its HELP text. The macro generates the struct, the
//! table of [`Metric`]s (`METRICS`) and `values()`, the numbers in table order. The server
//! keeps a per-shard atomic snapshot of the same length, copies `values()` into it in one loop
//! and renders the exposition by walking `METRICS`: a field cannot be counted and not exported.
//!
//! What it does not do: aggregate across shards or export anything (the server does).
//! Invariants: every field is a `u64`; a `Counter` only grows, a `Gauge` is a current value;
//! names are unique, start with `rookery_`, and a counter's (only a counter's) ends in
//! `_total`; names never change once published (dashboards scrape them).

/// The Prometheus type of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows (until the process restarts).
    Counter,
    /// A current value: goes up and down.
    Gauge,
}

impl MetricKind {
    /// The word of the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One exported number: its Prometheus name, type and help (the field's doc comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
}

/// Declares a struct of `u64` metrics once: each field is written
/// `/// help text` then `field: Counter("rookery_name_total"),` (or `Gauge(..)`).
///
/// Generates the struct (every field `pub u64`, attributes passed through) and, in its impl,
/// `METRICS: &[Metric]` (one per field, declaration order), `LEN`, and
/// `values(&self) -> [u64; LEN]` (the fields in the same order; no allocation, so it can run
/// every loop turn).
#[macro_export]
macro_rules! metric_struct {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $kind:ident($metric:literal),
            )+
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                pub $field: u64,
            )+
        }

        impl $name {
            /// Every field as an exported metric, in declaration order (the order of `values`).
            pub const METRICS: &'static [$crate::Metric] = &[$(
                $crate::Metric {
                    name: $metric,
                    kind: $crate::MetricKind::$kind,
                    help: concat!($($doc),+).trim_ascii(),
                },
            )+];

            /// How many metrics (fields) there are.
            pub const LEN: usize = $name::METRICS.len();

            /// The fields' values in `METRICS` order.
            pub fn values(&self) -> [u64; $name::LEN] {
                [$(self.$field),+]
            }
        }
    };
}

metric_struct! {
    /// A snapshot of one router's counters.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RouterStats {
        /// Conns the router holds, closing ones included (the driver's count is rookery_conns).
        conns: Gauge("rookery_router_conns"),
        /// Bound sessions.
        sessions: Gauge("rookery_sessions"),
        /// Stanzas (message, presence, iq) received from conns.
        stanzas_in: Counter("rookery_stanzas_in_total"),
        /// Stanzas written to conns: deliveries, bind results, iq answers and stanza errors.
        stanzas_out: Counter("rookery_stanzas_out_total"),
        /// Cross-shard mails sent.
        mail_out: Counter("rookery_mail_out_total"),
        /// Cross-shard mails received.
        mail_in: Counter("rookery_mail_in_total"),
        /// Mails whose answer did not come in time (RouterConfig::mail_timeout_ms, 30 s):
        /// each sender got a remote-server-timeout error.
        mail_timeouts: Counter("rookery_mail_timeouts_total"),
        /// Failed SASL attempts (each failure sent, and SASL aborts).
        auth_failures: Counter("rookery_auth_failures_total"),
        /// SASL failure answers delayed (--auth-fail-delay-ms): the source address or the
        /// account was past its failure budget (--auth-fail-per-address, per minute;
        /// --auth-fail-per-account, per ten minutes). Counted per shard.
        auth_delayed: Counter("rookery_auth_delayed_total"),
        /// Logins refused with not-authorized and a closed stream: the address or account was
        /// past twice its failure budget (checked before the credentials); also in-band
        /// registrations refused for their address's budget (resource-constraint past it,
        /// a closed stream past twice it).
        auth_refused: Counter("rookery_auth_refused_total"),
        /// Addresses and accounts the failed-login throttle counts (bounded per shard by
        /// 2 x --auth-throttle-entries).
        auth_throttle_entries: Gauge("rookery_auth_throttle_entries"),
        /// Keys the failed-login throttle dropped, oldest first, to stay within its bound.
        auth_throttle_evictions: Counter("rookery_auth_throttle_evictions_total"),
        /// Accounts created by XEP-0077 in-band registration (--allow-registration).
        registrations: Counter("rookery_registrations_total"),
        /// STARTTLS negotiations answered with `<proceed/>`.
        starttls: Counter("rookery_starttls_total"),
        /// `<starttls/>` refused (no certificate, already under TLS, a bad element): each
        /// stream closed with the TLS `<failure/>`.
        starttls_failures: Counter("rookery_starttls_failures_total"),
        /// Streams closed by us with a stream error (timeouts and shutdown included).
        stream_errors: Counter("rookery_stream_errors_total"),
        /// Conns handed to their home shard.
        handoffs_out: Counter("rookery_handoffs_out_total"),
        /// Conns adopted from another shard.
        handoffs_in: Counter("rookery_handoffs_in_total"),
        /// XEP-0357 notifications published to app servers.
        push_notifications: Counter("rookery_push_notifications_total"),
        /// XEP-0357 registrations disabled because their app server answered with an error.
        push_disabled: Counter("rookery_push_disabled_total"),
        /// Sessions waiting for XEP-0198 resumption.
        detached_sessions: Gauge("rookery_detached_sessions"),
        /// Messages in the store (offline or awaiting the recipient's ack).
        stored_messages: Gauge("rookery_stored_messages"),
        /// Messages put in the store.
        messages_stored: Counter("rookery_messages_stored_total"),
        /// One-to-one messages not stored again: the duplicate window held their sender,
        /// recipient and id (a resend); their senders were acknowledged as for the first.
        duplicates_filtered: Counter("rookery_duplicates_filtered_total"),
        /// Keys in the duplicate window (--dup-window-entries bounds them).
        dup_window_keys: Gauge("rookery_dup_window_keys"),
        /// Bytes the duplicate window's keys are charged (--dup-window-bytes bounds them).
        dup_window_bytes: Gauge("rookery_dup_window_bytes"),
        /// Stanzas the store refused (quota, store unavailable): each got a resource-constraint
        /// error.
        store_refusals: Counter("rookery_store_refusals_total"),
        /// Sessions whose stored messages are delivered as they take them.
        backlog_sessions: Gauge("rookery_backlog_sessions"),
        /// Log reads in flight for backlogs.
        log_reads_in_flight: Gauge("rookery_log_reads_in_flight"),
        /// Conns not yet authenticated.
        unauth_conns: Gauge("rookery_unauth_conns"),
        /// Binds refused: the user had --max-resources sessions.
        resource_refusals: Counter("rookery_resource_refusals_total"),
        /// Conns closed: their address had --max-unauth-per-address conns not yet
        /// authenticated.
        unauth_refusals: Counter("rookery_unauth_refusals_total"),
        /// Sessions that went into backlog (slow reader or XEP-0198 window full).
        backlogs_started: Counter("rookery_backlogs_started_total"),
        /// Stored messages read back from the log for delivery.
        log_reads: Counter("rookery_log_reads_total"),
        /// Stored messages whose read back failed (I/O error or damage); they stay queued.
        log_read_errors: Counter("rookery_log_read_errors_total"),
        /// Stored messages delivered with a delay stamp (offline flush, backlog).
        offline_delivered: Counter("rookery_offline_delivered_total"),
        /// Successful XEP-0198 resumptions.
        resumed: Counter("rookery_resumed_total"),
        /// Refused XEP-0198 resumptions (answered with failed: unknown or expired id, an h
        /// beyond what was sent, or the wait for the old stream's commits ran out).
        resume_failures: Counter("rookery_resume_failures_total"),
        /// XEP-0198 resumptions whose answer waited for stanzas of the old stream to be
        /// committed.
        resumes_delayed: Counter("rookery_resumes_delayed_total"),
        /// Fan-outs started (presence broadcasts, group messages and presences): one mail per
        /// other shard of this node and one per other node.
        fanouts: Counter("rookery_fanouts_total"),
        /// Presence stanzas broadcast to contacts (one per contact).
        presence_broadcasts: Counter("rookery_presence_broadcasts_total"),
        /// Presence probes answered for contacts.
        probes_answered: Counter("rookery_probes_answered_total"),
        /// Room presence dropped for a full JID whose leave of that room was not answered yet
        /// (sent for a session that left; a newer session of the same full JID must not get it).
        stale_room_presence: Counter("rookery_stale_room_presence_total"),
        /// Roster pushes sent (one per session per change).
        roster_pushes: Counter("rookery_roster_pushes_total"),
        /// Roster items stored on this shard.
        roster_items: Gauge("rookery_roster_items"),
        /// Groups homed on this shard.
        groups: Gauge("rookery_groups"),
        /// Occupants of the groups homed on this shard.
        group_occupants: Gauge("rookery_group_occupants"),
        /// Streams closed for exceeding the presence rate (policy-violation).
        presence_floods: Counter("rookery_presence_floods_total"),
        /// Clients sent to their home node with see-other-host (a cluster: they logged in on
        /// another node).
        redirects: Counter("rookery_redirects_total"),
        /// XEP-0363 upload slots issued.
        upload_slots: Counter("rookery_upload_slots_total"),
        /// XEP-0363 slot requests refused (size, type, name, quota, open slots, malformed).
        upload_refusals: Counter("rookery_upload_refusals_total"),
        /// Upload usage events (files stored or removed) applied to this shard's quota ledger.
        upload_usage_events: Counter("rookery_upload_usage_events_total"),
        /// XEP-0280 carbon copies written (one per receiving session).
        carbons_out: Counter("rookery_carbons_out_total"),
        /// Stanzas held for XEP-0352 inactive sessions (a coalesced one counts each time).
        csi_held: Counter("rookery_csi_held_total"),
        /// Stanzas held for inactive sessions that a newer one from the same sender replaced.
        csi_coalesced: Counter("rookery_csi_coalesced_total"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_field_is_one_metric_and_values_follow_the_table() {
        // Every field is a u64 and has exactly one entry: the struct is LEN words.
        assert_eq!(std::mem::size_of::<RouterStats>(), RouterStats::LEN * 8);
        let stats = RouterStats {
            resume_failures: 5,
            resumes_delayed: 6,
            conns: 7,
            ..RouterStats::default()
        };
        let values = stats.values();
        let value_of = |name: &str| {
            let i = RouterStats::METRICS.iter().position(|m| m.name == name);
            values[i.unwrap_or_else(|| panic!("{name} is not exported"))]
        };
        assert_eq!(value_of("rookery_resume_failures_total"), 5);
        assert_eq!(value_of("rookery_resumes_delayed_total"), 6);
        assert_eq!(value_of("rookery_router_conns"), 7);
        assert_eq!(value_of("rookery_sessions"), 0);
    }

    #[test]
    fn names_are_unique_and_follow_the_conventions() {
        let mut seen = BTreeSet::new();
        for m in RouterStats::METRICS {
            assert!(seen.insert(m.name), "{} declared twice", m.name);
            assert!(m.name.starts_with("rookery_"), "{}", m.name);
            let total = m.name.ends_with("_total");
            assert_eq!(total, m.kind == MetricKind::Counter, "{}", m.name);
            assert!(!m.help.is_empty() && m.help == m.help.trim(), "{}", m.name);
            // The text format escapes these in HELP; keep them out instead.
            assert!(!m.help.contains(['\\', '\n']), "{}", m.name);
        }
    }

    #[test]
    fn help_joins_doc_lines_with_one_space() {
        let m = RouterStats::METRICS
            .iter()
            .find(|m| m.name == "rookery_resumes_delayed_total");
        assert_eq!(
            m.map(|m| m.help),
            Some(
                "XEP-0198 resumptions whose answer waited for stanzas of the old stream to be \
                 committed."
            )
        );
    }
}
