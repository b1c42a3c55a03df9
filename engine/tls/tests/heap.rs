//! What a session keeps on the heap, counted by a per-thread counting allocator: the
//! `heap_bytes` estimate stays close to the truth, and no read buffer outlives a read.

mod common;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::io::Write;
use std::sync::Arc;

use common::*;
use counting_alloc::{live_bytes, Counting};
use rookery_tls::TlsSession;
use rustls::client::Resumption;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, SupportedProtocolVersion};

#[global_allocator]
static ALLOC: Counting = Counting;

fn config_without_resumption(
    fx: &Fixture,
    version: &'static SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut config = (*fx.client_config(version, &[])).clone();
    config.resumption = Resumption::disabled(); // its ticket store would count as ours
    Arc::new(config)
}

/// A client offering ChaCha20-Poly1305 only.
fn chacha_config_without_resumption(fx: &Fixture) -> Arc<ClientConfig> {
    let mut provider = client_provider();
    provider
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()).contains("CHACHA"));
    let mut config = (*client_config_with(&fx.ca, &TLS13, &[], provider)).clone();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// A session that completed its handshake and exchanged a stanza each way; the client is
/// dropped so that only the server's heap remains on this thread. Returns the session and
/// the heap it holds.
fn idle_session(fx: &Fixture, config: &Arc<ClientConfig>) -> (TlsSession, isize) {
    let before = live_bytes();
    let (mut client, mut server, _) = handshake(&fx.context, config);
    exchange(&mut client, &mut server, b"<presence/>", b"<presence/>");
    drop(client);
    let held = live_bytes() - before;
    (server, held)
}

fn assert_close(estimate: usize, measured: isize, what: &str) {
    let measured = measured as f64;
    let drift = (estimate as f64 - measured).abs() / measured;
    assert!(
        drift <= 0.25,
        "{what}: estimate {estimate} B, measured {measured} B"
    );
}

#[test]
fn heap_bytes_tracks_the_measured_heap() {
    let fx = Fixture::new();
    let configs = [
        config_without_resumption(&fx, &TLS13),
        config_without_resumption(&fx, &TLS12),
        chacha_config_without_resumption(&fx),
    ];
    for config in &configs {
        drop(idle_session(&fx, config)); // first use on this thread allocates shared state

        let before = live_bytes();
        let fresh = TlsSession::new(&fx.context);
        assert_close(fresh.heap_bytes(), live_bytes() - before, "fresh");
        drop(fresh);

        let before = live_bytes();
        let mut waiting = TlsSession::new(&fx.context);
        let hello = client_output(&mut client(config));
        waiting
            .read(&hello, &mut Vec::new(), &mut Vec::new())
            .expect("ClientHello");
        assert_close(waiting.heap_bytes(), live_bytes() - before, "mid-handshake");
        drop(waiting);

        let (idle, held) = idle_session(&fx, config);
        assert_close(idle.heap_bytes(), held, "idle");
    }
}

#[test]
fn a_partial_record_is_buffered_and_released_when_completed() {
    let fx = Fixture::new();
    let config = config_without_resumption(&fx, &TLS13);
    let (mut client, mut server, _) = handshake(&fx.context, &config);
    // rustls allocates its plaintext queue at the first record; do that before counting.
    assert_eq!(client_sends(&mut client, &mut server, b"<r/>"), b"<r/>");
    client
        .writer()
        .write_all(b"<message><body>split</body></message>")
        .expect("write");
    let record = client_output(&mut client);
    let idle_estimate = server.heap_bytes();

    let mut plaintext = Vec::with_capacity(64);
    let mut to_client = Vec::new();
    let before = live_bytes();
    server
        .read(&record[..10], &mut plaintext, &mut to_client)
        .expect("first part");
    assert!(plaintext.is_empty());
    assert!(
        server.heap_bytes() >= idle_estimate + 10,
        "the partial record is held"
    );
    assert!(live_bytes() > before);

    server
        .read(&record[10..], &mut plaintext, &mut to_client)
        .expect("rest");
    assert_eq!(plaintext, b"<message><body>split</body></message>");
    assert_eq!(
        live_bytes(),
        before,
        "nothing kept once the record is complete"
    );
    assert_eq!(server.heap_bytes(), idle_estimate);
}

#[test]
fn a_large_read_leaves_no_large_buffer_behind() {
    let fx = Fixture::new();
    let config = config_without_resumption(&fx, &TLS12);
    let (mut client, mut server, _) = handshake(&fx.context, &config);
    assert_eq!(client_sends(&mut client, &mut server, b"<r/>"), b"<r/>");
    let big = vec![b'x'; 60_000];
    client.writer().write_all(&big).expect("write");
    let mut records = client_output(&mut client);
    // End on a partial record: 7 bytes of the next one stay buffered.
    client.writer().write_all(b"<r/>").expect("write");
    records.extend_from_slice(&client_output(&mut client)[..7]);

    let mut plaintext = Vec::with_capacity(big.len());
    let before = live_bytes();
    server
        .read(&records, &mut plaintext, &mut Vec::new())
        .expect("read");
    assert_eq!(plaintext, big);
    let held = live_bytes() - before;
    assert!(
        (7..=64).contains(&held),
        "only the 7-byte tail is kept: {held} B"
    );
}
