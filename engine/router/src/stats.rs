//! Counters of one router, read by the server's metrics endpoint through `Router::stats`.
//!
//! What it does not do: aggregate across shards or export anything (the server does).
//! Invariants: `conns` and `sessions` are gauges (current values), every other field is a
//! counter that only grows.

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
}
