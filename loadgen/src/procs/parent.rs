//! The parent of a multi-process run: spawns the worker processes, steers their phases,
//! prints live progress from their per-second reports, merges their results, owns the output
//! and the exit status.
//!
//! Children die with the parent: each asks the kernel for SIGKILL when the parent dies
//! (`PR_SET_PDEATHSIG`, see `child`), sees its stdin close if the parent exits, and is killed
//! by pid by [`Fleet`]'s drop on any error path here, including SIGINT/SIGTERM (caught and
//! turned into an error for that purpose). Every wait is bounded: a child that stops talking
//! fails the run once the run's own length plus a slack has passed.
//!
//! What it does not do: retry a failed worker (the run fails, with that worker's error).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{bail, Context};
use tracing::{info, warn};

use super::protocol::{decode_histograms, decode_report_for, from_line, to_line};
use super::protocol::{ChildMsg, ParentMsg, Spec};
use super::Plan;
use crate::cli::RunConfig;
use crate::live::TICK_DELAY_NS;
use crate::run::{self, PartMeta, RunResult, SECOND_NS, STEADY_LEAD_NS};
use crate::series::Series;
use crate::sys::{self, monotonic_ns};
use crate::worker::{WorkerReport, CLOSE_GRACE_NS};

/// How long the children get to start and create their drivers.
const READY_TIMEOUT_NS: u64 = 30 * SECOND_NS;
/// The ramp starts this long after the go is sent, so every child has it in time.
const GO_LEAD_NS: u64 = 100_000_000;
/// A second is closed this long after it ended, so every child's report of it has arrived
/// (children report it `TICK_DELAY_NS` after it ended, then the pipe).
const TICK_SLACK_NS: u64 = TICK_DELAY_NS + 150_000_000;
/// Beyond the run's own bound, how long the parent waits for its children's results.
const END_SLACK_NS: u64 = 60 * SECOND_NS;
const POLL: Duration = Duration::from_millis(20);

/// What a reader thread passes on: a line of child `index`, or its end of output.
enum Heard {
    Line(usize, String),
    Eof(usize),
}

/// The running children. Dropping it kills (by pid) and reaps every one still running.
struct Fleet {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Fleet {
    fn spawn(cfg: &RunConfig, plan: &Plan) -> anyhow::Result<(Fleet, Receiver<Heard>)> {
        let exe = std::env::current_exe().context("finding the rookery-load executable")?;
        let (tx, rx) = mpsc::channel();
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
        };
        for index in 0..plan.processes {
            let mut command = Command::new(&exe);
            command
                .args(["worker", "--index", &index.to_string()])
                .args(["--of", &plan.processes.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if std::env::var_os("RUST_LOG").is_none() {
                // The parent logs the run; children only speak up when something is wrong.
                command.env("RUST_LOG", "warn");
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("starting worker process {index}"))?;
            let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                fleet.children.push(child);
                bail!("worker process {index}: stdin/stdout were not captured");
            };
            fleet.children.push(child);
            let spec = Spec {
                config: child_config(cfg, plan),
                auth: cfg.auth.to_spec(),
                parent_pid: std::process::id(),
            };
            writeln!(stdin, "{}", to_line(&spec))
                .with_context(|| format!("sending worker process {index} its spec"))?;
            fleet.stdins.push(stdin);
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("rookery-load-p{index}"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(Heard::Line(index as usize, line)).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Heard::Eof(index as usize));
                })
                .context("starting a worker reader thread")?;
        }
        Ok((fleet, rx))
    }

    fn tell_all(&mut self, msg: &ParentMsg) -> anyhow::Result<()> {
        let line = to_line(msg);
        for (index, stdin) in self.stdins.iter_mut().enumerate() {
            writeln!(stdin, "{line}")
                .and_then(|()| stdin.flush())
                .with_context(|| format!("worker process {index} stopped listening"))?;
        }
        Ok(())
    }

    fn exit_status(&mut self, index: usize) -> String {
        match self.children[index].try_wait() {
            Ok(Some(status)) => status.to_string(),
            _ => "still running".into(),
        }
    }
}

