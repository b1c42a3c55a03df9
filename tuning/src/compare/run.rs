//! One profile's run inside its own network namespace: apply, start rookery, wait until its
//! metrics answer, snapshot, run rookery-load while a sampler thread (in the namespace) keeps
//! the sample with the most sessions, snapshot again, stop everything.
//!
//! Not here: the report layout (see `report`). Invariants: the namespace guard is created
//! before anything is started in it and dropped after every process in it was killed (drop
//! order: children first); only pids of children this function spawned are signalled.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::collect::{self, fetch_metrics, parse_counters, parse_slabinfo, rss_bytes};
use super::summary::{find_summary_dir, read_summary, LoadFigures};
use super::CompareOptions;
use crate::apply::{apply, revert, ApplyOptions, ApplyReport};
use crate::netns::{in_netns, Netns};
use crate::profile::Profile;
use crate::sys::{signal, Signal};
use crate::TuneError;

/// rookery's client listener inside each namespace (each netns has its own loopback).
const LISTEN: &str = "127.0.0.1:5222";
/// rookery's metrics listener inside each namespace.
const ADMIN: &str = "127.0.0.1:9100";
/// How long rookery may take to answer /metrics after start.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Grace between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Sampler period.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Everything measured for one profile.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProfileRun {
    pub profile: String,
    pub about: String,
    pub netns: String,
    pub overrides: Vec<String>,
    pub applied: Option<ApplyReport>,
    pub server_command: Vec<String>,
    pub load_command: Vec<String>,
    pub load_exit: Option<i32>,
    pub load_dir: Option<PathBuf>,
    pub load: Option<LoadFigures>,
    pub peak_conns: u64,
    pub peak_sessions: u64,
    pub rss_before_bytes: u64,
    pub rss_peak_bytes: u64,
    pub heap_peak_bytes: u64,
    /// Growth of the socket-related slab caches (active_objs x objsize) at the peak sample.
    pub slab_socket_delta_bytes: i64,
    /// Growth of meminfo `Slab` at the peak sample.
    pub slab_meminfo_delta_bytes: i64,
    pub slab_per_cache: BTreeMap<String, i64>,
    /// netstat + snmp deltas over the load run, read in the namespace.
    pub counters: BTreeMap<String, i64>,
    pub samples: usize,
    /// Conns rookery accepted and closed at once because its fd limit was reached.
    pub refused_conns: u64,
    /// The I/O backend rookery logged at start (uring or poll).
    pub server_backend: Option<String>,
    pub error: Option<String>,
}

/// A started child, stopped (TERM, then KILL) when dropped.
struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the child if it still runs; returns its exit status.
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = signal(child.id(), Signal::Term);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = signal(child.id(), Signal::Kill);
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a scratch directory on drop.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one profile; errors end up in `ProfileRun::error`, never leak a namespace or process.
pub fn run_profile(
    profile: &Profile,
    overrides: Vec<String>,
    opts: &CompareOptions,
    server: &Path,
    load: &Path,
) -> ProfileRun {
    let safe: String = profile
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let mut run = ProfileRun {
        profile: profile.name.clone(),
        about: profile.about.clone(),
        netns: format!("rkt-{safe}-{}", std::process::id()),
        overrides,
        ..ProfileRun::default()
    };
    let mut dir = opts.out_dir.join(&safe);
    let mut n = 2;
    while dir.exists() {
        dir = opts.out_dir.join(format!("{safe}-{n}"));
        n += 1;
    }
    if let Err(e) = try_run(&mut run, profile, opts, server, load, &dir) {
        run.error = Some(e.to_string());
    }
    run
}

fn try_run(
    run: &mut ProfileRun,
    profile: &Profile,
    opts: &CompareOptions,
    server: &Path,
    load: &Path,
    dir: &Path,
) -> Result<(), TuneError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| TuneError::io(format!("creating {}", dir.display()), e))?;
    let scratch = ScratchDir(std::env::temp_dir().join(&run.netns));
    std::fs::create_dir_all(&scratch.0)
        .map_err(|e| TuneError::io(format!("creating {}", scratch.0.display()), e))?;
    let ns = Netns::create(&run.netns)?;
    let apply_opts = ApplyOptions {
        netns: Some(ns.name().to_string()),
        allow_host: opts.allow_host,
        state_dir: scratch.0.join("state"),
    };
    run.applied = Some(apply(profile, &apply_opts)?);
    let result = serve_and_load(run, opts, server, load, dir, &scratch.0, ns.name());
    if opts.allow_host {
        // Host-wide values were written in the root namespace: put them back now.
        if let Err(e) = revert(&apply_opts) {
            eprintln!("rookery-tune compare: restoring host-wide values failed: {e}");
        }
    }
    drop(ns);
    result
}

