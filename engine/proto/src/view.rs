//! A borrowed view of one framed stanza: the routing fields without building a tree.
//!
//! What it does: parses the start tag once (name, and the spans of `to`, `from`, `type`, `id`
//! and the element's namespace declaration), lists first-level children on demand by scanning
//! the content once, and rewrites `from`/`to` into an output buffer ([`StanzaView::stamp`]).
//!
//! What it does not do: full namespace resolution (the namespace of the element or a child is
//! the declaration written on that element itself: `xmlns` for an unprefixed name,
//! `xmlns:p` for `p:name`; inherited namespaces are not tracked), validation of the content
//! (the framer did that), or allocation (apart from unescaping values that hold references).
//!
//! Invariants: `to`, `from`, `type`, `id` and the namespace declaration each appear at most
//! once (a duplicate is an error), so [`StanzaView::stamp`] cannot leave a second, client-written
//! `from` behind. All offsets point at ASCII delimiters of the validated start tag.

use std::borrow::Cow;

use crate::writer::{escape_attr, unescape};
use crate::xml::{find_tag_end, split_qname, start_tag, StartTag};

/// The three stanza kinds of RFC 6120, by local name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
    Other,
}

/// Why a stanza (or element) could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    NotWellFormed(&'static str),
}

impl std::fmt::Display for ViewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewError::NotWellFormed(d) => write!(f, "not-well-formed: {d}"),
        }
    }
}

impl std::error::Error for ViewError {}

/// One attribute the view keeps: its escaped value and its span in the start tag.
#[derive(Clone, Copy, Debug)]
struct Kept<'a> {
    raw: &'a str,
    /// From the whitespace before the name to just after the closing quote.
    span: (usize, usize),
}

/// Spans into one framed stanza; no tree, no allocation.
#[derive(Clone, Debug)]
pub struct StanzaView<'a> {
    bytes: &'a [u8],
    tag: StartTag<'a>,
    xmlns: Option<&'a str>,
    to: Option<Kept<'a>>,
    from: Option<Kept<'a>>,
    stanza_type: Option<Kept<'a>>,
    id: Option<Kept<'a>>,
}

impl<'a> StanzaView<'a> {
    /// Parses the start tag of one framed element (as returned by `Frame::Stanza`).
    pub fn parse(bytes: &'a [u8]) -> Result<StanzaView<'a>, ViewError> {
        let tag = start_tag(bytes, 0).map_err(ViewError::NotWellFormed)?;
        let mut view = StanzaView {
            bytes,
            tag,
            xmlns: None,
            to: None,
            from: None,
            stanza_type: None,
            id: None,
        };
        let ns_attr = ns_attr_name(tag.name);
        for attr in tag.attrs() {
            let kept = Kept {
                raw: attr.raw,
                span: (attr.start, attr.end),
            };
            let slot = match attr.name {
                "to" => &mut view.to,
                "from" => &mut view.from,
                "type" => &mut view.stanza_type,
                "id" => &mut view.id,
                name if name == ns_attr => {
                    if view.xmlns.replace(attr.raw).is_some() {
                        return Err(ViewError::NotWellFormed("duplicate attribute"));
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.replace(kept).is_some() {
                return Err(ViewError::NotWellFormed("duplicate attribute"));
            }
        }
        Ok(view)
    }

    /// The whole stanza.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Qualified name as written, e.g. `message`, `sm:r`.
    pub fn name(&self) -> &'a str {
        self.tag.name
    }

    /// The name after any prefix.
    pub fn local_name(&self) -> &'a str {
        split_qname(self.tag.name).1
    }

    /// Message, presence or iq, by local name.
    pub fn kind(&self) -> StanzaKind {
        match self.local_name() {
            "message" => StanzaKind::Message,
            "presence" => StanzaKind::Presence,
            "iq" => StanzaKind::Iq,
            _ => StanzaKind::Other,
        }
    }

    /// The namespace declared on the element itself, as written (`xmlns`, or `xmlns:p` when
    /// the name is `p:local`).
    pub fn xmlns(&self) -> Option<&'a str> {
        self.xmlns
    }

    /// The `to` attribute, unescaped (borrowed when it holds no references).
    pub fn to(&self) -> Option<Cow<'a, str>> {
        value(self.to)
    }

