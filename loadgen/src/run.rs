//! One load run, start to end: host checks, backend choice, worker threads, the phase
//! clock, the per-second series, and the merge of every worker's results.
//!
//! [`execute`] decides how many processes the run needs (see `procs`): one, and this process
//! runs every client itself ([`execute_part`] with [`Part::WHOLE`] and a [`LocalControl`]);
//! more, and it becomes the parent of worker processes, each of which runs
//! [`execute_part`] for its share under the parent's control (`procs::child`). Either way
//! the same [`finish`] turns the merged worker report into a [`RunResult`].
//!
//! The coordinator (the calling thread) never touches a conn. Its [`Control`] says when the
//! ramp starts (a common CLOCK_MONOTONIC instant) and when the steady phase starts (once every
//! client has settled, online or failed; timeouts guarantee it happens); every second, at
//! `start + k s`, it hands the control the counters and the latencies recorded since the last
//! second. A worker whose driver fails aborts the others (through [`Shared::abort`]) so the
//! run still ends within its bounds.
//!
//! What it does not do: write files or judge the result (see `output`).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rookery_io::{BackendChoice, BackendKind, Limits, NofileLimit, PollDriver, Selected};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::accounting::{AckTotals, MessageTotals};
use crate::cli::{BackendArg, RunConfig, Scenario};
use crate::host;
use crate::live::{Shared, Snapshot, TICK_DELAY_NS};
use crate::memory::{MemoryProbe, MemoryUse};
use crate::metrics::{ErrorCounts, Histograms};
use crate::procs;
use crate::series::Series;
use crate::sys::monotonic_ns;
use crate::worker::{self, WorkerReport};

mod local;
pub use local::LocalControl;

/// How often the coordinator looks at the shared counters.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// io_uring: provided receive buffers per worker thread (4 KiB each). The engine's default
/// (1024, 4 MiB) suits a server shard; a worker's clients read small stanzas, a few per turn,
/// and every buffer of the ring is touched once it cycles, so 4 MiB per thread would be
/// ~400 bytes per client over a million-client run of ~100 threads. When all are in use,
/// reads pause and re-arm next turn (no error).
const RECV_BUFFERS: u16 = 256;
pub const SECOND_NS: u64 = 1_000_000_000;
/// How far ahead of "now" the steady phase is started: longer than a worker's longest wait.
pub const STEADY_LEAD_NS: u64 = 200_000_000;
const _: () = assert!(STEADY_LEAD_NS > 2 * worker::MAX_WAIT_NS);
/// Slack added to the longest possible ramp before the steady phase starts regardless.
const RAMP_SLACK_NS: u64 = 5_000_000_000;

/// Which clients a process runs: those whose index is `index` modulo `of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub index: u32,
    pub of: u32,
}

impl Part {
    pub const WHOLE: Part = Part { index: 0, of: 1 };

    /// How many of `clients` this part runs.
    pub fn clients(self, clients: u32) -> u32 {
        clients.saturating_sub(self.index).div_ceil(self.of)
    }

    pub fn owns(self, client: u32) -> bool {
        client % self.of == self.index
    }
}

/// Who steers a run's phases: this process ([`LocalControl`]) or a parent process.
pub trait Control {
    /// Every worker thread has its driver: returns the ramp start, or `None` to abort.
    fn go(&mut self) -> Option<u64>;
    /// Asked every poll during the ramp; returns the steady start once it is decided.
    fn steady_start(&mut self, shared: &Shared, now: u64) -> Option<u64>;
    /// Second `second` since the ramp start is over: cumulative counters, and the latencies
    /// recorded since the previous tick.
    fn tick(&mut self, second: u32, counts: Snapshot, latencies: &Histograms);
    /// Whether the run must stop now.
    fn abort_requested(&mut self) -> bool;
}

/// Longest the ramp may take before the steady phase starts anyway. Offline: phase 1, the
/// senders' ramp, their sending and their wait for acks; presence and group: the setup too.
pub fn ramp_bound_ns(cfg: &RunConfig) -> u64 {
    let (ramp_clients, sending_ns) = match cfg.scenario {
        Scenario::Offline => (cfg.senders, (cfg.duration_ms + cfg.drain_ms) * 1_000_000),
        _ => (
            cfg.clients,
            cfg.fanout.as_ref().map_or(0, |f| f.setup_ms() * 1_000_000),
        ),
    };
    (f64::from(ramp_clients) / cfg.connect_rate * 1e9) as u64
        + (cfg.connect_timeout_ms + cfg.login_timeout_ms) * 1_000_000
        + sending_ns
        + RAMP_SLACK_NS
}

