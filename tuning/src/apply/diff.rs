//! `diff`: this host against a profile, one row per setting (and per limit): host value,
//! profile value, scope, and whether they agree.
//!
//! Not here: writing. Net values are those of the calling thread's network namespace.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::knobs::{Os, Scope};
use crate::procfs::values_match;
use crate::profile::Profile;

/// One row of a diff.
#[derive(Clone, Debug, Serialize)]
pub struct DiffRow {
    pub key: String,
    /// None: not readable here (absent in this namespace, or the profile is for another OS).
    pub host: Option<String>,
    pub profile: String,
    pub scope: Scope,
    pub same: bool,
}

/// Compares the host under `root` (`/` for the live host) with `profile`.
pub fn diff(profile: &Profile, root: &Path) -> Vec<DiffRow> {
    let mut rows: Vec<DiffRow> = profile
        .settings
        .iter()
        .map(|s| {
            let host = read_host(profile.os, root, &s.key);
            let same = host.as_deref().is_some_and(|h| values_match(&s.value, h));
            DiffRow {
                key: s.key.clone(),
                host,
                profile: s.value.clone(),
                scope: profile.scope(s),
                same,
            }
        })
        .collect();
    if let Some(want) = profile.nofile() {
        let hard = crate::check::NofileLimits::current().ok().map(|l| l.hard);
        rows.push(DiffRow {
            key: "RLIMIT_NOFILE (hard, this process)".to_string(),
            host: hard.map(|h| h.to_string()),
            profile: want.to_string(),
            scope: Scope::PerProcess,
            same: hard.is_some_and(|h| h >= want),
        });
    }
    rows
}

fn read_host(os: Os, root: &Path, key: &str) -> Option<String> {
    if os != Os::current() {
        return None;
    }
    #[cfg(target_os = "freebsd")]
    {
        let _ = root;
        crate::sys::sysctl_number(key).ok().map(|v| v.to_string())
    }
    #[cfg(not(target_os = "freebsd"))]
    crate::procfs::read_sysctl(root, key).ok()
}

/// Prints rows as an aligned table.
pub struct DiffTable<'a>(pub &'a [DiffRow]);

impl fmt::Display for DiffTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.0.iter().map(|r| r.key.len()).max().unwrap_or(4).max(4);
        writeln!(
            f,
            "{:<width$}  {:<24}  {:<24}  {:<16}  same",
            "knob", "host", "profile", "scope"
        )?;
        for r in self.0 {
            let host = r.host.as_deref().unwrap_or("-");
            let mark = if r.same { "yes" } else { "NO" };
            writeln!(
                f,
                "{:<width$}  {host:<24}  {:<24}  {:<16}  {mark}",
                r.key,
                r.profile,
                r.scope.label()
            )?;
        }
        let differ = self.0.iter().filter(|r| !r.same).count();
        write!(f, "{differ} of {} differ", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_against_the_live_host_marks_differences() {
        let text = "# about: t\n# w\nfs.file-max = 1\n# w\nnet.core.somaxconn = 4096\n";
        let p = Profile::parse("t", Os::Linux, text).unwrap();
        let rows = diff(&p, Path::new("/"));
        assert_eq!(rows.len(), 2);
        assert!(!rows[0].same, "file-max is never 1");
        let somaxconn = crate::procfs::read_sysctl(Path::new("/"), "net.core.somaxconn").unwrap();
        assert_eq!(rows[1].same, somaxconn == "4096");
        assert_eq!(rows[1].scope, Scope::PerNamespace);
        let shown = DiffTable(&rows).to_string();
        assert!(
            shown.contains("fs.file-max") && shown.contains("host-wide"),
            "{shown}"
        );
    }
}
