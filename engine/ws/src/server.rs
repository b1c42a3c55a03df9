//! The server's WebSocket layer of one conn: wire bytes in, RFC 6120 stream bytes out for the
//! XML framer, and the router's output back out as one top-level element per text message.
//!
//! Inbound: text payload passes straight through (unmasked into the caller's buffer, never
//! buffered here), except messages that start with `<open`, `<close` or an XML declaration:
//! those (a few hundred bytes) are held whole and translated (`framing`): `<open/>` becomes
//! the stream header, `<close/>` becomes `</stream:stream>`, so the router's framer parses a
//! WebSocket stream exactly as a TCP one, restarts after SASL included. Pings are answered
//! with pongs; a close frame is answered with a close frame ([`Status::PeerClosed`]: the
//! caller then closes the conn, which ends the XMPP stream as broken, so a XEP-0198 session
//! stays resumable as on a dropped TCP conn; a clean end is `<close/>` first, RFC 7395 3.6).
//!
//! Outbound ([`ServerLayer::seal`]): the router's bytes are split into top-level elements
//! (`split`); a stanza relying on the stream's default namespace gets `xmlns='jabber:client'`.
//! An element split across calls waits in a buffer (bounded) for its end. The router's
//! WebSocket dialect writes `<open/>`, `<close/>` and `<stream:features>`/`<stream:error>`
//! with their own `xmlns:stream` (RFC 7395 3.3, 3.6): nothing is rewritten here.
//!
//! Keepalive ([`ServerLayer::keepalive`], see `keepalive`): any input clears the timers; the
//! caller checks now and then and sends the ping, or the close frame (1001) that ends a conn
//! whose ping went unanswered.
//!
//! What it does not do: the HTTP upgrade (rookery-http), TLS (below this layer), or read a
//! clock (the caller passes the time to `keepalive`).
//!
//! Invariants: after a close frame is written nothing else is; an idle layer owns no heap;
//! a refused frame is answered with a close frame whose code says why (1002 protocol, 1003
//! binary, 1009 too big) and the caller closes the conn: only that session ends.

use crate::frame::{self, code, Decoder, FrameError, Frames, Opcode, Role};
use crate::framing::{self, Kind};
use crate::keepalive::{Due, Keepalive, KeepalivePolicy};
use crate::split;

/// The layer's view of the conn after some input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Open,
    /// The peer sent a close frame (answered in `reply`): close the conn after sending.
    PeerClosed,
    /// We closed the WebSocket earlier; input is ignored.
    Closed,
}

/// Slack over the router's stanza limit for one message (framing, `xmlns`, whitespace).
pub const MESSAGE_SLACK_BYTES: usize = 1024;
/// The longest `<open/>`/`<close/>` (or declaration-led) message held whole.
const MAX_FRAMING_BYTES: usize = 4096;

/// How the current inbound message is handled, decided from its first bytes.
#[derive(Clone, Copy, Debug)]
enum Head {
    /// Nothing but whitespace yet.
    Start,
    /// Up to 7 bytes that might begin `<open` or `<close`, held until the next byte says.
    Held { bytes: [u8; 8], len: u8 },
    /// A stanza: payload goes straight to the stream.
    Pass,
    /// `<open`, `<close` or `<?`: held whole in `framing`.
    Framing,
}

/// One conn's WebSocket state.
#[derive(Debug)]
pub struct ServerLayer {
    decoder: Decoder,
    head: Head,
    framing: Vec<u8>,
    /// An outgoing element not complete yet.
    partial_out: Vec<u8>,
    max_message_bytes: usize,
    closed: bool,
    keepalive: Keepalive,
}

