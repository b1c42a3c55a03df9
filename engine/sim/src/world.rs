//! The event loop: shards, clients, the "network" between them, the phases of a run and
//! fault injection.
//!
//! What it does: holds every piece of simulated state, pops events in (virtual time, sequence)
//! order and applies them; router calls and their effects are in `fx`, lanes in `mail`, the
//! network and clients' turns in `net`, commits and restarts in `commit`, output queues (slow
//! readers, the output cap, drains) in `flow`. Phases: setup (only when the plan has contacts
//! or rooms, see `setup`), active (faults on: conn drops and whole-server restarts, plus
//! commit faults), quiet (no faults; clients still send for its first quarter, then only
//! drain, and slow readers catch up), then the end checks (`checks`).
//!
//! What it does not do: decide XMPP behaviour (see `client`, `social`, `rooms`) or judge
//! deliveries (see `ledger`, `presence`, `groups`); partial writes on conns (bytes arrive as
//! sent, in order).
//!
//! Invariants: every map is a `BTreeMap` and every random choice comes from `self.rng`, so a
//! run replays exactly from its seed; events aimed at a previous server incarnation carry its
//! `epoch` and are discarded; a `ConnKey` is never reused (one counter for the whole run).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rookery_router::{ConnKey, Handoff, Mail, Router, RouterConfig};
use rookery_testkit::TEST_WALL_CLOCK_MS;

use crate::client::Client;
use crate::commit::Shard;
use crate::groups::GroupBook;
use crate::ledger::{Ledger, Violation};
use crate::plan::Plan;
use crate::presence::PresenceBook;
use crate::rng::Rng;
use crate::SimConfig;

/// Most mails waiting in one lane; the real mailbox is bounded too.
pub const LANE_MAX: usize = 4_096;
/// The virtual clock at start (as the router tests use).
pub(crate) const START_MS: u64 = 1_000;

