//! The store's API on a real log: queues, acks, commit sequence numbers, quota, limits,
//! durability modes, locking and refusals at open.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::{commit, config, messages, open, snapshot, stanza, TempDir};
use rookery_store::{
    crc32c, format, Durability, LogWriter, MsgId, OpenError, Store, StoreConfig, StoreError,
    SyncWriter,
};

#[test]
fn queues_are_fifo_per_owner_and_acks_delete() {
    let dir = TempDir::new("fifo");
    let mut store = open(dir.path());
    assert!(store.replay_report().created);
    let a1 = store.put("bob@x", "alice@x/r", 10, b"<m1/>").unwrap();
    let c1 = store.put("carol@x", "alice@x/r", 11, b"<m2/>").unwrap();
    let a2 = store.put("bob@x", "dave@x/r", 12, b"<m3/>").unwrap();
    assert_eq!((a1, c1, a2), (MsgId(1), MsgId(2), MsgId(3)));
    let bob: Vec<_> = store.queue("bob@x").map(|m| (m.id, m.stamp_ms)).collect();
    assert_eq!(bob, [(a1, 10), (a2, 12)]);
    assert_eq!(store.queue_len("carol@x"), 1);
    assert_eq!(store.queue_len("nobody@x"), 0);
    let queued = *store.get("bob@x", a2).unwrap();
    assert_eq!(
        store.body(&queued),
        rookery_store::Body::Pending,
        "not committed yet"
    );
    commit(&mut store);
    assert_eq!(store.stanza_now(&queued).unwrap(), b"<m3/>");
    assert_eq!(messages(&store, "carol@x")[0].stanza, b"<m2/>");
    assert!(
        store.get("bob@x", c1).is_none(),
        "carol's message is not bob's"
    );
    let mut owners: Vec<_> = store.owners().collect();
    owners.sort_unstable();
    assert_eq!(owners, ["bob@x", "carol@x"]);
    assert!(store.ack("bob@x", a1).unwrap());
    assert!(!store.ack("bob@x", a1).unwrap(), "second ack finds nothing");
    assert!(!store.ack("bob@x", MsgId(99)).unwrap());
    assert!(!store.ack("bob@x", c1).unwrap(), "another owner's id");
    assert!(store.ack("carol@x", c1).unwrap());
    assert_eq!(store.live_messages(), 1);
    assert_eq!(store.owners().collect::<Vec<_>>(), ["bob@x"]);
    assert!(store.get("bob@x", a1).is_none());
}

#[test]
fn commit_sequence_gates_acknowledgement() {
    let dir = TempDir::new("seq");
    let mut store = open(dir.path());
    assert!(
        store.is_committed(store.pending_seq()),
        "nothing to wait for yet"
    );
    store.put("bob@x", "a@x/r", 1, b"one").unwrap();
    let seq = store.pending_seq();
    assert!(!store.is_committed(seq));
    let batch = store.begin_commit().expect("a batch");
    assert_eq!(
        (batch.seq(), batch.offset()),
        (seq, format::HEADER_LEN as u64)
    );
    assert!(!batch.sync_data(), "Log durability does not fsync");
    assert!(store.begin_commit().is_none(), "one batch in flight");
    // A put while the batch is in flight goes into the next batch.
    store.put("bob@x", "a@x/r", 2, b"two").unwrap();
    let later = store.pending_seq();
    assert!(later > seq);
    let file = store.log_file().expect("a log file");
    file.write_all_at(batch.bytes(), batch.offset()).unwrap();
    let next_offset = batch.offset() + batch.bytes().len() as u64;
    assert_eq!(store.finish_commit(batch, Ok(())).unwrap(), seq);
    assert!(store.is_committed(seq) && !store.is_committed(later));
    let batch = store.begin_commit().expect("second batch");
    assert_eq!((batch.seq(), batch.offset()), (later, next_offset));
    store.finish_commit(batch, Ok(())).unwrap();
    assert!(store.is_committed(store.pending_seq()));
    assert_eq!(
        store.commit(&mut SyncWriter).unwrap(),
        None,
        "nothing pending"
    );
    let stats = store.stats();
    assert_eq!(
        (stats.commits, stats.committed_seq, stats.messages),
        (2, later, 2)
    );
}