impl ServerLayer {
    /// A layer for a stream whose stanzas are at most `max_stanza_bytes`.
    pub fn new(max_stanza_bytes: usize) -> ServerLayer {
        let max_message_bytes = max_stanza_bytes.saturating_add(MESSAGE_SLACK_BYTES);
        ServerLayer {
            decoder: Decoder::new(Role::Server, max_message_bytes),
            head: Head::Start,
            framing: Vec::new(),
            partial_out: Vec::new(),
            max_message_bytes,
            closed: false,
            keepalive: Keepalive::default(),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.decoder.heap_bytes() + self.framing.capacity() + self.partial_out.capacity()
    }

    /// Wire bytes from the client: stream bytes appended to `stream`, frames to send back
    /// (pongs, close) to `reply`. On an error the close frame is in `reply`: send it, then
    /// close the conn.
    pub fn open(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<Status, FrameError> {
        if self.closed {
            return Ok(Status::Closed);
        }
        if !wire.is_empty() {
            self.keepalive.heard();
        }
        let mut sink = Sink {
            head: &mut self.head,
            framing: &mut self.framing,
            stream,
            reply,
            peer_close: None,
            error: None,
        };
        let result = self.decoder.feed(wire, &mut sink);
        let (peer_close, sink_error) = (sink.peer_close, sink.error);
        if let Some(error) = result.err().or(sink_error) {
            frame::write_close(reply, error.code, error.reason, None);
            self.closed = true;
            return Err(error);
        }
        if let Some(peer_code) = peer_close {
            // Echo the code (RFC 6455 5.5.1); a close without one gets 1000.
            frame::write_close(reply, peer_code.unwrap_or(code::NORMAL), "", None);
            self.closed = true;
            return Ok(Status::PeerClosed);
        }
        Ok(Status::Open)
    }

    /// Router output: appended to `wire` as one text frame per top-level element.
    pub fn seal(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), FrameError> {
        if self.closed {
            return Ok(());
        }
        if self.partial_out.is_empty() {
            if let Some(rest) = write_elements(stream, wire) {
                self.keep_partial(rest.to_vec())?;
            }
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.partial_out);
        pending.extend_from_slice(stream);
        let rest = write_elements(&pending, wire).map(<[u8]>::to_vec);
        match rest {
            Some(rest) => self.keep_partial(rest),
            None => Ok(()),
        }
    }

    fn keep_partial(&mut self, rest: Vec<u8>) -> Result<(), FrameError> {
        if rest.len() > self.max_message_bytes {
            self.closed = true;
            return Err(FrameError {
                code: code::MESSAGE_TOO_BIG,
                reason: "outgoing element over the message limit",
            });
        }
        self.partial_out = rest;
        Ok(())
    }

    /// The WebSocket goodbye (after the router's `<close/>`): a close frame, once.
    pub fn close(&mut self, wire: &mut Vec<u8>) {
        if !self.closed {
            frame::write_close(wire, code::NORMAL, "", None);
            self.closed = true;
        }
    }

    /// A ping, for a caller that keeps idle conns alive through proxies.
    pub fn ping(&self, wire: &mut Vec<u8>) {
        if !self.closed {
            frame::write_frame(wire, Opcode::Ping, &[], None);
        }
    }

    /// The keepalive check at `now_ms`: a ping due is appended to `wire`; a ping unanswered
    /// appends a close frame (1001) and closes the layer: send `wire`, then close the conn.
    pub fn keepalive(&mut self, now_ms: u64, policy: KeepalivePolicy, wire: &mut Vec<u8>) -> Due {
        if self.closed {
            return Due::Nothing;
        }
        let due = self.keepalive.check(now_ms, policy);
        match due {
            Due::Nothing => {}
            Due::Ping => self.ping(wire),
            Due::TimedOut => {
                frame::write_close(
                    wire,
                    code::GOING_AWAY,
                    "no answer to the keepalive ping",
                    None,
                );
                self.closed = true;
            }
        }
        due
    }
}

/// Writes each complete top-level element of `bytes` as a text frame; returns the incomplete
/// rest, if any (whitespace between elements is dropped).
fn write_elements<'a>(mut bytes: &'a [u8], wire: &mut Vec<u8>) -> Option<&'a [u8]> {
    loop {
        bytes = framing::trim_start(bytes);
        if bytes.is_empty() {
            return None;
        }
        let Some(end) = split::element_end(bytes) else {
            return Some(bytes);
        };
        let element = &bytes[..end];
        match split::needs_client_ns(element) {
            Some(at) => {
                let parts = [&element[..at], split::CLIENT_NS_ATTR, &element[at..]];
                frame::write_frame(wire, Opcode::Text, &parts, None);
            }
            None => frame::write_frame(wire, Opcode::Text, &[element], None),
        }
        bytes = &bytes[end..];
    }
}