/// Longest the steady phase may take, closing excluded. Offline: phase 2, the recipients'
/// ramp, their logins and the drain.
pub fn steady_bound_ns(cfg: &RunConfig) -> u64 {
    match cfg.scenario {
        Scenario::Offline => {
            let recipients = cfg.clients - cfg.senders;
            (f64::from(recipients) / cfg.connect_rate * 1e9) as u64
                + (cfg.connect_timeout_ms + cfg.login_timeout_ms + cfg.drain_ms) * 1_000_000
        }
        _ => {
            let probe_ms = cfg.fanout.as_ref().map_or(0, |f| f.probe_ms());
            (probe_ms + cfg.hold_first_ms + cfg.duration_ms + cfg.drain_ms) * 1_000_000
        }
    }
}

/// What one process' part of a run produced, besides its worker report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartMeta {
    /// CLOCK_MONOTONIC ns: ramp start, steady start (0: never), end of the last worker.
    pub go_ns: u64,
    pub steady_ns: u64,
    pub end_ns: u64,
    pub memory: MemoryUse,
    pub backend: String,
    pub backend_reason: String,
    pub source_ips: usize,
    pub nofile_soft: u64,
    pub port_range: (u16, u16),
}

/// Everything a run produced, merged over threads and processes.
#[derive(Debug)]
pub struct RunResult {
    pub report: WorkerReport,
    /// Every message (fan-out: every expected receipt) and its fate.
    pub messages: MessageTotals,
    /// Presence and group: the changes and their fan-out.
    pub fan: Option<crate::fanout::Totals>,
    /// Messages split by the server's XEP-0198 acks (`--verify`, offline).
    pub acks: Option<AckTotals>,
    /// Receipts: `sent` expected, `delivered` received, `lost` missing (`--receipts`).
    pub receipts: Option<MessageTotals>,
    pub meta: PartMeta,
    /// From the ramp start until the steady start (or the end, if it never started).
    pub ramp_ms: u64,
    /// From the steady start until every worker ended (duration + drain + close).
    pub steady_ms: u64,
    pub processes: u32,
    pub threads_per_process: usize,
    pub series: Series,
}

impl RunResult {
    pub fn histograms(&self) -> &Histograms {
        &self.report.histograms
    }

    pub fn errors(&self) -> &ErrorCounts {
        &self.report.errors
    }

    /// Chat with `--storm-fraction`: what its storm did.
    pub fn chat_storm(&self) -> Option<ChatStormOutcome> {
        let r = &self.report;
        (r.storm_start_ns != 0).then(|| {
            let back_ms = (r.storm_last_login_ns > r.storm_start_ns)
                .then(|| (r.storm_last_login_ns - r.storm_start_ns) / 1_000_000);
            let logins_per_s = back_ms
                .filter(|&ms| ms > 0)
                .map(|ms| r.storm_logins as f64 / (ms as f64 / 1000.0));
            ChatStormOutcome {
                dropped: r.storm_dropped,
                logins: r.storm_logins,
                back_ms,
                logins_per_s,
                after_go_ms: r.storm_start_ns.saturating_sub(self.meta.go_ns) / 1_000_000,
            }
        })
    }

    /// Storm: (mean logins/s over the storm, busiest second's logins).
    pub fn storm_logins_per_s(&self, cfg: &RunConfig) -> Option<(f64, u64)> {
        if cfg.scenario != Scenario::Storm || self.meta.steady_ns == 0 {
            return None;
        }
        let mean = self.report.storm_logins as f64 / (cfg.duration_ms as f64 / 1000.0);
        let from_s = self.meta.steady_ns.saturating_sub(self.meta.go_ns) as f64 / 1e9;
        let to_s = from_s + cfg.duration_ms as f64 / 1000.0;
        let peak = self
            .series
            .logins_per_s(from_s.floor(), to_s.ceil())
            .into_iter()
            .max()
            .unwrap_or(0);
        Some((mean, peak))
    }
}

