//! The bridges of a multi-node run and the lossy bus between them.
//!
//! Each node has a bridge, the last participant of its mailbox grid, as in the server: its
//! shards' loops stage `ShardMail::Remote` for it (the real loop does, for a `Location` of
//! another node). A bridge turn does what the real bridge's does (`rookery_cluster::bridge`,
//! `rookery::cluster`): the mail waiting is encoded with the real codec (`Mail::encode` into
//! `rookery::cluster::batch`, one batch per destination node per turn, cut at
//! `MAX_BATCH_BYTES`), each batch is given to the node's real `rookery_cluster::link::Links`
//! (sequence numbers, cumulative acks, retransmission on its timer, budgets), and the frames
//! it returns, with those `Links::poll` says are due (retransmissions, pure acks), go onto
//! the bus. The bus drops a frame (`bus_drop_per_mille`), delivers it twice
//! (`bus_dup_per_mille`), delays each copy (`bus_delay_ms`) and holds some back long enough
//! that later frames pass them (`bus_reorder_per_mille`, [`BUS_LATE_MS`]). A frame that
//! arrives goes through the destination's `Links::receive`; the payloads it makes
//! deliverable (in order, once) are read with the real codec and each mail is put in its
//! shard's inbox, in order, and the shard's turn scheduled. The bridge's next turn is when
//! the link's next deadline falls (`Links::next_deadline_ms`).
//!
//! The canary `skip-link-dedupe` hands the shards a data frame the link called a duplicate
//! (as a bus without the link's dedupe would): the ledger must see the repeated chats.
//!
//! Restarts: a node's kill -9 (`node_kill`) or the whole cluster's gives the node(s) new
//! links in a new epoch (the world's, which only grows). After one node's, frames already
//! on the bus still arrive, and the links sort incarnations out by epoch (a late frame of an
//! old one is ignored, a new one resets what is expected); a whole-cluster restart ends
//! every frame in flight.
//!
//! What it does not do: NATS, threads, wall clocks (the link's `now_us` is the virtual
//! clock), or judge deliveries (the checkers do, on what reaches the clients).
//!
//! Invariants: frames on the bus are bounded by [`FRAMES_MAX`] and a bridge's waiting mail by
//! `LANE_MAX` (exceeding either is a `bounded` violation); one bridge turn at a time per node,
//! at the earliest time asked for; every random choice comes from the world's PRNG.

use rookery::cluster::batch::{self, BatchBuilder};
use rookery::cluster::MAX_BATCH_BYTES;
use rookery::shard::ShardMail;
use rookery_cluster::link::{self, LinkConfig, LinkStats, Links, SendRefused};
use rookery_cluster::NodeId;
use rookery_router::{Location, Mail};

use crate::ledger::Violation;
use crate::nodes::{id_of, index_of};
use crate::world::{Ev, Step, World, LANE_MAX};
use crate::InjectBug;

/// Most frames on the bus at once.
pub(crate) const FRAMES_MAX: usize = 16_384;
/// Extra delay of a frame held back (reordered), virtual ms.
pub(crate) const BUS_LATE_MS: (u64, u64) = (30, 400);

/// One node's bridge.
pub(crate) struct Bridge {
    links: Links,
    /// Mail its shards staged for other nodes and no turn took yet (the bridge's lanes).
    outbox: Vec<(Location, Mail)>,
    turn_at_ms: Option<u64>,
}

/// What the bus and the links did in a run (summed over incarnations).
#[derive(Clone, Copy, Debug, Default)]
pub struct BusStats {
    pub frames: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub late: u64,
    pub mails_out: u64,
    pub mails_in: u64,
    pub refused: u64,
    /// The links' own counters (`LinkStats`), summed.
    pub retransmits: u64,
    pub link_duplicates: u64,
    pub given_up: u64,
    /// Data frames the `skip-link-dedupe` canary handed to the shards.
    pub undeduped: u64,
}

/// The bridges of the current incarnation and the counters.
#[derive(Default)]
pub(crate) struct Bus {
    bridges: Vec<Bridge>,
    in_flight: usize,
    stats: BusStats,
}

impl Bus {
    /// The counters, with the current links' added.
    pub fn stats(&self) -> BusStats {
        let mut stats = self.stats;
        for bridge in &self.bridges {
            add_link_stats(&mut stats, bridge.links.stats());
        }
        stats
    }

    /// Nothing waits in a bridge and every payload sent was acknowledged (pure acks may
    /// still be on the bus).
    pub fn idle(&self) -> bool {
        self.bridges
            .iter()
            .all(|b| b.outbox.is_empty() && b.links.stats().pending_bytes == 0)
    }

    /// Ends the incarnation: its links' counters are kept (frames on the bus stay there).
    fn clear(&mut self) {
        for bridge in std::mem::take(&mut self.bridges) {
            add_link_stats(&mut self.stats, bridge.links.stats());
        }
    }
}

fn add_link_stats(stats: &mut BusStats, link: LinkStats) {
    stats.retransmits += link.retransmits;
    stats.link_duplicates += link.duplicates;
    stats.given_up += link.given_up;
}

