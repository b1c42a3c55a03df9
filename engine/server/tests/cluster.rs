//! A cluster end to end: a real nats-server and three real `rookery` nodes on loopback (node 1
//! with two shards, nodes 2 and 3 with one), under every backend, with raw XMPP clients over
//! real sockets. Users homed on different nodes chat with receipts both ways; a sender's
//! XEP-0198 ack waits for the remote home's commit; subscriptions, presence broadcasts and
//! probes cross nodes; a client on the wrong node is sent home with see-other-host and
//! follows it. Needs `nats-server` on PATH (Debian's package; .ci/run installs it). Every
//! process is stopped by its pid when its handle drops.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rookery_cluster::{ClusterFile, NodeId};
use rookery_testkit::nats::{free_port, NatsServer};
use support::{backends, subscribe_both_ways, RawClient, Server, DOMAIN, WAIT};

/// Shards of nodes 1, 2 and 3.
const SHARDS: [u16; 3] = [2, 1, 1];

/// nats-server, the cluster file and three nodes (node `i` is `nodes[i - 1]`).
struct Cluster {
    nodes: Vec<Server>,
    file: ClusterFile,
    dir: PathBuf,
    // Dropped last: the nodes go first.
    _nats: NatsServer,
}

impl Cluster {
    fn start(backend: &str) -> Cluster {
        let nats = NatsServer::start();
        let dir = Server::temp_data_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let addrs: Vec<SocketAddr> = SHARDS
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let mut text = format!(
            "nats = \"nats://127.0.0.1:{}\"\nvshards = 64\n",
            nats.port()
        );
        for (i, (addr, shards)) in addrs.iter().zip(SHARDS).enumerate() {
            text += &format!(
                "[[node]]\nid = {}\nc2s = \"{addr}\"\nshards = {shards}\n",
                i + 1
            );
        }
        let path = dir.join("cluster.toml");
        std::fs::write(&path, &text).unwrap();
        let file = ClusterFile::parse(&text).unwrap();
        let path = path.display().to_string();
        let nodes = addrs
            .iter()
            .zip(SHARDS)
            .enumerate()
            .map(|(i, (addr, shards))| {
                let id = (i + 1).to_string();
                let extra = ["--cluster", path.as_str(), "--node", id.as_str()];
                Server::start_at(backend, usize::from(shards), *addr, &extra)
            })
            .collect();
        let cluster = Cluster {
            nodes,
            file,
            dir,
            _nats: nats,
        };
        for node in &cluster.nodes {
            assert_eq!(node.wait_metric("rookery_cluster_connected", 1), 1);
        }
        cluster
    }

    /// The `i`th user named `prefix<n>` homed on `node`.
    fn user_on(&self, prefix: &str, node: u16) -> String {
        let placement = rookery_cluster::Placement::of(&self.file);
        (0..1000)
            .map(|n| format!("{prefix}{n}"))
            .find(|name| placement.home(&format!("{name}@{DOMAIN}")).0 == NodeId(node))
            .unwrap()
    }

    fn node(&self, id: u16) -> &Server {
        &self.nodes[usize::from(id) - 1]
    }

