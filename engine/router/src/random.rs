//! Unpredictable bytes for the router (SCRAM nonces, upload slot tokens): HMAC-SHA256 of a
//! counter under a 256-bit key, a pseudo-random function in counter mode (RustCrypto's `hmac`
//! and `sha2`; nothing hand-written).
//!
//! Why a keyed generator and not the OS: the router reads no clock and no random source
//! (determinism by lint, so the simulator replays a seed exactly). The key comes from outside:
//! the server draws 32 bytes from the OS for every router (`Router::set_random_key`); tests
//! and the simulator keep the key derived from the router's seed (reproducible, not secret).
//!
//! What it does not do: reseed, or protect earlier outputs once the key is known (no
//! backtracking resistance: the key lives in the process as long as the router does).
//!
//! Invariants: no two calls return the same block (the 64-bit counter never wraps in
//! practice); the key never shows in `Debug`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of key.
pub const KEY_BYTES: usize = 32;

/// A counter-mode PRF under a secret key.
#[derive(Clone)]
pub(crate) struct SecureRandom {
    keyed: Hmac<Sha256>,
    counter: u64,
}

impl std::fmt::Debug for SecureRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureRandom")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl SecureRandom {
    /// A generator under `key` (the server's: from the OS).
    pub fn from_key(key: &[u8; KEY_BYTES]) -> SecureRandom {
        SecureRandom {
            // Infallible: HMAC takes keys of any length.
            keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
            counter: 0,
        }
    }

    /// A reproducible generator for tests and the simulator: the key is the seed's bytes,
    /// so anyone who knows the seed can predict it.
    pub fn from_seed(seed: u64) -> SecureRandom {
        let mut key = [0u8; KEY_BYTES];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(b"seed");
        SecureRandom::from_key(&key)
    }

    /// A key for another use of the router, derived from this generator's key and `label`
    /// (HMAC of the label, which is never 8 bytes long, so it never equals an output of
    /// `fill`); the counter is untouched.
    pub fn derive_key(&self, label: &[u8]) -> [u8; KEY_BYTES] {
        assert_ne!(
            label.len(),
            8,
            "an 8-byte label could equal a counter block"
        );
        let mut mac = self.keyed.clone();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// Fills `out` with fresh bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let mut mac = self.keyed.clone();
            mac.update(&self.counter.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
            let block = mac.finalize().into_bytes();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_differ_and_keys_matter() {
        let mut a = SecureRandom::from_key(&[7; KEY_BYTES]);
        let mut b = SecureRandom::from_key(&[8; KEY_BYTES]);
        let (mut x, mut y, mut z) = ([0u8; 40], [0u8; 40], [0u8; 40]);
        a.fill(&mut x);
        a.fill(&mut y);
        b.fill(&mut z);
        assert_ne!(x, y, "successive calls differ");
        assert_ne!(x, z, "another key, other bytes");
        assert_ne!(x[..32], x[32..], "blocks within one call differ");
        assert!(!format!("{a:?}").contains('7'), "no key in Debug");
    }

    #[test]
    fn a_seed_replays() {
        let (mut a, mut b) = (SecureRandom::from_seed(42), SecureRandom::from_seed(42));
        let (mut x, mut y) = ([0u8; 24], [0u8; 24]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
    }
}
