//! The world's own checkers: bounds after every event (checker 4) and the end-of-run checks
//! (liveness, acknowledged chats delivered, presence owed to stable clients).
//!
//! What it does not do: per-delivery rules (see `ledger`, `presence`, `social`).
//!
//! Invariants: checks only read the world (the presence end check counts what it proved).

use rookery_proto::Jid;
use rookery_router::Placement;
use rookery_testkit::TEST_DOMAIN;

use crate::ledger::Violation;
use crate::world::{KeyState, Step, World};

impl World {
    /// Checker 4, after every event: store queues, router conns vs. the network's view.
    pub(crate) fn check_bounds(&self) -> Step {
        for (shard, s) in self.shards.iter().enumerate() {
            let store = s.router().store();
            if let Some(owner) = store
                .owners()
                .find(|owner| store.queue_len(owner) > self.cfg.offline_max)
            {
                let detail = format!("shard {shard}: queue of {owner} over offline_max");
                return Err(Violation::new("bounded", detail));
            }
            let open = self
                .keys
                .values()
                .filter(|k| usize::from(k.shard) == shard)
                .filter(|k| matches!(k.state, KeyState::Open | KeyState::ClosedByRouter))
                .count() as u64;
            let stats = s.router().stats();
            if stats.conns > open || stats.detached_sessions > self.clients.len() as u64 {
                let detail = format!("shard {shard}: {stats:?} with {open} open conns");
                return Err(Violation::new("bounded", detail));
            }
        }
        Ok(())
    }

    /// After the quiet period: everyone is online with nothing unacknowledged, every
    /// acknowledged chat was delivered, and stable clients got their contacts' presence.
    pub(crate) fn check_end(&mut self) -> Step {
        for c in &self.clients {
            if !c.is_online() {
                let detail = format!(
                    "client {} still {:?} after the quiet period",
                    c.index, c.phase
                );
                return Err(Violation::new("liveness", detail));
            }
            if c.unacked_len() > 0 {
                let detail = format!(
                    "client {} has {} stanzas unacknowledged after the quiet period",
                    c.index,
                    c.unacked_len()
                );
                return Err(Violation::new("liveness", detail));
            }
        }
        self.ledger.check_acked_delivered()?;
        self.check_presence_end()?;
        let sessions: Vec<u64> = self.clients.iter().map(|c| c.session).collect();
        let shards = self.cfg.shards;
        let homes: Vec<u16> = self
            .clients
            .iter()
            .map(|c| {
                let bare = format!("{}@{TEST_DOMAIN}", c.user);
                match &self.cluster {
                    Some(cluster) => cluster.home(&bare),
                    None => Jid::parse(&bare)
                        .map_or(0, |jid| Placement::local(shards).home(&jid).shard.0),
                }
            })
            .collect();
        self.ledger.groups.check_end(&sessions, &homes)
    }

    /// Presence rules (a) and (b) of `presence` for every client stable to the end.
    fn check_presence_end(&mut self) -> Step {
        let sessions: Vec<u64> = self.clients.iter().map(|c| c.session).collect();
        for client in 0..self.clients.len() {
            let Some(since_ms) = self.stable_since_ms(client) else {
                continue;
            };
            self.stable_clients += 1;
            let session = self.clients[client].session;
            self.ledger
                .presence
                .check_stable(client, session, since_ms, &sessions)?;
        }
        Ok(())
    }

    /// When the client's current conn became a known-available session, if that conn is
    /// still open on both sides (see `presence` for why only these clients are owed presence).
    pub(crate) fn stable_since_ms(&self, client: usize) -> Option<u64> {
        let since_ms = self.clients[client].social.available_since_ms?;
        let net = &self.nets[self.client_net[client]?];
        let open = self
            .keys
            .get(&net.key.0)
            .is_some_and(|k| k.state == KeyState::Open);
        (net.alive && !net.handing_off && open).then_some(since_ms)
    }
}
