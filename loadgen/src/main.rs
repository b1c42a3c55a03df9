//! `rookery-load`: an open-loop XMPP load generator for up to millions of simulated clients.
//!
//! Thread-per-core like the server it measures: each worker thread owns a rookery-io driver
//! and a slab of sans-IO client state machines (no thread or task per client). Messages
//! follow an open-loop schedule and their latency counts from the *intended* send time
//! (coordinated omission corrected, as wrk2 does), with the uncorrected latency kept too;
//! every message is accounted for (delivered, lost, duplicated, out of order).
//!
//! Map: `cli` (options) -> `run` (coordinator; `procs` when the run needs several worker
//! processes) -> `worker` (per-thread loop) -> `client` (protocol) + `wire` (probe bodies);
//! `drain` is the one-recipient backlog scenario, on blocking conns of its own;
//! `schedule`, `accounting`, `metrics`, `live`, `series`, `offline`, `fanout` (the presence
//! and group scenarios' ring, groups and stanzas) are pure logic; `host`
//! checks ports and fds; `output`/`hgrm`/`hlog`/`plot`/`env` write the record; `report` and
//! `demo` are the other subcommands. `sys` is the one module allowed `unsafe` (libc).
//!
//! Exit status: 0 passed; 1 the run could not be done (the error says why); 2 bad command
//! line; 3 the run finished but broke a gate (messages lost — under `--verify` and in
//! offline, acknowledged messages lost; in presence and group, expected receipts lost —,
//! stored messages without `<delay/>`, no login, --max-p99, --max-errors).

#![deny(unsafe_code)]

mod accounting;
mod auth;
mod cli;
mod client;
mod demo;
mod drain;
mod env;
mod fanout;
mod hgrm;
mod hlog;
mod host;
mod live;
mod memory;
mod metrics;
mod offline;
mod output;
mod plot;
mod procs;
mod report;
mod run;
mod schedule;
mod security;
mod series;
mod sys;
mod targets;
mod transport;
mod wire;
mod worker;

use clap::Parser;
use tracing::error;

use cli::{Cli, Command, RunArgs, RunConfig, Scenario, RUN_DEFAULTS};

/// Exit status when a gate was broken.
const EXIT_GATE: i32 = 3;
/// Allocations this big or bigger get their own mapping (a latency histogram is ~377 KB).
const MMAP_THRESHOLD_BYTES: usize = 128 << 10;

fn main() {
    // Before anything big is allocated: histograms map their own pages (see `sys`).
    sys::fix_mmap_threshold(MMAP_THRESHOLD_BYTES);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match dispatch(cli.command) {
        Ok(violations) if violations.is_empty() => 0,
        Ok(violations) => {
            for v in &violations {
                eprintln!("FAILED: {v}");
            }
            EXIT_GATE
        }
        Err(err) => {
            error!("{err:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Runs a subcommand; returns the gate violations (empty: passed).
fn dispatch(command: Command) -> anyhow::Result<Vec<String>> {
    match command {
        Command::Hold(args) => load(Scenario::Hold, args),
        Command::Chat(args) => load(Scenario::Chat, args),
        Command::Storm(args) => load(Scenario::Storm, args),
        Command::Offline(args) => load(Scenario::Offline, args),
        Command::Presence(args) => load(Scenario::Presence, args),
        Command::Group(args) => load(Scenario::Group, args),
        Command::Worker { index, of } => std::process::exit(procs::child::main(index, of)),
        Command::Drain(args) => drain::drain(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Report { dirs } => {
            print!("{}", report::report(&dirs)?);
            Ok(Vec::new())
        }
    }
}

fn load(scenario: Scenario, args: RunArgs) -> anyhow::Result<Vec<String>> {
    let mut cfg = RunConfig::resolve(
        scenario,
        &args.target.server,
        &args.target.domain,
        args.target.auth,
        &args.load,
        &RUN_DEFAULTS,
    )?;
    cfg.security = cli::Security::resolve(&args.security)?;
    if cfg.transport == cli::TransportArg::Websocket && cfg.security.tls != cli::TlsArg::None {
        // The WebSocket layer sits below the worker's TLS: wss:// would need the other order.
        anyhow::bail!("--transport websocket runs over plain ws:// only; drop --tls");
    }
    // A bad CA file is an error now, before any client connects.
    security::check(&cfg)?;
    let result = run::execute(&cfg)?;
    let sm_missing = result.report.sm_unavailable;
    if cfg.counts_acks() && sm_missing > 0 {
        anyhow::bail!(
            "{} counts messages by the server's XEP-0198 acks, but {sm_missing} stream(s) came \
             online without stream management (the server did not offer \
             <sm xmlns='urn:xmpp:sm:3'/> after authentication, or refused <enable/>): enable \
             XEP-0198 on the server{}",
            if cfg.verify { "--verify" } else { "offline" },
            if cfg.verify {
                ", or run without --verify"
            } else {
                ""
            }
        );
    }
    let dir = output::write_results(&cfg, &result, &env::Environment::detect())?;
    print!("{}", output::report_text(&cfg, &result, Some(&dir)));
    Ok(output::violations(&cfg, &result))
}
