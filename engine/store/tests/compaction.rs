//! Compaction keeps exactly the live messages, ids continue after it and after a reopen, the
//! new log stays locked, and a leftover `.compact` from a crash is ignored and removed.

mod common;

use std::fs;

use common::{commit, config, open, open_clean, snapshot, stanza, TempDir};
use rookery_store::{format, MsgId, OpenError, Store, StoreConfig, StoreError};

fn eager(dir: &TempDir) -> StoreConfig {
    let mut cfg = config(dir.path());
    cfg.compact_min_bytes = 0;
    cfg
}

#[test]
fn compaction_keeps_exactly_the_live_messages_and_ids_continue() {
    let dir = TempDir::new("compact");
    let mut store = Store::open(eager(&dir)).unwrap();
    let ids: Vec<MsgId> = (0..200u64)
        .map(|n| {
            store
                .put(&format!("u{}@x", n % 5), "a@x/r", n, &stanza(n, 120))
                .unwrap()
        })
        .collect();
    // Ack three quarters, the highest id among them.
    for (i, &id) in ids.iter().enumerate() {
        if i % 4 != 1 {
            store.ack(&format!("u{}@x", i % 5), id).unwrap();
        }
    }
    commit(&mut store);
    assert!(store.compaction_due());
    let before = snapshot(&store);
    let report = store.compact().unwrap();
    assert_eq!(report.messages, 50);
    assert!(report.bytes_after * 3 < report.bytes_before, "{report:?}");
    assert_eq!(snapshot(&store), before);
    let path = store.log_path().unwrap().to_path_buf();
    assert_eq!(fs::metadata(&path).unwrap().len(), report.bytes_after);
    let stats = store.stats();
    assert_eq!(
        stats.dead_bytes,
        u64::from(format::ID_RECORD_LEN),
        "only the NextId record"
    );
    assert_eq!(
        (stats.compactions, stats.log_bytes),
        (1, report.bytes_after)
    );
    assert!(!store.compaction_due());
    assert!(!config(dir.path()).compact_path().exists());

    assert_eq!(store.put("u0@x", "a@x/r", 1, b"after").unwrap(), MsgId(201));
    store.ack("u1@x", ids[1]).unwrap();
    commit(&mut store);
    let expected = snapshot(&store);
    drop(store);
    let mut store = open_clean(dir.path());
    assert_eq!(snapshot(&store), expected);
    assert_eq!(store.put("u0@x", "a@x/r", 2, b"next").unwrap(), MsgId(202));
}

#[test]
fn ids_continue_when_compaction_dropped_the_highest() {
    let dir = TempDir::new("compact-ids");
    let mut store = Store::open(eager(&dir)).unwrap();
    for n in 0..10 {
        let id = store.put("bob@x", "a@x/r", n, b"m").unwrap();
        store.ack("bob@x", id).unwrap();
    }
    commit(&mut store);
    store.compact().unwrap();
    assert_eq!(store.live_messages(), 0);
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(store.replay_report().records, 1, "just NextId");
    assert_eq!(store.put("bob@x", "a@x/r", 0, b"m").unwrap(), MsgId(11));
}

#[test]
fn compaction_needs_everything_committed() {
    let dir = TempDir::new("compact-idle");
    let mut store = Store::open(eager(&dir)).unwrap();
    store.put("bob@x", "a@x/r", 0, b"m").unwrap();
    assert!(matches!(store.compact(), Err(StoreError::NotIdle)));
    let batch = store.begin_commit().unwrap();
    assert!(
        matches!(store.compact(), Err(StoreError::NotIdle)),
        "in flight"
    );
    store
        .finish_commit(batch, Err(std::io::Error::from_raw_os_error(5)))
        .unwrap_err();
    assert!(
        matches!(store.compact(), Err(StoreError::NotIdle)),
        "failed batch pending"
    );
}

#[test]
fn compaction_waits_for_size_and_dead_ratio() {
    let dir = TempDir::new("compact-due");
    let mut store = open(dir.path());
    for n in 0..100 {
        let id = store.put("bob@x", "a@x/r", n, &stanza(n, 300)).unwrap();
        store.ack("bob@x", id).unwrap();
    }
    commit(&mut store);
    assert!(!store.compaction_due(), "all dead, but below 4 MiB");
    drop(store);
    let mut cfg = eager(&dir);
    cfg.compact_dead_ratio = 0.9;
    let mut store = Store::open(cfg).unwrap();
    for n in 0..20 {
        store.put("bob@x", "a@x/r", n, &stanza(n, 300)).unwrap();
    }
    commit(&mut store);
    let stats = store.stats();
    assert!(stats.dead_bytes * 10 < stats.log_bytes * 9);
    assert!(!store.compaction_due(), "{stats:?}");
}

#[test]
fn the_compacted_log_is_locked_too() {
    let dir = TempDir::new("compact-lock");
    let mut store = Store::open(eager(&dir)).unwrap();
    store.put("bob@x", "a@x/r", 0, b"m").unwrap();
    commit(&mut store);
    store.compact().unwrap();
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
}

#[test]
fn a_leftover_compact_file_is_ignored_and_removed() {
    let dir = TempDir::new("compact-stale");
    let expected = {
        let mut store = open(dir.path());
        store.put("bob@x", "a@x/r", 0, b"kept").unwrap();
        commit(&mut store);
        snapshot(&store)
    };
    let stale = config(dir.path()).compact_path();
    fs::write(&stale, b"RKLOG\0\0\x01half written by a crash").unwrap();
    let store = open(dir.path());
    assert_eq!(snapshot(&store), expected);
    assert!(!stale.exists());
}
