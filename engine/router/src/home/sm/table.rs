//! The stream-managed sessions of one shard (attached to a conn, or detached awaiting
//! resumption), with their three timers: `<r/>` pacing, the end of the resumption window,
//! and the bound on a `<resume/>` waiting for its answer. Each delay is a constant (or fixed
//! config), so each timer is a FIFO sorted by deadline.
//!
//! Layout, for memory (issue 15): sessions sit inline in `slots` (no box each; an idle
//! attached one is its slot and nothing else, see `sm::session`: its JID is its conn's);
//! only detached sessions are indexed by bare JID (`detached_by_bare`: bind conflicts and presence for detached sessions), since a
//! `<resume/>` finds its session from the id itself (`sm::resume_id`) and attached sessions
//! are reached through their conn's `Session::sm`.
//!
//! What it does not do: decide what a session's end means for its messages (see
//! `sm::elements`) or count anything itself (see `sm`).
//!
//! Invariants: a session is in `detached_by_bare` under its bare JID exactly while it is in
//! the table with `conn()` `None`; `detached` counts those sessions; tokens carry the slot
//! generation, so a
//! token of an ended session never resolves again (stale timer entries are skipped). A session
//! with a pending resumption (`resuming`) does not expire: its detach timer entry is skipped
//! and `abandon_resume` arms a fresh one if that resumption is given up. Whenever such a
//! session becomes answerable (all handled) or ends, its resuming conn goes on `wake`, which
//! the router drains after each call (see `resume`).

use std::collections::VecDeque;

use crate::effects::{ConnKey, Effects};
use crate::home::sm::resume_id::ResumeIds;
use crate::home::sm::{Detached, SessionRef, SmSession, SM_REQUEST_DELAY_MS};
use crate::maps::HashState;
use crate::random::KEY_BYTES;
use crate::replies;
use crate::sessions::Directory;

/// A live session (which holds the slot's generation: `SmSession::generation`) or a free
/// slot with the generation of its next session: 48 bytes either way (the free variant sits
/// in the live one's niche), not 56 as a generation beside an `Option<SmSession>` was.
#[derive(Debug)]
enum Slot {
    Live(SmSession),
    Free { generation: u32 },
}

impl Slot {
    fn generation(&self) -> u32 {
        match self {
            Slot::Live(session) => session.generation,
            Slot::Free { generation } => *generation,
        }
    }

    /// The session of this slot if `token` names it (same generation).
    fn session(&self, token: SessionRef) -> Option<&SmSession> {
        match self {
            Slot::Live(session) if session.generation == token.generation() => Some(session),
            _ => None,
        }
    }

    fn session_mut(&mut self, token: SessionRef) -> Option<&mut SmSession> {
        match self {
            Slot::Live(session) if session.generation == token.generation() => Some(session),
            _ => None,
        }
    }

    fn live(&self) -> Option<&SmSession> {
        match self {
            Slot::Live(session) => Some(session),
            Slot::Free { .. } => None,
        }
    }
}

/// The stream-managed sessions of one shard, with their timers.
#[derive(Debug)]
pub(crate) struct SmTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Bare JID -> slot indices of the detached sessions (bind conflicts, presence while
    /// detached).
    detached_by_bare: Directory,
    /// Makes and checks the resumption ids.
    resume_ids: ResumeIds,
    request_timers: VecDeque<(u64, SessionRef)>,
    detach_timers: VecDeque<(u64, SessionRef)>,
    /// Bounds of pending resumptions, by resuming conn (see `resume`).
    resume_timers: VecDeque<(u64, ConnKey)>,
    detached: usize,
    /// Conns whose pending `<resume/>` may be answerable now (stale entries are harmless).
    wake: Vec<ConnKey>,
    /// Scratch for `<a/>` answers.
    out: Vec<u8>,
}

