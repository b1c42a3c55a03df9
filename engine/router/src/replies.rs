//! Byte builders for everything the router itself writes: stream headers, features, stream
//! errors, SASL answers, bind results, iq results and stanza errors.
//!
//! What it does not do: decide *when* to send them (conn/stream/routing do that) or touch the
//! bytes of stanzas being forwarded (those go out as the client wrote them, only stamped).
//!
//! Invariants: every attribute value and text that comes from outside goes through
//! `rookery_proto::writer` escaping; builders append to a caller-owned `Vec<u8>` so the hot
//! paths reuse one buffer.

use rookery_proto::ns;
use rookery_proto::writer::escape_attr;

use crate::errors::Fault;
use crate::stream::header::Dialect;

/// `<?xml ...?>` plus our stream header (RFC 6120 4.7).
pub fn stream_header(out: &mut Vec<u8>, id: &str, domain: &str) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' ");
    out.extend_from_slice(b"xmlns:stream='http://etherx.jabber.org/streams'");
    attr(out, "id", id);
    attr(out, "from", domain);
    out.extend_from_slice(b" version='1.0' xml:lang='en'>");
}

pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

pub const SASL_SUCCESS: &[u8] = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

pub const SASL_CHALLENGE_EMPTY: &[u8] = b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

/// `<stream:error><COND/>[<text>..</text>]</stream:error></stream:stream>` (RFC 6120 4.9), in
/// the conn's `dialect` (RFC 7395 3.6: over WebSocket the error declares the `stream` prefix
/// and the end is `<close/>`).
pub fn stream_error(out: &mut Vec<u8>, dialect: Dialect, fault: &Fault) {
    dialect.error_start(out);
    out.push(b'<');
    out.extend_from_slice(fault.error.condition().as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::STREAMS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/>");
    if let Some(text) = fault.text {
        out.extend_from_slice(b"<text xmlns='");
        out.extend_from_slice(ns::STREAMS_ERRORS.as_bytes());
        out.extend_from_slice(b"'>");
        rookery_proto::writer::escape_text(text, out);
        out.extend_from_slice(b"</text>");
    }
    out.extend_from_slice(b"</stream:error>");
    dialect.close(out);
}

/// `<stream:error><see-other-host>ADDRESS</see-other-host></stream:error></stream:stream>`
/// (RFC 6120 4.9.3.19: the address is the condition element's own text, not a `<text/>`).
pub fn see_other_host(out: &mut Vec<u8>, dialect: Dialect, address: &str) {
    dialect.error_start(out);
    out.extend_from_slice(b"<see-other-host xmlns='");
    out.extend_from_slice(ns::STREAMS_ERRORS.as_bytes());
    out.extend_from_slice(b"'>");
    rookery_proto::writer::escape_text(address, out);
    out.extend_from_slice(b"</see-other-host></stream:error>");
    dialect.close(out);
}

/// `<failure xmlns=SASL><COND/></failure>` (RFC 6120 6.5).
pub fn sasl_failure(out: &mut Vec<u8>, condition: &str) {
    out.extend_from_slice(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b"/></failure>");
}

/// The result of a resource binding (RFC 6120 7.6.1).
pub fn bind_result(out: &mut Vec<u8>, id: &str, full_jid: &str) {
    out.extend_from_slice(b"<iq type='result'");
    attr(out, "id", id);
    out.extend_from_slice(b"><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>");
    rookery_proto::writer::escape_text(full_jid, out);
    out.extend_from_slice(b"</jid></bind></iq>");
}

/// Our XEP-0198 ack request.
pub const SM_REQUEST: &[u8] = b"<r xmlns='urn:xmpp:sm:3'/>";

/// `<enabled/>` (XEP-0198 3), with `id`, `resume` and `max` when resumption is on.
pub fn sm_enabled(out: &mut Vec<u8>, resume: Option<(&str, u64)>) {
    out.extend_from_slice(b"<enabled xmlns='urn:xmpp:sm:3'");
    if let Some((id, max_s)) = resume {
        attr(out, "id", id);
        out.extend_from_slice(b" resume='true' max='");
        push_decimal(out, max_s);
        out.push(b'\'');
    }
    out.extend_from_slice(b"/>");
}

/// `<a h='H'/>`, with `h` modulo 2^32 (XEP-0198 4).
pub fn sm_ack(out: &mut Vec<u8>, handled: u64) {
    out.extend_from_slice(b"<a xmlns='urn:xmpp:sm:3' h='");
    push_decimal(out, handled & u64::from(u32::MAX));
    out.extend_from_slice(b"'/>");
}

/// `<resumed h='H' previd='ID'/>` (XEP-0198 5).
pub fn sm_resumed(out: &mut Vec<u8>, handled: u64, previd: &str) {
    out.extend_from_slice(b"<resumed xmlns='urn:xmpp:sm:3' h='");
    push_decimal(out, handled & u64::from(u32::MAX));
    out.push(b'\'');
    attr(out, "previd", previd);
    out.extend_from_slice(b"/>");
}

/// `<failed><COND xmlns=STANZAS/></failed>` (XEP-0198 6), the condition a stanza error one,
/// with `h` when given (XEP-0198 5: a failed resumption may tell the client how many of its
/// stanzas the server handled, so it knows those are not lost).
pub fn sm_failed(out: &mut Vec<u8>, condition: &str, handled: Option<u64>) {
    out.extend_from_slice(b"<failed xmlns='urn:xmpp:sm:3'");
    if let Some(handled) = handled {
        out.extend_from_slice(b" h='");
        push_decimal(out, handled & u64::from(u32::MAX));
        out.push(b'\'');
    }
    out.extend_from_slice(b"><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::STANZAS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/></failed>");
}

/// The stream error for an `<a h>` acknowledging more than was sent (XEP-0198 4).
pub fn handled_count_too_high(out: &mut Vec<u8>, dialect: Dialect, h: u32, sent: u64) {
    dialect.error_start(out);
    out.extend_from_slice(b"<undefined-condition xmlns='");
    out.extend_from_slice(ns::STREAMS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/><handled-count-too-high xmlns='urn:xmpp:sm:3' h='");
    push_decimal(out, u64::from(h));
    out.extend_from_slice(b"' send-count='");
    push_decimal(out, sent & u64::from(u32::MAX));
    out.extend_from_slice(b"'/></stream:error>");
    dialect.close(out);
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        // Lossless: a single decimal digit.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Addressing of a reply: `id` echoed, `from`/`to` swapped from the request (RFC 6120 8.3.1).
#[derive(Clone, Copy, Debug)]
pub struct ReplyTo<'a> {
    pub id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// `<iq type='result' ...>PAYLOAD</iq>`, or an empty `<iq .../>` when `payload` is empty.
/// `payload` is trusted markup built by the router (never client text).
pub fn iq_result(out: &mut Vec<u8>, reply: ReplyTo<'_>, payload: &[u8]) {
    out.extend_from_slice(b"<iq type='result'");
    addressing(out, reply);
    if payload.is_empty() {
        out.extend_from_slice(b"/>");
    } else {
        out.push(b'>');
        out.extend_from_slice(payload);
        out.extend_from_slice(b"</iq>");
    }
}

/// A stanza error (RFC 6120 8.3) of stanza kind `name` (`message`, `presence` or `iq`).
pub fn stanza_error(out: &mut Vec<u8>, name: &str, reply: ReplyTo<'_>, error: StanzaError) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" type='error'");
    addressing(out, reply);
    out.extend_from_slice(b"><error type='");
    out.extend_from_slice(error.error_type().as_bytes());
    out.extend_from_slice(b"'><");
    out.extend_from_slice(error.condition().as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::STANZAS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/></error></");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

/// The stanza error conditions the router sends (RFC 6120 8.3.3), with their error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StanzaError {
    BadRequest,
    JidMalformed,
    RemoteServerNotFound,
    ServiceUnavailable,
    /// The store refused the message (offline quota, log write failures): try later.
    ResourceConstraint,
    /// A roster set past `--roster-max`, or a request the account may not make.
    NotAllowed,
    /// A roster remove of a contact not in the roster.
    ItemNotFound,
    /// A presence too large to be kept and broadcast (`MAX_PRESENCE_BYTES`).
    NotAcceptable,
    /// Another location did not answer in time (`RouterConfig::mail_timeout_ms`).
    RemoteServerTimeout,
    /// A request about another account (XEP-0077: changing another user's password).
    NotAuthorized,
    /// A request the server understands but does not implement.
    FeatureNotImplemented,
    /// XEP-0077: the username is taken.
    Conflict,
    /// Known, but this requester may not (another account's private data, XEP-0012 without
    /// a presence subscription).
    Forbidden,
}

impl StanzaError {
    pub fn condition(self) -> &'static str {
        match self {
            StanzaError::BadRequest => "bad-request",
            StanzaError::JidMalformed => "jid-malformed",
            StanzaError::RemoteServerNotFound => "remote-server-not-found",
            StanzaError::ServiceUnavailable => "service-unavailable",
            StanzaError::ResourceConstraint => "resource-constraint",
            StanzaError::NotAllowed => "not-allowed",
            StanzaError::ItemNotFound => "item-not-found",
            StanzaError::NotAcceptable => "not-acceptable",
            StanzaError::RemoteServerTimeout => "remote-server-timeout",
            StanzaError::NotAuthorized => "not-authorized",
            StanzaError::FeatureNotImplemented => "feature-not-implemented",
            StanzaError::Conflict => "conflict",
            StanzaError::Forbidden => "forbidden",
        }
    }

    /// The `type` of the `<error/>` element, as RFC 6120 8.3.3 recommends per condition.
    pub fn error_type(self) -> &'static str {
        match self {
            StanzaError::BadRequest | StanzaError::JidMalformed | StanzaError::NotAcceptable => {
                "modify"
            }
            StanzaError::RemoteServerNotFound
            | StanzaError::ServiceUnavailable
            | StanzaError::NotAllowed
            | StanzaError::ItemNotFound
            | StanzaError::FeatureNotImplemented
            | StanzaError::Conflict => "cancel",
            StanzaError::NotAuthorized | StanzaError::Forbidden => "auth",
            StanzaError::ResourceConstraint | StanzaError::RemoteServerTimeout => "wait",
        }
    }
}

fn addressing(out: &mut Vec<u8>, reply: ReplyTo<'_>) {
    if let Some(id) = reply.id {
        attr(out, "id", id);
    }
    if let Some(from) = reply.from {
        attr(out, "from", from);
    }
    if let Some(to) = reply.to {
        attr(out, "to", to);
    }
}

/// ` name='value'`, the value escaped.
pub(crate) fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"='");
    escape_attr(value, out);
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(build: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        build(&mut out);
        String::from_utf8(out).expect("builders write UTF-8")
    }

    #[test]
    fn header_has_the_documented_shape() {
        assert_eq!(
            text(|o| stream_header(o, "abc", "example.com")),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.com' \
             version='1.0' xml:lang='en'>"
        );
    }

    #[test]
    fn stream_error_closes_the_stream() {
        use crate::errors::StreamError;
        assert_eq!(
            text(|o| stream_error(o, Dialect::Stream, &StreamError::HostUnknown.into())),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             </stream:error></stream:stream>"
        );
        let fault = Fault {
            text: Some("too <many>"),
            ..StreamError::PolicyViolation.into()
        };
        assert_eq!(
            text(|o| stream_error(o, Dialect::Stream, &fault)),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too &lt;many&gt;</text>\
             </stream:error></stream:stream>"
        );
    }

    #[test]
    fn replies_escape_client_values() {
        let reply = ReplyTo {
            id: Some("a'<b"),
            from: None,
            to: Some("u@e.com/r&"),
        };
        assert_eq!(
            text(|o| iq_result(o, reply, b"")),
            "<iq type='result' id='a&apos;&lt;b' to='u@e.com/r&amp;'/>"
        );
        let reply = ReplyTo {
            id: None,
            from: Some("e.com"),
            to: Some("u@e.com"),
        };
        assert_eq!(
            text(|o| stanza_error(o, "message", reply, StanzaError::ServiceUnavailable)),
            "<message type='error' from='e.com' to='u@e.com'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        );
    }

    #[test]
    fn stream_management_elements() {
        assert_eq!(
            text(|o| sm_enabled(o, Some(("x'1", 300)))),
            "<enabled xmlns='urn:xmpp:sm:3' id='x&apos;1' resume='true' max='300'/>"
        );
        assert_eq!(
            text(|o| sm_enabled(o, None)),
            "<enabled xmlns='urn:xmpp:sm:3'/>"
        );
        assert_eq!(
            text(|o| sm_ack(o, (1 << 32) + 7)),
            "<a xmlns='urn:xmpp:sm:3' h='7'/>"
        );
        assert_eq!(
            text(|o| sm_resumed(o, 0, "id")),
            "<resumed xmlns='urn:xmpp:sm:3' h='0' previd='id'/>"
        );
        assert_eq!(
            text(|o| sm_failed(o, "item-not-found", None)),
            "<failed xmlns='urn:xmpp:sm:3'><item-not-found \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
        );
        assert_eq!(
            text(|o| sm_failed(o, "resource-constraint", Some((1 << 32) + 3))),
            "<failed xmlns='urn:xmpp:sm:3' h='3'><resource-constraint \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
        );
        assert!(text(|o| handled_count_too_high(o, Dialect::Stream, 10, 8))
            .contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' send-count='8'/>"));
        let mut out = Vec::new();
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }

    #[test]
    fn bind_result_and_sasl_failure() {
        assert_eq!(
            text(|o| bind_result(o, "b1", "a@e.com/r")),
            "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>a@e.com/r</jid></bind></iq>"
        );
        assert_eq!(
            text(|o| sasl_failure(o, "not-authorized")),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
        );
    }
}
