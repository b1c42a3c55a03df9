//! `apply`, `revert` and `diff`: write a profile's sysctls (in a network namespace or the
//! caller's), read every value back, and keep the previous values in a backup file that
//! `revert` writes back; compare a host with a profile.
//!
//! Not here: limits of other processes (a profile's `# limit:` lines are reported with the
//! line to put in systemd or limits.conf) and FreeBSD writes (check and diff only there).
//!
//! Invariants: host-wide knobs are never written unless `allow_host`; the backup is written
//! before the first sysctl write and keeps the values from before the *first* apply (a second
//! apply adds only keys it did not hold), so revert always returns to the original state; a
//! value the kernel refuses or changes is reported per setting, never dropped.

mod backup;
mod diff;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::knobs::{self, Os, Scope};
use crate::procfs::{read_sysctl, values_match, write_sysctl};
use crate::profile::{Profile, Section};
use crate::{netns, TuneError};

pub use backup::{backup_path, default_state_dir};
pub use diff::{diff, DiffRow, DiffTable};

/// Where and how to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Apply per-namespace knobs inside this netns (`ip netns` name); None = caller's netns.
    pub netns: Option<String>,
    /// Also write host-wide knobs (in the root namespace, where they live).
    pub allow_host: bool,
    /// Directory of the backup files.
    pub state_dir: PathBuf,
}

impl ApplyOptions {
    /// Per-namespace knobs only, backups under `default_state_dir()`.
    pub fn new(netns: Option<String>) -> ApplyOptions {
        ApplyOptions {
            netns,
            allow_host: false,
            state_dir: default_state_dir(),
        }
    }
}

/// What happened to one setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Written and read back equal.
    Set,
    /// Already had the value; not written.
    Unchanged,
    /// Written, but the kernel holds another value.
    Clamped { got: String },
    /// The write failed.
    Refused { error: String },
    /// Host-wide knob, not written without allow_host.
    SkippedHostWide,
    /// Boot-time tunable (loader.conf): not a run-time write.
    SkippedBoot,
    /// No such sysctl in this kernel or namespace.
    Missing,
}

impl Outcome {
    /// True for outcomes an operator must look at.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Outcome::Clamped { .. } | Outcome::Refused { .. } | Outcome::Missing
        )
    }
}

/// One setting's before/after.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub key: String,
    pub wanted: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub scope: Scope,
    /// `netns NAME` or `host` (the caller's namespace).
    pub place: String,
    pub outcome: Outcome,
}

/// The result of `apply` or `revert`.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    pub action: String,
    pub netns: Option<String>,
    pub backup: PathBuf,
    pub settings: Vec<Applied>,
    /// Lines about `# limit:` directives (not applied, with what to do).
    pub notes: Vec<String>,
}

impl ApplyReport {
    /// Settings refused, clamped or missing.
    pub fn problems(&self) -> usize {
        self.settings
            .iter()
            .filter(|s| s.outcome.is_problem())
            .count()
    }
}

/// A setting planned for writing: which namespace it goes to.
struct Planned {
    key: String,
    wanted: String,
    scope: Scope,
    in_netns: bool,
}

/// Applies `profile` (Linux) as `opts` says; see the module invariants.
pub fn apply(profile: &Profile, opts: &ApplyOptions) -> Result<ApplyReport, TuneError> {
    if profile.os != Os::Linux || Os::current() != Os::Linux {
        return Err(TuneError::Unsupported(
            "apply writes Linux /proc/sys; on FreeBSD put the profile's parts into \
             /boot/loader.conf and /etc/sysctl.conf (rookery-tune show freebsd/NAME)"
                .to_string(),
        ));
    }
    if let Some(ns) = &opts.netns {
        if !netns::exists(ns) {
            return Err(TuneError::Netns {
                name: ns.clone(),
                reason: "does not exist".into(),
            });
        }
    }
    let (mut settings, plan) = plan_settings(profile, opts)?;
    let backup = backup_path(&opts.state_dir, opts.netns.as_deref());
    settings.extend(write_plan(opts, &plan, &profile.name, &backup)?);
    let notes = profile
        .limits
        .iter()
        .map(|l| limit_note(&l.resource, l.value))
        .collect();
    Ok(ApplyReport {
        action: format!("apply {}", profile.name),
        netns: opts.netns.clone(),
        backup,
        settings,
        notes,
    })
}

