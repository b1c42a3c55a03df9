//! The simulator in CI: a few hundred seeds pass in each scenario (chats; rosters and
//! presence; groups; flow control under pressure; graceful stops), every `--inject-bug`
//! canary is caught, and a seed replays to the same trace. Every shard is the server's real
//! loop, so hand-offs, the commit pump, the output cap and shutdown run the server's code.

// Wall time is read only to print how long a batch of seeds took: no simulated world reads it.
#![allow(clippy::disallowed_methods, reason = "prints each batch's wall time")]

use std::time::Instant;

use rookery_sim::{run, InjectBug, Outcome, SimConfig};

/// Seeds that fail because of router findings are listed in the crate report and kept out of
/// the sets below; none are known in the tested ranges. (A resumption that takes a session
/// over from a conn the router still holds, see the crate docs, fails about 1 seed in 300 of
/// the group scenario at 3,000 steps; none of the tested seeds hits it.)
const EXCLUDED_SEEDS: &[u64] = &[];

fn small(seed: u64) -> SimConfig {
    SimConfig {
        shards: 2 + (seed % 2) as u16,
        clients: 6 + (seed % 5) as usize,
        steps: 1_500,
        ..SimConfig::default()
    }
}

/// Store-and-forward under pressure on top of the chat scenario: a tight output cap (4 KiB,
/// so a 1 KiB XEP-0198 window and a 512-byte backlog mark), half the logins without
/// XEP-0198, two conns in three reading slowly (1 to 4 bytes per ms while clients chat), and
/// an active phase twice as long, so conns die with stored messages still queued.
fn pressure(seed: u64) -> SimConfig {
    SimConfig {
        steps: 3_000,
        max_output_bytes: 4 * 1024,
        no_sm_per_mille: 500,
        slow_reader_per_mille: 667,
        slow_read_bytes_per_ms: (1, 4),
        ..small(seed)
    }
}

/// Graceful stops on top of the chat scenario: about one every 500 active steps the loops'
/// stop flag is set; they say goodbye, flush, commit and finish, and the server starts again.
fn stops(seed: u64) -> SimConfig {
    SimConfig {
        graceful_stop_per_mille: 2,
        ..small(seed)
    }
}

/// A slow disk under the chat scenario: every log write takes 10 to 80 virtual ms, so the
/// loop's commit pump (one write in flight, the rest appended to the next) batches many stored
/// chats per write, and acknowledgements wait for their batch.
fn slow_disk(seed: u64) -> SimConfig {
    SimConfig {
        log_write_ms: (10, 80),
        ..small(seed)
    }
}

/// Compaction through the loop under `pressure`: the stores compact once their log passes
/// 8 KiB with half of it dead, so the loop unregisters its log, compacts, re-registers,
/// while backlogs read stored messages back (compaction waits for no read in flight).
fn compacting(seed: u64) -> SimConfig {
    SimConfig {
        compact_min_bytes: Some(8 * 1024),
        ..pressure(seed)
    }
}

/// Rosters (K = 2 or 3 contacts each) and presence updates on top of the chat scenario.
fn social(seed: u64) -> SimConfig {
    SimConfig {
        contacts: 2 + (seed % 2) as usize,
        ..small(seed)
    }
}

/// Groups (2 or 3 rooms of 3 to 5 members) on top of the social scenario; a larger offline
/// quota, as absent members collect every message of their rooms.
fn groups(seed: u64) -> SimConfig {
    SimConfig {
        groups: 2 + (seed % 2) as usize,
        group_size: 3 + (seed % 3) as usize,
        offline_max: 60,
        ..social(seed)
    }
}

