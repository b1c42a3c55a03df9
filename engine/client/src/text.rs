//! The text content of an element, borrowed from the stanza unless it holds entities or
//! CDATA.
//!
//! What it does not do: mixed content with child elements (their tags are part of the
//! returned text then; callers use it on leaf elements such as `<body/>` or `<jid/>`).

use std::borrow::Cow;

use rookery_proto::element::Element;
use rookery_proto::writer::unescape;

/// The text of a leaf element (`<body>text</body>`, `<x/>` gives ""), unescaped; borrowed
/// unless it contains an entity. `None` if the bytes are not an element or not UTF-8.
pub fn element_text(element: &[u8]) -> Option<Cow<'_, str>> {
    let raw = std::str::from_utf8(element_content(element)?).ok()?;
    if raw.contains("<![CDATA[") {
        // Rare (never from rookery); take the slow, allocating path through the element tree.
        return Element::parse(element).ok().map(|e| Cow::Owned(e.text()));
    }
    unescape(raw).ok()
}

/// The bytes between an element's start tag and its end tag (empty for `<x/>`).
fn element_content(bytes: &[u8]) -> Option<&[u8]> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') if i > 0 && bytes[i - 1] == b'/' => return Some(&[]),
            (None, b'>') => {
                let end = bytes.iter().rposition(|&c| c == b'<')?;
                return bytes.get(i + 1..end);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_text_and_unescapes_entities() {
        assert!(matches!(
            element_text(b"<body>hi</body>"),
            Some(Cow::Borrowed("hi"))
        ));
        assert_eq!(
            element_text(b"<body a='>'>a&amp;b</body>").as_deref(),
            Some("a&b")
        );
        assert_eq!(element_text(b"<body/>").as_deref(), Some(""));
        assert_eq!(
            element_text(b"<b><![CDATA[<x>]]></b>").as_deref(),
            Some("<x>")
        );
        assert_eq!(element_text(b"<body"), None);
    }
}
