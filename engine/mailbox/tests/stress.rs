//! Threaded stress tests: real shard threads, small lanes, sleeping through
//! `prepare_to_sleep` and a park/unpark waker, so lost wake-ups show up as a hang (caught by a
//! 30 s deadline) and lost, duplicated or reordered mail as a failed assertion.
//!
//! Not covered here: exhaustive interleavings (that is `tests/loom.rs`).

#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rookery_mailbox::{grid, Mailbox, ShardId};

/// A wedged shard (lost wake-up) fails the test instead of hanging the suite.
const DEADLINE: Duration = Duration::from_secs(30);
/// The brief's lane capacity for the stress run: small, so lanes fill constantly.
const LANE_CAPACITY: usize = 64;
/// Messages per shard turn taken from the inbox; keeps turns short, like the engine's.
const DRAIN_PER_TURN: usize = 256;
/// Staging limit per destination: a shard stops staging new mail while this much waits.
const STAGE_LIMIT: usize = 512;

/// What one shard saw, reported back to the test thread.
#[derive(Debug, Default)]
struct ShardReport {
    sleeps: usize,
    wakes_sent: usize,
    full_flushes: usize,
}

/// Every this many turns a shard stages nothing, so its peers run dry and sleep.
const PAUSE_EVERY_TURNS: u32 = 7;

/// Message = (sequence number). The source comes from `drain`.
type Msg = u64;

fn run_shard(mut mailbox: Mailbox<Msg>, per_peer: u64) -> ShardReport {
    let me = thread::current();
    mailbox.set_waker(Box::new(move || me.unpark()));
    let shards = mailbox.shards();
    let own = mailbox.shard().index();
    let peers: Vec<usize> = (0..shards).filter(|&s| s != own).collect();
    let mut next_send = vec![0u64; shards];
    let mut next_recv = vec![0u64; shards];
    let mut report = ShardReport::default();
    // Turns left until the next pause (a turn that stages nothing).
    let mut pause_in = PAUSE_EVERY_TURNS;
    loop {
        pause_in -= 1;
        let pause = pause_in == 0;
        if pause {
            pause_in = PAUSE_EVERY_TURNS;
        }
        let got = mailbox.drain(DRAIN_PER_TURN, |src, seq| {
            let expected = &mut next_recv[src.index()];
            assert_eq!(
                seq, *expected,
                "shard {own}: from {src} out of order or duplicated"
            );
            *expected += 1;
        });
        for &peer in &peers {
            // Uneven senders: low shards send less per turn and pause every 7th turn, so fast
            // shards finish early and then sleep and wake repeatedly on the slow ones' mail.
            let burst = if pause {
                0
            } else {
                8 + 90 * own / (shards - 1)
            };
            let mut budget = burst;
            while budget > 0 && next_send[peer] < per_peer && mailbox.staged() < STAGE_LIMIT {
                // `peer < shards <= u16::MAX`: grid built with at most 4 shards.
                mailbox.stage(ShardId(peer as u16), next_send[peer]);
                next_send[peer] += 1;
                budget -= 1;
            }
        }
        let stats = mailbox.flush();
        report.wakes_sent += stats.wakes;
        report.full_flushes += usize::from(stats.full_lanes > 0);
        let sent_all = peers.iter().all(|&p| next_send[p] == per_peer) && mailbox.staged() == 0;
        let got_all = peers.iter().all(|&p| next_recv[p] == per_peer);
        if sent_all && got_all {
            return report;
        }
        if got > 0 || stats.pushed > 0 {
            continue;
        }
        if !sent_all {
            // Mail waits for room (or the burst pause): retry next turn, never sleep on it,
            // since receivers do not wake senders.
            thread::yield_now();
            continue;
        }
        if mailbox.prepare_to_sleep() {
            report.sleeps += 1;
            // `park` may return spuriously; the loop re-checks. A lost wake-up parks forever.
            thread::park();
            mailbox.awake();
        }
    }
}

fn stress(shards: usize, per_peer: u64) {
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    for mailbox in grid::<Msg>(shards, LANE_CAPACITY) {
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let id = mailbox.shard();
            let report = run_shard(mailbox, per_peer);
            let _ = done_tx.send((id, report));
        });
    }
    drop(done_tx);
    for _ in 0..shards {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match done_rx.recv_timeout(left) {
            Ok((id, report)) => eprintln!("{id}: {report:?}"),
            // A panicking shard drops its sender; the others then time out or finish.
            Err(err) => panic!("{shards} shards: a shard did not finish in {DEADLINE:?}: {err}"),
        }
    }
    eprintln!(
        "{shards} shards x {per_peer} msgs per peer: {:?}",
        started.elapsed()
    );
}

#[test]
fn two_shards_exchange_100k_each_way() {
    stress(2, 100_000);
}

#[test]
fn four_shards_exchange_100k_per_pair() {
    stress(4, 100_000);
}

/// One token bounced between two shards: nearly every hop finds the other side asleep, so this
/// exercises the wake path on every message.
#[test]
fn ping_pong_wakes_every_hop() {
    const ROUND_TRIPS: u64 = 20_000;
    let started = Instant::now();
    let mut shards = grid::<u64>(2, 1);
    let (Some(pong), Some(ping)) = (shards.pop(), shards.pop()) else {
        panic!("grid(2) has two mailboxes");
    };
    let (done_tx, done_rx) = mpsc::channel();
    for (mut mailbox, serve) in [(ping, true), (pong, false)] {
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let me = thread::current();
            mailbox.set_waker(Box::new(move || me.unpark()));
            let peer = ShardId(1 - mailbox.shard().0);
            let (mut sent, mut received, mut sleeps) = (0u64, 0u64, 0u64);
            // The token carries its hop count: the server sees odd hops, the echo side even.
            let mut expected_hop = u64::from(serve);
            if serve {
                mailbox.stage(peer, 0);
                sent = 1;
                mailbox.flush();
            }
            while received < ROUND_TRIPS {
                let mut reply = None;
                mailbox.drain(usize::MAX, |_, hop| {
                    assert_eq!(hop, expected_hop, "token lost or duplicated");
                    expected_hop += 2;
                    received += 1;
                    reply = Some(hop + 1);
                });
                if let Some(next) = reply {
                    if sent < ROUND_TRIPS {
                        mailbox.stage(peer, next);
                        sent += 1;
                        assert_eq!(mailbox.flush().left_staged, 0, "one token in flight");
                    }
                    continue;
                }
                if mailbox.prepare_to_sleep() {
                    sleeps += 1;
                    thread::park();
                    mailbox.awake();
                }
            }
            let _ = done_tx.send(sleeps);
        });
    }
    drop(done_tx);
    let mut total_sleeps = 0;
    for _ in 0..2 {
        let left = DEADLINE.saturating_sub(started.elapsed());
        total_sleeps += done_rx
            .recv_timeout(left)
            .unwrap_or_else(|err| panic!("ping-pong wedged after {DEADLINE:?}: {err}"));
    }
    eprintln!(
        "ping-pong {ROUND_TRIPS} round trips, {total_sleeps} sleeps: {:?}",
        started.elapsed()
    );
}