    fn addr(&self, id: u16) -> SocketAddr {
        self.node(id).addr
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `text` with double quotes as single ones (clients and servers may use either).
fn single(text: String) -> String {
    text.replace('"', "'")
}

#[test]
fn users_on_different_nodes_chat_with_receipts_both_ways() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let bob = cluster.user_on("bob", 2);
        let (mut a, alice_jid) = RawClient::login(cluster.addr(1), &alice, "phone");
        let (mut b, bob_jid) = RawClient::login(cluster.addr(2), &bob, "laptop");

        a.send(&format!(
            "<message to='{bob}@{DOMAIN}' type='chat' id='m1'><body>hi bob</body>\
             <request xmlns='urn:xmpp:receipts'/></message>"
        ));
        let got = single(b.expect("</message>"));
        assert!(
            got.contains(&format!("from='{alice_jid}'")),
            "{backend}: {got}"
        );
        assert!(got.contains("<body>hi bob</body>"), "{got}");
        b.send(&format!(
            "<message to='{alice_jid}' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>"
        ));
        let receipt = single(a.expect("</message>"));
        assert!(
            receipt.contains("<received xmlns='urn:xmpp:receipts' id='m1'/>"),
            "{receipt}"
        );
        assert!(receipt.contains(&format!("from='{bob_jid}'")), "{receipt}");

        // And the other way round.
        b.send(&format!(
            "<message to='{alice}@{DOMAIN}' type='chat' id='m2'><body>hi alice</body>\
             <request xmlns='urn:xmpp:receipts'/></message>"
        ));
        let got = single(a.expect("</message>"));
        assert!(got.contains(&format!("from='{bob_jid}'")), "{got}");
        assert!(got.contains("<body>hi alice</body>"), "{got}");
        a.send(&format!(
            "<message to='{bob_jid}' id='r2'><received xmlns='urn:xmpp:receipts' id='m2'/></message>"
        ));
        let receipt = single(b.expect("</message>"));
        assert!(
            receipt.contains("<received xmlns='urn:xmpp:receipts' id='m2'/>"),
            "{receipt}"
        );

        // The mail went through the bridges, and nobody was redirected.
        let (one, two) = (cluster.node(1), cluster.node(2));
        assert!(one.metric("rookery_cluster_mails_out_total") >= 2);
        assert!(two.metric("rookery_cluster_mails_in_total") >= 2);
        assert!(one.metric("rookery_cluster_nats_messages_out_total") >= 2);
        assert!(one.metric("rookery_cluster_latency_seconds_count") >= 1);
        assert_eq!(one.metric("rookery_redirects_total"), 0);
        assert_eq!(one.metric("rookery_cluster_bad_batches_total"), 0);
    }
}

/// The delivery guarantee across nodes: alice's `<a h>` covers her message to bob (homed on
/// node 2) only once node 2 committed it; while node 2 is stopped (SIGSTOP) it does not.
/// Bob, offline, gets it at his next login on his node, with a delay stamp.
#[test]
fn a_cross_node_message_is_acknowledged_only_after_the_remote_home_committed() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let bob = cluster.user_on("bob", 2);
        let (mut a, alice_jid) = RawClient::bind_only(cluster.addr(1), &alice, "phone");
        a.send("<enable xmlns='urn:xmpp:sm:3'/>");
        a.expect("<enabled");

        cluster.node(2).signal("STOP");
        a.send(&format!(
            "<message to='{bob}@{DOMAIN}' type='chat' id='held'><body>wait for it</body></message>\
             <r xmlns='urn:xmpp:sm:3'/>"
        ));
        let early = a.drain_acks_for(Duration::from_millis(1500));
        cluster.node(2).signal("CONT");
        assert_eq!(
            early, 0,
            "{backend}: acknowledged before bob's node committed"
        );

        let deadline = Instant::now() + WAIT;
        let mut h = 0;
        while h < 1 {
            assert!(Instant::now() < deadline, "{backend}: no ack after SIGCONT");
            a.send("<r xmlns='urn:xmpp:sm:3'/>");
            h = a.drain_acks_for(Duration::from_millis(200));
        }
        assert_eq!(h, 1);
        assert!(!a.received.contains("error"), "{}", a.received);

        let (mut b, _) = RawClient::login_without_sync(cluster.addr(2), &bob, "laptop");
        let got = single(b.expect("</message>"));
        assert!(
            got.contains("id='held'") && got.contains(&format!("from='{alice_jid}'")),
            "{got}"
        );
        assert!(
            got.contains("urn:xmpp:delay"),
            "stored, then delivered: {got}"
        );
    }
}