/// Runs the configured scenario, over as many processes as it needs, and returns its merged
/// results.
pub fn execute(cfg: &RunConfig) -> anyhow::Result<RunResult> {
    let nofile = rookery_io::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    let plan = procs::plan(
        u64::from(cfg.clients),
        cfg.threads,
        cfg.processes,
        nofile.soft,
        nofile.hard,
    )?;
    eprintln!(
        "{} clients over {} process{} (RLIMIT_NOFILE hard {} per process)",
        cfg.clients,
        plan.processes,
        if plan.processes == 1 { "" } else { "es" },
        nofile.hard
    );
    eprintln!("{}", host_check(cfg));
    if plan.processes > 1 {
        return procs::parent::execute(cfg, &plan);
    }
    let mut control = LocalControl::new(cfg);
    let (report, meta) = execute_part(cfg, Part::WHOLE, nofile, &mut control)?;
    Ok(finish(cfg, report, meta, control.series, (1, cfg.threads)))
}

/// rookery-tune's one-line verdict on this host for the run's connections (the same check
/// `rookery-tune check --role loadgen` details). Source addresses: those given, else as many
/// as the automatic loopback pick would use (one per 28,000 conns).
fn host_check(cfg: &RunConfig) -> String {
    let clients = u64::from(cfg.clients);
    let given = cfg.source_ips.as_deref().map(host::parse_source_ips);
    let sources = match given {
        Some(Ok(ips)) => ips.len(),
        _ => (clients / 28_000 + 1) as usize,
    };
    let mut input = rookery_tune::CheckInput::new(rookery_tune::Role::Loadgen, clients);
    input.source_addresses = u32::try_from(sources).unwrap_or(u32::MAX);
    rookery_tune::check_host(&input).verdict_line()
}

/// Turns a merged report into the run's result.
pub fn finish(
    cfg: &RunConfig,
    mut report: WorkerReport,
    meta: PartMeta,
    series: Series,
    (processes, threads_per_process): (u32, usize),
) -> RunResult {
    let mut sent = vec![0u32; cfg.ledger_rows() as usize];
    for &(index, count) in &report.sent {
        if let Some(s) = sent.get_mut(index as usize) {
            *s = count;
        }
    }
    report.sent = Vec::new();
    let fan = crate::fanout::totals(cfg, &mut report, &mut sent);
    let messages = report.ledger.totals(&sent);
    let acks = cfg.counts_acks().then(|| {
        let mut acked = vec![0u32; cfg.clients as usize];
        for &(index, count) in &report.acked {
            if let Some(a) = acked.get_mut(index as usize) {
                *a = count;
            }
        }
        report
            .ledger
            .ack_totals(&sent, &acked, &report.unacked_at_drop)
    });
    let receipts = cfg.receipts.then(|| report.receipts.totals(&sent));
    let steady = (meta.steady_ns != 0).then_some(meta.steady_ns);
    let ramp_end = steady.unwrap_or(meta.end_ns);
    RunResult {
        messages,
        fan,
        acks,
        receipts,
        ramp_ms: ramp_end.saturating_sub(meta.go_ns) / 1_000_000,
        steady_ms: steady.map_or(0, |s| meta.end_ns.saturating_sub(s) / 1_000_000),
        meta,
        report,
        processes,
        threads_per_process,
        series,
    }
}

/// Runs the clients of `part` in this process under `control`.
pub fn execute_part(
    cfg: &RunConfig,
    part: Part,
    nofile: NofileLimit,
    control: &mut dyn Control,
) -> anyhow::Result<(WorkerReport, PartMeta)> {
    let part_clients = part.clients(cfg.clients);
    host::check_fds(
        u64::from(part_clients),
        cfg.threads,
        nofile.soft,
        nofile.hard,
    )?;
    let (sources, port_range, limits, selected) = prepare(cfg)?;
    let shared = Shared::new(cfg.clients, cfg.threads);
    let (reports, meta) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (shared, sources, limits) = (&shared, &sources[..], limits.clone());
                std::thread::Builder::new()
                    .name(format!("rookery-load-{t}"))
                    .spawn_scoped(scope, move || {
                        worker_thread(selected.kind, limits, cfg, shared, (part, t), sources)
                    })
            })
            .collect::<Result<_, _>>()?;
        let Some((go_ns, memory)) = release_workers(cfg, &shared, &handles, control) else {
            return Err(join_failure(handles));
        };
        let phases = Phases {
            part_clients,
            go_ns,
            send_ns: cfg.duration_ms * 1_000_000,
        };
        let (steady_ns, memory) = coordinate(&shared, &handles, control, phases, memory);
        let mut reports = Vec::with_capacity(handles.len());
        for (t, handle) in handles.into_iter().enumerate() {
            let report = handle
                .join()
                .map_err(|_| anyhow!("worker thread {t} panicked"))?;
            reports.push(report.with_context(|| format!("worker thread {t}"))?);
        }
        let meta = PartMeta {
            go_ns,
            steady_ns: steady_ns.unwrap_or(0),
            end_ns: monotonic_ns(),
            memory,
            ..PartMeta::default()
        };
        anyhow::Ok((reports, meta))
    })?;
    let mut merged = WorkerReport::default();
    for report in reports {
        merged.absorb(report);
    }
    let meta = PartMeta {
        backend: selected.kind.to_string(),
        backend_reason: selected.reason,
        source_ips: sources.len().max(1),
        nofile_soft: nofile.soft,
        port_range,
        ..meta
    };
    Ok((merged, meta))
}

