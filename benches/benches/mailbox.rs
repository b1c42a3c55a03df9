//! Criterion benches of `rookery-mailbox` between two real threads.
//!
//! What it measures:
//! - `mailbox/round_trip/{spin,park}`: one message to an echo shard and back, in ns per round
//!   trip. `spin` busy-polls both sides (the queue's own latency); `park` sleeps through
//!   `prepare_to_sleep` and a park/unpark waker on both sides (the sleep/wake path the engine
//!   takes when a shard is idle, dominated by the futex wake-up).
//! - `mailbox/one_way_batch64`: a producer stages 64 messages per turn and flushes once, a
//!   consumer drains (sleeping when empty); one iteration is one message, so the time per
//!   iteration is ns per message.
//!
//! What it does not measure: the engine's real wakers (eventfd, `MSG_RING`, `mio::Waker`), or
//! contention from more than two shards. On a 2-core machine the spin variant needs both cores;
//! other load on the box shows up directly in its numbers.
//!
//! Invariants: every iteration's message is accounted for before timing stops (the consumer
//! thread is joined inside the timed region), so a lost message hangs the bench rather than
//! flattering it.

#![forbid(unsafe_code)]

use std::hint::{black_box, spin_loop};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rookery_mailbox::{grid, Mailbox, ShardId};

/// Lane capacity for the round trip: one message is ever in flight.
const ROUND_TRIP_LANE: usize = 4;
/// Lane capacity for the one-way bench: a few batches, like an engine lane.
const ONE_WAY_LANE: usize = 1024;
/// Messages staged per producer turn (the brief's batch).
const BATCH: u64 = 64;
/// The echo shard stops when it receives this.
const STOP: u64 = u64::MAX;

/// How an idle shard waits for mail.
#[derive(Clone, Copy)]
enum Idle {
    /// Busy-poll: never sleeps, never needs a wake.
    Spin,
    /// `prepare_to_sleep`, then park until the waker unparks.
    Park,
}

/// Registers a park/unpark waker for the calling thread.
fn park_waker(mailbox: &Mailbox<u64>) {
    let me = thread::current();
    mailbox.set_waker(Box::new(move || me.unpark()));
}

/// Waits until mail may have arrived.
fn idle(mailbox: &Mailbox<u64>, how: Idle) {
    match how {
        Idle::Spin => spin_loop(),
        Idle::Park => {
            if mailbox.prepare_to_sleep() {
                thread::park();
                mailbox.awake();
            }
        }
    }
}

/// The echo shard: sends every message back to its source until `STOP`.
fn echo(mut mailbox: Mailbox<u64>, how: Idle) {
    park_waker(&mailbox);
    let mut replies = Vec::with_capacity(ROUND_TRIP_LANE);
    loop {
        let mut stop = false;
        mailbox.drain(ROUND_TRIP_LANE, |src, msg| {
            if msg == STOP {
                stop = true;
            } else {
                replies.push((src, msg));
            }
        });
        if stop {
            return;
        }
        if replies.is_empty() {
            idle(&mailbox, how);
            continue;
        }
        for (src, msg) in replies.drain(..) {
            mailbox.stage(src, msg);
        }
        // The lane back holds ROUND_TRIP_LANE messages and at most one is in flight.
        mailbox.flush();
    }
}

/// Runs `iters` round trips from this thread to an echo thread; returns the time they took.
fn round_trips(iters: u64, how: Idle) -> Duration {
    let mut shards = grid::<u64>(2, ROUND_TRIP_LANE);
    let (Some(echo_box), Some(mut ping)) = (shards.pop(), shards.pop()) else {
        panic!("grid(2) has two mailboxes");
    };
    let echo_shard = echo_box.shard();
    let echo_thread = thread::spawn(move || echo(echo_box, how));
    park_waker(&ping);
    let mut one_trip = |seq: u64| {
        ping.stage(echo_shard, seq);
        ping.flush();
        loop {
            let mut back = None;
            ping.drain(1, |_, msg| back = Some(msg));
            if let Some(msg) = back {
                assert_eq!(msg, seq, "echo returned the wrong message");
                return;
            }
            idle(&ping, how);
        }
    };
    // One untimed trip so that the echo thread is running before the clock starts.
    one_trip(0);
    let start = Instant::now();
    for seq in 1..=iters {
        one_trip(black_box(seq));
    }
    let elapsed = start.elapsed();
    ping.stage(echo_shard, STOP);
    ping.flush();
    echo_thread.join().expect("echo thread panicked");
    elapsed
}

/// The consumer: drains `total` messages, checking their order, sleeping when empty.
fn consume(mut mailbox: Mailbox<u64>, total: u64) {
    park_waker(&mailbox);
    let mut next = 0u64;
    while next < total {
        let got = mailbox.drain(usize::MAX, |_, msg| {
            assert_eq!(msg, next, "one-way mail out of order");
            next += 1;
        });
        if got == 0 {
            idle(&mailbox, Idle::Park);
        }
    }
}

/// Sends `iters` messages one way in batches of `BATCH`; returns the time until the consumer
/// has them all.
fn one_way(iters: u64) -> Duration {
    let mut shards = grid::<u64>(2, ONE_WAY_LANE);
    let (Some(consumer_box), Some(mut producer)) = (shards.pop(), shards.pop()) else {
        panic!("grid(2) has two mailboxes");
    };
    let dest: ShardId = consumer_box.shard();
    let consumer = thread::spawn(move || consume(consumer_box, iters));
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < iters {
        let batch_end = (seq + BATCH).min(iters);
        // Back-pressure as the engine does it: stage only while the last batch has left.
        if producer.staged() == 0 {
            while seq < batch_end {
                producer.stage(dest, seq);
                seq += 1;
            }
        }
        if producer.flush().left_staged > 0 {
            thread::yield_now();
        }
    }
    while producer.flush().left_staged > 0 {
        thread::yield_now();
    }
    consumer.join().expect("consumer thread panicked");
    start.elapsed()
}

fn bench_mailbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("mailbox");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip/spin", |b| {
        b.iter_custom(|iters| round_trips(iters, Idle::Spin));
    });
    group.bench_function("round_trip/park", |b| {
        b.iter_custom(|iters| round_trips(iters, Idle::Park));
    });
    group.bench_function("one_way_batch64", |b| b.iter_custom(one_way));
    group.finish();
}

criterion_group!(benches, bench_mailbox);
criterion_main!(benches);