/// The child's share: the same run, with its part of the threads and of the rates.
fn child_config(cfg: &RunConfig, plan: &Plan) -> RunConfig {
    let share = f64::from(plan.processes);
    let mut child = cfg.clone();
    child.threads = plan.threads_per_process;
    child.connect_rate = cfg.connect_rate / share;
    child.reconnect_rate = cfg.reconnect_rate.map(|r| r / share);
    child.quiet = true;
    child
}

/// Where the run stands, as the parent sees it.
struct State {
    processes: usize,
    settled: Vec<Option<Vec<u32>>>,
    done: Vec<Option<(WorkerReport, PartMeta)>>,
    series: Series,
    go_ns: u64,
    steady_ns: Option<u64>,
    /// Next second to close.
    second: u32,
}

/// Runs `cfg` over `plan.processes` worker processes.
pub fn execute(cfg: &RunConfig, plan: &Plan) -> anyhow::Result<RunResult> {
    sys::catch_interrupts().context("installing the SIGINT/SIGTERM handler")?;
    let (mut fleet, rx) = Fleet::spawn(cfg, plan)?;
    let processes = plan.processes as usize;
    wait_ready(&mut fleet, &rx, processes)?;
    let go_ns = monotonic_ns() + GO_LEAD_NS;
    fleet.tell_all(&ParentMsg::Go { at_ns: go_ns })?;
    let mut state = State {
        processes,
        settled: vec![None; processes],
        done: (0..processes).map(|_| None).collect(),
        series: Series::new(processes),
        go_ns,
        steady_ns: None,
        second: 1,
    };
    let deadline = go_ns
        + run::ramp_bound_ns(cfg)
        + STEADY_LEAD_NS
        + run::steady_bound_ns(cfg)
        + CLOSE_GRACE_NS
        + END_SLACK_NS;
    while state.done.iter().any(Option::is_none) {
        if sys::interrupted() {
            bail!("interrupted: worker processes killed");
        }
        let now = monotonic_ns();
        if now > deadline {
            bail!("worker processes did not finish within the run's bounds: killed");
        }
        match rx.recv_timeout(POLL) {
            Ok(Heard::Line(index, line)) => on_line(cfg, &mut fleet, &mut state, index, &line)?,
            Ok(Heard::Eof(index)) if state.done[index].is_none() => {
                let status = fleet.exit_status(index);
                bail!("worker process {index} ended without its results (exit status: {status})");
            }
            Ok(Heard::Eof(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("every worker process went silent"),
        }
        maybe_start_steady(cfg, &mut fleet, &mut state, monotonic_ns())?;
        close_seconds(cfg, &mut state, monotonic_ns());
    }
    drop(fleet);
    Ok(merge(cfg, plan, state))
}

fn wait_ready(fleet: &mut Fleet, rx: &Receiver<Heard>, processes: usize) -> anyhow::Result<()> {
    let deadline = monotonic_ns() + READY_TIMEOUT_NS;
    let mut ready = vec![false; processes];
    while ready.iter().any(|r| !r) {
        if sys::interrupted() {
            bail!("interrupted: worker processes killed");
        }
        if monotonic_ns() > deadline {
            bail!("worker processes were not ready within 30 s: killed");
        }
        match rx.recv_timeout(POLL) {
            Ok(Heard::Line(index, line)) => match from_line::<ChildMsg>(&line) {
                Ok(ChildMsg::Ready) => ready[index] = true,
                Ok(ChildMsg::Failed { error }) => bail!("worker process {index}: {error}"),
                Ok(other) => bail!("worker process {index}: unexpected {other:?} before ready"),
                Err(err) => bail!("worker process {index}: {err}"),
            },
            Ok(Heard::Eof(index)) => {
                let status = fleet.exit_status(index);
                bail!("worker process {index} ended before it was ready (exit status: {status})");
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("every worker process went silent"),
        }
    }
    Ok(())
}

fn on_line(
    cfg: &RunConfig,
    fleet: &mut Fleet,
    state: &mut State,
    index: usize,
    line: &str,
) -> anyhow::Result<()> {
    let msg: ChildMsg =
        from_line(line).with_context(|| format!("worker process {index} said something odd"))?;
    match msg {
        ChildMsg::Tick {
            counts, latencies, ..
        } => {
            let latencies = decode_histograms(&latencies)
                .with_context(|| format!("worker process {index}: progress"))?;
            state.series.add(index, counts, &latencies);
        }
        ChildMsg::Settled { not_online } => state.settled[index] = Some(not_online),
        ChildMsg::Done { report, meta } => {
            let report = decode_report_for(&report, cfg)
                .with_context(|| format!("worker process {index}: results"))?;
            state.done[index] = Some((report, meta));
        }
        ChildMsg::Failed { error } => {
            // Stop the others cleanly before failing (the drop kills what does not stop).
            let _ = fleet.tell_all(&ParentMsg::Abort);
            bail!("worker process {index}: {error}");
        }
        ChildMsg::Ready => {}
    }
    Ok(())
}

/// Starts the steady phase once every child settled, or the ramp bound passed.
fn maybe_start_steady(
    cfg: &RunConfig,
    fleet: &mut Fleet,
    state: &mut State,
    now: u64,
) -> anyhow::Result<()> {
    if state.steady_ns.is_some() {
        return Ok(());
    }
    // A second beyond the children's own bound, so their late "settled" can still arrive.
    let stalled = now > state.go_ns + run::ramp_bound_ns(cfg) + SECOND_NS;
    if state.settled.iter().any(Option::is_none) && !stalled {
        return Ok(());
    }
    if stalled {
        warn!("worker processes did not all settle their ramp in time; starting anyway");
    }
    let mut not_online: Vec<u32> = state.settled.iter().flatten().flatten().copied().collect();
    not_online.sort_unstable();
    let at_ns = now + STEADY_LEAD_NS;
    info!(
        "ramp done: {} of {} clients online",
        u64::from(cfg.clients).saturating_sub(not_online.len() as u64),
        cfg.clients
    );
    fleet.tell_all(&ParentMsg::Steady { at_ns, not_online })?;
    state.steady_ns = Some(at_ns);
    Ok(())
}

/// Closes every second that ended more than [`TICK_SLACK_NS`] ago and prints its progress.
fn close_seconds(cfg: &RunConfig, state: &mut State, now: u64) {
    while now >= state.go_ns + u64::from(state.second) * SECOND_NS + TICK_SLACK_NS {
        state.series.close_second(state.second);
        if !cfg.quiet {
            eprintln!("{}", state.series.progress_line(cfg.clients));
        }
        state.second += 1;
    }
}

fn merge(cfg: &RunConfig, plan: &Plan, mut state: State) -> RunResult {
    // The children's last, partial second.
    state.series.close_second(state.second);
    let mut report = WorkerReport::default();
    let mut metas = Vec::with_capacity(state.processes);
    for (part_report, meta) in state.done.into_iter().flatten() {
        report.absorb(part_report);
        metas.push(meta);
    }
    let first = metas.first().cloned().unwrap_or_default();
    let memory_per_client: Vec<u64> = metas
        .iter()
        .filter_map(|m| m.memory.per_client_bytes)
        .collect();
    let mut memory = first.memory;
    if !memory_per_client.is_empty() {
        memory.per_client_bytes =
            Some(memory_per_client.iter().sum::<u64>() / memory_per_client.len() as u64);
    }
    let meta = PartMeta {
        go_ns: state.go_ns,
        steady_ns: state.steady_ns.unwrap_or(0),
        end_ns: metas.iter().map(|m| m.end_ns).max().unwrap_or(state.go_ns),
        memory,
        source_ips: metas.iter().map(|m| m.source_ips).max().unwrap_or(1),
        ..first
    };
    run::finish(
        cfg,
        report,
        meta,
        state.series,
        (plan.processes, plan.threads_per_process),
    )
}
