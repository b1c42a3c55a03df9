//! Store-and-forward (XEP-0160 behaviour on the store): every normal or chat message for a
//! local user is put in the home shard's store before it is written anywhere; deleted once
//! delivered for sure; flushed with a XEP-0203 delay stamp when the user becomes available;
//! and acknowledged to its sender only once the store committed it.
//!
//! What it does: `Home::store_and_deliver` (put, write, settle the sender's ack; a resend
//! the duplicate window (`dedupe`) knows is neither put nor written, and its ack settles on
//! the first copy's commit),
//! `Home::flush` (starts the offline queue's flow-controlled delivery to one session, see
//! `delivery`), the commit waiters and `Router::on_committed`, and the store accessors the
//! shard loop uses for its group commit.
//!
//! What it does not do: write the log (the shard loop calls `begin_commit`, writes, then
//! `finish_commit` and `on_committed`; `commit_with` does all of it synchronously), or count
//! XEP-0198 acks (see `sm`, `sm::elements`).
//!
//! Invariants:
//! - a stored message is deleted (`Store::ack`) only when a session without stream management
//!   handed it to the kernel (its conn drained, see `delivery`) or a client's `<a h>`
//!   acknowledged it;
//! - a sender's stanza is reported handled only once `is_committed` holds for the store's
//!   `pending_seq` read after its put, so nothing is acknowledged that was not stored;
//! - waiters are queued in non-decreasing seq order (pending_seq never goes back), so a
//!   commit releases a prefix of them; there are at most as many as messages stored since the
//!   last successful commit (one per loop turn normally; a failing disk refuses new ones).

use rookery_proto::{Jid, StanzaView};
use rookery_store::{CommitBatch, CompactReport, LogWriter, MsgId, Store, StoreError};

use crate::effects::{ConnKey, Effects, StanzaType};
use crate::home::routing::{Envelope, Handled};
use crate::home::sessions::Session;
use crate::home::sm::Unacked;
use crate::home::Home;
use crate::mail::{AckRef, GatherRef, Mail};
use crate::replies::StanzaError;
use crate::router::Router;
use crate::stream::conn::ConnSlab;

/// Someone waiting for the store to commit `seq`.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub seq: u64,
    pub release: Release,
}

/// Whom a commit releases.
#[derive(Debug)]
pub(crate) enum Release {
    /// A sender's stanza (XEP-0198): its handled count advances.
    Sender(AckRef),
    /// This shard's part of a fan-out: the shard that started it hears `Gathered` (with the
    /// copies that were refused).
    Gather { gather: GatherRef, refused: u32 },
    /// A room's answers to a change it stored (see `groups`): carried out once committed.
    Room(Box<crate::home::groups::RoomAnswers>),
    /// An answer that promises a stored change (a roster set's result): written to the
    /// session in `slot`, if it is still conn `key`, once the change is committed.
    Reply {
        slot: u32,
        key: ConnKey,
        bytes: Box<[u8]>,
    },
}

impl Home {
    /// Stores a normal or chat message for the recipient's bare JID, then writes it to the
    /// session in `target` (a full JID's) or to every available resource with a non-negative
    /// priority. A refusal of the store bounces `resource-constraint` to the sender.
    pub fn store_and_deliver(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        target: Option<u32>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let view = StanzaView::parse(envelope.stanza).ok();
        let id = view.as_ref().and_then(StanzaView::id);
        let (sender, recipient) = (envelope.from.bare_str(), envelope.to.bare_str());
        if let Some(id) = id.as_deref() {
            if let Some(seq) = self.dups.original(sender, recipient, id) {
                // A resend of a message stored here (see `dedupe`): not stored or written
                // again; its sender hears when the first copy is committed.
                self.stats.duplicates_filtered += 1;
                return self.settle_at(seq, ack.map(Release::Sender));
            }
        }
        let unreachable = target.is_none() && !self.has_reachable_session(envelope.to);
        if !self.store_copy(envelope, target, fx) {
            // Quota, unavailable (a failed log write), or a record too large: all wait-type.
            self.bounce(conns, envelope, StanzaError::ResourceConstraint, fx);
            return Handled::Now;
        }
        if let Some(id) = id.as_deref() {
            let seq = self.store.pending_seq();
            self.dups.remember(sender, recipient, id, seq);
        }
        if unreachable {
            // Every session is detached (XEP-0198) or there is none: wake a device (XEP-0357).
            self.push_stored(conns, envelope, fx);
        }
        self.settle(ack.map(Release::Sender))
    }

