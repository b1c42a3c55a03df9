//! Loom models of the mailbox protocol: staging, flush with back-pressure (lane capacity 1),
//! the asleep flag, and the wake. A lost wake-up shows up as a loom deadlock (the receiver
//! parks and no thread can unpark it); lost, duplicated or reordered mail as a failed assert.
//!
//! Run (about the runtime: see the crate docs and the report; the preemption bound is 2 unless
//! `LOOM_MAX_PREEMPTIONS` says otherwise):
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-loom RUSTFLAGS="--cfg loom" cargo test -p rookery-mailbox --test loom --release
//! ```
//!
//! What the models do not cover: crossbeam's `ArrayQueue` itself (loom sees the stand-in lane in
//! `src/sync.rs`, which keeps the same contract with Acquire/Release indices), and the real
//! wake mechanism (modelled as a flag plus loom's park/unpark, like an eventfd).

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
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

/// A shard that only sends: stages everything, then flushes every turn until nothing is left
/// staged (the lane has room for one message, so it must wait for the receiver).
fn send_all(mut mailbox: Mailbox<u32>, dest: ShardId, msgs: u32) {
    for msg in 0..msgs {
        mailbox.stage(dest, msg);
    }
    loop {
        let stats = mailbox.flush();
        assert_eq!(stats.left_staged, mailbox.staged());
        if mailbox.staged() == 0 {
            return;
        }
        thread::yield_now();
    }
}

/// A shard that only receives: drains until `expected` messages arrived, sleeping through
/// `prepare_to_sleep` whenever its inbox is empty. "Blocking" waits for the wake fn's flag.
fn receive_all(mut mailbox: Mailbox<u32>, expected: usize) -> Vec<(ShardId, u32)> {
    let woken = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&woken);
    let me = thread::current();
    mailbox.set_waker(Box::new(move || {
        // Release pairs with the Acquire swap below (the model's eventfd). A swap, not a store,
        // so that loom keeps all writes to the flag in one modification order (see the
        // mailbox module docs on the asleep flag).
        flag.swap(true, Ordering::Release);
        me.unpark();
    }));
    let mut got = Vec::new();
    while got.len() < expected {
        if mailbox.drain(usize::MAX, |src, msg| got.push((src, msg))) > 0 {
            continue;
        }
        if mailbox.prepare_to_sleep() {
            // Blocks until a wake; if the wake was lost, loom reports a deadlock here.
            while !woken.swap(false, Ordering::Acquire) {
                thread::park();
            }
            mailbox.awake();
        }
    }
    assert_eq!(mailbox.inbox_len(), 0, "more mail than was sent");
    got
}

fn one_sender(msgs: u32) {
    model(move || {
        let mut shards = grid::<u32>(2, 1);
        let (Some(receiver), Some(sender)) = (shards.pop(), shards.pop()) else {
            panic!("grid(2) has two mailboxes");
        };
        let dest = receiver.shard();
        let recv = thread::spawn(move || receive_all(receiver, msgs as usize));
        send_all(sender, dest, msgs);
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
        let recv = thread::spawn(move || receive_all(receiver, 2 * MSGS as usize));
        let other = thread::spawn(move || send_all(sender_1, dest, MSGS));
        send_all(sender_0, dest, MSGS);
        other.join().expect("sender 1 panicked");
        let got = recv.join().expect("receiver panicked");
        for src in [ShardId(0), ShardId(1)] {
            let from_src: Vec<u32> =
                got.iter().filter(|(s, _)| *s == src).map(|(_, m)| *m).collect();
            assert_eq!(from_src, (0..MSGS).collect::<Vec<_>>(), "mail from {src}");
        }
    });
}
