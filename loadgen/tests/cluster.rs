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

/// How long and how hard a chat load runs.
struct Chat {
    clients: u32,
    /// Messages a second per client.
    rate: u32,
    duration_s: u32,
    /// Logins started a second.
    connect_rate: u32,
    /// `--drain-ms`: how long to wait for the last deliveries (the tool's default if none).
    drain_ms: Option<u32>,
}

impl Chat {
    /// A short load with nothing in its way: 2 messages a second per client for 3 s.
    fn short(clients: u32) -> Chat {
        Chat {
            clients,
            rate: 2,
            duration_s: 3,
            connect_rate: 200,
            drain_ms: None,
        }
    }

    /// A load that a fault interrupts: `rate` messages a second per client for `duration_s`,
    /// then up to `drain_ms` for what the fault held up to arrive.
    fn through_a_fault(clients: u32, rate: u32, duration_s: u32, drain_ms: u32) -> Chat {
        Chat {
            clients,
            rate,
            duration_s,
            connect_rate: 300,
            drain_ms: Some(drain_ms),
        }
    }

    /// The command line of a verified chat load on the poll backend against `target`
    /// (`--server ADDR`, or `--cluster FILE` with or without `--cross-node`).
    fn args(&self, target: &[&str]) -> Vec<String> {
        let mut args = vec!["chat".to_string()];
        args.extend(target.iter().map(|arg| arg.to_string()));
        let flags = [
            ("--clients", self.clients.to_string()),
            ("--rate", self.rate.to_string()),
            ("--duration", format!("{}s", self.duration_s)),
            ("--connect-rate", self.connect_rate.to_string()),
        ];
        for (flag, value) in flags {
            args.extend([flag.to_string(), value]);
        }
        if let Some(drain_ms) = self.drain_ms {
            args.extend(["--drain-ms".to_string(), drain_ms.to_string()]);
        }
        args.extend(["--verify", "--backend", "poll"].map(String::from));
        args
    }

    /// Runs it (as run `name`) with the exit status 0; returns the summary and the output.
    fn run(&self, name: &str, target: &[&str]) -> (Value, String) {
        let args = self.args(target);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (summary, _, text) = run_load(name, &args, 0);
        (summary, text)
    }
}

#[test]
fn chat_on_a_cluster_follows_see_other_host_and_loses_nothing_acknowledged() {
    const CLIENTS: u32 = 40;
    let cluster = Cluster::start();
    let node1 = cluster.nodes[0].addr.clone();
    let away = u64::from(CLIENTS) - cluster.homed_on(1, CLIENTS);
    assert!(away > 10, "most users live on nodes 2 and 3: {away}");
    let (summary, text) = Chat::short(CLIENTS).run("cluster-redirect", &["--server", &node1]);
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
    let (summary, text) =
        Chat::short(CLIENTS).run("cluster-direct", &["--cluster", &file, "--cross-node"]);
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
    let chat = Chat::through_a_fault(CLIENTS, 5, 8, 15_000);
    let load = std::thread::spawn(move || {
        chat.run(
            "cluster-nats-restart",
            &["--cluster", &file, "--cross-node"],
        )
    });
    // Ramp (~0.1 s) plus a few seconds of steady load, then the outage.
    std::thread::sleep(Duration::from_secs(3));
    cluster.nats.restart();
    let (summary, text) = load.join().expect("the load run");
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
    let chat = Chat::through_a_fault(CLIENTS, 2, 28, 36_000);
    let load = std::thread::spawn(move || {
        chat.run("cluster-sigstop", &["--cluster", &file, "--cross-node"])
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
    let (summary, text) = load.join().expect("the load run");
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