impl SmTable {
    /// A table whose resumption ids are keyed with `resume_key` (secret: see `resume_id`).
    pub fn new(hash: HashState, resume_key: &[u8; KEY_BYTES]) -> SmTable {
        SmTable {
            slots: Vec::new(),
            free: Vec::new(),
            detached_by_bare: Directory::new(hash),
            resume_ids: ResumeIds::new(resume_key),
            request_timers: VecDeque::new(),
            detach_timers: VecDeque::new(),
            resume_timers: VecDeque::new(),
            detached: 0,
            wake: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Replaces the key of the resumption ids (at start, before any session: the ids made
    /// under the old key stop resolving).
    pub fn set_resume_key(&mut self, resume_key: &[u8; KEY_BYTES]) {
        self.resume_ids = ResumeIds::new(resume_key);
    }

    /// The resumption id of session `token` of user `bare` (see `resume_id`).
    pub fn resume_id(&self, token: SessionRef, bare: &str) -> Option<String> {
        self.get(token).filter(|s| s.resumable)?;
        Some(self.resume_ids.format(token, bare))
    }

    /// The resumable session of user `bare` that `previd` names, if it is still in the table
    /// (the id's MAC covers `bare`, so it is that user's).
    pub fn resolve(&self, previd: &str, bare: &str) -> Option<SessionRef> {
        let token = self.resume_ids.parse(previd, bare)?;
        self.get(token)?.resumable.then_some(token)
    }

    pub fn insert(&mut self, mut session: SmSession) -> SessionRef {
        assert!(session.detached.is_none(), "a session starts attached");
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                // Invariant: sessions per shard are bounded by conns, far below 2^32 - 1 (the
                // index u32::MAX is never handed out: see `home::sessions::SmLink`).
                let index = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&index| index < u32::MAX)
                    .expect("sm slots below u32::MAX");
                self.slots.push(Slot::Free { generation: 0 });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        session.generation = slot.generation();
        *slot = Slot::Live(session);
        SessionRef::new(index, slot.generation())
    }

    pub fn get(&self, token: SessionRef) -> Option<&SmSession> {
        self.slots.get(token.index() as usize)?.session(token)
    }

    pub fn get_mut(&mut self, token: SessionRef) -> Option<&mut SmSession> {
        live_mut(&mut self.slots, token)
    }

    /// Ends a session: its token never resolves again.
    pub fn remove(&mut self, token: SessionRef) -> Option<SmSession> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        slot.session(token)?;
        let generation = token.generation().wrapping_add(1);
        let Slot::Live(session) = std::mem::replace(slot, Slot::Free { generation }) else {
            return None; // Not reached: checked live above.
        };
        self.free.push(token.index());
        if let Some(detached) = &session.detached {
            self.detached -= 1;
            self.detached_by_bare
                .remove(detached.jid.bare_str(), token.index());
        }
        if let Some(key) = session.resuming() {
            // Its resuming conn must hear that the session is gone.
            self.wake.push(key);
        }
        Some(session)
    }

    /// Tokens of the detached sessions of a bare JID.
    pub fn detached_of(&self, bare: &str) -> Vec<SessionRef> {
        let slots = self.detached_by_bare.slots(bare).iter();
        let tokens = slots.filter_map(|&index| {
            let session = self.slots.get(index as usize)?.live()?;
            Some(SessionRef::new(index, session.generation))
        });
        tokens.collect()
    }

    /// Detaches a session from its conn until `state.until_ms`, keeping `state` (its JID
    /// and presence); a no-op for a session already detached.
    pub fn detach(&mut self, token: SessionRef, state: Detached) {
        let Some(session) = live_mut(&mut self.slots, token) else {
            return;
        };
        if session.detached.is_some() {
            return;
        }
        session.reset_conn_state();
        let until_ms = state.until_ms;
        self.detached_by_bare
            .insert(state.jid.bare_str(), token.index());
        session.detached = Some(Box::new(state));
        self.detached += 1;
        self.detach_timers.push_back((until_ms, token));
    }

    /// Attaches a detached session to `conn`, handing back what it kept while detached
    /// (`None`, and nothing changes, if it is not detached).
    pub fn attach(&mut self, token: SessionRef, conn: ConnKey) -> Option<Box<Detached>> {
        let session = live_mut(&mut self.slots, token)?;
        let detached = session.detached.take()?;
        session.reset_conn_state();
        session.key = conn;
        self.detached -= 1;
        self.detached_by_bare
            .remove(detached.jid.bare_str(), token.index());
        Some(detached)
    }

    pub fn detached(&self) -> usize {
        self.detached
    }

    /// Marks the detached session as being resumed by `conn` (see `Detached::resuming`);
    /// wakes `conn` at once if the session has nothing outstanding.
    pub fn begin_resume(&mut self, token: SessionRef, conn: ConnKey) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        let Some(detached) = session.detached.as_mut() else {
            return;
        };
        detached.resuming = Some(conn);
        let ready = session.all_handled();
        if ready {
            self.wake.push(conn);
        }
    }

