//! rookery-load against a real cluster: a nats-server and three `rookery` nodes on loopback
//! (one shard each), as `rookery --cluster FILE --node ID` runs them.
//!
//! - Without `--cluster`, every client dials node 1; those homed elsewhere get RFC 6120
//!   see-other-host after authenticating, reconnect to the named node and log in there. The
//!   summary counts exactly one redirect per client not homed on node 1, and chat with
//!   `--verify` loses no acknowledged message.
//! - With `--cluster FILE`, each client dials its home node at once (no redirect) and, with
//!   `--cross-node`, every message crosses the bus.
//!
//! Needs `nats-server` on PATH (Debian's package). Every process is killed by pid on drop;
//! every run is bounded by `common::RUN_TIMEOUT`.

#[allow(dead_code)] // this test uses the server, the bounded run and its summary
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{run_load, Server};
use rookery_cluster::{ClusterFile, NodeId, Placement};
use rookery_testkit::nats::{free_port, NatsServer};
use serde_json::Value;

const DOMAIN: &str = "example.test";

/// Three nodes of one shard each, the cluster file they read, and nats-server.
struct Cluster {
    nodes: Vec<Server>,
    path: PathBuf,
    file: ClusterFile,
    nats: NatsServer,
}

impl Cluster {
    fn start() -> Cluster {
        let nats = NatsServer::start();
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let mut text = format!(
            "nats = \"nats://127.0.0.1:{}\"\nvshards = 256\n",
            nats.port()
        );
        for (i, addr) in addrs.iter().enumerate() {
            text += &format!("[[node]]\nid = {}\nc2s = \"{addr}\"\nshards = 1\n", i + 1);
        }
        let path = std::env::temp_dir().join(format!(
            "rookery-load-it-cluster-{}-{}.toml",
            std::process::id(),
            nats.port()
        ));
        std::fs::write(&path, &text).unwrap();
        let file = ClusterFile::parse(&text).unwrap();
        let cluster_arg = path.display().to_string();
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let (listen, id) = (addr.to_string(), (i + 1).to_string());
                Server::start_at(
                    &listen,
                    &[
                        "--shards",
                        "1",
                        "--backend",
                        "poll",
                        "--cluster",
                        &cluster_arg,
                        "--node",
                        &id,
                    ],
                )
            })
            .collect();
        // The nodes' bridges connect to NATS right after they listen; give them a moment.
        std::thread::sleep(Duration::from_millis(500));
        Cluster {
            nodes,
            path,
            file,
            nats,
        }
    }

    /// How many of clients `0..n` (users user1..user<n>) are homed on `node`.
    fn homed_on(&self, node: u16, n: u32) -> u64 {
        let placement = Placement::of(&self.file);
        (1..=n)
            .filter(|k| placement.home(&format!("user{k}@{DOMAIN}")).0 == NodeId(node))
            .count() as u64
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn counts(summary: &Value) -> &Value {
    &summary["counts"]
}

#[test]
fn chat_on_a_cluster_follows_see_other_host_and_loses_nothing_acknowledged() {
    const CLIENTS: u32 = 40;
    let cluster = Cluster::start();
    let node1 = cluster.nodes[0].addr.clone();
    let away = u64::from(CLIENTS) - cluster.homed_on(1, CLIENTS);
    assert!(away > 10, "most users live on nodes 2 and 3: {away}");
    let (summary, _, text) = run_load(
        "cluster-redirect",
        &[
            "chat",
            "--server",
            &node1,
            "--clients",
            &CLIENTS.to_string(),
            "--rate",
            "2",
            "--duration",
            "3s",
            "--connect-rate",
            "200",
            "--verify",
            "--backend",
            "poll",
        ],
        0,
    );
    let c = counts(&summary);
    assert_eq!(c["logins"], u64::from(CLIENTS), "{text}");
    assert_eq!(c["errors_total"], 0, "{c}");
    assert_eq!(
        c["redirects"], away,
        "one redirect per client homed away: {c}"
    );
    assert!(text.contains(&format!("redirects {away}")), "{text}");
    let m = &c["messages"];
    assert!(m["sent"].as_u64().unwrap() > 150, "{m}");
    assert_eq!(m["lost"], 0, "{m}");
    assert_eq!(m["duplicated"], 0, "{m}");
    assert_eq!(c["acks"]["acked_lost"], 0, "{c}");
    assert_eq!(c["bounced"], 0, "{c}");
}

#[test]
fn the_cluster_file_sends_every_client_home_and_cross_node_chat_crosses() {
    const CLIENTS: u32 = 30;
    let cluster = Cluster::start();
    let file = cluster.path.display().to_string();
    let (summary, _, text) = run_load(
        "cluster-direct",
        &[
            "chat",
            "--cluster",
            &file,
            "--cross-node",
            "--clients",
            &CLIENTS.to_string(),
            "--rate",
            "2",
            "--duration",
            "3s",
            "--connect-rate",
            "200",
            "--verify",
            "--backend",
            "poll",
        ],
        0,
    );
    let c = counts(&summary);
    assert_eq!(c["logins"], u64::from(CLIENTS), "{text}");
    assert_eq!(c["errors_total"], 0, "{c}");
    assert_eq!(c["redirects"], 0, "every client dialled its home: {c}");
    let m = &c["messages"];
    assert!(m["sent"].as_u64().unwrap() > 120, "{m}");
    assert_eq!(m["lost"], 0, "{m}");
    assert_eq!(c["acks"]["acked_lost"], 0, "{c}");
    assert_eq!(summary["config"]["cross_node"], true);

    // --cross-node without a cluster file is refused on the command line.
    let (status, said) = common::run_bounded(
        &[
            "chat",
            "--cross-node",
            "--auth",
            "token:x",
            "--clients",
            "2",
            "--quiet",
        ],
        &std::env::temp_dir().join(format!("rookery-load-it-xn-{}", std::process::id())),
    );
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("--cross-node needs --cluster"), "{said}");
}

