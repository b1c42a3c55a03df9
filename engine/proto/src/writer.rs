//! Escaping helpers for building stanzas, and the matching unescape.
//!
//! What it does: escapes text (`& < >`) and attribute values (`& < > " '`) into a byte buffer,
//! and resolves the five predefined entities plus decimal/hex character references.
//!
//! What it does not do: entity declarations (XMPP forbids them), attribute-value whitespace
//! normalisation, or any check that the escaped text holds only legal XML characters.
//!
//! Invariants: `unescape` borrows its input when it holds no `&`, so the common case never
//! allocates; a reference naming an illegal code point is an error, never replaced silently.

use std::borrow::Cow;

use crate::view::ViewError;
use crate::xml;

/// Appends `text` to `out`, escaping `&`, `<` and `>` for element content.
pub fn escape_text(text: &str, out: &mut Vec<u8>) {
    escape_with(text, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        _ => None,
    });
}

/// Appends `value` to `out`, escaping `& < > " '` so it is safe in either quote style.
pub fn escape_attr(value: &str, out: &mut Vec<u8>) {
    escape_with(value, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&apos;"),
        _ => None,
    });
}

/// Copies runs of plain bytes in one go; only the special bytes are replaced.
fn escape_with(s: &str, out: &mut Vec<u8>, map: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = map(b) {
            out.extend_from_slice(&bytes[run..i]);
            out.extend_from_slice(rep);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Resolves the predefined entities and character references in `raw`.
///
/// Borrowed when `raw` contains no `&`. Errors: an undeclared entity, a bare `&`, or a
/// character reference to a code point that is not a legal XML `Char`.
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, ViewError> {
    let Some(first) = raw.find('&') else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut rest = &raw[first..];
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or(ViewError::NotWellFormed("unterminated reference"))?;
        out.push(resolve(&after[..semi])?);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The character a reference body (between `&` and `;`) stands for.
fn resolve(body: &str) -> Result<char, ViewError> {
    let bad_ref = ViewError::NotWellFormed("invalid character reference");
    let Some(num) = body.strip_prefix('#') else {
        return xml::predefined_entity(body.as_bytes())
            .ok_or(ViewError::NotWellFormed("undeclared entity"));
    };
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    // from_str_radix accepts a leading '+', which XML does not.
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(bad_ref);
    }
    let cp = u32::from_str_radix(digits, radix).map_err(|_| bad_ref)?;
    if !xml::is_xml_char(cp) {
        return Err(bad_ref);
    }
    char::from_u32(cp).ok_or(bad_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = Vec::new();
        escape_text(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn attr(s: &str) -> String {
        let mut out = Vec::new();
        escape_attr(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(text("a<b>&\"'"), "a&lt;b&gt;&amp;\"'");
        assert_eq!(attr("a<b>&\"'é"), "a&lt;b&gt;&amp;&quot;&apos;é");
        assert_eq!(text(""), "");
    }

    #[test]
    fn unescapes() {
        assert!(matches!(unescape("plain").unwrap(), Cow::Borrowed("plain")));
        assert_eq!(unescape("&lt;&gt;&amp;&quot;&apos;").unwrap(), "<>&\"'");
        assert_eq!(unescape("x&#65;&#x42;&#x1F600;y").unwrap(), "xAB😀y");
        assert_eq!(unescape(&attr("r<&>'\"t")).unwrap(), "r<&>'\"t");
    }

    #[test]
    fn unescape_errors() {
        for bad in [
            "&nbsp;", "&", "a & b", "&#;", "&#x;", "&#0;", "&#xD800;", "&#xFFFE;",
        ] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
        assert!(unescape("&#+5;").is_err());
        assert!(unescape("&#X41;").is_err());
        assert!(unescape("&#99999999999;").is_err());
    }
}
