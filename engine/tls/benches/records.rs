//! Cost of protecting one record: whole `TlsSession::write` / `read` calls per TLS 1.3 suite,
//! rustls' framing and ring's record layer (as rustls' ring provider ships it) included.
//!
//! ```text
//! cargo bench -p rookery-tls --bench records
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rustls::version::TLS13;
use rustls::{CipherSuite, ClientConfig};

const SIZES: [usize; 2] = [300, 16 * 1024];

fn client_for(fx: &Fixture, suite: CipherSuite) -> Arc<ClientConfig> {
    let mut provider = client_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    client_config_with(&fx.ca, &TLS13, &[], provider)
}

fn records(c: &mut Criterion) {
    let fx = Fixture::new();
    let suites = [
        ("chacha20", CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
        ("aes128gcm", CipherSuite::TLS13_AES_128_GCM_SHA256),
        ("aes256gcm", CipherSuite::TLS13_AES_256_GCM_SHA384),
    ];
    for size in SIZES {
        let mut group = c.benchmark_group(format!("tls13-{size}B"));
        group.throughput(Throughput::Bytes(size as u64));
        let data = vec![b'x'; size];
        for (name, suite) in suites {
            let (mut client, mut server, _) = handshake(&fx.context, &client_for(&fx, suite));
            assert_eq!(server.cipher_suite(), Some(suite));
            let mut out = Vec::with_capacity(size + 64);
            group.bench_function(format!("write/{name}"), |b| {
                b.iter(|| {
                    out.clear();
                    server.write(&data, &mut out).expect("write");
                })
            });
            let mut plaintext = Vec::with_capacity(size);
            group.bench_function(format!("read/{name}"), |b| {
                b.iter_batched(
                    || {
                        client.writer().write_all(&data).expect("client write");
                        client_output(&mut client)
                    },
                    |record| {
                        plaintext.clear();
                        let mut to_peer = Vec::new();
                        server
                            .read(&record, &mut plaintext, &mut to_peer)
                            .expect("read");
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, records);
criterion_main!(benches);