/// The decoder's reports, applied to one `open` call's buffers.
struct Sink<'a> {
    head: &'a mut Head,
    framing: &'a mut Vec<u8>,
    stream: &'a mut Vec<u8>,
    reply: &'a mut Vec<u8>,
    peer_close: Option<Option<u16>>,
    error: Option<FrameError>,
}

impl Sink<'_> {
    /// Decides what the message whose first new bytes are `stream[start..]` is.
    fn classify(&mut self, start: usize) {
        if let Head::Held { bytes, len } = *self.head {
            let held = bytes[..usize::from(len)].to_vec();
            self.stream.splice(start..start, held);
        }
        let first = self.stream[start..]
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        let Some(first) = first else {
            self.stream.truncate(start); // whitespace between messages means nothing
            *self.head = Head::Start;
            return;
        };
        self.stream.drain(start..start + first);
        let head = &self.stream[start..];
        match decide(head) {
            Some(true) => {
                *self.head = Head::Framing;
                self.hold_framing(start);
            }
            Some(false) => *self.head = Head::Pass,
            None => {
                let mut bytes = [0u8; 8];
                bytes[..head.len()].copy_from_slice(head);
                *self.head = Head::Held {
                    bytes,
                    len: head.len() as u8,
                };
                self.stream.truncate(start);
            }
        }
    }

    fn hold_framing(&mut self, start: usize) {
        self.framing.extend_from_slice(&self.stream[start..]);
        self.stream.truncate(start);
        if self.framing.len() > MAX_FRAMING_BYTES {
            self.error = Some(FrameError {
                code: code::POLICY_VIOLATION,
                reason: "<open/> or <close/> message too long",
            });
        }
    }
}

/// Whether a message starting with `head` (first byte not whitespace) is a framing element
/// (`Some(true)`), a stanza (`Some(false)`), or cannot be told yet (`None`).
fn decide(head: &[u8]) -> Option<bool> {
    if head.first() != Some(&b'<') {
        return Some(false);
    }
    if head.get(1) == Some(&b'?') {
        return Some(true);
    }
    let name = &head[1..];
    let mut undecided = false;
    for candidate in [&b"open"[..], b"close"] {
        if name.len() <= candidate.len() {
            undecided |= candidate.starts_with(name);
        } else if name.starts_with(candidate)
            && matches!(
                name[candidate.len()],
                b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'
            )
        {
            return Some(true);
        }
    }
    if undecided {
        None
    } else {
        Some(false)
    }
}

