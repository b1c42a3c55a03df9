//! One load run, start to end: host checks, backend choice, worker threads, the phase
//! clock, live progress, and the merge of every worker's results.
//!
//! The coordinator (the calling thread) never touches a conn. It starts the steady phase
//! once every client has settled (online or failed; timeouts guarantee it happens), prints
//! progress once a second. A worker whose driver fails aborts the others (through
//! [`Shared::abort`]) so the run still ends within its bounds.
//!
//! What it does not do: write files or judge the result (see `output`); spread clients over
//! several processes (a later version).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rookery_io::{BackendChoice, BackendKind, Limits, PollDriver};
use tracing::{info, warn};

use crate::accounting::{Ledger, MessageTotals};
use crate::cli::{BackendArg, RunConfig};
use crate::host;
use crate::live::{Progress, Shared};
use crate::memory::{MemoryProbe, MemoryUse};
use crate::metrics::{ErrorCounts, Histograms};
use crate::sys::monotonic_ns;
use crate::worker::{self, WorkerReport};

/// How often the coordinator looks at the shared counters.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const PROGRESS_INTERVAL_NS: u64 = 1_000_000_000;
/// How far ahead of "now" the steady phase is started: longer than a worker's longest wait.
const STEADY_LEAD_NS: u64 = 200_000_000;
const _: () = assert!(STEADY_LEAD_NS > 2 * worker::MAX_WAIT_NS);
/// Slack added to the longest possible ramp before the steady phase starts regardless.
const RAMP_SLACK_NS: u64 = 5_000_000_000;

/// Everything a run produced, merged over threads.
#[derive(Debug)]
pub struct RunResult {
    pub histograms: Histograms,
    pub messages: MessageTotals,
    pub errors: ErrorCounts,
    pub logins: u64,
    pub peak_online: u64,
    pub bounced: u64,
    pub foreign: u64,
    pub stale: u64,
    pub skipped_no_peer: u64,
    pub send_retries: u64,
    /// From the first connect until every client settled.
    pub ramp_ms: u64,
    /// From the steady start until every worker ended (duration + drain + close).
    pub steady_ms: u64,
    /// User-space bytes per simulated client.
    pub memory: MemoryUse,
    pub backend: BackendKind,
    pub backend_reason: String,
    pub source_ips: usize,
    pub nofile_soft: u64,
    pub port_range: (u16, u16),
}

/// Runs the configured scenario and returns its merged results.
pub fn execute(cfg: &RunConfig) -> anyhow::Result<RunResult> {
    let nofile = rookery_io::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    host::check_fds(
        u64::from(cfg.clients),
        cfg.threads,
        nofile.soft,
        nofile.hard,
    )?;
    let explicit = cfg
        .source_ips
        .as_deref()
        .map(host::parse_source_ips)
        .transpose()?;
    let port_range = host::port_range();
    let sources = host::plan_sources(cfg.server, u64::from(cfg.clients), explicit, port_range)?;
    if sources.len() <= 1 && u64::from(cfg.clients) > host::fast_ports(port_range) {
        warn!(
            "{} clients from one source address: connects slow down beyond about {} per \
             address (kernel port search); pass --source-ips with more addresses",
            cfg.clients,
            host::fast_ports(port_range)
        );
    }
    let limits = Limits::default();
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
    let shared = Shared::new(cfg.clients, cfg.threads);
    let (reports, ramp_ns, steady_ns, memory) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (shared, sources, limits) = (&shared, &sources[..], limits.clone());
                std::thread::Builder::new()
                    .name(format!("rookery-load-{t}"))
                    .spawn_scoped(scope, move || {
                        worker_thread(selected.kind, limits, cfg, shared, t, sources)
                    })
            })
            .collect::<Result<_, _>>()?;
        let Some((started, memory)) = release_workers(cfg, &shared, &handles) else {
            return Err(join_failure(handles));
        };
        let (ramp_ns, memory) = coordinate(cfg, &shared, &handles, started, memory);
        let mut reports = Vec::with_capacity(handles.len());
        for (t, handle) in handles.into_iter().enumerate() {
            let report = handle
                .join()
                .map_err(|_| anyhow!("worker thread {t} panicked"))?;
            reports.push(report.with_context(|| format!("worker thread {t}"))?);
        }
        let steady_ns = monotonic_ns().saturating_sub(started + ramp_ns);
        anyhow::Ok((reports, ramp_ns, steady_ns, memory))
    })?;
    let mut result = merge(cfg, reports);
    result.ramp_ms = ramp_ns / 1_000_000;
    result.steady_ms = steady_ns / 1_000_000;
    result.memory = memory;
    result.backend = selected.kind;
    result.backend_reason = selected.reason;
    result.source_ips = sources.len().max(1);
    result.nofile_soft = nofile.soft;
    result.port_range = port_range;
    Ok(result)
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
    thread: usize,
    sources: &[IpAddr],
) -> anyhow::Result<WorkerReport> {
    let report = match kind {
        #[cfg(target_os = "linux")]
        BackendKind::Uring => {
            let driver =
                rookery_io::UringDriver::new(limits).context("creating the io_uring driver")?;
            worker::run(driver, cfg, shared, thread, sources)
        }
        _ => {
            let driver = PollDriver::new(limits).context("creating the poll driver")?;
            worker::run(driver, cfg, shared, thread, sources)
        }
    };
    if report.is_err() {
        // Stop the other workers too: the run cannot be complete without this one.
        shared.abort();
    }
    Ok(report?)
}

