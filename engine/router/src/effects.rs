//! The router's outputs: the `Effects` trait the caller implements, the conn hand-off that
//! crosses shards of one process (`Handoff`), and the stanza types mail carries.
//!
//! What it does not do: perform any I/O, or define mail (see `mail`). The server implements
//! `Effects` over its io driver and mailboxes; tests implement it with
//! `rookery_testkit::RecordingEffects`.
//!
//! Invariants: `Handoff` is `Send` (it crosses threads) but never leaves the process: it
//! carries a framer mid-stream and travels with the conn's socket fd. `StanzaType` travels
//! with mail so the home shard applies RFC 6121 section 8.5 without re-parsing the stanza.

use rookery_proto::{Framer, Jid, StanzaKind};
use rookery_store::LogSpan;

use crate::errors::Cause;
use crate::location::{Location, ShardId};
use crate::mail::Mail;

/// Opaque conn identity; the server packs its io conn id (index + generation) into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey(pub u64);

/// What the layers below the XML stream say about a conn (see [`Effects::transport`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    pub security: Security,
    pub framing: Framing,
}

impl Transport {
    /// A TCP conn in the clear, RFC 6120 framing.
    pub const PLAIN: Transport = Transport {
        security: Security::Clear,
        framing: Framing::Stream,
    };
}

/// Whether a conn's bytes are protected, and what SASL may bind to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// In the clear.
    Clear,
    /// TLS (direct, XEP-0368, or after STARTTLS), handshake done or in progress; `exporter`
    /// is the RFC 9266 tls-exporter value once the handshake completed (SCRAM -PLUS).
    Tls { exporter: Option<[u8; 32]> },
}

// The exporter is keying material: keep it out of logs.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Clear => f.write_str("Clear"),
            Security::Tls { exporter } => f
                .debug_struct("Tls")
                .field("exporter", &exporter.map(|_| ".."))
                .finish(),
        }
    }
}

/// How the conn carries the XML stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6120 over TCP: one `<stream:stream>` document.
    Stream,
    /// RFC 7395: one element per WebSocket message, `<open/>` and `<close/>`.
    WebSocket,
}

/// What the router asks of the world. Every method is a request; none may call back into the
/// router (the router is in the middle of a call when it invokes them).
pub trait Effects {
    /// Queue bytes for a conn of this shard.
    fn send(&mut self, conn: ConnKey, bytes: &[u8]);
    /// Close after flushing what was sent (the router has already sent any stream error and
    /// `</stream:stream>`). The server later calls `on_closed` for it.
    /// `cause` says which side caused it (the server counts closes per cause).
    fn close(&mut self, conn: ConnKey, cause: Cause);
    /// Mail the router at `dest` (never this one). The server maps a location of its own
    /// node to that shard's mailbox lane, and one of another node to its cluster bridge.
    fn mail(&mut self, dest: Location, mail: Mail);
    /// Bytes queued for a conn of this shard and not yet handed to the kernel (0 for a conn
    /// that is gone). Flow control reads it (see `delivery`).
    fn queued_bytes(&self, conn: ConnKey) -> usize;
    /// Reads `span` of this shard's log; the answer comes back as `Router::on_log_read` with
    /// the same `tag` (in a later call, never inside this one).
    fn read_log(&mut self, tag: u64, span: LogSpan);
    /// Move this conn to shard `dest`: the server stops reading it, collects unread bytes,
    /// and delivers `handoff` + those bytes to `dest`'s router via `on_adopted`.
    /// After this call the router has forgotten the conn (no on_closed must come for it here).
    fn hand_off(&mut self, conn: ConnKey, dest: ShardId, handoff: Handoff);
    /// What the layers below the stream know of `conn` (TLS, WebSocket framing). Asked when
    /// the conn connects (its framing) and when features are offered or SASL starts (its
    /// security); a conn that is gone reads as [`Transport::PLAIN`].
    fn transport(&self, conn: ConnKey) -> Transport;
    /// STARTTLS (RFC 6120 5.4): everything sent to `conn` so far goes out in the clear (the
    /// `<proceed/>` last); from now on its bytes are TLS records. `early` holds bytes the
    /// client sent after its `<starttls/>` element: already the start of its handshake.
    fn start_tls(&mut self, conn: ConnKey, early: &[u8]);
}

/// The `type` attribute of a stanza, classified per kind (RFC 6120 8.2.3, RFC 6121 4.7.1, 5.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StanzaType {
    /// message: no type or `normal` (and unknown types, RFC 6121 5.2.2).
    Normal,
    Chat,
    Groupchat,
    Headline,
    /// Any kind: `type='error'`.
    Error,
    Get,
    Set,
    Result,
    /// presence without a type.
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    /// A type this kind does not allow (an iq without a valid type, an unknown presence type).
    Invalid,
}

impl StanzaType {
    /// Classifies the `type` attribute value `ty` of a stanza of `kind`.
    pub fn classify(kind: StanzaKind, ty: Option<&str>) -> StanzaType {
        if ty == Some("error") {
            return StanzaType::Error;
        }
        match kind {
            StanzaKind::Message => Self::message(ty),
            StanzaKind::Presence => Self::presence(ty),
            StanzaKind::Iq => Self::iq(ty),
            StanzaKind::Other => StanzaType::Invalid,
        }
    }