impl Frames for Sink<'_> {
    fn text(&mut self, masked: &[u8], mask: Option<([u8; 4], usize)>) {
        let start = self.stream.len();
        frame::unmask_into(self.stream, masked, mask);
        match *self.head {
            Head::Pass => {}
            Head::Framing => self.hold_framing(start),
            Head::Start | Head::Held { .. } => self.classify(start),
        }
    }

    fn end_of_message(&mut self) {
        match std::mem::replace(self.head, Head::Start) {
            Head::Held { bytes, len } => {
                self.stream.extend_from_slice(&bytes[..usize::from(len)]);
            }
            Head::Framing => {
                let held = std::mem::take(self.framing);
                let message = framing::skip_declaration(&held);
                match framing::kind(message) {
                    Kind::Open => framing::open_to_header(message, self.stream),
                    Kind::Close => self.stream.extend_from_slice(framing::STREAM_CLOSE),
                    Kind::Other => self.stream.extend_from_slice(message),
                }
            }
            Head::Start | Head::Pass => {}
        }
    }

    fn ping(&mut self, payload: &[u8]) {
        frame::write_frame(self.reply, Opcode::Pong, &[payload], None);
    }

    fn close(&mut self, code: Option<u16>) {
        self.peer_close = Some(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{unmask_into, Decoder as FrameDecoder};

    const KEY: [u8; 4] = [9, 8, 7, 6];

    fn client_text(out: &mut Vec<u8>, text: &str) {
        frame::write_frame(out, Opcode::Text, &[text.as_bytes()], Some(KEY));
    }

    /// Feeds `wire` split into `split`-byte reads; returns the stream bytes and the replies.
    fn run(wire: &[u8], split: usize) -> (String, Vec<u8>, Status) {
        let mut layer = ServerLayer::new(1000);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        let mut status = Status::Open;
        for chunk in wire.chunks(split) {
            status = layer.open(chunk, &mut stream, &mut reply).unwrap();
        }
        (String::from_utf8(stream).unwrap(), reply, status)
    }

    #[derive(Default)]
    struct Messages(Vec<String>, Vec<u8>, Vec<Option<u16>>);

    impl Frames for Messages {
        fn text(&mut self, masked: &[u8], mask: Option<([u8; 4], usize)>) {
            unmask_into(&mut self.1, masked, mask);
        }
        fn end_of_message(&mut self) {
            let text = std::mem::take(&mut self.1);
            self.0.push(String::from_utf8(text).unwrap());
        }
        fn ping(&mut self, _: &[u8]) {}
        fn close(&mut self, code: Option<u16>) {
            self.2.push(code);
        }
    }

    fn messages(wire: &[u8]) -> Messages {
        let mut seen = Messages::default();
        FrameDecoder::new(Role::Client, 1 << 20)
            .feed(wire, &mut seen)
            .unwrap();
        seen
    }

    #[test]
    fn open_and_close_become_the_stream_header_and_end_in_any_split() {
        let mut wire = Vec::new();
        client_text(
            &mut wire,
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
        );
        client_text(
            &mut wire,
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        );
        client_text(&mut wire, "  ");
        client_text(&mut wire, "<opener/>");
        client_text(&mut wire, "<?xml version='1.0'?><message to='a'/>");
        client_text(
            &mut wire,
            " <close xmlns='urn:ietf:params:xml:ns:xmpp-framing' />",
        );
        let want = "<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>\
            <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><opener/><message to='a'/>\
            </stream:stream>";
        for split in [1, 2, 3, 5, 8, 1000] {
            let (stream, reply, status) = run(&wire, split);
            assert_eq!(stream, want, "split {split}");
            assert!(reply.is_empty());
            assert_eq!(status, Status::Open);
        }
    }

    #[test]
    fn pings_get_pongs_and_a_close_gets_a_close() {
        let mut wire = Vec::new();
        frame::write_frame(&mut wire, Opcode::Ping, &[b"p1"], Some(KEY));
        frame::write_close(&mut wire, code::GOING_AWAY, "bye", Some(KEY));
        client_text(&mut wire, "<message/>");
        let (stream, reply, status) = run(&wire, 1000);
        assert_eq!(status, Status::PeerClosed);
        assert_eq!(stream, "", "nothing after the close frame is read");
        assert_eq!(&reply[..4], &[0x8A, 2, b'p', b'1']);
        assert_eq!(messages(&reply[4..]).2, vec![Some(code::GOING_AWAY)]);
    }

    #[test]
    fn a_bad_frame_is_answered_with_its_close_code_and_then_ignored() {
        let mut layer = ServerLayer::new(100);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        let mut wire = Vec::new();
        frame::write_frame(&mut wire, Opcode::Text, &[b"<a/>"], None);
        let error = layer.open(&wire, &mut stream, &mut reply).unwrap_err();
        assert_eq!(error.code, code::PROTOCOL_ERROR);
        assert_eq!(messages(&reply).2, vec![Some(code::PROTOCOL_ERROR)]);
        reply.clear();
        assert_eq!(
            layer.open(&wire, &mut stream, &mut reply),
            Ok(Status::Closed)
        );
        layer.seal(b"<message/>", &mut reply).unwrap();
        layer.close(&mut reply);
        assert!(reply.is_empty());
    }

    #[test]
    fn output_is_one_element_per_message_with_the_client_namespace() {
        let mut layer = ServerLayer::new(1000);
        let mut wire = Vec::new();
        layer
            .seal(
                b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='1'/>\
                  <stream:features xmlns:stream='http://etherx.jabber.org/streams'><a/></stream:features>\
                  <message to='b' x='>'><body><![CDATA[</message>]]></body></message> \
                  <iq type='result' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence",
                &mut wire,
            )
            .unwrap();
        layer.seal(b"/>", &mut wire).unwrap();
        layer.close(&mut wire);
        let seen = messages(&wire);
        assert_eq!(
            seen.0,
            vec![
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='1'/>",
                "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><a/></stream:features>",
                "<message xmlns='jabber:client' to='b' x='>'><body><![CDATA[</message>]]></body></message>",
                "<iq xmlns='jabber:client' type='result' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
                "<presence xmlns='jabber:client'/>",
            ]
        );
        assert_eq!(seen.2, vec![Some(code::NORMAL)]);
        assert_eq!(
            layer.heap_bytes(),
            0,
            "nothing kept once the element completed"
        );
    }

    #[test]
    fn an_endless_outgoing_element_is_refused() {
        let mut layer = ServerLayer::new(10);
        let mut wire = Vec::new();
        let mut open = b"<message>".to_vec();
        open.extend(std::iter::repeat_n(b'x', 2000));
        assert_eq!(
            layer.seal(&open, &mut wire).unwrap_err().code,
            code::MESSAGE_TOO_BIG
        );
    }

    #[test]
    fn framing_messages_are_bounded() {
        let mut layer = ServerLayer::new(10_000);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        let mut wire = Vec::new();
        let long = format!("<open to='{}'/>", "a".repeat(5000));
        client_text(&mut wire, &long);
        let error = layer.open(&wire, &mut stream, &mut reply).unwrap_err();
        assert_eq!(error.code, code::POLICY_VIOLATION);
    }

    #[test]
    fn a_quiet_conn_is_pinged_a_pong_keeps_it_and_silence_closes_it_with_1001() {
        let policy = KeepalivePolicy {
            idle_ms: 1000,
            timeout_ms: 500,
        };
        let mut layer = ServerLayer::new(1000);
        let mut wire = Vec::new();
        assert_eq!(layer.keepalive(0, policy, &mut wire), Due::Nothing);
        assert_eq!(layer.keepalive(1000, policy, &mut wire), Due::Ping);
        assert_eq!(wire, [0x89, 0], "an empty ping");
        wire.clear();
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        let mut pong = Vec::new();
        frame::write_frame(&mut pong, Opcode::Pong, &[], Some(KEY));
        layer.open(&pong, &mut stream, &mut reply).unwrap();
        assert!(stream.is_empty() && reply.is_empty());
        assert_eq!(layer.keepalive(1500, policy, &mut wire), Due::Nothing);
        assert_eq!(layer.keepalive(2500, policy, &mut wire), Due::Ping);
        wire.clear();
        assert_eq!(layer.keepalive(3000, policy, &mut wire), Due::TimedOut);
        assert_eq!(messages(&wire).2, vec![Some(code::GOING_AWAY)]);
        wire.clear();
        assert_eq!(layer.keepalive(9000, policy, &mut wire), Due::Nothing);
        layer.seal(b"<message/>", &mut wire).unwrap();
        assert!(wire.is_empty(), "nothing after the close frame");
    }
}
