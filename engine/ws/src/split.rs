//! Splitting a stream's outgoing bytes into top-level elements, one per WebSocket message
//! (RFC 7395 3.3.3), and making each a standalone document.
//!
//! What it does: [`element_end`] finds where the first top-level element of some bytes ends,
//! skipping quoted attribute values (a `>` inside quotes is not the end of a tag), CDATA
//! sections, comments and processing instructions, and counting self-closing tags.
//! [`needs_client_ns`] tells whether a top-level `<message>`, `<presence>` or `<iq>` relies on
//! the stream's default namespace (no `xmlns` of its own): those get
//! ` xmlns='jabber:client'` added after their name, since a WebSocket message has no stream
//! around it to inherit from.
//!
//! What it does not do: check well-formedness (the bytes come from the router, which only
//! writes well-formed elements), or handle an open stream header (the WebSocket dialect of
//! the router never writes one).
//!
//! Invariants: no byte is changed, only located; the scan is linear in the bytes.

/// The `xmlns` added to stanzas that have none.
pub const CLIENT_NS_ATTR: &[u8] = b" xmlns='jabber:client'";

/// Where the first element of `bytes` (starting at its first `<`) ends, exclusive, or `None`
/// if it is not complete yet. Text before the first `<` is skipped.
pub fn element_end(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = 0usize;
    loop {
        let open = at + memchr(b'<', &bytes[at..])?;
        let rest = &bytes[open..];
        let (end, delta) = if rest.starts_with(b"<![CDATA[") {
            (find(rest, b"]]>")? + 3, Delta::Same)
        } else if rest.starts_with(b"<!--") {
            (find(rest, b"-->")? + 3, Delta::Same)
        } else if rest.starts_with(b"<?") {
            (find(rest, b"?>")? + 2, Delta::Same)
        } else if rest.starts_with(b"</") {
            (memchr(b'>', rest)? + 1, Delta::Close)
        } else {
            let end = tag_end(rest)?;
            let delta = if rest[..end].ends_with(b"/>") {
                Delta::Empty
            } else {
                Delta::Open
            };
            (end, delta)
        };
        at = open + end;
        match delta {
            Delta::Same => {}
            Delta::Open => depth += 1,
            Delta::Empty if depth == 0 => return Some(at),
            Delta::Empty => {}
            Delta::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(at);
                }
            }
        }
    }
}

enum Delta {
    Same,
    Open,
    Empty,
    Close,
}

/// The end (exclusive) of the start tag at the start of `tag`, skipping quoted values.
fn tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &byte) in tag.iter().enumerate() {
        match (quote, byte) {
            (None, b'\'' | b'"') => quote = Some(byte),
            (None, b'>') => return Some(i + 1),
            (Some(q), b) if b == q => quote = None,
            _ => {}
        }
    }
    None
}

/// If `element` (one whole element, leading text allowed) is a `<message>`, `<presence>` or
/// `<iq>` without an `xmlns` attribute, the offset just after its name, where
/// [`CLIENT_NS_ATTR`] goes.
pub fn needs_client_ns(element: &[u8]) -> Option<usize> {
    let open = memchr(b'<', element)?;
    let tag = &element[open..];
    let tag = &tag[..tag_end(tag)?];
    let name_len = tag[1..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))?;
    let name = &tag[1..1 + name_len];
    if !matches!(name, b"message" | b"presence" | b"iq") {
        return None;
    }
    if has_default_ns(&tag[1 + name_len..]) {
        return None;
    }
    Some(open + 1 + name_len)
}

/// Whether the attributes of a start tag (after its name) declare a default namespace.
fn has_default_ns(attrs: &[u8]) -> bool {
    let mut quote = None;
    let mut prev_space = false;
    for (i, &byte) in attrs.iter().enumerate() {
        match (quote, byte) {
            (None, b'\'' | b'"') => quote = Some(byte),
            (Some(q), b) if b == q => quote = None,
            (None, b' ' | b'\t' | b'\r' | b'\n') => {
                prev_space = true;
                continue;
            }
            (None, b'x') if prev_space && attrs[i..].starts_with(b"xmlns") => {
                let after = attrs[i + 5..]
                    .iter()
                    .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                if after == Some(&b'=') {
                    return true;
                }
            }
            _ => {}
        }
        prev_space = false;
    }
    false
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(bytes: &str) -> Option<usize> {
        element_end(bytes.as_bytes())
    }

    #[test]
    fn ends_are_found_past_quotes_cdata_and_nesting() {
        assert_eq!(ends("<a/>rest"), Some(4));
        assert_eq!(ends("<a x='>'/><b/>"), Some(10));
        assert_eq!(ends("<a x=\"'>\">t</a>"), Some(15));
        assert_eq!(ends("<a><b/><c>x</c></a><d/>"), Some(19));
        assert_eq!(ends("<a><![CDATA[</a>]]></a>"), Some(23));
        assert_eq!(ends("<a><!-- </a> --></a>"), Some(20));
        assert_eq!(ends("  <a>x</a>"), Some(10));
        assert_eq!(ends("<a><b/>"), None);
        assert_eq!(ends("<a x='>"), None);
        assert_eq!(ends(""), None);
        assert_eq!(ends("   "), None);
    }

    #[test]
    fn stanzas_without_a_namespace_get_jabber_client() {
        assert_eq!(needs_client_ns(b"<message to='a'/>"), Some(8));
        assert_eq!(needs_client_ns(b"<iq>x</iq>"), Some(3));
        assert_eq!(needs_client_ns(b" <presence/>"), Some(10));
        assert_eq!(needs_client_ns(b"<message xmlns='jabber:client'/>"), None);
        assert_eq!(needs_client_ns(b"<message xmlns = 'jabber:client'/>"), None);
        assert_eq!(
            needs_client_ns(b"<message xmlns:x='y' to='a'/>"),
            Some(8),
            "a prefix declaration is not a default namespace"
        );
        assert_eq!(
            needs_client_ns(b"<message to=' xmlns='/>"),
            Some(8),
            "inside a value"
        );
        assert_eq!(needs_client_ns(b"<success xmlns='x'/>"), None);
        assert_eq!(needs_client_ns(b"<messages/>"), None);
        assert_eq!(needs_client_ns(b"<r xmlns='urn:xmpp:sm:3'/>"), None);
    }
}