impl World {
    /// Fresh bridges (new links, in a new epoch) for a new incarnation of the cluster.
    pub(crate) fn start_bridges(&mut self) {
        self.bus.clear();
        if self.cfg.nodes < 2 {
            return;
        }
        // Grows from one start to the next, as the server's start time does.
        let epoch = self.epoch + 1;
        for node in 0..self.cfg.nodes {
            self.bus.bridges.push(Bridge {
                links: Links::new(id_of(node), epoch, link_config()),
                outbox: Vec::new(),
                turn_at_ms: None,
            });
        }
    }

    /// A fresh bridge for node index `node` alone (its process restarted): new links in a
    /// new epoch; what the old one had pending or held is lost with it.
    pub(crate) fn restart_bridge(&mut self, node: u16) {
        let epoch = self.epoch + 1;
        let Some(bridge) = self.bus.bridges.get_mut(usize::from(node)) else {
            return;
        };
        let old = std::mem::replace(
            bridge,
            Bridge {
                links: Links::new(id_of(node), epoch, link_config()),
                outbox: Vec::new(),
                turn_at_ms: None,
            },
        );
        add_link_stats(&mut self.bus.stats, old.links.stats());
    }

    /// Mail a shard of node `node` flushed to its bridge.
    pub(crate) fn post_to_bridge(&mut self, node: u16, mail: ShardMail) -> Step {
        let ShardMail::Remote { dest, mail } = mail else {
            let detail = format!("node {node}: a shard sent its bridge mail that is not Remote");
            return Err(Violation::new("cluster", detail));
        };
        self.mix(b"to-bridge");
        let Some(bridge) = self.bus.bridges.get_mut(usize::from(node)) else {
            return Ok(());
        };
        bridge.outbox.push((dest, mail));
        let len = bridge.outbox.len();
        if len > LANE_MAX {
            let detail = format!("bridge of node {node} holds {len} mails (bound {LANE_MAX})");
            return Err(Violation::new("bounded", detail));
        }
        let at = self.now_ms + self.rng.range(0, 2);
        self.wake_bridge_at(node, at);
        Ok(())
    }

    fn wake_bridge_at(&mut self, node: u16, at_ms: u64) {
        let at_ms = at_ms.max(self.now_ms);
        let epoch = self.epoch;
        let Some(bridge) = self.bus.bridges.get_mut(usize::from(node)) else {
            return;
        };
        if bridge.turn_at_ms.is_some_and(|t| t <= at_ms) {
            return;
        }
        bridge.turn_at_ms = Some(at_ms);
        self.schedule_at(at_ms, Ev::Bridge { node, epoch });
    }

    /// One turn of `node`'s bridge: batch, send through the links, publish what is due.
    pub(crate) fn bridge_turn(&mut self, node: u16) -> Step {
        let now_ms = self.now_ms;
        self.mix(b"bridge");
        let Some(bridge) = self.bus.bridges.get_mut(usize::from(node)) else {
            return Ok(());
        };
        if bridge.turn_at_ms != Some(now_ms) {
            return Ok(()); // superseded by an earlier turn
        }
        bridge.turn_at_ms = None;
        let outbox = std::mem::take(&mut bridge.outbox);
        self.bus.stats.mails_out += outbox.len() as u64;
        let payloads = encode_batches(outbox);
        let bridge = &mut self.bus.bridges[usize::from(node)];
        let mut frames = Vec::new();
        for (to, payload) in payloads {
            match bridge
                .links
                .send(NodeId(to), payload, now_ms, now_ms * 1000)
            {
                Ok(frame) => frames.push((NodeId(to), frame)),
                // The peer's budget is full: its senders get errors after their timeout.
                Err(SendRefused::Budget { .. }) => self.bus.stats.refused += 1,
                Err(SendRefused::ToSelf) => {
                    let detail = format!("node {node}: mail for its own node reached the bridge");
                    return Err(Violation::new("cluster", detail));
                }
            }
        }
        bridge.links.poll(now_ms, &mut frames);
        let next = bridge.links.next_deadline_ms();
        for (to, frame) in frames {
            self.bus_send(index_of(to.0), frame)?;
        }
        if let Some(at) = next {
            self.wake_bridge_at(node, at);
        }
        Ok(())
    }

    /// A frame onto the bus toward node index `to`: dropped, duplicated, delayed, late.
    fn bus_send(&mut self, to: u16, frame: Vec<u8>) -> Step {
        self.bus.stats.frames += 1;
        self.mix(&frame);
        if self.rng.chance(self.cfg.bus_drop_per_mille) {
            self.bus.stats.dropped += 1;
            return Ok(());
        }
        let copies = if self.rng.chance(self.cfg.bus_dup_per_mille) {
            self.bus.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.cfg.bus_delay_ms;
            let mut delay = self.rng.range(lo, hi);
            if self.rng.chance(self.cfg.bus_reorder_per_mille) {
                self.bus.stats.late += 1;
                delay += self.rng.range(BUS_LATE_MS.0, BUS_LATE_MS.1);
            }
            self.bus.in_flight += 1;
            if self.bus.in_flight > FRAMES_MAX {
                let detail = format!("{} frames on the bus (bound {FRAMES_MAX})", FRAMES_MAX + 1);
                return Err(Violation::new("bounded", detail));
            }
            let (bytes, epoch) = (frame.clone(), self.epoch);
            self.schedule(delay, Ev::Frame { to, bytes, epoch });
        }
        Ok(())
    }

