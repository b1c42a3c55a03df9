//! Helpers shared by the integration tests: temporary directories, table snapshots, and
//! writers that fail on purpose.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use rookery_store::{CommitBatch, Durability, LogWriter, MsgId, Store, StoreConfig, SyncWriter};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// In /dev/shm when there is one: for tests that open thousands of logs, whose repair
    /// fsyncs would otherwise dominate.
    pub fn fast(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::new_in(shm, tag)
        } else {
            TempDir::new(tag)
        }
    }

    fn new_in(base: &Path, tag: &str) -> TempDir {
        let prefix = format!("rookery-store-{tag}-");
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir_in(base);
        TempDir(dir.expect("create temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// [`open`], asserting that the replay found the log intact (nothing repaired or cut).
pub fn open_clean(dir: &Path) -> Store {
    let store = open(dir);
    assert!(
        store.replay_report().is_clean(),
        "{}",
        store.replay_report()
    );
    store
}

/// Log durability config for shard 0 in `dir`.
pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir, 0).with_durability(Durability::Log)
}

/// Opens the store in `dir`, waiting briefly while another thread's child process still holds
/// the log's lock: a test in this binary that forks (`mount`, `umount`, a crash child) copies
/// every descriptor into the child until its `exec` closes them, and `flock` locks belong to the
/// open file, so for that moment a store dropped here is still locked.
pub fn open(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(config(dir)) {
            Err(rookery_store::OpenError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.expect("open store"),
        }
    }
}

/// A committed history, one record per step: `ends[k]` is the log length after `k` records
/// and `states[k]` the tables then (`ends[0]` is the bare header).
pub struct History {
    pub bytes: Vec<u8>,
    pub ends: Vec<u64>,
    pub states: Vec<Snapshot>,
}

impl History {
    /// Records fully inside the first `len` bytes.
    pub fn records_within(&self, len: u64) -> usize {
        self.ends.iter().rposition(|&end| end <= len).unwrap_or(0)
    }
}

/// Runs `steps` (one record each: `Ok(n)` puts a message for owner `n % 3`, `Err(k)` acks
/// the k-th live message modulo the count), committing after each, and returns the history.
pub fn build_history(dir: &Path, steps: &[Result<u64, usize>]) -> History {
    let mut store = open(dir);
    let mut ends = vec![store.stats().log_bytes];
    let mut states = vec![snapshot(&store)];
    let mut live = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Ok(n) => {
                let owner = format!("user{}@x", n % 3);
                let id = store
                    .put(
                        &owner,
                        "a@x/r",
                        i as u64,
                        &stanza(n, 20 + (n as usize % 40)),
                    )
                    .unwrap();
                live.push((owner, id));
            }
            Err(k) if !live.is_empty() => {
                let (owner, id): (String, MsgId) = live.remove(k % live.len());
                assert!(store.ack(&owner, id).unwrap());
            }
            Err(_) => continue,
        }
        commit(&mut store);
        ends.push(store.stats().log_bytes);
        states.push(snapshot(&store));
    }
    let bytes = std::fs::read(store.log_path().unwrap()).unwrap();
    assert_eq!(bytes.len() as u64, *ends.last().unwrap());
    History {
        bytes,
        ends,
        states,
    }
}

/// Writes `bytes` as shard 0's log in `dir`, replacing any.
pub fn write_log(dir: &Path, bytes: &[u8]) {
    std::fs::write(config(dir).log_path(), bytes).unwrap();
}

/// A queued message with its stanza read back (what a recipient would get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MsgId,
    pub stamp_ms: u64,
    pub stanza: Vec<u8>,
}

/// Every queue, sorted by owner: what must survive a reopen.
pub type Snapshot = BTreeMap<String, Vec<StoredMessage>>;

/// The queues with every stanza read back; the store must be committed (or in memory).
pub fn snapshot(store: &Store) -> Snapshot {
    store
        .owners()
        .map(|owner| (owner.to_string(), messages(store, owner)))
        .collect()
}

/// `owner`'s queue with every stanza read back.
pub fn messages(store: &Store, owner: &str) -> Vec<StoredMessage> {
    store
        .queue(owner)
        .map(|m| StoredMessage {
            id: m.id,
            stamp_ms: m.stamp_ms,
            stanza: store.stanza_now(m).expect("read the stanza back"),
        })
        .collect()
}

/// Commits everything pending with the blocking writer; panics on a write error.
pub fn commit(store: &mut Store) {
    store.commit(&mut SyncWriter).expect("commit");
}

/// A stanza of about `len` bytes that names `n`.
pub fn stanza(n: u64, len: usize) -> Vec<u8> {
    let mut s = format!("<message id='m{n}'><body>").into_bytes();
    s.resize(len.saturating_sub(17).max(s.len()), b'a' + (n % 26) as u8);
    s.extend_from_slice(b"</body></message>");
    s
}

/// A writer that fails every write with `errno` while `fail` is set, else writes for real.
pub struct FailingWriter {
    pub fail: bool,
    pub errno: i32,
    pub attempts: u64,
}

impl FailingWriter {
    pub fn enospc() -> FailingWriter {
        FailingWriter {
            fail: true,
            errno: 28,
            attempts: 0,
        }
    }
}

impl LogWriter for FailingWriter {
    fn write_batch(&mut self, file: &File, batch: &CommitBatch) -> io::Result<()> {
        self.attempts += 1;
        if self.fail {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        SyncWriter.write_batch(file, batch)
    }
}
