//! The server's shard loop as a library: the loop turn ([`shard`]), its group commit and log
//! reads, its metrics, the inboxes of upload usage from the HTTP server ([`usage`]), and the
//! seams ([`seams`]) that let the simulator (`rookery-sim`) run
//! the same loop with a simulated driver, mailbox and clock, and the cluster endpoint
//! ([`cluster`]) that joins a node's shards to its NATS bridge. The binary (`main.rs`) adds the
//! command line, the data dir, listeners, threads and signals.
//!
//! What it does not do: parse config, open listeners or stores, spawn threads (the binary
//! does; the one exception is `reaper`'s, which closes a compacted log's old file off the
//! shard), or anything unsafe (the binary's `sys` module holds the libc calls).
//!
//! Invariants: the loop is generic over driver, mailbox and clock, so the production build
//! has no dynamic dispatch on the hot path; one shard's state never leaves its thread.

#![forbid(unsafe_code)]

pub mod admin_accounts;
mod admin_http;
pub mod cluster;
mod commit;
pub mod metrics;
mod reads;
mod reaper;
pub mod seams;
pub mod shard;
pub mod transport;
pub mod usage;
pub mod websocket;
