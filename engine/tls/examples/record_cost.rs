//! What rebuilding ring's AEAD key for each record costs (`src/lean/`), timed so that a
//! busy shared machine does not blur it: for each case, 41 trials of N seals, alternating the
//! kept-key and per-record-key variants, and the fastest trial of each is reported (other
//! work on the machine only ever adds time). Criterion's `cargo bench -p rookery-tls --bench
//! records` measures the same cases with medians.
//!
//! ```text
//! cargo run --release -p rookery-tls --example record_cost
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

const TRIALS: usize = 41;

fn seal(key: &LessSafeKey, seq: u64, data: &mut [u8]) {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([0u8; 5]),
            data,
        )
        .expect("seal");
    let _ = black_box(tag);
}

fn trial(alg: &'static aead::Algorithm, size: usize, rounds: u32, per_record: bool) -> Duration {
    let bytes = [7u8; 32];
    let bytes = &bytes[..alg.key_len()];
    let kept = LessSafeKey::new(UnboundKey::new(alg, bytes).expect("key"));
    let mut data = vec![b'x'; size];
    let start = Instant::now();
    for seq in 0..u64::from(rounds) {
        if per_record {
            let key = LessSafeKey::new(UnboundKey::new(alg, black_box(bytes)).expect("key"));
            seal(&key, seq, &mut data);
        } else {
            seal(&kept, seq, &mut data);
        }
    }
    start.elapsed() / rounds
}

fn main() {
    let algs = [
        ("ChaCha20-Poly1305", &aead::CHACHA20_POLY1305),
        ("AES-128-GCM", &AES_128_GCM),
        ("AES-256-GCM", &AES_256_GCM),
    ];
    println!("fastest of {TRIALS} trials, per record");
    for size in [300usize, 16 * 1024] {
        let rounds = if size < 1024 { 20_000 } else { 500 };
        for (name, alg) in algs {
            let (mut kept, mut rebuilt) = (Duration::MAX, Duration::MAX);
            for _ in 0..TRIALS {
                kept = kept.min(trial(alg, size, rounds, false));
                rebuilt = rebuilt.min(trial(alg, size, rounds, true));
            }
            println!(
                "{size:>6} B {name:<18} key kept {kept:>9.2?}  key rebuilt {rebuilt:>9.2?}  (+{:.2?})",
                rebuilt.saturating_sub(kept)
            );
        }
    }
}
