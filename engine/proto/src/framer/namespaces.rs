//! The exact namespace check of one complete frame (Namespaces in XML 1.0), run only when the
//! scan's screen (`names.rs`) could not vouch for the frame.
//!
//! What it does: walks the frame's start tags once, keeping the prefixes the frame itself
//! declares in a scope stack, and refuses: a name that is not a `QName` (checked per Unicode
//! character); two attributes with the same qualified or expanded name; a prefix the frame does
//! not declare (`xml` is predefined; `stream` is bound to the streams namespace, as both ends'
//! stream headers declare it); `xmlns:p=''`; binding `xml` to anything but its namespace,
//! declaring `xmlns`, or binding any prefix (or the default) to the `xml` or `xmlns`
//! namespaces; the `xmlns` or `xml` prefix on an element (no element lives in either
//! namespace, and strict parsers such as roxmltree refuse `<xml:x>`), or a prefixed attribute
//! named `xmlns`.
//!
//! What it does not do: syntax. The frame already passed the scan (tags, references,
//! characters, UTF-8), so every start tag parses and no `<` appears outside markup. It
//! allocates (the scope stack, unescaped URIs), which is why the scan keeps it off the common
//! path.
//!
//! Invariants: a prefix declared on an element is in scope for that element (its own name and
//! attributes included) and its descendants only; namespace URIs are compared after attribute
//! value normalisation (XML 1.0 3.3.3), as a namespace-aware parser compares them.

use std::borrow::Cow;

use super::fault::Fault;
use crate::ns;
use crate::writer::unescape;
use crate::xml::{is_strict_qname, split_qname, start_tag, StartTag};

