//! The stream layer of a conn: the feed loop over the framer, stream headers and the dispatch
//! of stanzas by phase.
//!
//! Submodules: `conn` (per-conn state, slab), `header` (stream header check, our header and
//! features, the `Dialect` seam), `sasl` (authentication over the account backends),
//! `throttle` (failed logins slowed per address and account), `register` (XEP-0077
//! registration before authentication), `tls` (STARTTLS), `bind` (resource binding,
//! hand-off), `redirect` (see-other-host to a user's home node), `component` (XEP-0114 component
//! streams).
//!
//! What it does not do: answering or routing stanzas of a session (see `home::local`,
//! `home::routing`), stream management (see `home::sm`).
//!
//! Invariants:
//! - the framer is moved out of the conn for the duration of `feed`, so frames (which borrow
//!   it) can be handled with `&mut Router`; it goes back unless the conn was handed off.
//! - the framer is reset right after the frame that ended SASL with success, before any
//!   further byte is parsed (RFC 6120 6.4.6: the stream restarts).
//! - a closed conn (`Phase::Closing`) parses nothing more, nor does a conn whose `<resume/>`
//!   waits for its answer (its bytes are held, see `resume`).

pub(crate) mod bind;
pub(crate) mod component;
pub(crate) mod conn;
pub(crate) mod header;
pub(crate) mod redirect;
pub(crate) mod register;
pub(crate) mod sasl;
pub(crate) mod throttle;
pub(crate) mod tls;

use rookery_proto::{Frame, Jid};

use crate::effects::{Effects, HomeRequest};
use crate::errors::StreamError;
use crate::location::ShardId;
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::header::{check_header, Stage};

pub use sasl::MAX_AUTH_FAILURES;

/// What the feed loop does after one frame.
pub(crate) enum Next {
    Continue,
    /// SASL succeeded: reset the framer before parsing the next byte.
    Restart,
    /// The conn is closing: stop parsing.
    Stop,
    /// A `<resume/>` waits for its answer: keep the rest unparsed until then (see `resume`).
    Pause,
    /// A SASL failure answer waits (see `throttle`): keep the rest unparsed until then.
    Delay,
    /// `<proceed/>` went out: every later byte is TLS, for the layer below (see `tls`).
    StartTls,
    /// The bind, resumption or authentication must complete on the user's home shard,
    /// `dest`; `claimed` is the user an authentication is for (the conn has no JID yet).
    HandOff {
        dest: ShardId,
        request: HomeRequest,
        claimed: Option<Jid>,
    },
}

