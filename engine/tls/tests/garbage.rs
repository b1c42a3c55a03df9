//! Any bytes give a result, never a panic; a broken record is a peer error with an alert.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use rookery_tls::{ErrorCause, TlsError, TlsSession};
use rustls::version::{TLS12, TLS13};

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

/// Feeds `bytes` in pieces of the given sizes; returns the first error, if any, and checks
/// that a failed session stays failed.
fn feed(server: &mut TlsSession, bytes: &[u8], pieces: &[usize]) -> Option<TlsError> {
    let (mut plaintext, mut to_peer) = (Vec::new(), Vec::new());
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let take = (*sizes.next().unwrap_or(&usize::MAX)).clamp(1, rest.len());
        let (piece, after) = rest.split_at(take);
        rest = after;
        if let Err(e) = server.read(piece, &mut plaintext, &mut to_peer) {
            assert!(matches!(
                server.read(b"\x17\x03\x03\x00\x01x", &mut plaintext, &mut to_peer),
                Err(TlsError::Unusable)
            ));
            assert!(matches!(
                server.write(b"x", &mut to_peer),
                Err(TlsError::Unusable)
            ));
            return Some(e);
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_before_the_handshake(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        pieces in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut server = TlsSession::new(&fixture().context);
        if let Some(e) = feed(&mut server, &bytes, &pieces) {
            prop_assert_eq!(e.cause(), ErrorCause::Peer, "{}", e);
        }
    }

    #[test]
    fn any_record_shaped_bytes_before_the_handshake(
        typ in 20u8..25,
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // A plausible header makes rustls look inside instead of refusing the first byte.
        let mut bytes = vec![typ, 3, 3];
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        let mut server = TlsSession::new(&fixture().context);
        if let Some(e) = feed(&mut server, &bytes, &[usize::MAX]) {
            prop_assert_eq!(e.cause(), ErrorCause::Peer, "{}", e);
        }
    }

    #[test]
    fn a_client_hello_with_one_byte_changed(position in any::<prop::sample::Index>(), xor in 1u8..) {
        let fx = fixture();
        let config = fx.client_config(&TLS13, &[]);
        let mut hello = client_output(&mut client(&config));
        let at = position.index(hello.len());
        hello[at] ^= xor;
        let mut server = TlsSession::new(&fx.context);
        if let Some(e) = feed(&mut server, &hello, &[usize::MAX]) {
            prop_assert_eq!(e.cause(), ErrorCause::Peer, "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_bytes_after_the_handshake(
        bytes in proptest::collection::vec(any::<u8>(), 1..1024),
        tls12 in any::<bool>(),
    ) {
        let fx = fixture();
        let config = fx.client_config(if tls12 { &TLS12 } else { &TLS13 }, &[]);
        let (_client, mut server, _) = handshake(&fx.context, &config);
        if let Some(e) = feed(&mut server, &bytes, &[usize::MAX]) {
            prop_assert_eq!(e.cause(), ErrorCause::Peer, "{}", e);
        }
    }
}

#[test]
fn a_tampered_record_is_a_decrypt_error_and_the_peer_gets_an_alert() {
    let fx = fixture();
    for version in [&TLS13, &TLS12] {
        let config = fx.client_config(version, &[]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        std::io::Write::write_all(&mut client.writer(), b"<message/>").expect("client write");
        let mut record = client_output(&mut client);
        let last = record.len() - 1;
        record[last] ^= 1; // inside the AEAD tag
        let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
        let err = server
            .read(&record, &mut plaintext, &mut to_client)
            .expect_err("tag check fails");
        assert!(
            matches!(err, TlsError::Peer(rustls::Error::DecryptError)),
            "{err:?}"
        );
        assert!(plaintext.is_empty());
        let client_err = client_input(&mut client, &to_client).expect_err("alert arrives");
        assert_eq!(
            client_err,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac)
        );
    }
}

#[test]
fn a_plaintext_xmpp_stream_is_refused_as_a_peer_error() {
    // A client that did not switch to TLS after <proceed/> sends XML.
    let mut server = TlsSession::new(&fixture().context);
    let err = feed(
        &mut server,
        b"<stream:stream to='example.test'>",
        &[usize::MAX],
    )
    .expect("not TLS");
    assert_eq!(err.cause(), ErrorCause::Peer);
}

#[test]
fn a_huge_handshake_message_is_refused_before_it_is_buffered_whole() {
    // One ClientHello claiming 16 MiB, sent as full records of fragments: rustls refuses a
    // handshake message over 64 KiB, so the session buffers at most that much.
    let mut server = TlsSession::new(&fixture().context);
    let (mut plaintext, mut to_peer) = (Vec::new(), Vec::new());
    let mut header = vec![1u8, 0xff, 0xff, 0xff]; // ClientHello, length 2^24 - 1
    header.resize(16 * 1024, 0);
    let mut most_buffered = 0;
    let mut result = Ok(Default::default());
    for i in 0..1024 {
        let fragment = if i == 0 {
            header.clone()
        } else {
            vec![0u8; 16 * 1024]
        };
        let mut record = vec![22u8, 3, 3, 0x40, 0x00];
        record.extend_from_slice(&fragment);
        result = server.read(&record, &mut plaintext, &mut to_peer);
        most_buffered = most_buffered.max(server.heap_bytes());
        if result.is_err() {
            break;
        }
    }
    let err = result.expect_err("refused");
    assert_eq!(err.cause(), ErrorCause::Peer, "{err}");
    assert!(most_buffered < 96 * 1024, "buffered {most_buffered} bytes");
}
