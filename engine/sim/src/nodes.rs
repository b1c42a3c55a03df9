//! The cluster of a multi-node run (`SimConfig::nodes` > 1): which node each shard belongs
//! to, the cluster file every node's router reads, and where users live.
//!
//! Numbering: the world keeps one flat list of shards, node by node: the shard with global
//! index `g` is local shard `g % shards` of node index `g / shards`. Node index `i` is the
//! cluster file's node id `i + 1` (ids are non-zero), with client address
//! `127.0.0.<i + 1>:5222` (only ever read back by [`Cluster::node_of_address`]: nothing
//! listens there). Placement is the real one: `rookery::cluster::router_cluster` over the
//! parsed file, so the routers and [`Cluster::home`] agree by construction.
//!
//! What it does not do: move mail between nodes (see `bus`) or decide where clients connect
//! (see `net`).
//!
//! Invariants: a single-node run has no `Cluster` and its routers no cluster config, so its
//! traces are those of the simulator before nodes existed.

use std::sync::Arc;

use rookery_cluster::{ClusterFile, NodeId, Placement};
use rookery_router::RouterConfig;

use crate::ledger::Violation;

/// The routers' wait for an answer to mail to another shard (the default is 30 s, longer
/// than the quiet period): mail a node's kill -9 lost is answered with an error in time for
/// the end checks.
pub(crate) const MAIL_TIMEOUT_MS: u64 = 4_000;

/// The cluster of a run with several nodes.
pub(crate) struct Cluster {
    pub nodes: u16,
    pub shards: u16,
    file: ClusterFile,
    placement: Placement,
}

impl Cluster {
    pub fn new(nodes: u16, shards: u16) -> Result<Cluster, Violation> {
        let mut text = String::from("nats = \"nats://127.0.0.1:4222\"\nvshards = 1024\n");
        for node in 0..nodes {
            text.push_str(&format!(
                "[[node]]\nid = {}\nc2s = \"{}\"\nshards = {shards}\n",
                node + 1,
                address(node)
            ));
        }
        let file = ClusterFile::parse(&text)
            .map_err(|e| Violation::new("setup", format!("cluster file: {e:?}")))?;
        let placement = Placement::of(&file);
        Ok(Cluster {
            nodes,
            shards,
            file,
            placement,
        })
    }

    /// The router config of node index `node`: `base` with this node's cluster view.
    pub fn router_config(&self, base: &RouterConfig, node: u16) -> Arc<RouterConfig> {
        let mut config = base.clone();
        config.mail_timeout_ms = MAIL_TIMEOUT_MS;
        let me = rookery_router::NodeId(id_of(node).0);
        config.cluster = Some(rookery::cluster::router_cluster(&self.file, me));
        Arc::new(config)
    }

    /// The global shard index of a user's home (`bare`: `user@domain`).
    pub fn home(&self, bare: &str) -> u16 {
        let (node, shard) = self.placement.home(bare);
        (node.0 - 1) * self.shards + shard
    }

    /// The node index a `see-other-host` address names, if it is one of ours.
    pub fn node_of_address(&self, address: &str) -> Option<u16> {
        (0..self.nodes).find(|&node| address == self.address_of(node))
    }

    fn address_of(&self, node: u16) -> &str {
        self.file
            .nodes
            .iter()
            .find(|n| n.id == id_of(node))
            .map_or("", |n| n.c2s.as_str())
    }
}

/// The cluster file's id of node index `node`.
pub(crate) fn id_of(node: u16) -> NodeId {
    NodeId(node + 1)
}

/// The node index of a cluster file id.
pub(crate) fn index_of(id: u16) -> u16 {
    id.saturating_sub(1)
}

fn address(node: u16) -> String {
    format!("127.0.0.{}:5222", node + 1)
}