/// `ip netns exec NS PROGRAM ARGS` with output to files in `dir`.
fn spawn_in(
    ns: &str,
    program: &Path,
    args: &[String],
    dir: &Path,
    tag: &str,
) -> Result<ChildGuard, TuneError> {
    let out = |ext: &str| {
        let path = dir.join(format!("{tag}.{ext}"));
        File::create(&path).map_err(|e| TuneError::io(format!("creating {}", path.display()), e))
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program).args(args);
    cmd.stdin(Stdio::null())
        .stdout(out("stdout")?)
        .stderr(out("stderr")?);
    let shown = format!(
        "ip netns exec {ns} {} {}",
        program.display(),
        args.join(" ")
    );
    // `ip netns exec` execs the program in place, so the pid is the program's.
    let child = cmd.spawn().map_err(|e| TuneError::Command {
        command: shown,
        reason: e.to_string(),
    })?;
    Ok(ChildGuard { child: Some(child) })
}

/// A moment of the run (the sampler keeps the one with the most sessions).
#[derive(Clone, Debug, Default)]
struct Sample {
    conns: f64,
    sessions: f64,
    heap_bytes: f64,
    rss_bytes: u64,
    slab: BTreeMap<String, u64>,
    meminfo_slab: u64,
    /// rookery_refused_conns_total: conns accepted and closed at once (fd limit reached).
    refused_total: f64,
}

/// Takes a sample; metrics are fetched by the calling thread, which must be in the netns.
fn sample(pid: u32, admin: SocketAddr) -> Option<Sample> {
    let m = fetch_metrics(admin, Duration::from_secs(2)).ok()?;
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Some(Sample {
        conns: get("rookery_conns"),
        sessions: get("rookery_sessions"),
        heap_bytes: get("rookery_router_heap_bytes"),
        rss_bytes: rss_bytes(pid).unwrap_or(0),
        slab: parse_slabinfo(&std::fs::read_to_string("/proc/slabinfo").unwrap_or_default()),
        meminfo_slab: collect::kib_field(&meminfo, "Slab").unwrap_or(0),
        refused_total: get("rookery_refused_conns_total"),
    })
}

fn counters_of(pid: u32) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for file in ["netstat", "snmp"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        out.extend(parse_counters(&text));
    }
    out
}

fn serve_and_load(
    run: &mut ProfileRun,
    opts: &CompareOptions,
    server: &Path,
    load: &Path,
    dir: &Path,
    scratch: &Path,
    ns: &str,
) -> Result<(), TuneError> {
    let admin: SocketAddr = ADMIN
        .parse()
        .map_err(|_| TuneError::Unsupported("admin address".into()))?;
    let mut server_args: Vec<String> = [
        "--listen",
        LISTEN,
        "--domain",
        "example.test",
        "--auth",
        "open",
        "--allow-open-auth",
        "--admin",
        ADMIN,
        "--durability",
        "memory",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    server_args.push(scratch.join("data").display().to_string());
    server_args.extend(opts.server_args.iter().cloned());
    run.server_command = server_args.clone();
    let mut rookery = spawn_in(ns, server, &server_args, dir, "rookery")?;
    let pid = rookery.pid();
    let before = wait_ready(&mut rookery, ns, admin, dir)?;
    let counters_before = counters_of(pid);
    let load_args = load_arguments(opts, dir)?;
    run.load_command = load_args.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, ns) = (Arc::clone(&stop), ns.to_string());
        std::thread::spawn(move || in_netns(&ns, || sample_until(&stop, pid, admin)))
    };
    let load_result = run_load(ns, load, &load_args, dir, opts.timeout_s);
    stop.store(true, Ordering::Release);
    let peak = sampler.join().ok().and_then(Result::ok);
    let counters_after = counters_of(pid);
    let last = in_netns(ns, || sample(pid, admin)).ok().flatten();
    run.refused_conns = last.map_or(0, |l| {
        (l.refused_total - before.refused_total).max(0.0) as u64
    });
    rookery.stop();
    run.server_backend = logged_backend(&dir.join("rookery.stderr"));
    run.load_exit = load_result?;
    run.counters = counters_after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - counters_before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect();
    if let Some((peak, count)) = peak {
        record_peak(run, &before, &peak, count);
    }
    run.load_dir = find_summary_dir(&dir.join("load"));
    run.load = run.load_dir.as_deref().and_then(read_summary);
    Ok(())
}

