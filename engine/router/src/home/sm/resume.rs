//! XEP-0198 resumption (section 5): `<resume/>` on the user's home shard, the take-over of a
//! session still attached (or being resumed) elsewhere, and the `<resumed h>` answer.
//!
//! What it does: the answer waits until every stanza the session received on its old stream
//! is handled (stored and committed, here or on the recipient's home shard), the rule that
//! already holds `<r/>` back. Then `h` counts everything the server took, so a client that
//! resends what lies above `h` (XEP-0198 5) resends only what never arrived: no duplicate
//! reaches a recipient, and both sides number the resent stanzas alike (no double count).
//! While it waits the session stays detached (nothing is written to the new conn before
//! `<resumed/>`), the conn's framer is paused, and what the client sends meanwhile is held
//! (at most `max_stanza_bytes`) and parsed right after the answer.
//!
//! Choice, the bound: if the stanzas are not all handled within `SM_RESUME_WAIT_MS` (store
//! unavailable, commits failing), the resumption fails with `<failed h='handled'>` and
//! `<resource-constraint/>`, and the session ends; the client binds a fresh one. Answering
//! `<resumed/>` with the handled prefix instead cannot be made safe: store-and-forward writes
//! a message to its recipient before the commit, so the unhandled tail may already have been
//! delivered and would come again when the client resends it, and its late commits would
//! count against the renumbered resent stanzas. After `<failed/>` those stanzas are neither
//! acknowledged nor repeated by the server: they stay in the store and are delivered once
//! committed (or are lost with an uncommitted batch, never having been acknowledged). `h` on
//! `<failed/>` acknowledges the committed prefix only. The conn gets a new bind window.
//!
//! What it does not do: count stanzas (see `sm`), keep the timers (see `sm::table`), write
//! stored messages (see `offline`), or detach sessions (see `sm::elements`).
//!
//! Invariants:
//! - a conn's `resume` names a session whose `resuming` names that conn, unless the session
//!   ended or the conn gave up; either way the conn is woken (`SmTable::take_wake`) or the
//!   session's `resuming` cleared (`abandon_resume`), so no side waits forever;
//! - nothing but the answer is written to a conn with a pending resumption;
//! - `<resumed h>` carries `handled() == received` of the session.

use rookery_proto::element::Element;

use crate::effects::{ConnKey, Effects, HomeRequest};
use crate::errors::{SessionEnd, StreamError};
use crate::home::sessions::PendingResume;
use crate::home::sm::{Detached, SessionRef, SM_RESUME_WAIT_MS};
use crate::replies;
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::Next;

