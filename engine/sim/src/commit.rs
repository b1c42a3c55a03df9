//! The shards' side of the simulation: each shard is the server's real loop
//! (`rookery::shard::Shard`) on a simulated driver, mailbox and clock, over a store in a
//! per-run temp dir; whole-server restarts (kill -9: what the logs hold survives, a write in
//! flight is lost or torn) and the configs.
//!
//! What it does not do: decide when faults happen (`world`, `net`), run turns or read what
//! they did (`turns`), or edit logs (the `lose-committed` canary is in `tamper`).
//!
//! Invariants: one write in flight per shard at most (the loop's committer); a kill drops
//! every shard, its driver and its mailbox at once, so nothing from that incarnation acts
//! again (its events carry the old `epoch`).

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rookery::metrics::ShardStats;
use rookery::shard::{self, ShardParts, Shared};
use rookery_router::{AuthBackend, Router, RouterConfig};
use rookery_store::{Durability, Store, StoreConfig};
use rookery_testkit::{TEST_DOMAIN, TEST_SECRET, TEST_WALL_CLOCK_MS};

use crate::driver::{SimClock, SimDriver};
use crate::ledger::Violation;
use crate::mailbox::{Post, SimMailbox};
use crate::world::{Ev, KeyState, Step, World};
use crate::{InjectBug, SimConfig};

/// Resumption window: short, so both resumption and its expiry happen within a run.
pub const RESUME_TIMEOUT_MS: u64 = 2_000;
/// Chance (per mille) that a log write fails with ENOSPC in the active phase.
pub(crate) const WRITE_FAIL_PER_MILLE: u64 = 30;

/// The real loop over the simulated parts.
pub(crate) type Loop = shard::Shard<SimDriver, SimMailbox, SimClock>;

/// One shard of the current incarnation.
pub(crate) struct Shard {
    pub looped: Loop,
    /// Its mailbox's world side.
    pub post: Rc<RefCell<Post>>,
    /// The server's stop flag and conn count (one for all shards).
    pub shared: Arc<Shared>,
    /// When its next turn is scheduled.
    pub turn_at_ms: Option<u64>,
    /// The loop returned `Finished` (a graceful stop completed).
    pub finished: bool,
}

impl Shard {
    pub fn router(&self) -> &Router {
        self.looped.router()
    }
}

