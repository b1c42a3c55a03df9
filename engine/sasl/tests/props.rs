//! Properties: no input at any step makes either side panic, arbitrary bytes never
//! authenticate, and stored credentials survive their byte form while garbage is refused.

mod support;

use proptest::prelude::*;
use rookery_sasl::{
    ChannelBinding, ChannelBindingOffer, ClientExchange, Credentials, DecodeError, Mechanism,
    ServerExchange, Step,
};
use support::*;

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop::sample::select(Mechanism::ALL.to_vec())
}

fn offer() -> impl Strategy<Value = ChannelBindingOffer> {
    prop_oneof![
        Just(ChannelBindingOffer::NotOffered),
        Just(ChannelBindingOffer::TlsExporter(EXPORTER)),
    ]
}

/// Bytes biased towards SCRAM's alphabet so the parsers get past their first checks.
fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(
            prop::sample::select(b"nypmcrsiva=,2C3D\0ABCxyz+/09-_".to_vec()),
            0..96
        ),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|tail| [b"n,,n=u,r=".to_vec(), tail].concat()),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|tail| [b"c=biws,r=".to_vec(), tail].concat()),
        // Valid client-first messages, so the later steps see arbitrary bytes too.
        prop::sample::select(vec![
            b"n,,n=u,r=client".to_vec(),
            b"y,,n=u,r=client".to_vec(),
            b"p=tls-exporter,,n=u,r=client".to_vec(),
            b"\0u\0pencil".to_vec(),
        ]),
        // Client-finals with the right nonce and arbitrary proofs.
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|tail| {
            [b"c=biws,r=client".as_slice(), SERVER_NONCE, b",p=", &tail].concat()
        }),
    ]
}

