//! Store-and-forward under pressure: backlogs far larger than a conn's output cap reach their
//! clients complete and in order (without XEP-0198, with it, and to a reader that stalls),
//! stored messages leave the store only once handed to the kernel or acknowledged, the
//! stanzas come back from the log when the store keeps them there, and login probes of a big
//! roster never pile past the cap. The cluster harness models each conn's output queue: bytes
//! sent stay queued until the (paused) client reads them, and a send past the cap aborts the
//! conn, as the driver does.

mod common;

use common::{ack, chat, enable, log_cluster, message_ids, TempDir};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

/// The output cap the tests give every conn: small, so a few hundred messages exceed it.
const CAP: usize = 64 * 1024;
const SHARDS: u16 = 2;

fn capped(adjust: impl FnOnce(&mut rookery_router::RouterConfig)) -> Cluster {
    let mut cluster = Cluster::with_config(SHARDS, |config| {
        config.max_output_bytes = CAP;
        adjust(config);
    });
    cluster.set_output_cap(CAP);
    cluster
}

/// `count` chats of about `size` bytes from alice (shard 0) to bob's bare JID.
fn flood(cluster: &mut Cluster, alice: ClientId, bob: &str, count: usize, size: usize) {
    let body = "x".repeat(size);
    for n in 0..count {
        cluster.send(alice, &chat(bob, &format!("m{n}"), &body));
    }
}

/// A cluster with a log where alice (shard 0) sent `count` chats of `size` bytes to offline
/// bob (homed on shard 1), committed: the dir (kept while it lives), the cluster, bob's local
/// part and bare JID.
fn committed_backlog(name: &str, count: usize, size: usize) -> (TempDir, Cluster, String, String) {
    let dir = TempDir::new(name);
    let (mut cluster, alice, bob_name, bob) = pair(log_cluster(SHARDS, dir.path()));
    flood(&mut cluster, alice, &bob, count, size);
    cluster.commit_all();
    (dir, cluster, bob_name, bob)
}

fn expected(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("m{n}")).collect()
}

/// Reads everything waiting for `client`, in steps of `step` bytes, until nothing more
/// comes; returns what it got. `between` runs after each step (acks, for instance).
fn read_all(
    cluster: &mut Cluster,
    client: ClientId,
    step: usize,
    mut between: impl FnMut(&mut Cluster, &str),
) -> String {
    let mut got = String::new();
    for _ in 0..100_000 {
        if cluster.is_closed(client) {
            panic!(
                "the conn was closed: {}",
                &got[got.len().saturating_sub(300)..]
            );
        }
        if cluster.read_some(client, step) == 0 {
            break;
        }
        let text = cluster.take_output(client);
        between(cluster, &text);
        got.push_str(&text);
    }
    got
}

/// The cluster, alice's client, bob's local part and bob's bare JID.
type Pair = (Cluster, ClientId, String, String);

/// Alice online on shard 0; bob (homed on shard 1) offline.
fn pair(cluster: Cluster) -> Pair {
    let mut cluster = cluster;
    let (alice, _) = cluster.login(0, &user_homed_on("alice", 0, SHARDS), Some("a"));
    let bob_name = user_homed_on("bob", 1, SHARDS);
    let bob = format!("{bob_name}@example.com");
    (cluster, alice, bob_name, bob)
}

#[test]
fn an_offline_backlog_larger_than_the_cap_reaches_a_client_without_sm_complete() {
    let (mut cluster, alice, bob_name, bob) = pair(capped(|_| {}));
    flood(&mut cluster, alice, &bob, 2_000, 300);
    assert_eq!(cluster.router(1).store().queue_len(&bob), 2_000);
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.pause_reading(b);
    cluster.send(b, "<presence/>");
    assert!(!cluster.is_closed(b), "the backlog must not trip the cap");
    let waiting = cluster.unread_bytes(b);
    assert!(waiting < CAP, "only what fits was written: {waiting}");
    // Written but not read: nothing is deleted yet.
    assert_eq!(cluster.router(1).store().queue_len(&bob), 2_000);
    let got = read_all(&mut cluster, b, 16 * 1024, |_, _| {});
    assert_eq!(message_ids(&got), expected(2_000), "complete and in order");
    assert!(got.contains("<delay xmlns='urn:xmpp:delay'"));
    assert_eq!(
        cluster.router(1).store().queue_len(&bob),
        0,
        "deleted once handed over"
    );
    assert!(!cluster.is_closed(b));
}

