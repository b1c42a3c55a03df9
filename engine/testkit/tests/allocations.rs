//! Heap allocations per routed chat message, counted by a global allocator: the router's
//! hot path is meant to be allocation-aware (issue 15: routing without allocation), and this
//! test keeps the count from creeping up unseen.
//!
//! What it counts: one chat message from bob to alice (both online on one shard, XEP-0198 off)
//! through `rookery_testkit::Cluster`: parse, stamp, store, write, until quiet. The harness's
//! own buffers are drained and reused outside the counted window. Prints the count; fails
//! above `BUDGET`.

#![forbid(unsafe_code)]

use std::alloc::System;

use rookery_testkit::Cluster;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MESSAGES: u64 = 1000;

/// The harness hands each client's output over as a fresh `Vec` (`take_bytes`): one
/// allocation per message is the harness's, not the router's.
const HARNESS: f64 = 1.0;
/// Allocations the router may make per message on top (today: the stamped stanza, shared by
/// the store and the write).
const BUDGET: f64 = 1.0;
/// The same across shards (today 5: the stanza, the mail, its JIDs, the commit notice back).
const CROSS_SHARD_BUDGET: f64 = 5.0;

fn per_message(stream_management: bool, shards: u16) -> f64 {
    let mut cluster = Cluster::new(shards);
    let (bob, _) = cluster.login(0, "bob", Some("x"));
    // With two shards: an alice homed on the other shard than bob's (the mail crosses).
    let (alice, alice_name) = (0..64)
        .map(|n| format!("alice{n}"))
        .find_map(|name| {
            let (client, _) = cluster.login(0, &name, Some("d0"));
            let crosses = cluster.shard_of(client) != cluster.shard_of(bob);
            (shards == 1 || crosses).then_some((client, name))
        })
        .expect("a user homed on the other shard");
    if stream_management {
        for client in [bob, alice] {
            cluster.send(client, "<enable xmlns='urn:xmpp:sm:3'/>");
            assert!(cluster.take_output(client).contains("<enabled"));
        }
    }
    let msg = format!(
        "<message to='{alice_name}@example.com/d0' type='chat' id='m'><body>hello</body></message>"
    );
    // Warm up: buffers and tables reach their steady size (XEP-0198: alice acks as she goes).
    let mut handled = 0u32;
    let mut round = |cluster: &mut Cluster| {
        cluster.send(bob, &msg);
        if stream_management {
            handled += 1;
            cluster.send(alice, &format!("<a xmlns='urn:xmpp:sm:3' h='{handled}'/>"));
        }
        cluster.take_bytes(alice);
        cluster.take_bytes(bob);
    };
    for _ in 0..200 {
        round(&mut cluster);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..MESSAGES {
        round(&mut cluster);
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / MESSAGES as f64
}

/// One test, both cases in turn: the allocator's counters are process-wide, so parallel
/// tests would count each other's allocations.
#[test]
fn allocations_per_routed_chat_message() {
    let plain = per_message(false, 1);
    eprintln!("allocations per routed chat message: {plain:.2} (harness {HARNESS})");
    assert!(
        plain <= HARNESS + BUDGET,
        "{plain:.2} allocations per message: the router's hot path allocates more than it did"
    );
    // XEP-0198 on both ends: the sender's handled count and the recipient's unacked window
    // (alice acks each message; the test's `format!` of her `<a/>` is one more harness
    // allocation).
    let managed = per_message(true, 1);
    eprintln!(
        "allocations per routed chat message, XEP-0198 on: {managed:.2} (harness {})",
        HARNESS + 1.0
    );
    assert!(
        managed <= HARNESS + 1.0 + BUDGET,
        "{managed:.2} allocations per message with XEP-0198: more than the budget"
    );
    // Across shards: the mail to the recipient's shard and the commit notice back.
    let crossing = per_message(false, 2);
    eprintln!("allocations per chat message across shards: {crossing:.2} (harness {HARNESS})");
    assert!(
        crossing <= HARNESS + CROSS_SHARD_BUDGET,
        "{crossing:.2} allocations per cross-shard message: more than the budget"
    );
}
