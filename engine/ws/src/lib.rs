//! rookery-ws: sans-IO XMPP over WebSocket (RFC 7395, on RFC 6455 frames), the byte layer
//! between a conn's socket (or TLS) and its XML stream, for the server's shards and for the
//! load generator.
//!
//! Modules: `frame` (incremental frame decoder, frame writers, close codes), `split` (one
//! top-level element per message, `xmlns='jabber:client'` for stanzas that relied on the
//! stream), `framing` (`<open/>`/`<close/>` to and from the RFC 6120 header and end tag),
//! `handshake` (accept key, the client's request and its check of the answer), `keepalive`
//! (when the server pings a quiet conn and gives up on it), `server`
//! ([`ServerLayer`]: one conn on the server) and `client` ([`ClientLayer`]).
//!
//! Why a layer and not a dialect of the XML framer: the router's framer stays the one parser
//! for TCP and WebSocket alike (its limits, its namespace checks, its restart after SASL); the
//! layer only turns `<open/>` into the header the framer knows. The router still writes the
//! WebSocket forms of what it originates (`<open/>`, `<close/>`, `xmlns:stream` on features
//! and errors) through its `Dialect`, so its output is whole elements and never an unclosed
//! `<stream:stream>`.
//!
//! What it does not do: sockets, HTTP serving (rookery-http answers the upgrade), TLS,
//! compression extensions, UTF-8 validation of text frames (the XML framer refuses bad
//! UTF-8 as `not-well-formed`, which ends the stream anyway).
//!
//! Invariants: no I/O, no clock, no randomness (a client's mask keys come from its seed); no
//! input makes it panic; every buffer is bounded (a message by `max_message_bytes`, an
//! `<open/>` by 4 KiB, a control frame by 125 bytes, a response head by 8 KiB).

#![forbid(unsafe_code)]

pub mod client;
pub mod frame;
pub mod framing;
pub mod handshake;
pub mod keepalive;
pub mod server;
pub mod split;

pub use client::{ClientError, ClientLayer};
pub use frame::{code, FrameError};
pub use handshake::{accept_key, SUBPROTOCOL};
pub use keepalive::{Due, KeepalivePolicy};
pub use server::{ServerLayer, Status};