/// A per-run directory for the logs, removed on drop.
pub(crate) struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(seed: u64) -> Result<TempDir, Violation> {
        // Tests run seeds in parallel threads of one process: the counter keeps dirs apart.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rookery-sim-{}-{seed}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Violation::new("setup", format!("{}: {e}", path.display())))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The routers' config: the run's shard count, output cap (the same as the simulated
/// driver's, see `driver`) and XEP-0198 window; a short resumption window.
pub(crate) fn router_config(cfg: &SimConfig) -> Arc<RouterConfig> {
    let auth = AuthBackend::Token {
        secret: TEST_SECRET.to_vec(),
    };
    let mut config = RouterConfig::new(TEST_DOMAIN, auth);
    config.shards = cfg.shards;
    config.resume_timeout_ms = RESUME_TIMEOUT_MS;
    config.max_output_bytes = cfg.max_output_bytes;
    config.sm_window_bytes = cfg.sm_window_bytes.unwrap_or(cfg.max_output_bytes / 4);
    Arc::new(config)
}

/// The store of local shard `shard` of node index `node` (node 0's logs in the run's dir,
/// the others' in `node<N>` under it).
pub(crate) fn store_config(
    dir: &TempDir,
    node: u16,
    shard: u16,
    offline_max: usize,
) -> StoreConfig {
    let path = match node {
        0 => dir.path.clone(),
        n => dir.path.join(format!("node{n}")),
    };
    let mut config = StoreConfig::new(&path, shard).with_durability(Durability::Log);
    config.offline_max = offline_max;
    config.retry_interval_ms = 200;
    config
}

impl World {
    /// Real shard loops over freshly (re)opened stores, with seeds from the run's PRNG, and
    /// the bridges of a cluster.
    pub fn start_shards(&mut self) -> Step {
        self.shards.clear();
        for node in 0..self.cfg.nodes {
            self.start_node(node)?;
        }
        self.start_bridges();
        Ok(())
    }

    /// The shards of node index `node` (one process): new loops in their slots of `shards`.
    pub(crate) fn start_node(&mut self, node: u16) -> Step {
        // The node's old loops go first (dropping one closes its log and releases the lock);
        // the new ones take their slots, before the later nodes' shards.
        let first = usize::from(node * self.cfg.shards).min(self.shards.len());
        let mut old = self.shards.split_off(first);
        let later = old.split_off(usize::from(self.cfg.shards).min(old.len()));
        drop(old);
        // Process-wide, as in the server: a conn counted where it was accepted is uncounted
        // where it closes, after a hand-off on another shard.
        #[allow(
            clippy::disallowed_methods,
            reason = "Shared::started is read by the server binary only, never by the shard loop"
        )]
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            open_conns: AtomicU64::new(0),
            max_conns: 1 << 40, // no ceiling in the sim
            started: Instant::now(),
        });
        for shard in 0..self.cfg.shards {
            let global = node * self.cfg.shards + shard;
            let mut config = store_config(&self.dir, node, shard, self.cfg.offline_max);
            if let Some(min_bytes) = self.cfg.compact_min_bytes {
                config.compact_min_bytes = min_bytes;
            }
            let store = Store::open(config).map_err(|e| {
                Violation::new("store", format!("shard {shard} failed to open: {e}"))
            })?;
            let seed = self.rng.next_u64();
            let config = self.router_configs[usize::from(node)].clone();
            let mut router = Router::with_store_and_seed(config, shard, store, seed);
            router.set_wall_clock(self.now_ms, TEST_WALL_CLOCK_MS + self.now_ms);
            let clock = self.clock.clone();
            let seed = self.rng.next_u64();
            let cap = self.cfg.max_output_bytes;
            let mut driver = SimDriver::new(clock.clone(), seed, self.next_conn.clone(), cap);
            driver.drain_on_send = self.cfg.inject == Some(InjectBug::DeleteOnQueue);
            driver.write_ms = self.cfg.log_write_ms;
            let post = Rc::new(RefCell::new(Post::default()));
            let parts = ShardParts {
                index: usize::from(shard),
                mailbox: SimMailbox::new(post.clone()),
                router,
                stats: Arc::new(ShardStats::default()),
                shared: shared.clone(),
                clock,
                usage: None,
                accounts: None,
                tls: None,
                websocket: None,
                ws_keepalive: None,
                commit_delay_ms: 0,
            };
            let looped = Loop::new(driver, parts)
                .map_err(|e| Violation::new("setup", format!("shard {shard}: {e}")))?;
            let fresh = Shard {
                looped,
                post,
                shared: shared.clone(),
                turn_at_ms: None,
                finished: false,
            };
            self.shards.push(fresh);
            let at = self.now_ms + self.rng.range(0, 10);
            self.wake_shard_at(global, at);
        }
        self.shards.extend(later);
        Ok(())
    }

    /// kill -9 of the whole server and a start on the same logs.
    pub(crate) fn restart(&mut self) -> Step {
        self.restarts += 1;
        for shard in 0..self.shards.len() {
            let torn = self.rng.chance(500);
            let cut = self.rng.next_u64();
            if torn {
                tear(&self.shards[shard], cut);
            }
        }
        self.backlogs_started += self.backlogs_in_incarnation();
        self.compactions += self.compactions_in_incarnation();
        // Dropping the loops closes the logs and releases their locks.
        self.shards.clear();
        if self.cfg.inject == Some(InjectBug::LoseCommitted) {
            self.bug_done |= crate::tamper::lose_one(self)?;
        }
        self.reincarnate()
    }

    /// After the server is gone: everything in flight dies with it, clients lose their
    /// conns, and a new incarnation starts.
    pub(crate) fn reincarnate(&mut self) -> Step {
        self.shards.clear();
        self.epoch += 1;
        self.node_born.fill(self.epoch);
        self.cluster_born = self.epoch;
        // Ack records not yet committed die with the process.
        self.undrained.clear();
        self.ledger.on_restart(self.now_ms);
        self.lanes.clear();
        self.in_transit.clear();
        for net in 0..self.nets.len() {
            self.kill_net(net);
        }
        for info in self.keys.values_mut() {
            info.state = KeyState::Gone;
        }
        self.start_shards()
    }

    /// Schedules a turn of `shard` at `at_ms` unless one is due sooner.
    pub(crate) fn wake_shard_at(&mut self, shard: u16, at_ms: u64) {
        let at_ms = at_ms.max(self.now_ms);
        let epoch = self.epoch;
        let Some(s) = self.shards.get_mut(usize::from(shard)) else {
            return;
        };
        if s.finished || s.turn_at_ms.is_some_and(|t| t <= at_ms) {
            return;
        }
        s.turn_at_ms = Some(at_ms);
        self.schedule_at(at_ms, Ev::Turn { shard, epoch });
    }
}

impl World {
    /// Backlogs the current routers started (their stats die with them at a restart).
    /// Log compactions the current loops ran (each re-registers its log with the driver).
    pub(crate) fn compactions_in_incarnation(&self) -> u64 {
        self.compactions_of(0..self.shards.len() as u16)
    }

    pub(crate) fn backlogs_in_incarnation(&self) -> u64 {
        self.backlogs_of(0..self.shards.len() as u16)
    }

    /// The same, of the shards in `range` (global indexes) only.
    pub(crate) fn compactions_of(&self, range: std::ops::Range<u16>) -> u64 {
        self.shards[usize::from(range.start)..usize::from(range.end)]
            .iter()
            .map(|s| s.looped.driver().reregistered)
            .sum()
    }

    pub(crate) fn backlogs_of(&self, range: std::ops::Range<u16>) -> u64 {
        self.shards[usize::from(range.start)..usize::from(range.end)]
            .iter()
            .map(|s| s.router().stats().backlogs_started)
            .sum()
    }
}

/// Writes a prefix of the write in flight, as a write cut short by the kill would.
pub(crate) fn tear(shard: &Shard, cut: u64) {
    let Some((offset, bytes)) = shard.looped.driver().writes_in_flight().next() else {
        return;
    };
    if bytes.is_empty() {
        return;
    }
    let len = (cut % bytes.len() as u64) as usize;
    let Some(path) = shard.router().store().log_path() else {
        return;
    };
    if let Ok(file) = OpenOptions::new().write(true).open(path) {
        let _ = file.write_all_at(&bytes[..len], offset);
    }
}