    /// `conn` gave up resuming the session (it closed, or a newer `<resume/>` took over): the
    /// session stays detached for a fresh window, until `until_ms`.
    pub fn abandon_resume(&mut self, token: SessionRef, conn: ConnKey, until_ms: u64) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        let Some(detached) = session.detached.as_mut() else {
            return;
        };
        if detached.resuming != Some(conn) {
            return;
        }
        detached.resuming = None;
        // Its old timer entry may have been skipped while the resumption was pending.
        detached.until_ms = until_ms;
        self.detach_timers.push_back((until_ms, token));
    }

    /// Arms the bound of the resumption pending on `conn`.
    pub fn arm_resume_timer(&mut self, deadline_ms: u64, conn: ConnKey) {
        self.resume_timers.push_back((deadline_ms, conn));
    }

    /// Conns whose pending `<resume/>` should be looked at again: woken by their session, or
    /// with a bound due at `now_ms`.
    pub fn take_wake(&mut self, now_ms: u64) -> Vec<ConnKey> {
        while let Some(&(due_ms, conn)) = self.resume_timers.front() {
            if due_ms > now_ms {
                break;
            }
            self.resume_timers.pop_front();
            self.wake.push(conn);
        }
        std::mem::take(&mut self.wake)
    }

    /// Marks inbound stanza `n` of `token` handled and answers the `<r/>` it unblocks.
    pub fn mark_handled(&mut self, token: SessionRef, n: u64, fx: &mut impl Effects) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        if !session.mark_handled(n) {
            return;
        }
        if let Some(key) = session.resuming().filter(|_| session.all_handled()) {
            self.wake.push(key);
        }
        self.answer_requests(token, fx);
    }

    /// Sends one `<a/>` per waiting `<r/>` the handled prefix now answers.
    pub fn answer_requests(&mut self, token: SessionRef, fx: &mut impl Effects) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        let (count, handled, conn) = (session.answerable(), session.handled(), session.conn());
        let Some(conn) = conn else {
            return;
        };
        if count == 0 {
            return;
        }
        self.out.clear();
        for _ in 0..count {
            replies::sm_ack(&mut self.out, handled);
        }
        fx.send(conn, &self.out);
    }

    /// After a stanza was queued on `token`: sends `<r/>` now (`request_now`) or arms the
    /// pacing timer.
    pub fn after_send(&mut self, token: SessionRef, request_now: bool, now_ms: u64) -> bool {
        let Some(session) = self.get_mut(token) else {
            return false;
        };
        if request_now {
            return true;
        }
        if session.arm_request_timer() {
            self.request_timers
                .push_back((now_ms + SM_REQUEST_DELAY_MS, token));
        }
        false
    }

    /// Pops due request timers: the conns that should get an `<r/>` now.
    pub fn due_requests(&mut self, now_ms: u64, out: &mut Vec<ConnKey>) {
        while let Some(&(due_ms, token)) = self.request_timers.front() {
            if due_ms > now_ms {
                break;
            }
            self.request_timers.pop_front();
            let Some(session) = self.get_mut(token) else {
                continue;
            };
            if let (true, Some(conn)) = (session.request_timer_fired(), session.conn()) {
                out.push(conn);
            }
        }
    }

    /// Pops due detachment timers: the sessions whose resumption window is over.
    pub fn due_detached(&mut self, now_ms: u64, out: &mut Vec<SessionRef>) {
        while let Some(&(due_ms, token)) = self.detach_timers.front() {
            if due_ms > now_ms {
                break;
            }
            self.detach_timers.pop_front();
            // A session resumed and detached again has a later deadline of its own; one being
            // resumed waits for that (`abandon_resume` re-arms it if the resumption is dropped).
            let detached = self.get(token).and_then(|s| s.detached.as_ref());
            let expired = detached.is_some_and(|d| d.resuming.is_none() && d.until_ms <= now_ms);
            if expired {
                out.push(token);
            }
        }
    }

    /// The earliest timer, if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let request = self.request_timers.front().map(|&(due, _)| due);
        let detach = self.detach_timers.front().map(|&(due, _)| due);
        let resume = self.resume_timers.front().map(|&(due, _)| due);
        [request, detach, resume].into_iter().flatten().min()
    }

    /// Bytes of unacked stanzas kept in memory, all sessions (O(sessions): for a periodic
    /// gauge).
    pub fn kept_bytes(&self) -> usize {
        let sessions = self.slots.iter().filter_map(Slot::live);
        sessions.map(|s| s.kept_bytes()).sum()
    }

    /// Heap bytes in three: the slots (and free list), the timer queues, the rest (the
    /// detached index, scratch, each session's own heap).
    pub fn heap_parts(&self) -> (usize, usize, usize) {
        let sessions: usize = self
            .slots
            .iter()
            .filter_map(Slot::live)
            .map(|s| s.heap_bytes())
            .sum();
        let timer = std::mem::size_of::<(u64, SessionRef)>();
        let slots = self.slots.capacity() * std::mem::size_of::<Slot>() + self.free.capacity() * 4;
        let timers = (self.request_timers.capacity() + self.detach_timers.capacity()) * timer
            + self.resume_timers.capacity() * std::mem::size_of::<(u64, ConnKey)>();
        let rest = self.detached_by_bare.heap_bytes()
            + self.out.capacity()
            + self.wake.capacity() * std::mem::size_of::<ConnKey>()
            + sessions;
        (slots, timers, rest)
    }
}

