//! Shared byte-level XML scanning used by the framer, the stanza view and the element parser.
//!
//! What it does: character classes (whitespace, name characters, legal XML `Char`s), the five
//! predefined entities, and a start-tag scanner over complete bytes that validates attribute
//! syntax and yields attributes as borrowed spans.
//!
//! What it does not do: namespaces, unescaping (see [`crate::writer::unescape`]), streaming
//! input (the framer has its own resumable state machine built on the same character classes).
//!
//! Invariants: every slice boundary produced here falls on an ASCII delimiter byte, so slicing a
//! validated `&str` at those offsets can never split a UTF-8 sequence.

/// XML whitespace (`S` production).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// First byte of a name. Bytes >= 0x80 are accepted here (UTF-8 is validated separately).
#[inline]
pub(crate) fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Any later byte of a (qualified) name.
#[inline]
pub(crate) fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
}

/// Control bytes that XML 1.0 forbids outright (everything below 0x20 but tab, LF and CR).
#[inline]
pub(crate) fn is_forbidden_ctrl(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

/// Whether `cp` is a legal XML 1.0 `Char` (what a character reference may name).
pub(crate) fn is_xml_char(cp: u32) -> bool {
    matches!(cp, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// The replacement of one of the five predefined entities, by name (without `&` and `;`).
pub(crate) fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"amp" => Some('&'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
    }
}

/// Whether `name` is a well-formed qualified name: `local` or `prefix:local`, both non-empty.
pub(crate) fn is_qname(name: &str) -> bool {
    let b = name.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    if !is_name_start(first) || !rest.iter().all(|&c| is_name_char(c)) {
        return false;
    }
    match name.split_once(':') {
        None => true,
        Some((_, local)) => {
            !local.contains(':') && local.as_bytes().first().is_some_and(|&c| is_name_start(c))
        }
    }
}

/// XML 1.0 `NameStartChar` without `:`, i.e. the first character of an `NCName`.
pub(crate) fn is_ncname_start_char(c: char) -> bool {
    match c {
        'A'..='Z' | 'a'..='z' | '_' => true,
        '\0'..='\u{BF}' => false,
        _ => matches!(u32::from(c),
            0xC0..=0xD6
                | 0xD8..=0xF6
                | 0xF8..=0x2FF
                | 0x370..=0x37D
                | 0x37F..=0x1FFF
                | 0x200C..=0x200D
                | 0x2070..=0x218F
                | 0x2C00..=0x2FEF
                | 0x3001..=0xD7FF
                | 0xF900..=0xFDCF
                | 0xFDF0..=0xFFFD
                | 0x10000..=0xEFFFF),
    }
}

/// XML 1.0 `NameChar` without `:`, i.e. a later character of an `NCName`.
pub(crate) fn is_ncname_char(c: char) -> bool {
    is_ncname_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Whether `name` is an `NCName` of Namespaces in XML 1.0 (a `Name` without `:`).
pub(crate) fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_ncname_start_char) && chars.all(is_ncname_char)
}

/// Whether `name` is a `QName` of Namespaces in XML 1.0, checked per character (Unicode
/// included): `NCName` or `NCName:NCName`.
pub(crate) fn is_strict_qname(name: &str) -> bool {
    if name.is_ascii() {
        let ncname = |part: &[u8]| {
            part.first()
                .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
                && part
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        return match name.split_once(':') {
            None => ncname(name.as_bytes()),
            Some((prefix, local)) => ncname(prefix.as_bytes()) && ncname(local.as_bytes()),
        };
    }
    match name.split_once(':') {
        None => is_ncname(name),
        Some((prefix, local)) => is_ncname(prefix) && is_ncname(local),
    }
}

/// Splits a qualified name into (prefix, local name).
pub(crate) fn split_qname(name: &str) -> (Option<&str>, &str) {
    match name.split_once(':') {
        Some((prefix, local)) => (Some(prefix), local),
        None => (None, name),
    }
}

/// Index of the `>` closing the tag that starts at `at` (quoted values may contain `>`).
pub(crate) fn find_tag_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'>' => return Some(i),
            b'"' | b'\'' => i += 1 + bytes.get(i + 1..)?.iter().position(|&c| c == b)?,
            _ => {}
        }
        i += 1;
    }
    None
}

/// One attribute of a start tag, as written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attr<'a> {
    pub name: &'a str,
    /// The value between the quotes, still escaped.
    pub raw: &'a str,
    /// Offset (in the tag) of the whitespace preceding the name.
    pub start: usize,
    /// Offset (in the tag) just after the closing quote.
    pub end: usize,
}

/// A validated start tag: `tag` runs from `<` to `>` inclusive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StartTag<'a> {
    pub tag: &'a str,
    pub name: &'a str,
    /// Offset of the `/` of `/>` or of the final `>`.
    pub close_at: usize,
    pub empty: bool,
}

impl<'a> StartTag<'a> {
    /// Attributes in document order (the tag was validated, so every item parses).
    pub fn attrs(&self) -> AttrScan<'a> {
        AttrScan {
            tag: self.tag,
            pos: 1 + self.name.len(),
        }
    }
}

/// Parses and validates the start tag beginning at `bytes[at] == b'<'`.
pub(crate) fn start_tag(bytes: &[u8], at: usize) -> Result<StartTag<'_>, &'static str> {
    start_tag_with(bytes, at, |_| Ok(()))
}

