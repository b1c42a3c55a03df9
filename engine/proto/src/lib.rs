//! rookery-proto: the sans-IO XMPP layer shared by the server and the load generator.
//!
//! Bytes in, borrowed views out; no sockets, no clocks, no allocation on the routing path
//! except when a stanza spans two reads (then the framer copies it once into its own buffer).
//!
//! - [`framer`]: finds top-level element boundaries in a stream of bytes split anywhere,
//!   enforcing the RFC 6120 XML restrictions, namespace well-formedness within each stanza
//!   (so a stanza forwarded as bytes parses in every recipient's stream) and the size limits.
//! - [`view`]: a [`view::StanzaView`] over one framed stanza: name, to, from, type, id and the
//!   first-level children, without building a tree; plus `stamp` to rewrite the sender.
//! - [`element`]: a small borrowed element tree for the few stanzas the server must answer
//!   itself (SASL, bind, iq to the server).
//! - [`writer`]: escaping helpers for building stanzas.
//! - [`jid`]: JIDs per RFC 7622 (length limits, case folding of local part and domain).
//! - [`datetime`]: the workspace's one calendar (Unix days to dates and back) and XEP-0082
//!   timestamps.
//!
//! What it does *not* do: namespace resolution beyond the literal `xmlns` attributes in the
//! view (the framer checks that namespaces are well-formed, it does not report them), DTDs,
//! entity declarations, anything needing a full XML parser. Those are refused by design
//! (RFC 6120 section 11 forbids most of them in XMPP).

#![forbid(unsafe_code)]

pub mod datetime;
pub mod element;
pub mod framer;
#[doc(hidden)]
pub mod fuzzing;
pub mod jid;
pub mod view;
pub mod writer;
mod xml;

pub use framer::{Frame, FrameError, Framer, FramerLimits};
pub use jid::{Jid, JidError};
pub use view::{StanzaKind, StanzaView, ViewError};

/// The namespaces the engine names in code.
pub mod ns {
    pub const CLIENT: &str = "jabber:client";
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    pub const STREAMS_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    pub const STANZAS_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    pub const PING: &str = "urn:xmpp:ping";
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    pub const ROSTER: &str = "jabber:iq:roster";
    pub const RECEIPTS: &str = "urn:xmpp:receipts";
    pub const REGISTER: &str = "jabber:iq:register";
}