#[test]
fn reopen_restores_committed_state_only_and_ids_continue() {
    let dir = TempDir::new("reopen");
    let committed;
    {
        let mut store = open(dir.path());
        for n in 0..5 {
            store.put("bob@x", "a@x/r", n, &stanza(n, 100)).unwrap();
        }
        store.ack("bob@x", MsgId(5)).unwrap(); // the highest id is gone, its record is not
        commit(&mut store);
        committed = snapshot(&store);
        store.put("bob@x", "a@x/r", 9, b"never committed").unwrap();
    }
    let mut store = open(dir.path());
    let report = store.replay_report().clone();
    assert!(report.is_clean() && !report.created, "{report}");
    assert_eq!((report.records, report.messages), (6, 4));
    assert_eq!(snapshot(&store), committed);
    assert_eq!(store.put("bob@x", "a@x/r", 10, b"x").unwrap(), MsgId(6));
}

#[test]
fn quota_refuses_without_appending() {
    let dir = TempDir::new("quota");
    let mut cfg = config(dir.path());
    cfg.offline_max = 3;
    let mut store = Store::open(cfg).unwrap();
    for n in 0..3 {
        store.put("bob@x", "a@x/r", n, b"m").unwrap();
    }
    let before = store.stats();
    let err = store.put("bob@x", "a@x/r", 3, b"m").unwrap_err();
    assert!(
        matches!(err, StoreError::QuotaExceeded { limit: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("--offline-max"));
    assert_eq!(store.stats(), before, "nothing appended, no id used");
    assert!(
        store.put("carol@x", "a@x/r", 3, b"m").is_ok(),
        "other owners unaffected"
    );
    store.ack("bob@x", MsgId(1)).unwrap();
    assert_eq!(store.put("bob@x", "a@x/r", 4, b"m").unwrap(), MsgId(5));
}

#[test]
fn oversized_fields_are_refused() {
    let dir = TempDir::new("large");
    let mut store = open(dir.path());
    let long_jid = "j".repeat(70_000);
    let err = store.put("bob@x", &long_jid, 0, b"m").unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { stanza_len: 1 }),
        "{err}"
    );
    let huge = vec![b'x'; format::MAX_BODY_LEN as usize];
    assert!(matches!(
        store.put("bob@x", "a@x", 0, &huge),
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(store.live_messages(), 0);
    assert_eq!(store.stats().pending_bytes, 0);
    assert_eq!(store.put("bob@x", "a@x", 0, b"ok").unwrap(), MsgId(1));
}

#[test]
fn memory_durability_touches_no_file_and_commits_at_once() {
    let dir = TempDir::new("memory");
    let data_dir = dir.path().join("never-created");
    let cfg = StoreConfig::new(&data_dir, 0).with_durability(Durability::Memory);
    let mut store = Store::open(cfg).unwrap();
    let id = store.put("bob@x", "a@x/r", 1, b"m").unwrap();
    assert!(store.is_committed(store.pending_seq()));
    assert!(store.begin_commit().is_none());
    assert_eq!(store.commit(&mut SyncWriter).unwrap(), None);
    assert!(store.log_file().is_none() && store.log_path().is_none());
    assert_eq!(store.compact().unwrap().messages, 0, "no-op");
    assert!(!store.compaction_due());
    assert_eq!(
        store.stanza_now(store.get("bob@x", id).unwrap()).unwrap(),
        b"m"
    );
    assert!(store.ack("bob@x", id).unwrap());
    assert!(!data_dir.exists());
    assert_eq!(store.stats().log_bytes, 0);
}

#[test]
fn fsync_durability_syncs_and_survives_reopen() {
    let dir = TempDir::new("fsync");
    let cfg = config(dir.path()).with_durability(Durability::Fsync);
    let mut store = Store::open(cfg.clone()).unwrap();
    store.put("bob@x", "a@x/r", 1, b"m").unwrap();
    let batch = store.begin_commit().unwrap();
    assert!(batch.sync_data());
    let written = SyncWriter.write_batch(store.log_file().unwrap(), &batch);
    store.finish_commit(batch, written).unwrap();
    let expected = snapshot(&store);
    drop(store);
    let store = Store::open(cfg).unwrap();
    assert_eq!(snapshot(&store), expected);
    assert_eq!(store.live_messages(), 1);
}

#[test]
fn a_second_open_of_the_same_log_is_refused() {
    let dir = TempDir::new("lock");
    let store = open(dir.path());
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("second rookery"));
    let other_shard = Store::open(StoreConfig::new(dir.path(), 1));
    assert!(other_shard.is_ok(), "shards have separate logs");
    drop(store);
    assert!(
        Store::open(config(dir.path())).is_ok(),
        "lock released on drop"
    );
}

#[test]
fn foreign_and_future_files_are_left_alone() {
    let dir = TempDir::new("foreign");
    let path = config(dir.path()).log_path();
    fs::write(&path, b"hello, this is not a log at all").unwrap();
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, OpenError::NotALog { .. }), "{err}");

    let mut future = format::header().to_vec();
    future[8] = 2;
    fs::write(&path, &future).unwrap();
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedVersion {
                version: 2,
                flags: 0,
                ..
            }
        ),
        "{err}"
    );

    // A record with a valid CRC and a kind this build does not know.
    let mut log = format::header().to_vec();
    let body = [42u8, 1, 2, 3];
    log.extend_from_slice(&(body.len() as u32).to_le_bytes());
    log.extend_from_slice(&crc32c(&body).to_le_bytes());
    log.extend_from_slice(&body);
    fs::write(&path, &log).unwrap();
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnknownRecordKind {
                offset: 16,
                kind: 42,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read(&path).unwrap(), log, "not truncated");
}

