//! The count of conns not yet authenticated, per source address: a budget so one address
//! cannot hold a shard's conns (and their framer buffers and timers) open without logging in.
//!
//! What it does: admits a new conn if its address has fewer than the limit waiting, and
//! releases it when it authenticates or closes.
//!
//! What it does not do: count across shards (each shard counts the conns it accepted, so with
//! SO_REUSEPORT the limit is per shard) or limit authenticated sessions (`max_resources` does,
//! per user).
//!
//! Invariants: `per_address[a]` is the number of entries of `by_slot` with address `a`; an
//! address with none is not in the map.

use std::net::IpAddr;

use crate::maps::{HashState, Map};

/// Conns not yet authenticated, by slot, and their count per source address.
#[derive(Debug)]
pub(crate) struct Unauthenticated {
    by_slot: Map<u32, IpAddr>,
    per_address: Map<IpAddr, u32>,
}

impl Unauthenticated {
    pub fn new(hash: HashState) -> Unauthenticated {
        Unauthenticated {
            by_slot: hash.map(),
            per_address: hash.map(),
        }
    }

    /// Counts the conn in `slot` from `address`; false (nothing counted) when the address has
    /// `max` conns waiting already.
    pub fn admit(&mut self, slot: u32, address: IpAddr, max: usize) -> bool {
        let waiting = self.per_address.entry(address).or_default();
        if *waiting as usize >= max {
            if *waiting == 0 {
                self.per_address.remove(&address);
            }
            return false;
        }
        *waiting += 1;
        self.by_slot.insert(slot, address);
        true
    }

    /// The conn in `slot` authenticated or closed.
    pub fn release(&mut self, slot: u32) {
        let Some(address) = self.by_slot.remove(&slot) else {
            return;
        };
        if let Some(waiting) = self.per_address.get_mut(&address) {
            *waiting -= 1;
            if *waiting == 0 {
                self.per_address.remove(&address);
            }
        }
    }

    /// The source address of the conn in `slot`, while it is not authenticated.
    pub fn address(&self, slot: u32) -> Option<IpAddr> {
        self.by_slot.get(&slot).copied()
    }

    /// Conns waiting, all addresses.
    pub fn len(&self) -> usize {
        self.by_slot.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.by_slot.capacity() * (std::mem::size_of::<(u32, IpAddr)>() + 1)
            + self.per_address.capacity() * (std::mem::size_of::<(IpAddr, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_max_and_frees_them() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let mut u = Unauthenticated::new(HashState::from_seed(0));
        assert!(u.admit(1, a, 2) && u.admit(2, a, 2));
        assert!(!u.admit(3, a, 2), "the third from one address");
        assert!(u.admit(3, b, 2), "another address is not affected");
        u.release(1);
        u.release(1);
        assert!(u.admit(4, a, 2), "a released one makes room");
        u.release(2);
        u.release(4);
        u.release(3);
        assert_eq!(u.len(), 0);
        assert!(u.per_address.is_empty());
    }
}
