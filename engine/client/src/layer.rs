//! The transport hook: a byte layer between the socket and the client (TLS, WebSocket
//! framing), so the client itself only ever sees an RFC 6120 character stream.
//!
//! A [`Layer`] turns wire bytes into stream bytes and back. [`Layered`] runs a client over
//! one: wire bytes in, decoded into a buffer, fed to the client, whose output is encoded into
//! the caller's wire buffer. [`Plain`] is the identity (plain TCP; use [`Client`] directly to
//! skip the copy). A TLS layer wraps a sans-IO TLS session; a WebSocket layer (RFC 7395)
//! turns `<open/>`/`<close/>` into the stream header and close tag and back and writes one
//! stanza per message. STARTTLS switches layers in the middle of a stream: the caller
//! installs the TLS layer on `<proceed/>` and restarts the stream.
//!
//! What it does not do: any layer but the identity (they live with their crates), sockets.
//!
//! Invariants: bytes are passed in order; a layer error ends nothing by itself (the caller
//! decides), and no decoded byte is fed twice.

use crate::account::Account;
use crate::event::Event;
use crate::stream::Stream;
use crate::Client;

/// Why a layer refused bytes (a TLS alert, a bad WebSocket frame...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerError {
    pub detail: String,
}

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transport layer refused the bytes: {}", self.detail)
    }
}

impl std::error::Error for LayerError {}

/// A byte transformation between the wire and the XMPP stream.
pub trait Layer {
    /// Wire bytes from the peer -> stream bytes, appended to `stream`. May also produce wire
    /// bytes to send back (handshakes, pings) into `reply`.
    fn decode(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), LayerError>;
    /// Stream bytes to send -> wire bytes, appended to `wire`.
    fn encode(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), LayerError>;
}

/// The identity layer: plain TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Layer for Plain {
    fn decode(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        _: &mut Vec<u8>,
    ) -> Result<(), LayerError> {
        stream.extend_from_slice(wire);
        Ok(())
    }

    fn encode(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), LayerError> {
        wire.extend_from_slice(stream);
        Ok(())
    }
}

/// A client over a layer. The decoded and encoded buffers are emptied after each call (and
/// keep their capacity: a layered client is for tools and tests, not for a million idle
/// clients).
#[derive(Debug)]
pub struct Layered<L, X = ()> {
    pub client: Client<X>,
    pub layer: L,
    decoded: Vec<u8>,
    plain_out: Vec<u8>,
}

impl<L: Layer, X: Default> Layered<L, X> {
    pub fn new(client: Client<X>, layer: L) -> Layered<L, X> {
        Layered {
            client,
            layer,
            decoded: Vec::new(),
            plain_out: Vec::new(),
        }
    }

    /// Opens the stream: the header, encoded, into `wire_out`.
    pub fn start(&mut self, domain: &str, wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        self.client.start(domain, &mut self.plain_out);
        self.flush(wire_out)
    }

    /// Wire bytes from the peer: decoded, fed to the client (events to `sink`), and the
    /// client's replies encoded into `wire_out`.
    pub fn feed<F>(
        &mut self,
        wire: &[u8],
        account: &mut dyn Account,
        wire_out: &mut Vec<u8>,
        mut sink: F,
    ) -> Result<(), LayerError>
    where
        F: FnMut(Event<'_>, &mut Stream<X>, &mut Vec<u8>),
    {
        self.decoded.clear();
        self.layer.decode(wire, &mut self.decoded, wire_out)?;
        self.client
            .feed(&self.decoded, account, &mut self.plain_out, &mut sink);
        self.flush(wire_out)
    }

    /// Stream bytes the caller sends (stanzas once online), encoded into `wire_out`.
    pub fn send(&mut self, stream: &[u8], wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        self.layer.encode(stream, wire_out)
    }

    fn flush(&mut self, wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        let result = self.layer.encode(&self.plain_out, wire_out);
        self.plain_out.clear();
        result
    }
}
