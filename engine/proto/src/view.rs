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
use crate::xml::{find_tag_end, is_name_char, split_qname, start_tag_with, StartTag};

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
        let (mut xmlns, mut to, mut from, mut stanza_type, mut id) = (None, None, None, None, None);
        let mut ns_attr = None;
        let tag = start_tag_with(bytes, 0, |attr| {
            let ns_attr = *ns_attr.get_or_insert_with(|| ns_attr_name(tag_name(bytes)));
            let slot = match attr.name {
                "to" => &mut to,
                "from" => &mut from,
                "type" => &mut stanza_type,
                "id" => &mut id,
                name if name == ns_attr => &mut xmlns,
                _ => return Ok(()),
            };
            match slot.replace(Kept {
                raw: attr.raw,
                span: (attr.start, attr.end),
            }) {
                Some(_) => Err("duplicate attribute"),
                None => Ok(()),
            }
        })
        .map_err(ViewError::NotWellFormed)?;
        let xmlns = xmlns.map(|k: Kept<'a>| k.raw);
        Ok(StanzaView {
            bytes,
            tag,
            xmlns,
            to,
            from,
            stanza_type,
            id,
        })
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

/// The name of the start tag at the front of `tag_bytes`, before validation. It is only used
/// to recognise the namespace attribute; non-UTF-8 bytes yield "" and the tag fails validation.
fn tag_name(tag_bytes: &[u8]) -> &str {
    let rest = tag_bytes.get(1..).unwrap_or_default();
    let len = rest.iter().take_while(|&&c| is_name_char(c)).count();
    std::str::from_utf8(&rest[..len]).unwrap_or_default()
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
                    let (child, end) = child_at(self.bytes, at)?;
                    self.pos = end;
                    return Some(child);
                }
            }
        }
    }
}

/// Parses the child element starting at `bytes[at] == b'<'`; returns it and the index after it.
fn child_at(bytes: &[u8], at: usize) -> Option<(Child<'_>, usize)> {
    let ns_attr = ns_attr_name(tag_name(&bytes[at..]));
    let mut xmlns = None;
    let tag = start_tag_with(bytes, at, |attr| {
        if attr.name == ns_attr && xmlns.replace(attr.raw).is_some() {
            return Err("duplicate attribute");
        }
        Ok(())
    })
    .ok()?;
    let body = at + tag.tag.len();
    let end = if tag.empty {
        body
    } else {
        skip_content(bytes, body)?
    };
    let child = Child {
        name: tag.name,
        local_name: split_qname(tag.name).1,
        xmlns,
        bytes: &bytes[at..end],
    };
    Some((child, end))
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
mod tests;
