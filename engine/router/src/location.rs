//! Typed addresses: which node and shard a user, a conn or a mail belongs to.
//!
//! What it does: names shards (`ShardId`), nodes (`NodeId`), conn slab indices (`Slot`) and
//! their pair (`Location`), and decides a bare JID's home (`Placement::home`): today FNV-1a
//! 64 of the bare JID modulo the shard count, on the local node. The cluster issue puts a
//! vshard table behind the same call; every caller already asks `Placement`, never hashes.
//!
//! What it does not do: carry anything to another node (mail to a `Location` of another node
//! has no transport yet: the server only knows its own lanes) or move users between shards.
//!
//! Invariants: `Placement::home` is stable across processes and runs (no random seed), so
//! every shard and every process agrees; a full JID lands where its bare JID does.

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

/// Decides the home of every bare JID. Cheap to copy; every router holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    node: NodeId,
    shards: u16,
}

impl Placement {
    /// `shards` shards on the local node (0 is treated as 1).
    pub fn local(shards: u16) -> Placement {
        Placement {
            node: NodeId::LOCAL,
            shards: shards.max(1),
        }
    }

    /// The home of `jid`'s bare JID: FNV-1a 64 of `bare_str()` modulo the shard count. A
    /// full JID may be passed: only its bare part counts.
    pub fn home(&self, jid: &Jid) -> Location {
        Location {
            node: self.node,
            shard: ShardId(fnv1a_shard(jid.bare_str(), self.shards)),
        }
    }

    /// The number of shards of the local node.
    pub fn shards(&self) -> u16 {
        self.shards
    }
}

/// FNV-1a 64 of `bare` modulo `shards` (>= 1).
fn fnv1a_shard(bare: &str, shards: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bare.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    // The remainder is below `shards`, so it fits in u16.
    (hash % u64::from(shards.max(1))) as u16
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
    }
}