#[test]
fn stats_count_dead_bytes() {
    let dir = TempDir::new("stats");
    let mut store = open(dir.path());
    let ids: Vec<_> = (0..4)
        .map(|n| store.put("bob@x", "a@x/r", n, b"0123456789").unwrap())
        .collect();
    commit(&mut store);
    let full = store.stats();
    assert_eq!(full.dead_bytes, 0);
    assert_eq!(
        full.log_bytes,
        fs::metadata(store.log_path().unwrap()).unwrap().len()
    );
    let put_len = (full.log_bytes - format::HEADER_LEN as u64) / 4;
    store.ack("bob@x", ids[0]).unwrap();
    let stats = store.stats();
    assert_eq!(stats.dead_bytes, put_len + u64::from(format::ID_RECORD_LEN));
    assert_eq!(stats.pending_bytes, u64::from(format::ID_RECORD_LEN));
    assert_eq!((stats.messages, stats.owners, stats.next_id), (3, 1, 5));
}

#[test]
fn byte_budgets_per_owner_and_per_store_refuse_without_appending() {
    let dir = TempDir::new("bytes");
    let mut cfg = config(dir.path());
    let record = u64::from(format::put_len(5, 5, 100).unwrap());
    cfg.offline_max_bytes = 3 * record;
    cfg.max_stored_bytes = 5 * record;
    let mut store = Store::open(cfg).unwrap();
    for n in 0..3 {
        store.put("bob@x", "a@x/r", n, &[b'm'; 100]).unwrap();
    }
    assert_eq!(store.queue_bytes("bob@x"), 3 * record);
    let before = store.stats();
    let err = store.put("bob@x", "a@x/r", 3, &[b'm'; 100]).unwrap_err();
    assert!(matches!(err, StoreError::OwnerBytesExceeded { limit } if limit == 3 * record));
    assert!(err.to_string().contains("--offline-max-bytes"), "{err}");
    assert_eq!(store.stats(), before, "nothing appended, no id used");
    store.put("cat@x", "a@x/r", 3, &[b'm'; 100]).unwrap();
    store.put("cat@x", "a@x/r", 4, &[b'm'; 100]).unwrap();
    let err = store.put("dan@x", "a@x/r", 5, &[b'm'; 100]).unwrap_err();
    assert!(matches!(err, StoreError::StoreFull { .. }), "{err}");
    assert!(err.to_string().contains("--store-max-bytes"), "{err}");
    assert_eq!(store.stats().message_bytes, 5 * record);
    store.ack("bob@x", MsgId(1)).unwrap();
    assert!(
        store.put("dan@x", "a@x/r", 6, &[b'm'; 100]).is_ok(),
        "room again"
    );
}

#[test]
fn a_damaged_record_read_back_is_an_error_and_stays_queued() {
    let dir = TempDir::new("readback");
    let mut store = open(dir.path());
    let id = store
        .put("bob@x", "a@x/r", 1, b"<message>hello</message>")
        .unwrap();
    commit(&mut store);
    let msg = *store.get("bob@x", id).unwrap();
    let rookery_store::Body::InLog(span) = store.body(&msg) else {
        panic!("a committed record is in the log");
    };
    assert_eq!(span.len, msg.record_len());
    assert_eq!(store.stanza_now(&msg).unwrap(), b"<message>hello</message>");
    // Flip one byte of the stanza on disk, behind the store's back.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(store.log_path().unwrap())
        .unwrap();
    let at = span.offset + u64::from(span.len) - 3;
    file.write_all_at(b"X", at).unwrap();
    let err = store.stanza_now(&msg).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { id: 1, .. }), "{err}");
    // A span of another record (the wrong id) is refused as well.
    let mut record = vec![0; span.len as usize];
    store
        .log_file()
        .unwrap()
        .read_exact_at(&mut record, span.offset)
        .unwrap();
    assert!(store.read_back(&msg, &record).is_err());
    assert!(store.get("bob@x", id).is_some(), "still queued");
}
