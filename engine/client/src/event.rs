//! What the client reports: [`Event`]s, borrowed from the bytes fed (or the framer's buffer).
//!
//! What it does not do: decide anything; the caller acts on events (see the crate docs for
//! which events end the stream).

use std::borrow::Cow;

use rookery_proto::StanzaView;
use rookery_sasl::ClientError;

use crate::errors::StreamError;
use crate::stream::Stream;

/// What `Client::feed_until` reports events to: the event, the stream state, and the output
/// buffer (for the caller's answers); the answer says whether to go on.
pub trait Sink<X>: FnMut(Event<'_>, &mut Stream<X>, &mut Vec<u8>) -> Flow {}

impl<X, F> Sink<X> for F where F: FnMut(Event<'_>, &mut Stream<X>, &mut Vec<u8>) -> Flow {}

/// Whether [`Client::feed_until`](crate::Client::feed_until) goes on after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Something that happened on the stream.
#[derive(Debug)]
pub enum Event<'a> {
    /// `<proceed/>` to our `<starttls/>`: install the TLS layer, then call
    /// [`Client::tls_started`](crate::Client::tls_started). Reading stops after this event
    /// (the bytes that follow are TLS).
    StartTls,
    /// SASL succeeded; the restarted stream's header is already in the output.
    Authenticated,
    /// Resource binding succeeded: the full JID the server bound (or assigned).
    Bound { jid: Cow<'a, str> },
    /// Bound (and the legacy session established when required); `<enable/>` went out if
    /// XEP-0198 is wanted and offered. The caller may send stanzas now.
    Online,
    /// `<enabled/>`: stanzas are counted from here; `resumable` when the server gave a
    /// resumption id.
    SmEnabled { resumable: bool },
    /// `<failed/>` to our `<enable/>`: no stream management on this stream.
    SmFailed { condition: &'a str },
    /// The server handled our stanzas up to `h` (XEP-0198 `<a h/>`, modulo 2^32), reported
    /// when `h` advances.
    Acked { h: u32 },
    /// The server's `h` counts stanzas we never sent: the client closed the stream with
    /// `handled-count-too-high` (XEP-0198 4).
    AckTooHigh { h: u32, sent: u32 },
    /// `<resumed/>`: the earlier session is back online; the server handled our stanzas up
    /// to `h`. Resend the rest (and count them): the client renumbered from `h`.
    Resumed { h: u32 },
    /// Resumption refused (or no longer offered): the old session is gone, its
    /// unacknowledged stanzas may or may not have been handled; a fresh bind follows.
    ResumeFailed { condition: &'a str },
    /// A stanza (or another first-level element) on the stream: message, presence and iq
    /// were counted for XEP-0198 before this event.
    Stanza(StanzaView<'a>),
    /// SASL failed; the stream is over.
    AuthFailed(AuthFailure<'a>),
    /// Resource binding or the legacy session was refused (the stanza error condition).
    BindFailed { condition: &'a str },
    /// `<stream:error/>`; the stream is over.
    StreamError(StreamError<'a>),
    /// The server closed the stream with `</stream:stream>`.
    StreamClosed,
    /// The server sent bytes that are not XMPP we can follow; the stream is over.
    ProtocolError { detail: &'static str },
}

/// Why SASL failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure<'a> {
    /// `<failure/>` from the server, with its RFC 6120 6.5 condition.
    Server { condition: &'a str },
    /// The server offers no mechanism the client accepts.
    NoCommonMechanism,
    /// Our side of the exchange refused (bad credentials' syntax, a server SCRAM message
    /// that does not verify: the server does not know the password, or someone is in the
    /// middle).
    Client(ClientError),
}
