//! Flow-controlled delivery of stored messages: how a backlog of any size reaches a session
//! without tripping its output cap, and when a written message may leave the store.
//!
//! Why: a user's offline queue (or a group's catch-up, or what waited while a XEP-0198
//! session was detached) can be far larger than what a conn may queue. So a session with
//! stored messages still to get is *in backlog*: a cursor says which stored messages it has
//! been given; they are written only while the conn's output queue is below an eighth of the
//! driver's cap (and, with XEP-0198, while its unacked window has room), and the
//! rest follows as sends complete (`Router::on_drained`), as `<a h>` arrives, as the store
//! commits, and as log reads return. A session that is caught up gets live stored messages at
//! once, unless its output queue holds half the cap already (a slow reader): then the
//! message stays in the store and the session goes into backlog. Our own backlog never fills
//! the output cap; only live traffic that is not stored can (presence, iq, groupchat).
//!
//! When a stored message is deleted: for a session with XEP-0198, when its client acknowledges
//! it (`sm::elements`); without, when the bytes were handed to the kernel, which the driver
//! tells by `Drained` (the conn's output queue became empty). Never when merely queued.
//!
//! A durable store keeps the stanzas in its log, not in memory (`rookery_store::Body`): the
//! backlog reads them back through the driver (`Effects::read_log`, answered by
//! `Router::on_log_read`), at most [`MAX_READS`] per session at a time, and writes them in
//! order as they return.
//!
//! What it does not do: decide who gets a live message (`routing`, `offline`), or count
//! XEP-0198 acks (`sm`, `sm::elements`).
//!
//! Invariants:
//! - a session's stored messages are written in id order: live ones only while it is caught up
//!   (no cursor, no read in flight), the rest by `fill` from its cursor;
//! - the cursor only advances over messages written to this session, being read for it, or in
//!   flight to another session of the same user;
//! - a delivery entry belongs to one conn (its key); it is dropped with the conn, and a read
//!   that returns for a conn that is gone is ignored.

use std::collections::VecDeque;

use crate::maps::{HashState, Map};

use rookery_store::{Body, MsgId, Queued};

use crate::effects::{ConnKey, Effects};
use crate::home::delay;
use crate::home::sessions::Session;
use crate::home::sm::Unacked;
use crate::home::Home;
use crate::stream::conn::ConnSlab;
use crate::stream::conn::Phase;

/// A backlog is written while the conn's output queue holds less than the cap divided by
/// this; the rest of the cap is for live traffic.
pub(crate) const BACKLOG_LOW_DIVISOR: usize = 8;
/// A live stored message to a caught-up session waits in the store when the conn's output
/// queue holds more than the cap divided by this (a slow reader); the session goes into
/// backlog.
const LIVE_HIGH_DIVISOR: usize = 2;
/// Log reads in flight for one session's backlog.
pub const MAX_READS: usize = 64;
/// Bytes a XEP-0203 delay element adds to a stanza, for the room estimate.
const DELAY_BYTES: usize = 128;

/// The delivery state of every session that has some.
#[derive(Debug)]
pub(crate) struct Deliveries {
    by_slot: Map<u32, Delivery>,
    reads: Map<u64, ReadFor>,
    next_tag: u64,
    /// Sessions to fill at the end of the current call.
    due: Vec<u32>,
    /// Sessions whose next stored message is not committed yet: filled after the commit.
    after_commit: Vec<u32>,
    /// Sessions whose login probes are not all sent: the contact to go on after (see
    /// `presence::PROBE_CHUNK`).
    probes: Vec<(u32, ConnKey, Box<str>)>,
}

impl Deliveries {
    pub fn new(hash: HashState) -> Deliveries {
        Deliveries {
            by_slot: hash.map(),
            reads: hash.map(),
            next_tag: 0,
            due: Vec::new(),
            after_commit: Vec::new(),
            probes: Vec::new(),
        }
    }
}

/// One session's delivery state; exists only while it has something to do.
#[derive(Debug)]
struct Delivery {
    key: ConnKey,
    /// In backlog: every stored message with an id up to this one was given to this session
    /// (written, being read, or in flight to another session). `None`: caught up.
    cursor: Option<MsgId>,
    /// Without XEP-0198: stored messages written and not yet handed to the kernel.
    unconfirmed: Vec<MsgId>,
    /// Reads in flight, in id order; written as the front ones return.
    reads: VecDeque<Read>,
    /// Replies of ours too big for what the conn still holds (a large roster): written when
    /// it drains, before its backlog continues. At most [`MAX_PARKED`].
    parked: Vec<Box<[u8]>>,
}

