//! The backup file of `apply`: the values a namespace (or the host) had before the first apply,
//! as JSON under the state directory (`/var/lib/rookery-tune/backup-<netns|host>.json`).
//!
//! Not here: writing sysctls. Invariant: merging never replaces a saved value, so the file
//! always holds the state from before the first apply since the last revert.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::TuneError;

/// One saved value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Saved from inside the netns (true) or the caller's namespace (host-wide knobs).
    pub in_netns: bool,
}

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Backup {
    pub netns: Option<String>,
    /// Profiles applied since the backup was started, comma-separated.
    pub profile: String,
    pub created_unix_s: u64,
    pub entries: Vec<Entry>,
}

/// The state directory: `$ROOKERY_TUNE_STATE_DIR` or `/var/lib/rookery-tune`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("ROOKERY_TUNE_STATE_DIR")
        .map_or_else(|| PathBuf::from("/var/lib/rookery-tune"), PathBuf::from)
}

/// `backup-<netns>.json`, or `backup-host.json` without a netns.
pub fn backup_path(state_dir: &Path, netns: Option<&str>) -> PathBuf {
    state_dir.join(format!("backup-{}.json", netns.unwrap_or("host")))
}

/// Reads a backup; Ok(None) when there is none.
pub fn load(path: &Path) -> Result<Option<Backup>, TuneError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TuneError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TuneError::Backup {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Adds `entries` whose keys the backup does not hold yet, then writes it (via a temp file and
/// rename, so a crash never leaves half a backup).
pub fn merge_and_save(
    path: &Path,
    netns: Option<&str>,
    profile: &str,
    entries: Vec<Entry>,
) -> Result<(), TuneError> {
    let mut backup = load(path)?.unwrap_or_else(|| Backup {
        netns: netns.map(str::to_string),
        profile: String::new(),
        created_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        entries: Vec::new(),
    });
    for e in entries {
        if !backup
            .entries
            .iter()
            .any(|old| old.key == e.key && old.in_netns == e.in_netns)
        {
            backup.entries.push(e);
        }
    }
    backup.profile = if backup.profile.is_empty() {
        profile.to_string()
    } else if backup.profile.split(',').any(|p| p == profile) {
        backup.profile.clone()
    } else {
        format!("{},{profile}", backup.profile)
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| TuneError::io(format!("creating {}", dir.display()), e))?;
    let json = serde_json::to_string_pretty(&backup).map_err(|e| TuneError::Backup {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)
        .map_err(|e| TuneError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| TuneError::io(format!("renaming to {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
            in_netns: true,
        }
    }

    #[test]
    fn merge_keeps_the_first_saved_value() {
        let dir = std::env::temp_dir().join(format!("rkt-backup-{}", std::process::id()));
        let path = backup_path(&dir, Some("ns1"));
        assert!(path.ends_with("backup-ns1.json"));
        merge_and_save(&path, Some("ns1"), "a", vec![entry("x", "1")]).unwrap();
        merge_and_save(
            &path,
            Some("ns1"),
            "b",
            vec![entry("x", "2"), entry("y", "3")],
        )
        .unwrap();
        merge_and_save(&path, Some("ns1"), "a", vec![entry("x", "4")]).unwrap();
        let b = load(&path).unwrap().unwrap();
        assert_eq!(b.entries, vec![entry("x", "1"), entry("y", "3")]);
        assert_eq!(b.profile, "a,b", "a profile applied twice is named once");
        assert_eq!(b.netns.as_deref(), Some("ns1"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&path).unwrap().is_none());
    }
}
