//! rookery-cluster: what lets several `rookery` nodes act as one XMPP service over NATS.
//!
//! - [`file`]: the cluster file (TOML): the NATS URLs, the nodes (id, client address, shards),
//!   the vshard count. Every node reads the same file.
//! - [`placement`]: where a user or a room lives. vshard = FNV-1a 64 of the bare JID modulo
//!   the vshard count; a table maps each vshard to a (node, shard). A resize moves whole
//!   vshards (and their logs), not every user.
//! - [`link`]: sans-IO reliability between two nodes over a bus that may drop, duplicate,
//!   delay and reorder (NATS core is at-most-once and drops for slow consumers): sequence
//!   numbers, cumulative acks, retransmission on a timer within a byte and time budget,
//!   duplicates filtered and order restored per peer, peer restarts detected by epoch.
//! - [`bridge`]: the bridge thread of a node: a NATS client (async-nats on its own
//!   current-thread tokio runtime, so no async runtime runs inside the shards) that publishes
//!   one NATS message per destination node per wake-up (everything the shards staged for it)
//!   and hands what arrives to the shards, through the [`bridge::Endpoint`] the server
//!   implements over its mailboxes.
//! - [`stats`]: the bridge's counters, for `/metrics`.
//!
//! What it does not do: know XMPP or the router's mail (payloads are opaque bytes the
//! server's endpoint encodes), or decide what a lost message means for a sender (the router
//! answers a stanza whose acknowledgement never comes with an error after its mail timeout).

#![forbid(unsafe_code)]

pub mod bridge;
pub mod file;
pub mod link;
pub mod placement;
pub mod stats;

pub use file::{ClusterFile, FileError, NodeSpec};
pub use placement::Placement;

/// A node of the cluster: the `id` of its `[[node]]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u16);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}", self.0)
    }
}