pub(crate) enum Ev {
    ClientWake(usize),
    Up {
        net: usize,
        bytes: Vec<u8>,
    },
    Down {
        net: usize,
        key: ConnKey,
        bytes: Vec<u8>,
    },
    LogRead {
        shard: u16,
        tag: u64,
        span: rookery_store::LogSpan,
        epoch: u64,
    },
    DownClose {
        net: usize,
    },
    RouterClosed {
        key: ConnKey,
        epoch: u64,
    },
    Mail {
        src: u16,
        dst: u16,
        epoch: u64,
    },
    Adopt {
        net: usize,
        dest: u16,
        handoff: Handoff,
        epoch: u64,
    },
    CommitPoll {
        shard: u16,
        epoch: u64,
    },
    CommitDone {
        shard: u16,
        epoch: u64,
    },
    Tick {
        shard: u16,
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
    pub down_ms: u64,
    /// A slow reader's rate (bytes per virtual ms), see `flow`.
    pub read_bytes_per_ms: Option<u64>,
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
    pub(crate) queue: BTreeMap<(u64, u64), Ev>,
    pub shards: Vec<Shard>,
    pub epoch: u64,
    pub dir: crate::commit::TempDir,
    pub router_config: Arc<RouterConfig>,
    pub clients: Vec<Client>,
    pub client_net: Vec<Option<usize>>,
    pub nets: Vec<Net>,
    pub keys: BTreeMap<u64, KeyInfo>,
    pub(crate) next_key: u64,
    pub lanes: BTreeMap<(u16, u16), VecDeque<Mail>>,
    /// Bytes sent to each conn (by key) and not yet delivered: its output queue.
    pub out_queued: BTreeMap<u64, usize>,
    pub ledger: Ledger,
    pub(crate) hash: u64,
    /// Rosters and rooms are being set up: no faults, no chats (see `setup`).
    pub setup: bool,
    pub(crate) settle_until_ms: Option<u64>,
    pub(crate) setup_ms: u64,
    /// The step at which the active phase began.
    pub(crate) active_from_step: u64,
    pub quiet: bool,
    pub(crate) quiet_from_ms: u64,
    /// In the quiet period, clients still chat until this time, then only drain.
    pub(crate) chat_until_ms: u64,
    /// reorder-lane: a Deliver held back until the next one of its pair passes it.
    pub(crate) held: Option<(u16, u16, Mail)>,
    pub bug_done: bool,
    pub drops: u64,
    pub restarts: u64,
    pub commit_failures: u64,
    pub(crate) stable_clients: u64,
    /// Chats that sessions without XEP-0198 received on each conn (by key) since it last
    /// drained (see `flow`).
    pub(crate) undrained: BTreeMap<u64, Vec<crate::ledger::MsgKey>>,
    /// The `delete-on-queue` canary is telling a router a conn drained (never nested).
    pub(crate) fake_draining: bool,
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

impl World {
    pub(crate) fn new(cfg: SimConfig, seed: u64) -> Result<World, Violation> {
        let dir = crate::commit::TempDir::new(seed)?;
        let router_config = crate::commit::router_config(&cfg);
        let mut rng = Rng::new(seed);
        let plan = Plan::draw(
            &mut rng,
            cfg.clients,
            cfg.contacts,
            cfg.groups,
            cfg.group_size,
        );
        let clients = planned_clients(&cfg, &plan);
        let setup = plan.contacts.iter().any(|c| !c.is_empty()) || !plan.rooms.is_empty();
        let mut world = World {
            rng,
            now_ms: START_MS,
            seq: 0,
            step: 0,
            queue: BTreeMap::new(),
            shards: Vec::new(),
            epoch: 0,
            dir,
            router_config,
            clients,
            client_net: vec![None; cfg.clients],
            nets: Vec::new(),
            keys: BTreeMap::new(),
            next_key: 0,
            lanes: BTreeMap::new(),
            out_queued: BTreeMap::new(),
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
            commit_failures: 0,
            stable_clients: 0,
            undrained: BTreeMap::new(),
            fake_draining: false,
            aborts: 0,
            slow_conns: 0,
            peak_queued_bytes: 0,
            readers_caught_up: false,
            backlogs_started: 0,
            cfg,
        };
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

    /// New routers over freshly (re)opened stores, with seeds from the run's PRNG.
    pub fn start_shards(&mut self) -> Step {
        self.shards.clear();
        for shard in 0..self.cfg.shards {
            let store = crate::commit::open_store(&self.dir, shard, self.cfg.offline_max)?;
            let seed = self.rng.next_u64();
            let config = self.router_config.clone();
            let mut router = Router::with_store_and_seed(config, shard, store, seed);
            router.set_wall_clock(self.now_ms, TEST_WALL_CLOCK_MS + self.now_ms);
            self.shards.push(Shard {
                router,
                batch: None,
            });
            let epoch = self.epoch;
            let at = self.rng.range(1, 10);
            self.schedule(at, Ev::CommitPoll { shard, epoch });
            let at = self.rng.range(1, 50);
            self.schedule(at, Ev::Tick { shard, epoch });
        }
        Ok(())
    }

    pub(crate) fn run_all(&mut self) -> Step {
        let mut quiet_end_ms = u64::MAX;
        while let Some(((at_ms, _), ev)) = self.queue.pop_first() {
            if at_ms > quiet_end_ms {
                break;
            }
            self.now_ms = at_ms;
            self.step += 1;
            self.mix(&at_ms.to_le_bytes());
            self.handle(ev)?;
            self.check_bounds()?;
            if self.now_ms >= self.chat_until_ms && !self.readers_caught_up {
                self.catch_up_readers();
            }
            if self.setup {
                self.advance_setup()?;
            } else if !self.quiet {
                self.inject_faults()?;
                if self.step >= self.active_from_step + self.cfg.steps {
                    self.quiet = true;
                    self.quiet_from_ms = self.now_ms;
                    quiet_end_ms = self.now_ms + self.cfg.quiet_ms;
                    self.chat_until_ms = self.now_ms + self.cfg.quiet_ms / 4;
                }
            }
        }
        self.check_end()
    }

    pub(crate) fn handle(&mut self, ev: Ev) -> Step {
        match ev {
            Ev::ClientWake(client) => self.client_wake(client),
            Ev::Up { net, bytes } => self.up(net, bytes),
            Ev::Down { net, key, bytes } => {
                self.down(net, &bytes)?;
                self.after_down(net, key);
                self.delivered_down(key, bytes.len())
            }
            Ev::LogRead {
                shard,
                tag,
                span,
                epoch,
            } if epoch == self.epoch => self.log_read(shard, tag, span),
            Ev::DownClose { net } => {
                self.mix(b"down-close");
                self.kill_net(net);
                Ok(())
            }
            Ev::RouterClosed { key, epoch } if epoch == self.epoch => self.router_closed(key),
            Ev::Mail { src, dst, epoch } if epoch == self.epoch => self.deliver_mail(src, dst),
            Ev::Adopt {
                net,
                dest,
                handoff,
                epoch,
            } if epoch == self.epoch => self.adopt(net, dest, handoff),
            Ev::CommitPoll { shard, epoch } if epoch == self.epoch => self.commit_poll(shard),
            Ev::CommitDone { shard, epoch } if epoch == self.epoch => self.commit_done(shard),
            Ev::Tick { shard, epoch } if epoch == self.epoch => self.tick(shard),
            _ => Ok(()), // aimed at a server incarnation that no longer exists
        }
    }
}
