//! TLS as the stream layer negotiates it (RFC 6120 5, RFC 9266): STARTTLS offered and
//! required, `<proceed/>` and the switch at the byte after `<starttls/>`, the features of the
//! stream that follows under TLS (no STARTTLS, PLAIN allowed, SCRAM -PLUS with the
//! tls-exporter), a -PLUS login bound to the channel, and the downgrade a `y` flag reveals.
//! The TLS layer itself is the server's; here the recording effects say what it would.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_proto::Jid;
use rookery_router::{accounts, AuthBackend, TlsPolicy, TlsRequired};
use rookery_sasl::{ChannelBinding, ClientExchange, Credentials, Mechanism};
use rookery_store::{Durability, Store, StoreConfig};
use rookery_testkit::{client_header, plain_auth, ClientId, Cluster, TEST_DOMAIN};

const EXPORTER: [u8; 32] = [7; 32];
const REMOTE: &str = "192.0.2.9";

/// One shard, `--auth file` with alice/secret, STARTTLS offered with `required`.
fn cluster(required: TlsRequired) -> Cluster {
    Cluster::with_stores(
        1,
        |config| {
            config.auth = AuthBackend::File;
            config.tls = TlsPolicy {
                starttls: true,
                required,
            };
        },
        |shard| {
            let config = StoreConfig::new("", shard).with_durability(Durability::Memory);
            let mut store = Store::open(config).expect("a memory store");
            let jid = Jid::new(Some("alice"), TEST_DOMAIN, None).unwrap();
            let credentials =
                Credentials::derive("secret", 4096, b"salt-one-sixteen", b"salt-two-sixteen")
                    .unwrap();
            accounts::set_credentials(&mut store, &jid, &credentials).unwrap();
            store
        },
    )
}

fn remote(cluster: &mut Cluster) -> ClientId {
    cluster.connect_from(0, Some(REMOTE.parse().unwrap()))
}

/// STARTTLS up to the TLS layer taking over; returns the early bytes it was handed.
fn starttls(cluster: &mut Cluster, client: ClientId, early: &str) -> Vec<u8> {
    cluster.send(
        client,
        &format!("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>{early}"),
    );
    let answer = cluster.take_output(client);
    assert_eq!(
        answer, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "nothing may follow <proceed/> in the clear"
    );
    cluster
        .take_started_tls(client)
        .expect("the router started TLS")
}

#[test]
fn required_tls_withholds_sasl_until_starttls_and_the_stream_restarts_under_tls() {
    let mut cluster = cluster(TlsRequired::OffLoopback);
    let client = remote(&mut cluster);
    cluster.send(client, &client_header());
    let features = cluster.take_output(client);
    assert!(
        features
            .contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
            && !features.contains("<mechanisms"),
        "{features}"
    );
    cluster.send(client, &plain_auth("alice", "secret"));
    let refused = cluster.take_output(client);
    assert!(refused.contains("<encryption-required/>"), "{refused}");

    // The bytes after <starttls/> (here the start of a ClientHello) go to the TLS layer.
    let early = starttls(&mut cluster, client, "\x16\x03\x01");
    assert_eq!(early, b"\x16\x03\x01");
    cluster.secure(client, Some(EXPORTER));
    cluster.send(client, &client_header());
    let features = cluster.take_output(client);
    assert!(
        features.contains("<?xml"),
        "a new stream header: {features}"
    );
    assert!(!features.contains("starttls"), "{features}");
    assert!(
        features.contains(
            "<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>\
             <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
             <mechanism>PLAIN</mechanism>"
        ) && features.contains("<channel-binding type='tls-exporter'/>"),
        "{features}"
    );
    cluster.send(client, &plain_auth("alice", "secret"));
    assert!(cluster.take_output(client).contains("<success"));
}

