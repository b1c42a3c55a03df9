//! `rookery-sim`: runs seeds of the deterministic simulator and prints one line per seed.
//!
//! Usage: `rookery-sim [--seed S | --seeds A..B] [--shards N] [--clients M] [--steps K]
//! [--contacts K] [--groups G] [--group-size S] [--no-resume-unacked] [--lenient-group-refusals]
//! [--offline-max N] [--no-sm-share PER_MILLE] [--max-output-bytes N] [--sm-window-bytes N]
//! [--slow-readers PER_MILLE] [--slow-read-rate LO..HI] [--graceful-stops PER_MILLE]
//! [--log-write-ms LO..HI] [--compact-min-bytes N] [--nodes N] [--bus-drop PER_MILLE]
//! [--bus-dup PER_MILLE] [--bus-delay-ms LO..HI] [--bus-reorder PER_MILLE]
//! [--node-restarts PER_MILLE] [--trace]
//! [--inject-bug drop-mail|reorder-lane|lose-committed|drop-fanout-recipient|delete-on-queue|
//! skip-link-dedupe]`.
//! Exits 1 if
//! any seed fails, 2 on a bad command line. A failure line names the checker, the step and
//! the command that replays it. `--resume-unacked` and `--strict-group-refusals` (the
//! defaults) are still accepted.
//!
//! What it does not do: run seeds in parallel (one thread keeps the output in seed order).

#![forbid(unsafe_code)]
// STYLE.md: functions under 70 lines (the threshold is in this package's clippy.toml).
#![warn(clippy::too_many_lines)]

use std::process::ExitCode;
use std::time::Instant;

use rookery_sim::{run, InjectBug, Outcome, SimConfig};

struct Args {
    seeds: std::ops::Range<u64>,
    config: SimConfig,
}