/// Mutual subscription between users of nodes 1 and 3, then a presence change broadcast to
/// the contact on the other node, and a probe from a new session answered across nodes.
#[test]
fn subscriptions_presence_and_probes_cross_nodes() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let carol = cluster.user_on("carol", 3);
        let (mut a, _) = RawClient::login(cluster.addr(1), &alice, "phone");
        let (mut c, carol_jid) = RawClient::login(cluster.addr(3), &carol, "desk");
        subscribe_both_ways(&mut a, &alice, &mut c, &carol);

        c.send("<presence><show>away</show></presence>");
        let deadline = Instant::now() + WAIT;
        loop {
            let presence = single(a.expect("</presence>"));
            if presence.contains("<show>away</show>") {
                assert!(
                    presence.contains(&format!("from='{carol_jid}'")),
                    "{presence}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: carol's away never came"
            );
        }

        // A new session of alice's probes her contacts: carol's presence comes from node 3.
        let (mut tablet, _) = RawClient::login_without_sync(cluster.addr(1), &alice, "tablet");
        let deadline = Instant::now() + WAIT;
        loop {
            let presence = single(tablet.expect("</presence>"));
            if presence.contains(&format!("from='{carol_jid}'")) {
                assert!(presence.contains("<show>away</show>"), "{presence}");
                break;
            }
            assert!(Instant::now() < deadline, "{backend}: no probe answer");
        }
        assert!(cluster.node(3).metric("rookery_probes_answered_total") >= 1);
    }
}

/// A client that logs in on a node that is not its home gets see-other-host naming its home
/// node's address (from the cluster file), follows it and logs in there; the node counts it.
/// Then every node stops cleanly on SIGTERM.
#[test]
fn a_client_on_the_wrong_node_is_sent_home_and_follows() {
    for backend in backends() {
        let mut cluster = Cluster::start(backend);
        let dave = cluster.user_on("dave", 2);
        let home = cluster.addr(2);
        let refused = RawClient::try_login(cluster.addr(1), &dave, &support::token(&dave), "r")
            .err()
            .expect("a redirect, not a login");
        assert!(refused.contains("see-other-host"), "{backend}: {refused}");
        assert!(
            refused.contains(&format!("\"{home}\"")),
            "names node 2: {refused}"
        );
        assert_eq!(cluster.node(1).wait_metric("rookery_redirects_total", 1), 1);

        let (mut d, jid) =
            RawClient::try_login(home, &dave, &support::token(&dave), "r").expect("login at home");
        assert_eq!(jid, format!("{dave}@{DOMAIN}/r"));
        d.send("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>");
        d.expect("ping1");
        assert_eq!(cluster.node(2).metric("rookery_redirects_total"), 0);

        for node in &mut cluster.nodes {
            node.signal("TERM");
            let status = node.wait_exit(Duration::from_secs(10));
            assert!(status.is_some_and(|s| s.success()), "{backend}: {status:?}");
        }
    }
}

/// A group homed on node 3 with a member on every node: joins see each other, and a message
/// from the member on node 2 reaches the members on nodes 1 and 3 (one fan-out mail per
/// destination shard crosses the bus) and comes back to its sender.
#[test]
fn a_group_with_members_on_every_node() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let placement = rookery_cluster::Placement::of(&cluster.file);
        let room = (0..1000)
            .map(|n| format!("crew{n}@groups.{DOMAIN}"))
            .find(|room| placement.home(room).0 == NodeId(3))
            .unwrap();
        let mut members = Vec::new();
        for (node, prefix) in [(1, "alice"), (2, "bob"), (3, "carol")] {
            let user = cluster.user_on(prefix, node);
            let (mut client, _) = RawClient::login(cluster.addr(node), &user, "r");
            client.send(&format!(
                "<presence to='{room}/{prefix}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
            ));
            client.expect("status code='110'");
            members.push(client);
        }
        // The first member hears of the last one's join, across two nodes.
        let joined = single(members[0].expect(&format!("from='{room}/carol'")));
        assert!(joined.contains("<presence"), "{backend}: {joined}");

        // bob counts stanzas (XEP-0198): his ack waits for every member shard's answer
        // (`Gathered`), two of them on other nodes.
        members[1].send("<enable xmlns='urn:xmpp:sm:3'/>");
        members[1].expect("<enabled");
        members[1].send(&format!(
            "<message to='{room}' type='groupchat' id='g1'><body>hello crew</body></message>\
             <r xmlns='urn:xmpp:sm:3'/>"
        ));
        for (member, nick) in members.iter_mut().zip(["alice", "bob", "carol"]) {
            let got = single(member.expect("hello crew"));
            assert!(
                got.contains(&format!("from='{room}/bob'")),
                "{backend} {nick}: {got}"
            );
        }
        // Well within the 30 s mail timeout, which would also count it (with an error).
        let deadline = Instant::now() + WAIT;
        while members[1].drain_acks_for(Duration::from_millis(100)) < 1 {
            assert!(
                Instant::now() < deadline,
                "{backend}: no ack for the group message"
            );
            members[1].send("<r xmlns='urn:xmpp:sm:3'/>");
        }
        assert!(
            !members[1].received.contains("error"),
            "{}",
            members[1].received
        );
        assert!(cluster.node(3).metric("rookery_cluster_mails_in_total") >= 1);
        assert!(cluster.node(3).metric("rookery_groups") >= 1);
    }
}

