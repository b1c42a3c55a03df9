//! The stream-managed sessions of one shard (attached to a conn, or detached awaiting
//! resumption), indexed by bare JID, with their three timers: `<r/>` pacing, the end of the
//! resumption window, and the bound on a `<resume/>` waiting for its answer. Each delay is
//! a constant (or fixed config), so each timer is a FIFO sorted by deadline.
//!
//! What it does not do: decide what a session's end means for its messages (see
//! `sm::elements`) or count anything itself (see `sm`).
//!
//! Invariants: a session is in `by_bare` under its bare JID exactly while it is in the table;
//! `detached` counts the sessions with `conn == None`; tokens carry the slot generation, so a
//! token of an ended session never resolves again (stale timer entries are skipped). A session
//! with a pending resumption (`resuming`) does not expire: its detach timer entry is skipped
//! and `abandon_resume` arms a fresh one if that resumption is given up. Whenever such a
//! session becomes answerable (all handled) or ends, its resuming conn goes on `wake`, which
//! the router drains after each call (see `resume`).

use std::collections::VecDeque;

use crate::effects::{ConnKey, Effects};
use crate::home::sm::{SessionRef, SmSession, SM_REQUEST_DELAY_MS};
use crate::maps::HashState;
use crate::replies;
use crate::sessions::Directory;

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<Box<SmSession>>,
}

/// The stream-managed sessions of one shard, with their timers.
#[derive(Debug)]
pub(crate) struct SmTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Bare JID -> slot indices: for resumption and for bind conflicts with detached sessions.
    by_bare: Directory,
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
    pub fn new(hash: HashState) -> SmTable {
        SmTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_bare: Directory::new(hash),
            request_timers: VecDeque::new(),
            detach_timers: VecDeque::new(),
            resume_timers: VecDeque::new(),
            detached: 0,
            wake: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn insert(&mut self, session: SmSession) -> SessionRef {
        let bare = session.jid.bare_str().to_owned();
        let session = Some(Box::new(session));
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize].session = session;
                index
            }
            None => {
                // Invariant: sessions per shard are bounded by conns, far below 2^32.
                let index = u32::try_from(self.slots.len()).expect("sm slots fit in u32");
                self.slots.push(Slot {
                    generation: 0,
                    session,
                });
                index
            }
        };
        self.by_bare.insert(&bare, index);
        SessionRef::new(index, self.slots[index as usize].generation)
    }

    pub fn get(&self, token: SessionRef) -> Option<&SmSession> {
        let slot = self.slots.get(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.session.as_deref()
    }

    pub fn get_mut(&mut self, token: SessionRef) -> Option<&mut SmSession> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.session.as_deref_mut()
    }

    /// Ends a session: its token never resolves again.
    pub fn remove(&mut self, token: SessionRef) -> Option<Box<SmSession>> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        let session = slot.session.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(token.index());
        self.by_bare.remove(session.jid.bare_str(), token.index());
        if session.conn.is_none() {
            self.detached -= 1;
        }
        if let Some(key) = session.resuming {
            // Its resuming conn must hear that the session is gone.
            self.wake.push(key);
        }
        Some(session)
    }

    /// Tokens of every session (attached or detached) of a bare JID.
    pub fn sessions_of(&self, bare: &str) -> Vec<SessionRef> {
        let slots = self.by_bare.slots(bare).iter();
        let tokens = slots.filter_map(|&index| {
            let slot = self.slots.get(index as usize)?;
            slot.session.as_ref()?;
            Some(SessionRef::new(index, slot.generation))
        });
        tokens.collect()
    }

    /// Detaches a session from its conn until `until_ms`.
    pub fn detach(&mut self, token: SessionRef, until_ms: u64) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        if session.conn.take().is_none() {
            return;
        }
        session.detached_until_ms = until_ms;
        session.reset_conn_state();
        self.detached += 1;
        self.detach_timers.push_back((until_ms, token));
    }

    /// Attaches a detached session to `conn`.
    pub fn attach(&mut self, token: SessionRef, conn: ConnKey) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        session.reset_conn_state();
        if session.conn.replace(conn).is_none() {
            self.detached -= 1;
        }
    }

    pub fn detached(&self) -> usize {
        self.detached
    }

    /// Marks the detached session as being resumed by `conn` (see `SmSession::resuming`);
    /// wakes `conn` at once if the session has nothing outstanding.
    pub fn begin_resume(&mut self, token: SessionRef, conn: ConnKey) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        session.resuming = Some(conn);
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
        if session.resuming != Some(conn) {
            return;
        }
        session.resuming = None;
        if session.conn.is_none() {
            // Its old timer entry may have been skipped while the resumption was pending.
            session.detached_until_ms = until_ms;
            self.detach_timers.push_back((until_ms, token));
        }
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
        if let Some(key) = session.resuming.filter(|_| session.all_handled()) {
            self.wake.push(key);
        }
        self.answer_requests(token, fx);
    }

    /// Sends one `<a/>` per waiting `<r/>` the handled prefix now answers.
    pub fn answer_requests(&mut self, token: SessionRef, fx: &mut impl Effects) {
        let Some(session) = self.get_mut(token) else {
            return;
        };
        let (count, handled, conn) = (session.answerable(), session.handled(), session.conn);
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
            if let (true, Some(conn)) = (session.request_timer_fired(), session.conn) {
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
            let expired = self.get(token).is_some_and(|s| {
                s.conn.is_none() && s.resuming.is_none() && s.detached_until_ms <= now_ms
            });
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
        let sessions = self.slots.iter().filter_map(|s| s.session.as_ref());
        sessions.map(|s| s.kept_bytes()).sum()
    }

    pub fn heap_bytes(&self) -> usize {
        let sessions: usize = self
            .slots
            .iter()
            .filter_map(|s| s.session.as_ref())
            .map(|s| s.heap_bytes())
            .sum();
        let timer = std::mem::size_of::<(u64, SessionRef)>();
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * 4
            + self.by_bare.heap_bytes()
            + (self.request_timers.capacity() + self.detach_timers.capacity()) * timer
            + self.resume_timers.capacity() * std::mem::size_of::<(u64, ConnKey)>()
            + self.out.capacity()
            + self.wake.capacity() * std::mem::size_of::<ConnKey>()
            + sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::sm::session::tests::session;

    #[test]
    fn tokens_of_ended_sessions_go_stale() {
        let mut table = SmTable::new(HashState::from_seed(0));
        let token = table.insert(session());
        assert_eq!(table.sessions_of("a@example.com"), vec![token]);
        table.detach(token, 5_000);
        assert_eq!(table.detached(), 1);
        let mut due = Vec::new();
        table.due_detached(4_999, &mut due);
        assert!(due.is_empty());
        table.due_detached(5_000, &mut due);
        assert_eq!(due, vec![token]);
        assert!(table.remove(token).is_some());
        assert!(table.get(token).is_none());
        assert_eq!(table.detached(), 0);
        let again = table.insert(session());
        assert_ne!(again, token, "same slot, new generation");
        assert!(table.sessions_of("a@example.com") == vec![again]);
    }
}
