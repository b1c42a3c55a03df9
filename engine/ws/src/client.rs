//! The client's WebSocket layer (for the load generator and tests): the upgrade request, then
//! RFC 6120 stream bytes in and out as RFC 7395 messages.
//!
//! Outbound ([`ClientLayer::encode`]): the first call writes the upgrade request first (the
//! frames follow at once, without waiting for the 101: the server must keep bytes read past
//! the request, which this exercises); the client's stream header becomes `<open/>`,
//! `</stream:stream>` becomes `<close/>`, every other top-level element one masked text
//! message (stanzas relying on the stream's namespace get `xmlns='jabber:client'`).
//! Inbound ([`ClientLayer::decode`]): the 101 is checked (accept key, subprotocol), then each
//! text message is held whole (a client is not the place to save that copy) and handed on:
//! `<open/>` as a stream header, `<close/>` as `</stream:stream>`, anything else as it is.
//!
//! What it does not do: sockets, TLS, randomness (the caller gives a seed; mask keys come
//! from xorshift: a load generator, not a browser, so no cache-poisoning defence is needed).
//!
//! Invariants: messages are at most `max_message_bytes` (bigger: a close 1009); after a
//! close frame is written nothing else is.

use crate::frame::{self, code, Decoder, FrameError, Frames, Opcode, Role};
use crate::framing::{self, Kind};
use crate::handshake::{self, HandshakeError};
use crate::split;

/// Why the client layer stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    Handshake(HandshakeError),
    Frame(FrameError),
    /// The server closed the WebSocket (its code, if any).
    Closed(Option<u16>),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Handshake(e) => e.fmt(f),
            ClientError::Frame(e) => e.fmt(f),
            ClientError::Closed(code) => write!(f, "server closed the WebSocket ({code:?})"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One client conn's WebSocket state.
#[derive(Debug)]
pub struct ClientLayer {
    host: String,
    path: String,
    key: String,
    request_sent: bool,
    /// The response head until it is complete; `None` once upgraded.
    response: Option<Vec<u8>>,
    decoder: Decoder,
    message: Vec<u8>,
    partial_out: Vec<u8>,
    mask_state: u64,
    closed: bool,
}

impl ClientLayer {
    /// A layer that upgrades `path` on `host` (the Host header), masking from `seed`.
    pub fn new(host: &str, path: &str, seed: u64, max_message_bytes: usize) -> ClientLayer {
        let mut layer = ClientLayer {
            host: host.to_owned(),
            path: path.to_owned(),
            key: String::new(),
            request_sent: false,
            response: Some(Vec::new()),
            decoder: Decoder::new(Role::Client, max_message_bytes),
            message: Vec::new(),
            partial_out: Vec::new(),
            mask_state: seed | 1,
            closed: false,
        };
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&layer.next_mask_word().to_le_bytes());
        random[8..].copy_from_slice(&layer.next_mask_word().to_le_bytes());
        layer.key = handshake::client_key(random);
        layer
    }

    fn next_mask_word(&mut self) -> u64 {
        // xorshift64
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        x
    }

    fn mask(&mut self) -> [u8; 4] {
        let word = self.next_mask_word().to_le_bytes();
        [word[0], word[1], word[2], word[3]]
    }

    /// Whether the 101 came.
    pub fn upgraded(&self) -> bool {
        self.response.is_none()
    }

    /// Server bytes -> stream bytes (appended to `stream`); pongs and close answers to `reply`.
    pub fn decode(
        &mut self,
        mut wire: &[u8],
        stream: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        if let Some(head) = &mut self.response {
            head.extend_from_slice(wire);
            let Some(len) =
                handshake::check_response(head, &self.key).map_err(ClientError::Handshake)?
            else {
                return Ok(());
            };
            let head = self.response.take().unwrap_or_default();
            return self.decode_frames(&head[len..], stream, reply);
        }
        if self.closed {
            wire = &[];
        }
        self.decode_frames(wire, stream, reply)
    }

    fn decode_frames(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        let mut sink = ClientSink {
            message: &mut self.message,
            stream,
            pings: Vec::new(),
            close: None,
        };
        let result = self.decoder.feed(wire, &mut sink);
        let (pings, close) = (sink.pings, sink.close);
        for payload in pings {
            let mask = self.mask();
            frame::write_frame(reply, Opcode::Pong, &[&payload], Some(mask));
        }
        if let Err(error) = result {
            self.write_close(reply, error.code);
            return Err(ClientError::Frame(error));
        }
        if let Some(code) = close {
            self.write_close(reply, code.unwrap_or(code::NORMAL));
            return Err(ClientError::Closed(code));
        }
        Ok(())
    }

    fn write_close(&mut self, wire: &mut Vec<u8>, code: u16) {
        if !self.closed {
            let mask = self.mask();
            frame::write_close(wire, code, "", Some(mask));
            self.closed = true;
        }
    }

    /// Stream bytes -> wire bytes (the upgrade request first, on the first call).
    pub fn encode(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), ClientError> {
        if !self.request_sent {
            handshake::request(wire, &self.host, &self.path, &self.key);
            self.request_sent = true;
        }
        if self.closed {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.partial_out);
        pending.extend_from_slice(stream);
        let mut rest = &pending[..];
        loop {
            rest = framing::skip_declaration(rest);
            if rest.is_empty() {
                break;
            }
            if rest.starts_with(b"<stream:stream") {
                let Some(end) = rest.iter().position(|b| *b == b'>') else {
                    break;
                };
                let mut open = Vec::new();
                framing::header_to_open(&rest[..=end], &mut open);
                let mask = self.mask();
                frame::write_frame(wire, Opcode::Text, &[&open], Some(mask));
                rest = &rest[end + 1..];
                continue;
            }
            if rest.starts_with(framing::STREAM_CLOSE) {
                let close = format!("<close xmlns='{}'/>", framing::FRAMING_NS);
                let mask = self.mask();
                frame::write_frame(wire, Opcode::Text, &[close.as_bytes()], Some(mask));
                rest = &rest[framing::STREAM_CLOSE.len()..];
                continue;
            }
            let Some(end) = split::element_end(rest) else {
                break;
            };
            let element = &rest[..end];
            let mask = self.mask();
            match split::needs_client_ns(element) {
                Some(at) => {
                    let parts = [&element[..at], split::CLIENT_NS_ATTR, &element[at..]];
                    frame::write_frame(wire, Opcode::Text, &parts, Some(mask));
                }
                None => frame::write_frame(wire, Opcode::Text, &[element], Some(mask)),
            }
            rest = &rest[end..];
        }
        self.partial_out = rest.to_vec();
        Ok(())
    }

    /// A close frame (after `</stream:stream>` was encoded), once.
    pub fn close(&mut self, wire: &mut Vec<u8>) {
        self.write_close(wire, code::NORMAL);
    }
}

