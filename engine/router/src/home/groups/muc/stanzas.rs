//! The bytes rooms write: occupant presence with the `muc#user` item, the subject message,
//! iq results and stanza errors (RFC 6120 8.3) with an optional human-readable text.
//!
//! What it does not do: decide who gets them (the room modules) or route them (the router).
//!
//! Invariants: every value taken from outside (JIDs, nicks, texts, ids) is escaped; payloads
//! passed in are either router-built markup or child elements copied from a stanza that
//! passed the framer, so the output is well-formed whenever the input stanza was.

use rookery_proto::ns;
use rookery_proto::writer::{escape_attr, escape_text};

use super::room::{Affiliation, Role};

pub(crate) const MUC_NS: &str = "http://jabber.org/protocol/muc";
pub(crate) const MUC_USER_NS: &str = "http://jabber.org/protocol/muc#user";
pub(crate) const MUC_ADMIN_NS: &str = "http://jabber.org/protocol/muc#admin";
pub(crate) const MUC_OWNER_NS: &str = "http://jabber.org/protocol/muc#owner";
pub(crate) const DATA_NS: &str = "jabber:x:data";

/// XEP-0045 status codes the rooms send.
pub(crate) mod status {
    /// Real JIDs are visible to every occupant.
    pub const NON_ANONYMOUS: u16 = 100;
    /// This presence is about you.
    pub const SELF: u16 = 110;
    /// The room was created by this join.
    pub const CREATED: u16 = 201;
    /// Removed because the affiliation changed (members-only room).
    pub const AFFILIATION_CHANGE: u16 = 321;
    /// Removed because the room became members-only.
    pub const MEMBERS_ONLY: u16 = 322;
    /// Banned from the room.
    pub const BANNED: u16 = 301;
    /// The occupant's new nick is in the item (nick change).
    pub const NICK_CHANGE: u16 = 303;
    /// Kicked from the room.
    pub const KICKED: u16 = 307;
}

/// The stanza error conditions rooms use (RFC 6120 8.3.3, XEP-0045 types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MucError {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    RegistrationRequired,
    ServiceUnavailable,
    /// `service-unavailable` of type `wait`: the room or group is full (XEP-0045 7.2.10).
    Full,
    /// The store refused to record a change.
    ResourceConstraint,
}

impl MucError {
    pub fn condition(self) -> &'static str {
        match self {
            MucError::BadRequest => "bad-request",
            MucError::Conflict => "conflict",
            MucError::FeatureNotImplemented => "feature-not-implemented",
            MucError::Forbidden => "forbidden",
            MucError::ItemNotFound => "item-not-found",
            MucError::JidMalformed => "jid-malformed",
            MucError::NotAcceptable => "not-acceptable",
            MucError::NotAllowed => "not-allowed",
            MucError::RegistrationRequired => "registration-required",
            MucError::ServiceUnavailable | MucError::Full => "service-unavailable",
            MucError::ResourceConstraint => "resource-constraint",
        }
    }

    pub fn error_type(self) -> &'static str {
        match self {
            MucError::BadRequest | MucError::JidMalformed | MucError::NotAcceptable => "modify",
            MucError::Forbidden | MucError::RegistrationRequired => "auth",
            MucError::Full | MucError::ResourceConstraint => "wait",
            MucError::Conflict
            | MucError::FeatureNotImplemented
            | MucError::ItemNotFound
            | MucError::NotAllowed
            | MucError::ServiceUnavailable => "cancel",
        }
    }
}

/// A refusal: the condition and an optional text for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub error: MucError,
    pub text: Option<String>,
}

impl From<MucError> for Refusal {
    fn from(error: MucError) -> Refusal {
        Refusal { error, text: None }
    }
}

impl Refusal {
    pub fn with_text(error: MucError, text: impl Into<String>) -> Refusal {
        Refusal {
            error,
            text: Some(text.into()),
        }
    }
}

