//! A node of a cluster: its bridge to the other nodes, as one more participant of the
//! shards' mailbox grid, and the router's view of the cluster file.
//!
//! The grid of a cluster node has `shards + 1` participants: the shards, then the bridge
//! (index `shards`). A shard's router mails a `Location` of another node; the shard stages it
//! as `ShardMail::Remote` on its lane to the bridge (see `shard`). The bridge thread
//! (rookery-cluster) calls this module's [`ClusterEndpoint`] once per turn: `outbound` drains
//! the bridge's lanes and encodes one batch per destination node (see `batch`; a batch over
//! [`MAX_BATCH_BYTES`] is cut in two, so a NATS message stays below nats-server's 1 MiB
//! default `max_payload`), `inbound` decodes a batch another node sent and stages each mail
//! as `ShardMail::Router` to its shard, and `flush` pushes the staged mail and wakes the
//! shards; when nothing is left the bridge marks itself asleep in the grid (the shards' flush
//! wakes it through the waker it registered in `attach`).
//!
//! Budgets: outbound, the cluster link refuses a batch once a peer's unacknowledged bytes
//! reach their budget (`LinkConfig::max_pending_bytes`, counted as
//! `rookery_cluster_refused_total`); inbound, batches decoded and not yet pushed into the
//! shards' lanes may hold at most [`INBOUND_BUDGET_BYTES`] (a batch past it is dropped and
//! counted: its senders get `remote-server-timeout` after their mail timeout, as for any mail
//! the bus lost). A single mail over [`MAX_MAIL_BYTES`] is dropped and counted the same way.
//!
//! A fan-out toward this node arrives as one `Mail::NodeFanout` for several of its shards
//! (the sending router gathers them per node); `inbound` splits it into one `Fanout` per
//! shard (`rookery_cluster_fanout_parts_total`).
//!
//! What it does not do: retransmit or order (the link does), or filter duplicates (the home
//! shard's window does, see the router's `home::dedupe`).
//!
//! Invariants: the endpoint lives on the bridge thread only; it never blocks; bad input from
//! the bus is counted and logged, never a panic.

pub mod batch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rookery_cluster::bridge::{Endpoint, Waker};
use rookery_cluster::ClusterFile;
use rookery_mailbox::{Mailbox, ShardId};
use rookery_router::{ClusterConfig, Location, NodeId, Placement};
use tracing::warn;

use crate::shard::ShardMail;
use batch::BatchBuilder;

/// A batch is sent once it holds this many bytes (several per turn toward a busy node).
pub const MAX_BATCH_BYTES: usize = 256 << 10;
/// The largest mail that crosses nodes: a NATS message (a link header and one batch of this
/// mail) must stay under nats-server's default `max_payload` of 1 MiB.
pub const MAX_MAIL_BYTES: usize = (1 << 20) - (8 << 10);
/// Bytes of batches from other nodes decoded and not yet in the shards' lanes.
pub const INBOUND_BUDGET_BYTES: usize = 64 << 20;
/// Mails the endpoint takes from the shards per turn; the rest wait for the next turn.
const MAX_MAIL_PER_TURN: usize = 16_384;

/// The router's cluster config for node `me` of `file`: the vshard table and every node's
/// client address.
pub fn router_cluster(file: &ClusterFile, me: NodeId) -> ClusterConfig {
    let table: Arc<[Location]> = rookery_cluster::Placement::of(file)
        .owners()
        .iter()
        .map(|&(node, shard)| Location {
            node: NodeId(node.0),
            shard: rookery_router::ShardId(shard),
        })
        .collect();
    ClusterConfig {
        placement: Placement::cluster(me, table),
        nodes: file
            .nodes
            .iter()
            .map(|n| (NodeId(n.id.0), n.c2s.clone()))
            .collect(),
    }
}

/// The endpoint's own counters, for `/metrics` beside the bridge's.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub bad_batches: AtomicU64,
    pub bad_mails: AtomicU64,
    pub inbound_refused: AtomicU64,
    pub oversize_mails: AtomicU64,
    pub mails_out: AtomicU64,
    pub mails_in: AtomicU64,
    pub fanout_parts: AtomicU64,
}

