//! The client's state apart from the framer: where the stream is, login flags, and the heap
//! block that exists only while a SCRAM exchange or an XEP-0198 session does (see `extra`).
//! Frames are dispatched here by phase; `login`, `sasl` and `sm` hold the steps.
//!
//! What it does not do: framing (the `Client` owns the framer and resets it when this state
//! asks for a restart).
//!
//! Invariants: `extra` is `None` whenever neither a SCRAM exchange nor an XEP-0198 session
//! exists (an idle client without XEP-0198 owns no heap); once `Done`, frames are not read.

use rookery_proto::{Frame, StanzaKind, StanzaView};

use crate::account::Account;
use crate::errors::StreamError;
use crate::event::{Event, Flow, Sink};
use crate::extra::Extra;
use crate::options::{Mechanisms, Options, SmMode};
use crate::sm::SmStatus;
use crate::wire;

/// What the handlers of incoming frames act through, borrowed once per frame: the account
/// (credentials, nonces, resource), the output buffer and the caller's sink.
pub(crate) struct Io<'a, S> {
    pub account: &'a mut dyn Account,
    pub out: &'a mut Vec<u8>,
    pub sink: &'a mut S,
}

/// Where the client is in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No stream yet (`start` not called).
    Idle,
    AwaitHeader,
    AwaitFeatures,
    /// We sent `<starttls/>`; waiting for `<proceed/>`.
    AwaitProceed,
    /// The server said `<proceed/>`: the caller installs its TLS layer and calls
    /// [`Client::tls_started`](crate::Client::tls_started). Input is not read meanwhile
    /// (what follows `<proceed/>` is TLS, not XML).
    AwaitTls,
    AwaitSasl,
    AwaitResume,
    AwaitBind,
    AwaitSession,
    Online,
    /// We sent `</stream:stream>`; waiting for the server's.
    Closing,
    /// The stream is over; input is ignored.
    Done,
}

impl Phase {
    pub(crate) fn reads(self) -> bool {
        !matches!(self, Phase::Idle | Phase::AwaitTls | Phase::Done)
    }
}

/// Login flags (bits of `Stream::flags`).
pub(crate) const AUTHENTICATED: u8 = 1 << 0;
pub(crate) const RESTART: u8 = 1 << 1;
pub(crate) const SESSION_REQUIRED: u8 = 1 << 2;
pub(crate) const SM_OFFERED: u8 = 1 << 3;
/// The caller wants STARTTLS before authentication (kept across streams, see `start`).
pub(crate) const WANT_STARTTLS: u8 = 1 << 4;
/// This conn runs over TLS (STARTTLS done): no second `<starttls/>`.
pub(crate) const SECURED: u8 = 1 << 5;

/// Everything of a client but its framer, handed to the event sink so the caller can count
/// what it sends and reach its XEP-0198 data while an event borrows the framer.
#[derive(Debug)]
pub struct Stream<X> {
    pub(crate) phase: Phase,
    pub(crate) flags: u8,
    pub(crate) mechanisms: Mechanisms,
    pub(crate) sm_mode: SmMode,
    pub(crate) extra: Option<Box<Extra<X>>>,
}

