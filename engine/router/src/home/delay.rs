//! XEP-0203 delayed delivery: the `<delay/>` element a stored message carries when it is
//! delivered later (XEP-0160 offline messages, retransmissions), and the XEP-0082 timestamp.
//!
//! What it does: copies a stanza with `<delay xmlns='urn:xmpp:delay' from=DOMAIN stamp=.../>`
//! inserted as its last child (a self-closing stanza is opened for it), stamped with
//! `rookery_proto::datetime`'s XEP-0082 timestamp.
//!
//! What it does not do: read clocks (the stamp is the store's put time, wall-clock ms that the
//! router computed from the time the server passed in), or parse the stanza beyond its name.
//!
//! Invariants: every byte of the original stanza is kept, in order; only the delay element
//! (and, for `<x .../>`, the split into start and end tag) is added.

use rookery_proto::datetime::push_xep0082;
use rookery_proto::StanzaView;

use crate::replies;

/// Writes `stanza` with a delay element stamped `stamp_unix_ms` into `out` (appending).
/// A stanza that does not parse (never the case for stored stanzas) is copied unchanged.
pub fn with_delay(stanza: &[u8], domain: &str, stamp_unix_ms: u64, out: &mut Vec<u8>) {
    let Ok(view) = StanzaView::parse(stanza) else {
        out.extend_from_slice(stanza);
        return;
    };
    let name = view.name().as_bytes();
    if view.is_empty_element() {
        // `<message .../>` -> `<message ...>` DELAY `</message>`.
        let open = stanza.strip_suffix(b"/>").unwrap_or(stanza);
        out.extend_from_slice(open);
        out.push(b'>');
        delay_element(domain, stamp_unix_ms, out);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name);
        out.push(b'>');
        return;
    }
    // The end tag is the last `</` of a framed element.
    let end = stanza
        .windows(2)
        .rposition(|w| w == b"</")
        .unwrap_or(stanza.len());
    out.extend_from_slice(&stanza[..end]);
    delay_element(domain, stamp_unix_ms, out);
    out.extend_from_slice(&stanza[end..]);
}

fn delay_element(domain: &str, stamp_unix_ms: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<delay xmlns='urn:xmpp:delay'");
    replies::attr(out, "from", domain);
    out.extend_from_slice(b" stamp='");
    push_xep0082(stamp_unix_ms, out);
    out.extend_from_slice(b"'/>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delayed(stanza: &str) -> String {
        let mut out = Vec::new();
        with_delay(
            stanza.as_bytes(),
            "example.com",
            1_795_888_800_000,
            &mut out,
        );
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn delay_goes_before_the_end_tag() {
        let delay = "<delay xmlns='urn:xmpp:delay' from='example.com' \
                     stamp='2026-11-28T18:00:00.000Z'/>";
        assert_eq!(
            delayed("<message to='b@e.com' id='m1'><body>hi</body></message>"),
            format!("<message to='b@e.com' id='m1'><body>hi</body>{delay}</message>")
        );
        assert_eq!(
            delayed("<message id='e' />"),
            format!("<message id='e' >{delay}</message>")
        );
        assert_eq!(
            delayed("<c:message xmlns:c='jabber:client'><body/></c:message >"),
            format!("<c:message xmlns:c='jabber:client'><body/>{delay}</c:message >")
        );
    }
}