/// Runs `seeds` on two threads (the machine has two cores), in seed order in the result.
fn run_many(seeds: &[u64], config: impl Fn(u64) -> SimConfig + Sync) -> Vec<Outcome> {
    let (even, odd): (Vec<u64>, Vec<u64>) = seeds.iter().partition(|s| *s % 2 == 0);
    let config = &config;
    let mut all: Vec<Outcome> = std::thread::scope(|scope| {
        let a = scope.spawn(move || even.iter().map(|&s| run(&config(s), s)).collect::<Vec<_>>());
        let b = scope.spawn(move || odd.iter().map(|&s| run(&config(s), s)).collect::<Vec<_>>());
        let mut all = a.join().expect("worker");
        all.extend(b.join().expect("worker"));
        all
    });
    all.sort_by_key(|o| o.seed);
    all
}

/// One line per failing seed.
fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| o.failure.as_ref().map(|f| (o.seed, f)))
        .map(|(seed, f)| {
            format!(
                "seed {seed}: {} at step {}: {}",
                f.violation.checker, f.step, f.violation.detail
            )
        })
        .collect()
}

#[test]
fn three_hundred_seeds_pass() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..300).filter(|s| !EXCLUDED_SEEDS.contains(s)).collect();
    let outcomes = run_many(&seeds, small);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let delivered = sum(|o| o.deliveries);
    let restarts = sum(|o| o.restarts);
    let resumes = sum(|o| o.resumes);
    let without_sm = sum(|o| o.sessions_without_sm);
    let drained = sum(|o| o.drained);
    let undrained = sum(|o| o.dup_causes.undrained);
    let slow = sum(|o| o.slow_conns);
    let handoffs = sum(|o| o.handoffs);
    let write_failures = sum(|o| o.commit_failures);
    println!(
        "{} seeds in {:.2}s: {delivered} deliveries, {restarts} restarts, {resumes} resumptions, \
         {without_sm} sessions without XEP-0198 ({drained} deliveries drained, {undrained} \
         re-delivered undrained), {slow} slow readers, {} duplicates after XEP-0198, {} after a \
         restart, {} conns aborted by the cap, {handoffs} hand-offs, {write_failures} failed \
         log writes",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.dup_causes.after_sm),
        sum(|o| o.dup_causes.after_restart),
        sum(|o| o.aborts),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    // The runs must exercise what they claim to: restarts, resumptions, deliveries, sessions
    // without XEP-0198 deleting on drain and re-getting what never drained, slow readers.
    assert!(restarts > 100 && resumes > 100 && delivered > 10_000);
    assert!(without_sm > 500 && drained > 10_000 && undrained > 20 && slow > 500);
    // Logins on a shard that is not the user's home go through the loop's hand-off; the
    // commit pump sees failed writes (ENOSPC) and retries.
    assert!(handoffs > 3_000 && write_failures > 100);
}

/// Graceful stops (see `stops`): every conn the router closed got its goodbye first, every
/// loop finished drained (no conn, no write in flight, nothing unwritten), and nothing
/// acknowledged or committed was lost across the stop.
/// Group commit through the loop's committer on a slow disk (see `slow_disk`): nothing owed
/// is lost or acknowledged early, and writes do carry several chats each.
#[test]
fn group_commit_on_a_slow_disk_holds_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).collect();
    let outcomes = run_many(&seeds, slow_disk);
    let failures = failures(&outcomes);
    let commits: u64 = outcomes.iter().map(|o| o.commits).sum();
    let batched = outcomes
        .iter()
        .filter(|o| o.most_chats_per_commit >= 8)
        .count();
    println!(
        "{} seeds in {:.2}s: {commits} log writes, {batched} runs with a write of 8 chats or \
         more, most in one write {}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        outcomes
            .iter()
            .map(|o| o.most_chats_per_commit)
            .max()
            .unwrap_or(0),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    // Measured: every run has a write of 11 to 21 chats (3 to 5 with the default 0-8 ms).
    assert!(
        batched > 80,
        "only {batched} runs batched 8 chats or more in one write"
    );
}

