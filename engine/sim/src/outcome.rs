//! One run from the outside: `run` builds the world for (config, seed), runs it to the end or
//! to the first violation, and sums up what happened in an `Outcome`.
//!
//! What it does not do: print anything (the binary and the tests do).
//!
//! Invariants: an `Outcome` is a pure function of (config, seed), its trace hash included.

use crate::ledger::{DupCauses, Violation};
use crate::world::{World, START_MS};
use crate::SimConfig;

/// The result of one seed.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub seed: u64,
    /// Events processed in all.
    pub steps: u64,
    /// FNV-1a over every event and every byte moved: equal for equal (config, seed).
    pub trace_hash: u64,
    pub failure: Option<Failure>,
    pub sent: usize,
    pub acked: usize,
    pub deliveries: u64,
    /// Duplicate chat deliveries in all, and sorted by what allowed them (see `ledger`).
    pub duplicates: u64,
    pub dup_causes: DupCauses,
    /// Chat deliveries to sessions without XEP-0198 that the router was told drained.
    pub drained: u64,
    /// Fresh sessions bound without XEP-0198.
    pub sessions_without_sm: u64,
    /// Conns that read slowly; conns the output cap aborted (live traffic only: stored
    /// traffic that overflows is a violation); live stored messages the routers held back
    /// because a session's queue or XEP-0198 window was full.
    pub slow_conns: u64,
    pub aborts: u64,
    pub backlogs_started: u64,
    /// The most bytes any conn's output queue held.
    pub peak_queued_bytes: usize,
    pub errored: usize,
    pub drops: u64,
    pub restarts: u64,
    pub commit_failures: u64,
    pub resumes: u64,
    /// Presence stanzas sent (initial presences included) and received.
    pub presence_sent: usize,
    pub presence_received: u64,
    pub unavailable_received: u64,
    /// Presence deliveries and unavailables the end check proved, over `stable_clients`.
    pub presence_proven: u64,
    pub stable_clients: u64,
    /// Roster results compared with the plan after setup.
    pub roster_checks: u64,
    /// Virtual time the setup phase took (rosters and rooms), 0 without one.
    pub setup_ms: u64,
    /// Groupchat messages sent, acknowledged, copies received, copies the end check proved
    /// owed and delivered, and owed copies excused by a store refusal.
    pub group_sent: usize,
    pub group_acked: usize,
    pub group_deliveries: u64,
    pub group_proven: u64,
    pub group_excused: u64,
    /// Log compactions the loops ran (see `SimConfig::compact_min_bytes`).
    pub compactions: u64,
    /// Log writes that succeeded, and the most chats one of them stored.
    pub commits: u64,
    pub most_chats_per_commit: usize,
    /// Conns handed off by the loops (detach, `Adopt` mail, adopt).
    pub handoffs: u64,
    /// Graceful stops, and conns closed by them with their goodbye delivered.
    pub shutdowns: u64,
    pub goodbyes: u64,
    /// A cluster run: `see-other-host` redirects clients followed, and the bus and links.
    pub redirects: u64,
    pub node_restarts: u64,
    pub bus: crate::bus::BusStats,
}

/// A checker's verdict, where it happened.
#[derive(Clone, Debug)]
pub struct Failure {
    pub violation: Violation,
    pub step: u64,
    pub now_ms: u64,
}

/// Runs one seed to the end (or to the first violation).
pub fn run(cfg: &SimConfig, seed: u64) -> Outcome {
    let mut world = match World::new(cfg.clone(), seed) {
        Ok(world) => world,
        Err(violation) => return failed_at_start(seed, violation),
    };
    let failure = world.run_all().err().map(|violation| Failure {
        violation,
        step: world.step,
        now_ms: world.now_ms,
    });
    Outcome {
        seed,
        steps: world.step,
        trace_hash: world.hash,
        failure,
        sent: world.ledger.sent_count(),
        acked: world.ledger.acked_count(),
        deliveries: world.ledger.deliveries,
        duplicates: world.ledger.duplicates,
        dup_causes: world.ledger.dup_causes,
        drained: world.ledger.drained,
        sessions_without_sm: world.clients.iter().map(|c| c.sessions_without_sm).sum(),
        slow_conns: world.slow_conns,
        aborts: world.aborts,
        peak_queued_bytes: world.peak_queued_bytes,
        backlogs_started: world.backlogs_started + world.backlogs_in_incarnation(),
        errored: world.ledger.errored_count(),
        drops: world.drops,
        restarts: world.restarts,
        commit_failures: world.commit_failures,
        resumes: world.clients.iter().map(|c| c.resumes).sum(),
        presence_sent: world.ledger.presence.sent_count(),
        presence_received: world.ledger.presence.received,
        unavailable_received: world.ledger.presence.unavailable,
        presence_proven: world.ledger.presence.proven,
        stable_clients: world.stable_clients,
        roster_checks: world.clients.iter().map(|c| c.social.roster_checks).sum(),
        setup_ms: world.setup_ms,
        group_sent: world.ledger.groups.sent_count(),
        group_acked: world.ledger.groups.acked_count(),
        group_deliveries: world.ledger.groups.deliveries,
        group_proven: world.ledger.groups.proven,
        group_excused: world.ledger.groups.excused,
        commits: world.commits,
        compactions: world.compactions + world.compactions_in_incarnation(),
        most_chats_per_commit: world.most_chats_per_commit,
        handoffs: world.handoffs,
        shutdowns: world.shutdowns,
        goodbyes: world.goodbyes,
        redirects: world.clients.iter().map(|c| c.redirects).sum(),
        node_restarts: world.node_restarts,
        bus: world.bus.stats(),
    }
}

fn failed_at_start(seed: u64, violation: Violation) -> Outcome {
    Outcome {
        seed,
        failure: Some(Failure {
            violation,
            step: 0,
            now_ms: START_MS,
        }),
        ..Outcome::default()
    }
}
