//! End-to-end encrypted payloads pass untouched: an OMEMO message (XEP-0384, the Signal
//! protocol's counterpart in XMPP: header, per-device keys, an AES-GCM payload, a fallback
//! body) arrives byte-identical live, from the offline store at the next login, and from the
//! recipient's XEP-0313 archive. The server must never re-serialise what it cannot read: the
//! attribute quoting, whitespace and base64 below are odd on purpose.

mod common;

use common::message_ids;
use rookery_store::archive::ArchiveConfig;
use rookery_testkit::{user_homed_on, Cluster, TEST_DOMAIN};

const SHARDS: u16 = 2;

/// The encrypted element exactly as a client would send it (double quotes, a tab, a newline,
/// an attribute order no serialiser would pick, base64 with padding).
const ENCRYPTED: &str = "<encrypted xmlns=\"eu.siacs.conversations.axolotl\">\
<header sid=\"1234567\">\t<key prekey=\"true\" rid=\"987654\">MwohBb2c/Y3Rt+kx0vb7N3W5yq\
Lx3Ql0aFq6Qm9tkZbQ2PWEkA==</key>\n<key rid='31415'>AAECAwQFBgcICQoLDA0ODw==</key>\
<iv>3q2+7w8fLz9PX29/</iv></header><payload>q83vASNFZ4mrze8BI0VniavN7wEjRWeJ\
q83vASNFZ4k=</payload></encrypted>";

fn omemo_message(to: &str, id: &str) -> String {
    format!(
        "<message to='{to}' type='chat' id='{id}'>{ENCRYPTED}\
<body>I sent you an OMEMO encrypted message but your client doesn't seem to support \
that.</body><encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/>\
<store xmlns='urn:xmpp:hints'/></message>"
    )
}

#[test]
fn an_omemo_payload_arrives_byte_identical_live_offline_and_from_the_archive() {
    let mut cluster = Cluster::with_config(SHARDS, |c| c.archive = Some(ArchiveConfig::memory()));
    let (alice, bob, carol) = (
        user_homed_on("alice", 0, SHARDS),
        user_homed_on("bob", 1, SHARDS),
        user_homed_on("carol", 1, SHARDS),
    );
    let (bob_bare, carol_bare) = (
        format!("{bob}@{TEST_DOMAIN}"),
        format!("{carol}@{TEST_DOMAIN}"),
    );
    let (a, _) = cluster.login(0, &alice, Some("phone"));
    let (b, _) = cluster.login(1, &bob, Some("desktop"));
    cluster.send(b, "<presence/>");
    cluster.take_output(b);

    // Live, across shards.
    cluster.send(a, &omemo_message(&bob_bare, "live1"));
    let live = cluster.take_output(b);
    assert_eq!(message_ids(&live), ["live1"], "{live}");
    assert!(live.contains(ENCRYPTED), "live copy altered: {live}");

    // Stored while carol is away, delivered at her login.
    cluster.send(a, &omemo_message(&carol_bare, "stored1"));
    cluster.commit_all();
    assert_eq!(cluster.router(1).store().queue_len(&carol_bare), 1);
    let (c, _) = cluster.login(1, &carol, Some("tablet"));
    let offline = cluster.initial_presence(c);
    assert_eq!(message_ids(&offline), ["stored1"], "{offline}");
    assert!(
        offline.contains(ENCRYPTED),
        "stored copy altered: {offline}"
    );
    assert!(offline.contains("urn:xmpp:delay"), "{offline}");

    // From bob's archive, on a device that was not online.
    let (b2, _) = cluster.login(1, &bob, Some("laptop"));
    cluster.send(
        b2,
        "<iq type='set' id='mam1'><query xmlns='urn:xmpp:mam:2' queryid='Q'/></iq>",
    );
    let archived = cluster.take_output(b2);
    assert_eq!(
        archived.matches("<result ").count(),
        1,
        "one archived message: {archived}"
    );
    assert!(
        archived.contains(ENCRYPTED),
        "archived copy altered: {archived}"
    );
    assert!(archived.contains("<fin "), "{archived}");
}