fn parse_args() -> Result<Args, String> {
    let mut seeds = 0..100;
    let mut config = SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => {
                let seed = number(&value()?)?;
                seeds = seed..seed + 1;
            }
            "--seeds" => {
                let text = value()?;
                let (a, b) = text.split_once("..").ok_or("--seeds wants A..B")?;
                seeds = number(a)?..number(b)?;
            }
            "--shards" => {
                config.shards = u16::try_from(number(&value()?)?).map_err(|e| e.to_string())?
            }
            "--clients" => config.clients = number(&value()?)? as usize,
            "--steps" => config.steps = number(&value()?)?,
            "--contacts" => config.contacts = number(&value()?)? as usize,
            "--groups" => config.groups = number(&value()?)? as usize,
            "--group-size" => config.group_size = number(&value()?)? as usize,
            "--trace" => config.trace = true,
            "--strict-group-refusals" => config.strict_group_refusals = true,
            "--lenient-group-refusals" => config.strict_group_refusals = false,
            "--resume-unacked" => config.resume_with_unacked = true,
            "--no-resume-unacked" => config.resume_with_unacked = false,
            "--offline-max" => config.offline_max = number(&value()?)? as usize,
            "--no-sm-share" => config.no_sm_per_mille = per_mille(&value()?)?,
            "--slow-readers" => config.slow_reader_per_mille = per_mille(&value()?)?,
            "--log-write-ms" => {
                let text = value()?;
                let (lo, hi) = text.split_once("..").ok_or("--log-write-ms wants LO..HI")?;
                config.log_write_ms = (number(lo)?, number(hi)?.max(number(lo)?));
            }
            "--compact-min-bytes" => config.compact_min_bytes = Some(number(&value()?)?),
            "--graceful-stops" => config.graceful_stop_per_mille = per_mille(&value()?)?,
            "--max-output-bytes" => config.max_output_bytes = number(&value()?)? as usize,
            "--sm-window-bytes" => config.sm_window_bytes = Some(number(&value()?)? as usize),
            "--slow-read-rate" => {
                let text = value()?;
                let (lo, hi) = text
                    .split_once("..")
                    .ok_or("--slow-read-rate wants LO..HI")?;
                config.slow_read_bytes_per_ms = (number(lo)?.max(1), number(hi)?.max(1));
            }
            "--nodes" | "--bus-drop" | "--bus-dup" | "--bus-reorder" | "--node-restarts"
            | "--bus-delay-ms" => cluster_flag(&flag, &value()?, &mut config)?,
            "--inject-bug" => {
                let name = value()?;
                let bug = InjectBug::parse(&name).ok_or(format!(
                    "unknown bug {name}: try drop-mail, reorder-lane, lose-committed, \
                     drop-fanout-recipient, delete-on-queue or skip-link-dedupe"
                ))?;
                config.inject = Some(bug);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.shards == 0 || config.clients < 2 || config.nodes == 0 {
        return Err("need --shards >= 1, --nodes >= 1 and --clients >= 2".to_owned());
    }
    Ok(Args { seeds, config })
}

/// The flags of a cluster run (`--nodes` and the bus).
fn cluster_flag(flag: &str, value: &str, config: &mut SimConfig) -> Result<(), String> {
    match flag {
        "--nodes" => config.nodes = u16::try_from(number(value)?).map_err(|e| e.to_string())?,
        "--bus-drop" => config.bus_drop_per_mille = per_mille(value)?,
        "--bus-dup" => config.bus_dup_per_mille = per_mille(value)?,
        "--bus-reorder" => config.bus_reorder_per_mille = per_mille(value)?,
        "--node-restarts" => config.node_restart_per_mille = per_mille(value)?,
        _ => {
            let (lo, hi) = value
                .split_once("..")
                .ok_or("--bus-delay-ms wants LO..HI")?;
            config.bus_delay_ms = (number(lo)?, number(hi)?.max(number(lo)?));
        }
    }
    Ok(())
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn per_mille(text: &str) -> Result<u64, String> {
    let n = number(text)?;
    if n > 1000 {
        return Err(format!("{text} is not a share per mille (0 to 1000)"));
    }
    Ok(n)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("rookery-sim: {error}");
            return ExitCode::from(2);
        }
    };
    let cfg = &args.config;
    // Wall time of the whole batch, for the report line only: no simulated world reads it.
    #[allow(clippy::disallowed_methods, reason = "reports the batch's wall time")]
    let started = Instant::now();
    let (mut failed, mut total) = (0u64, 0u64);
    for seed in args.seeds.clone() {
        total += 1;
        let outcome = run(cfg, seed);
        match &outcome.failure {
            None => println!("seed {seed}: ok {}", summary(&outcome)),
            Some(f) => {
                failed += 1;
                println!(
                    "seed {seed}: FAIL checker={} step={} t={}ms: {}\n  replay: {}",
                    f.violation.checker,
                    f.step,
                    f.now_ms,
                    f.violation.detail,
                    replay(cfg, seed)
                );
            }
        }
    }
    println!(
        "{total} seeds, {failed} failed, {:.2}s",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn summary(o: &Outcome) -> String {
    let mut line = format!(
        "steps={} sent={} acked={} errors={} delivered={} dups={} drops={} restarts={} \
         write_failures={} resumes={}",
        o.steps,
        o.sent,
        o.acked,
        o.errored,
        o.deliveries,
        o.duplicates,
        o.drops,
        o.restarts,
        o.commit_failures,
        o.resumes
    );
    if o.setup_ms > 0 {
        line.push_str(&format!(
            " setup={}ms presence_sent={} presence_in={} unavailable_in={} presence_proven={} \
             stable={} roster_checks={}",
            o.setup_ms,
            o.presence_sent,
            o.presence_received,
            o.unavailable_received,
            o.presence_proven,
            o.stable_clients,
            o.roster_checks
        ));
    }
    if o.group_sent > 0 {
        line.push_str(&format!(
            " group_sent={} group_acked={} group_in={} group_proven={} group_excused={}",
            o.group_sent, o.group_acked, o.group_deliveries, o.group_proven, o.group_excused
        ));
    }
    line.push_str(&format!(
        " no_sm_sessions={} drained={} dups(sm/undrained/restart)={}/{}/{} slow_conns={} \
         aborts={} held_back={} peak_queue={}",
        o.sessions_without_sm,
        o.drained,
        o.dup_causes.after_sm,
        o.dup_causes.undrained,
        o.dup_causes.after_restart,
        o.slow_conns,
        o.aborts,
        o.backlogs_started,
        o.peak_queued_bytes
    ));
    line.push_str(&format!(
        " commits={} most_chats_per_commit={} compactions={} handoffs={} shutdowns={} \
         goodbyes={}",
        o.commits, o.most_chats_per_commit, o.compactions, o.handoffs, o.shutdowns, o.goodbyes
    ));
    line.push_str(&bus_summary(o));
    line.push_str(&format!(" trace={:016x}", o.trace_hash));
    line
}

/// The bus and links of a cluster run (empty for a single node).
fn bus_summary(o: &Outcome) -> String {
    if o.bus.frames == 0 {
        return String::new();
    }
    let b = &o.bus;
    format!(
        " redirects={} node_restarts={} frames={} bus_dropped={} bus_duplicated={} bus_late={} \
             retransmits={} link_duplicates={} given_up={} mails_out={} mails_in={}",
        o.redirects,
        o.node_restarts,
        b.frames,
        b.dropped,
        b.duplicated,
        b.late,
        b.retransmits,
        b.link_duplicates,
        b.given_up,
        b.mails_out,
        b.mails_in
    )
}

/// The command line that replays `seed` with `cfg`.
fn replay(cfg: &SimConfig, seed: u64) -> String {
    let mut line = format!(
        "rookery-sim --seed {seed} --shards {} --clients {} --steps {}",
        cfg.shards, cfg.clients, cfg.steps
    );
    if cfg.contacts > 0 {
        line.push_str(&format!(" --contacts {}", cfg.contacts));
    }
    if cfg.groups > 0 {
        line.push_str(&format!(
            " --groups {} --group-size {}",
            cfg.groups, cfg.group_size
        ));
    }
    if !cfg.resume_with_unacked {
        line.push_str(" --no-resume-unacked");
    }
    if !cfg.strict_group_refusals {
        line.push_str(" --lenient-group-refusals");
    }
    let default = SimConfig::default();
    if cfg.offline_max != default.offline_max {
        line.push_str(&format!(" --offline-max {}", cfg.offline_max));
    }
    if cfg.no_sm_per_mille != default.no_sm_per_mille {
        line.push_str(&format!(" --no-sm-share {}", cfg.no_sm_per_mille));
    }
    if cfg.max_output_bytes != default.max_output_bytes {
        line.push_str(&format!(" --max-output-bytes {}", cfg.max_output_bytes));
    }
    if let Some(window) = cfg.sm_window_bytes {
        line.push_str(&format!(" --sm-window-bytes {window}"));
    }
    if cfg.slow_reader_per_mille != default.slow_reader_per_mille {
        line.push_str(&format!(" --slow-readers {}", cfg.slow_reader_per_mille));
    }
    if cfg.slow_read_bytes_per_ms != default.slow_read_bytes_per_ms {
        let (lo, hi) = cfg.slow_read_bytes_per_ms;
        line.push_str(&format!(" --slow-read-rate {lo}..{hi}"));
    }
    if cfg.log_write_ms != default.log_write_ms {
        let (lo, hi) = cfg.log_write_ms;
        line.push_str(&format!(" --log-write-ms {lo}..{hi}"));
    }
    if let Some(min_bytes) = cfg.compact_min_bytes {
        line.push_str(&format!(" --compact-min-bytes {min_bytes}"));
    }
    if cfg.graceful_stop_per_mille != default.graceful_stop_per_mille {
        line.push_str(&format!(
            " --graceful-stops {}",
            cfg.graceful_stop_per_mille
        ));
    }
    if cfg.nodes != default.nodes {
        line.push_str(&format!(
            " --nodes {} --bus-drop {} --bus-dup {} --bus-delay-ms {}..{} --bus-reorder {} \
             --node-restarts {}",
            cfg.nodes,
            cfg.bus_drop_per_mille,
            cfg.bus_dup_per_mille,
            cfg.bus_delay_ms.0,
            cfg.bus_delay_ms.1,
            cfg.bus_reorder_per_mille,
            cfg.node_restart_per_mille
        ));
    }
    if let Some(bug) = cfg.inject {
        line.push_str(&format!(" --inject-bug {}", bug.name()));
    }
    line
}