impl Router {
    /// Feeds received bytes through the conn's framer, handling each frame in order (or holds
    /// them while a `<resume/>` waits for its answer).
    pub(crate) fn feed(&mut self, slot: u32, data: &[u8], fx: &mut impl Effects) {
        if self.home.sessions.pending(slot).is_some() {
            return self.hold_bytes(slot, data, fx);
        }
        if self.throttle.is_delayed(slot) {
            return self.hold_throttled(slot, data, fx);
        }
        let Some(mut framer) = self.conns.get_mut(slot).and_then(|c| c.framer.take()) else {
            return;
        };
        let mut rest = data;
        loop {
            // A fresh slice per frame: the frame's borrow of the framer ends with this turn.
            let mut input = rest;
            let next = match framer.next_frame(&mut input) {
                Ok(Some(frame)) => self.on_frame(slot, frame, fx),
                Ok(None) => break,
                Err(error) => {
                    self.stream_error(slot, StreamError::of_frame(&error), fx);
                    Next::Stop
                }
            };
            rest = &rest[rest.len() - input.len()..];
            if self.home.doomed.contains(&slot) {
                // Its XEP-0198 queue overflowed: it is closed now, before another frame (an
                // `<r/>` above all) could be answered with a count covering stanzas whose
                // outcome it will never hear.
                self.close_doomed(fx);
                break;
            }
            match next {
                Next::Continue => {}
                Next::Restart => framer.reset(),
                Next::Stop => break,
                Next::Pause => {
                    self.hold_bytes(slot, rest, fx);
                    break;
                }
                Next::Delay => {
                    self.hold_throttled(slot, rest, fx);
                    break;
                }
                Next::StartTls => {
                    framer.reset();
                    if let Some(conn) = self.conns.get(slot) {
                        fx.start_tls(conn.key, rest);
                    }
                    break;
                }
                Next::HandOff {
                    dest,
                    request,
                    claimed,
                } => return self.hand_off(slot, framer, (dest, request, claimed), rest, fx),
            }
        }
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.framer = Some(framer);
        }
    }

    /// Bytes of a conn whose failure answer waits: held (a stanza's worth at most; past it
    /// the stream is closed with policy-violation).
    fn hold_throttled(&mut self, slot: u32, bytes: &[u8], fx: &mut impl Effects) {
        if !bytes.is_empty() && !self.throttle.hold(slot, bytes) {
            self.stream_error(slot, StreamError::PolicyViolation, fx);
        }
    }

    fn on_frame(&mut self, slot: u32, frame: Frame<'_>, fx: &mut impl Effects) -> Next {
        let Some(phase) = self.conns.get(slot).map(|c| c.phase) else {
            return Next::Stop;
        };
        match (frame, phase) {
            (_, Phase::Closing) => Next::Stop,
            (Frame::StreamClose, _) => {
                self.close_stream(slot, fx);
                Next::Stop
            }
            (Frame::StreamOpen(header), _) => self.on_stream_open(slot, phase, header, fx),
            (Frame::Stanza(bytes), Phase::AwaitAuth | Phase::AwaitResponse) => {
                self.on_sasl(slot, phase, bytes, fx)
            }
            (Frame::Stanza(bytes), Phase::AwaitBind) => self.on_pre_bind(slot, bytes, fx),
            (Frame::Stanza(bytes), Phase::Bound) => self.on_session_stanza(slot, bytes, fx),
            (Frame::Stanza(bytes), Phase::ComponentHandshake) => self.on_handshake(slot, bytes, fx),
            (Frame::Stanza(bytes), Phase::Component) => self.on_component_stanza(slot, bytes, fx),
            // The framer reports a header before any stanza; defensive only.
            (
                Frame::Stanza(_),
                Phase::AwaitHeader | Phase::AwaitRestart | Phase::ComponentHeader,
            ) => {
                self.stream_error(slot, StreamError::NotAuthorized, fx);
                Next::Stop
            }
        }
    }

    fn on_stream_open(
        &mut self,
        slot: u32,
        phase: Phase,
        header: &[u8],
        fx: &mut impl Effects,
    ) -> Next {
        let next_phase = match phase {
            Phase::ComponentHeader => return self.on_component_header(slot, header, fx),
            Phase::AwaitHeader => Phase::AwaitAuth,
            Phase::AwaitRestart => Phase::AwaitBind,
            // The framer only reports a header at the start of a (restarted) stream.
            _ => {
                self.stream_error(slot, StreamError::NotWellFormed, fx);
                return Next::Stop;
            }
        };
        if let Err(condition) = check_header(header, &self.home.domain) {
            self.stream_error(slot, condition, fx);
            return Next::Stop;
        }
        if next_phase == Phase::AwaitBind && self.redirect_if_elsewhere(slot, true, fx) {
            return Next::Stop;
        }
        let protection = self.protection(slot, fx);
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        let stage = match next_phase {
            Phase::AwaitAuth => Stage::PreAuth,
            _ => Stage::PostAuth,
        };
        let out = &mut self.reply;
        out.clear();
        let id = self.ids.stream_id();
        conn.dialect.open(out, &id, self.home.domain.as_str());
        conn.dialect.features(stage, &protection, out);
        fx.send(conn.key, out);
        conn.header_sent = true;
        conn.phase = next_phase;
        Next::Continue
    }
}
