//! The router's outputs: the `Effects` trait the caller implements, and the values that cross
//! shards (`Mail`, `Handoff`).
//!
//! What it does not do: perform any I/O. The server implements `Effects` over its io driver
//! and mailboxes; tests implement it with `rookery_testkit::RecordingEffects`.
//!
//! Invariants: `Mail` and `Handoff` are `Send` (they cross threads); nothing else here is.
//! A `Fanout` carrying a `GatherRef` is answered by exactly one `Gathered` to its shard.
//! `StanzaType` travels with mail so the home shard applies RFC 6121 section 8.5 without
//! re-parsing the stanza. A `Deliver` carrying an `AckRef` is answered by exactly one
//! `Committed` to the sender's shard: at once when nothing had to be stored, else once the
//! home shard's store committed the message.

use std::sync::Arc;

use rookery_proto::{Framer, Jid, StanzaKind};
use rookery_store::LogSpan;

use crate::sm::SessionRef;

/// Opaque conn identity; the server packs its io conn id (index + generation) into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey(pub u64);

/// What the router asks of the world. Every method is a request; none may call back into the
/// router (the router is in the middle of a call when it invokes them).
pub trait Effects {
    /// Queue bytes for a conn of this shard.
    fn send(&mut self, conn: ConnKey, bytes: &[u8]);
    /// Close after flushing what was sent (the router has already sent any stream error and
    /// `</stream:stream>`). The server later calls `on_closed` for it.
    fn close(&mut self, conn: ConnKey);
    /// Mail another shard (never this one).
    fn mail(&mut self, dest: u16, mail: Mail);
    /// Bytes queued for a conn of this shard and not yet handed to the kernel (0 for a conn
    /// that is gone). Flow control reads it (see `delivery`).
    fn queued_bytes(&self, conn: ConnKey) -> usize;
    /// Reads `span` of this shard's log; the answer comes back as `Router::on_log_read` with
    /// the same `tag` (in a later call, never inside this one).
    fn read_log(&mut self, tag: u64, span: LogSpan);
    /// Move this conn to shard `dest`: the server stops reading it, collects unread bytes,
    /// and delivers `handoff` + those bytes to `dest`'s router via `on_adopted`.
    /// After this call the router has forgotten the conn (no on_closed must come for it here).
    fn hand_off(&mut self, conn: ConnKey, dest: u16, handoff: Handoff);
}

/// A message between the routers of two shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mail {
    /// A stanza for a JID whose home shard is the receiver, already stamped with `from`.
    Deliver {
        /// The recipient as addressed (bare or full), parsed.
        to: Jid,
        /// The sender's full JID (the stamped `from`).
        from: Jid,
        kind: StanzaKind,
        /// The `type` attribute, classified by the sender's shard.
        ty: StanzaType,
        /// The stanza bytes, exactly as they go on the recipient's wire.
        stanza: Box<[u8]>,
        /// Set when the sender counts stanzas (XEP-0198): whom to tell once it is handled.
        ack: Option<AckRef>,
    },
    /// A stanza carrying `ack` was handled on its recipient's home shard (stored and
    /// committed, or not needing storage): the sender's handled count may advance over it.
    Committed(AckRef),
    /// One stanza for many recipients homed on the receiver (presence broadcast to contacts,
    /// a group's message to its members): one mail per destination shard, not per recipient.
    Fanout(Box<Fanout>),
    /// The receiver's part of fan-out `gather` is handled (copies stored and committed);
    /// `refused` copies could not be stored (offline quota, store unavailable).
    Gathered { gather: GatherRef, refused: u32 },
}

/// A stanza fanned out to the recipients of one destination shard. The stanza and the
/// recipient list are shared (`Arc`) by every shard's mail and, for a group, by every message
/// until its membership changes: a fan-out copies neither per shard nor per recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// The stamped `from`: the user's full JID, or the group's `room@groups/nick`.
    pub from: Jid,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    /// The stanza with `from` stamped and no `to`: the destination stamps `to` per recipient.
    pub stanza: Arc<[u8]>,
    /// Recipients homed on the destination shard.
    pub recipients: Arc<[Recipient]>,
    /// Set for a group message, whose sender must learn when every shard stored its copies
    /// (its XEP-0198 ack) and whether any was refused (an error): answered by exactly one
    /// `Gathered` once this shard has handled it.
    pub gather: Option<GatherRef>,
}

/// One recipient of a fan-out, and how it is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// Every available resource of this bare JID (presence broadcast to a contact).
    Available(Jid),
    /// The session of this full JID (a group occupant). A message whose session is gone is
    /// stored for the bare JID instead, like a member's.
    Session(Jid),
    /// A group member who is not in the room: a message is stored and forwarded (written now
    /// to available resources, else flushed at the next login); presence is not sent.
    Member(Jid),
}

impl Recipient {
    /// The JID the recipient is addressed by (`to` of its copy).
    pub fn jid(&self) -> &Jid {
        match self {
            Recipient::Available(jid) | Recipient::Session(jid) | Recipient::Member(jid) => jid,
        }
    }
}

/// Names one pending fan-out on the shard that started it. Opaque outside the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherRef {
    pub(crate) shard: u16,
    pub(crate) id: u64,
}

/// Names one inbound stanza of a stream-managed session: its shard, session and number.
/// Opaque outside the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckRef {
    pub(crate) shard: u16,
    pub(crate) session: SessionRef,
    pub(crate) stanza: u64,
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
    /// The authenticated bare JID.
    pub(crate) jid: Jid,
    /// What the client asked for, completed on the home shard.
    pub(crate) request: HomeRequest,
    /// Bytes this shard had already received after the request; processed before `leftover`.
    pub(crate) pending: Vec<u8>,
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
