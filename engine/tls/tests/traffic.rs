//! Application data both ways, large writes, ciphertext split anywhere, close_notify.

mod common;

use common::*;
use rookery_tls::{TlsError, TlsSession, ALPN_XMPP_CLIENT};
use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;

const VERSIONS: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];

/// Record lengths in a stream of TLS records (panics on a torn stream).
fn record_lengths(mut records: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    while !records.is_empty() {
        let len = usize::from(u16::from_be_bytes([records[3], records[4]]));
        lengths.push(len);
        records = &records[5 + len..];
    }
    lengths
}

#[test]
fn data_flows_both_ways() {
    let fx = Fixture::new();
    for version in VERSIONS {
        let config = fx.client_config(version, &[ALPN_XMPP_CLIENT]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        for i in 0..3 {
            let up = format!("<message id='{i}'><body>up</body></message>");
            let down = format!("<message id='{i}'><body>down</body></message>");
            exchange(&mut client, &mut server, up.as_bytes(), down.as_bytes());
        }
    }
}

#[test]
fn large_writes_are_cut_into_records_of_at_most_16_kib() {
    let fx = Fixture::new();
    for version in VERSIONS {
        let config = fx.client_config(version, &[]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

        let mut to_client = Vec::new();
        server.write(&big, &mut to_client).expect("server write");
        let lengths = record_lengths(&to_client);
        assert_eq!(
            lengths.len(),
            7,
            "100,000 bytes make 7 records of 16 KiB or less"
        );
        // Ciphertext length: 16 KiB of plaintext plus at most 256 bytes of expansion.
        assert!(
            lengths.iter().all(|&len| len <= 16 * 1024 + 256),
            "{lengths:?}"
        );
        assert_eq!(client_receive(&mut client, &to_client), big);

        // And the other way, with the client's 16 KiB records arriving in one read.
        assert_eq!(client_sends(&mut client, &mut server, &big), big);
    }
}

#[test]
fn a_handshake_fed_one_byte_at_a_time_completes() {
    let fx = Fixture::new();
    for version in VERSIONS {
        let config = fx.client_config(version, &[ALPN_XMPP_CLIENT]);
        let mut client = client(&config);
        let mut server = TlsSession::new(&fx.context);
        let mut observed = Observed::default();
        pump_with_step(&mut client, &mut server, 1, &mut observed).expect("handshake");
        assert_eq!(observed.handshake_completed, 1);
        assert_eq!(
            server.channel_binding_exporter(),
            Some(client_exporter(&client))
        );

        client.writer_write(b"<presence/><message><body>hi</body></message>");
        pump_with_step(&mut client, &mut server, 1, &mut observed).expect("data");
        assert_eq!(
            observed.plaintext,
            b"<presence/><message><body>hi</body></message>"
        );
    }
}

#[test]
fn records_split_at_every_byte_boundary_decrypt_the_same() {
    let fx = Fixture::new();
    for version in VERSIONS {
        let config = fx.client_config(version, &[]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        let stanzas: &[&[u8]] = &[b"<iq type='get' id='1'/>", b"<message/>", b"<r/>"];
        // Three records; each round splits a fresh copy of them at one point. The first
        // copy, read whole, gives their length.
        let len = {
            for s in stanzas {
                client.writer_write(s);
            }
            let records = client_output(&mut client);
            let mut plaintext = Vec::new();
            server
                .read(&records, &mut plaintext, &mut Vec::new())
                .expect("whole read");
            assert_eq!(plaintext, stanzas.concat());
            records.len()
        };
        for split in 0..=len {
            for s in stanzas {
                client.writer_write(s);
            }
            let records = client_output(&mut client);
            assert_eq!(records.len(), len);
            let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
            let first = server
                .read(&records[..split], &mut plaintext, &mut to_client)
                .unwrap();
            let second = server
                .read(&records[split..], &mut plaintext, &mut to_client)
                .unwrap();
            assert_eq!(plaintext, stanzas.concat(), "split at {split}");
            assert!(to_client.is_empty());
            assert!(!first.peer_closed && !second.peer_closed);
        }
    }
}

#[test]
fn close_notify_from_the_peer_is_reported_once_and_answered() {
    let fx = Fixture::new();
    for version in VERSIONS {
        let config = fx.client_config(version, &[]);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        client.writer_write(b"</stream:stream>");
        client.send_close_notify();
        let mut observed = Observed::default();
        pump(&mut client, &mut server, &mut observed).expect("close_notify read");
        assert_eq!(
            observed.plaintext, b"</stream:stream>",
            "data before close_notify kept"
        );
        assert_eq!(observed.peer_closed, 1);

        // The server may still write, then closes.
        assert_eq!(
            server_sends(&mut client, &mut server, b"</stream:stream>"),
            b"</stream:stream>"
        );
        let mut to_client = Vec::new();
        server.close(&mut to_client);
        assert!(!to_client.is_empty());
        client_input(&mut client, &to_client).expect("client reads close_notify");
        let state = client.process_new_packets().expect("client state");
        assert!(state.peer_has_closed());

        assert!(matches!(
            server.write(b"x", &mut Vec::new()),
            Err(TlsError::Unusable)
        ));
        let again = server
            .read(&[], &mut Vec::new(), &mut Vec::new())
            .expect("read after close");
        assert!(!again.peer_closed, "reported once");
    }
}

#[test]
fn after_our_close_the_peer_data_still_arrives() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[]);
    let (mut client, mut server, _) = handshake(&fx.context, &config);
    let mut to_client = Vec::new();
    server.close(&mut to_client);
    client_input(&mut client, &to_client).expect("client reads close_notify");
    client.writer_write(b"late");
    client.send_close_notify();
    let mut observed = Observed::default();
    pump(&mut client, &mut server, &mut observed).expect("reads after close");
    assert_eq!(observed.plaintext, b"late");
    assert_eq!(observed.peer_closed, 1);
}

#[test]
fn close_before_the_handshake_sends_nothing_and_ends_the_session() {
    let fx = Fixture::new();
    let mut server = TlsSession::new(&fx.context);
    let mut to_client = Vec::new();
    server.close(&mut to_client);
    assert!(to_client.is_empty());
    assert!(matches!(
        server.read(b"\x16\x03\x01", &mut Vec::new(), &mut to_client),
        Err(TlsError::Unusable)
    ));
}

/// `std::io::Write` on the client's writer, without the noise at every call site.
trait WriterWrite {
    fn writer_write(&mut self, data: &[u8]);
}

impl WriterWrite for rustls::ClientConnection {
    fn writer_write(&mut self, data: &[u8]) {
        use std::io::Write;
        self.writer().write_all(data).expect("client write");
    }
}

#[test]
fn bytes_after_the_peers_close_notify_are_dropped_not_kept() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[]);
    let (mut client, mut server, _) = handshake(&fx.context, &config);
    client.send_close_notify();
    let mut observed = Observed::default();
    pump(&mut client, &mut server, &mut observed).expect("close_notify");
    assert_eq!(observed.peer_closed, 1);
    let idle = server.heap_bytes();
    let junk = vec![0x17u8; 64 * 1024];
    for _ in 0..16 {
        let outcome = server
            .read(&junk, &mut observed.plaintext, &mut Vec::new())
            .expect("ignored");
        assert_eq!(outcome, Default::default());
    }
    assert_eq!(
        server.heap_bytes(),
        idle,
        "nothing buffered after close_notify"
    );
    assert!(observed.plaintext.is_empty());
}

