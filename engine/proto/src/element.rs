//! A small borrowed element tree for the few stanzas the server answers itself (SASL, bind,
//! iq to the server, roster, presence).
//!
//! What it does: parses one complete element (or a stream header's open tag) into names,
//! unescaped attributes, namespaces and child nodes; text and attribute values borrow the input
//! unless they hold references.
//!
//! What it does not do: comments, PIs and DTDs (refused, as RFC 6120 requires), attribute
//! whitespace normalisation, namespace-aware attribute names (attributes are looked up by
//! qualified name as written), or character-level checks the framer already made.
//!
//! Invariants: nesting is limited to [`MAX_DEPTH`] levels so hostile input cannot exhaust the
//! stack; namespace declarations are scoped to the element that declares them (a scope stack
//! during parse); an element's namespace is resolved once, at parse time.

use std::borrow::Cow;

use crate::view::ViewError;
use crate::writer::unescape;
use crate::xml::{is_ws, split_qname, start_tag, StartTag};

/// Deepest nesting accepted (the root is depth 1).
pub const MAX_DEPTH: usize = 32;

/// The namespace bound to the `xml` prefix by definition.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// One element: name, attributes, resolved namespace and child nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Element<'a> {
    name: &'a str,
    attrs: Vec<(&'a str, Cow<'a, str>)>,
    ns: Option<Cow<'a, str>>,
    nodes: Vec<Node<'a>>,
}

/// A child of an element: an element or a run of text (CDATA sections become text).
#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    Element(Element<'a>),
    Text(Cow<'a, str>),
}

fn nwf(detail: &'static str) -> ViewError {
    ViewError::NotWellFormed(detail)
}

impl<'a> Element<'a> {
    /// Parses one complete element (trailing whitespace allowed, nothing else).
    pub fn parse(bytes: &'a [u8]) -> Result<Element<'a>, ViewError> {
        let mut parser = Parser {
            bytes,
            pos: 0,
            scopes: Vec::new(),
        };
        let root = parser.element(1)?;
        if !bytes[parser.pos..].iter().all(|&b| is_ws(b)) {
            return Err(nwf("data after the element"));
        }
        Ok(root)
    }

    /// Parses an open tag that is never closed (the stream header): attributes only, no
    /// children.
    pub fn parse_open_tag(bytes: &'a [u8]) -> Result<Element<'a>, ViewError> {
        let mut parser = Parser {
            bytes,
            pos: 0,
            scopes: Vec::new(),
        };
        let tag = start_tag(bytes, 0).map_err(nwf)?;
        if !bytes[tag.tag.len()..].iter().all(|&b| is_ws(b)) {
            return Err(nwf("data after the open tag"));
        }
        parser.open(&tag)
    }

    /// Qualified name as written.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The name after any prefix.
    pub fn local_name(&self) -> &'a str {
        split_qname(self.name).1
    }

    /// The prefix, if the name has one.
    pub fn prefix(&self) -> Option<&'a str> {
        split_qname(self.name).0
    }

    /// An attribute by qualified name, unescaped.
    pub fn attr(&self, qname: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == qname)
            .map(|(_, v)| v.as_ref())
    }

    /// All attributes in document order (namespace declarations included), unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&'a str, &str)> {
        self.attrs.iter().map(|(k, v)| (*k, v.as_ref()))
    }

    /// Namespace of this element: its own `xmlns` / `xmlns:prefix` declaration if any, else
    /// the one in scope from its ancestors during parse (root: None unless declared).
    pub fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// Child elements, in order.
    pub fn children(&self) -> impl Iterator<Item = &Element<'a>> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// All child nodes, in order.
    pub fn nodes(&self) -> &[Node<'a>] {
        &self.nodes
    }

    /// The first child element with this local name and namespace.
    pub fn child(&self, local_name: &str, ns: &str) -> Option<&Element<'a>> {
        self.children()
            .find(|c| c.local_name() == local_name && c.ns() == Some(ns))
    }

    /// Concatenated direct text (CDATA included), unescaped.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            if let Node::Text(t) = node {
                out.push_str(t);
            }
        }
        out
    }
}

/// Recursive-descent parser state: input, position, and namespace declarations in scope.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// (prefix, namespace) declared by the open elements, innermost last; `None` prefix is
    /// the default namespace, and an empty namespace undeclares it.
    scopes: Vec<(Option<&'a str>, Cow<'a, str>)>,
}

