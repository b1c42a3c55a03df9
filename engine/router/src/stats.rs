//! Counters of one router, read by the server's metrics endpoint through `Router::stats`.
//!
//! What it does not do: aggregate across shards or export anything (the server does).
//! Invariants: `conns`, `sessions`, `detached_sessions`, `stored_messages`, `roster_items`,
//! `groups` and `group_occupants` are gauges
//! (current values), every other field is a counter that only grows.

/// A snapshot of one router's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Conns currently held (including those closing).
    pub conns: u64,
    /// Bound sessions currently in the directory.
    pub sessions: u64,
    /// Stanzas (message, presence, iq) received from conns.
    pub stanzas_in: u64,
    /// Stanzas written to conns: deliveries, bind results, iq answers and stanza errors.
    pub stanzas_out: u64,
    pub mail_out: u64,
    pub mail_in: u64,
    /// Failed SASL attempts (each `<failure/>` sent, and SASL aborts).
    pub auth_failures: u64,
    /// Streams closed by us with a stream error (timeouts and shutdown included).
    pub stream_errors: u64,
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    /// XEP-0198 sessions waiting for resumption.
    pub detached_sessions: u64,
    /// Messages in this shard's store (offline or awaiting the recipient's ack).
    pub stored_messages: u64,
    /// Messages put in the store.
    pub messages_stored: u64,
    /// Messages the store refused (quota, unavailable): each got a resource-constraint error.
    pub store_refusals: u64,
    /// Sessions whose stored messages are being delivered as they take them (gauge).
    pub backlog_sessions: u64,
    /// Log reads in flight for backlogs (gauge).
    pub log_reads_in_flight: u64,
    /// Conns not yet authenticated (gauge).
    pub unauth_conns: u64,
    /// Binds refused because the user had `max_resources` sessions already.
    pub resource_refusals: u64,
    /// Conns closed because their source address had `max_unauth_per_address` conns not yet
    /// authenticated.
    pub unauth_refusals: u64,
    /// Sessions that went into backlog because live stored messages found no room.
    pub backlogs_started: u64,
    /// Log reads issued to deliver stored messages.
    pub log_reads: u64,
    /// Stored messages whose read back failed (I/O error or damage); they stay queued.
    pub log_read_errors: u64,
    /// Stored messages delivered with a delay stamp (offline flush, backlog).
    pub offline_delivered: u64,
    /// Successful XEP-0198 resumptions, and refused ones.
    pub resumed: u64,
    pub resume_failures: u64,
    /// Resumptions whose answer waited for stanzas of the old stream to be committed.
    pub resumes_delayed: u64,
    /// Fan-outs started here (presence broadcasts, group messages and presences).
    pub fanouts: u64,
    /// Presence stanzas broadcast to contacts (one per contact), and probes answered.
    pub presence_broadcasts: u64,
    pub probes_answered: u64,
    /// Roster pushes sent (one per session per change).
    pub roster_pushes: u64,
    /// Roster items stored on this shard (gauge).
    pub roster_items: u64,
    /// Groups homed on this shard and their occupants (gauges).
    pub groups: u64,
    pub group_occupants: u64,
    /// Streams closed for exceeding the presence rate (policy-violation).
    pub presence_floods: u64,
}