/// A message resent across nodes with the same id (as a client does after
/// `remote-server-timeout` or a reconnect) reaches its recipient once, and both sends are
/// acknowledged (XEP-0198) after the remote home committed; the home node counts the resend.
#[test]
fn a_resend_across_nodes_is_delivered_once_and_acknowledged_twice() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let carol = cluster.user_on("carol", 3);
        let (mut c, _) = RawClient::login(cluster.addr(3), &carol, "desk");
        let (mut a, _) = RawClient::login(cluster.addr(1), &alice, "phone");
        a.send("<enable xmlns='urn:xmpp:sm:3'/>");
        a.expect("<enabled");
        let message = format!(
            "<message to='{carol}@{DOMAIN}' type='chat' id='once-1'><body>only once</body></message>"
        );
        a.send(&message);
        c.expect("only once");
        a.send(&format!("{message}<r xmlns='urn:xmpp:sm:3'/>"));
        let deadline = Instant::now() + WAIT;
        while a.drain_acks_for(Duration::from_millis(100)) < 2 {
            assert!(
                Instant::now() < deadline,
                "{backend}: both sends not acknowledged"
            );
            a.send("<r xmlns='urn:xmpp:sm:3'/>");
        }
        assert!(!a.received.contains("error"), "{backend}: {}", a.received);
        assert_eq!(
            c.try_expect("only once", Duration::from_millis(500)),
            None,
            "{backend}: delivered twice"
        );
        let three = cluster.node(3);
        assert_eq!(
            three.metric("rookery_duplicates_filtered_total"),
            1,
            "{backend}"
        );
        assert_eq!(three.metric("rookery_dup_window_keys"), 1, "{backend}");
    }
}

/// A group message toward a node with members on both of its shards crosses the bus once
/// (one `NodeFanout`, split per shard by that node's bridge), and the sender's XEP-0198 ack
/// still waits for every member shard's `Gathered`.
#[test]
fn a_fan_out_crosses_to_each_node_once_and_splits_there() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let placement = rookery_cluster::Placement::of(&cluster.file);
        let room = (0..1000)
            .map(|n| format!("deck{n}@groups.{DOMAIN}"))
            .find(|room| placement.home(room).0 == NodeId(2))
            .unwrap();
        // Two members homed on node 1, one on each of its shards; the sender on node 3.
        let on_shard = |shard: u16| {
            (0..1000)
                .map(|n| format!("crew{n}"))
                .find(|u| placement.home(&format!("{u}@{DOMAIN}")) == (NodeId(1), shard))
                .unwrap()
        };
        let joiners = [
            (1, on_shard(0), "one"),
            (1, on_shard(1), "two"),
            (3, cluster.user_on("carol", 3), "carol"),
        ];
        let mut members = Vec::new();
        for (node, user, nick) in &joiners {
            let (mut client, _) = RawClient::login(cluster.addr(*node), user, "r");
            client.send(&format!(
                "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
            ));
            client.expect("status code='110'");
            members.push(client);
        }
        for member in &mut members[..2] {
            member.expect(&format!("from='{room}/carol'"));
        }
        let one = cluster.node(1);
        let mails_before = one.metric("rookery_cluster_mails_in_total");
        let parts_before = one.metric("rookery_cluster_fanout_parts_total");

        members[2].send("<enable xmlns='urn:xmpp:sm:3'/>");
        members[2].expect("<enabled");
        members[2].send(&format!(
            "<message to='{room}' type='groupchat' id='d1'><body>all hands</body></message>\
             <r xmlns='urn:xmpp:sm:3'/>"
        ));
        for member in &mut members {
            let got = single(member.expect("all hands"));
            assert!(got.contains(&format!("from='{room}/carol'")), "{got}");
        }
        let deadline = Instant::now() + WAIT;
        while members[2].drain_acks_for(Duration::from_millis(100)) < 1 {
            assert!(Instant::now() < deadline, "{backend}: no ack");
            members[2].send("<r xmlns='urn:xmpp:sm:3'/>");
        }
        assert!(
            !members[2].received.contains("error"),
            "{}",
            members[2].received
        );
        let parts = one.wait_metric("rookery_cluster_fanout_parts_total", parts_before + 2);
        assert_eq!(
            parts,
            parts_before + 2,
            "{backend}: split into two shards' parts"
        );
        assert_eq!(
            one.metric("rookery_cluster_mails_in_total"),
            mails_before + 1,
            "{backend}: one mail crossed to node 1 for its two shards"
        );
    }
}

