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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rookery_cluster::{ClusterFile, NodeId};
use support::{backends, RawClient, Server, DOMAIN, WAIT};

/// A nats-server on a free loopback port; killed (by pid) on drop.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start() -> Nats {
        let port = free_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (apt-get install nats-server)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, port }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Shards of nodes 1, 2 and 3.
const SHARDS: [u16; 3] = [2, 1, 1];

/// nats-server, the cluster file and three nodes (node `i` is `nodes[i - 1]`).
struct Cluster {
    nodes: Vec<Server>,
    file: ClusterFile,
    dir: PathBuf,
    // Dropped last: the nodes go first.
    _nats: Nats,
}

impl Cluster {
    fn start(backend: &str) -> Cluster {
        let nats = Nats::start();
        let dir = Server::temp_data_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let addrs: Vec<SocketAddr> = SHARDS
            .iter()
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let mut text = format!("nats = \"nats://127.0.0.1:{}\"\nvshards = 64\n", nats.port);
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
        a.send(&format!(
            "<presence to='{carol}@{DOMAIN}' type='subscribe'/>"
        ));
        c.expect("type='subscribe'");
        c.send(&format!(
            "<presence to='{alice}@{DOMAIN}' type='subscribed'/>"
        ));
        c.send(&format!(
            "<presence to='{alice}@{DOMAIN}' type='subscribe'/>"
        ));
        a.expect("type='subscribe'");
        a.send(&format!(
            "<presence to='{carol}@{DOMAIN}' type='subscribed'/>"
        ));
        a.expect("subscription='both'");
        c.expect("subscription='both'");

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