/// A single-byte change: flip, insert or delete at `at`.
fn mutate(original: &[u8], kind: u8, at: usize, byte: u8) -> Vec<u8> {
    let mut out = original.to_vec();
    let at = at % (out.len() + 1);
    match kind % 3 {
        0 if at < out.len() => out[at] ^= byte | 1,
        1 => out.insert(at, byte),
        _ if at < out.len() => {
            out.remove(at);
        }
        _ => out.push(byte),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn server_survives_arbitrary_bytes_at_every_step(
        mechanism in mechanism(),
        offer in offer(),
        first in message(),
        second in message(),
        third in message(),
        known in any::<bool>(),
        nonce in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let stored = credentials("pencil");
        let nonce = if nonce.len() >= 16 { nonce } else { SERVER_NONCE.to_vec() };
        let (mut server, mut step) = ServerExchange::start(mechanism, offer, &first, &nonce);
        for input in [&second, &third] {
            if let Step::NeedCredentials { .. } = step {
                step = server.credentials(known.then_some(&stored));
            }
            if mechanism != Mechanism::Plain {
                prop_assert!(!matches!(step, Step::Success { .. }), "random bytes authenticated");
            }
            step = server.respond(input);
        }
        // Whatever happened, out-of-order calls after the end are refusals, not panics.
        let _ = server.credentials(None);
        let _ = server.respond(&first);
    }

    #[test]
    fn a_changed_client_final_never_authenticates(
        mechanism in mechanism(),
        kind in any::<u8>(),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let stored = credentials("pw");
        let (offer, binding) = if mechanism.needs_channel_binding() {
            (ChannelBindingOffer::TlsExporter(EXPORTER), ChannelBinding::TlsExporter(EXPORTER))
        } else {
            (ChannelBindingOffer::NotOffered, ChannelBinding::None)
        };
        let (mut client, first) =
            ClientExchange::start(mechanism, "u", "pw", binding, CLIENT_NONCE).unwrap();
        let (mut server, step) = ServerExchange::start(mechanism, offer, &first, SERVER_NONCE);
        let asked = matches!(step, Step::NeedCredentials { .. });
        prop_assert!(asked);
        let step = server.credentials(Some(&stored));
        let last = match step {
            Step::Challenge(challenge) => client.step(&challenge).unwrap(),
            // PLAIN succeeds at once; mutate its initial response instead.
            _ => first.clone(),
        };
        let changed = mutate(&last, kind, at, byte);
        // "u\0u\0pw" is the same PLAIN login with an explicit authzid of the user itself.
        prop_assume!(changed != last && changed != b"u\0u\0pw");
        let step = if mechanism == Mechanism::Plain {
            let (mut server, step) = ServerExchange::start(mechanism, offer, &changed, SERVER_NONCE);
            match step {
                // Only "u" exists: another name is another (unknown) user.
                Step::NeedCredentials { authcid, .. } => {
                    server.credentials((authcid == "u").then_some(&stored))
                }
                other => other,
            }
        } else {
            server.respond(&changed)
        };
        prop_assert!(matches!(step, Step::Failure(_)), "changed message accepted: {:?}", String::from_utf8_lossy(&changed));
    }

    #[test]
    fn client_survives_arbitrary_server_messages(
        mechanism in mechanism(),
        challenge in message(),
        success in message(),
        prefix in any::<bool>(),
    ) {
        let (mut client, _) = ClientExchange::start(
            mechanism,
            "u",
            "pw",
            ChannelBinding::TlsExporter(EXPORTER),
            CLIENT_NONCE,
        )
        .unwrap();
        // Half the time the challenge carries our nonce, so parsing goes deeper.
        let challenge = if prefix {
            [b"r=".as_slice(), CLIENT_NONCE, &challenge].concat()
        } else {
            challenge
        };
        let _ = client.step(&challenge);
        let finished = client.finish(&success);
        if mechanism != Mechanism::Plain {
            prop_assert!(finished.is_err(), "arbitrary bytes passed as a server signature");
        }
        prop_assert!(client.finish(&success).is_err());
    }

    #[test]
    fn decode_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Credentials::decode(&bytes);
    }

    #[test]
    fn credentials_round_trip_their_bytes(
        password in "[a-zA-Z0-9 !-~]{1,40}",
        iterations in 1u32..4,
        salt_sha1 in prop::collection::vec(any::<u8>(), 1..=64),
        salt_sha256 in prop::collection::vec(any::<u8>(), 1..=64),
    ) {
        let credentials = Credentials::derive(&password, iterations, &salt_sha1, &salt_sha256).unwrap();
        let bytes = credentials.encode();
        prop_assert_eq!(Credentials::decode(&bytes).unwrap(), credentials.clone());
        // Any strict prefix is truncated, any extra byte is trailing.
        let cut = bytes.len() / 2;
        prop_assert_eq!(Credentials::decode(&bytes[..cut]), Err(DecodeError::Truncated));
        let longer = [bytes.as_slice(), &[0]].concat();
        prop_assert_eq!(Credentials::decode(&longer), Err(DecodeError::TrailingBytes { extra: 1 }));
    }
}

#[test]
fn decode_names_what_is_wrong() {
    use rookery_sasl::CredentialsError;
    let bytes = credentials("pw").encode();
    for len in 0..bytes.len() {
        assert_eq!(
            Credentials::decode(&bytes[..len]),
            Err(DecodeError::Truncated),
            "{len}"
        );
    }
    let mut version = bytes.clone();
    version[0] = 2;
    assert_eq!(
        Credentials::decode(&version),
        Err(DecodeError::UnknownVersion { version: 2 })
    );
    let mut zero_iterations = bytes.clone();
    zero_iterations[1..5].copy_from_slice(&[0; 4]);
    assert_eq!(
        Credentials::decode(&zero_iterations),
        Err(DecodeError::Invalid(
            CredentialsError::IterationsOutOfRange { iterations: 0 }
        ))
    );
    let mut empty_salt = vec![1, 0, 0, 0, 1, 0];
    empty_salt.extend_from_slice(&[0; 40]);
    assert_eq!(
        Credentials::decode(&empty_salt),
        Err(DecodeError::Invalid(CredentialsError::SaltLength {
            len: 0
        }))
    );
    let mut long_salt = vec![1, 0, 0, 0, 1, 65];
    long_salt.extend_from_slice(&[0; 65 + 40]);
    assert_eq!(
        Credentials::decode(&long_salt),
        Err(DecodeError::Invalid(CredentialsError::SaltLength {
            len: 65
        }))
    );
    for error in [
        DecodeError::Truncated,
        DecodeError::UnknownVersion { version: 9 },
        DecodeError::TrailingBytes { extra: 3 },
    ] {
        assert!(error.to_string().contains("stored credentials"));
    }
}