#[test]
fn a_client_that_leaves_before_reading_loses_nothing() {
    let (mut cluster, alice, bob_name, bob) = pair(capped(|_| {}));
    flood(&mut cluster, alice, &bob, 500, 300);
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.pause_reading(b);
    cluster.send(b, "<presence/>");
    assert!(cluster.unread_bytes(b) > 0);
    // The conn dies with everything still queued: nothing was handed to the kernel.
    cluster.disconnect(b);
    assert_eq!(cluster.router(1).store().queue_len(&bob), 500);
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.send(b, "<presence/>");
    let got = cluster.take_output(b);
    assert_eq!(message_ids(&got), expected(500));
    assert_eq!(cluster.router(1).store().queue_len(&bob), 0);
}

#[test]
fn a_sm_client_acking_every_hundred_gets_every_message_once_in_order() {
    // A client that acks only every 100 stanzas needs a window of at least 100 of them (the
    // default, 8 MiB, holds 100 of 60 KiB); 128 KiB holds ~300 of these.
    let (mut cluster, alice, bob_name, bob) =
        pair(capped(|config| config.sm_window_bytes = 128 * 1024));
    flood(&mut cluster, alice, &bob, 3_000, 300);
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    enable(&mut cluster, b, true);
    cluster.pause_reading(b);
    cluster.send(b, "<presence/>");
    let mut handled = 0u32;
    let mut acked = 0u32;
    let got = read_all(&mut cluster, b, 8 * 1024, |cluster, text| {
        handled += message_ids(text).len() as u32;
        if handled - acked >= 100 {
            acked = handled;
            cluster.send(b, &ack(acked));
        }
    });
    let ids = message_ids(&got);
    assert_eq!(ids, expected(3_000), "every message once, in order");
    cluster.send(b, &ack(ids.len() as u32));
    assert_eq!(cluster.router(1).store().queue_len(&bob), 0);
}

#[test]
fn a_stalled_reader_holds_live_messages_in_the_store_not_in_memory() {
    let (mut cluster, alice, bob_name, bob) = pair(capped(|_| {}));
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.send(b, "<presence/>");
    cluster.take_output(b);
    cluster.pause_reading(b);
    flood(&mut cluster, alice, &bob, 1_000, 500);
    assert!(
        !cluster.is_closed(b),
        "live stored messages never trip the cap"
    );
    assert!(cluster.unread_bytes(b) <= CAP / 2 + 1024);
    assert!(cluster.router(1).stats().backlogs_started >= 1);
    let got = read_all(&mut cluster, b, 4 * 1024, |_, _| {});
    assert_eq!(message_ids(&got), expected(1_000));
    assert_eq!(cluster.router(1).store().queue_len(&bob), 0);
}

#[test]
fn a_backlog_in_the_log_is_read_back_and_delivered() {
    let (_dir, mut cluster, bob_name, bob) = committed_backlog("pressure-log", 300, 200);
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.send(b, "<presence/>");
    let got = cluster.take_output(b);
    assert_eq!(message_ids(&got), expected(300));
    assert!(got.contains(&"x".repeat(200)));
    let stats = cluster.router(1).stats();
    assert!(stats.log_reads >= 300, "read back from the log: {stats:?}");
    assert_eq!(stats.log_read_errors, 0);
    cluster.commit_all();
    assert_eq!(cluster.router(1).store().queue_len(&bob), 0);
}

#[test]
fn a_damaged_record_stays_queued_and_the_rest_still_arrive() {
    use std::os::unix::fs::FileExt;
    let (_dir, mut cluster, bob_name, bob) = committed_backlog("pressure-damage", 3, 100);
    // Damage the second message's stanza on disk, behind the store's back.
    let store = cluster.router(1).store();
    let second = *store.queue(&bob).nth(1).expect("three queued");
    let rookery_store::Body::InLog(span) = store.body(&second) else {
        panic!("committed records are in the log");
    };
    let path = store.log_path().expect("a log").to_path_buf();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(b"#", span.offset + u64::from(span.len) - 20)
        .unwrap();
    let (b, _) = cluster.login(1, &bob_name, Some("phone"));
    cluster.send(b, "<presence/>");
    let got = cluster.take_output(b);
    assert_eq!(
        message_ids(&got),
        ["m0", "m2"],
        "the damaged one is not sent"
    );
    assert_eq!(cluster.router(1).stats().log_read_errors, 1);
    cluster.commit_all();
    assert_eq!(
        cluster.router(1).store().queue_len(&bob),
        1,
        "it stays queued"
    );
}

