//! Rebuilding the index at start from what is on disk.
//!
//! What it does: removes every temp file (nothing is uploading before the server starts);
//! reads each `files/<token>.meta` sidecar and indexes its file if the bytes are there with
//! the recorded size; removes what cannot be served: a file without a sidecar (a crash between
//! the two renames of a commit), a sidecar without its file, an unreadable sidecar or a file
//! of the wrong size (each logged with its path). Names that are not ours are left alone and
//! logged once each.
//!
//! What it does not do: check contents (there is no checksum; the sizes are compared).

use std::collections::HashSet;
use std::fs;
use std::io;

use rookery_upload::SlotToken;
use tracing::warn;

use super::sidecar::FileMeta;
use super::{remove_if_present, FileStore};

/// What the start-up scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub files: u64,
    pub bytes: u64,
    /// Temp files of uploads cut short by the last stop.
    pub temps_removed: u64,
    /// Files or sidecars without their other half, or damaged.
    pub orphans_removed: u64,
}

pub(super) fn rebuild(store: &FileStore) -> io::Result<ScanReport> {
    let mut report = ScanReport::default();
    for entry in fs::read_dir(&store.tmp_dir)? {
        remove_if_present(&entry?.path());
        report.temps_removed += 1;
    }
    let mut data = HashSet::new();
    let mut sidecars = HashSet::new();
    for entry in fs::read_dir(&store.files_dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        match name.strip_suffix(".meta") {
            Some(stem) => match SlotToken::parse(stem) {
                Some(token) => sidecars.insert(token),
                None => foreign(store, &name),
            },
            None => match SlotToken::parse(&name) {
                Some(token) => data.insert(token),
                None => foreign(store, &name),
            },
        };
    }
    for token in &sidecars {
        match load(store, token, data.contains(token)) {
            Some(meta) => {
                report.files += 1;
                report.bytes += meta.size_bytes;
                store.lock().insert(*token, meta);
            }
            None => {
                remove_if_present(&store.meta_path(token));
                remove_if_present(&store.file_path(token));
                report.orphans_removed += 1;
            }
        }
    }
    for token in data.difference(&sidecars) {
        warn!(
            "{}: an uploaded file without its sidecar (cut short while committing); removed",
            store.file_path(token).display()
        );
        remove_if_present(&store.file_path(token));
        report.orphans_removed += 1;
    }
    Ok(report)
}

/// The sidecar of `token` if it can be served: parsed, and its file present at its size.
fn load(store: &FileStore, token: &SlotToken, has_data: bool) -> Option<FileMeta> {
    let path = store.meta_path(token);
    if !has_data {
        warn!("{}: a sidecar without its file; removed", path.display());
        return None;
    }
    let meta = fs::read_to_string(&path)
        .ok()
        .and_then(|text| FileMeta::from_sidecar(&text));
    let Some(meta) = meta else {
        warn!(
            "{}: unreadable sidecar; it and its file removed",
            path.display()
        );
        return None;
    };
    let on_disk = fs::metadata(store.file_path(token)).map(|m| m.len());
    if on_disk.as_ref().ok() != Some(&meta.size_bytes) {
        warn!(
            "{}: {:?} bytes on disk, {} recorded; removed",
            store.file_path(token).display(),
            on_disk.ok(),
            meta.size_bytes
        );
        return None;
    }
    Some(meta)
}

fn foreign(store: &FileStore, name: &str) -> bool {
    warn!(
        "{}: not an upload of ours; left alone",
        store.files_dir.join(name).display()
    );
    false
}
