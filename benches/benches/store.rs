//! Criterion benches of `rookery-store`: log append per durability mode, replay, compaction.
//!
//! What it measures:
//! - `store/append/{memory,log,fsync}`: one iteration is one loop turn's group commit: 64
//!   puts of ~300-byte records (a ~230-byte stanza plus JIDs and framing), then `commit` with
//!   `SyncWriter` (`pwrite`, plus `fdatasync` for `fsync`). Throughput is in records; MB/s is
//!   records/s x `RECORD_BYTES` (printed at start). A fresh log is started (untimed) every
//!   `BATCHES_PER_LOG` batches so the file and the tables stay bounded.
//! - `store/replay`: `Store::open` of a log of `REPLAY_RECORDS` Put records (page cache warm),
//!   in records/s.
//! - `store/compact`: `compact()` of a store holding `COMPACT_MESSAGES` live messages: write,
//!   fsync, rename, directory fsync. Throughput in bytes of live data, so ms per MB is
//!   1000 / (MB/s): the stall a compaction puts on the shard's loop.
//!
//! What it does not measure: io_uring writes (the driver's), or a cold page cache. Logs live
//! under the system temp dir, so the numbers are those of that file system (fsync included).
//!
//! Invariants: every timed commit really writes (a failed commit panics), and the log a
//! replay iteration opens holds all its records (checked before timing).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rookery_store::{Durability, Store, StoreConfig, SyncWriter};

/// Records per group commit (one loop turn).
const BATCH: u64 = 64;
/// Batches appended to one log before it is replaced.
const BATCHES_PER_LOG: u64 = 1_000;
/// Records in the replayed log.
const REPLAY_RECORDS: u64 = 20_000;
/// Live messages compacted.
const COMPACT_MESSAGES: u64 = 20_000;
/// Owners the messages are spread over.
const OWNERS: u64 = 64;

/// A directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("rookery-bench-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stanza() -> Vec<u8> {
    let body = "hello, how are you doing today? are we still on for dinner at eight tonight? ";
    format!(
        "<message to='user42@example.test' type='chat' id='msg-00001234'><body>{}</body>\
         <request xmlns='urn:xmpp:receipts'/></message>",
        &body.repeat(2)[..120]
    )
    .into_bytes()
}

fn owners() -> Vec<String> {
    (0..OWNERS)
        .map(|n| format!("user{n}@example.test"))
        .collect()
}

const FROM: &str = "sender7@example.test/load";

/// A fresh store in `dir` (the previous log removed first).
fn fresh(dir: &Path, durability: Durability) -> Store {
    let _ = std::fs::remove_dir_all(dir);
    let mut cfg = StoreConfig::new(dir, 0).with_durability(durability);
    cfg.offline_max = usize::MAX;
    Store::open(cfg).expect("open bench store")
}

fn record_bytes() -> u64 {
    let scratch = Scratch::new("size");
    let mut store = fresh(scratch.path(), Durability::Log);
    store.put(&owners()[0], FROM, 0, &stanza()).unwrap();
    store.commit(&mut SyncWriter).unwrap();
    store.stats().live_bytes - rookery_store::format::HEADER_LEN as u64
}

fn bench_append(c: &mut Criterion) {
    let (owners, stanza) = (owners(), stanza());
    let record = record_bytes();
    eprintln!("store bench: {record} bytes per record, {BATCH} records per commit");
    let mut group = c.benchmark_group("store/append");
    group.throughput(Throughput::Elements(BATCH));
    for (name, durability) in [
        ("memory", Durability::Memory),
        ("log", Durability::Log),
        ("fsync", Durability::Fsync),
    ] {
        if durability == Durability::Fsync {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(8));
        }
        let scratch = Scratch::new(name);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut store = fresh(scratch.path(), durability);
                let mut batches = 0;
                let mut elapsed = Duration::ZERO;
                for i in 0..iters {
                    if batches == BATCHES_PER_LOG {
                        store = fresh(scratch.path(), durability);
                        batches = 0;
                    }
                    let start = Instant::now();
                    for n in 0..BATCH {
                        let owner = &owners[((i * BATCH + n) % OWNERS) as usize];
                        store.put(owner, FROM, i, &stanza).unwrap();
                    }
                    store.commit(&mut SyncWriter).expect("bench commit");
                    elapsed += start.elapsed();
                    batches += 1;
                }
                elapsed
            })
        });
    }
    group.finish();
}

/// Fills a Log store with `messages` puts, committed in batches; returns it.
fn filled(dir: &Path, messages: u64) -> Store {
    let (owners, stanza) = (owners(), stanza());
    let mut store = fresh(dir, Durability::Log);
    for n in 0..messages {
        store
            .put(&owners[(n % OWNERS) as usize], FROM, n, &stanza)
            .unwrap();
        if n % BATCH == BATCH - 1 {
            store.commit(&mut SyncWriter).unwrap();
        }
    }
    store.commit(&mut SyncWriter).unwrap();
    store
}

fn bench_replay(c: &mut Criterion) {
    let scratch = Scratch::new("replay");
    drop(filled(scratch.path(), REPLAY_RECORDS));
    let cfg = StoreConfig::new(scratch.path(), 0);
    let store = Store::open(cfg.clone()).unwrap();
    assert_eq!(store.replay_report().records, REPLAY_RECORDS);
    drop(store);
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(REPLAY_RECORDS));
    group.sample_size(20);
    group.bench_function("replay", |b| {
        b.iter(|| Store::open(cfg.clone()).expect("replay"));
    });
    group.finish();
}

fn bench_compact(c: &mut Criterion) {
    let scratch = Scratch::new("compact");
    let mut store = filled(scratch.path(), COMPACT_MESSAGES);
    let live = store.stats().live_bytes;
    eprintln!("store bench: compacting {live} bytes of live data");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Bytes(live));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("compact", |b| {
        b.iter(|| store.compact().expect("compact"));
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_replay, bench_compact);
criterion_main!(benches);