/// Large replies parked per session; a client asking for more before reading is closed as a
/// slow consumer by the driver's cap instead.
const MAX_PARKED: usize = 4;

#[derive(Debug)]
struct Read {
    id: MsgId,
    /// The tag its `Effects::read_log` carried.
    tag: u64,
    /// `None` while in flight; the record's bytes (or the errno) once returned.
    result: Option<Result<Vec<u8>, i32>>,
}

#[derive(Debug, Clone, Copy)]
struct ReadFor {
    slot: u32,
    key: ConnKey,
}

impl Delivery {
    fn new(key: ConnKey) -> Delivery {
        Delivery {
            key,
            cursor: None,
            unconfirmed: Vec::new(),
            reads: VecDeque::new(),
            parked: Vec::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.cursor.is_none()
            && self.unconfirmed.is_empty()
            && self.reads.is_empty()
            && self.parked.is_empty()
    }
}

impl Deliveries {
    fn get_mut(&mut self, slot: u32, key: ConnKey) -> Option<&mut Delivery> {
        self.by_slot.get_mut(&slot).filter(|d| d.key == key)
    }

    fn entry(&mut self, slot: u32, key: ConnKey) -> &mut Delivery {
        let delivery = self
            .by_slot
            .entry(slot)
            .or_insert_with(|| Delivery::new(key));
        if delivery.key != key {
            // A stale entry of a conn that reused the slot: start afresh.
            *delivery = Delivery::new(key);
        }
        delivery
    }

    /// Whether the session in `slot` (conn `key`) has stored messages still to get in order.
    pub fn in_backlog(&self, slot: u32, key: ConnKey) -> bool {
        self.by_slot
            .get(&slot)
            .is_some_and(|d| d.key == key && (d.cursor.is_some() || !d.reads.is_empty()))
    }

    /// Puts the session into backlog from just after `after` (or keeps an earlier cursor)
    /// and fills it at the end of the current call.
    pub fn start_backlog(&mut self, slot: u32, key: ConnKey, after: MsgId) {
        let delivery = self.entry(slot, key);
        delivery.cursor = Some(delivery.cursor.map_or(after, |c| c.min(after)));
        self.due.push(slot);
    }

    /// Fills the session at the end of the current call, if it is in backlog.
    pub fn wake(&mut self, slot: u32, key: ConnKey) {
        if self.in_backlog(slot, key) {
            self.due.push(slot);
        }
    }

    /// Remembers a stored message written to a session without XEP-0198.
    pub fn written_unconfirmed(&mut self, slot: u32, key: ConnKey, id: MsgId) {
        self.entry(slot, key).unconfirmed.push(id);
    }

    /// The stored messages handed to the kernel since the last call (the conn drained).
    pub fn take_unconfirmed(&mut self, slot: u32, key: ConnKey) -> Vec<MsgId> {
        let Some(delivery) = self.get_mut(slot, key) else {
            return Vec::new();
        };
        let ids = std::mem::take(&mut delivery.unconfirmed);
        self.prune(slot);
        ids
    }

    /// Forgets the session in `slot` (its conn is gone): what it had not confirmed stays in
    /// the store; reads in flight for it are ignored when they return; its probes stop.
    pub fn remove(&mut self, slot: u32) {
        self.by_slot.remove(&slot);
        self.probes.retain(|(s, _, _)| *s != slot);
    }

    /// The sessions due for a fill, taken.
    pub fn take_due(&mut self) -> Vec<u32> {
        let mut due = std::mem::take(&mut self.due);
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Whether a session's backlog waits for the next commit (its next stored message is
    /// not in the log yet).
    pub fn awaits_commit(&self) -> bool {
        !self.after_commit.is_empty()
    }

    /// The commit happened: sessions waiting for it are due.
    pub fn committed(&mut self) {
        let waiting = std::mem::take(&mut self.after_commit);
        self.due.extend(waiting);
    }

    /// Registers a read of message `id` for the session in `slot`, in its order; returns the
    /// tag for `Effects::read_log`.
    fn read_issued(&mut self, slot: u32, key: ConnKey, id: MsgId) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.reads.insert(tag, ReadFor { slot, key });
        self.entry(slot, key).reads.push_back(Read {
            id,
            tag,
            result: None,
        });
        tag
    }

