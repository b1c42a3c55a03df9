//! The stream layer of a conn: the feed loop over the framer, stream headers, SASL PLAIN and
//! the dispatch of stanzas by phase.
//!
//! Submodules: `conn` (per-conn state, slab), `bind` (resource binding, hand-off).
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
pub(crate) mod conn;

use rookery_proto::element::Element;
use rookery_proto::{ns, Frame, Jid};

use crate::auth::{check_plain, SaslFailure};
use crate::effects::{Effects, HomeRequest};
use crate::errors::StreamError;
use crate::location::ShardId;
use crate::replies;
use crate::router::Router;
use crate::stream::conn::Phase;

/// Failed SASL attempts allowed before the stream is closed with `policy-violation`.
pub const MAX_AUTH_FAILURES: u8 = 3;

/// What the feed loop does after one frame.
pub(crate) enum Next {
    Continue,
    /// SASL succeeded: reset the framer before parsing the next byte.
    Restart,
    /// The conn is closing: stop parsing.
    Stop,
    /// A `<resume/>` waits for its answer: keep the rest unparsed until then (see `resume`).
    Pause,
    /// The bind (or resumption) must complete on the user's home shard, `dest`.
    HandOff {
        dest: ShardId,
        request: HomeRequest,
    },
}

impl Router {
    /// Feeds received bytes through the conn's framer, handling each frame in order (or holds
    /// them while a `<resume/>` waits for its answer).
    pub(crate) fn feed(&mut self, slot: u32, data: &[u8], fx: &mut impl Effects) {
        if self.home.sessions.pending(slot).is_some() {
            return self.hold_bytes(slot, data, fx);
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
                Next::HandOff { dest, request } => {
                    return self.hand_off(slot, framer, dest, request, rest, fx)
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.framer = Some(framer);
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
            // The framer reports a header before any stanza; defensive only.
            (Frame::Stanza(_), Phase::AwaitHeader | Phase::AwaitRestart) => {
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
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        self.home.reply.clear();
        replies::stream_header(
            &mut self.home.reply,
            &self.ids.stream_id(),
            self.home.domain.as_str(),
        );
        self.home.reply.extend_from_slice(match next_phase {
            Phase::AwaitAuth => replies::FEATURES_PRE_AUTH,
            _ => replies::FEATURES_POST_AUTH,
        });
        fx.send(conn.key, &self.home.reply);
        conn.header_sent = true;
        conn.phase = next_phase;
        Next::Continue
    }

    /// A first-level element before authentication: only SASL elements are allowed.
    fn on_sasl(&mut self, slot: u32, phase: Phase, bytes: &[u8], fx: &mut impl Effects) -> Next {
        let Ok(element) = Element::parse(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        if element.ns() != Some(ns::SASL) {
            self.stream_error(slot, StreamError::NotAuthorized, fx);
            return Next::Stop;
        }
        let text = element.text();
        let outcome = match (phase, element.local_name()) {
            (Phase::AwaitAuth, "auth") if element.attr("mechanism") != Some("PLAIN") => {
                Err(SaslFailure::InvalidMechanism)
            }
            // No initial response: RFC 6120 6.4.2, send an empty challenge and await it.
            (Phase::AwaitAuth, "auth") if text.is_empty() => return self.send_challenge(slot, fx),
            (Phase::AwaitAuth, "auth") | (Phase::AwaitResponse, "response") => {
                check_plain(&self.config.auth, self.home.domain.domain(), &text)
            }
            (_, "abort") => Err(SaslFailure::Aborted),
            _ => {
                self.stream_error(slot, StreamError::NotAuthorized, fx);
                return Next::Stop;
            }
        };
        match outcome {
            Ok(jid) => self.sasl_success(slot, jid, fx),
            Err(failure) => self.sasl_failure(slot, failure, fx),
        }
    }

    fn send_challenge(&mut self, slot: u32, fx: &mut impl Effects) -> Next {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        fx.send(conn.key, replies::SASL_CHALLENGE_EMPTY);
        conn.phase = Phase::AwaitResponse;
        Next::Continue
    }

    fn sasl_success(&mut self, slot: u32, jid: Jid, fx: &mut impl Effects) -> Next {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        fx.send(conn.key, replies::SASL_SUCCESS);
        conn.jid = Some(jid);
        conn.phase = Phase::AwaitRestart;
        conn.header_sent = false;
        self.unauth.release(slot);
        Next::Restart
    }

    fn sasl_failure(&mut self, slot: u32, failure: SaslFailure, fx: &mut impl Effects) -> Next {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        self.home.reply.clear();
        replies::sasl_failure(&mut self.home.reply, failure.condition());
        fx.send(conn.key, &self.home.reply);
        conn.phase = Phase::AwaitAuth;
        conn.auth_failures = conn.auth_failures.saturating_add(1);
        self.home.stats.auth_failures += 1;
        if conn.auth_failures >= MAX_AUTH_FAILURES {
            self.stream_error(slot, StreamError::PolicyViolation, fx);
            return Next::Stop;
        }
        Next::Continue
    }
}

/// Checks a client stream header (RFC 6120 4.7, 4.9.3): the stream element in the streams
/// namespace, content namespace jabber:client, `to` our domain (or absent), version >= 1.0.
/// Returns the stream error condition on failure.
pub(crate) fn check_header(bytes: &[u8], domain: &Jid) -> Result<(), StreamError> {
    let header = Element::parse_open_tag(bytes).map_err(|_| StreamError::NotWellFormed)?;
    if header.local_name() != "stream" || header.ns() != Some(ns::STREAM) {
        return Err(StreamError::InvalidNamespace);
    }
    if header.attr("xmlns") != Some(ns::CLIENT) {
        return Err(StreamError::InvalidNamespace);
    }
    if let Some(to) = header.attr("to") {
        if Jid::parse(to).ok().as_ref() != Some(domain) {
            return Err(StreamError::HostUnknown);
        }
    }
    match header.attr("version").and_then(major_version) {
        Some(major) if major >= 1 => Ok(()),
        _ => Err(StreamError::UnsupportedVersion),
    }
}

/// The major number of a `major.minor` version string (RFC 6120 4.7.5).
fn major_version(version: &str) -> Option<u32> {
    let (major, minor) = version.split_once('.')?;
    minor.parse::<u32>().ok()?;
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str) -> Result<(), &'static str> {
        let domain = Jid::parse("example.com").expect("valid domain");
        check_header(header.as_bytes(), &domain).map_err(StreamError::condition)
    }

    const GOOD: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

    #[test]
    fn a_proper_header_passes() {
        assert_eq!(check(GOOD), Ok(()));
        assert_eq!(check(&GOOD.replace("example.com", "EXAMPLE.com")), Ok(()));
        assert_eq!(check(&GOOD.replace(" to='example.com'", "")), Ok(()));
        assert_eq!(check(&GOOD.replace("1.0", "1.1")), Ok(()));
    }

    #[test]
    fn wrong_namespaces_are_invalid_namespace() {
        assert_eq!(
            check(&GOOD.replace("jabber:client", "jabber:server")),
            Err("invalid-namespace")
        );
        assert_eq!(
            check(&GOOD.replace("etherx.jabber.org", "wrong.org")),
            Err("invalid-namespace")
        );
        assert_eq!(
            check(&GOOD.replace("stream:stream ", "stream:strm ")),
            Err("invalid-namespace")
        );
    }

    #[test]
    fn other_hosts_are_host_unknown() {
        assert_eq!(
            check(&GOOD.replace("to='example.com'", "to='other.org'")),
            Err("host-unknown")
        );
        assert_eq!(
            check(&GOOD.replace("to='example.com'", "to='a@example.com'")),
            Err("host-unknown")
        );
    }

    #[test]
    fn old_or_missing_versions_are_unsupported() {
        assert_eq!(
            check(&GOOD.replace("1.0", "0.9")),
            Err("unsupported-version")
        );
        assert_eq!(
            check(&GOOD.replace(" version='1.0'", "")),
            Err("unsupported-version")
        );
        assert_eq!(
            check(&GOOD.replace("1.0", "one")),
            Err("unsupported-version")
        );
    }

    #[test]
    fn major_version_parses_major_dot_minor() {
        assert_eq!(major_version("1.0"), Some(1));
        assert_eq!(major_version("2.13"), Some(2));
        assert_eq!(major_version("1"), None);
        assert_eq!(major_version("1.x"), None);
    }
}