struct ClientSink<'a> {
    message: &'a mut Vec<u8>,
    stream: &'a mut Vec<u8>,
    pings: Vec<Vec<u8>>,
    close: Option<Option<u16>>,
}

impl Frames for ClientSink<'_> {
    fn text(&mut self, masked: &[u8], mask: Option<([u8; 4], usize)>) {
        frame::unmask_into(self.message, masked, mask);
    }

    fn end_of_message(&mut self) {
        let message = std::mem::take(self.message);
        match framing::kind(&message) {
            Kind::Open => {
                self.stream.extend_from_slice(b"<?xml version='1.0'?>");
                framing::open_to_header(&message, self.stream);
            }
            Kind::Close => self.stream.extend_from_slice(framing::STREAM_CLOSE),
            Kind::Other => self.stream.extend_from_slice(&message),
        }
    }

    fn ping(&mut self, payload: &[u8]) {
        self.pings.push(payload.to_vec());
    }

    fn close(&mut self, code: Option<u16>) {
        self.close = Some(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerLayer;

    /// A client and a server layer talk: the server side sees a TCP-like stream and the
    /// client gets the server's stream back.
    #[test]
    fn a_client_and_a_server_layer_round_trip() {
        let mut client = ClientLayer::new("example.com", "/xmpp-websocket", 42, 1 << 16);
        let mut wire = Vec::new();
        client
            .encode(
                b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                  xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>\
                  <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>",
                &mut wire,
            )
            .unwrap();
        let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let request = String::from_utf8_lossy(&wire[..head_end]).into_owned();
        assert!(
            request.starts_with("GET /xmpp-websocket HTTP/1.1\r\n"),
            "{request}"
        );
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned();
        let mut server = ServerLayer::new(1 << 16);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        server
            .open(&wire[head_end..], &mut stream, &mut reply)
            .unwrap();
        assert_eq!(
            String::from_utf8(stream).unwrap(),
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
             to='example.com' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' \
             mechanism='PLAIN'>AA==</auth>"
        );
        let mut down = format!(
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\
             Sec-WebSocket-Protocol: xmpp\r\n\r\n",
            handshake::accept_key(key.as_bytes())
        )
        .into_bytes();
        server
            .seal(
                b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.com' \
                  version='1.0'/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
                  <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
                &mut down,
            )
            .unwrap();
        let (mut got, mut answer) = (Vec::new(), Vec::new());
        for chunk in down.chunks(7) {
            client.decode(chunk, &mut got, &mut answer).unwrap();
        }
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.com' \
             version='1.0'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:stream>"
        );
        let mut closing = Vec::new();
        client.encode(b"</stream:stream>", &mut closing).unwrap();
        client.close(&mut closing);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        let status = server.open(&closing, &mut stream, &mut reply).unwrap();
        assert_eq!(stream, b"</stream:stream>");
        assert_eq!(status, crate::server::Status::PeerClosed);
    }

    #[test]
    fn a_refused_upgrade_is_an_error_with_the_servers_reason() {
        let mut client = ClientLayer::new("h", "/x", 1, 100);
        client.encode(b"", &mut Vec::new()).unwrap();
        let err = client
            .decode(
                b"HTTP/1.1 400 Bad Request\r\n\r\nsubprotocol xmpp required",
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("xmpp required"), "{err}");
    }
}
