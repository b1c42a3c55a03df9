//! Client against server in memory: every mechanism, with and without channel binding,
//! wrong passwords, unknown users, the downgrade, and salted-password caching.

mod support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_sasl::{
    salted_password, ChannelBinding, ChannelBindingOffer, ClientError, ClientExchange, Credentials,
    Failure, Mechanism, ScramHash, ServerExchange, Step,
};
use support::*;

const OFFERED: ChannelBindingOffer = ChannelBindingOffer::TlsExporter(EXPORTER);

fn success(outcome: &Outcome, authcid: &str) {
    match &outcome.server {
        Step::Success { authcid: got, .. } => assert_eq!(got, authcid),
        other => panic!("server did not succeed: {other:?} ({:?})", outcome.detail),
    }
    assert_eq!(
        outcome
            .client
            .as_ref()
            .map(|r| r.as_ref().map_err(|e| e.to_string())),
        Some(Ok(&()))
    );
}

fn failed(outcome: &Outcome, failure: Failure, detail: &str) {
    assert_eq!(
        outcome.server,
        Step::Failure(failure),
        "{:?}",
        outcome.detail
    );
    assert_eq!(outcome.detail, Some(detail));
    assert!(outcome.client.is_none());
}

#[test]
fn every_mechanism_logs_in_with_the_right_password() {
    let stored = credentials("correct horse");
    for mechanism in Mechanism::ALL {
        let (offer, binding) = if mechanism.needs_channel_binding() {
            (OFFERED, ChannelBinding::TlsExporter(EXPORTER))
        } else {
            (ChannelBindingOffer::NotOffered, ChannelBinding::None)
        };
        let outcome = login(
            mechanism,
            offer,
            binding,
            "alice",
            "correct horse",
            Some(&stored),
        );
        success(&outcome, "alice");
    }
}

#[test]
fn non_plus_mechanisms_work_with_every_honest_flag() {
    let stored = credentials("pw");
    // n: the client cannot bind, whatever the server offered; y: the client can bind and the
    // server really did not offer -PLUS.
    let honest = [
        (ChannelBindingOffer::NotOffered, ChannelBinding::None),
        (OFFERED, ChannelBinding::None),
        (
            ChannelBindingOffer::NotOffered,
            ChannelBinding::SupportedNotOffered,
        ),
        (
            ChannelBindingOffer::NotOffered,
            ChannelBinding::TlsExporter(EXPORTER),
        ),
    ];
    for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        for (offer, binding) in honest {
            let outcome = login(mechanism, offer, binding, "u", "pw", Some(&stored));
            success(&outcome, "u");
        }
    }
}

#[test]
fn plus_with_a_different_exporter_value_fails() {
    let stored = credentials("pw");
    for mechanism in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
        let binding = ChannelBinding::TlsExporter(OTHER_EXPORTER);
        let outcome = login(mechanism, OFFERED, binding, "u", "pw", Some(&stored));
        failed(
            &outcome,
            Failure::NotAuthorized,
            "c= does not match the gs2 header and channel binding data",
        );
    }
}

#[test]
fn a_stripped_plus_offer_is_a_downgrade() {
    // The client can bind but chose SCRAM without -PLUS, so it sends y; the server did offer
    // -PLUS, so someone removed it from the features.
    let stored = credentials("pw");
    for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        for binding in [
            ChannelBinding::SupportedNotOffered,
            ChannelBinding::TlsExporter(EXPORTER),
        ] {
            let outcome = login(mechanism, OFFERED, binding, "u", "pw", Some(&stored));
            failed(
                &outcome,
                Failure::NotAuthorized,
                "downgrade: the client can bind (gs2 flag y) but -PLUS was offered and stripped",
            );
        }
    }
}

#[test]
fn a_plus_mechanism_that_was_not_offered_is_invalid() {
    let (_, step) = ServerExchange::start(
        Mechanism::ScramSha256Plus,
        ChannelBindingOffer::NotOffered,
        b"p=tls-exporter,,n=u,r=abcdefghijklmnopq",
        SERVER_NONCE,
    );
    assert_eq!(step, Step::Failure(Failure::InvalidMechanism));
}

#[test]
fn wrong_password_fails_at_the_end() {
    let stored = credentials("right");
    for mechanism in Mechanism::ALL {
        let binding = if mechanism.needs_channel_binding() {
            ChannelBinding::TlsExporter(EXPORTER)
        } else {
            ChannelBinding::None
        };
        let outcome = login(mechanism, OFFERED, binding, "u", "wrong", Some(&stored));
        let detail = if mechanism == Mechanism::Plain {
            "wrong password"
        } else {
            "proof mismatch (wrong password)"
        };
        failed(&outcome, Failure::NotAuthorized, detail);
    }
}

