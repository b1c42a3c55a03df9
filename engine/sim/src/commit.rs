//! The shards' side of the simulation: stores in a per-run temp dir, group commits split into
//! `begin_commit` and `finish_commit` with a random delay between them (sometimes failing
//! with an injected ENOSPC), ticks, and whole-server restarts. A batch written without error
//! tells the ledger which chats are now durable (owed to their recipients).
//!
//! What it does not do: decide when faults happen in general (`world`), or edit logs (the
//! `lose-committed` canary is in `tamper`).
//!
//! Invariants: at most one batch per shard is in flight (the store's own rule); a batch is
//! written with the blocking `SyncWriter` only when its finish event fires, so a restart in
//! between loses it (or leaves a torn prefix, which replay must cut), like a kill -9.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rookery_router::{AuthBackend, Router, RouterConfig};
use rookery_store::{CommitBatch, Durability, LogWriter, Store, StoreConfig, SyncWriter};
use rookery_testkit::{TEST_DOMAIN, TEST_SECRET};

use crate::ledger::Violation;
use crate::world::{Ev, KeyState, Step, World};
use crate::{InjectBug, SimConfig};

/// Resumption window: short, so both resumption and its expiry happen within a run.
pub const RESUME_TIMEOUT_MS: u64 = 2_000;
/// Chance (per mille) that a finished write fails with ENOSPC.
const WRITE_FAIL_PER_MILLE: u64 = 30;
/// ENOSPC on Linux.
const ENOSPC: i32 = 28;

/// One shard: its router and the batch being "written".
pub(crate) struct Shard {
    pub router: Router,
    pub batch: Option<CommitBatch>,
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
/// driver's, see `fx`) and XEP-0198 window; a short resumption window.
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

pub(crate) fn store_config(dir: &TempDir, shard: u16, offline_max: usize) -> StoreConfig {
    let mut config = StoreConfig::new(&dir.path, shard).with_durability(Durability::Log);
    config.offline_max = offline_max;
    config.retry_interval_ms = 200;
    config
}

pub(crate) fn open_store(
    dir: &TempDir,
    shard: u16,
    offline_max: usize,
) -> Result<Store, Violation> {
    Store::open(store_config(dir, shard, offline_max))
        .map_err(|e| Violation::new("store", format!("shard {shard} failed to open: {e}")))
}

impl World {
    pub(crate) fn commit_poll(&mut self, shard: u16) -> Step {
        let s = &mut self.shards[usize::from(shard)];
        if s.batch.is_none() {
            if let Some(batch) = s.router.begin_commit() {
                let seq = batch.seq();
                s.batch = Some(batch);
                self.mix(&seq.to_le_bytes());
                let epoch = self.epoch;
                let delay = self.rng.range(0, 8);
                self.schedule(delay, Ev::CommitDone { shard, epoch });
            }
        }
        let epoch = self.epoch;
        let delay = self.rng.range(2, 30);
        self.schedule(delay, Ev::CommitPoll { shard, epoch });
        Ok(())
    }

    pub(crate) fn commit_done(&mut self, shard: u16) -> Step {
        let fail = !self.quiet && !self.setup && self.rng.chance(WRITE_FAIL_PER_MILLE);
        let s = &mut self.shards[usize::from(shard)];
        let Some(batch) = s.batch.take() else {
            return Ok(());
        };
        let result = if fail {
            self.commit_failures += 1;
            Err(io::Error::from_raw_os_error(ENOSPC))
        } else {
            match s.router.store().log_file() {
                Some(file) => SyncWriter.write_batch(file, &batch),
                None => Err(io::Error::other("no log file")),
            }
        };
        self.mix(if result.is_ok() {
            b"commit-ok"
        } else {
            b"commit-err"
        });
        if result.is_ok() {
            // Durable now: a chat stored here is owed to its recipient (checker 1).
            for key in crate::tamper::stored_chats(batch.bytes()) {
                self.ledger.on_committed(key);
            }
        }
        self.note(|| {
            format!(
                "shard {shard} commit seq {} ok={}",
                batch.seq(),
                result.is_ok()
            )
        });
        // A failed write is reported by the store; the router keeps the acks back.
        self.call(shard, |router, now_ms, fx| {
            let _ = router.finish_commit(batch, result, now_ms, fx);
        })
    }

    pub(crate) fn tick(&mut self, shard: u16) -> Step {
        self.mix(b"tick");
        self.call(shard, |router, now_ms, fx| router.on_tick(now_ms, fx))?;
        let epoch = self.epoch;
        let delay = self.rng.range(20, 60);
        self.schedule(delay, Ev::Tick { shard, epoch });
        Ok(())
    }

    /// kill -9 of the whole server and a start on the same logs.
    pub(crate) fn restart(&mut self) -> Step {
        self.restarts += 1;
        for shard in 0..self.shards.len() {
            let torn = self.rng.chance(500);
            let cut = self.rng.next_u64();
            let s = &mut self.shards[shard];
            let Some(batch) = s.batch.take() else {
                continue;
            };
            if torn {
                tear(s, &batch, cut);
            }
        }
        self.backlogs_started += self.backlogs_in_incarnation();
        // Dropping the routers closes the logs and releases their locks.
        self.shards.clear();
        if self.cfg.inject == Some(InjectBug::LoseCommitted) {
            self.bug_done |= crate::tamper::lose_one(self)?;
        }
        self.epoch += 1;
        self.out_queued.clear();
        // Ack records not yet committed die with the process.
        self.undrained.clear();
        self.ledger.on_restart(self.now_ms);
        self.lanes.clear();
        for net in 0..self.nets.len() {
            self.kill_net(net);
        }
        for info in self.keys.values_mut() {
            info.state = KeyState::Gone;
        }
        self.start_shards()
    }
}

impl World {
    /// Backlogs the current routers started (their stats die with them at a restart).
    pub(crate) fn backlogs_in_incarnation(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.router.stats().backlogs_started)
            .sum()
    }
}

/// Writes a prefix of an in-flight batch, as a write cut short by the kill would.
fn tear(shard: &Shard, batch: &CommitBatch, cut: u64) {
    let bytes = batch.bytes();
    if bytes.is_empty() {
        return;
    }
    let len = (cut % bytes.len() as u64) as usize;
    let Some(path) = shard.router.store().log_path() else {
        return;
    };
    if let Ok(file) = OpenOptions::new().write(true).open(path) {
        let _ = file.write_all_at(&bytes[..len], batch.offset());
    }
}