/// Source addresses, port range, driver limits and backend of a process' part of a run.
type Prepared = (Vec<IpAddr>, (u16, u16), Limits, Selected);

fn prepare(cfg: &RunConfig) -> anyhow::Result<Prepared> {
    let explicit = cfg
        .source_ips
        .as_deref()
        .map(host::parse_source_ips)
        .transpose()?;
    let port_range = host::port_range();
    let sources = plan_sources(cfg, explicit, port_range)?;
    if sources.len() <= 1 && u64::from(cfg.clients) > host::fast_ports(port_range) {
        warn!(
            "{} clients from one source address: connects slow down beyond about {} per \
             address (kernel port search); pass --source-ips with more addresses",
            cfg.clients,
            host::fast_ports(port_range)
        );
    }
    let limits = Limits {
        recv_buffers: RECV_BUFFERS,
        batch_wait_us: cfg.batch_wait_us,
        ..Limits::default()
    };
    let selected = rookery_io::select_backend(backend_choice(cfg.backend), &limits)?;
    info!("backend: {} ({})", selected.kind, selected.reason);
    if !sources.is_empty() {
        info!(
            "source addresses: {} ({} .. {})",
            sources.len(),
            sources[0],
            sources[sources.len() - 1]
        );
    }
    Ok((sources, port_range, limits, selected))
}

/// Source addresses for the run. A storm on IPv4 loopback plans for its reconnects too: each
/// leaves a port in TIME_WAIT on our side for a minute, and connect() slows down badly once an
/// address' ports run short. Elsewhere only `--source-ips` adds addresses, so the check stays
/// on the clients (the ports a storm needs there are the operator's to provide).
fn plan_sources(
    cfg: &RunConfig,
    explicit: Option<Vec<IpAddr>>,
    port_range: (u16, u16),
) -> Result<Vec<IpAddr>, host::HostError> {
    let clients = u64::from(cfg.clients);
    let loopback_v4 = matches!(cfg.server.ip(), IpAddr::V4(v4) if v4.is_loopback());
    let ports = if cfg.scenario == Scenario::Storm && loopback_v4 && explicit.is_none() {
        host::storm_ports(clients, cfg.reconnect_rate, cfg.duration_ms)
    } else {
        clients
    };
    host::plan_sources(cfg.server, ports, explicit, port_range)
}

fn backend_choice(arg: BackendArg) -> BackendChoice {
    match arg {
        BackendArg::Auto => BackendChoice::Auto,
        BackendArg::Uring => BackendChoice::Uring,
        BackendArg::Poll => BackendChoice::Poll,
    }
}

fn worker_thread(
    kind: BackendKind,
    limits: Limits,
    cfg: &RunConfig,
    shared: &Shared,
    who: (Part, usize),
    sources: &[IpAddr],
) -> anyhow::Result<WorkerReport> {
    let report = match kind {
        #[cfg(target_os = "linux")]
        BackendKind::Uring => {
            let driver =
                rookery_io::UringDriver::new(limits).context("creating the io_uring driver")?;
            worker::run(driver, cfg, shared, who, sources)
        }
        _ => {
            let driver = PollDriver::new(limits).context("creating the poll driver")?;
            worker::run(driver, cfg, shared, who, sources)
        }
    };
    if report.is_err() {
        // Stop the other workers too: the run cannot be complete without this one.
        shared.abort();
    }
    Ok(report?)
}

