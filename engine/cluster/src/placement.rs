//! Placement: the home (node, shard) of a bare JID (a user or a room) in a cluster.
//!
//! vshard = FNV-1a 64 of the bare JID's text modulo the vshard count, and a table maps every
//! vshard to a (node, shard). The table is computed from the cluster file, the same on every
//! node: the (node, shard) pairs in file order (node by node, shard by shard), vshard `v`
//! owned by pair `v % pairs`. A future resize moves whole vshards (and their records) from
//! one pair to another instead of re-homing every user; the hash never changes.
//!
//! What it does not do: parse JIDs (callers pass the bare JID's text, already normalised as
//! RFC 7622 says) or move data.
//!
//! Invariants: every vshard has exactly one owner; every listed shard owns at least one vshard
//! (the file checks `vshards >= total shards`); the hash is FNV-1a 64, the same function the
//! router's single-node placement uses, with no seed (every process must agree).

use crate::file::ClusterFile;
use crate::NodeId;

/// The vshard table of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Owner of each vshard: (node, shard).
    owners: Vec<(NodeId, u16)>,
}

impl Placement {
    /// The table of `file`.
    pub fn of(file: &ClusterFile) -> Placement {
        let pairs: Vec<(NodeId, u16)> = file
            .nodes
            .iter()
            .flat_map(|node| (0..node.shards).map(move |shard| (node.id, shard)))
            .collect();
        let owners = (0..file.vshards as usize)
            .map(|v| pairs[v % pairs.len()])
            .collect();
        Placement { owners }
    }

    /// The vshard of a bare JID (its text).
    pub fn vshard(&self, bare: &str) -> u32 {
        // The table has at most MAX_VSHARDS entries, so the remainder fits in u32.
        (fnv1a64(bare.as_bytes()) % self.owners.len() as u64) as u32
    }

    /// The home (node, shard) of a bare JID.
    pub fn home(&self, bare: &str) -> (NodeId, u16) {
        self.owners[self.vshard(bare) as usize]
    }

    /// Vshards each (node, shard) owns, for logs and metrics.
    pub fn owned_by(&self, node: NodeId, shard: u16) -> usize {
        self.owners.iter().filter(|&&o| o == (node, shard)).count()
    }

    /// The owner of every vshard, indexed by vshard (what a router's placement is built from).
    pub fn owners(&self) -> &[(NodeId, u16)] {
        &self.owners
    }

    pub fn vshards(&self) -> usize {
        self.owners.len()
    }
}

/// FNV-1a 64.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(shards: &[u16], vshards: u32) -> ClusterFile {
        let nodes: String = shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "[[node]]\nid = {}\nc2s = \"127.0.0.1:{}\"\nshards = {s}\n",
                    i + 1,
                    5222 + i
                )
            })
            .collect();
        ClusterFile::parse(&format!("nats = \"n\"\nvshards = {vshards}\n{nodes}")).unwrap()
    }

    #[test]
    fn fnv_matches_the_reference() {
        // FNV-1a 64 of "a" (the router's home_shard test uses the same reference value).
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_shard_owns_vshards_and_users_spread_over_all() {
        let placement = Placement::of(&file(&[2, 3, 1], 4096));
        assert_eq!(placement.vshards(), 4096);
        let mut seen = std::collections::BTreeMap::new();
        for n in 0..30_000 {
            *seen
                .entry(placement.home(&format!("user{n}@example.com")))
                .or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 6, "every (node, shard) homes users: {seen:?}");
        assert!(seen.values().all(|&c| c > 3_000), "roughly even: {seen:?}");
        assert!(placement.owned_by(NodeId(3), 0) >= 682);
    }

    #[test]
    fn every_node_computes_the_same_table() {
        let a = Placement::of(&file(&[2, 2], 1024));
        let b = Placement::of(&file(&[2, 2], 1024));
        assert_eq!(a, b);
        assert_eq!(a.home("alice@example.com"), b.home("alice@example.com"));
    }
}
