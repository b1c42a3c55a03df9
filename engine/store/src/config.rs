//! Store configuration: where the log lives, how durable a commit is, and the limits.
//!
//! What it does not do: parse flags (the server maps `--data-dir`, `--durability`,
//! `--offline-max` onto this).

use std::path::PathBuf;

/// What a committed record survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No file at all: commits complete at once and nothing survives a restart.
    Memory,
    /// Records are written (`pwrite`) before they count as committed: they survive the
    /// process being killed (the page cache keeps them), not a power loss.
    Log,
    /// Records are written and `fdatasync`ed: they survive a power loss.
    Fsync,
}

/// Configuration of one shard's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the logs; created if missing.
    pub data_dir: PathBuf,
    /// Shard number: the log is `<data_dir>/shard-<shard>.log`.
    pub shard: u16,
    /// See [`Durability`].
    pub durability: Durability,
    /// Most messages in one owner's offline queue; a `put` beyond it is refused.
    pub offline_max: usize,
    /// Most record bytes in one owner's offline queue; a `put` beyond it is refused.
    pub offline_max_bytes: u64,
    /// Most record bytes of queued messages in the whole store (this shard); a `put` beyond
    /// it is refused. Keyed tables (rosters, rooms) do not count: they have their own limits.
    pub max_stored_bytes: u64,
    /// Compaction is due when dead bytes exceed this share of the log...
    pub compact_dead_ratio: f64,
    /// ...and the log is at least this long.
    pub compact_min_bytes: u64,
    /// After a failed write, the wait before the next attempt.
    pub retry_interval_ms: u64,
}

impl StoreConfig {
    /// Default `offline_max`.
    pub const DEFAULT_OFFLINE_MAX: usize = 10_000;
    /// Default `offline_max_bytes` (64 MiB: 10,000 messages of 6.5 KB, or 1,000 of 64 KiB).
    pub const DEFAULT_OFFLINE_MAX_BYTES: u64 = 64 << 20;
    /// Default `max_stored_bytes` (16 GiB per shard).
    pub const DEFAULT_MAX_STORED_BYTES: u64 = 16 << 30;
    /// Default `compact_dead_ratio`.
    pub const DEFAULT_COMPACT_DEAD_RATIO: f64 = 0.5;
    /// Default `compact_min_bytes` (4 MiB).
    pub const DEFAULT_COMPACT_MIN_BYTES: u64 = 4 << 20;
    /// Default `retry_interval_ms`.
    pub const DEFAULT_RETRY_INTERVAL_MS: u64 = 1_000;

    /// Defaults for shard `shard` under `data_dir`, with `Log` durability.
    pub fn new(data_dir: impl Into<PathBuf>, shard: u16) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            shard,
            durability: Durability::Log,
            offline_max: Self::DEFAULT_OFFLINE_MAX,
            offline_max_bytes: Self::DEFAULT_OFFLINE_MAX_BYTES,
            max_stored_bytes: Self::DEFAULT_MAX_STORED_BYTES,
            compact_dead_ratio: Self::DEFAULT_COMPACT_DEAD_RATIO,
            compact_min_bytes: Self::DEFAULT_COMPACT_MIN_BYTES,
            retry_interval_ms: Self::DEFAULT_RETRY_INTERVAL_MS,
        }
    }

    /// The same configuration with another durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Path of this shard's log.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(format!("shard-{}.log", self.shard))
    }

    /// Path a damaged tail cut at `offset` is moved to (see `replay`), next to the log.
    pub fn corrupt_path(&self, offset: u64) -> PathBuf {
        self.data_dir
            .join(format!("shard-{}.log.corrupt-{offset}", self.shard))
    }

    /// Path of the temporary file compaction writes before renaming it over the log.
    pub fn compact_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("shard-{}.log.compact", self.shard))
    }
}
