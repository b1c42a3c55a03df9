//! Heap per TLS session: `TlsSession` (rustls unbuffered, our buffers) side by side with
//! rustls' buffered `ServerConnection`, for TLS 1.3 and TLS 1.2.
//!
//! For each kind, 2,000 server sessions are made (fresh), 2,000 others are given only a
//! ClientHello (waiting for the client's second flight: a handshake storm), and 2,000 are
//! handshaken with a rustls client, exchange 100 bytes each way, and are left idle (the
//! client is dropped, so only server memory stays). A counting global allocator gives the
//! live heap before and after each phase; the difference divided by 2,000 is the heap per
//! session. It also lists the sizes of the blocks every idle session keeps.
//!
//! ```text
//! cargo run --release -p rookery-tls --example idle_memory
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::io::{Read, Write};
use std::mem::size_of;
use std::sync::Arc;

use common::*;
use counting_alloc::{blocks_by_size, live_blocks, live_bytes, Counting};
use rookery_tls::{TlsSession, ALPN_XMPP_CLIENT};
use rustls::client::Resumption;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ServerConnection, SupportedProtocolVersion};

#[global_allocator]
static ALLOC: Counting = Counting;

const SESSIONS: usize = 2_000;
const TRAFFIC: &[u8] = &[b'x'; 100];

fn main() {
    let fx = Fixture::new();
    println!("sessions per measurement: {SESSIONS}");
    println!("size_of::<TlsSession>() = {} B", size_of::<TlsSession>());
    println!(
        "size_of::<ServerConnection>() = {} B",
        size_of::<ServerConnection>()
    );
    println!(
        "size_of::<UnbufferedServerConnection>() = {} B",
        size_of::<rustls::server::UnbufferedServerConnection>()
    );
    for (name, version) in [("TLS 1.3", &TLS13), ("TLS 1.2", &TLS12)] {
        for chacha_only in [false, true] {
            let config = client_config_without_resumption(&fx, version, chacha_only);
            let suites = match chacha_only {
                false => "client offers every suite (rustls picks AES-256-GCM)",
                true => "client offers ChaCha20-Poly1305 only",
            };
            println!("\n== {name}, {suites} ==");
            let ours = measure::<Ours>(&fx, &config);
            ours.print("TlsSession (unbuffered)", size_of::<TlsSession>());
            let theirs = measure::<Buffered>(&fx, &config);
            let name = "rustls ServerConnection (buffered, same config)";
            theirs.print(name, size_of::<ServerConnection>());
        }
    }
}