impl EndpointStats {
    /// Walks every counter: name, Prometheus type, help, value.
    pub fn visit(&self, f: rookery_cluster::stats::Visit<'_>) {
        let fields: [(&'static str, &'static str, &AtomicU64); 7] = [
            (
                "rookery_cluster_mails_out_total",
                "Mails sent to other nodes (inside batches)",
                &self.mails_out,
            ),
            (
                "rookery_cluster_mails_in_total",
                "Mails from other nodes handed to this node's shards",
                &self.mails_in,
            ),
            (
                "rookery_cluster_fanout_parts_total",
                "Per-shard fan-outs this node's bridge split out of fan-outs from other nodes \
                 (each crossed the bus once for several shards)",
                &self.fanout_parts,
            ),
            (
                "rookery_cluster_bad_batches_total",
                "Batches from other nodes whose framing was broken (the rest of each was lost)",
                &self.bad_batches,
            ),
            (
                "rookery_cluster_bad_mails_total",
                "Mails from other nodes that did not decode or named no shard of this node",
                &self.bad_mails,
            ),
            (
                "rookery_cluster_inbound_refused_total",
                "Batches from other nodes dropped: the inbound byte budget was full",
                &self.inbound_refused,
            ),
            (
                "rookery_cluster_oversize_mails_total",
                "Mails too big for one NATS message, dropped (their senders get errors)",
                &self.oversize_mails,
            ),
        ];
        for (name, help, value) in fields {
            f(name, "counter", help, value.load(Relaxed));
        }
    }
}

/// The bridge's participant of the mailbox grid.
pub struct ClusterEndpoint {
    mailbox: Mailbox<ShardMail>,
    me: NodeId,
    shards: u16,
    /// One batch being built per destination node.
    batches: BTreeMap<u16, BatchBuilder>,
    /// Scratch for one mail's encoding.
    scratch: Vec<u8>,
    /// Mail taken from the shards this turn (reused across turns).
    taken: Vec<ShardMail>,
    /// Bytes of inbound batches staged since the staging was last empty.
    inbound_bytes: usize,
    wake: Option<Waker>,
    stats: Arc<EndpointStats>,
}

