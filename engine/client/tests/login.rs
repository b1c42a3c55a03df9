//! Logins against the scripted server: PLAIN and SCRAM (rookery-sasl's server side), bind
//! with a requested or assigned resource, the legacy session, failures, and every login
//! replayed to a fresh client split at every byte boundary.

mod support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use rookery_client::{Client, Event, Flow, Mechanisms, Options, Phase, SmMode, Stream};
use support::*;

fn online(script: Script, resource: Option<&str>) -> Pair {
    let mut pair = Pair::new(script, login("secret", resource), SmMode::Off);
    pair.connect();
    pair
}

#[test]
fn plain_login_binds_the_requested_resource() {
    let pair = online(Script::default(), Some("phone"));
    assert!(pair.client.is_online());
    assert_eq!(
        pair.events,
        [
            "Authenticated",
            "Bound { jid: \"user@example.test/phone\" }",
            "Online"
        ]
    );
    let sent = String::from_utf8(pair.sent).unwrap();
    // base64("\0user\0secret")
    assert!(
        sent.contains("mechanism='PLAIN'>AHVzZXIAc2VjcmV0</auth>"),
        "{sent}"
    );
    assert!(sent.contains("<resource>phone</resource>"), "{sent}");
    assert_eq!(
        sent.matches("<stream:stream").count(),
        2,
        "restart after SASL"
    );
}

#[test]
fn server_assigns_the_resource_when_none_is_asked() {
    let pair = online(Script::default(), None);
    assert_eq!(
        pair.events[1],
        "Bound { jid: \"user@example.test/assigned-7\" }"
    );
    let sent = String::from_utf8(pair.sent).unwrap();
    assert!(
        sent.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"),
        "{sent}"
    );
}

#[test]
fn scram_is_preferred_and_verified() {
    for (offer, chosen) in [
        (
            vec!["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"],
            "SCRAM-SHA-256",
        ),
        (vec!["SCRAM-SHA-1", "PLAIN"], "SCRAM-SHA-1"),
    ] {
        let script = Script {
            mechanisms: offer,
            ..Script::default()
        };
        let pair = online(script, Some("r"));
        assert!(pair.client.is_online(), "{:?}", pair.events);
        let sent = String::from_utf8(pair.sent).unwrap();
        assert!(sent.contains(&format!("mechanism='{chosen}'")), "{sent}");
        assert!(sent.contains("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"));
        assert_eq!(
            pair.client.heap_bytes(),
            0,
            "the exchange is freed after success"
        );
    }
}

#[test]
fn plain_only_client_refuses_a_scram_only_server() {
    let script = Script {
        mechanisms: vec!["SCRAM-SHA-256"],
        ..Script::default()
    };
    let mut pair = Pair::new(script, login("secret", None), SmMode::Off);
    pair.client = Client::new(Options {
        mechanisms: Mechanisms::PLAIN,
        ..Options::default()
    });
    pair.connect();
    assert_eq!(pair.events, ["AuthFailed(NoCommonMechanism)"]);
    assert_eq!(pair.client.phase(), Phase::Done);
}

#[test]
fn wrong_password_fails_with_the_server_condition() {
    for mechanisms in [vec!["PLAIN"], vec!["SCRAM-SHA-256"]] {
        let script = Script {
            mechanisms,
            ..Script::default()
        };
        let mut pair = Pair::new(script, login("wrong", None), SmMode::Off);
        pair.connect();
        assert_eq!(
            pair.events,
            ["AuthFailed(Server { condition: \"not-authorized\" })"]
        );
        assert_eq!(pair.client.phase(), Phase::Done);
    }
}

#[test]
fn a_scram_success_that_does_not_verify_is_refused() {
    let script = Script {
        mechanisms: vec!["SCRAM-SHA-256"],
        ..Script::default()
    };
    let pair = online(script, None);
    // Replay the server's bytes with the signature in <success/> changed.
    let transcript = String::from_utf8(pair.server.transcript.clone()).unwrap();
    let start = transcript.find("<success").unwrap();
    let end = transcript[start..].find("</success>").unwrap() + start;
    let forged = format!(
        "{}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}{}",
        &transcript[..start],
        STANDARD.encode(format!("v={}", STANDARD.encode([0x41u8; 32]))),
        &transcript[end..]
    );
    // A fresh account: the same nonces as the recorded login.
    let (_, events) = replay(
        forged.as_bytes(),
        &[],
        &mut login("secret", None),
        SmMode::Off,
    );
    assert_eq!(events, ["AuthFailed(Client(ServerSignatureMismatch))"]);
}

