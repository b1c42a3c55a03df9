//! rookery-tls: sans-IO TLS for Rookery conns, on rustls' unbuffered API.
//!
//! What it does:
//! - [`TlsConfig::load`] reads a PEM certificate chain and key into a rustls server config
//!   (TLS 1.3 and 1.2, ring, ALPN `xmpp-client`); errors name the file and the fault.
//! - [`TlsContext`] shares the current config between shards and swaps it on reload
//!   (SIGHUP): new conns get the new config, open sessions keep theirs.
//! - [`TlsSession`] is one conn's TLS, driven with byte slices: `read` (ciphertext in,
//!   plaintext and bytes-for-the-peer out), `write`, `close`, and the facts SASL needs
//!   (RFC 9266 channel binding, ALPN, SNI, version). It owns no buffer while idle.
//!
//! Memory (`cargo run --release -p rookery-tls --example idle_memory`, 2,000 sessions): an
//! idle TLS 1.3 session holds 940 B of heap plus 120 B inline, 1,060 B in all, within the
//! 2 KiB per-session TLS budget: after its handshake rustls hands over the traffic keys
//! (its kernel-connection API, made for kTLS) and our record layer (`records.rs`: RFC 8446
//! 5.2 framing, ring's AEAD, key updates derived by rustls) keeps them instead of rustls'
//! connection (the box holding that connection 688 B, rustls' key schedule 224 B, SNI and
//! ALPN copies). A TLS 1.2 session keeps rustls' connection and record layer: 3,336 B (the
//! boxed `UnbufferedServerConnection` 1,088 B, ring's expanded record keys 2 x 560 B, the
//! handshake deframer's span vector 640 B, state 120 B, queues 2 x 96 B). rustls' buffered
//! `ServerConnection`: 7,468 B. Clients today negotiate TLS 1.3.
//!
//! What it does not do: sockets or any I/O, client certificates, several certificates by
//! SNI, 0-RTT, kTLS (this kernel has CONFIG_TLS off; the record hand-over is where it would
//! plug in), our record layer for TLS 1.2.
//!
//! How a stream layer uses a session:
//! 1. On accept (direct TLS, XEP-0368) or after sending `<proceed/>` (STARTTLS), make a
//!    `TlsSession::new(&context)`. STARTTLS switches at a byte boundary: bytes received after
//!    the client's `<starttls/>` element (in the same read or later) are TLS records and go to
//!    `read`, never to the XML framer; the framer is reset for the new stream.
//! 2. Feed every received byte to `read`; send what it appended to `to_peer` (also when it
//!    returns an error: that is the fatal alert, then close the socket); give what it
//!    appended to `plaintext` to the XML framer.
//! 3. Do not `write` before a `ReadOutcome` had `handshake_completed`; afterwards every
//!    outgoing stanza goes through `write`.
//! 4. On `peer_closed`, finish writing, then `close` and send; after `close`, keep reading
//!    until the peer closes the TCP conn or a linger timeout.
//! 5. Channel binding for SCRAM-*-PLUS: `channel_binding_exporter()` after the handshake.

#![forbid(unsafe_code)]

mod binding;
mod capture;
mod config;
mod context;
mod error;
mod memory;
mod output;
mod records;
mod session;
mod validity;

pub use binding::{CHANNEL_BINDING_BYTES, CHANNEL_BINDING_LABEL};
pub use config::{ConfigError, ConfigWarning, TlsConfig, ALPN_XMPP_CLIENT};
pub use context::TlsContext;
pub use error::{ErrorCause, TlsError};
pub use session::{ReadOutcome, TlsSession, TlsVersion};
