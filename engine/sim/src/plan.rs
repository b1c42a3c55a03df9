//! The social plan of a run, drawn from its seed before anything happens: who is whose
//! contact (a symmetric graph the clients build through the router with subscribe /
//! subscribed both ways), and which clients are members of which room.
//!
//! What it does: draws the plan; answers "is B a contact of A" and "who belongs to room R".
//! What it does not do: talk XMPP (the clients do, see `social`) or judge anything.
//!
//! Invariants: the contact graph is symmetric and has no self-loops; every room has at least
//! two members and no member twice; everything is drawn from the run's PRNG, so a plan is a
//! pure function of (config, seed).

use std::collections::BTreeSet;

use crate::rng::Rng;

/// Chance (per mille) that a member never rejoins its room after setup.
const ABSENT_PER_MILLE: u64 = 250;

/// Who knows whom, and who belongs where.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// `contacts[a]`: the clients `a` ends up with a `both` subscription with.
    pub contacts: Vec<BTreeSet<usize>>,
    /// `rooms[r]`: the members of room `r`, in increasing order.
    pub rooms: Vec<Vec<usize>>,
    /// (room, member) pairs where the member never rejoins after setup: it gets the room's
    /// messages from its offline queue only.
    pub absent: BTreeSet<(usize, usize)>,
}

impl Plan {
    /// Each client picks `contacts` others at random (the graph is the union of the picks, so
    /// a client may end up with more); `groups` rooms of `group_size` random members each.
    pub fn draw(
        rng: &mut Rng,
        clients: usize,
        contacts: usize,
        groups: usize,
        group_size: usize,
    ) -> Plan {
        let mut plan = Plan {
            contacts: vec![BTreeSet::new(); clients],
            rooms: Vec::with_capacity(groups),
            absent: BTreeSet::new(),
        };
        let others = clients.saturating_sub(1);
        for a in 0..clients {
            for b in pick(rng, clients, Some(a), contacts.min(others)) {
                plan.contacts[a].insert(b);
                plan.contacts[b].insert(a);
            }
        }
        let size = group_size.clamp(2.min(clients), clients);
        for _ in 0..groups {
            let mut members: Vec<usize> = pick(rng, clients, None, size).into_iter().collect();
            members.sort_unstable();
            let room = plan.rooms.len();
            for &member in &members {
                if rng.chance(ABSENT_PER_MILLE) {
                    plan.absent.insert((room, member));
                }
            }
            plan.rooms.push(members);
        }
        plan
    }

    pub fn is_contact(&self, a: usize, b: usize) -> bool {
        self.contacts.get(a).is_some_and(|set| set.contains(&b))
    }

    /// The rooms `client` is a member of.
    pub fn rooms_of(&self, client: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.rooms.len()).filter(move |&r| self.rooms[r].binary_search(&client).is_ok())
    }
}

/// `count` distinct indices below `len`, never `except`.
fn pick(rng: &mut Rng, len: usize, except: Option<usize>, count: usize) -> BTreeSet<usize> {
    let mut chosen = BTreeSet::new();
    let available = len - usize::from(except.is_some_and(|e| e < len));
    while chosen.len() < count.min(available) {
        let n = rng.index(len);
        if Some(n) != except {
            chosen.insert(n);
        }
    }
    chosen
}

/// The bare JID's local part of room `room`.
pub fn room_name(room: usize) -> String {
    format!("g{room}")
}

/// Parses a room name written by `room_name`.
pub fn parse_room(name: &str) -> Option<usize> {
    name.strip_prefix('g')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_symmetric_and_rooms_well_formed() {
        let mut rng = Rng::new(3);
        let plan = Plan::draw(&mut rng, 9, 2, 4, 5);
        for (a, set) in plan.contacts.iter().enumerate() {
            assert!(set.len() >= 2 && !set.contains(&a));
            for &b in set {
                assert!(plan.is_contact(b, a));
            }
        }
        assert_eq!(plan.rooms.len(), 4);
        for members in &plan.rooms {
            assert_eq!(members.len(), 5);
            assert!(members.windows(2).all(|w| w[0] < w[1]));
        }
        let member = plan.rooms[0][0];
        assert!(plan.rooms_of(member).any(|r| r == 0));
        assert_eq!(parse_room(&room_name(12)), Some(12));
    }

    #[test]
    fn small_worlds_do_not_loop_forever() {
        let mut rng = Rng::new(1);
        let plan = Plan::draw(&mut rng, 2, 5, 1, 9);
        assert_eq!(plan.contacts[0].len(), 1);
        assert_eq!(plan.rooms[0], vec![0, 1]);
    }
}
