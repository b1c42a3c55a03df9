//! Unit tests of one thread driving several mailboxes: staging order, back-pressure, wake
//! accounting, drain fairness and the counters. Cross-thread behaviour is in `tests/stress.rs`
//! and `tests/loom.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{grid, FlushStats, Mailbox, ShardId};

/// A waker that counts its calls.
fn counting_waker(mailbox: &Mailbox<u32>) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let inner = Arc::clone(&count);
    mailbox.set_waker(Box::new(move || {
        inner.fetch_add(1, Ordering::SeqCst);
    }));
    count
}

fn drain_all(mailbox: &mut Mailbox<u32>) -> Vec<(u16, u32)> {
    let mut out = Vec::new();
    mailbox.drain(usize::MAX, |src, msg| out.push((src.0, msg)));
    out
}

#[test]
fn staged_mail_arrives_in_order_per_destination() {
    let mut shards = grid::<u32>(3, 16);
    for msg in [10, 11, 12] {
        shards[0].stage(ShardId(1), msg);
    }
    for msg in [20, 21] {
        shards[0].stage(ShardId(2), msg);
    }
    assert_eq!(shards[0].staged(), 5);
    // Nothing leaves before the flush.
    assert_eq!(shards[1].inbox_len(), 0);
    let stats = shards[0].flush();
    let expected = FlushStats {
        pushed: 5,
        left_staged: 0,
        wakes: 0,
        full_lanes: 0,
    };
    assert_eq!(stats, expected);
    assert_eq!(drain_all(&mut shards[1]), vec![(0, 10), (0, 11), (0, 12)]);
    assert_eq!(drain_all(&mut shards[2]), vec![(0, 20), (0, 21)]);
    assert_eq!(shards[0].flush(), FlushStats::default());
}

#[test]
fn full_lane_keeps_mail_staged_in_order_and_drops_nothing() {
    let mut shards = grid::<u32>(2, 2);
    for msg in 0..10 {
        shards[0].stage(ShardId(1), msg);
    }
    let mut received = Vec::new();
    let mut flushes = 0;
    while shards[0].staged() > 0 {
        let before = shards[0].staged();
        let stats = shards[0].flush();
        flushes += 1;
        assert!(stats.pushed <= 2, "lane capacity is 2: {stats:?}");
        assert_eq!(stats.left_staged, before - stats.pushed);
        assert_eq!(stats.left_staged, shards[0].staged());
        assert_eq!(stats.full_lanes, usize::from(stats.left_staged > 0));
        // A second flush with the lane still full moves nothing and keeps everything.
        let again = shards[0].flush();
        assert_eq!(again.pushed, 0);
        assert_eq!(again.left_staged, stats.left_staged);
        assert_eq!(shards[1].inbox_len(), stats.pushed);
        shards[1].drain(usize::MAX, |src, msg| {
            assert_eq!(src, ShardId(0));
            received.push(msg);
        });
    }
    assert_eq!(flushes, 5);
    assert_eq!(received, (0..10).collect::<Vec<_>>());
}

#[test]
fn sleeping_destination_is_woken_once_per_flush() {
    let mut shards = grid::<u32>(3, 8);
    let wakes_1 = counting_waker(&shards[1]);
    let wakes_2 = counting_waker(&shards[2]);
    assert!(shards[1].prepare_to_sleep());
    // Three messages to a sleeper, two to an awake shard: one wake, for the sleeper only.
    for msg in 0..3 {
        shards[0].stage(ShardId(1), msg);
    }
    shards[0].stage(ShardId(2), 7);
    shards[0].stage(ShardId(2), 8);
    assert_eq!(shards[0].flush().wakes, 1);
    assert_eq!(wakes_1.load(Ordering::SeqCst), 1);
    assert_eq!(wakes_2.load(Ordering::SeqCst), 0);
    // The wake cleared the mark: more mail before shard 1 sleeps again wakes nobody.
    shards[0].stage(ShardId(1), 3);
    assert_eq!(shards[0].flush().wakes, 0);
    assert_eq!(wakes_1.load(Ordering::SeqCst), 1);
    // Shard 1 wakes, drains, sleeps again: the next flush wakes it again.
    shards[1].awake();
    assert_eq!(drain_all(&mut shards[1]).len(), 4);
    assert!(shards[1].prepare_to_sleep());
    shards[0].stage(ShardId(1), 4);
    assert_eq!(shards[0].flush().wakes, 1);
    assert_eq!(wakes_1.load(Ordering::SeqCst), 2);
}

#[test]
fn awake_destination_is_never_woken() {
    let mut shards = grid::<u32>(2, 4);
    let wakes = counting_waker(&shards[1]);
    assert!(shards[1].prepare_to_sleep());
    shards[1].awake();
    for round in 0..5 {
        shards[0].stage(ShardId(1), round);
        assert_eq!(shards[0].flush().wakes, 0);
        drain_all(&mut shards[1]);
    }
    assert_eq!(wakes.load(Ordering::SeqCst), 0);
}