/// The live session `token` names in `slots` (a free function, so the table's other fields
/// stay borrowable next to it).
fn live_mut(slots: &mut [Slot], token: SessionRef) -> Option<&mut SmSession> {
    slots.get_mut(token.index() as usize)?.session_mut(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::sm::session::tests::{detached, session};

    fn table() -> SmTable {
        SmTable::new(HashState::from_seed(0), &[5; KEY_BYTES])
    }

    #[test]
    fn tokens_of_ended_sessions_go_stale() {
        let mut table = table();
        let token = table.insert(session());
        assert!(table.detached_of("a@example.com").is_empty(), "attached");
        table.detach(token, detached(5_000));
        assert_eq!(table.detached_of("a@example.com"), vec![token]);
        assert_eq!(table.detached(), 1);
        let mut due = Vec::new();
        table.due_detached(4_999, &mut due);
        assert!(due.is_empty());
        table.due_detached(5_000, &mut due);
        assert_eq!(due, vec![token]);
        assert!(table.remove(token).is_some());
        assert!(table.get(token).is_none());
        assert_eq!(table.detached(), 0);
        assert!(table.detached_of("a@example.com").is_empty());
        let again = table.insert(session());
        assert_ne!(again, token, "same slot, new generation");
        table.detach(again, detached(5_000));
        assert!(table.detached_of("a@example.com") == vec![again]);
        table.attach(again, ConnKey(2));
        assert!(
            table.detached_of("a@example.com").is_empty(),
            "attached again"
        );
    }

    #[test]
    fn resume_ids_resolve_only_for_their_session_and_generation() {
        let mut table = table();
        let plain = table.insert(session());
        assert_eq!(
            table.resume_id(plain, "a@example.com"),
            None,
            "resumption not enabled"
        );
        let mut resumable = session();
        resumable.resumable = true;
        let token = table.insert(resumable);
        let id = table.resume_id(token, "a@example.com").expect("resumable");
        assert_eq!(table.resolve(&id, "a@example.com"), Some(token));
        assert_eq!(table.resolve(&id, "b@example.com"), None, "another user");
        table.remove(token);
        assert_eq!(table.resolve(&id, "a@example.com"), None, "ended");
        let mut next = session();
        next.resumable = true;
        let reused = table.insert(next);
        assert_eq!(reused.index(), token.index(), "the slot is reused");
        assert_eq!(table.resolve(&id, "a@example.com"), None, "old generation");
        let fresh = table.resume_id(reused, "a@example.com").expect("resumable");
        assert_eq!(table.resolve(&fresh, "a@example.com"), Some(reused));
        table.set_resume_key(&[6; KEY_BYTES]);
        assert_eq!(table.resolve(&fresh, "a@example.com"), None, "another key");
    }

    #[test]
    fn an_idle_session_is_its_slot_alone() {
        let mut table = table();
        let token = table.insert(session());
        let heap = |table: &SmTable| table.get(token).expect("live").heap_bytes();
        assert_eq!(
            heap(&table),
            0,
            "idle and attached: nothing beyond the slot"
        );
        let s = table.get_mut(token).expect("live");
        let n = s.receive();
        s.push_unacked(crate::home::sm::Unacked::Bytes(vec![0; 10].into()));
        assert!(heap(&table) > 0, "queues while something is in flight");
        let s = table.get_mut(token).expect("live");
        s.mark_handled(n);
        let _ = s.release(1);
        assert!(!s.has_queues());
        assert_eq!(heap(&table), 0, "back to the idle footprint");
        table.detach(token, detached(1_000));
        assert!(
            heap(&table) > 0,
            "a detached session keeps its JID and presence"
        );
        table.attach(token, ConnKey(2));
        assert_eq!(heap(&table), 0);
        // All of it inline in the slot, no box per session (see `SmSession`).
        assert!(
            std::mem::size_of::<Slot>() <= 48,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