    /// Remembers that the session's login probes go on after contact `after`.
    pub fn probe_later(&mut self, slot: u32, key: ConnKey, after: Box<str>) {
        self.probes.retain(|(s, _, _)| *s != slot);
        self.probes.push((slot, key, after));
    }

    /// The sessions whose probes may go on now (`ready` says whether a conn has room), taken.
    pub fn take_probes(
        &mut self,
        mut ready: impl FnMut(ConnKey) -> bool,
    ) -> Vec<(u32, ConnKey, Box<str>)> {
        if self.probes.is_empty() {
            return Vec::new();
        }
        let (go, wait) = std::mem::take(&mut self.probes)
            .into_iter()
            .partition(|(_, key, _)| ready(*key));
        self.probes = wait;
        go
    }

    /// Ids in flight to this user's other sessions without XEP-0198 (written, unconfirmed).
    fn unconfirmed_of(&self, slot: u32) -> impl Iterator<Item = MsgId> + '_ {
        self.by_slot
            .get(&slot)
            .into_iter()
            .flat_map(|d| d.unconfirmed.iter().copied())
    }

    /// Sessions in backlog (for the metrics).
    pub fn backlogs(&self) -> usize {
        self.by_slot.values().filter(|d| d.cursor.is_some()).count()
    }

    /// Reads in flight, all sessions.
    pub fn reads_in_flight(&self) -> usize {
        self.reads.len()
    }

    fn prune(&mut self, slot: u32) {
        if self.by_slot.get(&slot).is_some_and(Delivery::is_idle) {
            self.by_slot.remove(&slot);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u32, Delivery)>() + 1;
        let own: usize = self
            .by_slot
            .values()
            .map(|d| d.unconfirmed.capacity() * 8 + d.reads.capacity() * 40)
            .sum();
        self.by_slot.capacity() * entry + self.reads.capacity() * 32 + own
    }
}

/// What writing one stored message to one session did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written (deleted once confirmed or acknowledged).
    Yes,
    /// Not written: it waits in the store for the session's backlog.
    HeldBack,
    /// No such session.
    Gone,
}

impl Home {
    /// Writes stored message `id` (`bytes`, as it goes on the wire) to the session in `slot`
    /// as it arrives: only if the session is caught up and has room, else the session goes
    /// into backlog and the message waits in the store.
    pub fn write_live(
        &mut self,
        slot: u32,
        id: MsgId,
        bytes: &[u8],
        fx: &mut impl Effects,
    ) -> Written {
        let Some(conn) = self.sessions.get(slot) else {
            return Written::Gone;
        };
        let key = conn.key;
        if self.deliveries.in_backlog(slot, key) {
            return Written::HeldBack;
        }
        let high = self.max_output_bytes / LIVE_HIGH_DIVISOR;
        let mut full = fx.queued_bytes(key) + bytes.len() > high;
        if let Some(session) = conn.sm().and_then(|token| self.sm.get_mut(token)) {
            if session.room_for_stored(self.sm_window_bytes) < bytes.len() {
                full = true;
                if session.request_for_window() {
                    fx.send(key, crate::replies::SM_REQUEST);
                }
            }
        }
        if full {
            let before = MsgId(id.0.saturating_sub(1));
            self.deliveries.start_backlog(slot, key, before);
            self.stats.backlogs_started += 1;
            return Written::HeldBack;
        }
        self.write_stored(slot, id, bytes, fx);
        Written::Yes
    }

    /// Writes stored message `id` to the session in `slot`, counted for XEP-0198 (deleted on
    /// its ack) or remembered until the conn drains (deleted then).
    fn write_stored(&mut self, slot: u32, id: MsgId, bytes: &[u8], fx: &mut impl Effects) {
        // Urgent for an inactive session (XEP-0352): what was held goes first.
        self.flush_held(slot, fx);
        let Some(conn) = self.sessions.get(slot) else {
            return;
        };
        fx.send(conn.key, bytes);
        self.stats.stanzas_out += 1;
        let Some((token, session)) = conn
            .sm()
            .and_then(|token| Some((token, self.sm.get_mut(token)?)))
        else {
            self.deliveries.written_unconfirmed(slot, conn.key, id);
            return;
        };
        // Fits: a stanza is bounded by the framer's limit plus a delay stamp.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let request_now = session.push_unacked(Unacked::Stored { id, len });
        if self.sm.after_send(token, request_now, self.now_ms) {
            fx.send(conn.key, crate::replies::SM_REQUEST);
        }
    }

