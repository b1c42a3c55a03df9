//! Record protection that keeps only the key bytes: ring's AEADs, rebuilt for each record.
//! `tls13.rs` and `tls12.rs` hold the record layers; this module the shared key type and the
//! table of suites.
//!
//! Why: ring's AEAD key type (`LessSafeKey`) is an enum sized for its largest variant, the
//! expanded AES-GCM key (round keys and GHASH table), so a rustls connection on ring keeps
//! 2 x 560 bytes of key state whatever suite it negotiated: a third of an idle TLS session.
//! These record layers keep the raw key (16 or 32 bytes) and build ring's key on the stack
//! for each record. Measured (`cargo run --release -p rookery-tls --example record_cost`,
//! results/20261207-013912-tls-idle-memory): ~0.03 us more per record for ChaCha20-Poly1305
//! and ~0.15-0.19 us for AES-GCM (key expansion and GHASH table), whatever the record size.
//! An idle session saves ~1 KiB.
//!
//! What it does: implements rustls' `Tls13AeadAlgorithm` and `Tls12AeadAlgorithm` for the
//! suites of rustls' ring provider (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), exactly as
//! rustls' ring module does (RFC 8446 section 5.2; RFC 5288 with rustls' nonce construction
//! and RFC 7905 for TLS 1.2): nonces from rustls' `Nonce::new(iv, seq)` with the sequence
//! number rustls counts, additional data from `make_tls13_aad` / `make_tls12_aad`, the tag
//! appended. Suite choice, key exchange, signatures, HKDF and PRF are untouched. The tests
//! interoperate with ring's own record layer on the client side for every suite.
//!
//! What it does not do: QUIC (no header-protection keys), FIPS mode. Keys are wiped when a
//! record layer is dropped (ring's own expanded keys are not).

mod tls12;
mod tls13;

use std::sync::OnceLock;

use ring::aead::{self, LessSafeKey, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
use rustls::crypto::cipher::{AeadKey, Iv, Nonce, Tls12AeadAlgorithm, Tls13AeadAlgorithm};
use rustls::CipherSuite as Cs;
use rustls::{
    CipherSuiteCommon, ConnectionTrafficSecrets, SupportedCipherSuite, Tls12CipherSuite,
    Tls13CipherSuite,
};

use tls12::{Tls12ChaCha, Tls12Gcm};
use tls13::Tls13Lean;

const TAG_BYTES: usize = 16;
const MAX_KEY_BYTES: usize = 32;
/// Largest plaintext in a record (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
const MAX_FRAGMENT_BYTES: usize = 16 * 1024;
/// TLS 1.2 AES-GCM records start with the last 8 bytes of their nonce (RFC 5288 section 3).
const GCM_EXPLICIT_NONCE_BYTES: usize = 8;

/// `suite` on a lean record layer (same cipher, same everything else), or `suite` itself when
/// it is not one of ring's AEAD suites.
pub(crate) fn lean(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    table()
        .iter()
        .find(|lean| lean.suite() == suite.suite())
        .copied()
        .unwrap_or(suite)
}

/// Whether `suite` is one `lean` made.
pub(crate) fn is_lean(suite: SupportedCipherSuite) -> bool {
    // Compares the suites' addresses (distinct leaked allocations), not `dyn` pointers:
    // vtables may be duplicated across codegen units and our algorithm types are tiny.
    table().iter().any(|lean| match (lean, suite) {
        (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => std::ptr::eq(*a, b),
        (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => std::ptr::eq(*a, b),
        _ => false,
    })
}

/// The lean twins of rustls' ring suites, built once per process and kept for its lifetime
/// (rustls wants `&'static` suites): nine small structs, leaked on purpose.
fn table() -> &'static [SupportedCipherSuite] {
    static TABLE: OnceLock<Vec<SupportedCipherSuite>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rustls::crypto::ring::ALL_CIPHER_SUITES
            .iter()
            .filter_map(|suite| twin(*suite))
            .collect()
    })
}

static TLS13_AES_128: Tls13Lean = Tls13Lean(&AES_128_GCM);
static TLS13_AES_256: Tls13Lean = Tls13Lean(&AES_256_GCM);
static TLS13_CHACHA: Tls13Lean = Tls13Lean(&CHACHA20_POLY1305);
static TLS12_AES_128: Tls12Gcm = Tls12Gcm(&AES_128_GCM);
static TLS12_AES_256: Tls12Gcm = Tls12Gcm(&AES_256_GCM);

