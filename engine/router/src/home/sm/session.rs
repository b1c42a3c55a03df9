//! XEP-0198 stream management state of one session: counters and queues.
//!
//! What it does: inbound counting (each stanza from the client gets a number; it is *handled*
//! when processing finished and, for a stored message, once its recipient's home shard
//! committed it; `h` is the contiguous handled prefix), the `<r/>` requests waiting for that
//! prefix, outbound counting (the unacked queue, what `<a h>` releases), and the pacing of our
//! own `<r/>`. The table of sessions and the timers are in `sm::table`.
//!
//! A session being resumed is detached (`conn()` is `None`) with `Detached::resuming` naming the
//! new conn:
//! the `<resumed h>` answer waits until every stanza received on the old stream is handled
//! (`all_handled`), so `h` equals `received` and the client resends nothing the server took.
//!
//! Layout, for memory (issue 15: an idle session with XEP-0198 on within 512 B in all): an
//! attached session is 48 B inline in `SmTable`'s slot (the slot's generation included) and
//! owns nothing on the heap when idle; its conn key is a plain field that `detached` being
//! `Some` marks stale, not an `Option` of its own. Its full JID and presence are its conn's while it is
//! attached; only a detached session needs its own, with its deadline and resuming conn, in
//! a `Detached` box (detached sessions are few). The three queues
//! (`outstanding`, `requests`, `unacked`) and their byte sums live in one `Queues` box that
//! exists only while one of them is non-empty: created by the first stanza in flight,
//! dropped by the call that empties the last (an idle session has nothing outstanding,
//! nothing unacked, no request waiting). An emptied box goes to a small per-thread spare
//! pool (a shard is a thread; at most `SPARE_QUEUES` boxes, deques shrunk to
//! `SPARE_CAPACITY`) and the next session with something in flight takes it from there, so
//! a message acknowledged at once costs no allocation for it (testkit's `allocations`). The resumption
//! id is not stored (see `sm::resume_id`): `resumable` says whether there is one.
//!
//! What it does not do: write wire elements (see `sm::elements`, `replies`), touch the store
//! (the caller acks the stored ids the queue hands back) or know conns beyond a key.
//!
//! Invariants:
//! - counters are u64 internally and go on the wire modulo 2^32 (XEP-0198 4);
//! - `queues` is `None` exactly when all three queues are empty (checked after every call
//!   that removes from them: `settle`);
//! - `conn()` is `None` exactly when `detached` is `Some` (which changes only in
//!   `SmTable`'s `detach` and `attach`);
//! - `outstanding` is sorted ascending and holds only numbers <= `received`;
//! - `unacked.len() <= SM_MAX_UNACKED_HARD` and `unacked_bytes` is the sum of the sizes of the
//!   queued stanzas; stored messages are only queued while below `SM_MAX_UNACKED` and the
//!   session's byte window (`room_for_stored`), and only in order (the `delivery` module
//!   holds back the rest in the store).

use std::cell::RefCell;
use std::collections::VecDeque;

use rookery_proto::Jid;
use rookery_store::MsgId;

use crate::effects::ConnKey;

/// Our `<r/>` goes out after this many unacknowledged stanzas since the last one.
pub const SM_REQUEST_EVERY: u64 = 5;
/// ... or this long after the first stanza it would cover, whichever comes first.
pub const SM_REQUEST_DELAY_MS: u64 = 1_000;
/// Stored messages in flight to one session; past it they wait in the store (backlog).
pub const SM_MAX_UNACKED: usize = 1_024;
/// All unacked stanzas of one session; past it the stream is closed with policy-violation.
pub const SM_MAX_UNACKED_HARD: usize = 2 * SM_MAX_UNACKED;
/// Default byte window of a session's unacked stanzas: stored messages wait in the store
/// while the unacked ones add up to this many bytes (on the wire, in socket buffers, unread
/// by the client), and follow as `<a h>` frees room. It bounds data in flight, not memory:
/// an unacked stored message is kept as its id, the stanza stays in the store. 8 MiB lets a
/// client that acks every 100 stanzas of 60 KiB keep reading without waiting.
pub const SM_DEFAULT_WINDOW_BYTES: usize = 8 << 20;
/// Default hard byte cap of the stanzas a session's unacked queue keeps in memory (those that
/// are not stored messages: presence, iq, groupchat copies), i.e. what a client that never
/// acks can make the server keep for it; past it the stream is closed with policy-violation.
/// At most half the output cap (checked at start): after a resumption they are all written at
/// once, and must fit. With the default 1 MiB cap, 512 KiB (~2,000 presence updates).
pub const SM_DEFAULT_MAX_UNACKED_BYTES: usize = 512 * 1024;
/// Longest wait of a `<resume/>` for the old stream's stanzas to be handled (stored and
/// committed); past it the resumption fails (see `resume`). Commits take a loop turn normally;
/// this covers a few store retries (1 s apart by default) before giving up.
pub const SM_RESUME_WAIT_MS: u64 = 5_000;
/// `<r/>` from the client waiting for the handled prefix; later ones coalesce into the last.
const MAX_WAITING_REQUESTS: usize = 8;

