//! Byte builders for what the relay writes itself: stream header, features, SASL answers,
//! bind and iq results, stream errors.
//!
//! What it does not do: decide when to send them (see `conn`), or touch relayed stanzas.
//! Invariant: every value that comes from a client is escaped (`rookery_proto::writer`).

use rookery_proto::ns;
use rookery_proto::writer::{escape_attr, escape_text};

/// `<?xml?>` plus our stream header (RFC 6120 4.7) and the features of this stream stage:
/// SASL PLAIN before authentication, resource binding after (no session, no XEP-0198, so a
/// client goes straight from bind to its first stanza).
pub fn stream_header(out: &mut Vec<u8>, stream_id: u64, domain: &str, authenticated: bool) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' ");
    out.extend_from_slice(b"xmlns:stream='http://etherx.jabber.org/streams' id='r");
    out.extend_from_slice(stream_id.to_string().as_bytes());
    out.extend_from_slice(b"' from='");
    escape_attr(domain, out);
    out.extend_from_slice(b"' version='1.0'>");
    out.extend_from_slice(if authenticated {
        FEATURES_POST_AUTH
    } else {
        FEATURES_PRE_AUTH
    });
}

const FEATURES_PRE_AUTH: &[u8] = b"<stream:features><mechanisms \
xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>\
</stream:features>";

const FEATURES_POST_AUTH: &[u8] =
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

pub const SASL_SUCCESS: &[u8] = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

/// `<failure xmlns=SASL><COND/></failure>` (RFC 6120 6.5); `condition` is one of ours.
pub fn sasl_failure(out: &mut Vec<u8>, condition: &str) {
    out.extend_from_slice(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b"/></failure>");
}

/// `<stream:error><COND/></stream:error></stream:stream>` (RFC 6120 4.9).
pub fn stream_error(out: &mut Vec<u8>, condition: &str) {
    out.extend_from_slice(b"<stream:error><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::STREAMS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/></stream:error>");
    out.extend_from_slice(STREAM_CLOSE);
}

/// The result of a resource binding (RFC 6120 7.6.1).
pub fn bind_result(out: &mut Vec<u8>, id: &str, full_jid: &str) {
    out.extend_from_slice(b"<iq type='result' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>");
    escape_text(full_jid, out);
    out.extend_from_slice(b"</jid></bind></iq>");
}

/// An empty iq result (ping, legacy session).
pub fn iq_result(out: &mut Vec<u8>, id: &str) {
    out.extend_from_slice(b"<iq type='result' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"'/>");
}

/// An iq error of type cancel with a stanza error `condition` (RFC 6120 8.3), e.g. for an iq
/// the relay does not serve (`service-unavailable`, RFC 6120 8.4).
pub fn iq_error(out: &mut Vec<u8>, id: &str, condition: &str) {
    out.extend_from_slice(b"<iq type='error' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"'><error type='cancel'><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::STANZAS_ERRORS.as_bytes());
    out.extend_from_slice(b"'/></error></iq>");
}

/// XEP-0198 `<failed/>`: a client asking for stream management we did not offer.
pub const SM_FAILED: &[u8] = b"<failed xmlns='urn:xmpp:sm:3'><feature-not-implemented \
xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