impl<'a> Parser<'a> {
    /// Parses the element starting at `pos`, at nesting level `depth`.
    fn element(&mut self, depth: usize) -> Result<Element<'a>, ViewError> {
        if depth > MAX_DEPTH {
            return Err(nwf("elements nested too deeply"));
        }
        let tag = start_tag(self.bytes, self.pos).map_err(nwf)?;
        let mark = self.scopes.len();
        let mut element = self.open(&tag)?;
        self.pos += tag.tag.len();
        if !tag.empty {
            element.nodes = self.content(depth, tag.name)?;
        }
        self.scopes.truncate(mark);
        Ok(element)
    }

    /// Builds the element for a start tag: attributes, declarations (left in scope for the
    /// caller to pop) and the element's namespace.
    fn open(&mut self, tag: &StartTag<'a>) -> Result<Element<'a>, ViewError> {
        let mut attrs = Vec::new();
        for attr in tag.attrs() {
            let value = unescape(attr.raw)?;
            if attr.name == "xmlns" {
                self.scopes.push((None, value.clone()));
            } else if let Some(prefix) = attr.name.strip_prefix("xmlns:") {
                self.scopes.push((Some(prefix), value.clone()));
            }
            attrs.push((attr.name, value));
        }
        check_unique(&attrs)?;
        let prefix = split_qname(tag.name).0;
        Ok(Element {
            name: tag.name,
            attrs,
            ns: self.resolve(prefix),
            nodes: Vec::new(),
        })
    }

    fn resolve(&self, prefix: Option<&str>) -> Option<Cow<'a, str>> {
        if prefix == Some("xml") {
            return Some(Cow::Borrowed(XML_NS));
        }
        let (_, ns) = self.scopes.iter().rev().find(|(p, _)| *p == prefix)?;
        (!ns.is_empty()).then(|| ns.clone())
    }

    /// Parses child nodes up to and including the end tag matching `name`.
    fn content(&mut self, depth: usize, name: &str) -> Result<Vec<Node<'a>>, ViewError> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.bytes[self.pos..];
            let lt = rest
                .iter()
                .position(|&b| b == b'<')
                .ok_or(nwf("unterminated element"))?;
            if lt > 0 {
                let raw = std::str::from_utf8(&rest[..lt]).map_err(|_| nwf("invalid UTF-8"))?;
                nodes.push(Node::Text(unescape(raw)?));
                self.pos += lt;
            }
            let rest = &self.bytes[self.pos..];
            match rest.get(1) {
                Some(b'/') => {
                    self.end_tag(name)?;
                    return Ok(nodes);
                }
                Some(b'!') => nodes.push(Node::Text(self.cdata()?)),
                Some(b'?') => return Err(nwf("processing instruction")),
                _ => nodes.push(Node::Element(self.element(depth + 1)?)),
            }
        }
    }

    /// Consumes `</name S? >`.
    fn end_tag(&mut self, name: &str) -> Result<(), ViewError> {
        let rest = &self.bytes[self.pos + 2..];
        let gt = rest
            .iter()
            .position(|&b| b == b'>')
            .ok_or(nwf("unterminated end tag"))?;
        let written = rest[..gt].trim_ascii_end();
        if written != name.as_bytes() {
            return Err(nwf("end tag does not match start tag"));
        }
        self.pos += 2 + gt + 1;
        Ok(())
    }

    /// Consumes a CDATA section and returns its content.
    fn cdata(&mut self) -> Result<Cow<'a, str>, ViewError> {
        const OPEN: &[u8] = b"<![CDATA[";
        let rest = &self.bytes[self.pos..];
        if !rest.starts_with(OPEN) {
            return Err(nwf("comment or DTD"));
        }
        let body = &rest[OPEN.len()..];
        let end = body
            .windows(3)
            .position(|w| w == b"]]>")
            .ok_or(nwf("unterminated CDATA"))?;
        let text = std::str::from_utf8(&body[..end]).map_err(|_| nwf("invalid UTF-8"))?;
        self.pos += OPEN.len() + end + 3;
        Ok(Cow::Borrowed(text))
    }
}