/// A session with stream management, stable across resumption (slot index + generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionRef(pub(crate) u64);

impl SessionRef {
    pub(crate) fn new(index: u32, generation: u32) -> SessionRef {
        SessionRef(u64::from(generation) << 32 | u64::from(index))
    }

    pub(crate) fn index(self) -> u32 {
        // Lossless: the low half of the packed value.
        (self.0 & u64::from(u32::MAX)) as u32
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One stanza sent and not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unacked {
    /// A stored message (`len` bytes as written): resent from the store, deleted from it when
    /// acknowledged.
    Stored { id: MsgId, len: u32 },
    /// Anything else, kept for retransmission after a resumption.
    Bytes(Box<[u8]>),
}

impl Unacked {
    /// Bytes of the stanza as written.
    pub fn len(&self) -> usize {
        match self {
            Unacked::Stored { len, .. } => *len as usize,
            Unacked::Bytes(bytes) => bytes.len(),
        }
    }

    /// Bytes of it kept in memory (a stored message is kept as its id).
    pub fn kept_len(&self) -> usize {
        match self {
            Unacked::Stored { .. } => 0,
            Unacked::Bytes(bytes) => bytes.len(),
        }
    }
}

/// The client acknowledged more stanzas than were sent (XEP-0198 4, handled-count-too-high).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooHigh {
    pub h: u32,
    pub sent: u64,
}

/// The queues of a session that has something in flight: inbound stanzas not handled yet,
/// `<r/>` waiting for them, outbound stanzas not acknowledged yet. Boxed and dropped as soon
/// as all three are empty, so an idle session holds none of it (see the module doc).
#[derive(Debug, Default)]
struct Queues {
    outstanding: VecDeque<u64>,
    requests: VecDeque<u64>,
    unacked: VecDeque<Unacked>,
    /// Bytes of the stanzas in `unacked` (all of them: the window).
    unacked_bytes: usize,
    /// Bytes of the `Unacked::Bytes` entries (kept in memory: the hard cap).
    kept_bytes: usize,
}

impl Queues {
    /// Nothing in flight (the byte sums are 0 then, as they sum `unacked`).
    fn is_empty(&self) -> bool {
        self.outstanding.is_empty() && self.requests.is_empty() && self.unacked.is_empty()
    }
}

/// Emptied queue boxes kept per thread for the next session with something in flight.
const SPARE_QUEUES: usize = 256;
/// Entries each deque of a spare box may keep allocated (bigger ones are shrunk first).
const SPARE_CAPACITY: usize = 16;

thread_local! {
    // Boxes, not `Queues` by value: a spare box goes back to a session as the very allocation.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Queues>>> = const { RefCell::new(Vec::new()) };
}

/// An empty queue box: a spare one if there is one.
fn take_queues() -> Box<Queues> {
    SPARE
        .with_borrow_mut(|spare| spare.pop())
        .unwrap_or_default()
}

/// Keeps an emptied box for reuse (up to `SPARE_QUEUES`), its deques shrunk to
/// `SPARE_CAPACITY`.
fn spare_queues(mut queues: Box<Queues>) {
    debug_assert!(queues.is_empty());
    queues.outstanding.shrink_to(SPARE_CAPACITY);
    queues.requests.shrink_to(SPARE_CAPACITY);
    queues.unacked.shrink_to(SPARE_CAPACITY);
    queues.unacked_bytes = 0;
    queues.kept_bytes = 0;
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_QUEUES {
            spare.push(queues);
        }
    });
}

