//! `rookery-sim`: runs seeds of the deterministic simulator and prints one line per seed.
//!
//! Usage: `rookery-sim [--seed S | --seeds A..B] [--shards N] [--clients M] [--steps K]
//! [--no-resume-unacked] [--inject-bug drop-mail|reorder-lane|lose-committed]`. Exits 1 if
//! any seed fails, 2 on a bad command line. A failure line names the checker, the step and
//! the command that replays it. `--resume-unacked` (the default) is still accepted.
//!
//! What it does not do: run seeds in parallel (one thread keeps the output in seed order).

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use rookery_sim::{run, InjectBug, SimConfig};

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
            "--trace" => config.trace = true,
            "--resume-unacked" => config.resume_with_unacked = true,
            "--no-resume-unacked" => config.resume_with_unacked = false,
            "--inject-bug" => {
                let name = value()?;
                let bug = InjectBug::parse(&name).ok_or(format!(
                    "unknown bug {name}: try drop-mail, reorder-lane or lose-committed"
                ))?;
                config.inject = Some(bug);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.shards == 0 || config.clients < 2 {
        return Err("need --shards >= 1 and --clients >= 2".to_owned());
    }
    Ok(Args { seeds, config })
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
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
    let started = Instant::now();
    let (mut failed, mut total) = (0u64, 0u64);
    for seed in args.seeds.clone() {
        total += 1;
        let outcome = run(cfg, seed);
        match &outcome.failure {
            None => println!(
                "seed {seed}: ok steps={} sent={} acked={} errors={} delivered={} dups={} drops={} \
                 restarts={} write_failures={} resumes={} trace={:016x}",
                outcome.steps,
                outcome.sent,
                outcome.acked,
                outcome.errored,
                outcome.deliveries,
                outcome.duplicates,
                outcome.drops,
                outcome.restarts,
                outcome.commit_failures,
                outcome.resumes,
                outcome.trace_hash
            ),
            Some(f) => {
                failed += 1;
                let bug = cfg
                    .inject
                    .map(|b| format!(" --inject-bug {}", b.name()))
                    .unwrap_or_default();
                let resume = if cfg.resume_with_unacked {
                    ""
                } else {
                    " --no-resume-unacked"
                };
                println!(
                    "seed {seed}: FAIL checker={} step={} t={}ms: {}\n  replay: rookery-sim \
                     --seed {seed} --shards {} --clients {} --steps {}{resume}{bug}",
                    f.violation.checker,
                    f.step,
                    f.now_ms,
                    f.violation.detail,
                    cfg.shards,
                    cfg.clients,
                    cfg.steps
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