/// Rejects repeated attribute names; sorts a copy of the names only when there are many, so
/// a hostile element with thousands of attributes costs O(n log n), not O(n^2).
fn check_unique(attrs: &[(&str, Cow<'_, str>)]) -> Result<(), ViewError> {
    const LINEAR_MAX: usize = 16;
    let dup = if attrs.len() <= LINEAR_MAX {
        attrs
            .iter()
            .enumerate()
            .any(|(i, (k, _))| attrs[..i].iter().any(|(o, _)| o == k))
    } else {
        let mut names: Vec<&str> = attrs.iter().map(|(k, _)| *k).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    };
    if dup {
        return Err(nwf("duplicate attribute"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_request() {
        let iq = "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                  <resource>phone &amp; co</resource></bind></iq>";
        let e = Element::parse(iq.as_bytes()).unwrap();
        assert_eq!(
            (e.name(), e.attr("type"), e.attr("id")),
            ("iq", Some("set"), Some("b1"))
        );
        assert_eq!(e.ns(), None);
        let bind = e.child("bind", crate::ns::BIND).unwrap();
        let res = bind.child("resource", crate::ns::BIND).unwrap();
        assert_eq!(
            res.ns(),
            Some(crate::ns::BIND),
            "default namespace is inherited"
        );
        assert_eq!(res.text(), "phone & co");
        assert!(e.child("bind", "other").is_none());
        assert_eq!(e.children().count(), 1);
    }

    #[test]
    fn prefixes_and_scopes() {
        let s = "<a xmlns='d' xmlns:p='pns'><p:b><c/></p:b><d xmlns=''><e/></d>\
                 <f xmlns:p='other'><p:g/></f><p:h/><xml:i/><q:j/></a>";
        let a = Element::parse(s.as_bytes()).unwrap();
        assert_eq!(a.ns(), Some("d"));
        let kids: Vec<_> = a.children().collect();
        assert_eq!(
            (kids[0].prefix(), kids[0].local_name(), kids[0].ns()),
            (Some("p"), "b", Some("pns"))
        );
        assert_eq!(kids[0].children().next().unwrap().ns(), Some("d"));
        assert_eq!(
            kids[1].ns(),
            None,
            "xmlns='' undeclares the default namespace"
        );
        assert_eq!(kids[1].children().next().unwrap().ns(), None);
        assert_eq!(kids[2].children().next().unwrap().ns(), Some("other"));
        assert_eq!(
            kids[3].ns(),
            Some("pns"),
            "inner redeclaration went out of scope"
        );
        assert_eq!(kids[4].ns(), Some(XML_NS));
        assert_eq!(kids[5].ns(), None, "unbound prefix");
        let attrs: Vec<_> = a.attrs().collect();
        assert_eq!(attrs, [("xmlns", "d"), ("xmlns:p", "pns")]);
    }

    #[test]
    fn text_cdata_and_nodes() {
        let e = Element::parse(b"<body>a &lt;<![CDATA[<b>&amp;]]><x/>c</body>\n").unwrap();
        assert_eq!(e.text(), "a <<b>&amp;c");
        assert_eq!(e.nodes().len(), 4);
        assert!(matches!(&e.nodes()[0], Node::Text(Cow::Owned(t)) if t == "a <"));
        assert!(matches!(
            &e.nodes()[1],
            Node::Text(Cow::Borrowed("<b>&amp;"))
        ));
        assert!(matches!(&e.nodes()[2], Node::Element(x) if x.name() == "x"));
        assert_eq!(Element::parse(b"<e/>").unwrap().nodes(), &[]);
    }

    #[test]
    fn open_tag() {
        let h = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
        let e = Element::parse_open_tag(h).unwrap();
        assert_eq!((e.prefix(), e.local_name()), (Some("stream"), "stream"));
        assert_eq!(e.ns(), Some(crate::ns::STREAM));
        assert_eq!(
            (e.attr("to"), e.attr("version")),
            (Some("example.com"), Some("1.0"))
        );
        assert!(e.nodes().is_empty());
        assert!(Element::parse_open_tag(b"<s a='1'><x/>").is_err());
    }

    #[test]
    fn errors() {
        let bad: [&[u8]; 12] = [
            b"<a><b></a></b>",
            b"<a>",
            b"<a></b>",
            b"<a x='1' x='2'/>",
            b"<a>&nbsp;</a>",
            b"<a><!-- c --></a>",
            b"<a><?pi?></a>",
            b"<a/><b/>",
            b"text",
            b"<a><![CDATA[x</a>",
            b"<a>\xff</a>",
            b"",
        ];
        for b in bad {
            assert!(
                Element::parse(b).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let many: String = (0..40).map(|i| format!(" a{i}='1'")).collect();
        assert!(Element::parse(format!("<a{many}/>").as_bytes()).is_ok());
        assert!(Element::parse(format!("<a{many} a7='2'/>").as_bytes()).is_err());
    }

    #[test]
    fn depth_limit() {
        let nest = |n: usize| format!("{}{}", "<e>".repeat(n), "</e>".repeat(n));
        assert!(Element::parse(nest(MAX_DEPTH).as_bytes()).is_ok());
        let err = Element::parse(nest(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err, nwf("elements nested too deeply"));
        assert!(Element::parse(nest(100_000).as_bytes()).is_err());
    }
}