impl Router {
    /// `<resume/>` after SASL: on the home shard it completes here, else the conn moves.
    pub(crate) fn on_resume(
        &mut self,
        slot: u32,
        element: &Element<'_>,
        fx: &mut impl Effects,
    ) -> Next {
        let h = element.attr("h").and_then(|h| h.parse::<u32>().ok());
        let (Some(previd), Some(h)) = (element.attr("previd"), h) else {
            self.sm_failed(slot, "bad-request", fx);
            return Next::Continue;
        };
        let Some(bare) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return Next::Stop;
        };
        let dest = self.home.placement.home(bare);
        if dest.node != self.home.location.node {
            // Redirected at the restarted stream's header already; kept for safety.
            self.redirect_if_elsewhere(slot, false, fx);
            return Next::Stop;
        }
        if dest != self.home.location {
            let previd = previd.into();
            let request = HomeRequest::Resume { previd, h };
            return Next::HandOff {
                dest: dest.shard,
                request,
                claimed: None,
            };
        }
        self.complete_resume(slot, previd, h, fx)
    }

    /// Resumes session `previd` of the conn's user on the conn in `slot` (home shard):
    /// answered now if the old stream's stanzas are all handled, else `Next::Pause` and the
    /// answer comes from `finish_resumes`.
    pub(crate) fn complete_resume(
        &mut self,
        slot: u32,
        previd: &str,
        h: u32,
        fx: &mut impl Effects,
    ) -> Next {
        let Some(bare) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return Next::Stop;
        };
        let Some(token) = self.home.sm.resolve(previd, bare.bare_str()) else {
            self.home.stats.resume_failures += 1;
            self.sm_failed(slot, "item-not-found", fx);
            return Next::Continue;
        };
        if !self.take_over(token, fx) {
            self.home.stats.resume_failures += 1;
            self.sm_failed(slot, "item-not-found", fx);
            return Next::Continue;
        }
        if self.acknowledge(slot, token, h).is_err() {
            // The client claims stanzas it cannot have had: its state is unusable.
            self.home.sm.remove(token);
            self.home.stats.resume_failures += 1;
            self.sm_failed(slot, "undefined-condition", fx);
            return Next::Continue;
        }
        if self.home.sm.get(token).is_some_and(|s| s.all_handled()) {
            self.attach(slot, token, fx);
            return Next::Continue;
        }
        self.hold_resume(slot, token);
        Next::Pause
    }

    /// XEP-0198 5: a session still attached to an older stream moves, and that stream ends;
    /// so does an older stream still waiting for its own `<resumed/>`. The session is
    /// detached afterwards (true), or it was attached to a conn that is gone (false: nothing
    /// to resume, not reached while conns end their sessions on leaving).
    fn take_over(&mut self, token: SessionRef, fx: &mut impl Effects) -> bool {
        if let Some(other) = self.home.sm.get(token).and_then(|s| s.resuming()) {
            if let Some(slot) = self.conns.slot_of(other) {
                // Its `leave_directory` gives the resumption up (`abandon_resume`).
                self.stream_error(slot, StreamError::Conflict, fx);
            }
            let session = self.home.sm.get_mut(token);
            if let Some(detached) = session.and_then(|s| s.detached.as_mut()) {
                detached.resuming = None;
            }
        }
        let Some(old_key) = self.home.sm.get(token).and_then(|s| s.conn()) else {
            return true;
        };
        let old = self.conns.slot_of(old_key);
        let Some((old, jid)) = old.and_then(|o| Some((o, self.conns.get(o)?.jid.clone()?))) else {
            self.home.sm.remove(token);
            return false;
        };
        let mut presence = (false, 0);
        if let Some(conn) = self.home.sessions.get_mut(old) {
            presence = (conn.available, conn.priority);
            // Detached from the old conn first, so its stream error does not end the session
            // (nor its presence and rooms: the session goes on, on the new conn).
            conn.set_sm(None);
        }
        // Nothing may be written to the old conn from now on.
        let until_ms = self
            .home
            .now_ms
            .saturating_add(self.config.resume_timeout_ms);
        let state = Detached {
            jid,
            until_ms,
            resuming: None,
            available: presence.0,
            priority: presence.1,
        };
        self.home.sm.detach(token, state);
        self.stream_error_ending(old, StreamError::Conflict.into(), SessionEnd::Resumed, fx);
        true
    }

    /// Pauses the conn in `slot` until the session's old stanzas are handled or the bound
    /// passes; the session stays (or becomes) detached meanwhile.
    fn hold_resume(&mut self, slot: u32, token: SessionRef) {
        let deadline_ms = self.home.now_ms.saturating_add(SM_RESUME_WAIT_MS);
        let Some(key) = self.conns.get(slot).map(|c| c.key) else {
            return;
        };
        let pending = PendingResume {
            token,
            deadline_ms,
            held: Vec::new(),
        };
        self.home.sessions.hold(slot, key, pending);
        // Detached already (by its stream's end, or by `take_over`).
        self.home.sm.begin_resume(token, key);
        self.home.sm.arm_resume_timer(deadline_ms, key);
        self.home.stats.resumes_delayed += 1;
    }

    /// Keeps bytes that arrived for a conn with a pending resumption; past `max_stanza_bytes`
    /// the client is not waiting for the answer as XEP-0198 5 expects: policy-violation.
    pub(crate) fn hold_bytes(&mut self, slot: u32, bytes: &[u8], fx: &mut impl Effects) {
        let limit = self.limits.max_stanza_bytes;
        let Some(pending) = self.home.sessions.pending_mut(slot) else {
            return;
        };
        if pending.held.len() + bytes.len() > limit {
            self.stream_error(slot, StreamError::PolicyViolation, fx);
            return;
        }
        pending.held.extend_from_slice(bytes);
    }

    /// Answers the pending resumptions that can be answered now: their session's stanzas are
    /// all handled, their bound passed, or their session ended. Called at the end of every
    /// entry point (answers may unpause conns, whose held bytes may wake others).
    pub(crate) fn finish_resumes(&mut self, fx: &mut impl Effects) {
        loop {
            let woken = self.home.sm.take_wake(self.home.now_ms);
            if woken.is_empty() {
                return;
            }
            for key in woken {
                self.settle_resume(key, fx);
            }
        }
    }

    /// Answers the resumption pending on `key` if it can be answered now (stale wakes and
    /// timers are ignored).
    fn settle_resume(&mut self, key: ConnKey, fx: &mut impl Effects) {
        let Some(slot) = self.conns.slot_of(key) else {
            return;
        };
        let Some(pending) = self.home.sessions.pending(slot) else {
            return;
        };
        let (token, deadline_ms) = (pending.token, pending.deadline_ms);
        let session = self
            .home
            .sm
            .get(token)
            .filter(|s| s.resuming() == Some(key));
        let state = session.map(|s| (s.all_handled(), s.handled()));
        match state {
            Some((true, _)) => {
                let held = self.unpause(slot, token);
                self.attach(slot, token, fx);
                self.feed_held(slot, &held, fx);
            }
            Some((false, handled)) if deadline_ms <= self.home.now_ms => {
                let held = self.unpause(slot, token);
                self.home.sm.remove(token);
                self.fail_waited(slot, "resource-constraint", Some(handled), fx);
                self.feed_held(slot, &held, fx);
            }
            Some(_) => {}
            None => {
                // The session ended meanwhile (a new bind of its full JID, a newer resume).
                let held = self.unpause(slot, token);
                self.fail_waited(slot, "item-not-found", None, fx);
                self.feed_held(slot, &held, fx);
            }
        }
    }

    /// Ends the pause of the conn in `slot` (and the session's `resuming`, if it names this
    /// conn); returns the held bytes.
    fn unpause(&mut self, slot: u32, token: SessionRef) -> Vec<u8> {
        let Some(conn) = self.home.sessions.get_mut(slot) else {
            return Vec::new();
        };
        let key = conn.key;
        let pending = self.home.sessions.take_pending(slot);
        let session = self.home.sm.get_mut(token);
        if let Some(detached) = session.and_then(|s| s.detached.as_mut()) {
            if detached.resuming == Some(key) {
                detached.resuming = None;
            }
        }
        pending.map(|p| p.held).unwrap_or_default()
    }

    /// `<failed/>` after a wait; the client waited on us, so its bind window restarts.
    fn fail_waited(
        &mut self,
        slot: u32,
        condition: &str,
        handled: Option<u64>,
        fx: &mut impl Effects,
    ) {
        self.home.stats.resume_failures += 1;
        self.sm_failed_handled(slot, condition, handled, fx);
        let now_ms = self.home.now_ms;
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.connected_ms = now_ms;
        }
    }

    fn feed_held(&mut self, slot: u32, held: &[u8], fx: &mut impl Effects) {
        let alive = self
            .conns
            .get(slot)
            .is_some_and(|c| c.phase != Phase::Closing);
        if alive && !held.is_empty() {
            self.feed(slot, held, fx);
        }
    }

    /// Attaches the session to the conn in `slot`, answers `<resumed h>`, then resends what
    /// the client had not acknowledged and flushes what waited while it was detached.
    fn attach(&mut self, slot: u32, token: SessionRef, fx: &mut impl Effects) {
        let Some(key) = self.conns.get(slot).map(|c| c.key) else {
            return;
        };
        // Detached: by its stream's end or by `take_over` (`complete_resume`).
        let Some(detached) = self.home.sm.attach(token, key) else {
            return;
        };
        let Some(session) = self.home.sm.get_mut(token) else {
            return;
        };
        let Detached {
            jid,
            available,
            priority,
            ..
        } = *detached;
        let handled = session.handled();
        let unacked = session.take_unacked();
        let previd = self.home.sm.resume_id(token, jid.bare_str());
        let previd = previd.unwrap_or_default();
        self.enter_directory(jid.bare_str(), slot);
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.jid = Some(jid);
        conn.phase = Phase::Bound;
        let session = self.home.sessions.open(slot, key);
        session.set_sm(Some(token));
        (session.available, session.priority) = (available, priority);
        self.reply.clear();
        replies::sm_resumed(&mut self.reply, handled, &previd);
        fx.send(key, &self.reply);
        self.home.stats.resumed += 1;
        self.home.resend(&self.conns, slot, unacked, fx);
    }
}
