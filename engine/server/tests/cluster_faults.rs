//! Cluster faults under a steady cross-node load with XEP-0198: a real nats-server and three
//! real nodes (one shard each, poll backend: one backend is enough here), raw clients.
//!
//! SIGKILL of the recipient's home node in the middle of the stream, then a restart on the
//! same data dir and address: every message the sender saw acknowledged (`<a h>`) arrives at
//! its recipient (live before the kill, or from the offline store at the next login), except
//! the ones the sender got back as errors (documented in ARCHITECTURE.md "Cluster": mail lost
//! for good is answered with `remote-server-timeout` and counts as handled); none arrives
//! twice. The nats-server restart and the SIGSTOP faults run under rookery-load
//! (loadgen/tests/cluster.rs). Bounded: about a minute; every process is killed by pid.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rookery_cluster::{ClusterFile, NodeId, Placement};
use rookery_testkit::nats::{free_port, NatsServer};
use support::{RawClient, Server, DOMAIN};

fn single(text: &str) -> String {
    text.replace('"', "'")
}

/// Ids (`mN`) of the messages in `text`, with how many times each appears.
fn message_ids(text: &str) -> BTreeMap<u32, u32> {
    let mut ids = BTreeMap::new();
    for part in single(text).split("<message").skip(1) {
        let head = part.split('>').next().unwrap_or("");
        if head.contains("type='error'") {
            continue;
        }
        if let Some(n) = head
            .split("id='m")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .and_then(|n| n.parse().ok())
        {
            *ids.entry(n).or_insert(0) += 1;
        }
    }
    ids
}

/// Ids of our messages the server bounced back to the sender (type='error').
fn bounced_ids(text: &str) -> BTreeSet<u32> {
    single(text)
        .split("<message")
        .skip(1)
        .filter_map(|part| {
            let head = part.split('>').next()?;
            if !head.contains("type='error'") {
                return None;
            }
            head.split("id='m").nth(1)?.split('\'').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn a_home_node_killed_and_restarted_under_load_loses_nothing_acknowledged() {
    const BACKEND: &str = "poll";
    const PER_PHASE: u32 = 150;
    let nats = NatsServer::start();
    let nats_port = nats.port();
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let mut text = format!("nats = \"nats://127.0.0.1:{nats_port}\"\nvshards = 64\n");
    for (i, addr) in addrs.iter().enumerate() {
        text += &format!("[[node]]\nid = {}\nc2s = \"{addr}\"\nshards = 1\n", i + 1);
    }
    let dir = Server::temp_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.display().to_string();
    let extra = |id: &'static str| ["--cluster", path.as_str(), "--node", id];
    let mut nodes: Vec<Server> = ["1", "2", "3"]
        .iter()
        .zip(&addrs)
        .map(|(id, addr)| Server::start_at(BACKEND, 1, *addr, &extra(id)))
        .collect();
    for node in &nodes {
        assert_eq!(node.wait_metric("rookery_cluster_connected", 1), 1);
    }
    let placement = Placement::of(&ClusterFile::parse(&text).unwrap());
    let user_on = |prefix: &str, node: u16| {
        (0..1000)
            .map(|n| format!("{prefix}{n}"))
            .find(|u| placement.home(&format!("{u}@{DOMAIN}")).0 == NodeId(node))
            .unwrap()
    };
    let (alice, bob) = (user_on("alice", 1), user_on("bob", 2));
    let (mut a, _) = RawClient::bind_only(addrs[0], &alice, "r");
    a.send("<enable xmlns='urn:xmpp:sm:3'/>");
    a.expect("<enabled");
    let (mut b, _) = RawClient::login(addrs[1], &bob, "r");

    let mut next = 0u32;
    let mut send_phase = |a: &mut RawClient| {
        for _ in 0..PER_PHASE {
            a.send(&format!(
                "<message to='{bob}@{DOMAIN}' type='chat' id='m{next}'><body>{next}</body>\
                 </message><r xmlns='urn:xmpp:sm:3'/>"
            ));
            next += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Phase A: steady, bob online on node 2.
    send_phase(&mut a);
    let _ = b.try_expect("\u{0}never", Duration::from_millis(500));
    // SIGKILL bob's home node: bob's conn dies with it; keep sending meanwhile.
    let data_dir = nodes[1].keep_data_dir();
    nodes[1].signal("KILL");
    assert!(nodes[1].wait_exit(Duration::from_secs(5)).is_some());
    let _ = b.closed_within(Duration::from_secs(1));
    let before_kill = b.received.clone();
    send_phase(&mut a);
    // Restart node 2 on the same data dir and address; keep sending.
    nodes[1] = Server::start_at_on(BACKEND, 1, addrs[1], &extra("2"), &data_dir);
    send_phase(&mut a);
    let sent = next;

    // Wait until every message is acknowledged (an error answer counts too: 30 s mail timeout).
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut h = 0;
    while h < sent && Instant::now() < deadline {
        a.send("<r xmlns='urn:xmpp:sm:3'/>");
        h = a.drain_acks_for(Duration::from_millis(500));
    }
    let bounced = bounced_ids(&a.received);

    // Bob logs in again at home: the stored messages come (the live ones came before).
    let (mut b2, _) = RawClient::login_without_sync(addrs[1], &bob, "r2");
    let _ = b2.try_expect("\u{0}never", Duration::from_secs(3));
    let mut got = message_ids(&before_kill);
    for (id, count) in message_ids(&b2.received) {
        *got.entry(id).or_insert(0) += count;
    }
    let missing: Vec<u32> = (0..h)
        .filter(|n| !bounced.contains(n) && !got.contains_key(n))
        .collect();
    let twice: Vec<u32> = got
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(&n, _)| n)
        .collect();
    eprintln!(
        "sigkill: sent {sent}, acked {h}, bounced {}, received {}, missing {}, twice {}",
        bounced.len(),
        got.len(),
        missing.len(),
        twice.len()
    );
    assert_eq!(
        h, sent,
        "every message acknowledged (or answered) within the wait"
    );
    assert!(
        missing.is_empty(),
        "acknowledged, not bounced, never delivered: {missing:?}"
    );
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&dir);
}
