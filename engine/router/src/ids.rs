//! Stream ids and server-generated resources: unique per router, unpredictable across runs.
//!
//! What it does not do: read clocks or any random source: the seed comes from the router's
//! constructor (from the OS in the server, from the PRNG in the simulator).
//!
//! Invariants: `mix` is a bijection on u64 (xor-shifts and odd multiplications), so distinct
//! counter values give distinct ids until the 64-bit counter wraps (never, in practice).
//! Stream ids carry the shard number as a prefix, so they are unique across the shards of a
//! process too; generated resources only need to be unique on their home shard, and the
//! binding code re-draws on the (astronomically rare) clash with a client-chosen resource.

/// Generates ids from a per-router seed and counter.
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    counter: u64,
    shard: u16,
}

impl IdGen {
    pub fn with_seed(shard: u16, seed: u64) -> IdGen {
        IdGen {
            seed,
            counter: 0,
            shard,
        }
    }

    fn next_value(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix(self.counter ^ self.seed)
    }

    /// A fresh stream id: 4 hex digits of shard, then 16 of mixed counter.
    pub fn stream_id(&mut self) -> String {
        let value = self.next_value();
        let mut id = String::with_capacity(20);
        push_hex(&mut id, u64::from(self.shard), 4);
        push_hex(&mut id, value, 16);
        id
    }

    /// A fresh resource for a bind request without one: `rk` + 16 hex digits.
    pub fn resource(&mut self) -> String {
        let value = self.next_value();
        let mut resource = String::with_capacity(18);
        resource.push_str("rk");
        push_hex(&mut resource, value, 16);
        resource
    }
}

/// The splitmix64 finalizer: a bijection that spreads counter bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (i * 4)) & 0xf;
        // Invariant: nibble < 16, always a valid hex digit.
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn stream_ids_are_unique_and_carry_the_shard() {
        let mut ids = IdGen::with_seed(3, 42);
        let seen: HashSet<String> = (0..10_000).map(|_| ids.stream_id()).collect();
        assert_eq!(seen.len(), 10_000);
        assert!(seen
            .iter()
            .all(|id| id.len() == 20 && id.starts_with("0003")));
    }

    #[test]
    fn resources_have_the_documented_form() {
        let mut ids = IdGen::with_seed(0, 7);
        let a = ids.resource();
        let b = ids.resource();
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("rk"));
        assert!(a[2..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn different_seeds_give_different_ids() {
        let mut a = IdGen::with_seed(0, 1);
        let mut b = IdGen::with_seed(0, 2);
        assert_ne!(a.stream_id(), b.stream_id());
    }
}