#[test]
fn data_sent_with_the_clients_finished_arrives_with_handshake_completed() {
    // TLS 1.3 only: a TLS 1.2 client (without False Start) waits for the server's Finished.
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[ALPN_XMPP_CLIENT]);
    let mut client = client(&config);
    // Queued before the handshake: rustls sends it right after the client's Finished.
    client.writer_write(b"<stream:stream to='xmpp.example.test'>");
    let mut server = TlsSession::new(&fx.context);
    let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
    let hello = server
        .read(&client_output(&mut client), &mut plaintext, &mut to_client)
        .expect("ClientHello");
    assert!(!hello.handshake_completed);
    client_input(&mut client, &to_client).expect("server flight");
    to_client.clear();
    let flight = client_output(&mut client);
    let outcome = server
        .read(&flight, &mut plaintext, &mut to_client)
        .expect("Finished and data in one read");
    assert!(outcome.handshake_completed);
    assert_eq!(plaintext, b"<stream:stream to='xmpp.example.test'>");
}

/// RFC 8446 4.6.3 over our TLS 1.3 record layer: the client updates its keys and asks us to
/// update ours; data keeps flowing both ways under the new keys, every suite, several times.
#[test]
fn a_key_update_from_the_client_is_answered_and_traffic_goes_on() {
    let fx = Fixture::new();
    for suite in ALL_SUITES
        .iter()
        .filter(|s| format!("{s:?}").starts_with("TLS13"))
    {
        let config = suite_config(&fx.ca, *suite);
        let (mut client, mut server, _) = handshake(&fx.context, &config);
        for round in 0..3 {
            client
                .refresh_traffic_keys()
                .expect("a TLS 1.3 client can update keys");
            let up = format!("<message id='up{round}'/>");
            std::io::Write::write_all(&mut client.writer(), up.as_bytes()).expect("client write");
            let records = client_output(&mut client);
            let (mut plaintext, mut to_client) = (Vec::new(), Vec::new());
            server
                .read(&records, &mut plaintext, &mut to_client)
                .unwrap_or_else(|e| panic!("{suite:?} round {round}: {e}"));
            assert_eq!(plaintext, up.as_bytes(), "{suite:?}");
            assert!(!to_client.is_empty(), "our KeyUpdate answer goes out");
            let down = format!("<message id='down{round}'/>");
            server
                .write(down.as_bytes(), &mut to_client)
                .expect("server write");
            assert_eq!(
                client_receive(&mut client, &to_client),
                down.as_bytes(),
                "{suite:?}"
            );
        }
    }
}
