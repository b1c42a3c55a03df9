//! XEP-0114 external components through the two-router harness: the handshake, the hand-off
//! to the name's home shard, routing both ways, and the stream errors.

use rookery_proto::Jid;
use rookery_router::{ComponentConfig, Placement};
use rookery_testkit::{user_homed_on, ClientId, Cluster};
use sha1::{Digest, Sha1};

const NAME: &str = "push.example.com";
const SECRET: &str = "s3cret";

fn cluster() -> Cluster {
    Cluster::with_config(2, |config| {
        config.components = vec![ComponentConfig {
            name: NAME.into(),
            secret: SECRET.into(),
        }];
    })
}

fn header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>"
    )
}

/// The `id` attribute of our header in `out`.
fn stream_id(out: &str) -> String {
    let start = out.find(" id='").expect("our header has an id") + 5;
    let end = out[start..].find('\'').expect("the id attribute ends") + start;
    out[start..end].to_owned()
}

fn digest(id: &str, secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(id.as_bytes());
    hasher.update(secret.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn home_of_name() -> u16 {
    let name = Jid::parse(NAME).expect("valid name");
    Placement::local(2).home(&name).shard.0
}

/// Connects the component on `shard` and completes the handshake.
fn connect(cluster: &mut Cluster, shard: u16) -> ClientId {
    let c = cluster.connect_component(shard);
    cluster.send(c, &header(NAME));
    let out = cluster.take_output(c);
    assert!(
        out.contains("xmlns='jabber:component:accept'") && out.contains(&format!("from='{NAME}'")),
        "{out}"
    );
    let id = stream_id(&out);
    cluster.send(
        c,
        &format!("<handshake>{}</handshake>", digest(&id, SECRET)),
    );
    assert_eq!(cluster.take_output(c), "<handshake/>");
    c
}

#[test]
fn a_component_on_another_shard_moves_home_and_routes_both_ways() {
    let mut cluster = cluster();
    let home = home_of_name();
    let c = connect(&mut cluster, 1 - home);
    assert_eq!(
        cluster.shard_of(c),
        home,
        "attached on its name's home shard"
    );
    let alice = user_homed_on("alice", 1 - home, 2);
    let (a, a_jid) = cluster.login(1 - home, &alice, Some("phone"));
    cluster.send(
        a,
        &format!("<iq type='set' id='p1' to='{NAME}'><x xmlns='urn:example'/></iq>"),
    );
    assert_eq!(
        cluster.take_output(c),
        format!("<iq type='set' id='p1' to='{NAME}' from='{a_jid}'><x xmlns='urn:example'/></iq>")
    );
    cluster.send(
        c,
        &format!("<iq type='result' id='p1' from='{NAME}' to='{a_jid}'/>"),
    );
    assert_eq!(
        cluster.take_output(a),
        format!("<iq type='result' id='p1' from='{NAME}' to='{a_jid}'/>")
    );
    // Any address at its domain is its to use and to receive.
    cluster.send(
        c,
        &format!("<message from='bot@{NAME}/x' to='{a_jid}' type='chat'><body>hi</body></message>"),
    );
    assert!(cluster.take_output(a).contains("<body>hi</body>"));
    cluster.send(
        a,
        &format!("<message to='bot@{NAME}' type='chat'><body>yo</body></message>"),
    );
    assert!(cluster.take_output(c).contains("<body>yo</body>"));
}

#[test]
fn without_a_component_its_domain_answers_service_unavailable() {
    let mut cluster = cluster();
    let (a, _) = cluster.login(0, "alice", Some("phone"));
    cluster.send(
        a,
        &format!("<iq type='get' id='q' to='{NAME}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("type='error'") && out.contains("service-unavailable"),
        "{out}"
    );
    // A subdomain is not the component's.
    cluster.send(
        a,
        &format!("<iq type='get' id='r' to='x.{NAME}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    assert!(cluster.take_output(a).contains("remote-server-not-found"));
}

#[test]
fn a_wrong_handshake_is_not_authorized() {
    let mut cluster = cluster();
    let c = cluster.connect_component(0);
    cluster.send(c, &header(NAME));
    let id = stream_id(&cluster.take_output(c));
    cluster.send(
        c,
        &format!("<handshake>{}</handshake>", digest(&id, "wrong")),
    );
    let out = cluster.take_output(c);
    assert!(out.contains("<not-authorized"), "{out}");
    assert!(cluster.is_closed(c));
}

#[test]
fn an_unknown_name_or_namespace_is_refused() {
    let mut cluster = cluster();
    let c = cluster.connect_component(0);
    cluster.send(c, &header("other.example.com"));
    let out = cluster.take_output(c);
    assert!(out.contains("<host-unknown"), "{out}");
    assert!(cluster.is_closed(c));
    let c = cluster.connect_component(0);
    cluster.send(
        c,
        &header(NAME).replace("jabber:component:accept", "jabber:client"),
    );
    assert!(cluster.take_output(c).contains("<invalid-namespace"));
    assert!(cluster.is_closed(c));
}

#[test]
fn a_second_component_for_a_name_is_a_conflict_and_the_first_stays() {
    let mut cluster = cluster();
    let home = home_of_name();
    let first = connect(&mut cluster, home);
    let second = cluster.connect_component(home);
    cluster.send(second, &header(NAME));
    let id = stream_id(&cluster.take_output(second));
    cluster.send(
        second,
        &format!("<handshake>{}</handshake>", digest(&id, SECRET)),
    );
    assert!(cluster.take_output(second).contains("<conflict"));
    assert!(cluster.is_closed(second));
    assert!(!cluster.is_closed(first));
    // After the first one leaves, the name is free again.
    cluster.disconnect(first);
    let third = connect(&mut cluster, home);
    assert!(!cluster.is_closed(third));
}

#[test]
fn a_from_outside_its_domain_is_invalid_from() {
    let mut cluster = cluster();
    let c = connect(&mut cluster, 0);
    cluster.send(
        c,
        "<message from='mallory@example.com/x' to='alice@example.com'><body/></message>",
    );
    assert!(cluster.take_output(c).contains("<invalid-from"));
    assert!(cluster.is_closed(c));
}

#[test]
fn a_user_offline_gets_a_components_message_later() {
    let mut cluster = cluster();
    let c = connect(&mut cluster, 0);
    cluster.send(
        c,
        &format!(
            "<message from='{NAME}' to='bob@example.com' type='chat'><body>stored</body></message>"
        ),
    );
    cluster.commit_all();
    let (b, _) = cluster.login(1, "bob", Some("pc"));
    let out = cluster.initial_presence(b);
    assert!(out.contains("<body>stored</body>"), "{out}");
}
