//! rookery-sim: a deterministic simulator of Rookery shards and XMPP clients in one thread,
//! in the FoundationDB / TigerBeetle VOPR style.
//!
//! N shards (each a `rookery_router::Router` owning a `rookery_store::Store` with `Log`
//! durability in a per-run temp dir) and M simulated clients run in one thread, driven by a
//! seeded PRNG ([`rng`]) and a virtual clock. Everything concurrent in the real server is an
//! explicit event in a queue ordered by (virtual time, sequence) ([`world`]): bytes in both
//! directions on each conn (per-conn FIFO, random delays), cross-shard mail (random delay,
//! per-(src, dst) lane FIFO), hand-offs, group commits split in `begin_commit` /
//! `finish_commit` with random delays and injected ENOSPC failures, ticks, conn drops by the
//! "network", and whole-server restarts that keep only what the logs committed (in-flight
//! batches are lost or torn, like a kill -9).
//!
//! Checkers ([`ledger`], [`world`]): (1) every chat acknowledged to its sender reaches its
//! recipient by the end; (2) per-pair order, with duplicates allowed only across a
//! non-resumed reconnect (exact rules in [`ledger`]); (3) nothing is sent to a conn the router
//! closed, handed off or was told is closed, and no chat reaches a client that is not in an
//! available session; (4) bounded queues (store queue per owner, lanes, unacked stanzas).
//! After the active phase a quiet period without faults lets everyone log in and drain, then
//! the end checks run, including that every online client's stanzas were acknowledged. The
//! first quarter of the quiet period still carries chats (no faults), the rest only drains.
//!
//! What it does not do: real sockets, threads, TLS, or compaction (not exercised yet).
//!
//! Invariants: a run is a pure function of ([`SimConfig`], seed): no `HashMap` iteration in
//! the simulator, routers seeded from the run's PRNG, the clock virtual. The trace hash in
//! [`Outcome`] proves it (see the tests).

#![forbid(unsafe_code)]

pub mod client;
mod commit;
pub mod ledger;
mod net;
pub mod rng;
mod tamper;
pub mod world;

pub use ledger::Violation;
pub use world::{run, Outcome};

/// A deliberate misbehaviour of the simulator, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectBug {
    /// Drop one cross-shard `Deliver` mail (the first of the quiet period, so no fault
    /// excuses the sender's missing acknowledgement).
    DropMail,
    /// Hold one `Deliver` back until the next one of the same pair on its lane passes it.
    ReorderLane,
    /// On restart, also lose one committed stored message from a log.
    LoseCommitted,
}

impl InjectBug {
    pub const ALL: [InjectBug; 3] = [
        InjectBug::DropMail,
        InjectBug::ReorderLane,
        InjectBug::LoseCommitted,
    ];

    pub fn parse(name: &str) -> Option<InjectBug> {
        match name {
            "drop-mail" => Some(InjectBug::DropMail),
            "reorder-lane" => Some(InjectBug::ReorderLane),
            "lose-committed" => Some(InjectBug::LoseCommitted),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InjectBug::DropMail => "drop-mail",
            InjectBug::ReorderLane => "reorder-lane",
            InjectBug::LoseCommitted => "lose-committed",
        }
    }
}

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub shards: u16,
    pub clients: usize,
    /// Events processed in the active phase (faults on), before the quiet period.
    pub steps: u64,
    pub inject: Option<InjectBug>,
    /// Offline quota per user (small, so refusals happen).
    pub offline_max: usize,
    /// Virtual length of the quiet period.
    pub quiet_ms: u64,
    /// Let clients resume with stanzas unacknowledged and resend those above `<resumed h>`
    /// (XEP-0198 5; see `client::Client::resume_with_unacked`). On by default; off
    /// (`--no-resume-unacked`) clients abandon their unacked stanzas and bind afresh instead.
    pub resume_with_unacked: bool,
    /// Print every event to stderr (for replaying a failure by hand).
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            shards: 3,
            clients: 8,
            steps: 3_000,
            inject: None,
            offline_max: 30,
            quiet_ms: 8_000,
            trace: false,
            resume_with_unacked: true,
        }
    }
}
