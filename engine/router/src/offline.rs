//! Store-and-forward (XEP-0160 behaviour on the store): every normal or chat message for a
//! local user is put in the home shard's store before it is written anywhere; deleted once
//! delivered for sure; flushed with a XEP-0203 delay stamp when the user becomes available;
//! and acknowledged to its sender only once the store committed it.
//!
//! What it does: `Routes::store_and_deliver` (put, write, settle the sender's ack),
//! `Routes::flush` (offline queue -> one session, in order, skipping what is in flight to an
//! attached session), the commit waiters and `Router::on_committed`, and the store accessors
//! the shard loop uses for its group commit.
//!
//! What it does not do: write the log (the shard loop calls `begin_commit`, writes, then
//! `finish_commit` and `on_committed`; `commit_with` does all of it synchronously), or count
//! XEP-0198 acks (see `sm`, `stream_mgmt`).
//!
//! Invariants:
//! - a stored message is deleted (`Store::ack`) only when written to a session without stream
//!   management (nothing better can be known) or acknowledged by a client's `<a h>`;
//! - a sender's stanza is reported handled only once `is_committed` holds for the store's
//!   `pending_seq` read after its put, so nothing is acknowledged that was not stored;
//! - waiters are queued in non-decreasing seq order (pending_seq never goes back), so a
//!   commit releases a prefix of them; there are at most as many as messages stored since the
//!   last successful commit (one per loop turn normally; a failing disk refuses new ones).

use rookery_store::{CommitBatch, LogWriter, MsgId, Store, StoreError};

use crate::delay;
use crate::effects::{AckRef, ConnKey, Effects, GatherRef, Mail, StanzaType};
use crate::replies::StanzaError;
use crate::router::Router;
use crate::routing::{Envelope, Handled, Routes};
use crate::sm::Unacked;

/// Someone waiting for the store to commit `seq`.
#[derive(Clone, Debug)]
pub(crate) struct Waiter {
    pub seq: u64,
    pub release: Release,
}

/// Whom a commit releases.
#[derive(Clone, Debug)]
pub(crate) enum Release {
    /// A sender's stanza (XEP-0198): its handled count advances.
    Sender(AckRef),
    /// This shard's part of a fan-out: the shard that started it hears `Gathered` (with the
    /// copies that were refused).
    Gather { gather: GatherRef, refused: u32 },
    /// An answer that promises a stored change (a roster set's result): written to the
    /// session in `slot`, if it is still conn `key`, once the change is committed.
    Reply {
        slot: u32,
        key: ConnKey,
        bytes: Box<[u8]>,
    },
}

/// What writing a stored message to one session did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Written to a session without stream management: delete it.
    Written,
    /// Written to a stream-managed session: deleted when its client acknowledges it.
    InFlight,
    /// The session's unacked queue is full: it stays in the store for later.
    HeldBack,
    /// No such session.
    Gone,
}