impl ClusterEndpoint {
    /// The endpoint of node `me`, whose shards are `0..shards` of the grid `mailbox` (the
    /// bridge's own, index `shards`) belongs to.
    pub fn new(mailbox: Mailbox<ShardMail>, me: NodeId, shards: u16) -> ClusterEndpoint {
        debug_assert_eq!(
            mailbox.shard(),
            ShardId(shards),
            "the bridge is the last participant"
        );
        ClusterEndpoint {
            mailbox,
            me,
            shards,
            batches: BTreeMap::new(),
            scratch: Vec::new(),
            taken: Vec::new(),
            inbound_bytes: 0,
            wake: None,
            stats: Arc::new(EndpointStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<EndpointStats> {
        Arc::clone(&self.stats)
    }

    /// Adds one mail for another node to its batch (sending the batch first if full).
    fn add(
        &mut self,
        dest: Location,
        mail: &rookery_router::Mail,
        out: &mut Vec<(rookery_cluster::NodeId, Vec<u8>)>,
    ) {
        self.scratch.clear();
        mail.encode(&mut self.scratch);
        if self.scratch.len() > MAX_MAIL_BYTES {
            self.stats.oversize_mails.fetch_add(1, Relaxed);
            return;
        }
        let batch = self.batches.entry(dest.node.0).or_default();
        if !batch.is_empty()
            && batch.len() + BatchBuilder::record_len(self.scratch.len()) > MAX_BATCH_BYTES
        {
            out.push((rookery_cluster::NodeId(dest.node.0), batch.take()));
        }
        batch.push(dest.shard.0, &self.scratch);
        self.stats.mails_out.fetch_add(1, Relaxed);
    }
}

impl Endpoint for ClusterEndpoint {
    fn outbound(&mut self, out: &mut Vec<(rookery_cluster::NodeId, Vec<u8>)>) {
        self.mailbox.awake();
        let mut taken = std::mem::take(&mut self.taken);
        self.mailbox
            .drain(MAX_MAIL_PER_TURN, |_, mail| taken.push(mail));
        for mail in taken.drain(..) {
            match mail {
                ShardMail::Remote { dest, mail } if dest.node != self.me => {
                    self.add(dest, &mail, out);
                }
                // A shard of this node (a shard stages those on its own lanes; harmless).
                ShardMail::Remote { dest, mail } if dest.shard.0 < self.shards => {
                    self.mailbox
                        .stage(ShardId(dest.shard.0), ShardMail::Router(mail));
                }
                _ => warn!(
                    "cluster bridge: mail for no other node reached the bridge (a bug); dropped"
                ),
            }
        }
        self.taken = taken;
        for (&node, batch) in &mut self.batches {
            if !batch.is_empty() {
                out.push((rookery_cluster::NodeId(node), batch.take()));
            }
        }
    }

    fn inbound(&mut self, from: rookery_cluster::NodeId, payload: Vec<u8>) {
        if self.inbound_bytes > 0 && self.inbound_bytes + payload.len() > INBOUND_BUDGET_BYTES {
            let refused = self.stats.inbound_refused.fetch_add(1, Relaxed) + 1;
            if refused.is_power_of_two() {
                warn!("cluster bridge: the shards do not keep up with {from}: {refused} batches dropped so far (inbound budget {INBOUND_BUDGET_BYTES} bytes)");
            }
            return;
        }
        self.inbound_bytes += payload.len();
        let (mailbox, shards, stats) = (&mut self.mailbox, self.shards, &self.stats);
        let mut stray = 0;
        let mut parts = 0u64;
        let report = batch::read(&payload, |shard, mail| match mail {
            // One fan-out for several shards of this node: one mail per shard from here.
            rookery_router::Mail::NodeFanout(fanout) => {
                let mut all_here = true;
                for (part_shard, part) in fanout.split() {
                    if part_shard.0 < shards {
                        let mail = rookery_router::Mail::Fanout(Box::new(part));
                        mailbox.stage(ShardId(part_shard.0), ShardMail::Router(mail));
                        parts += 1;
                    } else {
                        all_here = false;
                    }
                }
                if !all_here {
                    stray += 1;
                }
            }
            mail if shard < shards => mailbox.stage(ShardId(shard), ShardMail::Router(mail)),
            _ => stray += 1,
        });
        stats.fanout_parts.fetch_add(parts, Relaxed);
        stats
            .mails_in
            .fetch_add((report.mails - stray) as u64, Relaxed);
        let bad = report.bad_mails + stray;
        if bad > 0 {
            stats.bad_mails.fetch_add(bad as u64, Relaxed);
        }
        if let Some(error) = report.error {
            let count = stats.bad_batches.fetch_add(1, Relaxed) + 1;
            if count.is_power_of_two() {
                warn!("cluster bridge: {error} (from {from}; {count} so far): is every node running the same release?");
            }
        }
    }

    fn flush(&mut self, may_sleep: bool) -> usize {
        self.mailbox.flush();
        let staged = self.mailbox.staged();
        if staged == 0 {
            self.inbound_bytes = 0;
        }
        let depth = staged + self.mailbox.inbox_len();
        if may_sleep && depth == 0 && self.wake.is_some() && !self.mailbox.prepare_to_sleep() {
            // Mail arrived since the drain: run another turn at once.
            if let Some(wake) = &self.wake {
                wake();
            }
        }
        depth
    }

    fn attach(&mut self, wake: Waker) {
        let shards_wake = Arc::clone(&wake);
        self.mailbox.set_waker(Box::new(move || shards_wake()));
        self.wake = Some(wake);
    }
}

#[cfg(test)]
mod tests {
    use rookery_proto::Jid;

    use super::*;

    fn file() -> ClusterFile {
        ClusterFile::parse(
            "nats = \"nats://127.0.0.1:4222\"\nvshards = 512\n\
             [[node]]\nid = 1\nc2s = \"127.0.0.1:5222\"\nshards = 2\n\
             [[node]]\nid = 2\nc2s = \"127.0.0.1:5232\"\nshards = 1\n\
             [[node]]\nid = 7\nc2s = \"127.0.0.1:5242\"\nshards = 3\n",
        )
        .unwrap()
    }

    #[test]
    fn router_and_cluster_placements_agree_on_1000_jids() {
        let file = file();
        let table = rookery_cluster::Placement::of(&file);
        let config = router_cluster(&file, NodeId(7));
        assert_eq!(config.placement.me(), NodeId(7));
        assert_eq!(config.placement.shards(), 3);
        assert_eq!(config.nodes[1], (NodeId(2), "127.0.0.1:5232".to_owned()));
        for n in 0..1000 {
            let bare = format!("user{n}@example.test");
            let (node, shard) = table.home(&bare);
            let full = Jid::parse(&format!("{bare}/phone")).unwrap();
            let home = config.placement.home(&full);
            assert_eq!((home.node.0, home.shard.0), (node.0, shard), "{bare}");
        }
    }

    /// A grid of `shards` shards and the bridge; returns the shards' mailboxes and the endpoint.
    fn grid(shards: u16, me: u16) -> (Vec<Mailbox<ShardMail>>, ClusterEndpoint) {
        let mut boxes = rookery_mailbox::grid(usize::from(shards) + 1, 64);
        let bridge = boxes.pop().unwrap();
        (boxes, ClusterEndpoint::new(bridge, NodeId(me), shards))
    }

    fn deliver(to: &str, body: &str) -> rookery_router::Mail {
        rookery_router::Mail::Deliver {
            to: Jid::parse(to).unwrap(),
            from: Jid::parse("a@example.test/r").unwrap(),
            kind: rookery_proto::StanzaKind::Message,
            ty: rookery_router::StanzaType::Chat,
            stanza: format!("<message><body>{body}</body></message>")
                .into_bytes()
                .into(),
            ack: None,
        }
    }

    fn remote(node: u16, shard: u16, mail: rookery_router::Mail) -> ShardMail {
        ShardMail::Remote {
            dest: Location {
                node: NodeId(node),
                shard: rookery_router::ShardId(shard),
            },
            mail,
        }
    }

    fn drain_router_mail(mailbox: &mut Mailbox<ShardMail>) -> Vec<rookery_router::Mail> {
        let mut got = Vec::new();
        mailbox.drain(usize::MAX, |_, mail| match mail {
            ShardMail::Router(mail) => got.push(mail),
            _ => panic!("only router mail reaches a shard from the bridge"),
        });
        got
    }

    #[test]
    fn one_batch_per_node_per_turn_and_back_to_the_right_shard() {
        let (mut shards_a, mut a) = grid(2, 1);
        let (mut shards_b, mut b) = grid(2, 2);
        shards_a[0].stage(ShardId(2), remote(2, 1, deliver("x@example.test", "one")));
        shards_a[1].stage(ShardId(2), remote(2, 0, deliver("y@example.test", "two")));
        shards_a[1].stage(ShardId(2), remote(3, 0, deliver("z@example.test", "three")));
        shards_a[0].flush();
        shards_a[1].flush();
        let mut out = Vec::new();
        a.outbound(&mut out);
        assert_eq!(out.len(), 2, "one batch per destination node");
        let (node, batch) = out.remove(0);
        assert_eq!(node, rookery_cluster::NodeId(2));
        b.inbound(rookery_cluster::NodeId(1), batch);
        assert_eq!(b.flush(true), 0, "both mails pushed into the shards' lanes");
        assert_eq!(
            drain_router_mail(&mut shards_b[0]),
            [deliver("y@example.test", "two")]
        );
        assert_eq!(
            drain_router_mail(&mut shards_b[1]),
            [deliver("x@example.test", "one")]
        );
        assert_eq!(b.stats().mails_in.load(Relaxed), 2);
        assert_eq!(a.stats().mails_out.load(Relaxed), 3);
    }

    #[test]
    fn a_node_fanout_crosses_once_and_is_split_per_shard() {
        use rookery_router::{Fanout, NodeFanout, Recipient};
        let (mut shards_a, mut a) = grid(1, 1);
        let (mut shards_b, mut b) = grid(2, 2);
        let member = |s: &str| Recipient::Member(Jid::parse(s).unwrap());
        let node = NodeFanout {
            from: Jid::parse("room@groups.example.test/nick").unwrap(),
            kind: rookery_proto::StanzaKind::Message,
            ty: rookery_router::StanzaType::Groupchat,
            stanza: Arc::from(&b"<message type='groupchat'><body>hi</body></message>"[..]),
            parts: vec![
                (
                    rookery_router::ShardId(0),
                    Arc::from(vec![member("x@example.test")]),
                ),
                (
                    rookery_router::ShardId(1),
                    Arc::from(vec![member("y@example.test")]),
                ),
            ],
            gather: None,
        };
        let mail = rookery_router::Mail::NodeFanout(Box::new(node.clone()));
        shards_a[0].stage(ShardId(1), remote(2, 0, mail));
        shards_a[0].flush();
        let mut out = Vec::new();
        a.outbound(&mut out);
        assert_eq!(out.len(), 1, "one batch");
        assert_eq!(batch::read(&out[0].1, |_, _| {}).mails, 1, "one mail");
        b.inbound(rookery_cluster::NodeId(1), out.remove(0).1);
        assert_eq!(b.flush(true), 0);
        let parts: Vec<(rookery_router::ShardId, Fanout)> = node.split().collect();
        for (shard, (_, part)) in shards_b.iter_mut().zip(parts) {
            let got = drain_router_mail(shard);
            assert_eq!(got, [rookery_router::Mail::Fanout(Box::new(part))]);
        }
        let stats = b.stats();
        assert_eq!(stats.mails_in.load(Relaxed), 1);
        assert_eq!(stats.fanout_parts.load(Relaxed), 2);
    }

    #[test]
    fn a_gathering_bridge_is_not_woken_by_the_shards_a_sleeping_one_is() {
        let (mut shards, mut endpoint) = grid(1, 1);
        let wakes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&wakes);
        endpoint.attach(Arc::new(move || {
            counter.fetch_add(1, Relaxed);
        }));
        // Gathering: the bridge runs again within its window, so it stays marked awake.
        endpoint.flush(false);
        shards[0].stage(ShardId(1), remote(2, 0, deliver("x@example.test", "1")));
        shards[0].flush();
        assert_eq!(wakes.load(Relaxed), 0, "a gathering bridge is not woken");
        let mut out = Vec::new();
        endpoint.outbound(&mut out);
        assert_eq!(
            out.len(),
            1,
            "what was staged meanwhile is taken at its next turn"
        );
        // Nothing moved: it sleeps, and the next mail wakes it.
        endpoint.flush(true);
        shards[0].stage(ShardId(1), remote(2, 0, deliver("x@example.test", "2")));
        shards[0].flush();
        assert_eq!(wakes.load(Relaxed), 1, "a sleeping bridge is woken");
    }

    #[test]
    fn bad_batches_and_stray_shards_are_counted_never_delivered() {
        let (mut shards, mut endpoint) = grid(1, 2);
        endpoint.inbound(rookery_cluster::NodeId(1), vec![9, 0, 0, 0, 1]);
        let mut builder = BatchBuilder::default();
        let mut bytes = Vec::new();
        deliver("x@example.test", "to shard 5").encode(&mut bytes);
        builder.push(5, &bytes);
        builder.push(0, b"\x01\xff");
        endpoint.inbound(rookery_cluster::NodeId(1), builder.take());
        endpoint.flush(true);
        assert!(drain_router_mail(&mut shards[0]).is_empty());
        let stats = endpoint.stats();
        assert_eq!(stats.bad_batches.load(Relaxed), 1);
        assert_eq!(stats.bad_mails.load(Relaxed), 2);
        assert_eq!(stats.mails_in.load(Relaxed), 0);
    }

    #[test]
    fn big_turns_are_cut_into_batches_under_the_limit_and_oversize_mail_dropped() {
        let (mut shards, mut endpoint) = grid(1, 1);
        let body = "b".repeat(60_000);
        for _ in 0..10 {
            shards[0].stage(ShardId(1), remote(2, 0, deliver("x@example.test", &body)));
        }
        let huge = "h".repeat(MAX_MAIL_BYTES);
        shards[0].stage(ShardId(1), remote(2, 0, deliver("x@example.test", &huge)));
        shards[0].flush();
        let mut out = Vec::new();
        endpoint.outbound(&mut out);
        assert!(out.len() >= 3, "{} batches", out.len());
        assert!(out.iter().all(|(_, b)| b.len() <= MAX_BATCH_BYTES));
        let total: usize = out
            .iter()
            .map(|(_, b)| batch::read(b, |_, _| {}).mails)
            .sum();
        assert_eq!(total, 10);
        assert_eq!(endpoint.stats().oversize_mails.load(Relaxed), 1);
    }

    #[test]
    fn inbound_past_the_budget_is_refused_and_counted() {
        let (_shards, mut endpoint) = grid(1, 2);
        let mut builder = BatchBuilder::default();
        let mut bytes = Vec::new();
        deliver("x@example.test", &"p".repeat(60_000)).encode(&mut bytes);
        builder.push(0, &bytes);
        let batch = builder.take();
        // The lane holds 64 mails; the rest stays staged and counts against the budget.
        let fits = INBOUND_BUDGET_BYTES / batch.len();
        for _ in 0..fits + 5 {
            endpoint.inbound(rookery_cluster::NodeId(1), batch.clone());
        }
        assert_eq!(endpoint.stats().inbound_refused.load(Relaxed), 5);
        assert!(endpoint.flush(true) > 0);
    }
}