/// See `compacting`: compactions happen in every run and lose nothing owed.
#[test]
fn compaction_in_the_loop_loses_nothing_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).collect();
    let outcomes = run_many(&seeds, compacting);
    let failures = failures(&outcomes);
    let compactions: u64 = outcomes.iter().map(|o| o.compactions).sum();
    let compacted = outcomes.iter().filter(|o| o.compactions > 0).count();
    println!(
        "{} seeds in {:.2}s: {compactions} compactions, in {compacted} runs",
        seeds.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert!(compacted > 90, "only {compacted} runs compacted");
}

#[test]
fn graceful_stops_flush_and_lose_nothing_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).collect();
    let outcomes = run_many(&seeds, stops);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let shutdowns = sum(|o| o.shutdowns);
    let goodbyes = sum(|o| o.goodbyes);
    println!(
        "{} seeds in {:.2}s: {shutdowns} graceful stops, {goodbyes} goodbyes delivered, {} \
         deliveries, {} acknowledged",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.deliveries),
        outcomes.iter().map(|o| o.acked as u64).sum::<u64>(),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert!(shutdowns > 100 && goodbyes > 300);
}

/// Flow control under pressure (see `pressure`): no stored message overflows the cap, none is
/// lost, duplicates only where allowed; backlogs are held back and conns die with queues.
#[test]
fn store_and_forward_holds_under_pressure_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).filter(|s| !EXCLUDED_SEEDS.contains(s)).collect();
    let outcomes = run_many(&seeds, pressure);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let held_back = sum(|o| o.backlogs_started);
    let undrained = sum(|o| o.dup_causes.undrained);
    let full = outcomes
        .iter()
        .filter(|o| o.peak_queued_bytes * 2 > 4 * 1024)
        .count();
    println!(
        "{} seeds in {:.2}s: {} deliveries, {} drained, {undrained} re-delivered undrained, \
         {held_back} live stored messages held back, {full} runs with a queue past half the \
         cap, {} aborts",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.deliveries),
        sum(|o| o.drained),
        sum(|o| o.aborts),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert!(held_back > 20 && undrained > 50 && full > 10);
}

#[test]
fn rosters_and_presence_hold_over_three_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..300).filter(|s| !EXCLUDED_SEEDS.contains(s)).collect();
    let outcomes = run_many(&seeds, social);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let proven = sum(|o| o.presence_proven);
    let unavailable = sum(|o| o.unavailable_received);
    let rosters = sum(|o| o.roster_checks);
    let restarts = sum(|o| o.restarts);
    println!(
        "{} seeds in {:.2}s: {} presences sent, {proven} deliveries and unavailables proven, \
         {unavailable} unavailables seen, {rosters} roster gets checked, {restarts} restarts",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.presence_sent as u64),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert!(
        outcomes.iter().all(|o| o.setup_ms > 0),
        "every run sets rosters up"
    );
    assert!(proven > 30_000 && unavailable > 600 && rosters > 1_500 && restarts > 150);
}

/// The output cap through the real loop: groups (live groupchat copies and presence are not
/// stored, so they can fill a queue) under a 4 KiB cap with two readers in three slow. The
/// driver refuses the send that does not fit, the loop aborts the conn; never for a stored
/// message (`backlog-overflow`), and nothing owed is lost.
fn capped(seed: u64) -> SimConfig {
    SimConfig {
        max_output_bytes: 4 * 1024,
        slow_reader_per_mille: 667,
        slow_read_bytes_per_ms: (1, 4),
        ..groups(seed)
    }
}

#[test]
fn the_output_cap_aborts_only_live_traffic_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).collect();
    let outcomes = run_many(&seeds, capped);
    let failures = failures(&outcomes);
    let aborts: u64 = outcomes.iter().map(|o| o.aborts).sum();
    println!(
        "{} seeds in {:.2}s: {aborts} conns aborted by the cap",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    // Measured: 6 aborts in these 100 seeds (the router keeps its own backlogs under the
    // cap, so only live fan-out to slow readers gets there).
    assert!(aborts > 2, "the cap must be reached: {aborts} aborts");
}