fn twin(suite: SupportedCipherSuite) -> Option<SupportedCipherSuite> {
    Some(match suite {
        SupportedCipherSuite::Tls13(s) => {
            let aead_alg: &'static dyn Tls13AeadAlgorithm = match s.common.suite {
                Cs::TLS13_AES_128_GCM_SHA256 => &TLS13_AES_128,
                Cs::TLS13_AES_256_GCM_SHA384 => &TLS13_AES_256,
                Cs::TLS13_CHACHA20_POLY1305_SHA256 => &TLS13_CHACHA,
                _ => return None,
            };
            SupportedCipherSuite::Tls13(Box::leak(Box::new(Tls13CipherSuite {
                common: common(&s.common),
                hkdf_provider: s.hkdf_provider,
                aead_alg,
                quic: None,
            })))
        }
        SupportedCipherSuite::Tls12(s) => {
            let aead_alg: &'static dyn Tls12AeadAlgorithm = match s.common.suite {
                Cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | Cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => &TLS12_AES_128,
                Cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | Cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => &TLS12_AES_256,
                Cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | Cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => &Tls12ChaCha,
                _ => return None,
            };
            SupportedCipherSuite::Tls12(Box::leak(Box::new(Tls12CipherSuite {
                common: common(&s.common),
                prf_provider: s.prf_provider,
                kx: s.kx,
                sign: s.sign,
                aead_alg,
            })))
        }
    })
}

fn common(c: &CipherSuiteCommon) -> CipherSuiteCommon {
    CipherSuiteCommon {
        suite: c.suite,
        hash_provider: c.hash_provider,
        confidentiality_limit: c.confidentiality_limit,
    }
}

/// An AEAD algorithm and its raw key; ring's key is built from them for each record.
struct LeanKey {
    alg: &'static aead::Algorithm,
    bytes: [u8; MAX_KEY_BYTES],
}

impl LeanKey {
    fn new(alg: &'static aead::Algorithm, key: &AeadKey) -> LeanKey {
        let mut bytes = [0u8; MAX_KEY_BYTES];
        // rustls hands out keys of `key_len()` / `key_block_shape().enc_key_len` bytes, which
        // are `alg.key_len()` (16 or 32).
        bytes[..alg.key_len()].copy_from_slice(&key.as_ref()[..alg.key_len()]);
        LeanKey { alg, bytes }
    }

    fn ring(&self) -> LessSafeKey {
        // Invariant: UnboundKey::new fails only on a key of the wrong length; ours has
        // `alg.key_len()` bytes by construction.
        let key = UnboundKey::new(self.alg, &self.bytes[..self.alg.key_len()])
            .expect("key of the algorithm's length");
        LessSafeKey::new(key)
    }
}

impl Drop for LeanKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

fn nonce(iv: &Iv, seq: u64) -> aead::Nonce {
    aead::Nonce::assume_unique_for_key(Nonce::new(iv, seq).0)
}

fn secrets(alg: &'static aead::Algorithm, key: AeadKey, iv: Iv) -> ConnectionTrafficSecrets {
    if *alg == CHACHA20_POLY1305 {
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }
    } else if *alg == AES_256_GCM {
        ConnectionTrafficSecrets::Aes256Gcm { key, iv }
    } else {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::Aad;

    /// RFC 8439 section 2.8.2: the ChaCha20-Poly1305 test vector, sealed with a key rebuilt
    /// from the stored bytes as every record does.
    #[test]
    fn rfc8439_vector() {
        let mut bytes = [0u8; MAX_KEY_BYTES];
        bytes.iter_mut().zip(0x80u8..).for_each(|(b, v)| *b = v);
        let key = LeanKey {
            alg: &CHACHA20_POLY1305,
            bytes,
        };
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
tip for the future, sunscreen would be it."
            .to_vec();
        key.ring()
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut text,
            )
            .expect("seal");
        assert_eq!(
            &text[..8],
            &[0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb]
        );
        assert_eq!(
            &text[text.len() - TAG_BYTES..],
            &[
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
    }

    #[test]
    fn every_ring_aead_suite_has_a_lean_twin() {
        for suite in rustls::crypto::ring::ALL_CIPHER_SUITES {
            let twin = lean(*suite);
            assert_eq!(twin.suite(), suite.suite());
            assert!(is_lean(twin), "{:?}", suite.suite());
            assert!(!is_lean(*suite));
        }
    }

    #[test]
    fn record_layers_are_small() {
        // A record layer is a LeanKey plus a 12-byte IV or 4-byte salt.
        assert!(std::mem::size_of::<LeanKey>() + 12 <= 56);
    }
}
