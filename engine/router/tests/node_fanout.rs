//! A fan-out from another node for several shards of this one (`Mail::NodeFanout`): the
//! router it reaches delivers its own part and mails each other part to its shard, so every
//! recipient gets its copy once (the server's bridge normally splits it before a router
//! sees it; this is the router's fallback).

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind};
use rookery_router::{Mail, NodeFanout, Recipient, ShardId, StanzaType};
use rookery_testkit::{user_homed_on, Cluster};

#[test]
fn a_node_fanout_reaching_one_shard_reaches_every_shard_it_names() {
    let mut cluster = Cluster::new(2);
    let (ann, ben) = (user_homed_on("ann", 0, 2), user_homed_on("ben", 1, 2));
    let (a, _) = cluster.login(0, &ann, Some("r"));
    let (b, _) = cluster.login(1, &ben, Some("r"));
    for client in [a, b] {
        cluster.send(client, "<presence/>");
        cluster.take_output(client);
    }
    let bare = |user: &str| Jid::parse(&format!("{user}@example.com")).expect("valid");
    let fanout = NodeFanout {
        from: Jid::parse("zed@example.com/far").expect("valid"),
        kind: StanzaKind::Presence,
        ty: StanzaType::Available,
        stanza: Arc::from(&b"<presence from='zed@example.com/far'><show>dnd</show></presence>"[..]),
        parts: vec![
            (
                ShardId(0),
                Arc::from(vec![Recipient::Available(bare(&ann))]),
            ),
            (
                ShardId(1),
                Arc::from(vec![Recipient::Available(bare(&ben))]),
            ),
        ],
        gather: None,
    };
    let mail_in = cluster.router(1).stats().mail_in;
    cluster.deliver_mail(0, Mail::NodeFanout(Box::new(fanout)));
    for (client, user) in [(a, &ann), (b, &ben)] {
        let out = cluster.take_output(client);
        assert_eq!(out.matches("<show>dnd</show>").count(), 1, "{user}: {out}");
        assert!(out.contains(&format!("to='{user}@example.com'")), "{out}");
    }
    assert_eq!(
        cluster.router(1).stats().mail_in,
        mail_in + 1,
        "one Fanout to shard 1"
    );
}