/// Addressing of a stanza the room writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head<'a> {
    pub id: Option<&'a str>,
    pub from: &'a str,
    pub to: Option<&'a str>,
}

fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"='");
    escape_attr(value, out);
    out.push(b'\'');
}

fn open(out: &mut Vec<u8>, name: &str, ty: Option<&str>, head: Head<'_>) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    if let Some(ty) = ty {
        attr(out, "type", ty);
    }
    if let Some(id) = head.id {
        attr(out, "id", id);
    }
    attr(out, "from", head.from);
    if let Some(to) = head.to {
        attr(out, "to", to);
    }
}

/// A stanza error of kind `name` (`message`, `presence`, `iq`). A presence error carries
/// `<x xmlns='http://jabber.org/protocol/muc'/>` as in XEP-0045's examples (clients such as
/// slixmpp match a refused join by it).
pub(crate) fn error(out: &mut Vec<u8>, name: &str, head: Head<'_>, refusal: &Refusal) {
    open(out, name, Some("error"), head);
    out.push(b'>');
    if name == "presence" {
        out.extend_from_slice(b"<x");
        attr(out, "xmlns", MUC_NS);
        out.extend_from_slice(b"/>");
    }
    out.extend_from_slice(b"<error");
    attr(out, "type", refusal.error.error_type());
    out.extend_from_slice(b"><");
    out.extend_from_slice(refusal.error.condition().as_bytes());
    attr(out, "xmlns", ns::STANZAS_ERRORS);
    out.extend_from_slice(b"/>");
    if let Some(text) = &refusal.text {
        out.extend_from_slice(b"<text");
        attr(out, "xmlns", ns::STANZAS_ERRORS);
        out.extend_from_slice(b" xml:lang='en'>");
        escape_text(text, out);
        out.extend_from_slice(b"</text>");
    }
    out.extend_from_slice(b"</error></");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

/// `<iq type='result'>payload</iq>`; `payload` is router-built markup.
pub(crate) fn iq_result(out: &mut Vec<u8>, head: Head<'_>, payload: &[u8]) {
    open(out, "iq", Some("result"), head);
    if payload.is_empty() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    out.extend_from_slice(payload);
    out.extend_from_slice(b"</iq>");
}

/// The `muc#user` item of an occupant's presence.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item<'a> {
    pub affiliation: Affiliation,
    pub role: Role,
    /// The real JID (non-anonymous rooms show it to everyone).
    pub jid: Option<&'a str>,
}

/// An occupant's presence: the room's `muc#user` extension with `item` and `statuses` first
/// (a client reading the first `muc#user` child reads the room's), then `payload` (the user's
/// `<show/>`, `<status/>` ..., from which `occupants::presence_payload` removed every
/// client-written MUC element).
pub(crate) fn occupant_presence(
    out: &mut Vec<u8>,
    head: Head<'_>,
    unavailable: bool,
    payload: &[u8],
    item: Item<'_>,
    statuses: &[u16],
) {
    open(out, "presence", unavailable.then_some("unavailable"), head);
    out.push(b'>');
    muc_user(out, item, None, statuses);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"</presence>");
}

/// The room's `muc#user` extension: `item` (with `nick` when it changes) and `statuses`.
fn muc_user(out: &mut Vec<u8>, item: Item<'_>, nick: Option<&str>, statuses: &[u16]) {
    out.extend_from_slice(b"<x");
    attr(out, "xmlns", MUC_USER_NS);
    out.extend_from_slice(b"><item");
    attr(out, "affiliation", item.affiliation.as_str());
    attr(out, "role", item.role.as_str());
    if let Some(jid) = item.jid {
        attr(out, "jid", jid);
    }
    if let Some(nick) = nick {
        attr(out, "nick", nick);
    }
    out.extend_from_slice(b"/>");
    for code in statuses {
        out.extend_from_slice(b"<status code='");
        out.extend_from_slice(code.to_string().as_bytes());
        out.extend_from_slice(b"'/>");
    }
    out.extend_from_slice(b"</x>");
}

