//! The upload store: files on disk under `<data_dir>/upload/`, and their index in memory.
//!
//! Layout:
//!
//! ```text
//! <data_dir>/upload/secret               the slot-signing secret (secret.rs)
//! <data_dir>/upload/files/<token>        a stored file's bytes
//! <data_dir>/upload/files/<token>.meta   its sidecar (sidecar.rs)
//! <data_dir>/upload/tmp/<token>.part     an upload in progress
//! <data_dir>/upload/tmp/<token>.meta     a sidecar being written
//! ```
//!
//! Files are named by their token, never by the client's name, so nothing a client sends
//! reaches a path. One flat directory: ext4 and XFS index large directories by hash.
//!
//! Commit order (crash safety): the bytes are written to `tmp/<token>.part` and fsynced, then
//! renamed to `files/<token>`; then the sidecar is written to `tmp/`, fsynced and renamed
//! beside it; then `files/` is fsynced. A crash leaves at worst a file without a sidecar or a
//! temp file: both are orphans, removed at the next start (`scan.rs`), and the slot can be
//! uploaded again while it is valid. A file is served only once its sidecar is in place.
//!
//! What it does not do: network I/O or HTTP; its disk calls block and are run by callers on
//! tokio's blocking pool (`spawn_blocking`), except the unlink in a dropped claim.
//!
//! Invariants: a token is in at most one of `files` and `uploading`; `stored_bytes` and each
//! owner's usage are the sums over `files`; the index lock is never held across an await.

mod scan;
pub(crate) mod sidecar;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rookery_proto::Jid;
use rookery_upload::{SlotToken, UsageEvent};

pub use scan::ScanReport;
pub use sidecar::FileMeta;

/// One owner's stored files, for the router's quota ledger at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerUsage {
    pub owner: Jid,
    pub files: u64,
    pub bytes: u64,
}

/// Why a slot cannot be uploaded to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    AlreadyStored,
    InProgress,
}

#[derive(Default)]
struct Index {
    files: HashMap<SlotToken, FileMeta>,
    uploading: HashSet<SlotToken>,
    usage: HashMap<Jid, (u64, u64)>,
    stored_bytes: u64,
}

impl Index {
    fn insert(&mut self, token: SlotToken, meta: FileMeta) {
        let usage = self.usage.entry(meta.owner.clone()).or_default();
        usage.0 += 1;
        usage.1 += meta.size_bytes;
        self.stored_bytes += meta.size_bytes;
        self.files.insert(token, meta);
    }

    fn remove(&mut self, token: &SlotToken) -> Option<FileMeta> {
        let meta = self.files.remove(token)?;
        self.stored_bytes -= meta.size_bytes;
        if let Some(usage) = self.usage.get_mut(&meta.owner) {
            usage.0 -= 1;
            usage.1 -= meta.size_bytes;
            if usage.0 == 0 {
                self.usage.remove(&meta.owner);
            }
        }
        Some(meta)
    }
}

pub(crate) struct FileStore {
    files_dir: PathBuf,
    tmp_dir: PathBuf,
    index: Mutex<Index>,
}