/// Like [`start_tag`], handing each attribute to `on_attr` during the single validating pass
/// (so callers that need attributes do not scan the tag twice).
pub(crate) fn start_tag_with<'a>(
    bytes: &'a [u8],
    at: usize,
    mut on_attr: impl FnMut(Attr<'a>) -> Result<(), &'static str>,
) -> Result<StartTag<'a>, &'static str> {
    let end = find_tag_end(bytes, at).ok_or("unterminated start tag")?;
    let tag = std::str::from_utf8(&bytes[at..=end]).map_err(|_| "invalid UTF-8")?;
    let tb = tag.as_bytes();
    if tb.first() != Some(&b'<') {
        return Err("expected a start tag");
    }
    let name_len = tb[1..].iter().take_while(|&&c| is_name_char(c)).count();
    let name = &tag[1..1 + name_len];
    if !is_qname(name) {
        return Err("invalid element name");
    }
    let mut scan = AttrScan {
        tag,
        pos: 1 + name_len,
    };
    while let Some(attr) = scan.next_attr()? {
        on_attr(attr)?;
    }
    let close_at = scan.pos;
    let empty = tb[close_at] == b'/';
    if empty && close_at + 2 != tb.len() {
        return Err("malformed empty-element tag");
    }
    Ok(StartTag {
        tag,
        name,
        close_at,
        empty,
    })
}

/// Resumable attribute scanner over one complete start tag.
#[derive(Clone, Debug)]
pub(crate) struct AttrScan<'a> {
    tag: &'a str,
    pos: usize,
}

impl<'a> AttrScan<'a> {
    /// Next attribute; `Ok(None)` leaves `pos` on the closing `/` or `>`.
    pub fn next_attr(&mut self) -> Result<Option<Attr<'a>>, &'static str> {
        let b = self.tag.as_bytes();
        let start = self.pos;
        let mut i = skip_ws(b, start);
        match b.get(i) {
            None => return Err("unterminated start tag"),
            Some(b'>') => {
                self.pos = i;
                return Ok(None);
            }
            Some(b'/') if b.get(i + 1) == Some(&b'>') => {
                self.pos = i;
                return Ok(None);
            }
            Some(&c) if i == start || !is_name_start(c) => return Err("malformed attribute"),
            Some(_) => {}
        }
        let name_start = i;
        while i < b.len() && is_name_char(b[i]) {
            i += 1;
        }
        let name = &self.tag[name_start..i];
        if !is_qname(name) {
            return Err("invalid attribute name");
        }
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            return Err("attribute without value");
        }
        i = skip_ws(b, i + 1);
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err("unquoted attribute value"),
        };
        let len = b[i + 1..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated value")?;
        let raw = &self.tag[i + 1..i + 1 + len];
        if raw.bytes().any(|c| c == b'<' || is_forbidden_ctrl(c)) {
            return Err("forbidden character in attribute value");
        }
        self.pos = i + len + 2;
        Ok(Some(Attr {
            name,
            raw,
            start,
            end: self.pos,
        }))
    }
}

impl<'a> Iterator for AttrScan<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        self.next_attr().ok().flatten()
    }
}

/// First index at or after `i` that is not whitespace.
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_classes() {
        assert!(is_ws(b' ') && is_ws(b'\n') && !is_ws(b'x'));
        assert!(is_name_start(b'a') && !is_name_start(b'1') && !is_name_start(b':'));
        assert!(is_name_char(b'1') && is_name_char(b':') && !is_name_char(b'>'));
        assert!(is_forbidden_ctrl(0) && is_forbidden_ctrl(0x1b) && !is_forbidden_ctrl(b'\t'));
        assert!(is_xml_char(0x41) && !is_xml_char(0) && !is_xml_char(0xD800));
        assert!(!is_xml_char(0xFFFE) && !is_xml_char(0x110000) && is_xml_char(0x10FFFF));
    }

    #[test]
    fn qnames() {
        assert!(is_qname("a") && is_qname("sm:r") && is_qname("x-y.z"));
        assert!(!is_qname("") && !is_qname("a:") && !is_qname("a:b:c") && !is_qname("1a"));
        assert_eq!(split_qname("sm:r"), (Some("sm"), "r"));
    }

    #[test]
    fn strict_names() {
        for good in [
            "a",
            "_x",
            "x-1.y",
            "p:l",
            "\u{e9}t\u{e9}",
            "a\u{B7}\u{300}",
            "\u{10000}",
        ] {
            assert!(is_strict_qname(good), "{good}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            ":a",
            "a:",
            "a:b:c",
            "a:1",
            "\u{D7}",
            "a\u{D7}",
            "\u{B7}a",
            "a\u{F0000}",
            "\u{300}",
            "a b",
        ] {
            assert!(!is_strict_qname(bad), "{bad:?}");
        }
        assert!(is_ncname("xmlns") && !is_ncname("a:b"));
    }

    #[test]
    fn start_tags() {
        let t = start_tag(b"<a x='1>' y=\"/\"/>rest", 0).unwrap();
        assert_eq!(t.name, "a");
        assert!(t.empty);
        let attrs: Vec<_> = t.attrs().map(|a| (a.name, a.raw)).collect();
        assert_eq!(attrs, [("x", "1>"), ("y", "/")]);
        assert_eq!(&t.tag[t.close_at..], "/>");
        for bad in [
            "<a x='1'y='2'>",
            "<a x>",
            "<a x=1>",
            "<a x='<'>",
            "<a",
            "<1a>",
            "<a / >",
        ] {
            assert!(start_tag(bad.as_bytes(), 0).is_err(), "{bad}");
        }
    }
}
