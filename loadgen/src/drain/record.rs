//! A drain run's record: summary.json in its own results folder, the report printed on
//! stdout, the server's memory, and the gates.
//!
//! Folder: `<output>/<YYYYMMDD-HHMMSS>-drain-<slug>/summary.json` (the folder convention of
//! the other scenarios). Gates (exit status 3): a message missing, duplicated, out of its
//! sender's order, damaged or without `<delay/>`, or the stream ended by the server.
//!
//! What it does not do: measure (see `send`, `recv`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::recv::Drained;
use super::send::Stored;
use super::DrainConfig;
use crate::env::Environment;

/// The server's resident memory in KiB (VmRSS of /proc/PID/status); `None` when unreadable.
pub fn server_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Scheduler time of a task or process (ns): running, and runnable but waiting for a CPU
/// (the machine's contention).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sched {
    pub run_ns: u64,
    pub wait_ns: u64,
}

/// The scheduler times of every thread of process `pid`: the sums of the first two fields
/// of /proc/PID/task/*/schedstat; `None` when unreadable (not Linux, no schedstats).
pub fn process_sched(pid: u32) -> Option<Sched> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = Sched::default();
    for task in tasks.flatten() {
        // A thread that ended since the listing ran no more: skipped.
        if let Some(t) = schedstat(&task.path().join("schedstat")) {
            total.run_ns += t.run_ns;
            total.wait_ns += t.wait_ns;
        }
    }
    Some(total)
}

/// The calling thread's scheduler times.
pub fn thread_sched() -> Option<Sched> {
    schedstat(Path::new("/proc/thread-self/schedstat"))
}

fn schedstat(path: &Path) -> Option<Sched> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    Some(Sched {
        run_ns: fields.next()?.parse().ok()?,
        wait_ns: fields.next()?.parse().ok()?,
    })
}

/// The server's RSS (KiB) at each point of the run (`--server-pid`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rss {
    /// Before the first sender connected.
    pub start: Option<u64>,
    /// Once the backlog was stored, before the recipient connected.
    pub stored: Option<u64>,
    /// Highest sample (every 100 ms) while the recipient read.
    pub drain_peak_kib: Option<u64>,
    /// After the recipient closed.
    pub drained: Option<u64>,
}

pub struct Run {
    pub stored: Stored,
    pub drained: Drained,
    pub rss: Rss,
    pub total_s: f64,
}

#[derive(Serialize)]
struct Summary<'a> {
    scenario: &'static str,
    config: &'a DrainConfig,
    environment: &'a Environment,
    store: &'a Stored,
    drain: &'a Drained,
    server_rss_kib: &'a Rss,
    total_s: f64,
    passed: bool,
    violations: Vec<String>,
}

/// Creates the run's folder and writes summary.json; returns the folder.
pub fn write(cfg: &DrainConfig, run: &Run, env: &Environment) -> anyhow::Result<PathBuf> {
    let dir = crate::output::create_run_dir(&cfg.output, "drain", &cfg.slug)?;
    let violations = violations(run);
    let summary = Summary {
        scenario: "drain",
        config: cfg,
        environment: env,
        store: &run.stored,
        drain: &run.drained,
        server_rss_kib: &run.rss,
        total_s: run.total_s,
        passed: violations.is_empty(),
        violations,
    };
    let text = serde_json::to_string_pretty(&summary).context("encoding summary.json")?;
    let path = dir.join("summary.json");
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(dir)
}

/// The broken gates (empty: passed).
pub fn violations(run: &Run) -> Vec<String> {
    let d = &run.drained;
    let t = d.tally;
    let mut v = Vec::new();
    let mut gate = |n: u64, what: &str| {
        if n > 0 {
            v.push(format!("{n} of {} messages {what}", t.expected));
        }
    };
    gate(d.missing, "never arrived");
    gate(t.duplicates, "arrived more than once (extra copies)");
    gate(
        t.out_of_order,
        "arrived after a later message of their sender",
    );
    gate(d.damaged, "arrived with a body of the wrong size");
    gate(d.delay_missing, "arrived without <delay/> (XEP-0203)");
    if let Some(why) = &d.ended {
        v.push(format!(
            "the recipient's stream ended before it closed: {why}"
        ));
    }
    v
}

/// The report printed on stdout.
pub fn report_text(cfg: &DrainConfig, run: &Run, dir: &Path) -> String {
    let (s, d) = (&run.stored, &run.drained);
    let mut t = String::new();
    let sm = if cfg.recipient_sm {
        format!("XEP-0198, ack every {}", cfg.ack_every)
    } else {
        "no XEP-0198".to_string()
    };
    // Writing into a String cannot fail.
    let _ = writeln!(
        t,
        "drain: {} x {} B bodies from {} senders to one recipient ({sm})",
        cfg.messages, cfg.body_bytes, cfg.senders
    );
    let _ = writeln!(
        t,
        "store: {} acknowledged in {:.1} s ({:.0} msgs/s)",
        s.acked, s.seconds, s.msgs_per_s
    );
    let _ = writeln!(
        t,
        "drain: {} of {} in {:.3} s from bind: {:.0} msgs/s, {:.1} MB/s bodies, {:.1} MB/s on \
         the wire; login {:.1} ms to bind",
        d.tally.unique,
        d.tally.expected,
        d.bind_to_last_s,
        d.msgs_per_s,
        d.body_mb_per_s,
        d.wire_mb_per_s,
        d.connect_to_bind_ms
    );
    let _ = writeln!(
        t,
        "check: missing {}, duplicates {}, out of order {}, damaged {}, without delay {}, \
         foreign {}",
        d.missing,
        d.tally.duplicates,
        d.tally.out_of_order,
        d.damaged,
        d.delay_missing,
        d.tally.foreign + d.other_messages
    );
    let kib =
        |x: Option<u64>| x.map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    if cfg.server_pid.is_some() {
        let r = &run.rss;
        let _ = writeln!(
            t,
            "server RSS: start {}, stored {}, drain peak {}, drained {}",
            kib(r.start),
            kib(r.stored),
            kib(r.drain_peak_kib),
            kib(r.drained)
        );
    }
    let _ = writeln!(t, "results: {}", dir.display());
    t
}
