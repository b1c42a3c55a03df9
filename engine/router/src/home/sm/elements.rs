//! XEP-0198 stream management on the wire: `<enable/>`, `<r/>`, `<a/>`, `<resume/>`, and what
//! happens to a session when its stream dies (detached for `resume_timeout_ms`, or ended).
//!
//! What it does: answers the client's SM elements (enable after bind; resume after SASL and
//! before bind, handed to `resume`), applies acknowledgements (deleting acknowledged stored
//! messages), detaches or ends sessions, and runs the SM timers.
//!
//! What it does not do: resume a session (see `resume`), count stanzas or keep queues (see
//! `sm`), deliver stored messages (see `offline`), or decide deadlines other than the
//! resumption window.
//!
//! Invariants:
//! - a session is detached only if resumption was enabled and the stream died without a clean
//!   close, a conflict, a shutdown or a protocol violation of its own (`SessionEnd`);
//! - an ended session's unacked stored messages stay in the store: nothing is deleted on
//!   stream death, so they reach the next login;
//! - a resumed session is attached to exactly one conn, which is `Bound` and in the directory.
//!
//! Choice (brief item 3): an `<r/>` is answered once every stanza received before it is
//! handled, not after a fixed delay with a partial count. A store that keeps failing thus
//! keeps the `<a/>` back, which is the point: nothing unstored is acknowledged.

use rookery_proto::element::Element;
use rookery_proto::Jid;

use crate::effects::Effects;
use crate::errors::{SessionEnd, StreamError};
use crate::home::sm::{Detached, SessionRef, SmSession, TooHigh};
use crate::mail::AckRef;
use crate::replies;
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::Next;

/// The XEP-0198 namespace.
pub const SM_NS: &str = "urn:xmpp:sm:3";

impl Router {
    /// A first-level element in the SM namespace, after SASL (before or after bind).
    pub(crate) fn on_sm_element(&mut self, slot: u32, bytes: &[u8], fx: &mut impl Effects) -> Next {
        let Ok(element) = Element::parse(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        let Some(conn) = self.conns.get(slot) else {
            return Next::Stop;
        };
        let session = self.home.sessions.get(slot);
        let (phase, enabled) = (conn.phase, session.is_some_and(|s| s.sm().is_some()));
        match (element.local_name(), phase) {
            ("enable", Phase::Bound) => self.enable(slot, &element, fx),
            ("resume", Phase::AwaitBind) => return self.on_resume(slot, &element, fx),
            // XEP-0198 3, 6: enable before bind (or twice), resume after bind.
            ("enable" | "resume", _) => self.sm_failed(slot, "unexpected-request", fx),
            ("r", Phase::Bound) if enabled => self.on_request(slot, fx),
            ("a", Phase::Bound) if enabled => return self.on_ack(slot, &element, fx),
            _ => {
                self.stream_error(slot, StreamError::UnsupportedStanzaType, fx);
                return Next::Stop;
            }
        }
        Next::Continue
    }

    fn enable(&mut self, slot: u32, element: &Element<'_>, fx: &mut impl Effects) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if self
            .home
            .sessions
            .get(slot)
            .is_some_and(|s| s.sm().is_some())
        {
            return self.sm_failed(slot, "unexpected-request", fx);
        }
        let (Some(jid), key) = (conn.jid.as_ref(), conn.key) else {
            return;
        };
        let resume = matches!(element.attr("resume"), Some("true" | "1"));
        let token = self.home.sm.insert(SmSession::new(resume, key));
        let resume_id = self.home.sm.resume_id(token, jid.bare_str());
        if let Some(session) = self.home.sessions.get_mut(slot) {
            session.set_sm(Some(token));
        }
        let max_s = self.config.resume_timeout_ms.div_ceil(1_000);
        self.reply.clear();
        replies::sm_enabled(&mut self.reply, resume_id.as_deref().map(|id| (id, max_s)));
        fx.send(key, &self.reply);
    }

    fn on_request(&mut self, slot: u32, fx: &mut impl Effects) {
        let Some(token) = self.home.sessions.get(slot).and_then(|s| s.sm()) else {
            return;
        };
        let Some(session) = self.home.sm.get_mut(token) else {
            return;
        };
        if session.request() {
            let (handled, conn) = (session.handled(), session.conn());
            self.reply.clear();
            replies::sm_ack(&mut self.reply, handled);
            if let Some(conn) = conn {
                fx.send(conn, &self.reply);
            }
        }
    }

    fn on_ack(&mut self, slot: u32, element: &Element<'_>, fx: &mut impl Effects) -> Next {
        let h = element.attr("h").and_then(|h| h.parse::<u32>().ok());
        let (Some(h), Some(token)) = (h, self.home.sessions.get(slot).and_then(|s| s.sm())) else {
            self.stream_error(slot, StreamError::UnsupportedStanzaType, fx);
            return Next::Stop;
        };
        if let Err(TooHigh { h, sent }) = self.acknowledge(slot, token, h) {
            self.reply.clear();
            let dialect = self
                .conns
                .get(slot)
                .map_or_else(Default::default, |c| c.dialect);
            replies::handled_count_too_high(&mut self.reply, dialect, h, sent);
            self.stream_error_raw(slot, StreamError::UndefinedCondition.into(), fx);
            return Next::Stop;
        }
        // The acknowledged ones left the window: a backlog continues (see `delivery`).
        if let Some(key) = self.conns.get(slot).map(|c| c.key) {
            self.home.deliveries.wake(slot, key);
        }
        Next::Continue
    }

    /// Applies the client's count `h` for session `token` of the user of the conn in `slot`
    /// (its own, or the one resuming it): the stanzas it covers leave the unacked queue, and
    /// the stored messages among them leave the store.
    pub(crate) fn acknowledge(
        &mut self,
        slot: u32,
        token: SessionRef,
        h: u32,
    ) -> Result<(), TooHigh> {
        let Some(owner) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return Ok(());
        };
        let Some(session) = self.home.sm.get_mut(token) else {
            return Ok(());
        };
        let count = session.check_ack(h)?;
        let acked = session.release(count);
        let owner = owner.bare_str();
        for id in acked {
            // An id already acknowledged through another session is simply gone.
            let _ = self.home.store.ack(owner, id);
        }
        Ok(())
    }

