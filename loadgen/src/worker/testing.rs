//! Test support for the worker's flows (and the procs tests that build a config): a
//! [`RunConfig`] parsed from a command line as `rookery-load` would, and a worker whose
//! clients are all connected and online on [`FakeOps`].
//!
//! What it does not do: run anything; the fake ops live with the storm tests that made them.

use clap::Parser;

use super::storm::tests::FakeOps;
use super::{SlotState, Worker};
use crate::cli::{Cli, Command, RunArgs, RunConfig, Scenario, RUN_DEFAULTS};
use crate::live::Shared;
use crate::run::Part;

/// The config of `rookery-load SCENARIO --auth token:x --clients CLIENTS FLAGS...` (a load
/// scenario) for a server at `server` of `domain`.
pub(crate) fn parsed_config(
    scenario: &str,
    clients: &str,
    flags: &[&str],
    server: &str,
    domain: &str,
) -> RunConfig {
    let mut argv = vec![
        "rookery-load",
        scenario,
        "--auth",
        "token:x",
        "--clients",
        clients,
    ];
    argv.extend_from_slice(flags);
    let (scenario, args): (Scenario, RunArgs) = match Cli::try_parse_from(argv).unwrap().command {
        Command::Hold(args) => (Scenario::Hold, args),
        Command::Chat(args) => (Scenario::Chat, args),
        Command::Storm(args) => (Scenario::Storm, args),
        Command::Offline(args) => (Scenario::Offline, args),
        Command::Presence(args) => (Scenario::Presence, args),
        Command::Group(args) => (Scenario::Group, args),
        other => panic!("not a load scenario: {other:?}"),
    };
    RunConfig::resolve(
        scenario,
        server,
        domain,
        args.target.auth,
        &args.load,
        &RUN_DEFAULTS,
    )
    .unwrap()
}

/// A worker whose clients are all connected (slot i on conn i + 1) and online.
pub(in crate::worker) fn all_online<'a>(
    cfg: &'a RunConfig,
    shared: &'a Shared,
) -> (Worker<'a>, FakeOps) {
    let mut w = Worker::new(cfg, shared, (Part::WHOLE, 0), &[], 0);
    let mut io = FakeOps::default();
    for i in 0..w.slots.len() {
        w.connect(&mut io, i, 0);
        w.slots[i].state = SlotState::Online;
    }
    w.next_connect = w.slots.len();
    w.online = w.slots.len() as u64;
    (w, io)
}