/// Fault: nats-server is killed (SIGKILL) and restarted on its port in the middle of a
/// cross-node chat load with XEP-0198. Frames lost with it are sent again by the cluster
/// link once the bridges reconnect, so every message a sender saw acknowledged arrives
/// (`--verify` fails the run otherwise), none twice, and nothing bounces.
#[test]
fn a_nats_server_restart_under_cross_node_chat_loses_nothing_acknowledged() {
    const CLIENTS: u32 = 30;
    let mut cluster = Cluster::start();
    let file = cluster.path.display().to_string();
    let load = std::thread::spawn(move || {
        run_load(
            "cluster-nats-restart",
            &[
                "chat",
                "--cluster",
                &file,
                "--cross-node",
                "--clients",
                &CLIENTS.to_string(),
                "--rate",
                "5",
                "--duration",
                "8s",
                "--connect-rate",
                "300",
                "--drain-ms",
                "15000",
                "--verify",
                "--backend",
                "poll",
            ],
            0,
        )
    });
    // Ramp (~0.1 s) plus a few seconds of steady load, then the outage.
    std::thread::sleep(Duration::from_secs(3));
    cluster.nats.restart();
    let (summary, _, text) = load.join().expect("the load run");
    let c = counts(&summary);
    assert_eq!(c["logins"], u64::from(CLIENTS), "{text}");
    assert_eq!(c["errors_total"], 0, "{c}");
    let m = &c["messages"];
    assert!(m["sent"].as_u64().unwrap() > 1_000, "{m}");
    assert_eq!(c["acks"]["acked_lost"], 0, "{c}");
    assert_eq!(m["duplicated"], 0, "{m}");
    assert_eq!(c["bounced"], 0, "{c}");
    assert!(c["acks"]["acknowledged"].as_u64().unwrap() > 1_000, "{c}");
}

/// Fault: node 3 is stopped (SIGSTOP) for 22 s, past the cluster link's 20 s retry budget,
/// in the middle of a cross-node chat load with XEP-0198, then continued (SIGCONT). What
/// ARCHITECTURE.md guarantees: no message is acknowledged before its home committed it, so
/// every acknowledged message arrives, except those the sender's node answered with an error
/// (`remote-server-timeout` after the 30 s mail timeout: the mail was dropped after the link's
/// budget ran out; they count as handled, and come back to the sender as bounces). So
/// acknowledged-and-lost is at most the bounces, nothing arrives twice (no client resends),
/// and the stopped node's clients carry on after SIGCONT.
#[test]
fn a_node_stopped_past_the_link_budget_loses_only_what_bounced() {
    const CLIENTS: u32 = 30;
    let cluster = Cluster::start();
    let file = cluster.path.display().to_string();
    let load = std::thread::spawn(move || {
        run_load(
            "cluster-sigstop",
            &[
                "chat",
                "--cluster",
                &file,
                "--cross-node",
                "--clients",
                &CLIENTS.to_string(),
                "--rate",
                "2",
                "--duration",
                "28s",
                "--connect-rate",
                "300",
                "--drain-ms",
                "36000",
                "--verify",
                "--backend",
                "poll",
            ],
            0,
        )
    });
    std::thread::sleep(Duration::from_secs(3));
    let pid = cluster.nodes[2].pid().to_string();
    let signal = |name: &str| {
        let ok = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(ok.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(22));
    signal("-CONT");
    let (summary, _, text) = load.join().expect("the load run");
    let c = counts(&summary);
    assert_eq!(c["logins"], u64::from(CLIENTS), "{text}");
    assert_eq!(c["errors_total"], 0, "{c}");
    let m = &c["messages"];
    let bounced = c["bounced"].as_u64().unwrap();
    let acked_lost = c["acks"]["acked_lost"].as_u64().unwrap();
    eprintln!("sigstop: {m} acks {} bounced {bounced}", c["acks"]);
    assert!(
        acked_lost <= bounced,
        "acknowledged and lost beyond the documented bounces: {c}"
    );
    assert_eq!(m["duplicated"], 0, "{m}");
    assert!(c["acks"]["acknowledged"].as_u64().unwrap() > 1_000, "{c}");
}