/// `rookery cluster up` starts nats-server and three nodes that serve one domain, a chat
/// crosses nodes, and `rookery cluster down` stops every process it started.
#[test]
fn cluster_up_and_down_run_a_local_cluster() {
    let bin = env!("CARGO_BIN_EXE_rookery");
    let dir = Server::temp_data_dir();
    // Three client ports BASE, BASE + 10, BASE + 20, their admin ports (+1), and nats's.
    let (base, nats) = free_port_run();
    let up = Command::new(bin)
        .args(["cluster", "up", "--dir"])
        .arg(&dir)
        .args(["--nodes", "3", "--base-port", &base.to_string()])
        .args(["--nats-port", &nats.to_string(), "--"])
        .args([
            "--domain",
            DOMAIN,
            "--auth",
            "token",
            "--token-secret",
            support::SECRET,
        ])
        .args(["--backend", "poll", "--target-connections", "0"])
        .output()
        .unwrap();
    // Whatever happens below, stop what `up` started.
    struct Down<'a>(&'a str, &'a PathBuf);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0)
                .args(["cluster", "down", "--dir"])
                .arg(self.1)
                .output();
            let _ = std::fs::remove_dir_all(self.1);
        }
    }
    let down = Down(bin, &dir);
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(said.contains("node 3: clients 127.0.0.1:"), "{said}");

    let file = ClusterFile::load(&dir.join("cluster.toml")).unwrap();
    assert_eq!(file.nodes.len(), 3);
    let placement = rookery_cluster::Placement::of(&file);
    let user_on = |prefix: &str, node: u16| {
        (0..1000)
            .map(|n| format!("{prefix}{n}"))
            .find(|name| placement.home(&format!("{name}@{DOMAIN}")).0 == NodeId(node))
            .unwrap()
    };
    let addr = |node: u16| file.node(NodeId(node)).unwrap().c2s.parse().unwrap();
    let (alice, carol) = (user_on("alice", 1), user_on("carol", 3));
    let (mut a, alice_jid) = RawClient::login(addr(1), &alice, "r");
    let (mut c, _) = RawClient::login(addr(3), &carol, "r");
    a.send(&format!(
        "<message to='{carol}@{DOMAIN}' type='chat' id='u1'><body>up and running</body></message>"
    ));
    let got = single(c.expect("</message>"));
    assert!(got.contains(&format!("from='{alice_jid}'")), "{got}");
    c.send(&format!(
        "<message to='{alice_jid}' type='chat'><body>indeed</body></message>"
    ));
    a.expect("indeed");

    let status = Command::new(bin)
        .args(["cluster", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.matches(": running").count(), 4, "{status}");
    let pids: Vec<u32> = ["nats", "node-1", "node-2", "node-3"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.pid"))).unwrap();
            text.trim().parse().unwrap()
        })
        .collect();
    let stopped = Command::new(bin)
        .args(["cluster", "down", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(stopped.status.success());
    let said = String::from_utf8_lossy(&stopped.stdout);
    assert_eq!(said.matches("stopped ").count(), 4, "{said}");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "pid {pid} still runs: {stat}"
        );
    }
    drop(down);
}

