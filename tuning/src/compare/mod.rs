//! `compare`: the same load under several profiles, side by side. For each profile: a fresh
//! network namespace (`rkt-<profile>-<pid>`, lo up), the profile applied inside it (host-wide
//! knobs only with `allow_host`, restored afterwards), `rookery` started inside it,
//! `rookery-load SCENARIO ARGS` run inside it against it, then rookery-load's summary.json,
//! slab growth, /proc/net/netstat + snmp deltas of the namespace and rookery's RSS and heap
//! are collected. The report (markdown + JSON) lands in the out directory.
//!
//! Not here: building binaries (they are looked up, see `locate_binaries`), and any change to
//! the host outside the namespaces unless `allow_host`.
//!
//! Invariants: every namespace is deleted and every started process is killed by pid, also on
//! error (guards in `run`); each run is bounded by `timeout_s`; profiles run one after the
//! other, never concurrently, so they do not share CPU.

mod collect;
mod report;
mod run;
mod summary;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::profile::Profile;
use crate::TuneError;

pub use crate::util::utc_stamp;
pub use collect::{parse_counters, parse_metrics, parse_slabinfo};
pub use report::{markdown, write_report};
pub use run::ProfileRun;
pub use summary::LoadFigures;

/// Everything `compare` needs.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Profile names or paths, in report order.
    pub profiles: Vec<String>,
    /// `(profile, key, value)` overrides (`--set PROFILE:KEY=VALUE`).
    pub overrides: Vec<(String, String, String)>,
    /// Where the report and each run's files go.
    pub out_dir: PathBuf,
    /// Directory holding `rookery` and `rookery-load` (None: next to this executable).
    pub bin_dir: Option<PathBuf>,
    /// Also apply host-wide knobs (restored after each profile).
    pub allow_host: bool,
    /// Upper bound on one rookery-load run.
    pub timeout_s: u64,
    /// Extra arguments for rookery (e.g. `--shards 1`).
    pub server_args: Vec<String>,
    /// `SCENARIO ARGS...` for rookery-load.
    pub load_args: Vec<String>,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    pub command: Vec<String>,
    pub started_utc: String,
    pub host: HostInfo,
    pub runs: Vec<ProfileRun>,
}

/// What the runs ran on.
#[derive(Clone, Debug, Serialize)]
pub struct HostInfo {
    pub kernel: String,
    pub cpus: usize,
    pub mem_total_bytes: u64,
    pub loadavg_at_start: String,
    pub git_commit: Option<String>,
    pub rookery: PathBuf,
    pub rookery_load: PathBuf,
}

/// Finds `rookery` and `rookery-load`: `bin_dir` if given, else `$ROOKERY_BIN_DIR`, the
/// directory of this executable and its parent (cargo puts test binaries in `deps/`),
/// `$CARGO_TARGET_DIR/release`, `./target/release`, `../target/release`.
pub fn locate_binaries(bin_dir: Option<&Path>) -> Result<(PathBuf, PathBuf), TuneError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = bin_dir {
        dirs.push(d.to_path_buf());
    } else {
        if let Some(d) = std::env::var_os("ROOKERY_BIN_DIR") {
            dirs.push(PathBuf::from(d));
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(d) = exe.parent() {
                dirs.push(d.to_path_buf());
                if d.file_name().is_some_and(|n| n == "deps") {
                    dirs.extend(d.parent().map(Path::to_path_buf));
                }
            }
        }
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            dirs.push(PathBuf::from(t).join("release"));
        }
        dirs.push(PathBuf::from("target/release"));
        dirs.push(PathBuf::from("../target/release"));
    }
    let find = |name: &str| -> Result<PathBuf, TuneError> {
        dirs.iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| TuneError::BinaryMissing {
                name: name.to_string(),
                searched: dirs.clone(),
            })
    };
    // Both from the same directory when possible, so they come from the same build.
    let server = find("rookery")?;
    let sibling = server.with_file_name("rookery-load");
    let load = if sibling.is_file() {
        sibling
    } else {
        find("rookery-load")?
    };
    Ok((server, load))
}

/// Runs the comparison and writes `report.md` and `report.json` into `opts.out_dir`.
pub fn compare(opts: &CompareOptions, command: Vec<String>) -> Result<CompareReport, TuneError> {
    if opts.profiles.is_empty() || opts.load_args.is_empty() {
        return Err(TuneError::Unsupported(
            "compare needs at least one profile and `-- SCENARIO ARGS`".to_string(),
        ));
    }
    let (server, load) = locate_binaries(opts.bin_dir.as_deref())?;
    let mut profiles = Vec::new();
    for spec in &opts.profiles {
        let mut p = Profile::resolve(spec)?;
        for (_, key, value) in opts.overrides.iter().filter(|(name, _, _)| name == spec) {
            p.set_override(key, value);
        }
        profiles.push(p);
    }
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| TuneError::io(format!("creating {}", opts.out_dir.display()), e))?;
    let host = host_info(&server, &load);
    let started_utc = crate::util::utc_stamp();
    let mut runs = Vec::new();
    for (spec, profile) in opts.profiles.iter().zip(&profiles) {
        let overrides = opts
            .overrides
            .iter()
            .filter(|(name, _, _)| name == spec)
            .map(|(_, k, v)| format!("{k}={v}"))
            .collect();
        eprintln!("rookery-tune compare: profile {} ...", profile.name);
        let r = run::run_profile(profile, overrides, opts, &server, &load);
        eprintln!(
            "rookery-tune compare: profile {} done{}",
            profile.name,
            r.error
                .as_deref()
                .map_or(String::new(), |e| format!(" with error: {e}"))
        );
        runs.push(r);
    }
    let report = CompareReport {
        command,
        started_utc,
        host,
        runs,
    };
    write_report(&report, &opts.out_dir)?;
    Ok(report)
}

fn host_info(server: &Path, load: &Path) -> HostInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let git_commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    HostInfo {
        kernel: read("/proc/sys/kernel/osrelease"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_bytes: collect::kib_field(&read("/proc/meminfo"), "MemTotal").unwrap_or(0),
        loadavg_at_start: read("/proc/loadavg"),
        git_commit,
        rookery: server.to_path_buf(),
        rookery_load: load.to_path_buf(),
    }
}