impl Routes<'_> {
    /// Stores a normal or chat message for the recipient's bare JID, then writes it to the
    /// session in `target` (a full JID's) or to every available resource with a non-negative
    /// priority. A refusal of the store bounces `resource-constraint` to the sender.
    pub fn store_and_deliver(
        &mut self,
        envelope: &Envelope<'_>,
        target: Option<u32>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        if !self.store_copy(envelope, target, fx) {
            // Quota, unavailable (a failed log write), or a record too large: all wait-type.
            self.bounce(envelope, StanzaError::ResourceConstraint, fx);
            return Handled::Now;
        }
        self.settle(ack.map(Release::Sender))
    }

    /// Stores one copy for `envelope.to`'s bare JID and writes it as `store_and_deliver` does;
    /// false (counted, nothing else done) when the store refuses it.
    pub fn store_copy(
        &mut self,
        envelope: &Envelope<'_>,
        target: Option<u32>,
        fx: &mut impl Effects,
    ) -> bool {
        let (to, from) = (envelope.to, envelope.from);
        let put = self
            .store
            .put(to.bare_str(), from.as_str(), self.wall_ms, envelope.stanza);
        let Ok(id) = put else {
            self.stats.store_refusals += 1;
            return false;
        };
        self.stats.messages_stored += 1;
        let mut written = false;
        if let Some(slot) = target {
            written = self.deliver_stored(slot, id, envelope.stanza, fx) == Delivery::Written;
        } else {
            let (conns, directory) = (self.conns, self.directory);
            for &slot in directory.slots(to.bare_str()) {
                let Some(conn) = conns.get(slot) else {
                    continue;
                };
                if conn.available && conn.priority >= 0 {
                    let delivery = self.deliver_stored(slot, id, envelope.stanza, fx);
                    written |= delivery == Delivery::Written;
                }
            }
        }
        if written {
            // Acknowledging a live id cannot fail.
            let _ = self.store.ack(id);
        }
        true
    }

    /// Handled now when nothing waits for a commit, else queued until `on_committed`.
    pub fn settle(&mut self, release: Option<Release>) -> Handled {
        let Some(release) = release else {
            return Handled::Now;
        };
        let seq = self.store.pending_seq();
        if self.store.is_committed(seq) {
            return Handled::Now;
        }
        self.waiters.push_back(Waiter { seq, release });
        Handled::Later
    }

    /// Writes stored message `id` (as `bytes`) to the session in `slot`.
    fn deliver_stored(
        &mut self,
        slot: u32,
        id: MsgId,
        bytes: &[u8],
        fx: &mut impl Effects,
    ) -> Delivery {
        let conns = self.conns;
        let Some(conn) = conns.get(slot) else {
            return Delivery::Gone;
        };
        let session = conn
            .sm
            .and_then(|token| Some((token, self.sm.get_mut(token)?)));
        let Some((token, session)) = session else {
            fx.send(conn.key, bytes);
            self.stats.stanzas_out += 1;
            return Delivery::Written;
        };
        if !session.room_for_stored() {
            session.backlog = true;
            return Delivery::HeldBack;
        }
        fx.send(conn.key, bytes);
        self.stats.stanzas_out += 1;
        let request_now = session.push_unacked(Unacked::Stored(id));
        if self.sm.after_send(token, request_now, self.now_ms) {
            fx.send(conn.key, crate::replies::SM_REQUEST);
        }
        Delivery::InFlight
    }

    /// Delivers the stored messages of the session's bare JID that are not in flight to an
    /// attached session, oldest first, each with a delay stamp; stops when its queue is full.
    pub fn flush(&mut self, slot: u32, fx: &mut impl Effects) {
        let conns = self.conns;
        let Some(bare) = conns
            .get(slot)
            .and_then(|c| c.jid.as_ref())
            .map(|j| j.bare_str())
        else {
            return;
        };
        if let Some(session) = conns
            .get(slot)
            .and_then(|c| c.sm)
            .and_then(|t| self.sm.get_mut(t))
        {
            session.backlog = false;
        }
        let in_flight = self.in_flight(bare);
        let queued = self.store.queue(bare).map(|m| m.id);
        let ids: Vec<MsgId> = queued
            .filter(|id| in_flight.binary_search(id).is_err())
            .collect();
        let mut delayed = std::mem::take(self.delayed);
        for id in ids {
            let Some(msg) = self.store.get(id) else {
                continue;
            };
            delayed.clear();
            delay::with_delay(
                &msg.stanza,
                self.domain.as_str(),
                msg.stamp_ms,
                &mut delayed,
            );
            match self.deliver_stored(slot, id, &delayed, fx) {
                Delivery::Written => {
                    let _ = self.store.ack(id);
                    self.stats.offline_delivered += 1;
                }
                Delivery::InFlight => self.stats.offline_delivered += 1,
                Delivery::HeldBack | Delivery::Gone => break,
            }
        }
        *self.delayed = delayed;
    }

    /// Ids in flight to the attached sessions of `bare`, sorted.
    fn in_flight(&self, bare: &str) -> Vec<MsgId> {
        let mut ids = Vec::new();
        for &slot in self.directory.slots(bare) {
            let token = self.conns.get(slot).and_then(|c| c.sm);
            if let Some(session) = token.and_then(|t| self.sm.get(t)) {
                ids.extend(session.in_flight());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Writes again, on a resumed stream, what the session had not acknowledged: stored
    /// messages still in the store (with a delay stamp), and the kept bytes of the rest.
    pub fn resend(
        &mut self,
        slot: u32,
        entries: impl IntoIterator<Item = Unacked>,
        fx: &mut impl Effects,
    ) {
        let conns = self.conns;
        if let Some(session) = conns
            .get(slot)
            .and_then(|c| c.sm)
            .and_then(|t| self.sm.get_mut(t))
        {
            // The queue was emptied for the resend: whatever was held back may follow it.
            session.backlog = false;
        }
        let mut delayed = std::mem::take(self.delayed);
        for entry in entries {
            match entry {
                Unacked::Stored(id) => {
                    let Some(msg) = self.store.get(id) else {
                        // Acknowledged through another session meanwhile.
                        continue;
                    };
                    delayed.clear();
                    let domain = self.domain.as_str();
                    delay::with_delay(&msg.stanza, domain, msg.stamp_ms, &mut delayed);
                    self.deliver_stored(slot, id, &delayed, fx);
                }
                Unacked::Bytes(bytes) => self.send(slot, &bytes, fx),
            }
        }
        *self.delayed = delayed;
    }
}

/// Whether a message type is stored (only normal and chat, RFC 6121 8.5.2.1.1 / XEP-0160).
pub(crate) fn is_stored_type(ty: StanzaType) -> bool {
    matches!(ty, StanzaType::Normal | StanzaType::Chat)
}

impl Router {
    /// The shard's store, read-only (stats, queues).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The shard's store, for the loop's group commit: `begin_commit`, write the batch, then
    /// `finish_commit` with the result; on success call `on_committed` with the seq it
    /// returned. Also for `compact` when idle. Do not `put` or `ack` through it.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The store committed everything up to `committed_seq` (what `finish_commit` returned):
    /// senders waiting for it are told (their XEP-0198 handled count advances, here or by
    /// `Mail::Committed` to their shard).
    pub fn on_committed(&mut self, committed_seq: u64, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        let committed = committed_seq.min(self.store.committed_seq());
        while self.waiters.front().is_some_and(|w| w.seq <= committed) {
            let Some(waiter) = self.waiters.pop_front() else {
                break;
            };
            match waiter.release {
                Release::Sender(ack) => self.release(ack, fx),
                Release::Gather { gather, refused } => self.gathered(gather, refused, fx),
                Release::Reply { slot, key, bytes } => {
                    if self.conns.get(slot).is_some_and(|c| c.key == key) {
                        let (mut routes, _) = self.routes();
                        routes.send(slot, &bytes, fx);
                    }
                }
            }
        }
        self.after_call(fx);
    }

    /// One synchronous group commit (poll backend, tests): `begin_commit`, write with
    /// `writer`, `finish_commit`, and `on_committed` on success. `Ok(None)`: nothing to write.
    /// An `Err` is the store's (log it: it names cause and fix); the store is unavailable
    /// until `on_tick` finds a retry due and a later call succeeds.
    pub fn commit_with(
        &mut self,
        writer: &mut impl LogWriter,
        now_ms: u64,
        fx: &mut impl Effects,
    ) -> Result<Option<u64>, StoreError> {
        let Some(seq) = self.store.commit(writer)? else {
            return Ok(None);
        };
        self.on_committed(seq, now_ms, fx);
        Ok(Some(seq))
    }

    /// Hands a batch from `store_mut().begin_commit()` back with its write result, and
    /// releases the senders it commits: `finish_commit` + `on_committed` in one call.
    pub fn finish_commit(
        &mut self,
        batch: CommitBatch,
        result: std::io::Result<()>,
        now_ms: u64,
        fx: &mut impl Effects,
    ) -> Result<u64, StoreError> {
        let seq = self.store.finish_commit(batch, result)?;
        self.on_committed(seq, now_ms, fx);
        Ok(seq)
    }

    /// Tells the sender of a handled stanza: here, or by mail to its shard.
    pub(crate) fn release(&mut self, ack: AckRef, fx: &mut impl Effects) {
        if ack.shard == self.shard {
            self.sm.mark_handled(ack.session, ack.stanza, fx);
        } else {
            fx.mail(ack.shard, Mail::Committed(ack));
            self.stats.mail_out += 1;
        }
    }
}
