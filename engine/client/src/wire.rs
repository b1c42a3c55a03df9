//! The bytes the client writes during login and for XEP-0198; public so tests that drive a
//! server by hand write the same bytes (`rookery-testkit`).
//!
//! What it does not do: stanzas the caller sends once online (the caller writes those).

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_proto::writer::{escape_attr, escape_text};

use crate::SM_NS;

/// The initial stream header (and the one after the SASL restart).
pub fn stream_header(domain: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream to='");
    escape_attr(domain, out);
    out.extend_from_slice(
        b"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    );
}

/// The STARTTLS namespace (RFC 6120 5).
pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// `<starttls/>`.
pub fn starttls(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}

/// The id of the client's bind iq.
pub const BIND_ID: &str = "bind1";
/// The id of the client's legacy session iq.
pub const SESSION_ID: &str = "sess1";

/// `<auth mechanism='M'>` with the base64 of `initial` (`=` when empty, RFC 6120 6.4.2).
pub fn auth(mechanism: &str, initial: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='");
    escape_attr(mechanism, out);
    out.extend_from_slice(b"'>");
    push_base64(initial, out);
    out.extend_from_slice(b"</auth>");
}

/// `<response/>` with the base64 of `data`.
pub fn response(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
    push_base64(data, out);
    out.extend_from_slice(b"</response>");
}

/// Base64 of a SASL message; `=` for an empty one.
fn push_base64(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        out.push(b'=');
        return;
    }
    let start = out.len();
    out.resize(
        start + base64::encoded_len(data.len(), true).unwrap_or(0),
        0,
    );
    // The slice was sized by encoded_len for this input, so encoding fits.
    let written = STANDARD.encode_slice(data, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// `<iq type='set' id='ID'><bind><resource>R</resource></bind></iq>` (no resource element
/// when the server is to assign one).
pub fn bind(id: &str, resource: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<iq type='set' id='");
    escape_attr(id, out);
    out.extend_from_slice(b"'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'");
    match resource {
        Some(resource) => {
            out.extend_from_slice(b"><resource>");
            escape_text(resource, out);
            out.extend_from_slice(b"</resource></bind></iq>");
        }
        None => out.extend_from_slice(b"/></iq>"),
    }
}

/// The RFC 3921 session iq, for servers that still require it.
pub fn session(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<iq type='set' id='");
    out.extend_from_slice(SESSION_ID.as_bytes());
    out.extend_from_slice(b"'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
}

/// `<a xmlns='urn:xmpp:sm:3' h='N'/>`.
pub fn ack(h: u32, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "<a xmlns='{SM_NS}' h='{h}'/>");
}

/// `<r xmlns='urn:xmpp:sm:3'/>`.
pub fn request(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
}

/// `<enable/>`, asking for resumption or not.
pub fn enable(resumable: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<enable xmlns='urn:xmpp:sm:3'");
    if resumable {
        out.extend_from_slice(b" resume='true'");
    }
    out.extend_from_slice(b"/>");
}

/// `<resume previd h/>`.
pub fn resume(previd: &str, h: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<resume xmlns='urn:xmpp:sm:3' previd='");
    escape_attr(previd, out);
    let _ = write!(out, "' h='{h}'/>");
}

/// The stream error XEP-0198 4 prescribes for an `h` beyond what was sent, and the close.
pub fn handled_count_too_high(h: u32, sent: u32, out: &mut Vec<u8>) {
    let _ = write!(
        out,
        "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <handled-count-too-high xmlns='{SM_NS}' h='{h}' send-count='{sent}'/></stream:error>\
         </stream:stream>"
    );
}