/// A client offering every suite, or ChaCha20-Poly1305 only.
fn client_config_without_resumption(
    fx: &Fixture,
    version: &'static SupportedProtocolVersion,
    chacha_only: bool,
) -> Arc<ClientConfig> {
    let mut provider = client_provider();
    if chacha_only {
        provider
            .cipher_suites
            .retain(|s| format!("{:?}", s.suite()).contains("CHACHA"));
    }
    let config = client_config_with(&fx.ca, version, &[ALPN_XMPP_CLIENT], provider);
    let mut config = (*config).clone();
    // The client's ticket store would otherwise grow in the measured heap.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// A server session kind under measurement.
trait Server: Sized {
    fn new(fx: &Fixture) -> Self;
    /// Feeds client bytes; returns bytes for the client.
    fn feed(&mut self, bytes: &[u8], plaintext: &mut Vec<u8>) -> Vec<u8>;
    fn send(&mut self, plaintext: &[u8]) -> Vec<u8>;
    fn heap_estimate(&self) -> Option<usize> {
        None
    }
}

struct Ours(TlsSession);

impl Server for Ours {
    fn new(fx: &Fixture) -> Self {
        Ours(TlsSession::new(&fx.context))
    }

    fn feed(&mut self, bytes: &[u8], plaintext: &mut Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        self.0
            .read(bytes, plaintext, &mut out)
            .expect("server read");
        out
    }

    fn send(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.0.write(plaintext, &mut out).expect("server write");
        out
    }

    fn heap_estimate(&self) -> Option<usize> {
        Some(self.0.heap_bytes())
    }
}

struct Buffered(ServerConnection);

impl Server for Buffered {
    fn new(fx: &Fixture) -> Self {
        let config = Arc::clone(fx.context.current().server_config());
        Buffered(ServerConnection::new(config).expect("buffered server"))
    }

    fn feed(&mut self, bytes: &[u8], plaintext: &mut Vec<u8>) -> Vec<u8> {
        let mut rest = bytes;
        while !rest.is_empty() {
            self.0.read_tls(&mut rest).expect("read_tls");
            self.0.process_new_packets().expect("server process");
        }
        let _ = self.0.reader().read_to_end(plaintext);
        let mut out = Vec::new();
        while self.0.wants_write() {
            self.0.write_tls(&mut out).expect("write_tls");
        }
        out
    }

    fn send(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.0
            .writer()
            .write_all(plaintext)
            .expect("buffered write");
        let mut out = Vec::new();
        while self.0.wants_write() {
            self.0.write_tls(&mut out).expect("write_tls");
        }
        out
    }
}

/// Heap per session in each phase, in bytes.
struct Report {
    fresh: f64,
    mid_handshake: f64,
    idle: f64,
    idle_blocks: f64,
    estimate_idle: Option<usize>,
    kept_sizes: Vec<(usize, f64)>,
}

impl Report {
    fn print(&self, name: &str, size_of: usize) {
        println!("{name}: size_of {size_of} B");
        println!(
            "  fresh (before ClientHello):      {:>7.0} B heap",
            self.fresh
        );
        println!(
            "  mid-handshake (after ClientHello): {:>5.0} B heap",
            self.mid_handshake
        );
        println!(
            "  idle after handshake + 100 B each way: {:.0} B heap in {:.1} blocks; heap + \
             size_of = {:.0} B",
            self.idle,
            self.idle_blocks,
            self.idle + size_of as f64
        );
        if let Some(estimate) = self.estimate_idle {
            println!("  heap_bytes() estimate when idle: {estimate} B");
        }
        let sizes: Vec<String> = self
            .kept_sizes
            .iter()
            .map(|(size, per)| format!("{size} B x{per:.2}"))
            .collect();
        println!("  blocks kept per idle session: {}", sizes.join(", "));
    }
}

fn per_session(before: isize, after: isize) -> f64 {
    (after - before) as f64 / SESSIONS as f64
}

fn measure<S: Server>(fx: &Fixture, config: &Arc<ClientConfig>) -> Report {
    let mut fresh: Vec<S> = Vec::with_capacity(SESSIONS);
    let base = live_bytes();
    fresh.extend((0..SESSIONS).map(|_| S::new(fx)));
    let fresh_bytes = per_session(base, live_bytes());
    drop(fresh);

    let mut waiting: Vec<S> = Vec::with_capacity(SESSIONS);
    let base = live_bytes();
    for _ in 0..SESSIONS {
        let mut server = S::new(fx);
        let mut client = client(config);
        server.feed(&client_output(&mut client), &mut Vec::new());
        waiting.push(server);
    }
    let mid_handshake = per_session(base, live_bytes());
    drop(waiting);

    let mut idle: Vec<S> = Vec::with_capacity(SESSIONS);
    // The by-size snapshots are 64 KiB vectors: take them outside the counted span, or they
    // would add ~66 B per session to the idle figure.
    let sizes_before = blocks_by_size();
    let (base, base_blocks) = (live_bytes(), live_blocks());
    for _ in 0..SESSIONS {
        idle.push(handshake_and_talk(fx, config));
    }
    let (after, after_blocks) = (live_bytes(), live_blocks());
    let sizes_after = blocks_by_size();
    let kept_sizes = sizes_before
        .iter()
        .zip(&sizes_after)
        .enumerate()
        .map(|(size, (b, a))| (size, (a - b) as f64 / SESSIONS as f64))
        .filter(|(_, per)| *per >= 0.5)
        .collect();
    let report = Report {
        fresh: fresh_bytes,
        mid_handshake,
        idle: per_session(base, after),
        idle_blocks: per_session(base_blocks, after_blocks),
        estimate_idle: idle[0].heap_estimate(),
        kept_sizes,
    };
    drop(idle);
    report
}

fn handshake_and_talk<S: Server>(fx: &Fixture, config: &Arc<ClientConfig>) -> S {
    let mut server = S::new(fx);
    let mut client = client(config);
    let mut plaintext = Vec::new();
    for _ in 0..8 {
        let from_client = client_output(&mut client);
        if from_client.is_empty() && !client.is_handshaking() {
            break;
        }
        let to_client = server.feed(&from_client, &mut plaintext);
        client_input(&mut client, &to_client).expect("client input");
    }
    client.writer().write_all(TRAFFIC).expect("client write");
    server.feed(&client_output(&mut client), &mut plaintext);
    assert_eq!(plaintext, TRAFFIC, "server got the client's bytes");
    client_input(&mut client, &server.send(TRAFFIC)).expect("client input");
    assert_eq!(
        client_plaintext(&mut client),
        TRAFFIC,
        "client got the server's bytes"
    );
    server
}