    /// Stores one copy for `envelope.to`'s bare JID and writes it as `store_and_deliver` does
    /// (flow-controlled, see `delivery`); false (counted, nothing else done) when the store
    /// refuses it. It leaves the store once a session confirmed it, never when only queued.
    pub fn store_copy(
        &mut self,
        envelope: &Envelope<'_>,
        target: Option<u32>,
        fx: &mut impl Effects,
    ) -> bool {
        let (to, from) = (envelope.to, envelope.from);
        let put = self.store.put(
            to.bare_str(),
            from.as_str(),
            self.wall_ms(),
            envelope.stanza,
        );
        let Ok(id) = put else {
            self.stats.store_refusals += 1;
            return false;
        };
        self.stats.messages_stored += 1;
        // A chat state held for an inactive session (XEP-0352) is delivered from there: it
        // leaves the store at once (a chat state is stale by the next login anyway).
        let mut held = false;
        if let Some(slot) = target {
            held = self.csi_hold(slot, envelope.stanza, true, fx);
            if !held {
                self.write_live(slot, id, envelope.stanza, fx);
            }
        } else {
            for index in 0.. {
                let Some(slot) = self.directory.slot_at(to.bare_str(), index) else {
                    break;
                };
                let reachable = self.sessions.get(slot).is_some_and(Session::reachable);
                if reachable && self.csi_hold(slot, envelope.stanza, true, fx) {
                    held = true;
                } else if reachable {
                    self.write_live(slot, id, envelope.stanza, fx);
                }
            }
        }
        if held {
            let _ = self.store.ack(to.bare_str(), id);
        }
        true
    }

    /// Whether some attached session of `to`'s bare JID takes messages live.
    pub fn has_reachable_session(&self, to: &Jid) -> bool {
        let slots = self.directory.slots(to.bare_str()).iter();
        slots
            .filter_map(|&slot| self.sessions.get(slot))
            .any(Session::reachable)
    }

    /// Handled now when nothing waits for a commit, else queued until `on_committed`.
    pub fn settle(&mut self, release: Option<Release>) -> Handled {
        let seq = self.store.pending_seq();
        self.settle_at(seq, release)
    }

    /// Handled now when store seq `seq` is committed, else queued until `on_committed`
    /// commits it (behind the waiters already queued, so their seqs stay non-decreasing).
    pub fn settle_at(&mut self, seq: u64, release: Option<Release>) -> Handled {
        let Some(release) = release else {
            return Handled::Now;
        };
        if self.store.is_committed(seq) {
            return Handled::Now;
        }
        let seq = self.waiters.back().map_or(seq, |last| last.seq.max(seq));
        self.waiters.push_back(Waiter { seq, release });
        Handled::Later
    }

    /// Starts delivering the stored messages of the session's bare JID (its offline queue,
    /// oldest first, with delay stamps) to the session in `slot`, as fast as it takes them
    /// (see `delivery`); what is in flight to its other sessions is skipped.
    pub fn flush(&mut self, conns: &ConnSlab, slot: u32, fx: &mut impl Effects) {
        let Some(key) = conns.get(slot).map(|c| c.key) else {
            return;
        };
        self.deliveries.start_backlog(slot, key, MsgId(0));
        self.fill(conns, slot, fx);
    }

    /// Writes again, on a resumed stream, what the session had not acknowledged: the kept
    /// bytes of what was not stored now, and the stored messages (still in the store, with
    /// delay stamps) through its backlog, as it takes them.
    pub fn resend(
        &mut self,
        conns: &ConnSlab,
        slot: u32,
        entries: impl IntoIterator<Item = Unacked>,
        fx: &mut impl Effects,
    ) {
        for entry in entries {
            if let Unacked::Bytes(bytes) = entry {
                self.send(slot, &bytes, fx);
            }
        }
        let reachable = self.sessions.get(slot).is_some_and(Session::reachable);
        if reachable {
            self.flush(conns, slot, fx);
        }
    }
}

