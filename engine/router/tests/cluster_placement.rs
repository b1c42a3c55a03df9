//! Client placement in a cluster, through the public API: a client authenticated on a node
//! that is not its user's home gets `see-other-host` naming that node's client address on the
//! restarted stream (before any bind), and is counted; a user homed here binds as usual.

use std::sync::Arc;

use rookery_proto::Jid;
use rookery_router::{token_password, ClusterConfig, Location, NodeId, Placement, ShardId};
use rookery_testkit::{bind_iq, client_header, plain_auth, Cluster, TEST_SECRET};

/// Nodes 1 and 2, one shard each, 16 vshards alternating between them.
fn table() -> Arc<[Location]> {
    (0..16u16)
        .map(|v| Location {
            node: NodeId(1 + v % 2),
            shard: ShardId(0),
        })
        .collect()
}

/// Node 1 of that cluster (one shard).
fn node_one() -> Cluster {
    Cluster::with_config(1, |config| {
        config.cluster = Some(ClusterConfig {
            placement: Placement::cluster(NodeId(1), table()),
            nodes: vec![
                (NodeId(1), "127.0.0.1:5222".into()),
                (NodeId(2), "[::1]:5232".into()),
            ],
        });
    })
}

/// A user of example.com whose home is `node`.
fn user_on(node: u16) -> String {
    let placement = Placement::cluster(NodeId(1), table());
    (0..100)
        .map(|i| format!("user{i}"))
        .find(|user| {
            let jid = Jid::parse(&format!("{user}@example.com")).expect("valid JID");
            placement.home(&jid).node == NodeId(node)
        })
        .expect("a user on each node")
}

#[test]
fn a_client_homed_elsewhere_is_sent_to_its_node_before_binding() {
    let mut cluster = node_one();
    let user = user_on(2);
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    cluster.send(
        client,
        &plain_auth(&user, &token_password(TEST_SECRET, &user)),
    );
    cluster.take_output(client);
    cluster.send(client, &client_header());
    let out = cluster.take_output(client);
    assert!(out.contains("<stream:stream "), "a header first: {out}");
    assert!(
        out.ends_with(
            "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>\
             [::1]:5232</see-other-host></stream:error></stream:stream>"
        ),
        "{out}"
    );
    assert!(!out.contains("<stream:features>"), "no bind offered: {out}");
    assert!(cluster.is_closed(client));
    let stats = cluster.router(0).stats();
    assert_eq!((stats.redirects, stats.sessions), (1, 0));
}

#[test]
fn a_client_homed_here_binds_and_nothing_is_redirected() {
    let mut cluster = node_one();
    let user = user_on(1);
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    cluster.send(
        client,
        &plain_auth(&user, &token_password(TEST_SECRET, &user)),
    );
    cluster.send(client, &client_header());
    cluster.take_output(client);
    cluster.send(client, &bind_iq("b1", Some("r")));
    let out = cluster.take_output(client);
    assert!(
        out.contains(&format!("<jid>{user}@example.com/r</jid>")),
        "{out}"
    );
    let stats = cluster.router(0).stats();
    assert_eq!((stats.redirects, stats.sessions), (0, 1));
    assert_eq!(cluster.router(0).location().node, NodeId(1));
}