    /// A frame reaches node index `to`'s bridge: through its links, then to the shards.
    pub(crate) fn frame_arrives(&mut self, to: u16, frame: Vec<u8>) -> Step {
        self.bus.in_flight = self.bus.in_flight.saturating_sub(1);
        self.mix(b"frame-in");
        let now_ms = self.now_ms;
        let Some(bridge) = self.bus.bridges.get_mut(usize::from(to)) else {
            return Ok(());
        };
        let duplicates = bridge.links.stats().duplicates;
        let received = bridge
            .links
            .receive(&frame, now_ms, now_ms * 1000)
            .map_err(|e| {
                Violation::new("cluster", format!("node {to}: a frame of ours is bad: {e}"))
            })?;
        let mut payloads: Vec<Vec<u8>> =
            received.delivered.into_iter().map(|d| d.payload).collect();
        let duplicate = bridge.links.stats().duplicates > duplicates;
        let next = bridge.links.next_deadline_ms();
        if duplicate && self.cfg.inject == Some(InjectBug::SkipLinkDedupe) {
            if let Ok((header, payload)) = link::decode(&frame) {
                self.note(|| format!("skip-link-dedupe: seq {} to node {to}", header.seq));
                self.bus.stats.undeduped += 1;
                self.bug_done = true;
                payloads.push(payload.to_vec());
            }
        }
        for payload in payloads {
            self.hand_to_shards(to, &payload)?;
        }
        if let Some(at) = next {
            self.wake_bridge_at(to, at);
        }
        Ok(())
    }

    /// A payload the link delivered: each mail into its shard's inbox, in batch order.
    fn hand_to_shards(&mut self, node: u16, payload: &[u8]) -> Step {
        let mut mails = Vec::new();
        let report = batch::read(payload, |shard, mail| mails.push((shard, mail)));
        if report.error.is_some() || report.bad_mails > 0 {
            let detail = format!("node {node}: a batch of ours did not read: {report:?}");
            return Err(Violation::new("cluster", detail));
        }
        let shards = self.cfg.shards;
        // As the server's bridge does (`rookery::cluster`): a node fan-out is split here into
        // one fan-out per shard, each staged straight to its shard in bridge order.
        let mails: Vec<(u16, Mail)> = mails
            .into_iter()
            .flat_map(|(shard, mail)| match mail {
                Mail::NodeFanout(fanout) => fanout
                    .split()
                    .map(|(part_shard, part)| (part_shard.0, Mail::Fanout(Box::new(part))))
                    .collect::<Vec<_>>(),
                mail => vec![(shard, mail)],
            })
            .collect();
        for (shard, mail) in mails {
            if shard >= shards {
                let detail = format!("node {node}: a batch names shard {shard}");
                return Err(Violation::new("cluster", detail));
            }
            self.bus.stats.mails_in += 1;
            self.note(|| format!("bus -> node {node} shard {shard}: {mail:?}"));
            let global = node * shards + shard;
            let Some(s) = self.shards.get(usize::from(global)) else {
                continue;
            };
            // The bridge is the grid's last participant (index `shards`).
            s.post
                .borrow_mut()
                .inbox
                .push_back((shards, ShardMail::Router(mail)));
            self.wake_shard_at(global, self.now_ms);
        }
        Ok(())
    }
}

/// The real endpoint's batching: one batch per destination node id (in node order), a batch
/// cut in two once the next mail would take it past `MAX_BATCH_BYTES`.
fn encode_batches(outbox: Vec<(Location, Mail)>) -> Vec<(u16, Vec<u8>)> {
    let mut batches: std::collections::BTreeMap<u16, BatchBuilder> = Default::default();
    let mut payloads = Vec::new();
    let mut scratch = Vec::new();
    for (dest, mail) in outbox {
        scratch.clear();
        mail.encode(&mut scratch);
        let batch = batches.entry(dest.node.0).or_default();
        if !batch.is_empty()
            && batch.len() + BatchBuilder::record_len(scratch.len()) > MAX_BATCH_BYTES
        {
            payloads.push((dest.node.0, batch.take()));
        }
        batch.push(dest.shard.0, &scratch);
    }
    for (node, mut batch) in batches {
        if !batch.is_empty() {
            payloads.push((node, batch.take()));
        }
    }
    payloads
}

/// The links' tunables in the sim: the server's algorithm (measured retry timeouts, backoff),
/// with its times scaled to the sim's compressed timeouts (mail 4 s here, 30 s in the server):
/// a frame the lossy bus (10% drops) keeps dropping is tried about as many times before its
/// mail times out as in the server (8+ tries within 4 s here; 15+ within 30 s there).
fn link_config() -> LinkConfig {
    LinkConfig {
        min_retry_ms: 250,
        max_retry_ms: 500,
        ack_delay_ms: 10,
        ..LinkConfig::default()
    }
}
