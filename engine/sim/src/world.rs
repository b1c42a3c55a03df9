//! The event loop: shards, clients, the "network" between them, fault injection and the
//! continuous checks.
//!
//! What it does: holds every piece of simulated state, pops events in (virtual time, sequence)
//! order and applies them, turning router effects into future events: bytes to clients after
//! a random delay (per-conn FIFO), mail into per-(src, dst) lanes (FIFO, one event per mail),
//! hand-offs (the conn's unread bytes travel as the leftover), closes (the client sees EOF
//! after the bytes before it, then the router gets `on_closed`). Faults in the active phase:
//! conn drops and whole-server restarts; commit faults live in `commit`.
//!
//! What it does not do: decide XMPP behaviour (see `client`) or judge deliveries (see
//! `ledger`); partial writes on conns (bytes arrive as sent, in order).
//!
//! Invariants: every map is a `BTreeMap` and every random choice comes from `self.rng`, so a
//! run replays exactly from its seed; events aimed at a previous server incarnation carry its
//! `epoch` and are discarded; a `ConnKey` is never reused (one counter for the whole run).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rookery_router::testing::TEST_WALL_CLOCK_MS;
use rookery_router::{ConnKey, Effects, Handoff, Mail, Router, RouterConfig};

use crate::client::Client;
use crate::commit::Shard;
use crate::ledger::{Ledger, Violation};
use crate::rng::Rng;
use crate::{InjectBug, SimConfig};

/// Most mails waiting in one lane; the real mailbox is bounded too.
pub const LANE_MAX: usize = 4_096;
/// The virtual clock at start (as the router tests use).
pub(crate) const START_MS: u64 = 1_000;

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    /// Events processed in all.
    pub steps: u64,
    /// FNV-1a over every event and every byte moved: equal for equal (config, seed).
    pub trace_hash: u64,
    pub failure: Option<Failure>,
    pub sent: usize,
    pub acked: usize,
    pub deliveries: u64,
    pub duplicates: u64,
    pub errored: usize,
    pub drops: u64,
    pub restarts: u64,
    pub commit_failures: u64,
    pub resumes: u64,
}

/// A checker's verdict, where it happened.
#[derive(Clone, Debug)]
pub struct Failure {
    pub violation: Violation,
    pub step: u64,
    pub now_ms: u64,
}