#[test]
fn legacy_session_is_established_when_required() {
    let script = Script {
        session_required: true,
        ..Script::default()
    };
    let pair = online(script, Some("r"));
    assert!(pair.client.is_online());
    let sent = String::from_utf8(pair.sent).unwrap();
    assert!(
        sent.ends_with("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"),
        "{sent}"
    );
}

#[test]
fn bind_errors_end_the_stream() {
    let mut pair = Pair::new(Script::default(), login("secret", Some("r")), SmMode::Off);
    let mut out = Vec::new();
    pair.client.start(DOMAIN, &mut out);
    let transcript = format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
         <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}<stream:features>\
         <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\
         <message from='x@example.test'><body>early</body></message>\
         <iq type='error' id='bind1'><error type='cancel'>\
         <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    );
    let (_, events) = replay(transcript.as_bytes(), &[], &mut pair.account, SmMode::Off);
    assert_eq!(
        events,
        [
            "Authenticated",
            "Stanza(<message from='x@example.test'><body>early</body></message>)",
            "BindFailed { condition: \"conflict\" }"
        ]
    );
}

/// Records a login, then replays the server's bytes to fresh clients split in two at every
/// boundary: the client writes the same bytes and reports the same events.
fn same_at_every_split(script: Script, sm: SmMode) {
    let mut pair = Pair::new(script, login("secret", Some("r")), sm);
    pair.connect();
    assert!(pair.client.is_online(), "{:?}", pair.events);
    let transcript = pair.server.transcript.clone();
    let (whole_out, whole_events) = replay(&transcript, &[], &mut login("secret", Some("r")), sm);
    assert_eq!(whole_out, pair.sent);
    assert_eq!(whole_events, pair.events);
    for split in 0..=transcript.len() {
        let mut account = login("secret", Some("r"));
        let (out, events) = replay(&transcript, &[split], &mut account, sm);
        assert_eq!(out, whole_out, "split at {split}");
        assert_eq!(events, whole_events, "split at {split}");
    }
    let mut account = login("secret", Some("r"));
    let bytewise = vec![1; transcript.len()];
    assert_eq!(
        replay(&transcript, &bytewise, &mut account, sm).0,
        whole_out
    );
}

#[test]
fn plain_login_is_the_same_split_anywhere() {
    same_at_every_split(Script::default(), SmMode::Off);
}

#[test]
fn scram_login_with_sm_is_the_same_split_anywhere() {
    let script = Script {
        mechanisms: vec!["SCRAM-SHA-1", "SCRAM-SHA-256"],
        sm: true,
        session_required: true,
        ..Script::default()
    };
    same_at_every_split(script, SmMode::EnableResumable);
}

#[test]
fn feed_until_stops_after_the_event_and_leaves_the_rest() {
    let mut pair = online(Script::default(), Some("r"));
    let transcript = pair.server.transcript.clone();
    let tail = b"<message><body>after</body></message>";
    let mut all = transcript.clone();
    all.extend_from_slice(tail);
    let mut client = client(SmMode::Off);
    let mut out = Vec::new();
    client.start(DOMAIN, &mut out);
    let used = client.feed_until(
        &all,
        &mut pair.account,
        &mut out,
        |ev, _: &mut Stream<()>, _: &mut Vec<u8>| {
            if matches!(ev, Event::Online) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        },
    );
    assert_eq!(used, transcript.len());
    assert_eq!(&all[used..], tail);
    assert!(client.is_online());
}

#[test]
fn stopping_after_every_event_loses_none() {
    let pair = online(Script::default(), Some("r"));
    let transcript = pair.server.transcript.clone();
    let mut client = client(SmMode::Off);
    let mut out = Vec::new();
    client.start(DOMAIN, &mut out);
    let mut account = login("secret", Some("r"));
    let mut events = Vec::new();
    let mut rest = &transcript[..];
    while !rest.is_empty() {
        let used = client.feed_until(
            rest,
            &mut account,
            &mut out,
            |ev, _: &mut Stream<()>, _: &mut Vec<u8>| {
                events.push(render(&ev));
                Flow::Stop
            },
        );
        rest = &rest[used..];
    }
    assert_eq!(events, pair.events);
}