/// Splits a profile into settings skipped (reported with their current value) and settings
/// to write, each with the namespace it goes to.
fn plan_settings(
    profile: &Profile,
    opts: &ApplyOptions,
) -> Result<(Vec<Applied>, Vec<Planned>), TuneError> {
    let place_ns = opts
        .netns
        .as_deref()
        .map_or("host".to_string(), |n| format!("netns {n}"));
    let mut skipped = Vec::new();
    let mut plan = Vec::new();
    for s in &profile.settings {
        let scope = profile.scope(s);
        let skip = match (s.section, scope) {
            (Section::Loader, _) | (_, Scope::Boot) => Some(Outcome::SkippedBoot),
            (_, Scope::HostWide) if !opts.allow_host => Some(Outcome::SkippedHostWide),
            _ => None,
        };
        let in_netns = opts.netns.is_some() && scope != Scope::HostWide;
        let Some(outcome) = skip else {
            plan.push(Planned {
                key: s.key.clone(),
                wanted: s.value.clone(),
                scope,
                in_netns,
            });
            continue;
        };
        let before = read_in(opts, in_netns, std::slice::from_ref(&s.key))?
            .pop()
            .flatten();
        skipped.push(Applied {
            key: s.key.clone(),
            wanted: s.value.clone(),
            after: before.clone(),
            before,
            scope,
            place: if in_netns {
                place_ns.clone()
            } else {
                "host".to_string()
            },
            outcome,
        });
    }
    Ok((skipped, plan))
}

/// Reads the current values, saves them to the backup, then writes and reads back.
fn write_plan(
    opts: &ApplyOptions,
    plan: &[Planned],
    profile: &str,
    backup: &Path,
) -> Result<Vec<Applied>, TuneError> {
    let (ns_items, host_items): (Vec<&Planned>, Vec<&Planned>) =
        plan.iter().partition(|p| p.in_netns);
    let ns_keys: Vec<String> = ns_items.iter().map(|p| p.key.clone()).collect();
    let host_keys: Vec<String> = host_items.iter().map(|p| p.key.clone()).collect();
    let ns_before = read_in(opts, true, &ns_keys)?;
    let host_before = read_in(opts, false, &host_keys)?;
    let mut entries = Vec::new();
    for (items, befores, in_ns) in [
        (&ns_items, &ns_before, true),
        (&host_items, &host_before, false),
    ] {
        for (p, before) in items.iter().zip(befores.iter()) {
            if let Some(value) = before {
                entries.push(backup::Entry {
                    key: p.key.clone(),
                    value: value.clone(),
                    in_netns: in_ns,
                });
            }
        }
    }
    backup::merge_and_save(backup, opts.netns.as_deref(), profile, entries)?;
    let ns_pairs: Vec<(String, String)> = ns_items
        .iter()
        .map(|p| (p.key.clone(), p.wanted.clone()))
        .collect();
    let host_pairs: Vec<(String, String)> = host_items
        .iter()
        .map(|p| (p.key.clone(), p.wanted.clone()))
        .collect();
    let [(ns_after, place_ns), (host_after, place_host)] =
        write_sides(opts, &ns_pairs, &host_pairs)?;
    let mut out = Vec::new();
    for (items, befores, afters, place) in [
        (&ns_items, &ns_before, ns_after, place_ns),
        (&host_items, &host_before, host_after, place_host),
    ] {
        for ((p, before), (_, after, outcome)) in items.iter().zip(befores).zip(afters) {
            out.push(Applied {
                key: p.key.clone(),
                wanted: p.wanted.clone(),
                before: before.clone(),
                after,
                scope: p.scope,
                place: place.clone(),
                outcome,
            });
        }
    }
    Ok(out)
}

/// Restores the values saved by `apply` for `opts.netns` and deletes the backup when every
/// value went back.
pub fn revert(opts: &ApplyOptions) -> Result<ApplyReport, TuneError> {
    let path = backup_path(&opts.state_dir, opts.netns.as_deref());
    let saved = backup::load(&path)?.ok_or_else(|| TuneError::Backup {
        path: path.clone(),
        reason: "no backup: nothing was applied there, or it was already reverted".to_string(),
    })?;
    let pairs = |in_ns: bool| -> Vec<(String, String)> {
        saved
            .entries
            .iter()
            .filter(|e| e.in_netns == in_ns)
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    };
    let (ns_pairs, host_pairs) = (pairs(true), pairs(false));
    let [(ns_after, place_ns), (host_after, place_host)] =
        write_sides(opts, &ns_pairs, &host_pairs)?;
    let mut settings = Vec::new();
    for (pairs, afters, place) in [
        (ns_pairs, ns_after, place_ns),
        (host_pairs, host_after, place_host),
    ] {
        for ((key, wanted), (before, after, outcome)) in pairs.into_iter().zip(afters) {
            let scope = knobs::scope_of(Os::Linux, &key);
            settings.push(Applied {
                key,
                wanted,
                before,
                after,
                scope,
                place: place.clone(),
                outcome,
            });
        }
    }
    let report = ApplyReport {
        action: format!("revert {}", saved.profile),
        netns: opts.netns.clone(),
        backup: path.clone(),
        settings,
        notes: Vec::new(),
    };
    if report.problems() == 0 {
        std::fs::remove_file(&path)
            .map_err(|e| TuneError::io(format!("removing {}", path.display()), e))?;
    }
    Ok(report)
}

