//! Criterion benches of the SASL costs that matter for capacity planning: one server-side
//! SCRAM login (start + credentials + respond, no PBKDF2 on the server), deriving stored
//! credentials at 4096 iterations (account creation, PLAIN checks cost one SHA-256 half of
//! it), and a client login with a cached salted password (the load generator's path).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rookery_sasl::{
    ChannelBinding, ChannelBindingOffer, ClientExchange, Credentials, Mechanism, ServerExchange,
    Step,
};

const CLIENT_NONCE: &[u8] = b"fyko+d2lbbFgONRv9qkxdawL";
const SERVER_NONCE: &[u8] = b"3rfcNHYJY1ZVvWVs7jABCDEF";
const SALT_SHA1: &[u8] = b"sixteen-byte-s-1";
const SALT_SHA256: &[u8] = b"sixteen-byte-s-2";

/// A client of "user" with password "pencil" and the fixed nonce; with its first message.
fn client(mechanism: Mechanism) -> (ClientExchange, Vec<u8>) {
    ClientExchange::start(
        mechanism,
        "user",
        "pencil",
        ChannelBinding::None,
        CLIENT_NONCE,
    )
    .unwrap()
}

/// The fixed nonces make the whole exchange deterministic, so the client messages are
/// computed once and replayed to a fresh server exchange per iteration.
fn client_messages(mechanism: Mechanism, stored: &Credentials) -> (Vec<u8>, Vec<u8>) {
    let (mut client, first) = client(mechanism);
    let (mut server, _) = ServerExchange::start(
        mechanism,
        ChannelBindingOffer::NotOffered,
        &first,
        SERVER_NONCE,
    );
    let Step::Challenge(challenge) = server.credentials(Some(stored)) else {
        panic!("no challenge");
    };
    (first, client.step(&challenge).unwrap())
}

fn server_login(c: &mut Criterion) {
    let stored = Credentials::derive("pencil", 4096, SALT_SHA1, SALT_SHA256).unwrap();
    for (name, mechanism) in [
        ("server_scram_sha1_login", Mechanism::ScramSha1),
        ("server_scram_sha256_login", Mechanism::ScramSha256),
    ] {
        let (first, last) = client_messages(mechanism, &stored);
        c.bench_function(name, |b| {
            b.iter(|| {
                let (mut server, _) = ServerExchange::start(
                    mechanism,
                    ChannelBindingOffer::NotOffered,
                    black_box(&first),
                    SERVER_NONCE,
                );
                server.credentials(Some(&stored));
                let step = server.respond(black_box(&last));
                assert!(matches!(step, Step::Success { .. }));
                step
            })
        });
    }
}

fn derive(c: &mut Criterion) {
    let mut group = c.benchmark_group("credentials");
    group.sample_size(20);
    group.bench_function("derive_4096", |b| {
        b.iter(|| Credentials::derive(black_box("pencil"), 4096, SALT_SHA1, SALT_SHA256).unwrap())
    });
    group.finish();
}

fn client_login_cached(c: &mut Criterion) {
    let stored = Credentials::derive("pencil", 4096, SALT_SHA1, SALT_SHA256).unwrap();
    let mechanism = Mechanism::ScramSha256;
    let (first, _) = client_messages(mechanism, &stored);
    let (mut server, _) = ServerExchange::start(
        mechanism,
        ChannelBindingOffer::NotOffered,
        &first,
        SERVER_NONCE,
    );
    let Step::Challenge(challenge) = server.credentials(Some(&stored)) else {
        panic!("no challenge");
    };
    let cached =
        rookery_sasl::salted_password(rookery_sasl::ScramHash::Sha256, "pencil", SALT_SHA256, 4096)
            .unwrap();
    c.bench_function("client_scram_sha256_cached_step", |b| {
        b.iter(|| {
            let (mut client, _) = client(mechanism);
            client.use_salted_password(cached.clone());
            client.step(black_box(&challenge)).unwrap()
        })
    });
}

criterion_group!(benches, server_login, derive, client_login_cached);
criterion_main!(benches);
