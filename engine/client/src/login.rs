//! The login steps around SASL: stream features, resource binding, the legacy session, and
//! the XEP-0198 `<enable/>` that ends the login.
//!
//! What it does not do: the SASL exchange (`sasl`), resumption (`sm`).
//!
//! Invariants: a bind or session reply is recognised by its id; other stanzas arriving
//! meanwhile are reported as they are (not counted: XEP-0198 is not enabled yet).

use std::borrow::Cow;

use rookery_proto::element::Element;
use rookery_proto::{ns, StanzaKind, StanzaView};

use crate::account::Account;
use crate::event::{Event, Flow, Sink};
use crate::options::SmMode;
use crate::sm::Sm;
use crate::stream::{
    Io, Phase, Stream, AUTHENTICATED, SECURED, SESSION_REQUIRED, SM_OFFERED, WANT_STARTTLS,
};
use crate::text::element_text;
use crate::wire::{self, BIND_ID, SESSION_ID};

impl<X: Default> Stream<X> {
    pub(crate) fn on_features(&mut self, bytes: &[u8], io: &mut Io<'_, impl Sink<X>>) -> Flow {
        let Ok(features) = Element::parse(bytes) else {
            return self.fail("unparsable stream features", io.out, io.sink);
        };
        if features.local_name() != "features" {
            return self.fail("expected stream features", io.out, io.sink);
        }
        if self.flags & (WANT_STARTTLS | SECURED | AUTHENTICATED) == WANT_STARTTLS {
            return self.start_tls(&features, io);
        }
        if self.flags & AUTHENTICATED == 0 {
            return self.start_sasl(&features, io);
        }
        if features.child("sm", crate::SM_NS).is_some() {
            self.flags |= SM_OFFERED;
        }
        if features.child("bind", ns::BIND).is_none() {
            return self.fail(
                "no resource binding offered after authentication",
                io.out,
                io.sink,
            );
        }
        // RFC 3921 session establishment is needed only when offered without <optional/>.
        let session_required = features
            .child("session", ns::SESSION)
            .is_some_and(|s| s.children().all(|c| c.local_name() != "optional"));
        if session_required {
            self.flags |= SESSION_REQUIRED;
        }
        if self.sm().is_some() {
            return self.resume_or_bind(io);
        }
        self.bind(io.account, io.out);
        Flow::Continue
    }

    /// Pre-TLS features of a client that wants STARTTLS: `<starttls/>` if offered, else the
    /// stream ends (no fallback to plaintext).
    fn start_tls(&mut self, features: &Element<'_>, io: &mut Io<'_, impl Sink<X>>) -> Flow {
        if features.child("starttls", wire::TLS_NS).is_none() {
            return self.fail("the server does not offer STARTTLS", io.out, io.sink);
        }
        wire::starttls(io.out);
        self.phase = Phase::AwaitProceed;
        Flow::Continue
    }

    /// The answer to `<starttls/>`: `<proceed/>` (report it and stop reading: TLS follows) or
    /// `<failure/>` (the server closes the stream, RFC 6120 5.4.2.2).
    pub(crate) fn on_starttls_reply(
        &mut self,
        view: &StanzaView<'_>,
        io: &mut Io<'_, impl Sink<X>>,
    ) -> Flow {
        if view.xmlns() != Some(wire::TLS_NS) {
            return self.fail("unexpected reply to STARTTLS", io.out, io.sink);
        }
        match view.local_name() {
            "proceed" => {
                self.phase = Phase::AwaitTls;
                (io.sink)(Event::StartTls, self, io.out);
                Flow::Stop
            }
            "failure" => self.fail("the server refused STARTTLS", io.out, io.sink),
            _ => self.fail("unexpected reply to STARTTLS", io.out, io.sink),
        }
    }

    pub(crate) fn bind(&mut self, account: &dyn Account, out: &mut Vec<u8>) {
        wire::bind(BIND_ID, account.resource().as_deref(), out);
        self.phase = Phase::AwaitBind;
    }

    /// Waits for the result of our bind or session iq; other stanzas are reported as they are.
    pub(crate) fn on_iq_reply(
        &mut self,
        view: StanzaView<'_>,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        let id = if self.phase == Phase::AwaitBind {
            BIND_ID
        } else {
            SESSION_ID
        };
        let is_reply = view.kind() == StanzaKind::Iq && view.id().as_deref() == Some(id);
        if !is_reply {
            return sink(Event::Stanza(view), self, out);
        }
        if view.stanza_type().as_deref() != Some("result") {
            let condition = stanza_error_condition(&view);
            return self.end(Event::BindFailed { condition }, out, sink);
        }
        if self.phase == Phase::AwaitSession {
            return self.go_online(out, sink);
        }
        let Some(jid) = bound_jid(&view) else {
            return self.fail("bind result without a JID", out, sink);
        };
        let bound = sink(Event::Bound { jid }, self, out);
        if self.flags & SESSION_REQUIRED != 0 {
            wire::session(out);
            self.phase = Phase::AwaitSession;
            return bound;
        }
        match (bound, self.go_online(out, sink)) {
            (Flow::Continue, Flow::Continue) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    /// Ends the login: `<enable/>` first (so the server counts our first stanza after it),
    /// then `Online`.
    fn go_online(&mut self, out: &mut Vec<u8>, sink: &mut impl Sink<X>) -> Flow {
        let resumable = match self.sm_mode {
            SmMode::Off => None,
            SmMode::Enable => Some(false),
            SmMode::EnableResumable => Some(true),
        };
        if let Some(resumable) = resumable.filter(|_| self.flags & SM_OFFERED != 0) {
            wire::enable(resumable, out);
            self.set_sm(Some(Sm::requested()));
        }
        self.phase = Phase::Online;
        sink(Event::Online, self, out)
    }
}

/// The `<jid/>` of a bind result.
fn bound_jid<'a>(view: &StanzaView<'a>) -> Option<Cow<'a, str>> {
    let bind = view.children().find(|c| c.local_name == "bind")?;
    let bind = StanzaView::parse(bind.bytes).ok()?;
    let jid = bind.children().find(|c| c.local_name == "jid")?;
    element_text(jid.bytes).filter(|jid| !jid.is_empty())
}

/// The defined condition of an iq error (`undefined-condition` if none is given).
fn stanza_error_condition<'a>(view: &StanzaView<'a>) -> &'a str {
    view.children()
        .find(|c| c.local_name == "error")
        .and_then(|error| {
            let error = StanzaView::parse(error.bytes).ok()?;
            error
                .children()
                .find(|c| c.xmlns == Some(ns::STANZAS_ERRORS))
                .map(|c| c.local_name)
        })
        .unwrap_or("undefined-condition")
}