#[test]
fn loopback_may_stay_in_the_clear_unless_all_conns_must_use_tls() {
    let mut cluster = cluster(TlsRequired::OffLoopback);
    let local = cluster.connect_from(0, Some("127.0.0.1".parse().unwrap()));
    cluster.send(local, &client_header());
    let features = cluster.take_output(local);
    assert!(
        features.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            && features.contains("<mechanism>PLAIN</mechanism>")
            && !features.contains("-PLUS"),
        "{features}"
    );
    let mut strict = cluster_with_all();
    let local = strict.connect_from(0, Some("127.0.0.1".parse().unwrap()));
    strict.send(local, &client_header());
    let features = strict.take_output(local);
    assert!(features.contains("<required/>"), "{features}");
}

fn cluster_with_all() -> Cluster {
    cluster(TlsRequired::Always)
}

#[test]
fn starttls_without_a_certificate_or_twice_fails_and_closes() {
    let mut plain = Cluster::new(1);
    let client = plain.connect(0);
    plain.send(client, &client_header());
    assert!(!plain.take_output(client).contains("starttls"));
    plain.send(
        client,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    let answer = plain.take_output(client);
    assert!(
        answer.starts_with("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            && answer.ends_with("</stream:stream>"),
        "{answer}"
    );
    assert!(plain.is_closed(client));
    assert!(plain.take_started_tls(client).is_none());

    let mut cluster = cluster(TlsRequired::Never);
    let client = remote(&mut cluster);
    cluster.send(client, &client_header());
    cluster.take_output(client);
    starttls(&mut cluster, client, "");
    cluster.secure(client, Some(EXPORTER));
    cluster.send(client, &client_header());
    cluster.take_output(client);
    cluster.send(
        client,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    assert!(cluster.take_output(client).contains("<failure"));
    assert!(cluster.is_closed(client));
}

/// SCRAM over the secured stream: a -PLUS exchange binds to `binding`.
fn scram(
    cluster: &mut Cluster,
    client: ClientId,
    mechanism: Mechanism,
    binding: ChannelBinding,
) -> String {
    let (mut exchange, first) = ClientExchange::start(
        mechanism,
        "alice",
        "secret",
        binding,
        b"client-nonce-0123456789",
    )
    .unwrap();
    cluster.send(
        client,
        &format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
            mechanism.name(),
            STANDARD.encode(first)
        ),
    );
    let challenge = cluster.take_output(client);
    let Some(text) = challenge
        .strip_prefix("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
        .and_then(|rest| rest.strip_suffix("</challenge>"))
    else {
        return challenge;
    };
    let final_message = exchange.step(&STANDARD.decode(text).unwrap()).unwrap();
    cluster.send(
        client,
        &format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            STANDARD.encode(final_message)
        ),
    );
    cluster.take_output(client)
}

fn secured(cluster: &mut Cluster) -> ClientId {
    let client = remote(cluster);
    cluster.send(client, &client_header());
    cluster.take_output(client);
    starttls(cluster, client, "");
    cluster.secure(client, Some(EXPORTER));
    cluster.send(client, &client_header());
    cluster.take_output(client);
    client
}

#[test]
fn scram_plus_binds_to_the_tls_exporter_and_a_downgrade_is_refused() {
    let mut cluster = cluster(TlsRequired::OffLoopback);
    let client = secured(&mut cluster);
    let bound = scram(
        &mut cluster,
        client,
        Mechanism::ScramSha256Plus,
        ChannelBinding::TlsExporter(EXPORTER),
    );
    assert!(bound.starts_with("<success"), "{bound}");

    // A client whose exporter differs (a man in the middle terminating TLS) fails.
    let client = secured(&mut cluster);
    let other = scram(
        &mut cluster,
        client,
        Mechanism::ScramSha1Plus,
        ChannelBinding::TlsExporter([8; 32]),
    );
    assert!(other.contains("<failure"), "{other}");

    // `y`: the client could bind but believes the server offered no -PLUS: it did.
    let client = secured(&mut cluster);
    let downgraded = scram(
        &mut cluster,
        client,
        Mechanism::ScramSha256,
        ChannelBinding::SupportedNotOffered,
    );
    assert!(downgraded.contains("<failure"), "{downgraded}");
}
