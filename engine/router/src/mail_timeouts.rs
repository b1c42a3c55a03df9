//! What happens when mail waits too long for its answer (`RouterConfig::mail_timeout_ms`):
//! the sender gets a `remote-server-timeout` stanza error (type wait) for that stanza, and
//! the stanza counts as handled (its XEP-0198 ack goes out: the error is its outcome).
//!
//! What it does not do: keep the deadlines (see `deadlines`) or retry anything. A late
//! answer is ignored (`mark_handled` of a handled stanza, `Gathered` of a gather that is
//! gone): the message may still have been stored at the other location, so the client may
//! later see it delivered after the error, and may have sent it again. Inside one node the
//! mailbox lanes never lose mail, so today this fires only where a test drops mail.
//!
//! Invariants: an entry fires at most once; an entry whose answer came in time is dropped
//! without effect when it reaches the front of the queue.

use rookery_proto::{Jid, StanzaKind};

use crate::deadlines::Waiting;
use crate::effects::{Effects, StanzaType};
use crate::home::routing::{kind_name, wants_error, Envelope};
use crate::home::sm::SessionRef;
use crate::mail::AckRef;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;

impl Router {
    /// Fires the deadlines that passed and drops answered entries from the queue's front.
    pub(crate) fn expire_mail(&mut self, fx: &mut impl Effects) {
        let (mut to, mut id) = (Vec::new(), Vec::new());
        while let Some((what, due)) = self.home.deadlines.front(self.home.now_ms) {
            let waiting = match what {
                Waiting::Ack { ack, .. } => self
                    .home
                    .sm
                    .get(ack.session)
                    .is_some_and(|session| session.is_outstanding(ack.stanza)),
                Waiting::Gather(id) => self.home.gathers.is_pending(id),
            };
            if waiting && !due {
                // The oldest still waits: every later one waits longer.
                break;
            }
            to.clear();
            id.clear();
            self.home.deadlines.pop_front(&mut to, &mut id);
            if !waiting {
                continue;
            }
            self.home.stats.mail_timeouts += 1;
            match what {
                Waiting::Ack { ack, kind, ty, .. } => {
                    self.ack_timed_out(ack, (kind, ty), &to, &id, fx);
                }
                Waiting::Gather(gather) => self.gather_timed_out(gather, fx),
            }
        }
    }

    /// The `Committed` for the sender's stanza `ack` did not come: an error to the sender
    /// (if the stanza wants one), then the stanza is handled.
    fn ack_timed_out(
        &mut self,
        ack: AckRef,
        (kind, ty): (StanzaKind, StanzaType),
        to: &[u8],
        id: &[u8],
        fx: &mut impl Effects,
    ) {
        let sender = self.sm_session_jid(ack.session);
        let recipient = std::str::from_utf8(to)
            .ok()
            .and_then(|to| Jid::parse(to).ok());
        if let (Some(sender), Some(recipient)) = (sender, recipient) {
            if wants_error(kind, ty) {
                let id = std::str::from_utf8(id).ok().filter(|id| !id.is_empty());
                self.send_timeout_error(&sender, &recipient, kind, id, fx);
            }
        }
        self.home.sm.mark_handled(ack.session, ack.stanza, fx);
    }

    /// The full JID of XEP-0198 session `token`: its conn's while attached, kept with it
    /// while detached.
    fn sm_session_jid(&self, token: SessionRef) -> Option<Jid> {
        let session = self.home.sm.get(token)?;
        match session.conn() {
            Some(key) => self.conns.get(self.conns.slot_of(key)?)?.jid.clone(),
            None => session.detached_jid().cloned(),
        }
    }

    /// `<KIND type='error'>` with `remote-server-timeout` from `from` to `sender`, routed
    /// like any stanza (the sender may be detached: its queue keeps it).
    pub(crate) fn send_timeout_error(
        &mut self,
        sender: &Jid,
        from: &Jid,
        kind: StanzaKind,
        id: Option<&str>,
        fx: &mut impl Effects,
    ) {
        let mut error = Vec::with_capacity(256);
        let reply = ReplyTo {
            id,
            from: Some(from.as_str()),
            to: Some(sender.as_str()),
        };
        let error_kind = StanzaError::RemoteServerTimeout;
        replies::stanza_error(&mut error, kind_name(kind), reply, error_kind);
        let envelope = Envelope {
            to: sender,
            from,
            kind,
            ty: StanzaType::Error,
            stanza: &error,
        };
        self.home.route(&self.conns, &envelope, None, fx);
    }
}