#[test]
fn groups_hold_over_two_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..200).filter(|s| !EXCLUDED_SEEDS.contains(s)).collect();
    let outcomes = run_many(&seeds, groups);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let proven = sum(|o| o.group_proven);
    let excused = sum(|o| o.group_excused);
    println!(
        "{} seeds in {:.2}s: {} group messages sent, {} acknowledged, {} copies received, \
         {proven} owed copies proven, {excused} excused by a store refusal",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.group_sent as u64),
        sum(|o| o.group_acked as u64),
        sum(|o| o.group_deliveries),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert!(proven > 10_000 && excused * 100 < proven);
}

/// A canary may land where nothing is observable (two reordered chats both bounced by a full
/// offline quota, a bounce swapped with a chat, a lost message that was never acknowledged),
/// so each must be caught by most seeds, not all. delete-on-queue loses a message only when a
/// conn dies while the message is still queued to a session without XEP-0198, so it runs
/// under `pressure`. lose-committed gets one more kill as the quiet period begins if it found
/// nothing owed to lose before (see `World::lose_committed_at_last`). Measured with the real
/// shard loop and clients resuming with unacked stanzas (the default): drop-mail 20,
/// reorder-lane 19, lose-committed 20, delete-on-queue 16 of 20.
#[test]
fn every_canary_is_caught() {
    for bug in InjectBug::ALL {
        let seeds: Vec<u64> = (0..20).collect();
        let scenario = match bug {
            InjectBug::DeleteOnQueue => pressure,
            _ => small,
        };
        let outcomes = run_many(&seeds, |seed| SimConfig {
            inject: Some(bug),
            ..scenario(seed)
        });
        let caught = outcomes.iter().filter(|o| o.failure.is_some()).count();
        println!("{}: caught by {caught} of 20 seeds", bug.name());
        assert!(
            caught >= 14,
            "{} caught by only {caught} of 20 seeds",
            bug.name()
        );
    }
}

/// drop-fanout-recipient in both fan-out scenarios: a presence broadcast or a groupchat
/// message that skips one recipient. Measured: social 18, groups 19 of 20 (a miss: the
/// recipient was still logging in on a slow conn, so nothing was owed to it).
#[test]
fn a_fanout_that_skips_a_recipient_is_caught() {
    for (name, config) in [
        ("social", social as fn(u64) -> SimConfig),
        ("groups", groups),
    ] {
        let seeds: Vec<u64> = (0..20).collect();
        let outcomes = run_many(&seeds, |seed| SimConfig {
            inject: Some(InjectBug::DropFanoutRecipient),
            ..config(seed)
        });
        let caught = outcomes.iter().filter(|o| o.failure.is_some()).count();
        println!("drop-fanout-recipient ({name}): caught by {caught} of 20 seeds");
        assert!(caught >= 17, "{name}: caught by only {caught} of 20 seeds");
    }
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    let config = small(7);
    let (a, b) = (run(&config, 7), run(&config, 7));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!((a.steps, a.deliveries), (b.steps, b.deliveries));
    let c = run(&config, 8);
    assert_ne!(a.trace_hash, c.trace_hash);
    let config = groups(7);
    let (a, b) = (run(&config, 7), run(&config, 7));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        (a.presence_received, a.group_deliveries),
        (b.presence_received, b.group_deliveries)
    );
    assert!(a.group_deliveries > 0 && a.presence_received > 0);
    let config = pressure(7);
    let (a, b) = (run(&config, 7), run(&config, 7));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        (a.drained, a.slow_conns, a.peak_queued_bytes),
        (b.drained, b.slow_conns, b.peak_queued_bytes)
    );
    assert!(a.drained > 0 && a.slow_conns > 0);
    let config = stops(7);
    let (a, b) = (run(&config, 7), run(&config, 7));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!((a.shutdowns, a.goodbyes), (b.shutdowns, b.goodbyes));
    assert!(a.shutdowns > 0 && a.handoffs > 0);
}