    /// Writes a reply of ours that may be larger than the conn can still take (a big roster):
    /// at once when it fits, or when nothing is queued (the driver takes one write of any size
    /// into an empty queue), else parked until the conn drains.
    pub fn send_large(&mut self, conns: &ConnSlab, slot: u32, bytes: &[u8], fx: &mut impl Effects) {
        let Some(key) = conns.get(slot).map(|c| c.key) else {
            return;
        };
        let queued = fx.queued_bytes(key);
        let fits = queued == 0 || queued + bytes.len() <= self.max_output_bytes;
        if fits {
            return self.send(slot, bytes, fx);
        }
        let delivery = self.deliveries.entry(slot, key);
        if delivery.parked.len() < MAX_PARKED {
            delivery.parked.push(bytes.into());
        } else {
            // A client asking again and again without reading: the cap decides.
            self.send(slot, bytes, fx);
        }
    }

    /// The conn of the session in `slot` handed every queued byte to the kernel: the stored
    /// messages written to it are delivered (deleted), parked replies go out, and its backlog
    /// continues.
    pub fn drained(&mut self, conns: &ConnSlab, slot: u32, fx: &mut impl Effects) {
        let Some(conn) = conns.get(slot) else {
            return;
        };
        let Some(owner) = conn.jid.as_ref() else {
            return;
        };
        for id in self.deliveries.take_unconfirmed(slot, conn.key) {
            // An id acknowledged through another session meanwhile is simply gone.
            let _ = self.store.ack(owner.bare_str(), id);
        }
        let parked = match self.deliveries.get_mut(slot, conn.key) {
            Some(delivery) => std::mem::take(&mut delivery.parked),
            None => Vec::new(),
        };
        if let Some((first, rest)) = parked.split_first() {
            // One now (the queue is empty), the rest at the next drain.
            self.send(slot, first, fx);
            if let Some(delivery) = self.deliveries.get_mut(slot, conn.key) {
                delivery.parked = rest.to_vec();
            }
            self.deliveries.prune(slot);
            return;
        }
        self.deliveries.prune(slot);
        self.fill(conns, slot, fx);
    }

    /// Writes as much of the session's backlog as it has room for, in order: stored messages
    /// after its cursor, with a delay stamp, read back from the log when not in memory. Ends
    /// the backlog when nothing is left.
    pub fn fill(&mut self, conns: &ConnSlab, slot: u32, fx: &mut impl Effects) {
        let Some(conn) = conns.get(slot) else {
            return;
        };
        let Some(owner) = conn.jid.as_ref() else {
            return;
        };
        let session = self.sessions.get(slot);
        let reachable = conn.phase == Phase::Bound && session.is_some_and(Session::reachable);
        let key = conn.key;
        let Some(delivery) = self.deliveries.get_mut(slot, key) else {
            return;
        };
        let (Some(mut cursor), true, true) =
            (delivery.cursor, delivery.reads.is_empty(), reachable)
        else {
            // Not in backlog, reads still to return in order, or (until its next presence)
            // not taking stored messages.
            return;
        };
        let mut room = self.backlog_room(slot, fx);
        let elsewhere = self.in_flight_elsewhere(owner.bare_str(), slot);
        let mut next: Vec<Queued> = Vec::new();
        let mut exhausted = true;
        for msg in self.store.queue_after(owner.bare_str(), cursor) {
            if elsewhere.binary_search(&msg.id).is_ok() {
                continue;
            }
            if room == 0 || next.len() >= MAX_READS {
                exhausted = false;
                break;
            }
            room = room.saturating_sub(msg.stanza_len() + DELAY_BYTES);
            next.push(*msg);
        }
        for msg in next {
            match self.store.body(&msg) {
                Body::Here(stanza) => {
                    let mut stamped = std::mem::take(&mut self.delayed);
                    stamp_delay(&mut stamped, stanza, self.domain.as_str(), msg.stamp_ms);
                    self.write_stored(slot, msg.id, &stamped, fx);
                    self.delayed = stamped;
                    self.stats.offline_delivered += 1;
                }
                Body::InLog(span) => {
                    let tag = self.deliveries.read_issued(slot, key, msg.id);
                    fx.read_log(tag, span);
                    self.stats.log_reads += 1;
                }
                Body::Pending => {
                    self.deliveries.after_commit.push(slot);
                    exhausted = false;
                    break;
                }
            }
            cursor = msg.id;
        }
        let Some(delivery) = self.deliveries.get_mut(slot, key) else {
            return;
        };
        delivery.cursor = Some(cursor);
        if exhausted && delivery.reads.is_empty() {
            // Caught up: live stored messages go straight out again.
            delivery.cursor = None;
            self.deliveries.prune(slot);
        }
    }

