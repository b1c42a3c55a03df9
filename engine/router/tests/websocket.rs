//! The router's side of XMPP over WebSocket (RFC 7395): a conn whose layers say
//! `Framing::WebSocket` gets `<open/>`, features and stream errors declaring the `stream`
//! prefix, `<close/>` for an end, no STARTTLS; and keeps that dialect when it is handed to its
//! user's home shard. (The server's layer turns the client's `<open/>`/`<close/>` into the
//! RFC 6120 header and end tag, so the router reads the same bytes as over TCP.)

use rookery_router::{token_password, Framing, Security, TlsPolicy, TlsRequired, Transport};
use rookery_testkit::{
    client_header, plain_auth, user_homed_on, ClientId, Cluster, TEST_DOMAIN, TEST_SECRET,
};

const WEBSOCKET: Transport = Transport {
    security: Security::Clear,
    framing: Framing::WebSocket,
};
const OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'";
const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";
const FEATURES: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>";

fn connect(cluster: &mut Cluster, shard: u16) -> ClientId {
    cluster.connect_with(shard, Some("127.0.0.1".parse().unwrap()), WEBSOCKET)
}

#[test]
fn a_websocket_conn_gets_open_features_and_close_and_no_starttls() {
    let mut cluster = Cluster::with_config(1, |config| {
        config.tls = TlsPolicy {
            starttls: true,
            required: TlsRequired::OffLoopback,
        };
    });
    let client = connect(&mut cluster, 0);
    cluster.send(client, &client_header());
    let opened = cluster.take_output(client);
    assert!(opened.starts_with(OPEN), "{opened}");
    assert!(
        opened.contains(&format!("from='{TEST_DOMAIN}'")),
        "{opened}"
    );
    assert!(!opened.contains("<stream:stream"), "{opened}");
    assert!(opened.contains(FEATURES), "{opened}");
    assert!(
        !opened.contains("starttls"),
        "no STARTTLS over WebSocket: {opened}"
    );
    assert!(opened.contains("<mechanism>PLAIN</mechanism>"), "{opened}");
    cluster.send(client, "</stream:stream>");
    assert_eq!(cluster.take_output(client), CLOSE);
    assert!(cluster.is_closed(client));

    // A TCP conn of the same server is offered STARTTLS and gets RFC 6120 framing.
    let tcp = cluster.connect_from(0, Some("127.0.0.1".parse().unwrap()));
    cluster.send(tcp, &client_header());
    let opened = cluster.take_output(tcp);
    assert!(
        opened.contains("<stream:stream") && opened.contains("<starttls"),
        "{opened}"
    );
}

#[test]
fn stream_errors_over_websocket_are_standalone_and_end_with_close() {
    let mut cluster = Cluster::new(1);
    let client = connect(&mut cluster, 0);
    cluster.send(
        client,
        "<stream:stream xmlns='jabber:client' xmlns:stream='urn:example:wrong' version='1.0'>",
    );
    let out = cluster.take_output(client);
    assert!(
        out.starts_with(OPEN),
        "the error follows our <open/>: {out}"
    );
    assert!(
        out.contains(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <invalid-namespace xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        ),
        "{out}"
    );
    assert!(out.ends_with(CLOSE), "{out}");
    assert!(cluster.is_closed(client));
}

#[test]
fn the_dialect_travels_with_a_hand_off_to_the_home_shard() {
    let mut cluster = Cluster::new(2);
    let user = user_homed_on("web", 1, 2);
    let client = connect(&mut cluster, 0);
    cluster.send(client, &client_header());
    cluster.send(
        client,
        &plain_auth(&user, &token_password(TEST_SECRET, &user)),
    );
    cluster.send(client, &client_header());
    let restarted = cluster.take_output(client);
    assert!(restarted.contains("<success"), "{restarted}");
    assert_eq!(restarted.matches(OPEN).count(), 2, "{restarted}");
    cluster.send(
        client,
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    let bound = cluster.take_output(client);
    assert!(bound.contains("type='result'"), "{bound}");
    assert_eq!(cluster.shard_of(client), 1, "handed to the home shard");
    cluster.send(client, "</stream:stream>");
    assert_eq!(cluster.take_output(client), CLOSE);
}