/// Waits until every worker has its driver, takes the memory baseline, and starts the ramp.
/// Returns the ramp start and the baseline, or `None` when a worker ended before it was ready
/// (its driver could not be created).
fn release_workers<T>(
    cfg: &RunConfig,
    shared: &Shared,
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
) -> Option<(u64, MemoryProbe)> {
    while shared.ready_workers() < cfg.threads {
        if handles.iter().any(|h| h.is_finished()) {
            shared.abort();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let memory = MemoryProbe::start();
    let started = monotonic_ns();
    shared.go(started);
    Some((started, memory))
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

/// Runs the phase clock and progress until every worker ended; returns the ramp length and
/// the memory per client measured at the steady start.
fn coordinate<T>(
    cfg: &RunConfig,
    shared: &Shared,
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    started: u64,
    mut memory: MemoryProbe,
) -> (u64, MemoryUse) {
    let ramp_bound_ns = (f64::from(cfg.clients) / cfg.connect_rate * 1e9) as u64
        + (cfg.connect_timeout_ms + cfg.login_timeout_ms) * 1_000_000
        + RAMP_SLACK_NS;
    let mut progress = Progress::default();
    let mut printed_ns = started;
    let mut ramp_ns = None;
    let mut memory_use = MemoryUse::default();
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(POLL_INTERVAL);
        let now = monotonic_ns();
        if ramp_ns.is_none() {
            let snapshot = shared.snapshot();
            let stalled = now - started > ramp_bound_ns;
            memory.observe(snapshot.online, u64::from(cfg.clients));
            if snapshot.settled >= u64::from(cfg.clients) || stalled {
                if stalled {
                    warn!(
                        "ramp did not settle within {} ms; starting anyway",
                        ramp_bound_ns / 1_000_000
                    );
                }
                info!(
                    "ramp done: {} of {} clients online",
                    snapshot.online, cfg.clients
                );
                // In the future, so every worker sees the start before its first message is
                // due (a worker may sit in a wait of up to its longest turn).
                shared.start_steady(now + STEADY_LEAD_NS);
                ramp_ns = Some(now - started);
                memory_use = memory.finish(snapshot.online, worker::slot_bytes() as u64);
            }
        }
        if !cfg.quiet && now >= printed_ns + PROGRESS_INTERVAL_NS {
            let interval_s = (now - printed_ns) as f64 / 1e9;
            eprintln!(
                "{}",
                progress.line(
                    shared,
                    cfg.clients,
                    (now - started) as f64 / 1e9,
                    interval_s
                )
            );
            printed_ns = now;
        }
    }
    (
        ramp_ns.unwrap_or_else(|| monotonic_ns() - started),
        memory_use,
    )
}

fn merge(cfg: &RunConfig, reports: Vec<WorkerReport>) -> RunResult {
    let mut histograms = Histograms::default();
    let mut ledger = Ledger::new(cfg.clients, cfg.max_seq());
    let mut errors = ErrorCounts::default();
    let mut sent = vec![0u32; cfg.clients as usize];
    let mut result = RunResult {
        histograms: Histograms::default(),
        messages: MessageTotals::default(),
        errors: ErrorCounts::default(),
        logins: 0,
        peak_online: 0,
        bounced: 0,
        foreign: 0,
        stale: 0,
        skipped_no_peer: 0,
        send_retries: 0,
        ramp_ms: 0,
        steady_ms: 0,
        memory: MemoryUse::default(),
        backend: BackendKind::Poll,
        backend_reason: String::new(),
        source_ips: 1,
        nofile_soft: 0,
        port_range: (0, 0),
    };
    for report in reports {
        histograms.merge(&report.histograms);
        ledger.merge(report.ledger);
        errors.merge(&report.errors);
        for (index, count) in report.sent {
            sent[index as usize] = count;
        }
        result.logins += report.logins;
        // Threads peak at different moments; the sum bounds the true peak from above.
        result.peak_online += report.peak_online;
        result.bounced += report.bounced;
        result.foreign += report.foreign;
        result.stale += report.stale;
        result.skipped_no_peer += report.skipped_no_peer;
        result.send_retries += report.send_retries;
    }
    result.messages = ledger.totals(&sent);
    result.histograms = histograms;
    result.errors = errors;
    result
}