/// The unavailable presence of an occupant changing its nick (XEP-0045 7.6): from the old
/// occupant JID, the item naming `new_nick`, status 303 (and the others of `statuses`).
pub(crate) fn nick_change_presence(
    out: &mut Vec<u8>,
    head: Head<'_>,
    item: Item<'_>,
    new_nick: &str,
    statuses: &[u16],
) {
    open(out, "presence", Some("unavailable"), head);
    out.push(b'>');
    muc_user(out, item, Some(new_nick), statuses);
    out.extend_from_slice(b"</presence>");
}

/// What an occupant session hears when its room is destroyed (XEP-0045 10.9): unavailable,
/// no affiliation or role, and the `<destroy/>` with the alternate venue and reason, if any.
pub(crate) fn destroyed_presence(
    out: &mut Vec<u8>,
    head: Head<'_>,
    venue: Option<&str>,
    reason: Option<&str>,
) {
    open(out, "presence", Some("unavailable"), head);
    out.extend_from_slice(b"><x");
    attr(out, "xmlns", MUC_USER_NS);
    out.extend_from_slice(b"><item affiliation='none' role='none'/><destroy");
    if let Some(venue) = venue {
        attr(out, "jid", venue);
    }
    match reason {
        Some(reason) => {
            out.extend_from_slice(b"><reason>");
            escape_text(reason, out);
            out.extend_from_slice(b"</reason></destroy>");
        }
        None => out.extend_from_slice(b"/>"),
    }
    out.extend_from_slice(b"</x></presence>");
}

/// The subject message sent to a joiner (an empty `<subject/>` when none is set).
pub(crate) fn subject_message(out: &mut Vec<u8>, head: Head<'_>, text: &str) {
    open(out, "message", Some("groupchat"), head);
    if text.is_empty() {
        out.extend_from_slice(b"><subject/></message>");
        return;
    }
    out.extend_from_slice(b"><subject>");
    escape_text(text, out);
    out.extend_from_slice(b"</subject></message>");
}

/// ` name='value'` for payload builders.
pub(crate) fn push_attr(out: &mut Vec<u8>, name: &str, value: &str) {
    attr(out, name, value);
}

/// `<value>text</value>`, escaped.
pub(crate) fn push_value(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(b"<value>");
    escape_text(value, out);
    out.extend_from_slice(b"</value>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).expect("builders write UTF-8")
    }

    #[test]
    fn errors_carry_type_condition_and_escaped_text() {
        let mut out = Vec::new();
        let head = Head {
            id: Some("j1"),
            from: "r@groups.example.com/n",
            to: Some("a@example.com/x"),
        };
        let refusal = Refusal::with_text(MucError::Full, "full <1024>");
        error(&mut out, "presence", head, &refusal);
        assert_eq!(
            text(out),
            "<presence type='error' id='j1' from='r@groups.example.com/n' to='a@example.com/x'>\
             <x xmlns='http://jabber.org/protocol/muc'/><error type='wait'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>full &lt;1024&gt;</text>\
             </error></presence>"
        );
    }

    #[test]
    fn occupant_presence_has_item_and_statuses() {
        let mut out = Vec::new();
        let head = Head {
            id: None,
            from: "r@g/n",
            to: None,
        };
        let item = Item {
            affiliation: Affiliation::Owner,
            role: Role::Moderator,
            jid: Some("a@e/x"),
        };
        occupant_presence(
            &mut out,
            head,
            true,
            b"<show>away</show>",
            item,
            &[110, 201],
        );
        assert_eq!(
            text(out),
            "<presence type='unavailable' from='r@g/n'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' \
             role='moderator' jid='a@e/x'/><status code='110'/><status code='201'/></x>\
             <show>away</show></presence>"
        );
    }
}