    /// The `from` attribute, unescaped.
    pub fn from(&self) -> Option<Cow<'a, str>> {
        value(self.from)
    }

    /// The `type` attribute, unescaped.
    pub fn stanza_type(&self) -> Option<Cow<'a, str>> {
        value(self.stanza_type)
    }

    /// The `id` attribute, unescaped.
    pub fn id(&self) -> Option<Cow<'a, str>> {
        value(self.id)
    }

    /// Any attribute by qualified name, unescaped. `None` when absent or when its references
    /// are invalid (impossible for bytes that passed the framer).
    pub fn attr(&self, qname: &str) -> Option<Cow<'a, str>> {
        let attr = self.tag.attrs().find(|a| a.name == qname)?;
        unescape(attr.raw).ok()
    }

    /// Whether the stanza is written `<x .../>`.
    pub fn is_empty_element(&self) -> bool {
        self.tag.empty
    }

    /// First-level children, in order, without descending further (scans the content once).
    pub fn children(&self) -> ChildIter<'a> {
        let pos = if self.tag.empty {
            self.bytes.len()
        } else {
            self.tag.tag.len()
        };
        ChildIter {
            bytes: self.bytes,
            pos,
        }
    }

    /// Whether a first-level child has this local name and declares this namespace.
    pub fn has_child(&self, local_name: &str, xmlns: &str) -> bool {
        self.children()
            .any(|c| c.local_name == local_name && c.xmlns == Some(xmlns))
    }

    /// Writes the stanza to `out` with `from` set to `from` (escaped), replacing any `from`
    /// the client wrote, and, when `to` is Some, the `to` attribute replaced or added too.
    /// Every other byte is copied unchanged. No allocation besides growing `out`.
    pub fn stamp(&self, from: &str, to: Option<&str>, out: &mut Vec<u8>) {
        let tag = self.tag.tag.as_bytes();
        let extra = from.len() + to.map_or(0, str::len) + 16;
        out.reserve(self.bytes.len() + extra);
        let mut removed = [self.from.map(|k| k.span), to.and(self.to.map(|k| k.span))];
        if let [Some(a), Some(b)] = removed {
            if b.0 < a.0 {
                removed.swap(0, 1);
            }
        }
        let mut copied = 0;
        for (start, end) in removed.into_iter().flatten() {
            out.extend_from_slice(&tag[copied..start]);
            copied = end;
        }
        out.extend_from_slice(&tag[copied..self.tag.close_at]);
        out.extend_from_slice(b" from='");
        escape_attr(from, out);
        out.push(b'\'');
        if let Some(to) = to {
            out.extend_from_slice(b" to='");
            escape_attr(to, out);
            out.push(b'\'');
        }
        out.extend_from_slice(&self.bytes[self.tag.close_at..]);
    }
}

fn value(kept: Option<Kept<'_>>) -> Option<Cow<'_, str>> {
    unescape(kept?.raw).ok()
}

/// The attribute declaring the namespace of an element named `name`.
fn ns_attr_name(name: &str) -> NsAttr<'_> {
    NsAttr(split_qname(name).0)
}

/// Matches `xmlns` (no prefix) or `xmlns:p` (prefix `p`) without building a string.
#[derive(Clone, Copy)]
struct NsAttr<'a>(Option<&'a str>);

impl PartialEq<NsAttr<'_>> for &str {
    fn eq(&self, other: &NsAttr<'_>) -> bool {
        match other.0 {
            None => *self == "xmlns",
            Some(p) => self.strip_prefix("xmlns:") == Some(p),
        }
    }
}

/// A first-level child of a stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child<'a> {
    /// Qualified name as written.
    pub name: &'a str,
    /// The name after any prefix.
    pub local_name: &'a str,
    /// The namespace declared on the child itself (`xmlns`, or `xmlns:p` for `p:name`).
    pub xmlns: Option<&'a str>,
    /// The whole child element.
    pub bytes: &'a [u8],
}

/// Iterator over the first-level children of a stanza; stops at the first malformed byte.
#[derive(Clone, Debug)]
pub struct ChildIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ChildIter<'a> {
    type Item = Child<'a>;

    fn next(&mut self) -> Option<Child<'a>> {
        let found = self.scan();
        if found.is_none() {
            self.pos = self.bytes.len();
        }
        found
    }
}