fn wait_ready(
    rookery: &mut ChildGuard,
    ns: &str,
    admin: SocketAddr,
    dir: &Path,
) -> Result<Sample, TuneError> {
    let start = Instant::now();
    let pid = rookery.pid();
    loop {
        if let Some(status) = rookery.try_wait() {
            let log = std::fs::read_to_string(dir.join("rookery.stderr")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(TuneError::Command {
                command: "rookery".to_string(),
                reason: format!("exited at start ({status}): {}", tail.join(" | ")),
            });
        }
        if let Some(s) = in_netns(ns, || sample(pid, admin))? {
            return Ok(s);
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(TuneError::Timeout {
                what: format!("rookery metrics at {ADMIN} in netns {ns}"),
                after_ms: READY_TIMEOUT.as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Samples until `stop`; returns the sample with the most sessions (the latest of equals) and
/// how many samples were taken.
fn sample_until(stop: &AtomicBool, pid: u32, admin: SocketAddr) -> (Sample, usize) {
    let mut best = Sample::default();
    let mut count = 0;
    // Acquire pairs with the Release store after the load run ended.
    while !stop.load(Ordering::Acquire) {
        if let Some(s) = sample(pid, admin) {
            count += 1;
            if s.sessions >= best.sessions && s.sessions > 0.0 {
                best = s;
            }
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    (best, count)
}

fn record_peak(run: &mut ProfileRun, before: &Sample, peak: &Sample, count: usize) {
    run.samples = count;
    run.peak_conns = peak.conns as u64;
    run.peak_sessions = peak.sessions as u64;
    run.rss_before_bytes = before.rss_bytes;
    run.rss_peak_bytes = peak.rss_bytes;
    run.heap_peak_bytes = peak.heap_bytes as u64;
    run.slab_per_cache = collect::slab_delta(&before.slab, &peak.slab);
    run.slab_socket_delta_bytes = run.slab_per_cache.values().sum();
    run.slab_meminfo_delta_bytes = peak.meminfo_slab as i64 - before.meminfo_slab as i64;
}

/// The word after "backend: " in rookery's start-up log.
fn logged_backend(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let rest = text.lines().find_map(|l| l.split_once("backend: "))?.1;
    rest.split_whitespace().next().map(str::to_string)
}

/// `SCENARIO ARGS` plus what compare must set: server address, output folder, quiet, and a
/// password scheme for `--auth open` unless the caller gave one.
fn load_arguments(opts: &CompareOptions, dir: &Path) -> Result<Vec<String>, TuneError> {
    let mut args = opts.load_args.clone();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if has("--output") || has("--server") {
        return Err(TuneError::Unsupported(
            "compare sets rookery-load's --server and --output itself; drop them".to_string(),
        ));
    }
    let need_auth = !has("--auth") && std::env::var_os("ROOKERY_LOAD_AUTH").is_none();
    let quiet = !has("--quiet");
    args.extend(["--server".to_string(), LISTEN.to_string()]);
    args.extend([
        "--output".to_string(),
        dir.join("load").display().to_string(),
    ]);
    if need_auth {
        args.extend(["--auth".to_string(), "plain:pw".to_string()]);
    }
    if quiet {
        args.push("--quiet".to_string());
    }
    Ok(args)
}

/// Runs rookery-load to completion within `timeout_s`; returns its exit code.
fn run_load(
    ns: &str,
    load: &Path,
    args: &[String],
    dir: &Path,
    timeout_s: u64,
) -> Result<Option<i32>, TuneError> {
    let mut child = spawn_in(ns, load, args, dir, "load")?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        if let Some(status) = child.try_wait() {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            child.stop();
            return Err(TuneError::Timeout {
                what: "rookery-load".to_string(),
                after_ms: timeout_s * 1000,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_arguments_add_what_compare_needs() {
        let opts = CompareOptions {
            profiles: vec!["baseline".into()],
            overrides: vec![],
            out_dir: PathBuf::from("/tmp/x"),
            bin_dir: None,
            allow_host: false,
            timeout_s: 10,
            server_args: vec![],
            load_args: vec!["hold".into(), "--clients".into(), "10".into()],
        };
        let args = load_arguments(&opts, Path::new("/tmp/x/baseline")).unwrap();
        let joined = args.join(" ");
        assert!(
            joined.starts_with(
                "hold --clients 10 --server 127.0.0.1:5222 --output /tmp/x/baseline/load"
            ),
            "{joined}"
        );
        assert!(joined.ends_with("--quiet"));
        let mut bad = opts.clone();
        bad.load_args.push("--server=1.2.3.4:5222".into());
        assert!(load_arguments(&bad, Path::new("/tmp")).is_err());
    }
}
