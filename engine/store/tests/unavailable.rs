//! Write failures: a failing writer (ENOSPC) makes the store unavailable, new puts are
//! refused, acks are kept, the batch is retried at the same offset on schedule, and a
//! successful retry restores service with nothing lost. Then the same on a real, full tmpfs.

mod common;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::{commit, config, open, open_clean, snapshot, stanza, FailingWriter, TempDir};
use rookery_store::{CommitBatch, LogWriter, MsgId, Store, StoreConfig, StoreError, SyncWriter};

fn retry_config(dir: &Path, retry_interval_ms: u64) -> StoreConfig {
    let mut cfg = config(dir);
    cfg.retry_interval_ms = retry_interval_ms;
    cfg
}

#[test]
fn enospc_makes_the_store_unavailable_until_a_retry_succeeds() {
    let dir = TempDir::new("enospc");
    let mut store = Store::open(retry_config(dir.path(), 100)).unwrap();
    let first = store.put("bob@x", "a@x/r", 1, b"one").unwrap();
    store.put("bob@x", "a@x/r", 2, b"two").unwrap();
    commit(&mut store);
    let committed = store.committed_seq();
    let waiting: Vec<MsgId> = (3..6)
        .map(|n| store.put("bob@x", "a@x/r", n, &stanza(n, 50)).unwrap())
        .collect();
    let seq = store.pending_seq();
    let mut writer = FailingWriter::enospc();
    let err = store.commit(&mut writer).unwrap_err();
    assert!(matches!(&err, StoreError::Write { source, .. } if source.raw_os_error() == Some(28)));
    assert!(!store.is_available() && !store.is_committed(seq));
    assert_eq!(store.committed_seq(), committed);
    let reason = store.unavailable_reason().unwrap();
    assert!(
        reason.contains("No space left") && reason.contains("disk full"),
        "{reason}"
    );
    assert!(matches!(
        store.put("bob@x", "a@x/r", 9, b"x"),
        Err(StoreError::Unavailable)
    ));
    assert!(
        store.ack("bob@x", first).unwrap(),
        "acks are kept while unavailable"
    );
    assert_eq!(
        store.queue_len("bob@x"),
        4,
        "the tables keep the failed batch's messages"
    );

    assert_eq!(
        store.commit(&mut writer).unwrap(),
        None,
        "no retry before it is due"
    );
    assert!(!store.retry_due(1_000));
    assert!(!store.retry_due(1_099));
    assert!(store.retry_due(1_100));
    assert!(store.commit(&mut writer).is_err(), "still full");
    assert_eq!(writer.attempts, 2);
    writer.fail = false;
    assert!(store.retry_due(1_200));
    let done = store.commit(&mut writer).unwrap().expect("retried batch");
    assert!(store.is_available() && store.unavailable_reason().is_none());
    assert!(
        store.is_committed(seq) && done > seq,
        "the retry commits the old seq too"
    );
    assert!(store.put("bob@x", "a@x/r", 10, b"back").is_ok());
    commit(&mut store);
    let stats = store.stats();
    assert_eq!((stats.commit_failures, stats.available), (2, true));
    let expected = snapshot(&store);
    drop(store);
    let store = open(dir.path());
    assert!(store.replay_report().is_clean());
    assert_eq!(snapshot(&store), expected);
    assert!(waiting.iter().all(|&id| store.get("bob@x", id).is_some()));
    assert!(store.get("bob@x", first).is_none());
}

/// Writes a bit over half of every batch, then fails: a torn attempt past the committed end.
struct HalfWriter;

impl LogWriter for HalfWriter {
    fn write_batch(&mut self, file: &File, batch: &CommitBatch) -> io::Result<()> {
        let half = &batch.bytes()[..batch.bytes().len() / 2 + 3];
        file.write_all_at(half, batch.offset())?;
        Err(io::Error::from_raw_os_error(28))
    }
}

#[test]
fn a_partial_write_is_overwritten_by_the_retry() {
    let dir = TempDir::new("partial");
    let mut store = Store::open(retry_config(dir.path(), 0)).unwrap();
    store.put("bob@x", "a@x/r", 1, b"committed").unwrap();
    commit(&mut store);
    let committed = snapshot(&store);
    for n in 0..4 {
        store.put("bob@x", "a@x/r", n, &stanza(n, 80)).unwrap();
    }
    assert!(store.commit(&mut HalfWriter).is_err());
    let path = store.log_path().unwrap().to_path_buf();
    let torn_len = fs::metadata(&path).unwrap().len();
    assert!(torn_len > store.stats().log_bytes - store.stats().pending_bytes);
    {
        // A crash now: the torn attempt is dropped, the committed state is intact.
        let copy = TempDir::new("partial-copy");
        fs::copy(&path, config(copy.path()).log_path()).unwrap();
        let crashed = open(copy.path());
        assert!(!crashed.replay_report().is_clean());
        let replayed = snapshot(&crashed);
        let bob = &replayed["bob@x"];
        assert_eq!(bob[..1], committed["bob@x"][..], "committed prefix kept");
        assert!(bob.len() < 5, "the torn record is not replayed");
    }
    assert!(!store.retry_due(0), "the first call starts the clock");
    assert!(store.retry_due(0), "interval 0: due at once after that");
    commit(&mut store);
    let expected = snapshot(&store);
    drop(store);
    let store = open_clean(dir.path());
    assert_eq!(snapshot(&store), expected);
    assert_eq!(store.live_messages(), 5);
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
}

#[test]
fn disk_full_for_real_on_a_small_tmpfs() {
    let dir = TempDir::new("tmpfs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir.path())
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            // Visible skip: the failing-writer tests above still cover the logic.
            eprintln!(
                "SKIPPED disk_full_for_real_on_a_small_tmpfs: `mount -t tmpfs` not permitted \
                 here (needs root): {other:?}"
            );
            return;
        }
    }
    let _mount = Mount(dir.path());
    // Space the test can free later, as an operator would.
    let filler = dir.path().join("filler");
    fs::write(&filler, vec![0u8; 96 * 1024]).unwrap();
    let mut store = Store::open(retry_config(dir.path(), 10)).unwrap();
    let mut accepted = Vec::new();
    let mut failure = None;
    for round in 0..1_000u64 {
        for n in 0..16 {
            accepted.push(
                store
                    .put("bob@x", "a@x/r", round, &stanza(round * 16 + n, 1024))
                    .unwrap(),
            );
        }
        if let Err(e) = store.commit(&mut SyncWriter) {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("a 256 KiB tmpfs fills up");
    assert!(
        matches!(&failure, StoreError::Write { source, .. } if source.raw_os_error() == Some(28)),
        "{failure}"
    );
    assert!(matches!(
        store.put("bob@x", "a@x/r", 0, b"x"),
        Err(StoreError::Unavailable)
    ));
    assert!(!store.is_committed(store.pending_seq()));
    fs::remove_file(&filler).unwrap();
    assert!(!store.retry_due(0));
    assert!(store.retry_due(10));
    store.commit(&mut SyncWriter).expect("space is back");
    assert!(store.is_available() && store.is_committed(store.pending_seq()));
    drop(store);
    let store = open_clean(dir.path());
    assert_eq!(store.live_messages(), accepted.len());
    assert!(
        accepted.iter().all(|&id| store.get("bob@x", id).is_some()),
        "nothing accepted is lost"
    );
}
