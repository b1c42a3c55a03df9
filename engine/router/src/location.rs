//! Typed addresses: which node and shard a user, a conn or a mail belongs to.
//!
//! What it does: names shards (`ShardId`), nodes (`NodeId`), conn slab indices (`Slot`) and
//! their pair (`Location`), and decides a bare JID's home (`Placement::home`). On a single
//! node: FNV-1a 64 of the bare JID modulo the shard count, on node 0 (`NodeId::LOCAL`). In a
//! cluster (`Placement::cluster`): the same hash modulo the vshard count indexes a table of
//! (node, shard) owners that every node computes from the cluster file. Every caller asks
//! `Placement`, never hashes.
//!
//! What it does not do: carry anything to another node (the server's bridge does), build the
//! vshard table (rookery-cluster does, from the cluster file) or move users between shards.
//!
//! Invariants: `Placement::home` is stable across processes and runs (no random seed), so
//! every shard and every node agrees; a full JID lands where its bare JID does; in a cluster
//! the hash is exactly `rookery_cluster::placement`'s (the server's tests check both agree).

use std::sync::Arc;

use rookery_proto::Jid;

/// A shard of a node: one pinned thread with its own router and mailbox lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// A node (one server process) of a cluster. A single-node deployment is node 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u16);

impl NodeId {
    /// The node of a single-process deployment (every location today).
    pub const LOCAL: NodeId = NodeId(0);
}

/// A conn's index in its shard's slab. Stale uses are caught by the slab's generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

impl Slot {
    /// The slab index.
    pub fn index(self) -> usize {
        // Lossless: u32 fits usize on every platform the server builds for (64-bit).
        self.0 as usize
    }
}

/// Where something lives: a shard of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub node: NodeId,
    pub shard: ShardId,
}

impl Location {
    /// Shard `shard` of the local node.
    pub fn local(shard: u16) -> Location {
        Location {
            node: NodeId::LOCAL,
            shard: ShardId(shard),
        }
    }
}

/// Decides the home of every bare JID. Cheap to clone (the cluster table is shared); every
/// router holds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// This node (`NodeId::LOCAL` on a single node).
    me: NodeId,
    /// Shards of this node.
    shards: u16,
    /// In a cluster: the owner of every vshard (indexed by vshard); `None` on a single node.
    table: Option<Arc<[Location]>>,
}

impl Placement {
    /// `shards` shards on the local node (0 is treated as 1).
    pub fn local(shards: u16) -> Placement {
        Placement {
            me: NodeId::LOCAL,
            shards: shards.max(1),
            table: None,
        }
    }

    /// Node `me` of a cluster whose vshard `v` is owned by `table[v]` (the table every node
    /// computes from the cluster file, see `rookery_cluster::Placement`). This node's shard
    /// count is the number of distinct shards `table` gives `me` (at least 1).
    ///
    /// # Panics
    /// If `table` is empty (a wiring bug: the cluster file guarantees vshards >= 1).
    pub fn cluster(me: NodeId, table: Arc<[Location]>) -> Placement {
        assert!(!table.is_empty(), "a cluster placement needs vshards");
        let top = table
            .iter()
            .filter(|l| l.node == me)
            .map(|l| l.shard.0)
            .max();
        Placement {
            me,
            shards: top.map_or(1, |t| t.saturating_add(1)),
            table: Some(table),
        }
    }

    /// The home of `jid`'s bare JID. A full JID may be passed: only its bare part counts.
    /// Single node: FNV-1a 64 of `bare_str()` modulo the shard count. Cluster: the owner of
    /// vshard FNV-1a 64 modulo the vshard count.
    pub fn home(&self, jid: &Jid) -> Location {
        let hash = fnv1a64(jid.bare_str());
        match &self.table {
            None => Location {
                node: self.me,
                // The remainder is below `shards`, so it fits in u16.
                shard: ShardId((hash % u64::from(self.shards)) as u16),
            },
            // The remainder is below the table's length, so it indexes it.
            Some(table) => table[(hash % table.len() as u64) as usize],
        }
    }

    /// This node: `NodeId::LOCAL` on a single node, the cluster file's id in a cluster.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Whether other nodes exist (a cluster placement).
    pub fn is_cluster(&self) -> bool {
        self.table.is_some()
    }

    /// The number of shards of this node.
    pub fn shards(&self) -> u16 {
        self.shards
    }
}

/// FNV-1a 64 of `bare` (no seed: every process agrees).
fn fnv1a64(bare: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bare.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_fnv1a_of_the_bare_jid() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (reference value).
        let a = Jid::new(None, "a", None).expect("valid domain");
        let home = Placement::local(u16::MAX).home(&a);
        assert_eq!(home.shard.0, (0xaf63_dc4c_8601_ec8c_u64 % 65_535) as u16);
        assert_eq!(home.node, NodeId::LOCAL);
        let full = Jid::parse("bob@example.com/phone").expect("valid JID");
        let bare = Jid::parse("bob@example.com").expect("valid JID");
        let seven = Placement::local(7);
        assert_eq!(seven.home(&full), seven.home(&bare));
        assert_eq!(Placement::local(1).home(&bare), Location::local(0));
        assert_eq!(Placement::local(0).home(&bare), Location::local(0));
        assert_eq!(Placement::local(0).shards(), 1);
        assert!(!seven.is_cluster());
        assert_eq!(seven.me(), NodeId::LOCAL);
    }

    #[test]
    fn a_cluster_placement_reads_its_vshard_table() {
        // Vshard v of 8 is owned by (node 1 + v % 2, shard v / 2 % 2).
        let table: Arc<[Location]> = (0..8u16)
            .map(|v| Location {
                node: NodeId(1 + v % 2),
                shard: ShardId(v / 2 % 2),
            })
            .collect();
        let placement = Placement::cluster(NodeId(2), table.clone());
        assert!(placement.is_cluster());
        assert_eq!(placement.me(), NodeId(2));
        assert_eq!(placement.shards(), 2);
        for n in 0..200 {
            let jid = Jid::parse(&format!("user{n}@example.com/r")).expect("valid JID");
            let vshard = fnv1a64(jid.bare_str()) % 8;
            assert_eq!(placement.home(&jid), table[vshard as usize]);
        }
        // "a" hashes to 0xaf63dc4c8601ec8c, vshard 4 of 8: node 1, shard 0.
        let a = Jid::new(None, "a", None).expect("valid domain");
        assert_eq!(0xaf63_dc4c_8601_ec8c_u64 % 8, 4);
        assert_eq!(
            placement.home(&a),
            Location {
                node: NodeId(1),
                shard: ShardId(0)
            }
        );
    }
}