    /// The SM part of the end of the stream bound to `full`: detach (resumable) or end the
    /// session. Returns true when the session was detached (its presence lives on until it
    /// expires).
    pub(crate) fn end_sm(
        &mut self,
        token: SessionRef,
        end: SessionEnd,
        (full, (available, priority)): (&Jid, (bool, i8)),
    ) -> bool {
        let Some(session) = self.home.sm.get(token) else {
            return false;
        };
        if end == SessionEnd::Terminate || !session.resumable {
            self.home.sm.remove(token);
            return false;
        }
        let until_ms = self
            .home
            .now_ms
            .saturating_add(self.config.resume_timeout_ms);
        let state = Detached {
            jid: full.clone(),
            until_ms,
            resuming: None,
            available,
            priority,
        };
        self.home.sm.detach(token, state);
        true
    }

    /// Ends a detached session bound to the same full JID as a new bind (RFC 6120 7.7.2.2:
    /// the newer one wins, as for attached sessions).
    pub(crate) fn end_detached(&mut self, full: &Jid, fx: &mut impl Effects) {
        for token in self.home.sm.detached_of(full.bare_str()) {
            let replaced = self
                .home
                .sm
                .get(token)
                .is_some_and(|s| s.detached_jid() == Some(full));
            if replaced {
                let session = self.home.sm.remove(token);
                let was_available = session
                    .and_then(|s| s.detached)
                    .is_some_and(|d| d.available);
                self.end_presence(full, None, was_available, fx);
            }
        }
    }

    /// The next inbound stanza number of the session in `slot`, if it counts (XEP-0198).
    pub(crate) fn sm_receive(&mut self, slot: u32) -> Option<AckRef> {
        let token = self.home.sessions.get(slot)?.sm()?;
        let stanza = self.home.sm.get_mut(token)?.receive();
        Some(AckRef {
            origin: self.home.location,
            session: token,
            stanza,
        })
    }

    /// Request pacing and resumption windows.
    pub(crate) fn sm_tick(&mut self, fx: &mut impl Effects) {
        let mut requests = Vec::new();
        self.home.sm.due_requests(self.home.now_ms, &mut requests);
        for key in requests {
            fx.send(key, replies::SM_REQUEST);
        }
        let mut expired = Vec::new();
        self.home.sm.due_detached(self.home.now_ms, &mut expired);
        for token in expired {
            // Its unacked stored messages stay queued for the next login; its presence ends.
            let session = self.home.sm.remove(token);
            if let Some(detached) = session.and_then(|s| s.detached) {
                self.end_presence(&detached.jid, None, detached.available, fx);
            }
        }
    }

    pub(crate) fn sm_failed(&mut self, slot: u32, condition: &str, fx: &mut impl Effects) {
        self.sm_failed_handled(slot, condition, None, fx);
    }

    /// `<failed/>`, with the handled count `h` when the session is known.
    pub(crate) fn sm_failed_handled(
        &mut self,
        slot: u32,
        condition: &str,
        handled: Option<u64>,
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        self.reply.clear();
        replies::sm_failed(&mut self.reply, condition, handled);
        fx.send(conn.key, &self.reply);
    }
}