    /// A log read for a session's backlog returned (`tag` from `Effects::read_log`): writes,
    /// in order, every returned read at the front of its queue; then the backlog continues.
    pub fn read_returned(
        &mut self,
        conns: &ConnSlab,
        tag: u64,
        result: Result<&[u8], i32>,
        fx: &mut impl Effects,
    ) {
        let Some(ReadFor { slot, key }) = self.deliveries.reads.remove(&tag) else {
            return;
        };
        let Some(delivery) = self.deliveries.get_mut(slot, key) else {
            return; // the conn is gone; its messages stay queued
        };
        if let Some(read) = delivery.reads.iter_mut().find(|r| r.tag == tag) {
            read.result = Some(result.map(<[u8]>::to_vec));
        }
        self.write_returned(conns, slot, key, fx);
    }

    /// Writes the returned reads at the front of the session's queue, in order.
    fn write_returned(&mut self, conns: &ConnSlab, slot: u32, key: ConnKey, fx: &mut impl Effects) {
        let bound = conns.get(slot).filter(|c| c.phase == Phase::Bound);
        let Some(owner) = bound.and_then(|c| c.jid.as_ref()) else {
            return;
        };
        loop {
            let Some(delivery) = self.deliveries.get_mut(slot, key) else {
                return;
            };
            if delivery.reads.front().is_none_or(|r| r.result.is_none()) {
                break;
            }
            let Some(Read {
                id,
                result: Some(result),
                ..
            }) = delivery.reads.pop_front()
            else {
                break;
            };
            let Some(msg) = self.store.get(owner.bare_str(), id).copied() else {
                continue; // acknowledged through another session meanwhile
            };
            let stanza = match &result {
                Ok(record) => self.store.read_back(&msg, record).ok(),
                Err(_) => None,
            };
            let Some(stanza) = stanza else {
                // It stays queued (a later login tries again); the shard logs the count.
                self.stats.log_read_errors += 1;
                continue;
            };
            let mut stamped = std::mem::take(&mut self.delayed);
            stamp_delay(&mut stamped, stanza, self.domain.as_str(), msg.stamp_ms);
            self.write_stored(slot, id, &stamped, fx);
            self.delayed = stamped;
            self.stats.offline_delivered += 1;
        }
        self.fill(conns, slot, fx);
    }

    /// Bytes of stored messages the session in `slot` may be given now: the room below the
    /// output queue's low mark and, with XEP-0198, in its unacked window.
    /// When the XEP-0198 window is what stops it, an `<r/>` goes out (once per stanzas sent
    /// since the last one), so the client's answer reopens it.
    fn backlog_room(&mut self, slot: u32, fx: &mut impl Effects) -> usize {
        let Some(conn) = self.sessions.get(slot) else {
            return 0;
        };
        let low = self.max_output_bytes / BACKLOG_LOW_DIVISOR;
        let output = low.saturating_sub(fx.queued_bytes(conn.key));
        let Some(session) = conn.sm().and_then(|token| self.sm.get_mut(token)) else {
            return output;
        };
        let window = session.room_for_stored(self.sm_window_bytes);
        if window == 0 && session.request_for_window() {
            fx.send(conn.key, crate::replies::SM_REQUEST);
        }
        output.min(window)
    }

    /// Stored ids in flight to the other sessions of `bare` (XEP-0198 unacked, or written and
    /// unconfirmed), sorted: a backlog skips them rather than sending a copy to every device.
    fn in_flight_elsewhere(&self, bare: &str, slot: u32) -> Vec<MsgId> {
        let mut ids = Vec::new();
        for &other in self.directory.slots(bare) {
            if other == slot {
                continue;
            }
            ids.extend(self.deliveries.unconfirmed_of(other));
            let token = self.sessions.get(other).and_then(|s| s.sm());
            if let Some(session) = token.and_then(|t| self.sm.get(t)) {
                ids.extend(session.in_flight());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// `stanza` with a XEP-0203 delay stamp of `stamp_ms` from `domain`, into `out` (cleared).
fn stamp_delay(out: &mut Vec<u8>, stanza: &[u8], domain: &str, stamp_ms: u64) {
    out.clear();
    delay::with_delay(stanza, domain, stamp_ms, out);
}