pub(crate) enum Ev {
    ClientWake(usize),
    Up {
        net: usize,
        bytes: Vec<u8>,
    },
    Down {
        net: usize,
        bytes: Vec<u8>,
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

/// Effects recorded in order, applied after the router call returns.
#[derive(Default)]
pub(crate) struct SimFx(pub Vec<Fx>);

pub(crate) enum Fx {
    Send(ConnKey, Vec<u8>),
    Close(ConnKey),
    Mail(u16, Mail),
    HandOff(ConnKey, u16, Handoff),
}

impl Effects for SimFx {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        self.0.push(Fx::Send(conn, bytes.to_vec()));
    }
    fn close(&mut self, conn: ConnKey) {
        self.0.push(Fx::Close(conn));
    }
    fn mail(&mut self, dest: u16, mail: Mail) {
        self.0.push(Fx::Mail(dest, mail));
    }
    fn hand_off(&mut self, conn: ConnKey, dest: u16, handoff: Handoff) {
        self.0.push(Fx::HandOff(conn, dest, handoff));
    }
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
    pub ledger: Ledger,
    pub(crate) hash: u64,
    pub quiet: bool,
    /// In the quiet period, clients still chat until this time, then only drain.
    pub(crate) chat_until_ms: u64,
    /// reorder-lane: a Deliver held back until the next one of its pair passes it.
    pub(crate) held: Option<(u16, u16, Mail)>,
    pub bug_done: bool,
    pub drops: u64,
    pub restarts: u64,
    pub commit_failures: u64,
}

/// Runs one seed to the end (or to the first violation).
pub fn run(cfg: &SimConfig, seed: u64) -> Outcome {
    let mut world = match World::new(cfg.clone(), seed) {
        Ok(world) => world,
        Err(violation) => return failed_at_start(seed, violation),
    };
    let failure = world.run_all().err().map(|violation| Failure {
        violation,
        step: world.step,
        now_ms: world.now_ms,
    });
    Outcome {
        seed,
        steps: world.step,
        trace_hash: world.hash,
        failure,
        sent: world.ledger.sent_count(),
        acked: world.ledger.acked_count(),
        deliveries: world.ledger.deliveries,
        duplicates: world.ledger.duplicates,
        errored: world.ledger.errored_count(),
        drops: world.drops,
        restarts: world.restarts,
        commit_failures: world.commit_failures,
        resumes: world.clients.iter().map(|c| c.resumes).sum(),
    }
}

fn failed_at_start(seed: u64, violation: Violation) -> Outcome {
    Outcome {
        seed,
        steps: 0,
        trace_hash: 0,
        failure: Some(Failure {
            violation,
            step: 0,
            now_ms: START_MS,
        }),
        sent: 0,
        acked: 0,
        deliveries: 0,
        duplicates: 0,
        errored: 0,
        drops: 0,
        restarts: 0,
        commit_failures: 0,
        resumes: 0,
    }
}

impl World {
    fn new(cfg: SimConfig, seed: u64) -> Result<World, Violation> {
        let dir = crate::commit::TempDir::new(seed)?;
        let router_config = crate::commit::router_config(cfg.shards);
        let clients = (0..cfg.clients)
            .map(|index| {
                let mut client = Client::new(index);
                client.resume_with_unacked = cfg.resume_with_unacked;
                client
            })
            .collect();
        let mut world = World {
            rng: Rng::new(seed),
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
            ledger: Ledger::default(),
            hash: 0xcbf2_9ce4_8422_2325,
            quiet: false,
            chat_until_ms: u64::MAX,
            held: None,
            bug_done: false,
            drops: 0,
            restarts: 0,
            commit_failures: 0,
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

    fn run_all(&mut self) -> Step {
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
            if !self.quiet {
                self.inject_faults()?;
                if self.step >= self.cfg.steps {
                    self.quiet = true;
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
            Ev::Down { net, bytes } => self.down(net, &bytes),
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

    /// Calls into one router and applies what it asked for.
    pub fn call(&mut self, shard: u16, f: impl FnOnce(&mut Router, u64, &mut SimFx)) -> Step {
        let mut fx = SimFx::default();
        let now_ms = self.now_ms;
        f(&mut self.shards[usize::from(shard)].router, now_ms, &mut fx);
        for effect in fx.0 {
            self.apply(shard, effect)?;
        }
        Ok(())
    }

    fn apply(&mut self, shard: u16, effect: Fx) -> Step {
        match effect {
            Fx::Send(key, bytes) => self.send_down(key, bytes),
            Fx::Close(key) => self.router_close(key),
            Fx::Mail(dest, mail) => self.push_mail(shard, dest, mail),
            Fx::HandOff(key, dest, handoff) => {
                self.mix(b"handoff");
                let info = self.key_info(key)?;
                if let Some(k) = self.keys.get_mut(&key.0) {
                    k.state = KeyState::HandedOff;
                }
                self.nets[info.net].handing_off = true;
                let (net, epoch) = (info.net, self.epoch);
                let delay = self.rng.range(0, 5);
                self.schedule(
                    delay,
                    Ev::Adopt {
                        net,
                        dest,
                        handoff,
                        epoch,
                    },
                );
                Ok(())
            }
        }
    }

    pub fn key_info(&self, key: ConnKey) -> Result<KeyInfo, Violation> {
        self.keys.get(&key.0).copied().ok_or_else(|| {
            Violation::new("closed-session", format!("effect for unknown conn {key:?}"))
        })
    }

    fn send_down(&mut self, key: ConnKey, bytes: Vec<u8>) -> Step {
        self.mix(&bytes);
        self.note(|| format!("{key:?} <- {}", String::from_utf8_lossy(&bytes)));
        let info = self.key_info(key)?;
        if info.state != KeyState::Open {
            let text = String::from_utf8_lossy(&bytes);
            let detail = format!("router wrote to {key:?} in state {:?}: {text}", info.state);
            return Err(Violation::new("closed-session", detail));
        }
        let net = &self.nets[info.net];
        if !net.alive || net.key != key {
            return Ok(()); // lost on a dead conn, as a real socket would lose it
        }
        let at = self.down_slot(info.net);
        self.schedule_at(
            at,
            Ev::Down {
                net: info.net,
                bytes,
            },
        );
        Ok(())
    }

    pub(crate) fn down_slot(&mut self, net: usize) -> u64 {
        let at = (self.now_ms + self.rng.range(0, 5)).max(self.nets[net].down_ms);
        self.nets[net].down_ms = at;
        at
    }

    fn router_close(&mut self, key: ConnKey) -> Step {
        self.mix(b"close");
        let info = self.key_info(key)?;
        if info.state != KeyState::Open {
            let detail = format!("router closed {key:?} twice (state {:?})", info.state);
            return Err(Violation::new("closed-session", detail));
        }
        let alive = self.nets[info.net].alive && self.nets[info.net].key == key;
        let mut after = self.now_ms;
        if alive {
            after = self.down_slot(info.net);
            self.schedule_at(after, Ev::DownClose { net: info.net });
        }
        let queued = info.on_closed_queued;
        if let Some(info) = self.keys.get_mut(&key.0) {
            info.state = KeyState::ClosedByRouter;
            info.on_closed_queued = true;
        }
        if !queued {
            let at = after + self.rng.range(0, 3);
            let epoch = self.epoch;
            self.schedule_at(at, Ev::RouterClosed { key, epoch });
        }
        Ok(())
    }

    fn router_closed(&mut self, key: ConnKey) -> Step {
        self.mix(b"on-closed");
        self.note(|| format!("on_closed {key:?}"));
        let info = self.key_info(key)?;
        if matches!(info.state, KeyState::Gone | KeyState::HandedOff) {
            return Ok(());
        }
        if let Some(info) = self.keys.get_mut(&key.0) {
            info.state = KeyState::Gone;
        }
        self.call(info.shard, |router, now_ms, fx| {
            router.on_closed(key, now_ms, fx)
        })
    }

    fn push_mail(&mut self, src: u16, dst: u16, mail: Mail) -> Step {
        self.mix(b"mail");
        let armed = self.quiet && !self.bug_done && self.now_ms < self.chat_until_ms;
        let deliver = matches!(mail, Mail::Deliver { .. });
        match self.cfg.inject {
            // drop-mail: the first Deliver of the quiet period vanishes.
            Some(InjectBug::DropMail) if armed && deliver => {
                self.bug_done = true;
                return Ok(());
            }
            Some(InjectBug::ReorderLane) if armed && deliver => {
                let Some((hs, hd, held)) = self.held.take() else {
                    self.held = Some((src, dst, mail));
                    return Ok(());
                };
                if (hs, hd) == (src, dst) && same_pair(&held, &mail) {
                    self.bug_done = true;
                    self.enqueue_mail(src, dst, mail)?;
                    return self.enqueue_mail(src, dst, held);
                }
                self.held = Some((hs, hd, held));
            }
            _ => {}
        }
        self.enqueue_mail(src, dst, mail)
    }

    fn enqueue_mail(&mut self, src: u16, dst: u16, mail: Mail) -> Step {
        let lane = self.lanes.entry((src, dst)).or_default();
        lane.push_back(mail);
        let len = lane.len();
        if len > LANE_MAX {
            let detail = format!("lane {src}->{dst} holds {len} mails (bound {LANE_MAX})");
            return Err(Violation::new("bounded", detail));
        }
        let epoch = self.epoch;
        let delay = self.rng.range(0, 10);
        self.schedule(delay, Ev::Mail { src, dst, epoch });
        Ok(())
    }

    fn deliver_mail(&mut self, src: u16, dst: u16) -> Step {
        let Some(mail) = self
            .lanes
            .get_mut(&(src, dst))
            .and_then(VecDeque::pop_front)
        else {
            return Ok(()); // dropped by the drop-mail bug: its event has nothing to carry
        };
        self.mix(b"mail-in");
        self.note(|| format!("mail {src}->{dst}: {mail:?}"));
        self.call(dst, |router, now_ms, fx| router.on_mail(mail, now_ms, fx))
    }

    fn adopt(&mut self, net: usize, dest: u16, handoff: Handoff) -> Step {
        self.mix(b"adopt");
        self.note(|| format!("net{net} adopted by shard {dest}"));
        let key = self.fresh_key(net, dest);
        let leftover = std::mem::take(&mut self.nets[net].unread);
        let alive = self.nets[net].alive;
        {
            let n = &mut self.nets[net];
            n.shard = dest;
            n.key = key;
            n.handing_off = false;
        }
        self.call(dest, |router, now_ms, fx| {
            router.on_adopted(key, handoff, &leftover, now_ms, fx)
        })?;
        if !alive {
            self.queue_on_closed(key);
        }
        Ok(())
    }

    /// Checker 4, after every event: store queues, router conns vs. the network's view.
    fn check_bounds(&self) -> Step {
        for (shard, s) in self.shards.iter().enumerate() {
            let store = s.router.store();
            if let Some(owner) = store
                .owners()
                .find(|owner| store.queue_len(owner) > self.cfg.offline_max)
            {
                let detail = format!("shard {shard}: queue of {owner} over offline_max");
                return Err(Violation::new("bounded", detail));
            }
            let open = self
                .keys
                .values()
                .filter(|k| usize::from(k.shard) == shard)
                .filter(|k| matches!(k.state, KeyState::Open | KeyState::ClosedByRouter))
                .count() as u64;
            let stats = s.router.stats();
            if stats.conns > open || stats.detached_sessions > self.clients.len() as u64 {
                let detail = format!("shard {shard}: {stats:?} with {open} open conns");
                return Err(Violation::new("bounded", detail));
            }
        }
        Ok(())
    }

    /// After the quiet period: everyone is online with nothing unacknowledged, and every
    /// acknowledged chat was delivered.
    fn check_end(&self) -> Step {
        for c in &self.clients {
            if !c.is_online() {
                let detail = format!(
                    "client {} still {:?} after the quiet period",
                    c.index, c.phase
                );
                return Err(Violation::new("liveness", detail));
            }
            if c.unacked_len() > 0 {
                let detail = format!(
                    "client {} has {} stanzas unacknowledged after the quiet period",
                    c.index,
                    c.unacked_len()
                );
                return Err(Violation::new("liveness", detail));
            }
        }
        self.ledger.check_acked_delivered()
    }
}

/// Two Deliver mails from the same sender to the same recipient.
fn same_pair(a: &Mail, b: &Mail) -> bool {
    match (a, b) {
        (Mail::Deliver { to, from, .. }, Mail::Deliver { to: t, from: f, .. }) => {
            to.bare_str() == t.bare_str() && from.bare_str() == f.bare_str()
        }
        _ => false,
    }
}
