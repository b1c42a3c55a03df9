//! The data directory: one durable log per shard, replayed at start.
//!
//! A user's messages live in the log of their home shard, `hash(bare JID) % shards`, so the
//! shard count is part of the data's layout: it is written to `<data-dir>/layout` on first
//! use and a start with another `--shards` is refused (with the fix named) instead of hiding
//! every user's queue behind the wrong shard.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use rookery_store::{Durability, Store, StoreConfig};
use tracing::{info, warn};

use crate::config::Config;

const LAYOUT_FILE: &str = "layout";

/// Opens (and replays) every shard's store, logging what each replay found.
pub fn open_stores(config: &Config) -> anyhow::Result<Vec<Store>> {
    let args = &config.args;
    let durability = args.durability.to_store();
    let shards = config.shards();
    if durability != Durability::Memory {
        check_layout(&args.data_dir, shards)?;
    }
    let mut stores = Vec::with_capacity(shards);
    for shard in 0..shards as u16 {
        let store_config = StoreConfig {
            durability,
            offline_max: args.offline_max,
            offline_max_bytes: args.offline_max_bytes,
            max_stored_bytes: args.store_max_bytes,
            compact_min_bytes: args.log_compact_bytes,
            ..StoreConfig::new(&args.data_dir, shard)
        };
        let store = Store::open(store_config).with_context(|| {
            format!(
                "opening the log of shard {shard} under {}",
                args.data_dir.display()
            )
        })?;
        report_replay(shard, &store);
        stores.push(store);
    }
    info!(
        "durability: {:?} ({}), offline quota {} messages per user",
        args.durability,
        if durability == Durability::Memory {
            "nothing on disk".to_string()
        } else {
            args.data_dir.display().to_string()
        },
        args.offline_max
    );
    Ok(stores)
}

fn report_replay(shard: u16, store: &Store) {
    let report = store.replay_report();
    match &report.stop {
        Some(stop) => {
            warn!(
            shard,
            "log replay stopped early at byte {}: {:?}; {} records kept, {} bytes after it dropped",
            stop.offset, stop.reason, report.records, report.bytes_dropped
        )
        }
        None if report.records > 0 => info!(
            shard,
            "log replayed: {} records, {} stored messages", report.records, report.messages
        ),
        None => {}
    }
}

/// The shard count a data dir was written with (its `layout` file).
pub fn read_layout(dir: &Path) -> anyhow::Result<u16> {
    let path = dir.join(LAYOUT_FILE);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (start the server once with this --data-dir to create it)",
            path.display()
        )
    })?;
    text.trim()
        .strip_prefix("shards=")
        .and_then(|n| n.parse::<u16>().ok())
        .filter(|n| *n > 0)
        .with_context(|| format!("{} says {text:?}, not shards=N", path.display()))
}

/// Writes the data dir's layout on first use; refuses another shard count afterwards.
pub fn check_layout(dir: &Path, shards: usize) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating --data-dir {} (permissions?)", dir.display()))?;
    let path = dir.join(LAYOUT_FILE);
    let wanted = format!("shards={shards}\n");
    match fs::read_to_string(&path) {
        Ok(found) if found == wanted => Ok(()),
        Ok(found) => bail!(
            "--data-dir {} was written by a server with {}; start with that --shards, or use another --data-dir (users' logs are placed by shard count)",
            dir.display(),
            found.trim().replace('=', " = ")
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fs::write(&path, wanted).with_context(|| format!("writing {}", path.display()))
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_written_once_then_enforced() {
        let dir = std::env::temp_dir().join(format!("rookery-layout-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        check_layout(&dir, 2).unwrap();
        check_layout(&dir, 2).unwrap();
        assert_eq!(read_layout(&dir).unwrap(), 2);
        let err = check_layout(&dir, 3).unwrap_err().to_string();
        assert!(err.contains("shards = 2"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