#[test]
fn prepare_to_sleep_refuses_when_mail_waits_and_clears_the_mark() {
    let mut shards = grid::<u32>(2, 4);
    let wakes = counting_waker(&shards[1]);
    shards[0].stage(ShardId(1), 1);
    shards[0].flush();
    assert!(!shards[1].prepare_to_sleep());
    // The mark was cleared, so the next push does not wake an awake shard.
    shards[0].stage(ShardId(1), 2);
    assert_eq!(shards[0].flush().wakes, 0);
    assert_eq!(wakes.load(Ordering::SeqCst), 0);
    assert_eq!(drain_all(&mut shards[1]), vec![(0, 1), (0, 2)]);
    assert!(shards[1].prepare_to_sleep());
}

#[test]
fn drain_is_round_robin_across_sources_and_fifo_per_source() {
    let mut shards = grid::<u32>(4, 16);
    for src in 1..4u16 {
        for seq in 0..5 {
            shards[usize::from(src)].stage(ShardId(0), u32::from(src) * 100 + seq);
        }
        shards[usize::from(src)].flush();
    }
    assert_eq!(shards[0].inbox_len(), 15);
    let mut order = Vec::new();
    assert_eq!(shards[0].drain(4, |src, msg| order.push((src.0, msg))), 4);
    assert_eq!(order, vec![(1, 100), (2, 200), (3, 300), (1, 101)]);
    // The next call resumes after the last source served, not from shard 1 again.
    order.clear();
    assert_eq!(shards[0].drain(2, |src, msg| order.push((src.0, msg))), 2);
    assert_eq!(order, vec![(2, 201), (3, 301)]);
    let rest = drain_all(&mut shards[0]);
    assert_eq!(rest.len(), 9);
    for src in 1..4u16 {
        let per_source: Vec<u32> = rest
            .iter()
            .filter(|(s, _)| *s == src)
            .map(|(_, m)| *m)
            .collect();
        let base = u32::from(src) * 100;
        assert_eq!(per_source, vec![base + 2, base + 3, base + 4]);
    }
    // Strict rotation to the end: the last round takes one from each source.
    assert_eq!(rest[rest.len() - 3..], [(1, 104), (2, 204), (3, 304)]);
    assert_eq!(shards[0].inbox_len(), 0);
    assert_eq!(drain_all(&mut shards[0]), vec![]);
}

#[test]
fn drain_skips_empty_sources() {
    let mut shards = grid::<u32>(4, 16);
    for seq in 0..3 {
        shards[3].stage(ShardId(0), seq);
    }
    shards[3].flush();
    let mut got = Vec::new();
    assert_eq!(shards[0].drain(10, |src, msg| got.push((src.0, msg))), 3);
    assert_eq!(got, vec![(3, 0), (3, 1), (3, 2)]);
}

#[test]
fn counters_follow_staging_and_draining() {
    let mut shards = grid::<u32>(3, 3);
    assert_eq!((shards[0].shard(), shards[0].shards()), (ShardId(0), 3));
    assert_eq!(shards[2].shard(), ShardId(2));
    for msg in 0..5 {
        shards[0].stage(ShardId(2), msg);
    }
    shards[1].stage(ShardId(2), 9);
    assert_eq!((shards[0].staged(), shards[1].staged()), (5, 1));
    shards[0].flush();
    shards[1].flush();
    assert_eq!(shards[0].staged(), 2);
    assert_eq!(shards[1].staged(), 0);
    assert_eq!(shards[2].inbox_len(), 4);
    assert_eq!(shards[2].drain(1, |_, _| {}), 1);
    assert_eq!(shards[2].inbox_len(), 3);
}

#[test]
fn single_shard_grid_has_no_mail() {
    let mut shards = grid::<u32>(1, 4);
    let _wakes = counting_waker(&shards[0]);
    assert_eq!(shards[0].flush(), FlushStats::default());
    assert_eq!(shards[0].drain(10, |_, _| panic!("no sources")), 0);
    assert_eq!(shards[0].inbox_len(), 0);
    assert!(shards[0].prepare_to_sleep());
}

#[test]
#[should_panic(expected = "cannot stage mail")]
fn staging_for_self_panics() {
    let mut shards = grid::<u32>(2, 4);
    shards[0].stage(ShardId(0), 1);
}

#[test]
#[should_panic(expected = "cannot stage mail")]
fn staging_outside_the_grid_panics() {
    let mut shards = grid::<u32>(2, 4);
    shards[0].stage(ShardId(2), 1);
}

#[test]
#[should_panic(expected = "registered a waker twice")]
fn second_waker_panics() {
    let shards = grid::<u32>(2, 4);
    shards[0].set_waker(Box::new(|| {}));
    shards[0].set_waker(Box::new(|| {}));
}

#[test]
#[should_panic(expected = "without a waker")]
fn sleeping_without_waker_panics() {
    let shards = grid::<u32>(2, 4);
    shards[0].prepare_to_sleep();
}

#[test]
#[should_panic(expected = "lane capacity")]
fn zero_capacity_panics() {
    grid::<u32>(2, 0);
}

#[test]
#[should_panic(expected = "shards")]
fn zero_shards_panics() {
    grid::<u32>(0, 4);
}
