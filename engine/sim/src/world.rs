//! The event loop: shards, clients, the "network" between them, the phases of a run and
//! fault injection.
//!
//! What it does: holds every piece of simulated state, pops events in (virtual time, sequence)
//! order and applies them; shard turns (the server's real loop) and what they did are in
//! `turns`, lanes in `mail`, the network and clients' turns in `net`, shard start-up and
//! restarts in `commit`, graceful stops in `shutdown`, output queues (slow readers, the
//! output cap, drains) in `flow`. Phases: setup (only when the plan has contacts or rooms,
//! see `setup`), active (faults on: conn drops, whole-server restarts and graceful stops,
//! plus failed log writes), quiet (no faults; clients still send for its first quarter, then
//! only drain, and slow readers catch up), then the end checks (`checks`).
//!
//! What it does not do: decide XMPP behaviour (see `client`, `social`, `rooms`), judge
//! deliveries (see `ledger`, `presence`, `groups`), or route anything itself: every stanza
//! goes through a shard's loop.
//!
//! Invariants: every map is a `BTreeMap` and every random choice comes from `self.rng` (or a
//! driver's PRNG seeded from it), so a run replays exactly from its seed; events aimed at a
//! previous server incarnation carry its `epoch` and are discarded; a `ConnKey` is never
//! reused (one conn counter for every driver of the run).

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use rookery::shard::ShardMail;
use rookery_router::{ConnKey, RouterConfig};

use crate::client::Client;
use crate::commit::Shard;
use crate::driver::SimClock;
use crate::groups::GroupBook;
use crate::ledger::{Ledger, Violation};
use crate::plan::Plan;
use crate::presence::PresenceBook;
use crate::rng::Rng;
use crate::{InjectBug, SimConfig};

/// Most mails waiting in one lane; the real mailbox is bounded too.
pub const LANE_MAX: usize = 4_096;
/// The virtual clock at start (as the router tests use).
pub(crate) const START_MS: u64 = 1_000;

pub(crate) enum Ev {
    ClientWake(usize),
    /// Bytes from a client reach its conn's driver.
    Up {
        net: usize,
        bytes: Vec<u8>,
    },
    /// The network writes a piece of a conn's output queue (a partial write).
    Pull {
        net: usize,
        key: ConnKey,
        epoch: u64,
    },
    /// The shard's driver learns the network lost a conn.
    PeerClosed {
        key: ConnKey,
        epoch: u64,
    },
    /// The next mail of a lane reaches its destination's inbox.
    Mail {
        src: u16,
        dst: u16,
        epoch: u64,
    },
    /// One turn of a shard's real loop.
    Turn {
        shard: u16,
        epoch: u64,
    },
    /// One turn of a node's bridge (see `bus`).
    Bridge {
        node: u16,
        epoch: u64,
    },
    /// A frame on the bus reaches node index `to`'s bridge.
    Frame {
        to: u16,
        bytes: Vec<u8>,
        epoch: u64,
    },
}

