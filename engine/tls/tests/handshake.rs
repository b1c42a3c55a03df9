//! Handshakes against a rustls client: versions, suites, ALPN, SNI, channel binding,
//! resumption, and what may be called before the handshake completes.

mod common;

use common::*;
use rookery_tls::{TlsError, TlsSession, TlsVersion, ALPN_XMPP_CLIENT};
use rustls::version::{TLS12, TLS13};
use rustls::{HandshakeKind, ProtocolVersion};

#[test]
fn tls13_handshake_negotiates_alpn_sni_and_binding() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[b"h2", ALPN_XMPP_CLIENT]);
    let (client, server, _) = handshake(&fx.context, &config);

    assert_eq!(server.protocol_version(), Some(TlsVersion::Tls13));
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(server.alpn_protocol(), Some(ALPN_XMPP_CLIENT));
    assert_eq!(client.alpn_protocol(), Some(ALPN_XMPP_CLIENT));
    assert_eq!(server.server_name(), Some(DOMAIN));
    assert_eq!(
        server.channel_binding_exporter(),
        Some(client_exporter(&client))
    );
    let presented = client.peer_certificates().expect("server certificate");
    assert_eq!(presented[0], fx.cert.der);
    assert_eq!(presented.len(), 2, "the whole chain file is sent");
}

#[test]
fn tls12_handshake_negotiates_alpn_sni_and_binding() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS12, &[ALPN_XMPP_CLIENT]);
    let (client, server, _) = handshake(&fx.context, &config);

    assert_eq!(server.protocol_version(), Some(TlsVersion::Tls12));
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(server.alpn_protocol(), Some(ALPN_XMPP_CLIENT));
    assert_eq!(server.server_name(), Some(DOMAIN));
    assert_eq!(
        server.channel_binding_exporter(),
        Some(client_exporter(&client))
    );
}

#[test]
fn a_client_without_alpn_is_served() {
    let fx = Fixture::new();
    for version in [&TLS13, &TLS12] {
        let config = fx.client_config(version, &[]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        assert_eq!(server.alpn_protocol(), None);
        assert_eq!(
            client_sends(&mut client, &mut server, b"<stream:stream>"),
            b"<stream:stream>"
        );
    }
}

#[test]
fn a_client_offering_only_other_protocols_is_refused_as_a_peer_error() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[b"h2"]);
    let mut client = client(&config);
    let mut server = TlsSession::new(&fx.context);
    let mut plaintext = Vec::new();
    let mut to_client = Vec::new();
    let err = server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect_err("no common ALPN protocol");
    assert!(
        matches!(err, TlsError::Peer(rustls::Error::NoApplicationProtocol)),
        "{err:?}"
    );
    assert!(err.to_string().contains("xmpp-client"));
    let client_err = client_input(&mut client, &to_client).expect_err("client gets the alert");
    assert!(
        matches!(client_err, rustls::Error::AlertReceived(_)),
        "the fatal alert was sent: {client_err:?}"
    );
}

#[test]
fn binding_matches_for_every_suite() {
    let fx = Fixture::new();
    for suite in ALL_SUITES {
        let config = suite_config(&fx.ca, suite);
        let (client, server, _) = handshake(&fx.context, &config);
        assert_eq!(
            client.negotiated_cipher_suite().map(|s| s.suite()),
            Some(suite)
        );
        assert_eq!(
            server.channel_binding_exporter(),
            Some(client_exporter(&client)),
            "{suite:?}"
        );
    }
}