/// What a detached session keeps of its stream until it is resumed or ends: boxed, since only
/// detached sessions have it (an attached session's JID and presence are its conn's).
#[derive(Debug)]
pub(crate) struct Detached {
    /// The full JID the session is bound to.
    pub jid: Jid,
    /// When it ends unless resumed.
    pub until_ms: u64,
    /// The conn whose `<resume/>` waits for this session's inbound stanzas to be handled (it
    /// gets `<resumed/>` then, see `resume`).
    pub resuming: Option<ConnKey>,
    /// Presence state kept across the detachment.
    pub available: bool,
    pub priority: i8,
}

/// Stream management state of one session, kept inline in `SmTable`'s slots (no box of its
/// own); the queues exist only while something is in flight, the `Detached` part only while
/// detached.
#[derive(Debug)]
pub(crate) struct SmSession {
    /// The conn it writes to while attached; stale while detached (see `conn`).
    pub(in crate::home::sm) key: ConnKey,
    /// Set exactly while detached (`SmTable::detach` / `attach`).
    pub detached: Option<Box<Detached>>,
    received: u64,
    acked: u64,
    /// `None` while nothing is in flight (the idle state); never `Some` of empty queues
    /// between calls.
    queues: Option<Box<Queues>>,
    /// Its `SmTable` slot's generation (kept here, in what would be padding, so a slot is
    /// the session's 48 bytes and no more: see `table::Slot`).
    pub(in crate::home::sm) generation: u32,
    /// Stanzas sent since our last `<r/>`; below `SM_REQUEST_EVERY` (5) between calls.
    since_request: u8,
    /// Resumption was enabled: the `id` of `<enabled/>` is derived from the session's token
    /// (see `resume_id`), not stored.
    pub resumable: bool,
    request_timer: bool,
}

impl SmSession {
    pub fn new(resumable: bool, conn: ConnKey) -> SmSession {
        SmSession {
            key: conn,
            detached: None,
            received: 0,
            acked: 0,
            queues: None,
            generation: 0,
            since_request: 0,
            resumable,
            request_timer: false,
        }
    }

    /// While detached: the conn whose `<resume/>` waits for it.
    pub fn resuming(&self) -> Option<ConnKey> {
        self.detached.as_ref()?.resuming
    }

    /// The full JID of a detached session (an attached one's is on its conn).
    pub fn detached_jid(&self) -> Option<&Jid> {
        self.detached.as_ref().map(|d| &d.jid)
    }

    /// The queues, created on first use.
    fn queues_mut(&mut self) -> &mut Queues {
        self.queues.get_or_insert_with(take_queues)
    }

    /// Drops the queues once nothing is in flight (called after every removal).
    fn settle(&mut self) {
        if self.queues.as_ref().is_some_and(|q| q.is_empty()) {
            if let Some(queues) = self.queues.take() {
                spare_queues(queues);
            }
        }
    }

    fn outstanding_front(&self) -> Option<u64> {
        self.queues.as_ref()?.outstanding.front().copied()
    }

    fn unacked_count(&self) -> usize {
        self.queues.as_ref().map_or(0, |q| q.unacked.len())
    }

    /// Whether the session holds queues (something is in flight).
    #[cfg(test)]
    pub fn has_queues(&self) -> bool {
        self.queues.is_some()
    }

    /// The handled count `h`: the contiguous prefix of handled inbound stanzas.
    pub fn handled(&self) -> u64 {
        self.outstanding_front()
            .map_or(self.received, |first| first - 1)
    }

    /// Whether every stanza received so far is handled (`handled() == received`).
    pub fn all_handled(&self) -> bool {
        self.outstanding_front().is_none()
    }

    /// Whether stanza `n` was received and is not handled yet.
    pub fn is_outstanding(&self, n: u64) -> bool {
        let queues = self.queues.as_ref();
        queues.is_some_and(|q| q.outstanding.binary_search(&n).is_ok())
    }

    /// A stanza arrived: returns its number, outstanding until `mark_handled`.
    pub fn receive(&mut self) -> u64 {
        self.received += 1;
        let n = self.received;
        self.queues_mut().outstanding.push_back(n);
        n
    }

    /// Marks stanza `n` handled; false if it was not outstanding (already handled).
    pub fn mark_handled(&mut self, n: u64) -> bool {
        let Some(queues) = self.queues.as_mut() else {
            return false;
        };
        let outstanding = &mut queues.outstanding;
        let removed = if outstanding.front() == Some(&n) {
            outstanding.pop_front().is_some()
        } else {
            match outstanding.binary_search(&n) {
                Ok(at) => outstanding.remove(at).is_some(),
                Err(_) => false,
            }
        };
        self.settle();
        removed
    }