/// One transport connection as the network sees it.
#[derive(Debug)]
pub(crate) struct Net {
    pub client: usize,
    pub shard: u16,
    pub key: ConnKey,
    pub alive: bool,
    pub handing_off: bool,
    pub unread: Vec<u8>,
    /// FIFO: nothing is delivered before what was sent earlier on the same direction.
    pub up_ms: u64,
    /// A slow reader's rate (bytes per virtual ms), see `flow`.
    pub read_bytes_per_ms: Option<u64>,
    /// The client got a `system-shutdown` stream error on this conn (see `shutdown`).
    pub saw_goodbye: bool,
    /// The router closed this conn during a graceful stop, not at its client's request.
    pub goodbye_owed: bool,
    /// The last bytes the client got, for a goodbye split across pieces.
    pub tail: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    Open,
    ClosedByRouter,
    HandedOff,
    /// `on_closed` delivered (or the server restarted).
    Gone,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyInfo {
    pub net: usize,
    pub shard: u16,
    pub state: KeyState,
    pub on_closed_queued: bool,
}

pub(crate) type Step = Result<(), Violation>;

pub(crate) struct World {
    pub cfg: SimConfig,
    pub rng: Rng,
    pub now_ms: u64,
    pub(crate) seq: u64,
    pub step: u64,
    /// Events other than shard turns (see `run_all`).
    pub(crate) counted_steps: u64,
    pub(crate) queue: BTreeMap<(u64, u64), Ev>,
    pub shards: Vec<Shard>,
    pub epoch: u64,
    /// Per node index: the `epoch` its current incarnation started in. An event for a node
    /// carries the epoch it was made in and is dropped if older (a single node: exactly the
    /// events of earlier incarnations; see `node_kill` for one node's restart).
    pub(crate) node_born: Vec<u64>,
    /// The `epoch` of the last whole-cluster start (frames older than it are dropped).
    pub(crate) cluster_born: u64,
    pub dir: crate::commit::TempDir,
    /// The routers' config, one per node (with its cluster view when there are several).
    pub router_configs: Vec<Arc<RouterConfig>>,
    /// The cluster of a run with several nodes (see `nodes`).
    pub(crate) cluster: Option<crate::nodes::Cluster>,
    /// The nodes' bridges and the bus between them (see `bus`).
    pub(crate) bus: crate::bus::Bus,
    pub clients: Vec<Client>,
    pub client_net: Vec<Option<usize>>,
    pub nets: Vec<Net>,
    pub keys: BTreeMap<u64, KeyInfo>,
    /// The drivers' conn counter, shared so a `ConnKey` names one conn in the whole run.
    pub(crate) next_conn: Rc<Cell<u32>>,
    /// The virtual clock every shard loop reads.
    pub(crate) clock: SimClock,
    pub lanes: BTreeMap<(u16, u16), VecDeque<ShardMail>>,
    /// Detached conns on their way to their adopter: the fd standing for each, its net.
    pub(crate) in_transit: BTreeMap<RawFd, usize>,
    pub ledger: Ledger,
    pub(crate) hash: u64,
    /// Rosters and rooms are being set up: no faults, no chats (see `setup`).
    pub setup: bool,
    pub(crate) settle_until_ms: Option<u64>,
    pub(crate) setup_ms: u64,
    /// The counted step at which the active phase began.
    pub(crate) active_from_step: u64,
    pub quiet: bool,
    pub(crate) quiet_from_ms: u64,
    /// In the quiet period, clients still chat until this time, then only drain.
    pub(crate) chat_until_ms: u64,
    /// reorder-lane: a Deliver held back until the next one of its pair passes it.
    pub(crate) held: Option<(u16, u16, ShardMail)>,
    pub bug_done: bool,
    pub drops: u64,
    pub restarts: u64,
    /// Restarts of one node alone (also counted in `restarts`).
    pub node_restarts: u64,
    pub commit_failures: u64,
    pub(crate) stable_clients: u64,
    /// Chats that sessions without XEP-0198 received on each conn (by key) since it last
    /// drained (see `flow`).
    pub(crate) undrained: BTreeMap<u64, Vec<crate::ledger::MsgKey>>,
    /// Log compactions run by the loops, summed over server incarnations.
    pub(crate) compactions: u64,
    /// Log writes that succeeded, and the most chats one of them stored (group commit).
    pub commits: u64,
    pub most_chats_per_commit: usize,
    /// Conns handed off to their home shard (through the real loop's detach and adopt).
    pub handoffs: u64,
    /// A graceful stop is under way (the stop flag is set), since this time.
    pub(crate) stopping_since_ms: Option<u64>,
    /// Graceful stops done, and conns closed by them with the goodbye delivered.
    pub shutdowns: u64,
    pub goodbyes: u64,
    /// Conns aborted by the output cap (live traffic; stored traffic is a violation), and
    /// conns that read slowly.
    pub aborts: u64,
    pub slow_conns: u64,
    /// The most bytes any conn's output queue held.
    pub peak_queued_bytes: usize,
    /// Slow readers caught up once the clients stopped chatting (see `flow`).
    pub(crate) readers_caught_up: bool,
    /// Backlogs the routers started, summed over server incarnations.
    pub(crate) backlogs_started: u64,
}

/// The clients of a run, with the contacts and rooms `plan` gave each.
fn planned_clients(cfg: &SimConfig, plan: &Plan) -> Vec<Client> {
    (0..cfg.clients)
        .map(|index| {
            let mut client = Client::new(index);
            client.resume_with_unacked = cfg.resume_with_unacked;
            client.social.contacts = plan.contacts[index].clone();
            client.rooms.planned = plan.rooms_of(index).collect();
            client.rooms.absent = (0..plan.rooms.len())
                .filter(|&r| plan.absent.contains(&(r, index)))
                .collect();
            client
        })
        .collect()
}

/// The run's contacts and rooms, drawn first from the seed's PRNG.
fn draw_plan(rng: &mut Rng, cfg: &SimConfig) -> Plan {
    Plan::draw(rng, cfg.clients, cfg.contacts, cfg.groups, cfg.group_size)
}

/// The cluster of a run with several nodes, and the routers' config of each node.
fn node_configs(
    cfg: &SimConfig,
) -> Result<(Option<crate::nodes::Cluster>, Vec<Arc<RouterConfig>>), Violation> {
    let base_config = crate::commit::router_config(cfg);
    if cfg.nodes < 2 {
        return Ok((None, vec![base_config]));
    }
    let cluster = crate::nodes::Cluster::new(cfg.nodes, cfg.shards)?;
    let configs = (0..cfg.nodes)
        .map(|node| cluster.router_config(&base_config, node))
        .collect();
    Ok((Some(cluster), configs))
}

impl World {
    pub(crate) fn new(cfg: SimConfig, seed: u64) -> Result<World, Violation> {
        let dir = crate::commit::TempDir::new(seed)?;
        let (cluster, router_configs) = node_configs(&cfg)?;
        let mut rng = Rng::new(seed);
        let plan = draw_plan(&mut rng, &cfg);
        let clients = planned_clients(&cfg, &plan);
        let setup = plan.contacts.iter().any(|c| !c.is_empty()) || !plan.rooms.is_empty();
        let mut world = World {
            rng,
            now_ms: START_MS,
            seq: 0,
            step: 0,
            counted_steps: 0,
            queue: BTreeMap::new(),
            shards: Vec::new(),
            epoch: 0,
            node_born: vec![0; usize::from(cfg.nodes)],
            cluster_born: 0,
            dir,
            router_configs,
            cluster,
            bus: crate::bus::Bus::default(),
            clients,
            client_net: vec![None; cfg.clients],
            nets: Vec::new(),
            keys: BTreeMap::new(),
            next_conn: Rc::new(Cell::new(0)),
            clock: SimClock::default(),
            lanes: BTreeMap::new(),
            in_transit: BTreeMap::new(),
            ledger: Ledger::with_books(
                PresenceBook::new(plan.contacts.clone()),
                GroupBook::new(plan.rooms.clone(), cfg.strict_group_refusals),
            ),
            hash: 0xcbf2_9ce4_8422_2325,
            setup,
            settle_until_ms: None,
            setup_ms: 0,
            active_from_step: 0,
            quiet: false,
            quiet_from_ms: 0,
            chat_until_ms: u64::MAX,
            held: None,
            bug_done: false,
            drops: 0,
            restarts: 0,
            node_restarts: 0,
            commit_failures: 0,
            stable_clients: 0,
            undrained: BTreeMap::new(),
            compactions: 0,
            commits: 0,
            most_chats_per_commit: 0,
            handoffs: 0,
            stopping_since_ms: None,
            shutdowns: 0,
            goodbyes: 0,
            aborts: 0,
            slow_conns: 0,
            peak_queued_bytes: 0,
            readers_caught_up: false,
            backlogs_started: 0,
            cfg,
        };
        world.clock.0.set(START_MS);
        world.start_shards()?;
        for client in 0..world.clients.len() {
            let at = world.rng.range(0, 50);
            world.schedule(at, Ev::ClientWake(client));
        }
        Ok(world)
    }