/// A base port whose +0, +1, +10, +11, +20, +21 are free, and a free port for nats.
fn free_port_run() -> (u16, u16) {
    for _ in 0..200 {
        let base = free_port();
        if base > 65_000 {
            continue;
        }
        let offsets = [0, 1, 10, 11, 20, 21];
        let held: Vec<_> = offsets
            .iter()
            .filter_map(|o| TcpListener::bind(("127.0.0.1", base + o)).ok())
            .collect();
        if held.len() == offsets.len() {
            drop(held);
            let nats = free_port();
            if !(base..=base + 21).contains(&nats) {
                return (base, nats);
            }
        }
    }
    panic!("no run of free ports on loopback");
}

/// slixmpp (a real client library) logs dave in on node 1 while his home is node 2: it gets
/// see-other-host, reconnects to node 2 by itself, binds, and chats with alice on node 1.
/// `scripts/test.sh` installs slixmpp when missing; a missing slixmpp fails this test.
#[test]
fn slixmpp_follows_see_other_host_and_chats_across_nodes() {
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let dave = cluster.user_on("dave", 2);
        let script = format!(
            "{}/tests/interop/slix_redirect.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let output = Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(cluster.addr(1).port().to_string())
            .arg(cluster.addr(1).port().to_string())
            .arg(format!("{alice}@{DOMAIN}"))
            .arg(support::token(&alice))
            .arg(format!("{dave}@{DOMAIN}"))
            .arg(support::token(&dave))
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend}: {stdout}\n{stderr}");
        let home = cluster.addr(2).to_string();
        assert!(
            stdout.contains(&format!("[[\"see-other-host\", \"{home}\"]]")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"dave_address\": \"{home}\"")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"dave_bound\": \"{dave}@{DOMAIN}/")),
            "{stdout}"
        );
        assert!(
            stdout.contains("\"alice_got\": \"dave made it\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("\"dave_got\": \"welcome home\""),
            "{stdout}"
        );
        assert_eq!(cluster.node(1).wait_metric("rookery_redirects_total", 1), 1);
    }
}

/// A burst of 2,000 messages from node 1 to a user of node 2 arrives complete and in order,
/// batched (fewer NATS batches than mails), with nothing refused or lost on the way.
#[test]
fn a_burst_of_cross_node_messages_arrives_in_order_and_batched() {
    const COUNT: usize = 2_000;
    for backend in backends() {
        let cluster = Cluster::start(backend);
        let alice = cluster.user_on("alice", 1);
        let bob = cluster.user_on("bob", 2);
        let (mut a, _) = RawClient::login(cluster.addr(1), &alice, "r");
        let (mut b, _) = RawClient::login(cluster.addr(2), &bob, "r");
        let started = Instant::now();
        for chunk in 0..COUNT / 100 {
            let text: String = (chunk * 100..(chunk + 1) * 100)
                .map(|n| {
                    format!("<message to='{bob}@{DOMAIN}' type='chat' id='b{n}'><body>{n}</body></message>")
                })
                .collect();
            a.send(&text);
        }
        for n in 0..COUNT {
            let got = single(b.expect("</message>"));
            assert!(
                got.contains(&format!("id='b{n}'")),
                "{backend}: message {n} out of order: {got}"
            );
        }
        let took = started.elapsed();
        let (one, two) = (cluster.node(1), cluster.node(2));
        let mails = one.metric("rookery_cluster_mails_out_total");
        let batches = one.metric("rookery_cluster_batches_out_total");
        assert!(mails >= COUNT as u64, "{mails}");
        assert!(
            batches < mails,
            "batched: {batches} batches for {mails} mails"
        );
        assert_eq!(one.metric("rookery_cluster_refused_total"), 0);
        assert_eq!(two.metric("rookery_cluster_bad_mails_total"), 0);
        assert_eq!(two.metric("rookery_cluster_inbound_refused_total"), 0);
        eprintln!("{backend}: {COUNT} cross-node messages in {took:?}, {batches} batches");
    }
}
