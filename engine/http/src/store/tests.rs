use super::*;

use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rookery-store-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn token(n: u8) -> SlotToken {
    SlotToken::from_random([n; 16])
}

fn meta(owner: &str, size_bytes: u64, created_unix_s: u64) -> FileMeta {
    FileMeta {
        owner: Jid::parse(owner).unwrap(),
        size_bytes,
        content_type: "text/plain".into(),
        created_unix_s,
        filename: "a.txt".into(),
    }
}

/// Uploads `size` bytes under `token` through a claim.
fn store_file(store: &Arc<FileStore>, token: SlotToken, meta: FileMeta) -> UsageEvent {
    let claim = store.claim(token).unwrap();
    fs::write(claim.part_path(), vec![b'x'; meta.size_bytes as usize]).unwrap();
    claim.commit(meta).unwrap()
}

#[test]
fn a_slot_is_claimed_once_and_stored_once() {
    let dir = TempDir::new();
    let (store, report) = FileStore::open(&dir.0).unwrap();
    assert_eq!(report, ScanReport::default());
    let store = Arc::new(store);
    let claim = store.claim(token(1)).unwrap();
    assert_eq!(store.claim(token(1)).err(), Some(ClaimError::InProgress));
    fs::write(claim.part_path(), b"hello").unwrap();
    let event = claim.commit(meta("alice@example.test", 5, 100)).unwrap();
    assert!(matches!(event, UsageEvent::Stored { size_bytes: 5, .. }));
    assert_eq!(store.claim(token(1)).err(), Some(ClaimError::AlreadyStored));
    assert_eq!(fs::read(store.file_path(&token(1))).unwrap(), b"hello");
    assert_eq!(store.get(&token(1)).unwrap().size_bytes, 5);
    assert_eq!(store.totals(), (1, 5));
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
}

#[test]
fn a_dropped_claim_removes_its_temp_file_and_frees_the_slot() {
    let dir = TempDir::new();
    let store = Arc::new(FileStore::open(&dir.0).unwrap().0);
    let claim = store.claim(token(1)).unwrap();
    let part = claim.part_path();
    fs::write(&part, b"half").unwrap();
    drop(claim);
    assert!(!part.exists());
    assert!(store.claim(token(1)).is_ok());
}

#[test]
fn restart_rebuilds_index_and_usage_and_removes_orphans() {
    let dir = TempDir::new();
    {
        let store = Arc::new(FileStore::open(&dir.0).unwrap().0);
        store_file(&store, token(1), meta("alice@example.test", 10, 100));
        store_file(&store, token(2), meta("alice@example.test", 20, 100));
        store_file(&store, token(3), meta("bob@example.test", 7, 100));
        // An upload cut short by a stop, and what a crash mid-commit leaves.
        let claim = store.claim(token(4)).unwrap();
        fs::write(claim.part_path(), b"partial").unwrap();
        std::mem::forget(claim);
        fs::write(store.file_path(&token(5)), b"no sidecar").unwrap();
        fs::write(
            store.meta_path(&token(6)),
            meta("bob@example.test", 1, 1).to_sidecar(),
        )
        .unwrap();
        // A file whose size no longer matches its sidecar.
        store_file(&store, token(7), meta("bob@example.test", 3, 100));
        fs::write(store.file_path(&token(7)), b"truncated?").unwrap();
    }
    let (store, report) = FileStore::open(&dir.0).unwrap();
    assert_eq!(report.files, 3);
    assert_eq!(report.bytes, 37);
    assert_eq!(report.temps_removed, 1);
    assert_eq!(report.orphans_removed, 3);
    assert_eq!(store.totals(), (3, 37));
    let usage = store.usage_by_owner();
    assert_eq!(usage.len(), 2);
    assert_eq!(
        (usage[0].owner.as_str(), usage[0].files, usage[0].bytes),
        ("alice@example.test", 2, 30)
    );
    assert_eq!(
        (usage[1].owner.as_str(), usage[1].files, usage[1].bytes),
        ("bob@example.test", 1, 7)
    );
    for gone in [5, 6, 7] {
        assert!(!store.file_path(&token(gone)).exists());
        assert!(!store.meta_path(&token(gone)).exists());
    }
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
}

#[test]
fn remove_updates_usage_and_deletes_both_files() {
    let dir = TempDir::new();
    let store = Arc::new(FileStore::open(&dir.0).unwrap().0);
    store_file(&store, token(1), meta("alice@example.test", 10, 100));
    store_file(&store, token(2), meta("alice@example.test", 20, 200));
    assert_eq!(store.created_before(150), vec![token(1)]);
    let event = store.remove(&token(1)).unwrap();
    assert_eq!(
        event,
        UsageEvent::Removed {
            owner: Jid::parse("alice@example.test").unwrap(),
            token: token(1),
            size_bytes: 10
        }
    );
    assert!(!store.file_path(&token(1)).exists());
    assert!(!store.meta_path(&token(1)).exists());
    assert_eq!(store.remove(&token(1)), None);
    assert_eq!(store.usage_by_owner()[0].bytes, 20);
    store.remove(&token(2)).unwrap();
    assert!(store.usage_by_owner().is_empty());
    assert_eq!(store.totals(), (0, 0));
}

#[test]
fn orphan_temps_are_removed_but_not_live_uploads() {
    let dir = TempDir::new();
    let store = Arc::new(FileStore::open(&dir.0).unwrap().0);
    let live = store.claim(token(1)).unwrap();
    fs::write(live.part_path(), b"uploading").unwrap();
    fs::write(store.part_path(&token(2)), b"left behind").unwrap();
    fs::write(store.tmp_dir.join("junk"), b"?").unwrap();
    assert_eq!(store.remove_orphan_temps().unwrap(), 2);
    assert!(live.part_path().exists());
    assert!(!store.part_path(&token(2)).exists());
}