    pub fn schedule(&mut self, delay_ms: u64, ev: Ev) {
        self.schedule_at(self.now_ms + delay_ms, ev);
    }

    pub(crate) fn schedule_at(&mut self, at_ms: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), ev);
    }

    /// One line per event to stderr when tracing.
    pub fn note(&self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            eprintln!("[{} {}ms] {}", self.step, self.now_ms, what());
        }
    }

    pub fn mix(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn run_all(&mut self) -> Step {
        let mut quiet_end_ms = u64::MAX;
        while let Some(((at_ms, _), ev)) = self.queue.pop_first() {
            if at_ms > quiet_end_ms {
                break;
            }
            self.now_ms = at_ms;
            self.clock.0.set(at_ms);
            self.step += 1;
            // The active phase's budget and fault dice count the world's events, not the
            // shards' turns (a loop turns more often than the old per-call events came), so
            // `--steps` keeps its meaning in virtual time.
            let counted = !matches!(ev, Ev::Turn { .. } | Ev::Bridge { .. } | Ev::Frame { .. });
            self.counted_steps += u64::from(counted);
            self.mix(&at_ms.to_le_bytes());
            self.handle(ev)?;
            self.check_bounds()?;
            if self.now_ms >= self.chat_until_ms && !self.readers_caught_up {
                self.catch_up_readers();
            }
            if self.setup {
                self.advance_setup()?;
            } else if self.stopping_since_ms.is_some() {
                self.advance_shutdown()?;
            } else if !self.quiet && counted {
                self.inject_faults()?;
                if self.counted_steps >= self.active_from_step + self.cfg.steps {
                    self.quiet = true;
                    self.quiet_from_ms = self.now_ms;
                    quiet_end_ms = self.now_ms + self.cfg.quiet_ms;
                    self.chat_until_ms = self.now_ms + self.cfg.quiet_ms / 4;
                    self.lose_committed_at_last()?;
                }
            }
        }
        self.check_end()
    }

    /// `lose-committed` acts at a kill -9; a run whose active phase had none (about one in
    /// five) or lost nothing owed gets one more kill as the quiet period begins, so the
    /// canary has its chance in every run.
    fn lose_committed_at_last(&mut self) -> Step {
        if self.cfg.inject != Some(InjectBug::LoseCommitted) || self.bug_done {
            return Ok(());
        }
        self.mix(b"restart");
        self.note(|| "RESTART (lose-committed)".to_owned());
        self.restart()
    }

    pub(crate) fn handle(&mut self, ev: Ev) -> Step {
        match ev {
            Ev::ClientWake(client) => self.client_wake(client),
            Ev::Up { net, bytes } => self.up(net, bytes),
            Ev::Pull { net, key, epoch } if self.key_live(key, epoch) => self.pull(net, key),
            Ev::PeerClosed { key, epoch } if self.key_live(key, epoch) => self.peer_closed(key),
            Ev::Mail { src, dst, epoch } if self.shard_live(dst, epoch) => {
                self.deliver_mail(src, dst)
            }
            Ev::Turn { shard, epoch } if self.shard_live(shard, epoch) => self.turn(shard),
            Ev::Bridge { node, epoch } if self.node_live(node, epoch) => self.bridge_turn(node),
            // The bus outlives one node's restart: a frame sent before it still arrives (the
            // links tell incarnations apart by their epochs); a whole-cluster restart ends
            // every frame in flight, as it ends every process on both sides.
            Ev::Frame { to, bytes, epoch } if epoch >= self.cluster_born => {
                self.frame_arrives(to, bytes)
            }
            _ => Ok(()), // aimed at a server incarnation that no longer exists
        }
    }

    fn node_live(&self, node: u16, epoch: u64) -> bool {
        self.node_born
            .get(usize::from(node))
            .is_some_and(|&born| epoch >= born)
    }

    fn shard_live(&self, shard: u16, epoch: u64) -> bool {
        self.node_live(shard / self.cfg.shards, epoch)
    }

    fn key_live(&self, key: ConnKey, epoch: u64) -> bool {
        match self.keys.get(&key.0) {
            Some(info) => self.shard_live(info.shard, epoch),
            None => epoch == self.epoch,
        }
    }
}
