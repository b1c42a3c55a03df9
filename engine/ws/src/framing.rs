//! RFC 7395's framing elements and the RFC 6120 stream they stand for.
//!
//! What it does: turns a client's `<open/>` into the stream header the XML framer expects
//! ([`open_to_header`]) and `<close/>` into `</stream:stream>`; and, for a client, the
//! server's `<open/>` into a header its parser expects, and its own header into `<open/>`
//! ([`header_to_open`]). Attribute values are copied as written (still escaped, with their
//! quote character), never unescaped.
//!
//! Namespaces: an `<open/>` whose `xmlns` is not the framing namespace becomes a header whose
//! stream namespace is that value, so the stream layer refuses it with `invalid-namespace`
//! as it would on TCP; nothing is decided here.
//!
//! What it does not do: check `to` or `version` (the stream layer does, on the header).

/// The framing namespace (RFC 7395 3.3.1).
pub const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";
const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

/// What a whole WebSocket message is, by its first element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Open,
    Close,
    Other,
}

/// One attribute of a start tag as written: name, raw value, quote character.
pub type Attr<'a> = (&'a [u8], &'a [u8], u8);

/// Parses the start tag at the start of `tag` (after any whitespace): its name and
/// attributes, or `None` if it is not a start tag.
pub fn start_tag(tag: &[u8]) -> Option<(&[u8], Vec<Attr<'_>>)> {
    let tag = trim_start(tag).strip_prefix(b"<")?;
    let name_len = tag
        .iter()
        .position(|b| is_space(*b) || *b == b'/' || *b == b'>')?;
    let (name, mut rest) = tag.split_at(name_len);
    if name.is_empty() {
        return None;
    }
    let mut attrs = Vec::new();
    loop {
        rest = trim_start(rest);
        match rest.first()? {
            b'/' | b'>' => return Some((name, attrs)),
            _ => {}
        }
        let eq = rest.iter().position(|b| *b == b'=')?;
        let attr_name = trim_end(&rest[..eq]);
        let value = trim_start(&rest[eq + 1..]);
        let quote = *value.first()?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let len = value[1..].iter().position(|b| *b == quote)?;
        attrs.push((attr_name, &value[1..1 + len], quote));
        rest = &value[len + 2..];
    }
}

/// The kind of a message: `<open>` or `<close>` in any namespace, or anything else.
pub fn kind(message: &[u8]) -> Kind {
    match start_tag(message).map(|(name, _)| name) {
        Some(b"open") => Kind::Open,
        Some(b"close") => Kind::Close,
        _ => Kind::Other,
    }
}

/// Appends the RFC 6120 stream header an `<open/>` stands for.
pub fn open_to_header(open: &[u8], out: &mut Vec<u8>) {
    let attrs = start_tag(open).map(|(_, attrs)| attrs).unwrap_or_default();
    let ns = attrs
        .iter()
        .find(|(name, _, _)| *name == b"xmlns")
        .map_or(&b""[..], |(_, value, _)| value);
    out.extend_from_slice(b"<stream:stream xmlns='jabber:client' xmlns:stream='");
    if ns == FRAMING_NS.as_bytes() {
        out.extend_from_slice(STREAMS_NS.as_bytes());
    } else {
        // Refused upstream as invalid-namespace; keep it printable as an attribute.
        out.extend(ns.iter().filter(|b| **b != b'\'' && **b != b'<'));
    }
    out.push(b'\'');
    copy_attributes_but_namespaces(&attrs, out);
    out.push(b'>');
}

/// Appends the `<open/>` a stream header stands for (a client's own header), keeping its
/// attributes but the namespace declarations.
pub fn header_to_open(header: &[u8], out: &mut Vec<u8>) {
    let header = skip_declaration(header);
    let attrs = start_tag(header)
        .map(|(_, attrs)| attrs)
        .unwrap_or_default();
    out.extend_from_slice(b"<open xmlns='");
    out.extend_from_slice(FRAMING_NS.as_bytes());
    out.push(b'\'');
    copy_attributes_but_namespaces(&attrs, out);
    out.extend_from_slice(b"/>");
}

/// Appends ` name='value'` for every attribute that is not a namespace declaration (the
/// two framings declare their own namespaces), keeping each value's quote character.
fn copy_attributes_but_namespaces(attrs: &[Attr<'_>], out: &mut Vec<u8>) {
    for &(name, value, quote) in attrs {
        if name == b"xmlns" || name.starts_with(b"xmlns:") {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(name);
        out.push(b'=');
        out.push(quote);
        out.extend_from_slice(value);
        out.push(quote);
    }
}

/// `bytes` after an XML declaration (`<?xml ...?>`) and the whitespace around it, if any.
pub fn skip_declaration(bytes: &[u8]) -> &[u8] {
    let trimmed = trim_start(bytes);
    if !trimmed.starts_with(b"<?") {
        return trimmed;
    }
    match trimmed.windows(2).position(|w| w == b"?>") {
        Some(end) => trim_start(&trimmed[end + 2..]),
        None => trimmed,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !is_space(*b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(open: &str) -> String {
        let mut out = Vec::new();
        open_to_header(open.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn open_becomes_the_stream_header() {
        assert_eq!(
            header("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version=\"1.0\" xml:lang='en'/>"),
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
             to='example.com' version=\"1.0\" xml:lang='en'>"
        );
        assert_eq!(
            header("<open xmlns='urn:other' to='a'/>"),
            "<stream:stream xmlns='jabber:client' xmlns:stream='urn:other' to='a'>"
        );
        assert_eq!(
            header("<open/>"),
            "<stream:stream xmlns='jabber:client' xmlns:stream=''>"
        );
    }

    #[test]
    fn kinds_are_told_by_the_first_element() {
        assert_eq!(kind(b" <open xmlns='x'/>"), Kind::Open);
        assert_eq!(kind(b"<close xmlns='x' />"), Kind::Close);
        assert_eq!(kind(b"<close/>"), Kind::Close);
        assert_eq!(kind(b"<closed/>"), Kind::Other);
        assert_eq!(kind(b"<message/>"), Kind::Other);
        assert_eq!(kind(b"garbage"), Kind::Other);
    }

    #[test]
    fn a_client_header_becomes_open() {
        let mut out = Vec::new();
        header_to_open(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
            &mut out,
        );
        assert_eq!(
            out,
            b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>"
        );
    }

    #[test]
    fn broken_tags_parse_to_nothing() {
        assert!(start_tag(b"<a x=1/>").is_none());
        assert!(start_tag(b"<a x='1/>").is_none());
        assert!(start_tag(b"a").is_none());
        assert!(start_tag(b"<>").is_none());
    }
}