/// The namespace the `xml` prefix is bound to by definition.
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` attributes, which nothing may declare.
pub(crate) const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Above this many attributes on one element, duplicates are found by sorting (O(n log n))
/// instead of comparing pairs.
const PAIRWISE_MAX: usize = 16;

/// A prefix declared by an open element at `depth`.
struct Decl<'a> {
    prefix: &'a str,
    uri: Cow<'a, str>,
    depth: u32,
}

/// Checks every start tag of `frame` (a stanza, or with `header` only the stream header's open
/// tag) for namespace well-formedness. See the module docs.
pub(crate) fn check(frame: &[u8], header: bool) -> Result<(), Fault> {
    let mut scopes: Vec<Decl<'_>> = Vec::new();
    let mut depth = 0u32;
    let mut pos = 0;
    while let Some(found) = frame.get(pos..).and_then(|rest| find(rest, b"<")) {
        let lt = pos + found;
        match frame.get(lt + 1) {
            Some(b'/') => {
                depth = depth.saturating_sub(1);
                close_scope(&mut scopes, depth);
                pos = lt + find(&frame[lt..], b">").ok_or(Fault::BadEndTag)? + 1;
            }
            Some(b'!') => {
                // The scan let only CDATA sections through (comments and DTDs are refused).
                let body = lt + "<![CDATA[".len();
                let end = frame.get(body..).and_then(|rest| find(rest, b"]]>"));
                pos = body + end.ok_or(Fault::BadMarkup)? + "]]>".len();
            }
            _ => {
                let tag = start_tag(frame, lt).map_err(|_| Fault::BadName)?;
                depth += 1;
                check_tag(&tag, depth, &mut scopes)?;
                pos = lt + tag.tag.len();
                if tag.empty {
                    depth -= 1;
                    close_scope(&mut scopes, depth);
                }
                if header {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Index of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Drops the declarations of elements deeper than `depth` (just closed).
fn close_scope(scopes: &mut Vec<Decl<'_>>, depth: u32) {
    while scopes.last().is_some_and(|d| d.depth > depth) {
        scopes.pop();
    }
}

/// One start tag at `depth`: pushes its declarations, then checks its names against them.
fn check_tag<'a>(tag: &StartTag<'a>, depth: u32, scopes: &mut Vec<Decl<'a>>) -> Result<(), Fault> {
    if !is_strict_qname(tag.name) {
        return Err(Fault::BadName);
    }
    for attr in tag.attrs() {
        if !is_strict_qname(attr.name) {
            return Err(Fault::BadName);
        }
        if let Some(decl) = declaration(attr.name, attr.raw, depth)? {
            scopes.push(decl);
        }
    }
    let scopes: &Vec<Decl<'a>> = scopes;
    if let (Some(prefix), _) = split_qname(tag.name) {
        if prefix == "xmlns" || prefix == "xml" {
            return Err(Fault::ReservedPrefix);
        }
        resolve(scopes, prefix).ok_or(Fault::UnboundPrefix)?;
    }
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for attr in tag.attrs() {
        keys.push(match split_qname(attr.name) {
            (None, "xmlns") => (XMLNS_NS, ""),
            (Some("xmlns"), prefix) => (XMLNS_NS, prefix),
            (Some(_), "xmlns") => return Err(Fault::BadNsDecl),
            (None, local) => ("", local),
            (Some(prefix), local) => (resolve(scopes, prefix).ok_or(Fault::UnboundPrefix)?, local),
        });
    }
    if has_duplicate(&mut keys) {
        return Err(Fault::DupAttr);
    }
    Ok(())
}

/// The declaration an attribute makes, if it is one (`xmlns` declares the default namespace,
/// which needs no scope here: unprefixed names never have to resolve). Refuses the illegal
/// ones.
fn declaration<'a>(name: &'a str, raw: &'a str, depth: u32) -> Result<Option<Decl<'a>>, Fault> {
    let prefix = match name.strip_prefix("xmlns") {
        Some("") => None,
        Some(rest) => match rest.strip_prefix(':') {
            Some(prefix) => Some(prefix),
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let uri = normalized(raw)?;
    let reserved = uri == XML_NS || uri == XMLNS_NS;
    match prefix {
        None if reserved => Err(Fault::BadNsDecl),
        None => Ok(None),
        Some("xml") if uri == XML_NS => Ok(None),
        Some("xml" | "xmlns") => Err(Fault::BadNsDecl),
        Some(_) if reserved || uri.is_empty() => Err(Fault::BadNsDecl),
        Some(prefix) => Ok(Some(Decl { prefix, uri, depth })),
    }
}

/// The namespace `prefix` is bound to: the innermost declaration in the frame, else the two
/// prefixes every stream has.
fn resolve<'s>(scopes: &'s [Decl<'_>], prefix: &str) -> Option<&'s str> {
    if prefix == "xml" {
        return Some(XML_NS);
    }
    match scopes.iter().rev().find(|d| d.prefix == prefix) {
        Some(decl) => Some(&decl.uri),
        None => (prefix == "stream").then_some(ns::STREAM),
    }
}

/// An attribute value as a parser reports it: literal whitespace (a CR LF pair counting as
/// one) becomes a space, then references are replaced (XML 1.0 2.11 and 3.3.3).
fn normalized(raw: &str) -> Result<Cow<'_, str>, Fault> {
    let value = if raw.contains(['\t', '\n', '\r']) {
        Cow::Owned(raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    };
    let unescaped = match value {
        Cow::Borrowed(raw) => unescape(raw),
        Cow::Owned(spaced) => unescape(&spaced).map(|v| Cow::Owned(v.into_owned())),
    };
    unescaped.map_err(|_| Fault::BadCharRef)
}

/// Whether two keys are equal (sorts `keys` when there are many).
fn has_duplicate(keys: &mut [(&str, &str)]) -> bool {
    if keys.len() <= PAIRWISE_MAX {
        return keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
    }
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(frame: &str) -> Result<(), Fault> {
        check(frame.as_bytes(), false)
    }

    #[test]
    fn legal_frames() {
        for ok in [
            "<a/>",
            "<a xmlns='x' b='1' c='2'/>",
            "<p:a xmlns:p='u'><p:b p:c='1' c='2'/></p:a>",
            "<a xml:lang='en' xmlns:xml='http://www.w3.org/XML/1998/namespace'/>",
            "<stream:error><x stream:y='1'/></stream:error>",
            "<a xmlns:stream='other'><stream:b/></a>",
            "<a><![CDATA[<p:x>]]><b xmlns:p='u'/><c xmlns:p='v' p:a='1'/></a>",
            "<a xmlns=''/>",
            "<a xmlns:p='u' p:x='1' x='1'/>",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok}");
        }
        let many: String = (0..40).map(|i| format!(" a{i}='1'")).collect();
        assert_eq!(verdict(&format!("<a{many}/>")), Ok(()));
    }

    #[test]
    fn refusals() {
        let dup = Fault::DupAttr;
        let unbound = Fault::UnboundPrefix;
        let decl = Fault::BadNsDecl;
        let cases = [
            ("<a x='1' x='2'/>", dup),
            ("<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>", dup),
            ("<a xmlns:p='u' xmlns:q='&#117;' p:x='1' q:x='2'/>", dup),
            ("<a xmlns:p='u v' xmlns:q='u\tv' p:x='1' q:x='2'/>", dup),
            ("<a xmlns:p='u\r\nv' xmlns:q='u v' p:x='1' q:x='2'/>", dup),
            ("<a xmlns='x' xmlns='x'/>", dup),
            ("<p:a/>", unbound),
            ("<a p:x='1'/>", unbound),
            ("<a><b xmlns:p='u'/><p:c/></a>", unbound),
            ("<a xmlns:p=''/>", decl),
            ("<a xmlns:xml='other'/>", decl),
            ("<a xmlns:xmlns='other'/>", decl),
            ("<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>", decl),
            ("<a xmlns='http://www.w3.org/2000/xmlns/'/>", decl),
            (
                "<a xmlns='http://www.w3.org/XML/1998/&#110;amespace'/>",
                decl,
            ),
            ("<a xml:xmlns='x'/>", decl),
            ("<xmlns:a/>", Fault::ReservedPrefix),
            ("<a><xml:b/></a>", Fault::ReservedPrefix),
            ("<a:b:c/>", Fault::BadName),
            ("<a\u{D7}/>", Fault::BadName),
            ("<a x\u{F0000}='1'/>", Fault::BadName),
        ];
        for (frame, fault) in cases {
            assert_eq!(verdict(frame), Err(fault), "{frame:?}");
        }
        let many: String = (0..40).map(|i| format!(" a{i}='1'")).collect();
        assert_eq!(verdict(&format!("<a{many} a39='2'/>")), Err(dup));
    }

    #[test]
    fn header_checks_only_its_open_tag() {
        let header = "<stream:stream xmlns='jabber:client' xmlns:stream='x' to='a'>";
        assert_eq!(check(header.as_bytes(), true), Ok(()));
        assert_eq!(check(b"<s a='1' a='1'>", true), Err(Fault::DupAttr));
        assert_eq!(check(b"<p:s>", true), Err(Fault::UnboundPrefix));
    }
}