/// Whether a message type is stored (only normal and chat, RFC 6121 8.5.2.1.1 / XEP-0160).
pub(crate) fn is_stored_type(ty: StanzaType) -> bool {
    matches!(ty, StanzaType::Normal | StanzaType::Chat)
}

impl Router {
    /// The shard's store, read-only (stats, queues).
    pub fn store(&self) -> &Store {
        &self.home.store
    }

    /// The store committed everything up to `committed_seq` (what `finish_commit` returned):
    /// senders waiting for it are told (their XEP-0198 handled count advances, here or by
    /// `Mail::Committed` to their shard).
    pub fn on_committed(&mut self, committed_seq: u64, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        let committed = committed_seq.min(self.home.store.committed_seq());
        // Backlogs that stopped at a record not yet written can read it now.
        self.home.deliveries.committed();
        while self
            .home
            .waiters
            .front()
            .is_some_and(|w| w.seq <= committed)
        {
            let Some(waiter) = self.home.waiters.pop_front() else {
                break;
            };
            match waiter.release {
                Release::Sender(ack) => self.release(ack, fx),
                Release::Gather { gather, refused } => self.gathered(gather, refused, fx),
                Release::Room(answers) => self.run_room_answers(*answers, fx),
                Release::Reply { slot, key, bytes } => {
                    if self.conns.get(slot).is_some_and(|c| c.key == key) {
                        self.home.send(slot, &bytes, fx);
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
        let Some(seq) = self.home.store.commit(writer)? else {
            return Ok(None);
        };
        self.on_committed(seq, now_ms, fx);
        Ok(Some(seq))
    }

    /// The records appended since the last batch, as the next group-commit batch to write
    /// (`None`: nothing appended, a batch still in flight, or the store unavailable with no
    /// retry due). Hand it back with `finish_commit`. The shard loop's way to the store's
    /// writes: nothing outside the router writes to the store.
    pub fn begin_commit(&mut self) -> Option<CommitBatch> {
        self.home.store.begin_commit()
    }

    /// Writes the archive's held records (XEP-0313; see `rookery_store::archive`): the shard
    /// calls it before each log write and each turn the log has nothing held.
    pub fn flush_archive(&mut self) {
        if let Some(mam) = &mut self.home.mam {
            // Counted in the archive's write failures; the records stay held for next time.
            let _ = mam.archive.flush();
        }
    }

    /// Whether someone waits for the records appended so far to be committed: a sender's
    /// acknowledgement (XEP-0198), a fan-out's gather, a room's answers, a stored change's
    /// reply, a backlog whose next message is not in the log yet, or a keyed-table change
    /// (rosters, accounts, rooms, profiles: their answers say "stored" at once). The shard
    /// commits at once then; message records nobody waits for may wait a little to share a
    /// write (`--commit-delay-ms`).
    pub fn commit_awaited(&self) -> bool {
        !self.home.waiters.is_empty()
            || self.home.deliveries.awaits_commit()
            || self.home.store.pending_keyed()
    }

    /// Compacts the log if it is due (`None` if not): see `Store::compact`. Call it only with
    /// no batch and no log read in flight (a read's span names a place in the old file).
    pub fn compact_log_if_due(&mut self) -> Option<Result<CompactReport, StoreError>> {
        self.home
            .store
            .compaction_due()
            .then(|| self.home.store.compact())
    }

    /// Hands a batch from `begin_commit()` back with its write result, and
    /// releases the senders it commits: `finish_commit` + `on_committed` in one call.
    pub fn finish_commit(
        &mut self,
        batch: CommitBatch,
        result: std::io::Result<()>,
        now_ms: u64,
        fx: &mut impl Effects,
    ) -> Result<u64, StoreError> {
        let seq = self.home.store.finish_commit(batch, result)?;
        self.on_committed(seq, now_ms, fx);
        Ok(seq)
    }

    /// Tells the sender of a handled stanza: here, or by mail to its shard.
    pub(crate) fn release(&mut self, ack: AckRef, fx: &mut impl Effects) {
        if ack.origin == self.home.location {
            self.home.sm.mark_handled(ack.session, ack.stanza, fx);
        } else {
            fx.mail(ack.origin, Mail::Committed(ack));
            self.home.stats.mail_out += 1;
        }
    }
}