#[test]
fn unknown_user_fails_only_at_the_end_like_a_wrong_password() {
    for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        let (mut client, first) = unbound_client(mechanism, "ghost", "pw");
        let (mut server, challenge) = unbound_challenged(mechanism, &first, None);
        // The decoy challenge has the shape of a real one.
        let text = String::from_utf8(challenge.clone()).unwrap();
        let parts: Vec<&str> = text.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0].as_bytes(),
            [b"r=", CLIENT_NONCE, SERVER_NONCE].concat()
        );
        assert_eq!(STANDARD.decode(&parts[1][2..]).unwrap().len(), 16);
        assert_eq!(parts[2], "i=4096");
        let response = client.step(&challenge).unwrap();
        assert_eq!(
            server.respond(&response),
            Step::Failure(Failure::NotAuthorized)
        );
        assert_eq!(server.failure_detail(), Some("unknown user"));
    }
    let outcome = login_unbound(Mechanism::Plain, "ghost", "pw", None);
    failed(&outcome, Failure::NotAuthorized, "unknown user");
}

#[test]
fn decoy_credentials_give_a_stable_salt_and_never_succeed() {
    let decoy = Credentials::decoy(b"server secret", "ghost", 4096).unwrap();
    let challenge = |client_nonce: &[u8]| {
        let first = [b"n,,n=ghost,r=".as_slice(), client_nonce].concat();
        let (_, challenge) = unbound_challenged(Mechanism::ScramSha256, &first, Some(&decoy));
        let text = String::from_utf8(challenge).unwrap();
        text.split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(
        challenge(b"first-attempt-nonce"),
        challenge(b"second-attempt-nonce")
    );
    for password in ["ghost", "server secret"] {
        let outcome = login_unbound(Mechanism::ScramSha256, "ghost", password, Some(&decoy));
        failed(
            &outcome,
            Failure::NotAuthorized,
            "proof mismatch (wrong password)",
        );
    }
}

#[test]
fn usernames_with_comma_and_equals_survive_the_escaping() {
    let stored = credentials("pw");
    let outcome = login(
        Mechanism::ScramSha256,
        ChannelBindingOffer::NotOffered,
        ChannelBinding::None,
        "a,b=c",
        "pw",
        Some(&stored),
    );
    success(&outcome, "a,b=c");
}

#[test]
fn saslprep_makes_equivalent_passwords_equal() {
    // U+00AD SOFT HYPHEN maps to nothing; U+2168 ROMAN NUMERAL NINE normalizes to "IX".
    let stored = credentials("IX");
    for mechanism in [
        Mechanism::Plain,
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
    ] {
        for password in ["I\u{AD}X", "\u{2168}"] {
            let outcome = login_unbound(mechanism, "u", password, Some(&stored));
            success(&outcome, "u");
        }
    }
}

#[test]
fn no_initial_response_gets_an_empty_challenge() {
    let stored = credentials("pw");
    for mechanism in [Mechanism::Plain, Mechanism::ScramSha256] {
        let (mut server, step) = ServerExchange::start(
            mechanism,
            ChannelBindingOffer::NotOffered,
            b"",
            SERVER_NONCE,
        );
        assert_eq!(step, Step::Challenge(Vec::new()));
        let (mut client, first) = unbound_client(mechanism, "u", "pw");
        assert!(matches!(
            server.respond(&first),
            Step::NeedCredentials { .. }
        ));
        let mut step = server.credentials(Some(&stored));
        if let Step::Challenge(challenge) = step {
            step = server.respond(&client.step(&challenge).unwrap());
        }
        let Step::Success {
            additional_data, ..
        } = step
        else {
            panic!("{step:?}");
        };
        assert_eq!(client.finish(&additional_data), Ok(()));
    }
}

#[test]
fn a_cached_salted_password_is_used_and_a_stale_one_replaced() {
    let stored = credentials("pw");
    let salt = stored.sha256().params().salt().to_vec();
    let run = |cached: Option<rookery_sasl::SaltedPassword>| {
        let (mut client, first) = unbound_client(Mechanism::ScramSha256, "u", "pw");
        if let Some(cached) = cached {
            client.use_salted_password(cached);
        }
        let (mut server, challenge) =
            unbound_challenged(Mechanism::ScramSha256, &first, Some(&stored));
        let response = client.step(&challenge).unwrap();
        let Step::Success {
            additional_data, ..
        } = server.respond(&response)
        else {
            panic!("login failed");
        };
        client.finish(&additional_data).unwrap();
        client.salted_password().cloned().unwrap()
    };
    let computed = run(None);
    assert!(computed.matches(ScramHash::Sha256, &salt, ITERATIONS));
    // The right cache entry logs in; one for another salt is replaced by a fresh derivation.
    let cached = salted_password(ScramHash::Sha256, "pw", &salt, ITERATIONS).unwrap();
    assert!(run(Some(cached)).matches(ScramHash::Sha256, &salt, ITERATIONS));
    let stale = salted_password(ScramHash::Sha256, "pw", b"another salt", ITERATIONS).unwrap();
    assert!(run(Some(stale)).matches(ScramHash::Sha256, &salt, ITERATIONS));
    // A cache entry made from a wrong password does not get in.
    let (mut client, first) = unbound_client(Mechanism::ScramSha256, "u", "pw");
    client.use_salted_password(
        salted_password(ScramHash::Sha256, "other", &salt, ITERATIONS).unwrap(),
    );
    let (mut server, challenge) = unbound_challenged(Mechanism::ScramSha256, &first, Some(&stored));
    let response = client.step(&challenge).unwrap();
    assert_eq!(
        server.respond(&response),
        Step::Failure(Failure::NotAuthorized)
    );
}

#[test]
fn the_client_checks_the_server() {
    let stored = credentials("pw");
    let start = || {
        let (mut client, first) = unbound_client(Mechanism::ScramSha1, "u", "pw");
        let (_, challenge) = unbound_challenged(Mechanism::ScramSha1, &first, Some(&stored));
        client.step(&challenge).unwrap();
        client
    };
    // A server that does not know the credentials cannot produce the signature.
    assert_eq!(
        start().finish(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(ClientError::ServerSignatureMismatch)
    );
    assert!(matches!(
        start().finish(b""),
        Err(ClientError::MalformedServerMessage { .. })
    ));
    assert_eq!(
        start().finish(b"e=invalid-proof"),
        Err(ClientError::ServerError {
            message: "invalid-proof".into()
        })
    );
    // A success before the challenge was answered proves nothing.
    let (mut client, _) = unbound_client(Mechanism::ScramSha1, "u", "pw");
    assert!(matches!(
        client.finish(b"v=AAAA"),
        Err(ClientError::OutOfOrder { .. })
    ));
}

#[test]
fn the_client_refuses_bad_server_first_messages() {
    let step = |challenge: &[u8]| {
        let (mut client, _) = unbound_client(Mechanism::ScramSha256, "u", "pw");
        client.step(challenge)
    };
    let nonce = std::str::from_utf8(CLIENT_NONCE).unwrap();
    assert_eq!(
        step(format!("r={nonce},s=c2FsdA==,i=1").as_bytes()),
        Err(ClientError::ServerNonceMismatch)
    );
    assert_eq!(
        step(b"r=other-nonce-entirely,s=c2FsdA==,i=1"),
        Err(ClientError::ServerNonceMismatch)
    );
    assert!(matches!(
        step(format!("r={nonce}xyz,s=c2FsdA==,i=0").as_bytes()),
        Err(ClientError::ServerParameters(_))
    ));
    assert!(matches!(
        step(format!("r={nonce}xyz,s=c2FsdA==,i=4000000000").as_bytes()),
        Err(ClientError::ServerParameters(_))
    ));
    assert!(matches!(
        step(format!("m=x,r={nonce}xyz,s=c2FsdA==,i=1").as_bytes()),
        Err(ClientError::MalformedServerMessage { .. })
    ));
}

#[test]
fn the_client_checks_its_own_inputs() {
    let start = |mechanism, username, binding, nonce: &[u8]| {
        ClientExchange::start(mechanism, username, "pw", binding, nonce).map(|_| ())
    };
    assert_eq!(
        start(
            Mechanism::ScramSha256Plus,
            "u",
            ChannelBinding::SupportedNotOffered,
            CLIENT_NONCE
        ),
        Err(ClientError::ChannelBindingMissing)
    );
    assert_eq!(
        start(Mechanism::ScramSha256, "u", ChannelBinding::None, b"short"),
        Err(ClientError::InvalidNonce)
    );
    assert_eq!(
        start(
            Mechanism::ScramSha256,
            "u",
            ChannelBinding::None,
            b"has,a,comma,in,the,nonce"
        ),
        Err(ClientError::InvalidNonce)
    );
    assert_eq!(
        start(
            Mechanism::ScramSha256,
            "a\u{7}",
            ChannelBinding::None,
            CLIENT_NONCE
        ),
        Err(ClientError::InvalidUsername)
    );
    assert!(matches!(
        ClientExchange::start(Mechanism::Plain, "u", "", ChannelBinding::None, b""),
        Err(ClientError::InvalidPassword(_))
    ));
    let (_, plain) =
        ClientExchange::start(Mechanism::Plain, "u", "pw", ChannelBinding::None, b"").unwrap();
    assert_eq!(plain, b"\0u\0pw");
}
