//! Loom models of the mailbox protocol: staging, flush with back-pressure (lane capacity 1),
//! the asleep flag, and the wake. A lost wake-up shows up as a loom deadlock (the receiver
//! parks and no thread can unpark it); lost, duplicated or reordered mail as a failed assert.
//!
//! Run (give loom its own target dir, e.g. `CARGO_TARGET_DIR=/work/target-loom`, so the cfg
//! does not invalidate the normal build):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p rookery-mailbox --test loom --release
//! ```
//!
//! The preemption bound is 2 unless `LOOM_MAX_PREEMPTIONS` says otherwise; the whole file then
//! runs in about half a minute on a 2-core machine. Removing either SeqCst fence in
//! `src/mailbox.rs` makes every model here deadlock (checked when the models were written).
//!
//! What the models do not cover: crossbeam's `ArrayQueue` itself (loom sees the stand-in lane in
//! `src/sync.rs`, which keeps the same contract with Acquire/Release indices), and the real
//! wake mechanism (modelled as a flag plus loom's park/unpark, like an eventfd).

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Notify};
use loom::thread;
use rookery_mailbox::{grid, Mailbox, ShardId};

/// Bounded exploration so the whole file runs in well under a minute.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// A shard that only sends: stages everything, then flushes once per "turn" until nothing is
/// left staged (the lane has room for one message, so it must wait for the receiver).
/// `next_turn` models the time between two loop turns.
fn send_all(mut mailbox: Mailbox<u32>, dest: ShardId, msgs: u32, next_turn: impl Fn()) {
    for msg in 0..msgs {
        mailbox.stage(dest, msg);
    }
    loop {
        let stats = mailbox.flush();
        assert_eq!(stats.left_staged, mailbox.staged());
        if mailbox.staged() == 0 {
            return;
        }
        next_turn();
    }
}

/// A shard that only receives: drains until `expected` messages arrived, sleeping through
/// `prepare_to_sleep` whenever its inbox is empty. After a drain that freed room it notifies
/// `room` (the senders' next turn, when they wait for one instead of spinning).
fn receive_all(
    mut mailbox: Mailbox<u32>,
    expected: usize,
    room: &[Arc<Notify>],
) -> Vec<(ShardId, u32)> {
    let got = receive(&mut mailbox, expected, room);
    assert_eq!(mailbox.inbox_len(), 0, "more mail than was sent");
    got
}

/// Like [`receive_all`], keeping the mailbox (for a shard that replies afterwards).
fn receive_all_into(mailbox: &mut Mailbox<u32>, expected: usize) -> Vec<(ShardId, u32)> {
    receive(mailbox, expected, &[])
}

/// The receive loop. "Blocking" waits for the wake fn's flag, like an eventfd read; if a wake
/// is lost, the shard parks forever and loom reports a deadlock.
fn receive(
    mailbox: &mut Mailbox<u32>,
    expected: usize,
    room: &[Arc<Notify>],
) -> Vec<(ShardId, u32)> {
    let woken = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&woken);
    let me = thread::current();
    mailbox.set_waker(Box::new(move || {
        // Release pairs with the Acquire swap below. A swap, not a store, so that loom keeps
        // all writes to the flag in one modification order (see the mailbox module docs on
        // the asleep flag).
        flag.swap(true, Ordering::Release);
        me.unpark();
    }));
    let mut got = Vec::new();
    while got.len() < expected {
        if mailbox.drain(usize::MAX, |src, msg| got.push((src, msg))) > 0 {
            room.iter().for_each(|sender| sender.notify());
            continue;
        }
        if mailbox.prepare_to_sleep() {
            while !woken.swap(false, Ordering::Acquire) {
                thread::park();
            }
            mailbox.awake();
        }
    }
    got
}

fn one_sender(msgs: u32) {
    model(move || {
        let mut shards = grid::<u32>(2, 1);
        let (Some(receiver), Some(sender)) = (shards.pop(), shards.pop()) else {
            panic!("grid(2) has two mailboxes");
        };
        let dest = receiver.shard();
        let recv = thread::spawn(move || receive_all(receiver, msgs as usize, &[]));
        // The sender retries at any moment: a spin with yields.
        send_all(sender, dest, msgs, thread::yield_now);
        let got = recv.join().expect("receiver panicked");
        let expected: Vec<(ShardId, u32)> = (0..msgs).map(|m| (ShardId(0), m)).collect();
        assert_eq!(got, expected);
    });
}

#[test]
fn one_sender_two_messages_capacity_one() {
    one_sender(2);
}

#[test]
fn one_sender_three_messages_capacity_one() {
    one_sender(3);
}

/// Two senders spinning on full lanes can starve the receiver in loom's search (each yield is
/// a new branch point), so here a sender's next turn comes when the receiver frees room. The
/// receiver's side of the protocol is unchanged; a lost wake still deadlocks everything.
#[test]
fn two_senders_one_receiver_capacity_one() {
    const MSGS: u32 = 2;
    model(|| {
        let mut shards = grid::<u32>(3, 1);
        let (Some(receiver), Some(sender_1), Some(sender_0)) =
            (shards.pop(), shards.pop(), shards.pop())
        else {
            panic!("grid(3) has three mailboxes");
        };
        let dest = receiver.shard();
        let room = [Arc::new(Notify::new()), Arc::new(Notify::new())];
        let [room_0, room_1] = room.clone();
        let recv = thread::spawn(move || receive_all(receiver, 2 * MSGS as usize, &room));
        let other = thread::spawn(move || send_all(sender_1, dest, MSGS, || room_1.wait()));
        send_all(sender_0, dest, MSGS, || room_0.wait());
        other.join().expect("sender 1 panicked");
        let got = recv.join().expect("receiver panicked");
        for src in [ShardId(0), ShardId(1)] {
            let from_src: Vec<u32> = got
                .iter()
                .filter(|(s, _)| *s == src)
                .map(|(_, m)| *m)
                .collect();
            assert_eq!(from_src, (0..MSGS).collect::<Vec<_>>(), "mail from {src}");
        }
    });
}

/// Both shards send and sleep: A sends a token, B echoes it, each sleeps through
/// `prepare_to_sleep` while waiting. Checks the protocol when every shard is both a sender
/// and a sleeper.
#[test]
fn ping_pong_both_sides_sleep() {
    model(|| {
        let mut shards = grid::<u32>(2, 1);
        let (Some(mut echo), Some(mut client)) = (shards.pop(), shards.pop()) else {
            panic!("grid(2) has two mailboxes");
        };
        let echo_thread = thread::spawn(move || {
            let got = receive_all_into(&mut echo, 1);
            echo.stage(ShardId(0), got[0].1 + 1);
            echo.flush();
            assert_eq!(echo.staged(), 0, "an empty lane takes the reply");
        });
        client.stage(ShardId(1), 7);
        client.flush();
        let got = receive_all_into(&mut client, 1);
        assert_eq!(got, vec![(ShardId(1), 8)]);
        echo_thread.join().expect("echo panicked");
    });
}