impl FileStore {
    /// Opens `<root>/files` and `<root>/tmp` (creating them), removes every temp file (no
    /// upload is in progress at start) and rebuilds the index from the sidecars.
    pub fn open(root: &Path) -> io::Result<(FileStore, ScanReport)> {
        let store = FileStore {
            files_dir: root.join("files"),
            tmp_dir: root.join("tmp"),
            index: Mutex::new(Index::default()),
        };
        fs::create_dir_all(&store.files_dir)?;
        fs::create_dir_all(&store.tmp_dir)?;
        let report = scan::rebuild(&store)?;
        Ok((store, report))
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated (every update is
        // a few infallible map operations), so a poisoned lock is still consistent.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn file_path(&self, token: &SlotToken) -> PathBuf {
        self.files_dir.join(token.to_string())
    }

    fn meta_path(&self, token: &SlotToken) -> PathBuf {
        self.files_dir.join(format!("{token}.meta"))
    }

    fn part_path(&self, token: &SlotToken) -> PathBuf {
        self.tmp_dir.join(format!("{token}.part"))
    }

    /// Marks `token` as uploading; the claim's drop undoes it and removes its temp file.
    pub fn claim(self: &Arc<Self>, token: SlotToken) -> Result<UploadClaim, ClaimError> {
        let mut index = self.lock();
        if index.files.contains_key(&token) {
            return Err(ClaimError::AlreadyStored);
        }
        if !index.uploading.insert(token) {
            return Err(ClaimError::InProgress);
        }
        Ok(UploadClaim {
            store: Arc::clone(self),
            token,
            committed: false,
        })
    }

    /// The metadata of a stored file.
    pub fn get(&self, token: &SlotToken) -> Option<FileMeta> {
        self.lock().files.get(token).cloned()
    }

    /// (files, bytes) stored.
    pub fn totals(&self) -> (u64, u64) {
        let index = self.lock();
        (index.files.len() as u64, index.stored_bytes)
    }

    pub fn usage_by_owner(&self) -> Vec<OwnerUsage> {
        let index = self.lock();
        let mut all: Vec<OwnerUsage> = index
            .usage
            .iter()
            .map(|(owner, &(files, bytes))| OwnerUsage {
                owner: owner.clone(),
                files,
                bytes,
            })
            .collect();
        all.sort_by(|a, b| a.owner.cmp(&b.owner));
        all
    }

    /// Tokens of files uploaded at or before `created_before_unix_s`.
    pub fn created_before(&self, created_before_unix_s: u64) -> Vec<SlotToken> {
        let index = self.lock();
        index
            .files
            .iter()
            .filter(|(_, meta)| meta.created_unix_s <= created_before_unix_s)
            .map(|(token, _)| *token)
            .collect()
    }

    /// Removes a stored file: out of the index first (so it is no longer served), then its
    /// sidecar, then its bytes. Blocking.
    pub fn remove(&self, token: &SlotToken) -> Option<UsageEvent> {
        let meta = self.lock().remove(token)?;
        remove_if_present(&self.meta_path(token));
        remove_if_present(&self.file_path(token));
        Some(UsageEvent::Removed {
            owner: meta.owner,
            token: *token,
            size_bytes: meta.size_bytes,
        })
    }

    /// Removes temp files of uploads no longer in progress (a claim dropped while its unlink
    /// failed, or a sidecar left by a failed commit). The check and the unlink happen under the
    /// lock, so a new upload of the same token cannot lose its fresh temp file. Blocking.
    pub fn remove_orphan_temps(&self) -> io::Result<u64> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp_dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let token = name.split('.').next().and_then(SlotToken::parse);
            let index = self.lock();
            if token.is_some_and(|t| index.uploading.contains(&t)) {
                continue;
            }
            remove_if_present(&self.tmp_dir.join(&*name));
            removed += 1;
        }
        Ok(removed)
    }
}

/// An upload in progress. Dropping it without [`UploadClaim::commit`] removes the temp file
/// and frees the slot for another try.
pub(crate) struct UploadClaim {
    store: Arc<FileStore>,
    token: SlotToken,
    committed: bool,
}

impl UploadClaim {
    pub fn part_path(&self) -> PathBuf {
        self.store.part_path(&self.token)
    }

    /// Moves the fsynced temp file into place with its sidecar and indexes it. Blocking.
    pub fn commit(mut self, meta: FileMeta) -> io::Result<UsageEvent> {
        let store = Arc::clone(&self.store);
        let token = self.token;
        fs::rename(self.part_path(), store.file_path(&token))?;
        let meta_tmp = store.tmp_dir.join(format!("{token}.meta"));
        let mut sidecar = File::create(&meta_tmp)?;
        sidecar.write_all(meta.to_sidecar().as_bytes())?;
        sidecar.sync_all()?;
        drop(sidecar);
        fs::rename(&meta_tmp, store.meta_path(&token))?;
        File::open(&store.files_dir)?.sync_all()?;
        let event = UsageEvent::Stored {
            owner: meta.owner.clone(),
            token,
            size_bytes: meta.size_bytes,
        };
        let mut index = store.lock();
        index.uploading.remove(&token);
        index.insert(token, meta);
        self.committed = true;
        Ok(event)
    }
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // A short unlink, possibly on an async worker thread: cheaper than a blocking-pool
        // round trip, and it must happen even when the upload future is dropped mid-way.
        remove_if_present(&self.part_path());
        // Only a commit that failed half-way leaves these; no other claim can hold the token.
        remove_if_present(&self.store.meta_path(&self.token));
        remove_if_present(&self.store.file_path(&self.token));
        self.store.lock().uploading.remove(&self.token);
    }
}

fn remove_if_present(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests;