    /// An `<r/>` arrived: true if it can be answered now, else it waits for the prefix.
    pub fn request(&mut self) -> bool {
        let mark = self.received;
        if self.handled() >= mark {
            return true;
        }
        let requests = &mut self.queues_mut().requests;
        if requests.len() >= MAX_WAITING_REQUESTS {
            // Answering the later request answers the earlier ones' question too.
            requests.pop_back();
        }
        requests.push_back(mark);
        false
    }

    /// How many waiting `<r/>` the current prefix answers (removing them).
    pub fn answerable(&mut self) -> usize {
        let handled = self.handled();
        let Some(queues) = self.queues.as_mut() else {
            return 0;
        };
        let mut count = 0;
        while queues.requests.front().is_some_and(|&mark| mark <= handled) {
            queues.requests.pop_front();
            count += 1;
        }
        self.settle();
        count
    }

    /// Stanzas sent since `<enabled/>` (or since the count the client resumed from).
    pub fn sent(&self) -> u64 {
        self.acked + self.unacked_count() as u64
    }

    #[cfg(test)]
    pub fn unacked_len(&self) -> usize {
        self.unacked_count()
    }

    /// Bytes of the unacked stanzas.
    #[cfg(test)]
    pub fn unacked_bytes(&self) -> usize {
        self.queues.as_ref().map_or(0, |q| q.unacked_bytes)
    }

    /// Bytes of stored messages that may be sent now within the count limit and the byte
    /// `window` (0: wait for `<a h>`).
    pub fn room_for_stored(&self, window: usize) -> usize {
        let Some(queues) = self.queues.as_ref() else {
            return window;
        };
        if queues.unacked.len() >= SM_MAX_UNACKED {
            return 0;
        }
        window.saturating_sub(queues.unacked_bytes)
    }

    /// Whether a stanza of `len` bytes may be kept now within the hard limits (`max_bytes`
    /// of unacked stanzas kept in memory), else the stream must close.
    pub fn room_for_any(&self, len: usize, max_bytes: usize) -> bool {
        self.unacked_count() < SM_MAX_UNACKED_HARD && self.kept_bytes() + len <= max_bytes
    }

    /// Bytes of unacked stanzas kept in memory (not stored messages).
    pub fn kept_bytes(&self) -> usize {
        self.queues.as_ref().map_or(0, |q| q.kept_bytes)
    }

    /// Records a stanza just sent; true when an `<r/>` should follow at once.
    pub fn push_unacked(&mut self, entry: Unacked) -> bool {
        let queues = self.queues_mut();
        queues.unacked_bytes += entry.len();
        queues.kept_bytes += entry.kept_len();
        queues.unacked.push_back(entry);
        self.since_request += 1;
        if u64::from(self.since_request) >= SM_REQUEST_EVERY {
            self.since_request = 0;
            return true;
        }
        false
    }

    /// Checks an acknowledged count `h` (modulo 2^32) and returns how many new stanzas it
    /// acknowledges.
    pub fn check_ack(&self, h: u32) -> Result<usize, TooHigh> {
        // Lossless: the low 32 bits, as the client counts.
        let new = h.wrapping_sub(self.acked as u32) as usize;
        if new > self.unacked_count() {
            return Err(TooHigh {
                h,
                sent: self.sent(),
            });
        }
        Ok(new)
    }

    /// Removes the first `count` unacked stanzas (after `check_ack`) and returns the ids of
    /// the stored messages among them (to delete from the store).
    pub fn release(&mut self, count: usize) -> Vec<MsgId> {
        let Some(queues) = self.queues.as_mut() else {
            return Vec::new();
        };
        let count = count.min(queues.unacked.len());
        self.acked += count as u64;
        let mut stored = Vec::new();
        for entry in queues.unacked.drain(..count) {
            queues.unacked_bytes -= entry.len();
            queues.kept_bytes -= entry.kept_len();
            if let Unacked::Stored { id, .. } = entry {
                stored.push(id);
            }
        }
        self.settle();
        stored
    }

    /// Takes the whole unacked queue, to resend it on a resumed stream (where the counting
    /// continues from `acked`, as the client's `h` says).
    pub fn take_unacked(&mut self) -> VecDeque<Unacked> {
        self.since_request = 0;
        let Some(queues) = self.queues.as_mut() else {
            return VecDeque::new();
        };
        queues.unacked_bytes = 0;
        queues.kept_bytes = 0;
        let unacked = std::mem::take(&mut queues.unacked);
        self.settle();
        unacked
    }

