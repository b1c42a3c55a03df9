//! kill -9 of one node of a cluster, and its start on the same logs, while the other nodes
//! run on: its shards' loops and its bridge die with everything in flight inside the process
//! (mail in its lanes, conns being handed off, log writes: a write in flight is lost or
//! torn), its clients lose their conns, and a new incarnation starts in a new epoch. The
//! other nodes' links still hold what they sent it and did not see acknowledged, and send it
//! again; frames already on the bus still arrive (see `bus`).
//!
//! What it does not do: decide when (the fault dice in `net`), or apply the `lose-committed`
//! canary (only whole-cluster restarts do).
//!
//! Invariants: nothing of the node's old incarnation acts again: its events carry an epoch
//! older than `World::node_born` of the node; no other node's shard, conn or lane is touched.

use crate::world::{KeyState, Step, World};

impl World {
    /// kill -9 of node index `node` and a start on its logs.
    pub(crate) fn restart_node(&mut self, node: u16) -> Step {
        self.restarts += 1;
        self.node_restarts += 1;
        let shards = self.cfg.shards;
        let range = node * shards..(node + 1) * shards;
        for global in range.clone() {
            let torn = self.rng.chance(500);
            let cut = self.rng.next_u64();
            if torn {
                crate::commit::tear(&self.shards[usize::from(global)], cut);
            }
        }
        self.backlogs_started += self.backlogs_of(range.clone());
        self.compactions += self.compactions_of(range.clone());
        self.epoch += 1;
        self.node_born[usize::from(node)] = self.epoch;
        let on_node = |shard: u16| shard / shards == node;
        let keys = &self.keys;
        self.undrained
            .retain(|key, _| keys.get(key).is_none_or(|k| !on_node(k.shard)));
        self.ledger.on_restart(self.now_ms);
        self.lanes.retain(|&(src, _), _| !on_node(src));
        let nets = &self.nets;
        self.in_transit.retain(|_, net| !on_node(nets[*net].shard));
        for net in 0..self.nets.len() {
            if on_node(self.nets[net].shard) {
                self.kill_net(net);
            }
        }
        for info in self.keys.values_mut() {
            if on_node(info.shard) {
                info.state = KeyState::Gone;
            }
        }
        self.start_node(node)?;
        self.restart_bridge(node);
        Ok(())
    }
}
