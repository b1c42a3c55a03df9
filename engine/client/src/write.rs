//! The bytes the client writes during login and for XEP-0198.
//!
//! What it does not do: stanzas the caller sends once online (the caller writes those).

use std::io::Write as _;

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

pub const BIND_ID: &str = "bind1";
pub const SESSION_ID: &str = "sess1";

/// `<iq type='set' id='bind1'><bind><resource>R</resource></bind></iq>` (no resource
/// element when the server is to assign one).
pub fn bind(resource: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<iq type='set' id='");
    out.extend_from_slice(BIND_ID.as_bytes());
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
