//! `rookery-tune`: check a host against a connection target, show/diff/apply/revert kernel
//! tuning profiles, and compare profiles under the same load.
//!
//! Exit status: 0 fine; 1 error (the message says why); 2 the command ran but the answer is
//! "no": check: target not reachable; apply/revert: some value refused, clamped or missing;
//! compare: some profile's run failed.
//!
//! Not here: any logic beyond argument handling and printing (the library does the work).

mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use rookery_tune::apply::DiffTable;
use rookery_tune::compare::{compare, markdown, utc_stamp, CompareOptions};
use rookery_tune::{
    apply, check_host, check_tree, diff, revert, ApplyOptions, CheckInput, NofileLimits, Profile,
    Role,
};

#[derive(Parser)]
#[command(
    name = "rookery-tune",
    version,
    about = "Kernel tuning profiles for connection servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Server,
    Loadgen,
    /// Server and load generator on this host (a loopback test)
    Both,
}

#[derive(Subcommand)]
enum Cmd {
    /// What on this host caps a connection target, tightest first, with the fix for each
    Check(CheckArgs),
    /// Print a profile (FreeBSD: its loader.conf and sysctl.conf parts)
    Show {
        /// Name (baseline, c1m-lean, ...), linux/NAME, freebsd/NAME, or a file path
        profile: String,
        #[arg(long)]
        json: bool,
    },
    /// This host against a profile: knob, host value, profile value, scope
    Diff {
        profile: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a profile's sysctls (in a network namespace with --netns) and keep a backup
    Apply(ApplyArgs),
    /// Restore the values saved by apply (same --netns)
    Revert {
        #[arg(long)]
        netns: Option<String>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run rookery + rookery-load under each profile in its own netns; report side by side
    Compare(CompareArgs),
}

#[derive(Args)]
struct CheckArgs {
    #[arg(long)]
    connections: u64,
    #[arg(long, value_enum, default_value = "server")]
    role: RoleArg,
    /// rookery processes holding the connections (`rookery cluster up --nodes K`) [default: 1]
    #[arg(long)]
    server_processes: Option<u64>,
    /// User-space bytes per connection on this host [default: server 1380, loadgen 512,
    /// both 1892]
    #[arg(long)]
    per_session_bytes: Option<u64>,
    /// Connects per second the accept queue must absorb [default: max(1000, N/60)]
    #[arg(long)]
    connect_rate: Option<u64>,
    /// Source addresses the generator connects from [default: 1]
    #[arg(long)]
    source_addresses: Option<u32>,
    /// Read this /proc tree (a copy from another host) instead of the live one
    #[arg(long)]
    proc_root: Option<PathBuf>,
    /// With --proc-root: RLIMIT_NOFILE of the process, SOFT:HARD [default: this process's]
    #[arg(long, requires = "proc_root")]
    nofile: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ApplyArgs {
    profile: String,
    #[arg(long)]
    netns: Option<String>,
    /// Also write host-wide knobs (fs.*, tcp_mem, rmem_max, ...) in the root namespace
    #[arg(long)]
    allow_host: bool,
    /// Backup directory [default: $ROOKERY_TUNE_STATE_DIR or /var/lib/rookery-tune]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CompareArgs {
    #[arg(required = true)]
    profiles: Vec<String>,
    /// Report directory [default: results/<utc>-tune-<scenario>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where rookery and rookery-load are [default: next to this binary, then target/release]
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also apply host-wide knobs (restored after each profile)
    #[arg(long)]
    allow_host: bool,
    /// Override a knob for one profile: PROFILE:KEY=VALUE (repeatable)
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Extra rookery argument (repeatable), e.g. --server-arg=--shards --server-arg=1
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Upper bound on each rookery-load run, seconds
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// SCENARIO ARGS for rookery-load (after `--`)
    #[arg(last = true, required = true)]
    load: Vec<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rookery-tune: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints `value` as JSON, or `text()` when `json` is false.
fn emit<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// Exit status 0 when `fine`, else 2 ("ran, but the answer is no").
fn status(fine: bool) -> u8 {
    if fine {
        0
    } else {
        2
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Cmd::Check(args) => cmd_check(args),
        Cmd::Show { profile, json } => {
            let p = Profile::resolve(&profile)?;
            emit(json, &p, || show::render(&p))?;
            Ok(0)
        }
        Cmd::Diff { profile, json } => {
            let p = Profile::resolve(&profile)?;
            let rows = diff(&p, std::path::Path::new("/"));
            emit(json, &rows, || {
                format!(
                    "{} ({:?}) against this host:\n{}",
                    p.name,
                    p.os,
                    DiffTable(&rows)
                )
            })?;
            Ok(0)
        }
        Cmd::Apply(a) => {
            let p = Profile::resolve(&a.profile)?;
            let mut opts = ApplyOptions::new(a.netns);
            opts.allow_host = a.allow_host;
            opts.state_dir = a.state_dir.unwrap_or(opts.state_dir);
            let report = apply(&p, &opts)?;
            emit(a.json, &report, || report.to_string())?;
            Ok(status(report.problems() == 0))
        }
        Cmd::Revert {
            netns,
            state_dir,
            json,
        } => {
            let mut opts = ApplyOptions::new(netns);
            opts.state_dir = state_dir.unwrap_or(opts.state_dir);
            let report = revert(&opts)?;
            emit(json, &report, || report.to_string())?;
            Ok(status(report.problems() == 0))
        }
        Cmd::Compare(args) => cmd_compare(args),
    }
}

fn cmd_check(a: CheckArgs) -> Result<u8> {
    let role = match a.role {
        RoleArg::Server => Role::Server,
        RoleArg::Loadgen => Role::Loadgen,
        RoleArg::Both => Role::Both,
    };
    if a.server_processes == Some(0) {
        bail!("--server-processes must be at least 1");
    }
    if a.server_processes.is_some() && !role.runs_server() {
        bail!("--server-processes needs --role server or --role both");
    }
    let mut input = CheckInput::new(role, a.connections);
    input.server_processes = a.server_processes.unwrap_or(input.server_processes);
    input.per_session_bytes = a.per_session_bytes.unwrap_or(input.per_session_bytes);
    input.connect_rate_per_s = a.connect_rate.unwrap_or(input.connect_rate_per_s);
    input.source_addresses = a.source_addresses.unwrap_or(input.source_addresses);
    let report = match a.proc_root {
        Some(root) => check_tree(&root, &input, parse_nofile(a.nofile.as_deref())?),
        None => check_host(&input),
    };
    emit(a.json, &report, || {
        report.to_string().trim_end().to_string()
    })?;
    Ok(status(report.reachable()))
}

fn cmd_compare(a: CompareArgs) -> Result<u8> {
    let overrides = a
        .sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    for (name, _, _) in &overrides {
        if !a.profiles.contains(name) {
            bail!("--set {name}:...: {name} is not one of the compared profiles");
        }
    }
    let scenario = a.load.first().cloned().unwrap_or_default();
    let out_dir = a.out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!("{}-tune-{scenario}", utc_stamp()))
    });
    let opts = CompareOptions {
        profiles: a.profiles,
        overrides,
        out_dir: out_dir.clone(),
        bin_dir: a.bin_dir,
        allow_host: a.allow_host,
        timeout_s: a.timeout_s,
        server_args: a.server_args,
        load_args: a.load,
    };
    let report = compare(&opts, std::env::args().collect()).context("compare")?;
    println!("{}", markdown(&report));
    println!("report: {}", out_dir.join("report.md").display());
    Ok(status(report.runs.iter().all(|r| r.error.is_none())))
}

/// `SOFT:HARD` -> limits.
fn parse_nofile(spec: Option<&str>) -> Result<NofileLimits> {
    let Some(spec) = spec else {
        return Ok(NofileLimits::current()?);
    };
    let Some((soft, hard)) = spec.split_once(':') else {
        bail!("--nofile wants SOFT:HARD, e.g. 1024:524288");
    };
    Ok(NofileLimits {
        soft: soft.parse()?,
        hard: hard.parse()?,
    })
}

/// `PROFILE:KEY=VALUE` -> (profile, key, value).
fn parse_set(spec: &str) -> Result<(String, String, String)> {
    let parsed = spec
        .split_once(':')
        .and_then(|(p, kv)| kv.split_once('=').map(|(k, v)| (p, k, v)));
    match parsed {
        Some((p, k, v)) if !p.is_empty() && !k.is_empty() && !v.is_empty() => {
            Ok((p.to_string(), k.trim().to_string(), v.trim().to_string()))
        }
        _ => bail!("--set wants PROFILE:KEY=VALUE, e.g. baseline:net.core.somaxconn=128"),
    }
}