    /// Ids of stored messages in flight to this session.
    pub fn in_flight(&self) -> impl Iterator<Item = MsgId> + '_ {
        let unacked = self.queues.iter().flat_map(|q| q.unacked.iter());
        unacked.filter_map(|entry| match entry {
            Unacked::Stored { id, .. } => Some(*id),
            Unacked::Bytes(_) => None,
        })
    }

    /// The window is full: true (and counted as sent) when stanzas went out since the last
    /// `<r/>`, so an `<r/>` now makes the client's answer free the window without waiting for
    /// the request timer.
    pub fn request_for_window(&mut self) -> bool {
        if self.since_request == 0 {
            return false;
        }
        self.since_request = 0;
        true
    }

    /// The conn it writes to; `None` exactly while detached.
    pub fn conn(&self) -> Option<ConnKey> {
        self.detached.is_none().then_some(self.key)
    }

    /// Discards waiting requests and pacing (the conn they belonged to is gone).
    pub fn reset_conn_state(&mut self) {
        if let Some(queues) = self.queues.as_mut() {
            queues.requests.clear();
        }
        self.settle();
        self.since_request = 0;
    }

    /// Stanzas went out uncovered by an `<r/>` and no pacing timer runs: arms it (true).
    pub fn arm_request_timer(&mut self) -> bool {
        if self.request_timer || self.since_request == 0 {
            return false;
        }
        self.request_timer = true;
        true
    }

    /// The pacing timer fired: true when an `<r/>` should go out now (and counts as sent).
    pub fn request_timer_fired(&mut self) -> bool {
        self.request_timer = false;
        if self.since_request == 0 || self.conn().is_none() {
            return false;
        }
        self.since_request = 0;
        true
    }

    /// Heap bytes of the session beyond its slot in `SmTable` (the slot's size is counted
    /// with the table's vector).
    pub fn heap_bytes(&self) -> usize {
        let queues = self.queues.as_ref().map_or(0, |q| {
            let kept: usize = q.unacked.iter().map(Unacked::kept_len).sum();
            std::mem::size_of::<Queues>()
                + (q.outstanding.capacity() + q.requests.capacity()) * 8
                + q.unacked.capacity() * std::mem::size_of::<Unacked>()
                + kept
        });
        let detached = self
            .detached
            .as_ref()
            .map_or(0, |d| std::mem::size_of::<Detached>() + d.jid.heap_bytes());
        detached + queues
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A fresh session of `a@example.com/r` (the fixture of this folder's tests).
    pub(in crate::home::sm) fn session() -> SmSession {
        SmSession::new(false, ConnKey(1))
    }

    #[test]
    fn handled_is_the_contiguous_prefix() {
        let mut s = session();
        let (one, two, three) = (s.receive(), s.receive(), s.receive());
        assert_eq!(s.handled(), 0);
        assert!(s.mark_handled(two));
        assert_eq!(s.handled(), 0, "1 still outstanding");
        assert!(s.mark_handled(one));
        assert_eq!(s.handled(), 2);
        assert!(!s.mark_handled(one), "twice is a no-op");
        assert!(s.mark_handled(three));
        assert_eq!(s.handled(), 3);
    }

    #[test]
    fn requests_wait_for_the_prefix_they_cover() {
        let mut s = session();
        let one = s.receive();
        assert!(!s.request());
        let two = s.receive();
        assert!(!s.request());
        s.mark_handled(one);
        assert_eq!(s.answerable(), 1, "the first request is covered");
        s.mark_handled(two);
        assert_eq!(s.answerable(), 1);
        assert!(s.request(), "nothing outstanding: answered at once");
    }

    #[test]
    fn acks_release_in_order_and_too_high_is_refused() {
        let mut s = session();
        for i in 0..7u8 {
            let request = s.push_unacked(Unacked::Bytes(vec![i].into()));
            assert_eq!(request, i == 4, "an <r/> after every 5th stanza");
        }
        assert_eq!(s.check_ack(3), Ok(3));
        assert!(s.release(3).is_empty(), "no stored message among them");
        assert_eq!((s.sent(), s.unacked_len()), (7, 4));
        assert_eq!(s.check_ack(3), Ok(0), "a repeated ack changes nothing");
        assert_eq!(s.check_ack(8), Err(TooHigh { h: 8, sent: 7 }));
        assert!(
            s.check_ack(2).is_err(),
            "going backwards is as wrong as too high"
        );
    }

    #[test]
    fn acks_wrap_at_2_pow_32() {
        let mut s = session();
        s.acked = u64::from(u32::MAX) - 1;
        for _ in 0..4 {
            s.push_unacked(Unacked::Stored {
                id: MsgId(9),
                len: 1,
            });
        }
        assert_eq!(s.check_ack(2), Ok(4), "h wrapped past 2^32");
    }

    #[test]
    fn limits_hold_back_stored_messages_first() {
        let mut s = session();
        for _ in 0..SM_MAX_UNACKED {
            assert_eq!(s.room_for_stored(1 << 30), (1 << 30) - s.unacked_bytes());
            s.push_unacked(Unacked::Stored {
                id: MsgId(1),
                len: 10,
            });
        }
        assert_eq!(s.room_for_stored(1 << 30), 0, "the count limit");
        assert!(s.room_for_any(0, usize::MAX));
        for _ in SM_MAX_UNACKED..SM_MAX_UNACKED_HARD {
            s.push_unacked(Unacked::Bytes(Box::new([])));
        }
        assert!(!s.room_for_any(0, usize::MAX));
    }

    #[test]
    fn the_byte_window_holds_back_stored_messages_and_acks_reopen_it() {
        let mut s = session();
        s.push_unacked(Unacked::Stored {
            id: MsgId(1),
            len: 600,
        });
        s.push_unacked(Unacked::Bytes(vec![0; 300].into()));
        assert_eq!(s.unacked_bytes(), 900);
        assert_eq!(s.room_for_stored(1000), 100);
        assert_eq!(s.room_for_stored(800), 0);
        assert!(s.room_for_any(700, 1000), "stored messages are not kept");
        assert!(!s.room_for_any(701, 1000), "the hard byte cap");
        assert_eq!(s.kept_bytes(), 300);
        assert_eq!(s.release(1), vec![MsgId(1)]);
        assert_eq!((s.unacked_bytes(), s.room_for_stored(1000)), (300, 700));
        drop(s.take_unacked());
        assert_eq!(s.unacked_bytes(), 0);
    }

    #[test]
    fn queues_exist_only_while_something_is_in_flight() {
        let mut s = session();
        assert!(!s.has_queues(), "a fresh session holds none");
        let one = s.receive();
        assert!(s.has_queues());
        assert!(!s.request(), "waits for stanza 1");
        s.mark_handled(one);
        assert!(s.has_queues(), "the request still waits");
        assert_eq!(s.answerable(), 1);
        assert!(!s.has_queues(), "idle again");
        s.push_unacked(Unacked::Stored {
            id: MsgId(4),
            len: 10,
        });
        s.push_unacked(Unacked::Bytes(vec![0; 3].into()));
        assert_eq!(s.release(1), vec![MsgId(4)]);
        assert!(s.has_queues(), "one still unacked");
        assert_eq!(s.release(1), Vec::<MsgId>::new());
        assert!(!s.has_queues());
        assert_eq!(
            (s.sent(), s.kept_bytes(), s.room_for_stored(100)),
            (2, 0, 100)
        );
        s.push_unacked(Unacked::Bytes(vec![0; 3].into()));
        assert_eq!(s.take_unacked().len(), 1);
        assert!(!s.has_queues(), "taken for a resumption");
        let two = s.receive();
        s.request();
        s.reset_conn_state();
        assert!(s.has_queues(), "stanza 2 is still outstanding");
        s.mark_handled(two);
        assert!(!s.has_queues());
        assert_eq!(s.handled(), 2);
    }

    /// The `Detached` part of `a@example.com/r`, detached until `until_ms`.
    pub(in crate::home::sm) fn detached(until_ms: u64) -> Detached {
        Detached {
            jid: Jid::parse("a@example.com/r").expect("valid JID"),
            until_ms,
            resuming: None,
            available: false,
            priority: 0,
        }
    }

    #[test]
    fn the_session_state_is_small() {
        // What an idle attached session costs, all inline: the conn key 8 B, two counters
        // 16 B, the queues and detached pointers 16 B, pacing and flags 8 B.
        assert!(size_of::<SmSession>() <= 48, "{}", size_of::<SmSession>());
    }
}