#[test]
fn login_probes_of_a_big_roster_never_pass_the_cap() {
    // 300 contacts, each online with a 600-byte status: ~180 KB of answers, three times
    // the cap; with one probe fan-out they would arrive at once and abort the conn.
    let mut cluster = capped(|config| config.presence_burst = 100_000);
    let owner = user_homed_on("owner", 0, SHARDS);
    let owner_jid = format!("{owner}@example.com");
    let status = "s".repeat(600);
    let mut contacts = Vec::new();
    for n in 0..300 {
        let name = format!("contact{n}");
        let (c, _) = cluster.login((n % 2) as u16, &name, Some("r"));
        // The contact approves the owner's subscription ahead (the owner asks below).
        contacts.push((c, format!("{name}@example.com")));
    }
    let (o, _) = cluster.login(0, &owner, Some("r"));
    for (c, contact) in &contacts {
        cluster.send(o, &format!("<presence to='{contact}' type='subscribe'/>"));
        cluster.send(
            *c,
            &format!("<presence to='{owner_jid}' type='subscribed'/>"),
        );
        cluster.send(
            *c,
            &format!("<presence><status>{status}</status></presence>"),
        );
    }
    cluster.disconnect(o);
    let (o, _) = cluster.login(0, &owner, Some("r"));
    cluster.pause_reading(o);
    cluster.send(o, "<presence/>");
    let mut got = String::new();
    for _ in 0..10_000 {
        assert!(!cluster.is_closed(o), "the probe answers tripped the cap");
        assert!(
            cluster.unread_bytes(o) <= CAP,
            "{}",
            cluster.unread_bytes(o)
        );
        cluster.read_some(o, 32 * 1024);
        got.push_str(&cluster.take_output(o));
        cluster.advance(1);
        if got.matches(&status).count() == 300 {
            break;
        }
    }
    assert_eq!(
        got.matches(&status).count(),
        300,
        "every contact's presence"
    );
}

#[test]
fn a_user_gets_at_most_max_resources_sessions() {
    let mut cluster = Cluster::with_config(1, |config| config.max_resources = 2);
    cluster.login(0, "alice", Some("one"));
    cluster.login(0, "alice", Some("two"));
    let third = cluster.authenticate(0, "alice");
    cluster.send(
        third,
        "<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>three</resource></bind></iq>",
    );
    let out = cluster.take_output(third);
    assert!(
        out.contains("id='b3'") && out.contains("<resource-constraint "),
        "{out}"
    );
    assert!(out.contains("type='wait'"), "{out}");
    assert_eq!(cluster.router(0).stats().resource_refusals, 1);
    // Binding an existing resource replaces that session: not a new one.
    let (_, full) = cluster.login(0, "alice", Some("two"));
    assert_eq!(full, "alice@example.com/two");
}

#[test]
fn an_address_may_hold_only_so_many_conns_before_logging_in() {
    let mut cluster = Cluster::with_config(1, |config| config.max_unauth_per_address = 2);
    let here: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let elsewhere: std::net::IpAddr = "192.0.2.8".parse().unwrap();
    let first = cluster.connect_from(0, Some(here));
    let _second = cluster.connect_from(0, Some(here));
    let third = cluster.connect_from(0, Some(here));
    let out = cluster.take_output(third);
    assert!(out.contains("<policy-violation "), "{out}");
    assert!(cluster.is_closed(third));
    let other = cluster.connect_from(0, Some(elsewhere));
    assert!(!cluster.is_closed(other), "another address is not affected");
    assert_eq!(cluster.router(0).stats().unauth_refusals, 1);
    // Once one logs in (or leaves), the address has room again.
    cluster.disconnect(first);
    let fourth = cluster.connect_from(0, Some(here));
    assert!(!cluster.is_closed(fourth));
}