/// Reads `keys` in the netns (when `in_netns` and one is set) or the caller's namespace;
/// `None` for a key that does not exist there.
fn read_in(
    opts: &ApplyOptions,
    in_netns: bool,
    keys: &[String],
) -> Result<Vec<Option<String>>, TuneError> {
    let read = || {
        keys.iter()
            .map(|k| read_sysctl(Path::new("/"), k).ok())
            .collect()
    };
    match (&opts.netns, in_netns && !keys.is_empty()) {
        (Some(ns), true) => netns::in_netns(ns, read),
        _ => Ok(read()),
    }
}

/// Writes `(key, value)` pairs where `read_in` would read them; returns (read back, outcome).
/// Writes `ns_pairs` where the namespace's knobs live and `host_pairs` on the host; returns
/// each side's outcomes with its place as the report names it (namespace side first).
fn write_sides(
    opts: &ApplyOptions,
    ns_pairs: &[(String, String)],
    host_pairs: &[(String, String)],
) -> Result<[(Vec<Written>, String); 2], TuneError> {
    let ns_after = write_in(opts, true, ns_pairs)?;
    let host_after = write_in(opts, false, host_pairs)?;
    let place_ns = opts
        .netns
        .as_deref()
        .map_or("host".to_string(), |n| format!("netns {n}"));
    Ok([(ns_after, place_ns), (host_after, "host".to_string())])
}

fn write_in(
    opts: &ApplyOptions,
    in_netns: bool,
    pairs: &[(String, String)],
) -> Result<Vec<Written>, TuneError> {
    let write = || pairs.iter().map(|(k, v)| write_checked(k, v)).collect();
    match (&opts.netns, in_netns && !pairs.is_empty()) {
        (Some(ns), true) => netns::in_netns(ns, write),
        _ => Ok(write()),
    }
}

/// One write: the value before, the value read back after, and the outcome.
type Written = (Option<String>, Option<String>, Outcome);

/// Writes one sysctl unless it already holds the value, then reads it back.
fn write_checked(key: &str, wanted: &str) -> Written {
    let root = Path::new("/");
    let before = match read_sysctl(root, key) {
        Ok(v) => v,
        Err(_) => return (None, None, Outcome::Missing),
    };
    if values_match(wanted, &before) {
        return (Some(before.clone()), Some(before), Outcome::Unchanged);
    }
    let outcome = if let Err(e) = write_sysctl(key, wanted) {
        Outcome::Refused {
            error: e.to_string(),
        }
    } else {
        match read_sysctl(root, key) {
            Ok(got) if values_match(wanted, &got) => Outcome::Set,
            Ok(got) => Outcome::Clamped { got },
            Err(e) => Outcome::Refused {
                error: format!("read back failed: {e}"),
            },
        }
    };
    (Some(before), read_sysctl(root, key).ok(), outcome)
}

/// What to do about a `# limit:` line (apply cannot set another process's limits).
fn limit_note(resource: &str, value: u64) -> String {
    let hard =
        crate::check::NofileLimits::current().map_or("unknown".to_string(), |l| l.hard.to_string());
    format!(
        "limit {resource} {value}: not set by apply (per process): LimitNOFILE={value} in the \
         systemd unit or `* - nofile {value}` in /etc/security/limits.conf; this shell's hard \
         limit is {hard}"
    )
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self
            .netns
            .as_deref()
            .map_or(String::new(), |n| format!(" in netns {n}"));
        writeln!(f, "{}{ns} (backup: {})", self.action, self.backup.display())?;
        for s in &self.settings {
            let before = s.before.as_deref().unwrap_or("-");
            let what = match &s.outcome {
                Outcome::Set => format!("set ({before} -> {})", s.wanted),
                Outcome::Unchanged => "unchanged (already so)".to_string(),
                Outcome::Clamped { got } => {
                    format!("CLAMPED: wanted {}, kernel holds {got}", s.wanted)
                }
                Outcome::Refused { error } => format!("REFUSED: {error} (wanted {})", s.wanted),
                Outcome::SkippedHostWide => format!(
                    "skipped: host-wide (now {before}, profile {}); pass --allow-host to write it",
                    s.wanted
                ),
                Outcome::SkippedBoot => "skipped: boot-time tunable (loader.conf)".to_string(),
                Outcome::Missing => "MISSING: no such sysctl here".to_string(),
            };
            writeln!(
                f,
                "  {:<36} [{}; {}] {what}",
                s.key,
                s.place,
                s.scope.label()
            )?;
        }
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        write!(f, "{} problem(s)", self.problems())
    }
}