    fn message(ty: Option<&str>) -> StanzaType {
        match ty {
            Some("chat") => StanzaType::Chat,
            Some("groupchat") => StanzaType::Groupchat,
            Some("headline") => StanzaType::Headline,
            // RFC 6121 5.2.2: an unknown message type is treated as normal.
            _ => StanzaType::Normal,
        }
    }

    fn presence(ty: Option<&str>) -> StanzaType {
        match ty {
            None => StanzaType::Available,
            Some("unavailable") => StanzaType::Unavailable,
            Some("subscribe") => StanzaType::Subscribe,
            Some("subscribed") => StanzaType::Subscribed,
            Some("unsubscribe") => StanzaType::Unsubscribe,
            Some("unsubscribed") => StanzaType::Unsubscribed,
            Some("probe") => StanzaType::Probe,
            Some(_) => StanzaType::Invalid,
        }
    }

    fn iq(ty: Option<&str>) -> StanzaType {
        match ty {
            Some("get") => StanzaType::Get,
            Some("set") => StanzaType::Set,
            Some("result") => StanzaType::Result,
            _ => StanzaType::Invalid,
        }
    }

    /// An iq that expects an answer (RFC 6120 8.2.3: get and set MUST be answered).
    pub fn is_request(self) -> bool {
        matches!(self, StanzaType::Get | StanzaType::Set)
    }
}

/// Everything the home shard needs to continue a stream whose client asked to bind a resource
/// (or to resume a session, XEP-0198) on another shard. Opaque to the server: it only carries
/// it to `Router::on_adopted`.
pub struct Handoff {
    /// The stream's framer, mid-stream (after the restart header and the request).
    pub(crate) framer: Framer,
    /// The authenticated bare JID (for `Authenticate`: the user the login claims to be).
    pub(crate) jid: Jid,
    /// What the client asked for, completed on the home shard.
    pub(crate) request: HomeRequest,
    /// Bytes this shard had already received after the request; processed before `leftover`.
    pub(crate) pending: Vec<u8>,
    /// How the stream writes its own elements (TCP or WebSocket framing).
    pub(crate) dialect: crate::stream::header::Dialect,
}

/// A request that only the user's home shard can complete.
#[derive(Debug)]
pub(crate) enum HomeRequest {
    /// Resource binding: the resource asked for, if any (validated on the home shard), and
    /// the `id` of the bind iq, echoed in the result.
    Bind {
        resource: Option<Box<str>>,
        id: Box<str>,
    },
    /// XEP-0198 resumption of session `previd`, the client having handled `h` stanzas.
    Resume { previd: Box<str>, h: u32 },
    /// A XEP-0114 component whose handshake succeeded: attach it on its name's home shard
    /// (the handoff's `jid` is its name).
    Component,
    /// A SASL exchange whose credentials are stored on the user's home shard: start it again
    /// there from the client's first message (`first`, decoded). `failures` carries the
    /// stream's failed attempts so far, `peer` its source address (the home shard's
    /// protection and failed-login throttle judge by it).
    Authenticate {
        mechanism: rookery_sasl::Mechanism,
        first: Vec<u8>,
        failures: u8,
        peer: Option<std::net::IpAddr>,
    },
    /// XEP-0077 registration of the handoff's `jid`, with credentials derived where the
    /// request came (never the password); the result iq echoes `id`. `failures` and `peer`
    /// as for `Authenticate`: the stream authenticates next, here.
    Register {
        id: Box<str>,
        credentials: Box<rookery_sasl::Credentials>,
        failures: u8,
        peer: Option<std::net::IpAddr>,
    },
}

impl Handoff {
    /// The bare JID being moved (for logs and for the server's metrics).
    pub fn jid(&self) -> &Jid {
        &self.jid
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("jid", &self.jid)
            .field("request", &self.request)
            .field("pending_bytes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn mail_and_handoff_cross_threads() {
        assert_send::<Mail>();
        assert_send::<Handoff>();
    }

    #[test]
    fn types_are_classified_per_kind() {
        use StanzaKind::*;
        assert_eq!(StanzaType::classify(Message, None), StanzaType::Normal);
        assert_eq!(
            StanzaType::classify(Message, Some("chat")),
            StanzaType::Chat
        );
        assert_eq!(
            StanzaType::classify(Message, Some("bogus")),
            StanzaType::Normal
        );
        assert_eq!(
            StanzaType::classify(Message, Some("error")),
            StanzaType::Error
        );
        assert_eq!(StanzaType::classify(Presence, None), StanzaType::Available);
        assert_eq!(
            StanzaType::classify(Presence, Some("probe")),
            StanzaType::Probe
        );
        assert_eq!(
            StanzaType::classify(Presence, Some("chat")),
            StanzaType::Invalid
        );
        assert_eq!(StanzaType::classify(Iq, Some("get")), StanzaType::Get);
        assert_eq!(StanzaType::classify(Iq, None), StanzaType::Invalid);
        assert!(StanzaType::Set.is_request());
        assert!(!StanzaType::Result.is_request());
    }
}