#[test]
fn resumed_handshakes_have_their_own_binding() {
    let fx = Fixture::new();
    for version in [&TLS13, &TLS12] {
        // One client config keeps the client's session cache across connections.
        let config = fx.client_config(version, &[ALPN_XMPP_CLIENT]);
        let (first_client, first, _) = handshake(&fx.context, &config);
        assert_eq!(first_client.handshake_kind(), Some(HandshakeKind::Full));
        let (client, server, _) = handshake(&fx.context, &config);
        assert_eq!(
            client.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
        assert_eq!(server.server_name(), Some(DOMAIN));
        assert_eq!(
            server.channel_binding_exporter(),
            Some(client_exporter(&client))
        );
        assert_ne!(
            server.channel_binding_exporter(),
            first.channel_binding_exporter()
        );
    }
}

#[test]
fn nothing_is_known_or_writable_before_the_handshake_completes() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[ALPN_XMPP_CLIENT]);
    let mut client = client(&config);
    let mut server = TlsSession::new(&fx.context);
    let mut to_client = Vec::new();
    assert!(matches!(
        server.write(b"early", &mut to_client),
        Err(TlsError::HandshakeNotDone)
    ));
    assert!(to_client.is_empty());

    let mut plaintext = Vec::new();
    let outcome = server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect("ClientHello accepted");
    assert!(
        !outcome.handshake_completed,
        "the client's Finished has not arrived"
    );
    assert!(
        !to_client.is_empty(),
        "ServerHello..Finished flight produced"
    );
    assert!(!server.is_handshake_done());
    assert_eq!(server.channel_binding_exporter(), None);
    assert!(matches!(
        server.write(b"early", &mut to_client),
        Err(TlsError::HandshakeNotDone)
    ));

    client_input(&mut client, &to_client).expect("client takes the flight");
    to_client.clear();
    let outcome = server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect("client Finished accepted");
    assert!(outcome.handshake_completed);
    assert!(
        !to_client.is_empty(),
        "a session ticket follows the handshake"
    );
    assert!(server.channel_binding_exporter().is_some());
    let again = server
        .read(&[], &mut plaintext, &mut to_client)
        .expect("empty read");
    assert!(!again.handshake_completed, "reported once");
}

#[test]
fn a_client_that_does_not_trust_us_is_a_peer_error_naming_the_certificate() {
    let fx = Fixture::new();
    let stranger = TestCa::named("Some other CA");
    let config = client_config(&stranger, &TLS13, &[]);
    let mut client = client(&config);
    let mut server = TlsSession::new(&fx.context);
    let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
    server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect("ClientHello");
    assert!(
        client_input(&mut client, &to_client).is_err(),
        "client rejects the chain"
    );
    to_client.clear();
    let err = server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect_err("client's alert");
    assert!(
        matches!(err, TlsError::Peer(rustls::Error::AlertReceived(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused our certificate"), "{err}");
    assert!(matches!(
        server.read(b"more", &mut plaintext, &mut to_client),
        Err(TlsError::Unusable)
    ));
}

#[test]
fn every_suite_carries_data_and_refuses_replayed_or_altered_records() {
    let fx = Fixture::new();
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    for suite in ALL_SUITES {
        let config = suite_config(&fx.ca, suite);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        assert_eq!(server.cipher_suite(), Some(suite));
        // Both directions, a small record and several full ones.
        for data in [&b"<r/>"[..], &big[..]] {
            assert_eq!(
                client_sends(&mut client, &mut server, data),
                data,
                "{suite:?}"
            );
            let mut to_client = Vec::new();
            server.write(data, &mut to_client).expect("write");
            assert_eq!(client_receive(&mut client, &to_client), data, "{suite:?}");
        }
        // And it must refuse what the peer did not seal: a replayed record (wrong sequence
        // number in the nonce) and a record with one bit flipped.
        std::io::Write::write_all(&mut client.writer(), b"<message/>").expect("client write");
        let record = client_output(&mut client);
        let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
        server
            .read(&record, &mut plaintext, &mut to_client)
            .expect("first copy");
        let replay = server.read(&record, &mut plaintext, &mut to_client);
        assert!(
            matches!(replay, Err(TlsError::Peer(rustls::Error::DecryptError))),
            "{suite:?}: {replay:?}"
        );
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        std::io::Write::write_all(&mut client.writer(), b"<message/>").expect("client write");
        let mut record = client_output(&mut client);
        let middle = record.len() / 2;
        record[middle] ^= 0x20;
        let flipped = server.read(&record, &mut plaintext, &mut to_client);
        assert!(
            matches!(flipped, Err(TlsError::Peer(rustls::Error::DecryptError))),
            "{suite:?}: {flipped:?}"
        );
    }
}
