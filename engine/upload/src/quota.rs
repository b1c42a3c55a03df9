//! Per-user quota: what a user's uploads occupy, as the slot issuer sees it.
//!
//! What it does: [`QuotaLedger`] is the two questions issuing a slot asks (how much does this
//! user hold, and remember this new slot); the caller implements it over its own state (the
//! router keeps usage in the user's home shard store). A user's usage is the bytes of their
//! stored files plus the sizes of their slots still open (minted, not yet uploaded, not yet
//! expired), so a burst of slot requests cannot overrun the quota before any upload lands.
//! [`UsageEvent`]s, emitted by the HTTP side when a file is stored or removed, move bytes
//! between the two. [`MemoryLedger`] is an in-memory implementation, for tests and as a model.
//!
//! What it does not do: persist anything, or read the clock (times are passed in).
//!
//! Invariants (MemoryLedger): a reservation counts only while `now < expires_unix_s` and until
//! its token is stored; expired reservations are dropped on the next `reserve` for that user,
//! so their number per user is bounded by what a user can open in one slot lifetime. An owner
//! whose last file is removed, with no reservation left, is forgotten.

use std::collections::HashMap;

use rookery_proto::Jid;

use crate::token::SlotToken;

/// What a user holds, as counted at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of files uploaded and not yet removed.
    pub stored_bytes: u64,
    /// Bytes promised to slots still open.
    pub reserved_bytes: u64,
    /// Slots still open.
    pub open_slots: u32,
}

impl Usage {
    /// Stored plus reserved bytes: what the quota is compared with.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes.saturating_add(self.reserved_bytes)
    }
}

/// A slot counted against its owner until it is uploaded or expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub token: SlotToken,
    pub size_bytes: u64,
    pub expires_unix_s: u64,
}

/// Usage as the slot issuer needs it. `owner` is always a bare JID.
pub trait QuotaLedger {
    /// What `owner` holds at `now_unix_s` (reservations past their expiry do not count).
    fn usage(&self, owner: &Jid, now_unix_s: u64) -> Usage;
    /// Counts a newly minted slot against `owner`.
    fn reserve(&mut self, owner: &Jid, reservation: Reservation, now_unix_s: u64);
}

/// What the HTTP side tells the ledger's keeper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageEvent {
    /// An upload completed: its reservation (if still held) becomes stored bytes.
    Stored {
        owner: Jid,
        token: SlotToken,
        size_bytes: u64,
    },
    /// A stored file was removed (retention, or found damaged at start).
    Removed {
        owner: Jid,
        token: SlotToken,
        size_bytes: u64,
    },
}

/// An in-memory [`QuotaLedger`].
#[derive(Debug, Default)]
pub struct MemoryLedger {
    owners: HashMap<Jid, OwnerLedger>,
}

#[derive(Debug, Default)]
struct OwnerLedger {
    stored_bytes: u64,
    reservations: Vec<Reservation>,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    /// Applies what the HTTP side reported.
    pub fn apply(&mut self, event: &UsageEvent) {
        match event {
            UsageEvent::Stored {
                owner,
                token,
                size_bytes,
            } => {
                let entry = self.owners.entry(owner.clone()).or_default();
                entry.reservations.retain(|r| r.token != *token);
                entry.stored_bytes = entry.stored_bytes.saturating_add(*size_bytes);
            }
            UsageEvent::Removed {
                owner, size_bytes, ..
            } => {
                if let Some(entry) = self.owners.get_mut(owner) {
                    entry.stored_bytes = entry.stored_bytes.saturating_sub(*size_bytes);
                    if entry.stored_bytes == 0 && entry.reservations.is_empty() {
                        // Nothing left to count: the owner costs no memory until next time.
                        self.owners.remove(owner);
                    }
                }
            }
        }
    }
}

impl QuotaLedger for MemoryLedger {
    fn usage(&self, owner: &Jid, now_unix_s: u64) -> Usage {
        let Some(entry) = self.owners.get(owner) else {
            return Usage::default();
        };
        let live = entry
            .reservations
            .iter()
            .filter(|r| now_unix_s < r.expires_unix_s);
        Usage {
            stored_bytes: entry.stored_bytes,
            reserved_bytes: live.clone().map(|r| r.size_bytes).sum(),
            open_slots: u32::try_from(live.count()).unwrap_or(u32::MAX),
        }
    }

    fn reserve(&mut self, owner: &Jid, reservation: Reservation, now_unix_s: u64) {
        let entry = self.owners.entry(owner.clone()).or_default();
        entry.reservations.retain(|r| now_unix_s < r.expires_unix_s);
        entry.reservations.push(reservation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn reservation(n: u8, size_bytes: u64, expires_unix_s: u64) -> Reservation {
        Reservation {
            token: SlotToken::from_random([n; 16]),
            size_bytes,
            expires_unix_s,
        }
    }

    #[test]
    fn reservations_count_until_they_expire() {
        let mut ledger = MemoryLedger::new();
        let alice = jid("alice@example.test");
        ledger.reserve(&alice, reservation(1, 100, 1_000), 900);
        ledger.reserve(&alice, reservation(2, 50, 1_100), 900);
        let at_950 = ledger.usage(&alice, 950);
        assert_eq!((at_950.reserved_bytes, at_950.open_slots), (150, 2));
        let at_1000 = ledger.usage(&alice, 1_000);
        assert_eq!((at_1000.reserved_bytes, at_1000.open_slots), (50, 1));
        assert_eq!(
            ledger.usage(&jid("bob@example.test"), 950),
            Usage::default()
        );
    }

    #[test]
    fn stored_and_removed_move_bytes() {
        let mut ledger = MemoryLedger::new();
        let alice = jid("alice@example.test");
        let r = reservation(1, 100, 1_000);
        ledger.reserve(&alice, r, 900);
        let stored = UsageEvent::Stored {
            owner: alice.clone(),
            token: r.token,
            size_bytes: 100,
        };
        ledger.apply(&stored);
        let usage = ledger.usage(&alice, 950);
        assert_eq!(
            (
                usage.stored_bytes,
                usage.reserved_bytes,
                usage.total_bytes()
            ),
            (100, 0, 100)
        );
        // An upload that finished after its slot expired still counts once.
        ledger.apply(&UsageEvent::Stored {
            owner: alice.clone(),
            token: SlotToken::from_random([9; 16]),
            size_bytes: 10,
        });
        assert_eq!(ledger.usage(&alice, 2_000).stored_bytes, 110);
        ledger.apply(&UsageEvent::Removed {
            owner: alice.clone(),
            token: r.token,
            size_bytes: 100,
        });
        assert_eq!(ledger.usage(&alice, 2_000).stored_bytes, 10);
        ledger.apply(&UsageEvent::Removed {
            owner: alice.clone(),
            token: SlotToken::from_random([9; 16]),
            size_bytes: 10,
        });
        assert!(
            ledger.owners.is_empty(),
            "an owner with nothing left is forgotten"
        );
    }

    #[test]
    fn reserve_drops_expired_reservations() {
        let mut ledger = MemoryLedger::new();
        let alice = jid("alice@example.test");
        for n in 0..10 {
            ledger.reserve(&alice, reservation(n, 1, 100), 50);
        }
        ledger.reserve(&alice, reservation(10, 1, 300), 200);
        assert_eq!(ledger.owners[&alice].reservations.len(), 1);
    }
}