impl<X> Stream<X> {
    pub(crate) fn new(options: Options) -> Stream<X> {
        Stream {
            phase: Phase::Idle,
            flags: 0,
            mechanisms: options.mechanisms,
            sm_mode: options.sm,
            extra: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the next streams negotiate STARTTLS (RFC 6120 5) before authenticating: the
    /// client sends `<starttls/>` on the first features, reports [`Event::StartTls`] on
    /// `<proceed/>` and waits for [`Client::tls_started`](crate::Client::tls_started). A
    /// server that does not offer it ends the stream (`ProtocolError`): never a silent
    /// fallback to plaintext.
    pub fn set_starttls(&mut self, wanted: bool) {
        if wanted {
            self.flags |= WANT_STARTTLS;
        } else {
            self.flags &= !WANT_STARTTLS;
        }
    }

    /// Changes whether the next fresh session enables XEP-0198 (a resumption is unaffected).
    pub fn set_sm_mode(&mut self, mode: SmMode) {
        self.sm_mode = mode;
    }

    pub fn sm_mode(&self) -> SmMode {
        self.sm_mode
    }

    /// The caller wrote `count` stanzas (message, presence, iq) to the stream: counted for
    /// XEP-0198 from our `<enable/>` on (the server counts from its receipt, which precedes
    /// them on the wire).
    pub fn count_sent(&mut self, count: u32) {
        if let Some(sm) = self.sm_mut() {
            sm.outbound = sm.outbound.wrapping_add(count);
        }
    }

    /// Appends `<r/>` when this stream asked for XEP-0198; returns whether it did.
    pub fn request_ack(&mut self, out: &mut Vec<u8>) -> bool {
        if self.sm().is_none() || !matches!(self.phase, Phase::Online | Phase::AwaitResume) {
            return false;
        }
        wire::request(out);
        true
    }

    /// XEP-0198 counters, while a session exists (from `<enable/>`; kept across conns while
    /// resumable).
    pub fn sm_status(&self) -> Option<SmStatus> {
        let resumable = self.resume_id().is_some();
        self.sm().map(|sm| sm.status(resumable))
    }

    /// The caller's data of the current XEP-0198 session.
    pub fn sm_data(&self) -> Option<&X> {
        self.sm().map(|sm| &sm.data)
    }

    pub fn sm_data_mut(&mut self) -> Option<&mut X> {
        self.sm_mut().map(|sm| &mut sm.data)
    }

    /// Drops a resumable XEP-0198 session: the next stream binds afresh. For a caller that
    /// would rather abandon unacknowledged stanzas than resend them.
    pub fn forget_resumption(&mut self) {
        if !matches!(self.phase, Phase::Online | Phase::Closing) {
            self.set_sm(None);
        }
    }

    pub(crate) fn start(&mut self, domain: &str, out: &mut Vec<u8>) {
        let resumable = self.sm().is_some_and(|sm| sm.enabled) && self.resume_id().is_some();
        if !resumable {
            self.set_sm(None);
        }
        self.set_sasl(None);
        self.flags &= WANT_STARTTLS;
        wire::stream_header(domain, out);
        self.phase = Phase::AwaitHeader;
    }

    pub(crate) fn close(&mut self, out: &mut Vec<u8>) {
        if matches!(self.phase, Phase::Idle | Phase::Closing | Phase::Done) {
            return;
        }
        out.extend_from_slice(b"</stream:stream>");
        self.phase = Phase::Closing;
        // A clean close ends the XEP-0198 session (XEP-0198 5): nothing to resume.
        self.set_resume_id(None);
    }

    /// The TLS layer is in place after `<proceed/>`: the new stream's header (RFC 6120
    /// 5.4.3.3) goes to `out`, to be sent through the layer.
    pub(crate) fn tls_started(&mut self, domain: &str, out: &mut Vec<u8>) -> bool {
        if self.phase != Phase::AwaitTls {
            return false;
        }
        self.flags |= SECURED;
        wire::stream_header(domain, out);
        self.phase = Phase::AwaitHeader;
        true
    }

    /// Whether the framer must be reset before the next byte (after SASL success).
    pub(crate) fn take_restart(&mut self) -> bool {
        let restart = self.flags & RESTART != 0;
        self.flags &= !RESTART;
        restart
    }

    /// Ends the stream with a protocol error.
    pub(crate) fn fail(
        &mut self,
        detail: &'static str,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        self.phase = Phase::Done;
        sink(Event::ProtocolError { detail }, self, out)
    }

    /// Ends the stream with `event`.
    pub(crate) fn end(
        &mut self,
        event: Event<'_>,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        self.phase = Phase::Done;
        sink(event, self, out)
    }
}

impl<X: Default> Stream<X> {
    pub(crate) fn on_frame(&mut self, frame: Frame<'_>, io: &mut Io<'_, impl Sink<X>>) -> Flow {
        match frame {
            Frame::StreamOpen(_) if self.phase == Phase::AwaitHeader => {
                self.phase = Phase::AwaitFeatures;
                Flow::Continue
            }
            Frame::StreamOpen(_) => self.fail("unexpected stream header", io.out, io.sink),
            Frame::StreamClose => self.end(Event::StreamClosed, io.out, io.sink),
            Frame::Stanza(bytes) => self.on_stanza(bytes, io),
        }
    }

    fn on_stanza(&mut self, bytes: &[u8], io: &mut Io<'_, impl Sink<X>>) -> Flow {
        let Ok(view) = StanzaView::parse(bytes) else {
            return self.fail("unparsable stanza", io.out, io.sink);
        };
        if view.local_name() == "error" && view.name().contains(':') {
            return self.end(
                Event::StreamError(StreamError::parse(&view)),
                io.out,
                io.sink,
            );
        }
        match self.phase {
            Phase::AwaitFeatures => self.on_features(bytes, io),
            Phase::AwaitProceed => self.on_starttls_reply(&view, io),
            Phase::AwaitSasl => self.on_sasl(&view, io),
            Phase::AwaitResume => self.on_resume_reply(&view, io),
            Phase::AwaitBind | Phase::AwaitSession => self.on_iq_reply(view, io.out, io.sink),
            Phase::Online | Phase::Closing => self.on_online(view, io.out, io.sink),
            Phase::Idle | Phase::AwaitHeader | Phase::AwaitTls | Phase::Done => {
                self.fail("stanza before the stream header", io.out, io.sink)
            }
        }
    }

    /// A first-level element on a bound stream.
    fn on_online(
        &mut self,
        view: StanzaView<'_>,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        if view.kind() == StanzaKind::Other && view.xmlns() == Some(crate::SM_NS) {
            return self.on_sm_element(&view, out, sink);
        }
        if view.kind() != StanzaKind::Other {
            if let Some(sm) = self.sm_mut() {
                sm.received_stanza();
            }
        }
        sink(Event::Stanza(view), self, out)
    }
}
