//! Criterion benches of fan-out in the router: a presence change to 50 contacts, and a group
//! message to 1,024 members, across 2 shards, through `rookery_testkit::Cluster`.
//!
//! What it measures: one iteration is one stanza sent by one client and everything the
//! routers do with it until quiet: the sender's shard builds the plan (presence: from the
//! roster; group: the room's cached plan), one `Mail::Fanout` per remote shard, and each
//! shard stamps `to` and writes a copy per recipient session. Throughput is in delivered
//! stanzas (copies). The harness's own costs are included (its `Effects` appends every copy
//! to a per-conn `Vec` in a `HashMap`, drained untimed every `DRAIN_EVERY` iterations), so
//! the numbers are a floor for the router alone.
//!
//! What it does not measure: sockets, the mailbox, or the loop (see the loadgen runs in
//! `results/`).
//!
//! Invariants: every copy is checked once before timing (each contact or member gets the
//! stanza exactly once).

#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

const SHARDS: u16 = 2;
const CONTACTS: usize = 50;
const MEMBERS: usize = 1024;
const DRAIN_EVERY: u64 = 64;

fn presence_cluster() -> (Cluster, ClientId, Vec<ClientId>) {
    let mut cluster = Cluster::with_config(SHARDS, |c| c.presence_burst = u32::MAX);
    let alice = user_homed_on("alice", 0, SHARDS);
    let (a, _) = cluster.login(0, &alice, Some("r"));
    cluster.send(a, "<presence/>");
    let mut contacts = Vec::new();
    for n in 0..CONTACTS {
        let shard = (n % 2) as u16;
        let user = user_homed_on(&format!("c{n}x"), shard, SHARDS);
        let (c, _) = cluster.login(shard, &user, Some("r"));
        cluster.send(c, "<presence/>");
        let bare = format!("{user}@example.com");
        // Mutual subscription ('both'), as between the loadgen's contacts.
        cluster.send(a, &format!("<presence to='{bare}' type='subscribe'/>"));
        cluster.send(
            c,
            &format!("<presence to='{alice}@example.com' type='subscribed'/>"),
        );
        cluster.send(
            c,
            &format!("<presence to='{alice}@example.com' type='subscribe'/>"),
        );
        cluster.send(a, &format!("<presence to='{bare}' type='subscribed'/>"));
        contacts.push(c);
    }
    drain(&mut cluster, a, &contacts);
    (cluster, a, contacts)
}

fn group_cluster() -> (Cluster, ClientId, Vec<ClientId>) {
    let mut cluster = Cluster::with_config(SHARDS, |c| c.group_max_members = MEMBERS);
    let room = "big@groups.example.com";
    let mut members = Vec::new();
    for n in 0..MEMBERS {
        let shard = (n % 2) as u16;
        let user = user_homed_on(&format!("m{n}x"), shard, SHARDS);
        let (m, _) = cluster.login(shard, &user, Some("r"));
        cluster.send(
            m,
            &format!(
                "<presence to='{room}/n{n}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
            ),
        );
        if n == 0 {
            // Only moderators' presence is broadcast: joins stay O(1), as in a big group.
            cluster.send(
                m,
                &format!(
                    "<iq type='set' id='cfg' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                     <x xmlns='jabber:x:data' type='submit'>\
                     <field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field>\
                     </x></query></iq>"
                ),
            );
        }
        cluster.take_bytes(m);
        members.push(m);
    }
    let sender = members[0];
    (cluster, sender, members)
}

fn drain(cluster: &mut Cluster, sender: ClientId, others: &[ClientId]) {
    cluster.take_bytes(sender);
    for &c in others {
        cluster.take_bytes(c);
    }
}

/// Sends `stanza` from `sender` and checks that each of `recipients` got exactly one copy
/// (holding `marker`): the bench then measures a path known to deliver.
fn one_copy_each(
    cluster: &mut Cluster,
    sender: ClientId,
    stanza: &str,
    marker: &str,
    recipients: &[ClientId],
) {
    cluster.send(sender, stanza);
    for &recipient in recipients {
        let out = cluster.take_output(recipient);
        assert_eq!(
            out.matches(marker).count(),
            1,
            "one copy per recipient: {out}"
        );
    }
}

fn bench_presence(c: &mut Criterion) {
    let (mut cluster, alice, contacts) = presence_cluster();
    let check = "<presence><status>check</status></presence>";
    one_copy_each(&mut cluster, alice, check, "check", &contacts);
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(CONTACTS as u64));
    let mut n = 0u64;
    group.bench_function("presence_50_contacts", |b| {
        b.iter(|| {
            cluster.send(alice, "<presence><status>busy</status></presence>");
            n += 1;
            if n.is_multiple_of(DRAIN_EVERY) {
                drain(&mut cluster, alice, &contacts);
            }
        })
    });
    group.finish();
}

fn bench_group(c: &mut Criterion) {
    let (mut cluster, sender, members) = group_cluster();
    let room = "big@groups.example.com";
    let message = format!("<message to='{room}' type='groupchat'><body>hello all</body></message>");
    one_copy_each(&mut cluster, sender, &message, "hello all", &members);
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.sample_size(20);
    let mut n = 0u64;
    group.bench_function("group_1024_members", |b| {
        b.iter(|| {
            cluster.send(sender, &message);
            n += 1;
            if n.is_multiple_of(4) {
                drain(&mut cluster, sender, &members);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_presence, bench_group);
criterion_main!(benches);
