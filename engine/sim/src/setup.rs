//! The setup phase: before any fault, every client logs in and builds its planned roster
//! through the router (subscribe / subscribed both ways, see `social`) and joins its rooms
//! once (which makes it a member); then the world waits until nothing is in flight and every
//! store committed, locks the rosters and starts the active phase.
//!
//! Why a fault-free setup: roster changes are not acknowledged to anyone, so a restart may
//! legitimately lose the last ones; with the rosters final and committed before the first
//! fault, every later roster get must return the plan exactly, restarts or not.
//!
//! What it does not do: run when the plan has no contacts and no rooms (the run starts in the
//! active phase, as before rosters existed).
//!
//! Invariants: setup ends only with every client online, its roster as planned, its rooms
//! joined, no mail in a lane, no stanza unacknowledged, no commit pending or in flight; it
//! fails (`setup` violation) if that takes longer than `SETUP_LIMIT_MS`.

use crate::ledger::Violation;
use crate::world::{Step, World, START_MS};

/// Most virtual time the setup may take.
pub const SETUP_LIMIT_MS: u64 = 30_000;
/// Quiet time after the last client is done, for stragglers to land and stores to commit.
const SETTLE_MS: u64 = 300;
/// How long to wait again when the settle period ends with something still in flight.
const RESETTLE_MS: u64 = 50;

impl World {
    /// Called after every event while `setup` is set.
    pub(crate) fn advance_setup(&mut self) -> Step {
        if self.now_ms > START_MS + SETUP_LIMIT_MS {
            let waiting: Vec<usize> = (0..self.clients.len())
                .filter(|&c| !self.client_set_up(c))
                .collect();
            let detail = format!("setup not done after {SETUP_LIMIT_MS}ms; waiting: {waiting:?}");
            return Err(Violation::new("setup", detail));
        }
        match self.settle_until_ms {
            None => {
                if (0..self.clients.len()).all(|c| self.client_set_up(c)) {
                    self.settle_until_ms = Some(self.now_ms + SETTLE_MS);
                }
            }
            Some(until_ms) if self.now_ms >= until_ms => {
                if self.settled() {
                    self.finish_setup();
                } else {
                    self.settle_until_ms = Some(self.now_ms + RESETTLE_MS);
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn client_set_up(&self, client: usize) -> bool {
        let c = &self.clients[client];
        let roster = c.social.contacts.is_empty() || c.social.roster_done();
        c.is_online() && roster && c.rooms_done()
    }

    /// Nothing in flight anywhere: lanes, inboxes, bridges and links, acknowledgements, commits.
    fn settled(&self) -> bool {
        let lanes = self.lanes.values().all(|lane| lane.is_empty());
        let acked = self.clients.iter().all(|c| c.unacked_len() == 0);
        let committed = self.shards.iter().all(|s| {
            let store = s.router().store();
            let post = s.post.borrow();
            let idle = post.inbox.is_empty() && post.posted.is_empty();
            idle && !s.looped.committing() && store.is_committed(store.pending_seq())
        });
        lanes && acked && committed && self.bus.idle()
    }

    fn finish_setup(&mut self) {
        for client in &mut self.clients {
            client.social.locked = true;
        }
        self.ledger.presence.rosters_final(self.now_ms);
        self.setup = false;
        self.setup_ms = self.now_ms - START_MS;
        self.active_from_step = self.counted_steps;
        self.note(|| "SETUP DONE".to_owned());
    }
}