impl<'a> ChildIter<'a> {
    fn scan(&mut self) -> Option<Child<'a>> {
        loop {
            let at = self.pos
                + self
                    .bytes
                    .get(self.pos..)?
                    .iter()
                    .position(|&b| b == b'<')?;
            match self.bytes.get(at + 1)? {
                b'/' => return None,
                b'!' | b'?' => self.pos = skip_markup(self.bytes, at)?,
                _ => {
                    let tag = start_tag(self.bytes, at).ok()?;
                    let body = at + tag.tag.len();
                    let end = if tag.empty {
                        body
                    } else {
                        skip_content(self.bytes, body)?
                    };
                    self.pos = end;
                    let ns_attr = ns_attr_name(tag.name);
                    return Some(Child {
                        name: tag.name,
                        local_name: split_qname(tag.name).1,
                        xmlns: tag.attrs().find(|a| a.name == ns_attr).map(|a| a.raw),
                        bytes: &self.bytes[at..end],
                    });
                }
            }
        }
    }
}

/// Skips a CDATA section, comment or PI starting at `bytes[at] == b'<'`; returns the index
/// after it.
fn skip_markup(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = &bytes[at..];
    let (open, close): (usize, &[u8]) = if rest.starts_with(b"<![CDATA[") {
        (9, b"]]>")
    } else if rest.starts_with(b"<!--") {
        (4, b"-->")
    } else if rest.starts_with(b"<?") {
        (2, b"?>")
    } else {
        return None;
    };
    let found = rest
        .get(open..)?
        .windows(close.len())
        .position(|w| w == close)?;
    Some(at + open + found + close.len())
}

