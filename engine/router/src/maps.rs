//! The router's hash maps: std's `HashMap`/`HashSet` over a SipHash-1-3 state keyed from
//! the router's seed (`HashState`), never std's randomly seeded `RandomState`.
//!
//! What it does: gives `Map<K, V>` and `Set<K>` and their constructors (`HashState::map`,
//! `HashState::set`). The server draws the seed from the OS at start, so production keeps
//! HashDoS resistance (keys an attacker cannot guess); the simulator draws it from its PRNG,
//! so a run (and every map's iteration order) replays from the simulator's seed.
//!
//! What it does not do: pick seeds (the router's constructors take one).
//!
//! Invariants: `HashState` has no `Default`, so no map can be built unseeded by accident
//! (a derived `Default` on a struct holding a map does not compile).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use siphasher::sip::SipHasher13;

/// A hash map of the router (see the module docs).
pub(crate) type Map<K, V> = HashMap<K, V, HashState>;
/// A hash set of the router (see the module docs).
#[allow(
    dead_code,
    reason = "no set yet: the router's sets are small B-trees today"
)]
pub(crate) type Set<K> = HashSet<K, HashState>;

/// A keyed fingerprint of a string (see `HashState::fingerprint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Fingerprint([u32; 3]);

/// The keys of the router's SipHash-1-3 maps, derived from the router's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HashState {
    k0: u64,
    k1: u64,
}

impl HashState {
    /// Two keys from `seed` (splitmix64 steps: distinct seeds give unrelated keys).
    pub fn from_seed(seed: u64) -> HashState {
        let k0 = splitmix64(seed);
        HashState {
            k0,
            k1: splitmix64(k0 ^ seed),
        }
    }

    /// An empty map hashing with these keys.
    pub fn map<K, V>(self) -> Map<K, V> {
        HashMap::with_hasher(self)
    }

    /// A 96-bit keyed fingerprint of `key` (SipHash-1-3-128 under keys derived from these,
    /// distinct from the map hash, cut to 96 bits): a key that stands for a string without
    /// storing it. With keys an attacker cannot guess, two strings share one with probability
    /// 2^-96 per pair (below 10^-16 among a million strings). 96 bits, not 128: as three
    /// `u32`s it aligns to 4, so a map entry with a `u32` value is 16 bytes, not 32.
    pub fn fingerprint(&self, key: &str) -> Fingerprint {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let k0 = splitmix64(self.k1 ^ 0x6669_6e67_6572_7072);
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(k0, splitmix64(k0));
        hasher.write(key.as_bytes());
        let wide = hasher.finish128().as_u128();
        // Lossless casts of the low three 32-bit words.
        Fingerprint([wide as u32, (wide >> 32) as u32, (wide >> 64) as u32])
    }

    /// An empty set hashing with these keys.
    #[allow(
        dead_code,
        reason = "no set yet: the router's sets are small B-trees today"
    )]
    pub fn set<K>(self) -> Set<K> {
        HashSet::with_hasher(self)
    }
}

impl BuildHasher for HashState {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// One step of splitmix64 (Steele, Lea, Flood 2014): a bijection with good avalanche.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_decides_the_hash_and_the_order() {
        let a = HashState::from_seed(1);
        assert_eq!(a, HashState::from_seed(1));
        assert_ne!(a, HashState::from_seed(2));
        assert_eq!(
            a.hash_one("alice"),
            HashState::from_seed(1).hash_one("alice")
        );
        assert_ne!(
            a.hash_one("alice"),
            HashState::from_seed(2).hash_one("alice")
        );
        let order = |seed| {
            let mut set = HashState::from_seed(seed).set();
            set.extend((0..64).map(|n| format!("user{n}")));
            set.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(order(7), order(7), "same seed, same iteration order");
    }

    #[test]
    fn fingerprints_depend_on_the_seed_and_the_whole_key() {
        let a = HashState::from_seed(1);
        assert_eq!(a.fingerprint("alice@e.com"), a.fingerprint("alice@e.com"));
        assert_ne!(a.fingerprint("alice@e.com"), a.fingerprint("alice@e.co"));
        let other = HashState::from_seed(2).fingerprint("alice@e.com");
        assert_ne!(a.fingerprint("alice@e.com"), other);
    }
}
