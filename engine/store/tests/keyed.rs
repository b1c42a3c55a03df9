//! Keyed tables (rosters, groups) on a real log: they survive a reopen, a torn tail and a
//! compaction exactly, and their dead records count toward compaction.

mod common;

use common::{commit, config, open, TempDir};
use rookery_store::{format, Store};

fn entries(store: &Store, table: u8, prefix: &str) -> Vec<(String, Vec<u8>)> {
    store
        .kv_scan(table, prefix)
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect()
}

#[test]
fn keyed_entries_survive_reopen_and_compaction() {
    let dir = TempDir::new("kv-reopen");
    {
        let mut store = open(dir.path());
        store.kv_set(1, "alice@x\0bob@x", b"both").unwrap();
        store.kv_set(1, "alice@x\0carol@x", b"to").unwrap();
        store.kv_set(1, "alice@x\0carol@x", b"none+ask").unwrap();
        store.kv_set(2, "room@groups.x", b"cfg").unwrap();
        store.kv_set(1, "alice@x\0dave@x", b"from").unwrap();
        assert!(store.kv_delete(1, "alice@x\0dave@x"));
        assert!(!store.kv_delete(1, "alice@x\0dave@x"), "already gone");
        store.put("bob@x", "alice@x/r", 5, b"<m/>").unwrap();
        commit(&mut store);
        assert_eq!(store.stats().kv_entries, 3);
    }
    let mut store = open(dir.path());
    let want = vec![
        ("alice@x\0bob@x".to_owned(), b"both".to_vec()),
        ("alice@x\0carol@x".to_owned(), b"none+ask".to_vec()),
    ];
    assert_eq!(entries(&store, 1, "alice@x\0"), want);
    assert_eq!(store.kv_get(2, "room@groups.x"), Some(&b"cfg"[..]));
    assert_eq!(store.kv_len(1), 2);
    assert!(
        store.stats().dead_bytes > 0,
        "replaced and deleted records are dead"
    );
    store.compact().expect("compaction");
    // Only the NextId record that opens a compacted log is not live data.
    assert_eq!(store.stats().dead_bytes, u64::from(format::ID_RECORD_LEN));
    drop(store);
    let store = open(dir.path());
    assert_eq!(entries(&store, 1, "alice@x\0"), want);
    assert_eq!(store.kv_get(2, "room@groups.x"), Some(&b"cfg"[..]));
    assert_eq!(
        store.live_messages(),
        1,
        "messages kept beside the keyed entries"
    );
}

#[test]
fn uncommitted_keyed_entries_are_not_replayed() {
    let dir = TempDir::new("kv-uncommitted");
    {
        let mut store = open(dir.path());
        store.kv_set(1, "a\0b", b"v1").unwrap();
        commit(&mut store);
        store.kv_set(1, "a\0b", b"v2").unwrap();
        store.kv_set(1, "a\0c", b"v3").unwrap();
        // Dropped without a commit: like a kill before the batch was written.
    }
    let store = Store::open(config(dir.path())).expect("reopen");
    assert_eq!(
        entries(&store, 1, "a\0"),
        vec![("a\0b".to_owned(), b"v1".to_vec())]
    );
}

#[test]
fn a_key_over_the_format_limit_is_refused_and_changes_nothing() {
    let dir = TempDir::new("kv-limit");
    let mut store = open(dir.path());
    let key = "k".repeat(70_000);
    assert!(store.kv_set(1, &key, b"v").is_err());
    assert_eq!(store.kv_len(1), 0);
    assert_eq!(store.stats().pending_bytes, 0);
}