/// Skips the content and end tag of an element whose start tag ends just before `pos`;
/// returns the index after its end tag. Depth counting only (the framer matched the names).
fn skip_content(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 1usize;
    loop {
        let at = pos + bytes.get(pos..)?.iter().position(|&b| b == b'<')?;
        match bytes.get(at + 1)? {
            b'/' => {
                pos = at + bytes[at..].iter().position(|&b| b == b'>')? + 1;
                depth -= 1;
                if depth == 0 {
                    return Some(pos);
                }
            }
            b'!' | b'?' => pos = skip_markup(bytes, at)?,
            _ => {
                let end = find_tag_end(bytes, at)?;
                if bytes[end - 1] != b'/' {
                    depth += 1;
                }
                pos = end + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "<message to='juliet@example.com' type='chat' id='m&amp;1' \
        from='evil@x'><body>a &lt; b</body><sm:r xmlns:sm='urn:xmpp:sm:3'/>\
        <request xmlns='urn:xmpp:receipts'/><x xmlns='y'><body/></x></message>";

    fn stamped(stanza: &str, from: &str, to: Option<&str>) -> String {
        let view = StanzaView::parse(stanza.as_bytes()).unwrap();
        let mut out = b"prefix:".to_vec();
        view.stamp(from, to, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn routing_fields() {
        let v = StanzaView::parse(MSG.as_bytes()).unwrap();
        assert_eq!(
            (v.name(), v.local_name(), v.kind()),
            ("message", "message", StanzaKind::Message)
        );
        assert_eq!(v.to().unwrap(), "juliet@example.com");
        assert!(matches!(v.to(), Some(Cow::Borrowed(_))));
        assert_eq!(v.from().unwrap(), "evil@x");
        assert_eq!(v.stanza_type().unwrap(), "chat");
        assert_eq!(v.id().unwrap(), "m&1");
        assert_eq!(v.attr("type").unwrap(), "chat");
        assert_eq!(v.attr("nope"), None);
        assert_eq!(v.xmlns(), None);
        assert!(!v.is_empty_element());
        assert_eq!(v.bytes(), MSG.as_bytes());
    }

    #[test]
    fn kinds_and_prefixes() {
        let kind = |s: &str| StanzaView::parse(s.as_bytes()).unwrap().kind();
        assert_eq!(kind("<presence/>"), StanzaKind::Presence);
        assert_eq!(kind("<iq type='get'></iq>"), StanzaKind::Iq);
        assert_eq!(kind("<r xmlns='urn:xmpp:sm:3'/>"), StanzaKind::Other);
        let v = StanzaView::parse(b"<sm:a xmlns='d' xmlns:sm='urn:xmpp:sm:3' h='3'/>").unwrap();
        assert_eq!((v.name(), v.local_name()), ("sm:a", "a"));
        assert_eq!(v.xmlns(), Some("urn:xmpp:sm:3"));
        assert!(v.is_empty_element());
        assert_eq!(v.children().count(), 0);
        let v = StanzaView::parse(b"<r xmlns='urn:xmpp:sm:3'/>").unwrap();
        assert_eq!(v.xmlns(), Some("urn:xmpp:sm:3"));
    }

    #[test]
    fn children_first_level_only() {
        let v = StanzaView::parse(MSG.as_bytes()).unwrap();
        let kids: Vec<_> = v
            .children()
            .map(|c| (c.name, c.local_name, c.xmlns))
            .collect();
        assert_eq!(
            kids,
            [
                ("body", "body", None),
                ("sm:r", "r", Some("urn:xmpp:sm:3")),
                ("request", "request", Some("urn:xmpp:receipts")),
                ("x", "x", Some("y")),
            ]
        );
        assert_eq!(v.children().next().unwrap().bytes, b"<body>a &lt; b</body>");
        assert_eq!(
            v.children().nth(3).unwrap().bytes,
            b"<x xmlns='y'><body/></x>"
        );
        assert!(v.has_child("request", "urn:xmpp:receipts"));
        assert!(v.has_child("r", "urn:xmpp:sm:3"));
        assert!(!v.has_child("body", "y"));
        assert!(!v.has_child("request", "other"));
    }

    #[test]
    fn children_skip_cdata_and_tricky_values() {
        let s = "<iq><![CDATA[<fake/>]]><a v='/>'>t<b><![CDATA[</a>]]></b></a>text<c/></iq>";
        let v = StanzaView::parse(s.as_bytes()).unwrap();
        let names: Vec<_> = v.children().map(|c| c.name).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(
            v.children().next().unwrap().bytes,
            b"<a v='/>'>t<b><![CDATA[</a>]]></b></a>"
        );
    }

    #[test]
    fn parse_errors() {
        for bad in [
            &b""[..],
            b"text",
            b"<a",
            b"<a x='1' x2>",
            b"<1a/>",
            b"<a x='\xff'/>",
        ] {
            assert!(StanzaView::parse(bad).is_err(), "{bad:?}");
        }
        for dup in [
            "<a from='x' from='y'/>",
            "<a to='x' to='y'/>",
            "<a xmlns='x' xmlns='y'/>",
        ] {
            let err = StanzaView::parse(dup.as_bytes()).unwrap_err();
            assert_eq!(err, ViewError::NotWellFormed("duplicate attribute"));
        }
    }

    #[test]
    fn stamp_replaces_or_adds() {
        // Existing from (and to), both replaced; the stanza body is untouched.
        let out = stamped(
            "<message from='evil' to='a'><b/></message>",
            "r@x/1",
            Some("c"),
        );
        assert_eq!(out, "prefix:<message from='r@x/1' to='c'><b/></message>");
        // No from: added. `to` left alone when None.
        let out = stamped("<presence to='a&amp;b'/>", "me@x", None);
        assert_eq!(out, "prefix:<presence to='a&amp;b' from='me@x'/>");
        // to before from in the original; values needing escapes.
        let out = stamped("<iq to='t' id='1' from='f'>x</iq>", "a'b", Some("<&>"));
        assert_eq!(
            out,
            "prefix:<iq id='1' from='a&apos;b' to='&lt;&amp;&gt;'>x</iq>"
        );
        // Whitespace before `/>` and `>` is kept.
        let out = stamped("<a from=\"x\" />", "y", None);
        assert_eq!(out, "prefix:<a  from='y'/>");
        let out = stamped("<a\nx='1'\n>z</a>", "y", None);
        assert_eq!(out, "prefix:<a\nx='1'\n from='y'>z</a>");
        // The stamped stanza parses back with the new values.
        let again = stamped("<message from='evil' to='a'><b/></message>", "r@x/1", None);
        let v = StanzaView::parse(&again.as_bytes()[7..]).unwrap();
        assert_eq!(
            (v.from().unwrap(), v.to().unwrap()),
            ("r@x/1".into(), "a".into())
        );
    }
}