/// Waits until every worker has its driver, takes the memory baseline, and starts the ramp
/// when the control says. Returns the ramp start and the baseline, or `None` when a worker
/// ended before it was ready (its driver could not be created) or the control aborted.
fn release_workers<T>(
    cfg: &RunConfig,
    shared: &Shared,
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    control: &mut dyn Control,
) -> Option<(u64, MemoryProbe)> {
    while shared.ready_workers() < cfg.threads {
        if handles.iter().any(|h| h.is_finished()) {
            shared.abort();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let memory = MemoryProbe::start();
    let Some(go_ns) = control.go() else {
        shared.abort();
        return None;
    };
    shared.go(go_ns);
    Some((go_ns, memory))
}

/// Joins every worker after an abort and returns the first error among them.
fn join_failure(
    handles: Vec<std::thread::ScopedJoinHandle<'_, anyhow::Result<WorkerReport>>>,
) -> anyhow::Error {
    let mut first = None;
    for (t, handle) in handles.into_iter().enumerate() {
        let err = match handle.join() {
            Ok(Ok(_)) => continue,
            Ok(Err(err)) => err.context(format!("worker thread {t}")),
            Err(_) => anyhow!("worker thread {t} panicked"),
        };
        first.get_or_insert(err);
    }
    first.unwrap_or_else(|| anyhow!("the run was aborted before it started"))
}

#[derive(Clone, Copy)]
struct Phases {
    part_clients: u32,
    go_ns: u64,
    /// How long the steady phase sends (`--duration`): RSS is watched that long.
    send_ns: u64,
}

/// Runs the phase clock and the per-second ticks until every worker ended; returns the steady
/// start and the memory per client measured at it.
fn coordinate<T>(
    shared: &Shared,
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    control: &mut dyn Control,
    phases: Phases,
    mut memory: MemoryProbe,
) -> (Option<u64>, MemoryUse) {
    let mut steady = None;
    let mut latencies = Histograms::default();
    let mut second = 1u32;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(POLL_INTERVAL);
        let now = monotonic_ns();
        if control.abort_requested() {
            shared.abort();
        }
        if steady.is_none() {
            let snapshot = shared.snapshot();
            memory.observe(snapshot.online, u64::from(phases.part_clients));
            if let Some(at) = control.steady_start(shared, now) {
                info!(
                    "ramp done: {} of {} clients online",
                    snapshot.online, phases.part_clients
                );
                shared.start_steady(at);
                steady = Some(at);
                let slot_bytes = worker::slot_bytes() as u64;
                memory.finish(snapshot.online, slot_bytes);
            }
        }
        // Every second at go + k s (read a little after, once every worker published it),
        // catching up with empty intervals if this loop was late.
        while now >= phases.go_ns + u64::from(second) * SECOND_NS + TICK_DELAY_NS {
            shared.drain_recent(&mut latencies);
            control.tick(second, snapshot_with_rss(shared), &latencies);
            latencies.reset();
            second += 1;
            if steady.is_some_and(|at| now <= at.saturating_add(phases.send_ns)) {
                memory.observe_steady();
            }
        }
    }
    let memory_use = memory.with_steady();
    // The last, partial second: whatever was published since the last tick.
    shared.drain_recent(&mut latencies);
    control.tick(second, snapshot_with_rss(shared), &latencies);
    (steady, memory_use)
}

/// The workers' counters and this process' RSS, for a tick.
fn snapshot_with_rss(shared: &Shared) -> Snapshot {
    Snapshot {
        rss_kib: crate::env::rss_kib().unwrap_or(0),
        ..shared.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_clients_exactly() {
        for (clients, of) in [(10u32, 3u32), (1, 2), (7, 7), (10_000, 2)] {
            let parts: Vec<Part> = (0..of).map(|index| Part { index, of }).collect();
            let total: u32 = parts.iter().map(|p| p.clients(clients)).sum();
            assert_eq!(total, clients, "{clients} over {of}");
            for c in 0..clients {
                assert_eq!(parts.iter().filter(|p| p.owns(c)).count(), 1);
            }
        }
        assert_eq!(Part::WHOLE.clients(5), 5);
        assert_eq!(Part { index: 1, of: 2 }.clients(1), 0);
    }
}

/// What a chat run's reconnect storm did (`--storm-fraction`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ChatStormOutcome {
    /// Online clients dropped at the storm's start.
    pub dropped: u64,
    /// Their logins since (retries after a failure included).
    pub logins: u64,
    /// From the drop to the last of those logins, and the mean login rate over it.
    pub back_ms: Option<u64>,
    pub logins_per_s: Option<f64>,
    /// When the storm began, from the ramp's start.
    pub after_go_ms: u64,
}
