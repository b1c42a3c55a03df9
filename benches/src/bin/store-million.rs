//! Memory and replay time of a shard store holding a large offline backlog (issue
//! "store-and-forward under pressure"): puts N messages of S bytes for U owners into a `Log`
//! store in a temp dir, commits, and reports the process RSS per queued message beyond the
//! log (the stanzas stay in the log; memory holds a 32-byte index entry per message), then
//! reopens the store and reports the replay time and the RSS after replay.
//!
//! Usage: `cargo run --release -p rookery-benches --bin store-million -- [MESSAGES] [BYTES]
//! [OWNERS]` (defaults 1,000,000, 300, 10,000). Prints one line per phase and a final
//! `summary:` line (JSON) for results/. The replay runs in a fresh process (this binary with
//! `--replay DIR N`), so its RSS is not helped or hurt by what the fill left in the heap.

use std::path::PathBuf;
use std::time::Instant;

use rookery_store::{Durability, Store, StoreConfig, SyncWriter};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--replay") {
        let dir = PathBuf::from(&args[1]);
        let messages: usize = args[2].parse().expect("N");
        return replay(&dir, messages);
    }
    let mut args = args.into_iter();
    let messages: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("MESSAGES"));
    let bytes: usize = args.next().map_or(300, |a| a.parse().expect("BYTES"));
    let owners: usize = args.next().map_or(10_000, |a| a.parse().expect("OWNERS"));
    let dir = temp_dir();
    let config = store_config(&dir, messages);
    let owner_names: Vec<String> = (0..owners)
        .map(|n| format!("user{n}@example.com"))
        .collect();
    let stanza = vec![b'x'; bytes];
    let mut store = Store::open(config.clone()).expect("open the store");
    let rss_open = rss_kib();
    let fill = Instant::now();
    for n in 0..messages {
        let owner = &owner_names[n % owners];
        store
            .put(owner, "sender@example.com/r", n as u64, &stanza)
            .expect("put");
        if n % 10_000 == 9_999 {
            store.commit(&mut SyncWriter).expect("commit");
        }
    }
    store.commit(&mut SyncWriter).expect("commit");
    let fill_s = fill.elapsed().as_secs_f64();
    let rss_full = rss_kib();
    let stats = store.stats();
    let per_msg = (rss_full.saturating_sub(rss_open)) as f64 * 1024.0 / messages as f64;
    println!(
        "filled {messages} x {bytes} B for {owners} owners in {fill_s:.1} s: log {} MB, RSS \
         {rss_open} -> {rss_full} KiB = {per_msg:.1} B per queued message (index estimate {} B)",
        stats.log_bytes / 1_000_000,
        stats.index_heap_bytes / messages as u64,
    );
    drop(store);
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--replay",
            &dir.display().to_string(),
            &messages.to_string(),
        ])
        .status()
        .expect("run the replay");
    assert!(status.success(), "replay failed");
    println!(
        "summary-fill: {{\"messages\": {messages}, \"stanza_bytes\": {bytes}, \"owners\": \
         {owners}, \"log_bytes\": {}, \"rss_bytes_per_message_filled\": {per_msg:.1}, \
         \"fill_s\": {fill_s:.2}}}",
        stats.log_bytes
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens the store in `dir` in this (fresh) process and reports replay time and RSS.
fn replay(dir: &std::path::Path, messages: usize) {
    let rss_before = rss_kib();
    let start = Instant::now();
    let store = Store::open(store_config(dir, messages)).expect("reopen the store");
    let replay_s = start.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    let replayed = store.live_messages();
    let per_msg = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / messages as f64;
    let log_mb = store.stats().log_bytes as f64 / 1e6;
    println!(
        "replayed {replayed} messages ({log_mb:.0} MB of log) in {replay_s:.2} s \
         ({:.0} MB/s); RSS {rss_before} -> {rss_after} KiB = {per_msg:.1} B per queued message",
        log_mb / replay_s
    );
    assert_eq!(replayed, messages, "every message replayed");
    println!(
        "summary-replay: {{\"replayed\": {replayed}, \"replay_s\": {replay_s:.3}, \
         \"rss_bytes_per_message_replayed\": {per_msg:.1}}}"
    );
}

fn store_config(dir: &std::path::Path, messages: usize) -> StoreConfig {
    let mut config = StoreConfig::new(dir, 0).with_durability(Durability::Log);
    config.offline_max = messages;
    config.offline_max_bytes = u64::MAX;
    config.max_stored_bytes = u64::MAX;
    config
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rookery-store-million-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
