//! XEP-0357 push notifications through the two-router harness: an app server connected as a
//! XEP-0114 component gets the summary publish when a message is stored for a user whose
//! session is detached or who is offline; the rate limit coalesces; an error answer disables
//! the registration; the account advertises the feature.

mod common;

use common::enable;
use rookery_router::ComponentConfig;
use rookery_testkit::{user_homed_on, ClientId, Cluster};
use sha1::{Digest, Sha1};

const APP: &str = "push.example.com";
const SECRET: &str = "s3cret";
const INTERVAL_MS: u64 = 10_000;

fn cluster(include_body: bool) -> Cluster {
    Cluster::with_config(2, |config| {
        config.components = vec![ComponentConfig {
            name: APP.into(),
            secret: SECRET.into(),
        }];
        config.push_interval_ms = INTERVAL_MS;
        config.push_include_body = include_body;
    })
}

fn app_server(cluster: &mut Cluster) -> ClientId {
    let c = cluster.connect_component(0);
    cluster.send(
        c,
        &format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{APP}'>"
        ),
    );
    let out = cluster.take_output(c);
    let start = out.find(" id='").expect("an id") + 5;
    let id = &out[start..start + out[start..].find('\'').expect("quoted")];
    let mut hasher = Sha1::new();
    hasher.update(id.as_bytes());
    hasher.update(SECRET.as_bytes());
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    cluster.send(c, &format!("<handshake>{digest}</handshake>"));
    assert_eq!(cluster.take_output(c), "<handshake/>");
    c
}

fn enable_push(cluster: &mut Cluster, client: ClientId, node: &str) {
    cluster.send(
        client,
        &format!(
            "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='{APP}' node='{node}'>\
             <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
             <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='secret'><value>tok</value></field></x></enable></iq>"
        ),
    );
    let out = cluster.take_output(client);
    assert!(
        out.contains("type='result'") && out.contains("id='e1'"),
        "{out}"
    );
}

fn chat(cluster: &mut Cluster, from: ClientId, to: &str, body: &str) {
    cluster.send(
        from,
        &format!("<message to='{to}' type='chat'><body>{body}</body></message>"),
    );
}

fn field(out: &str, var: &str) -> Option<String> {
    let start = out.find(&format!("<field var='{var}'><value>"))?;
    let rest = &out[start + var.len() + 21..];
    Some(rest[..rest.find("</value>")?].to_owned())
}

#[test]
fn a_detached_session_gets_one_coalesced_push_per_interval() {
    let mut cluster = cluster(false);
    let app = app_server(&mut cluster);
    let alice = user_homed_on("alice", 1, 2);
    let (a, _) = cluster.login(1, &alice, Some("phone"));
    cluster.initial_presence(a);
    enable(&mut cluster, a, true);
    enable_push(&mut cluster, a, "n1");
    let (b, b_jid) = cluster.login(0, "bob", Some("pc"));
    let to = format!("{alice}@example.com");
    // Online: no push.
    chat(&mut cluster, b, &to, "live");
    assert_eq!(cluster.take_output(app), "");
    cluster.disconnect(a);
    assert_eq!(cluster.router(1).stats().detached_sessions, 1);
    chat(&mut cluster, b, &to, "secret words");
    let out = cluster.take_output(app);
    assert!(out.starts_with("<iq type='set' id='push-"), "{out}");
    assert!(out.contains(&format!("from='{to}' to='{APP}'")), "{out}");
    assert!(out.contains("<publish node='n1'>"), "{out}");
    assert_eq!(
        field(&out, "FORM_TYPE").as_deref(),
        Some("urn:xmpp:push:summary")
    );
    assert_eq!(field(&out, "message-count").as_deref(), Some("1"));
    let bob_bare = b_jid.split('/').next().unwrap_or_default();
    assert_eq!(
        field(&out, "last-message-sender").as_deref(),
        Some(bob_bare)
    );
    assert!(!out.contains("secret words"), "no body by default: {out}");
    assert!(
        out.contains("<publish-options><x xmlns='jabber:x:data'"),
        "{out}"
    );
    // Two more within the interval: nothing now, one push with both counted after it.
    chat(&mut cluster, b, &to, "two");
    chat(&mut cluster, b, &to, "three");
    assert_eq!(cluster.take_output(app), "");
    cluster.advance(INTERVAL_MS / 2);
    assert_eq!(cluster.take_output(app), "");
    cluster.advance(INTERVAL_MS / 2 + 200);
    let out = cluster.take_output(app);
    assert_eq!(out.matches("<iq ").count(), 1, "{out}");
    assert_eq!(field(&out, "message-count").as_deref(), Some("2"));
    assert_eq!(cluster.router(1).stats().push_notifications, 2);
}

#[test]
fn an_offline_user_is_pushed_with_the_body_when_allowed_and_an_error_disables() {
    let mut cluster = cluster(true);
    let app = app_server(&mut cluster);
    let (a, _) = cluster.login(1, "alice", Some("phone"));
    enable_push(&mut cluster, a, "n2");
    cluster.disconnect(a);
    let (b, _) = cluster.login(0, "bob", Some("pc"));
    chat(&mut cluster, b, "alice@example.com", "hello &amp; bye");
    let out = cluster.take_output(app);
    assert_eq!(
        field(&out, "last-message-body").as_deref(),
        Some("hello &amp; bye")
    );
    let start = out.find("id='").expect("an id") + 4;
    let id = &out[start..start + out[start..].find('\'').expect("quoted")];
    cluster.send(
        app,
        &format!(
            "<iq type='error' id='{id}' from='{APP}' to='alice@example.com'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></iq>"
        ),
    );
    cluster.advance(INTERVAL_MS + 200);
    chat(&mut cluster, b, "alice@example.com", "again");
    cluster.advance(INTERVAL_MS + 200);
    assert_eq!(
        cluster.take_output(app),
        "",
        "the registration was disabled"
    );
}

#[test]
fn disable_stops_pushes_and_registrations_are_bounded() {
    let mut cluster = cluster(false);
    let app = app_server(&mut cluster);
    let (a, _) = cluster.login(0, "alice", Some("phone"));
    for n in 0..8 {
        enable_push(&mut cluster, a, &format!("node{n}"));
    }
    cluster.send(
        a,
        &format!(
            "<iq type='set' id='e9'><enable xmlns='urn:xmpp:push:0' jid='{APP}' node='x'/></iq>"
        ),
    );
    assert!(cluster.take_output(a).contains("resource-constraint"));
    cluster.send(
        a,
        &format!("<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='{APP}'/></iq>"),
    );
    assert!(cluster.take_output(a).contains("type='result'"));
    cluster.disconnect(a);
    let (b, _) = cluster.login(1, "bob", Some("pc"));
    chat(&mut cluster, b, "alice@example.com", "nobody told");
    assert_eq!(cluster.take_output(app), "");
}

#[test]
fn the_account_advertises_push() {
    let mut cluster = cluster(false);
    let (a, a_jid) = cluster.login(0, "alice", Some("phone"));
    let bare = a_jid.split('/').next().unwrap_or_default().to_owned();
    cluster.send(
        a,
        &format!("<iq type='get' id='i' to='{bare}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    );
    let out = cluster.take_output(a);
    assert!(out.contains("<feature var='urn:xmpp:push:0'/>"), "{out}");
}
