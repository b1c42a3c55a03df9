//! Criterion bench of XEP-0280 carbons fan-out: the cost a chat message pays for copies to
//! the owner's other devices, through `rookery_testkit::Cluster` (one shard).
//!
//! What it measures: one iteration is one chat message from bob to alice's resource `d0`
//! (received copies) or from `d0` to bob (sent copies), with alice online on `DEVICES`
//! resources, and everything the router does with it until quiet: store (the message is
//! stored before it is written), write, and one wrapped copy per other carbons-enabled
//! session. `*_no_carbons` is the same message with carbons off on every device: the
//! difference is the fan-out cost. The harness's own costs are included (its `Effects`
//! appends every write to a per-conn `Vec`, drained untimed every `DRAIN_EVERY` iterations).
//!
//! What it does not measure: sockets or the loop.
//!
//! Invariants: before timing, each other device is checked to get exactly one copy (or none
//! without carbons), and after timing the store refused nothing (no bounce path measured).

#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rookery_testkit::{ClientId, Cluster};

const DEVICES: usize = 4;
const DRAIN_EVERY: u64 = 64;

struct Setup {
    cluster: Cluster,
    bob: ClientId,
    devices: Vec<ClientId>,
}

fn setup(carbons: bool) -> Setup {
    let mut cluster = Cluster::new(1);
    let (bob, _) = cluster.login(0, "bob", Some("x"));
    let mut devices = Vec::new();
    for n in 0..DEVICES {
        let (device, _) = cluster.login(0, "alice", Some(&format!("d{n}")));
        if carbons {
            cluster.send(
                device,
                "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
            );
        }
        devices.push(device);
    }
    drain(&mut cluster, bob, &devices);
    Setup {
        cluster,
        bob,
        devices,
    }
}

fn drain(cluster: &mut Cluster, bob: ClientId, devices: &[ClientId]) {
    cluster.take_bytes(bob);
    for &d in devices {
        cluster.take_bytes(d);
    }
}

const TO_ALICE: &str =
    "<message to='alice@example.com/d0' type='chat'><body>hello from bob</body></message>";
const TO_BOB: &str =
    "<message to='bob@example.com/x' type='chat'><body>hello from alice</body></message>";

fn check(setup: &mut Setup, carbons: bool) {
    let copies = usize::from(carbons);
    setup.cluster.send(setup.bob, TO_ALICE);
    setup.cluster.send(setup.devices[0], TO_BOB);
    let first = setup.cluster.take_output(setup.devices[0]);
    assert_eq!(first.matches("hello from bob").count(), 1, "{first}");
    for &d in &setup.devices[1..] {
        let out = setup.cluster.take_output(d);
        assert_eq!(out.matches("<received ").count(), copies, "{out}");
        assert_eq!(out.matches("<sent ").count(), copies, "{out}");
    }
    setup.cluster.take_bytes(setup.bob);
}

fn bench_direction(c: &mut Criterion, name: &str, carbons: bool, to_alice: bool) {
    let mut setup = setup(carbons);
    check(&mut setup, carbons);
    let (sender, stanza) = if to_alice {
        (setup.bob, TO_ALICE)
    } else {
        (setup.devices[0], TO_BOB)
    };
    let mut group = c.benchmark_group("carbons");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            setup.cluster.send(sender, stanza);
            n += 1;
            if n.is_multiple_of(DRAIN_EVERY) {
                drain(&mut setup.cluster, setup.bob, &setup.devices);
            }
        })
    });
    group.finish();
    let stats = setup.cluster.router(0).stats();
    assert_eq!(
        stats.store_refusals, 0,
        "the store refused messages: a bounce was measured"
    );
    let expected = if carbons { (DEVICES - 1) as u64 } else { 0 };
    assert!(stats.carbons_out >= expected);
}

fn bench_carbons(c: &mut Criterion) {
    bench_direction(c, "received_no_carbons", false, true);
    bench_direction(c, "received_3_copies", true, true);
    bench_direction(c, "sent_no_carbons", false, false);
    bench_direction(c, "sent_3_copies", true, false);
}

criterion_group!(benches, bench_carbons);
criterion_main!(benches);