/// Three nodes of two shards (so six real shard loops) joined by their bridges over a lossy
/// bus: a tenth of the frames dropped, one in twenty duplicated, one in ten held back so later
/// ones pass it; each node's real `Links` restores order and filters duplicates. Clients log
/// in on any node and follow `see-other-host` to their home; now and then the whole cluster
/// restarts (kill -9). A third of the seeds add rosters and presence (2 contacts each), a
/// third rooms too (2 rooms of 4), so presence fan-outs, room copies and their gathers cross
/// nodes. One node's restart alone is not in this scenario (see the crate report).
fn cluster(seed: u64) -> SimConfig {
    let social = !seed.is_multiple_of(3);
    let rooms = seed % 3 == 2;
    SimConfig {
        nodes: 3,
        shards: 2,
        clients: 6 + (seed % 4) as usize,
        steps: 1_000,
        contacts: if social { 2 } else { 0 },
        groups: if rooms { 2 } else { 0 },
        group_size: 4,
        offline_max: if rooms { 60 } else { 30 },
        ..SimConfig::default()
    }
}

/// The ledger's rules hold across nodes: nothing acknowledged is lost, duplicates only where
/// documented, per-pair order, on a bus that drops, duplicates, delays and reorders.
#[test]
fn three_nodes_on_a_lossy_bus_hold_over_a_hundred_seeds() {
    let started = Instant::now();
    let seeds: Vec<u64> = (0..100).collect();
    let outcomes = run_many(&seeds, cluster);
    let failures = failures(&outcomes);
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let delivered = sum(|o| o.deliveries);
    let redirects = sum(|o| o.redirects);
    let dropped = sum(|o| o.bus.dropped);
    let duplicated = sum(|o| o.bus.duplicated);
    let late = sum(|o| o.bus.late);
    let retransmits = sum(|o| o.bus.retransmits);
    let link_duplicates = sum(|o| o.bus.link_duplicates);
    let mails_in = sum(|o| o.bus.mails_in);
    let presence = sum(|o| o.presence_received);
    let group_deliveries = sum(|o| o.group_deliveries);
    let restarts = sum(|o| o.restarts);
    println!(
        "{} seeds in {:.2}s: {delivered} deliveries, {redirects} redirects, {} frames \
         ({dropped} dropped, {duplicated} duplicated, {late} late), {retransmits} \
         retransmits, {link_duplicates} duplicates filtered by the links, {mails_in} mails \
         across nodes, {restarts} restarts, {presence} presences and {group_deliveries} \
         groupchat copies received",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        sum(|o| o.bus.frames),
    );
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    // The bus must have done its worst and the links repaired it.
    assert!(delivered > 2_000 && redirects > 500 && mails_in > 2_000);
    assert!(dropped > 200 && duplicated > 100 && late > 200);
    assert!(retransmits > 200 && link_duplicates > 200 && restarts > 20);
    assert!(presence > 1_000 && group_deliveries > 1_000);
}

/// skip-link-dedupe: a receiving bridge that hands its shards what the link called a
/// duplicate is caught (repeated chats in one session).
#[test]
fn a_bus_without_the_links_dedupe_is_caught() {
    let seeds: Vec<u64> = (0..20).collect();
    let outcomes = run_many(&seeds, |seed| SimConfig {
        inject: Some(InjectBug::SkipLinkDedupe),
        ..cluster(seed)
    });
    let caught = outcomes.iter().filter(|o| o.failure.is_some()).count();
    println!("skip-link-dedupe: caught by {caught} of 20 seeds");
    assert!(caught >= 17, "caught by only {caught} of 20 seeds");
}

#[test]
fn a_cluster_seed_replays_to_the_same_trace() {
    let config = cluster(5);
    let (a, b) = (run(&config, 5), run(&config, 5));
    assert!(a.failure.is_none(), "{:?}", a.failure);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        (a.deliveries, a.bus.frames, a.bus.retransmits),
        (b.deliveries, b.bus.frames, b.bus.retransmits)
    );
    assert!(a.bus.mails_in > 0 && a.redirects > 0);
}
