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
//! characters, UTF-8), so its start tags are read without validation and no `<` appears
//! outside markup. It
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
use crate::xml::{is_strict_qname, is_ws, skip_ws, split_qname};

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
    // Valid UTF-8: the framer checked a frame holding any non-ASCII byte.
    let text = std::str::from_utf8(frame).map_err(|_| Fault::BadUtf8)?;
    let bytes = text.as_bytes();
    let mut scopes: Vec<Decl<'_>> = Vec::new();
    let mut attrs: Vec<(&str, &str)> = Vec::new();
    let mut keys: Vec<(Ns, &str)> = Vec::new();
    let mut depth = 0u32;
    let mut pos = 0;
    while let Some(found) = position(bytes, pos, b'<') {
        let lt = pos + found;
        match bytes.get(lt + 1) {
            Some(b'/') => {
                depth = depth.saturating_sub(1);
                close_scope(&mut scopes, depth);
                pos = lt + position(bytes, lt, b'>').ok_or(Fault::BadEndTag)? + 1;
            }
            Some(b'!') => {
                // The scan let only CDATA sections through (comments and DTDs are refused).
                let body = lt + "<![CDATA[".len();
                let end = bytes.get(body..).and_then(|rest| find(rest, b"]]>"));
                pos = body + end.ok_or(Fault::BadMarkup)? + "]]>".len();
            }
            _ => {
                let (name, empty, end) = read_tag(text, lt, &mut attrs).ok_or(Fault::BadTag)?;
                depth += 1;
                check_tag(name, &attrs, depth, &mut scopes, &mut keys)?;
                pos = end;
                if empty {
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

/// Index (from `from`) of the first `byte` in `bytes[from..]`.
fn position(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes.get(from..)?.iter().position(|&b| b == byte)
}

/// Index of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads the start tag at `text[lt] == '<'`, which the scan validated: its name, its
/// attributes (name, raw value) into `attrs`, whether it is empty, and the index after it.
fn read_tag<'a>(
    text: &'a str,
    lt: usize,
    attrs: &mut Vec<(&'a str, &'a str)>,
) -> Option<(&'a str, bool, usize)> {
    let b = text.as_bytes();
    let ends_name = |c: u8| is_ws(c) || matches!(c, b'/' | b'>' | b'=');
    let mut i = lt + 1 + b.get(lt + 1..)?.iter().position(|&c| ends_name(c))?;
    let name = text.get(lt + 1..i)?;
    attrs.clear();
    loop {
        i = skip_ws(b, i);
        match *b.get(i)? {
            b'>' => return Some((name, false, i + 1)),
            b'/' => return Some((name, true, i + 2)),
            _ => {}
        }
        let start = i;
        i += b.get(i..)?.iter().position(|&c| ends_name(c))?;
        let attr = text.get(start..i)?;
        i = skip_ws(b, i);
        i = skip_ws(b, i + 1); // past '='
        let quote = *b.get(i)?;
        let value_end = i + 1 + position(b, i + 1, quote)?;
        attrs.push((attr, text.get(i + 1..value_end)?));
        i = value_end + 1;
    }
}

/// Drops the declarations of elements deeper than `depth` (just closed).
fn close_scope(scopes: &mut Vec<Decl<'_>>, depth: u32) {
    while scopes.last().is_some_and(|d| d.depth > depth) {
        scopes.pop();
    }
}

/// One start tag at `depth`: pushes its declarations, then checks its names against them.
/// `keys` is scratch space, reused across tags.
fn check_tag<'a>(
    name: &'a str,
    attrs: &[(&'a str, &'a str)],
    depth: u32,
    scopes: &mut Vec<Decl<'a>>,
    keys: &mut Vec<(Ns, &'a str)>,
) -> Result<(), Fault> {
    if !is_strict_qname(name) {
        return Err(Fault::BadName);
    }
    for &(attr, raw) in attrs {
        if !is_strict_qname(attr) {
            return Err(Fault::BadName);
        }
        if let Some(decl) = declaration(attr, raw, depth)? {
            scopes.push(decl);
        }
    }
    if let (Some(prefix), _) = split_qname(name) {
        if prefix == "xmlns" || prefix == "xml" {
            return Err(Fault::ReservedPrefix);
        }
        resolve(scopes, prefix).ok_or(Fault::UnboundPrefix)?;
    }
    keys.clear();
    for &(attr, _) in attrs {
        keys.push(match split_qname(attr) {
            (None, "xmlns") => (Ns::Xmlns, ""),
            (Some("xmlns"), prefix) => (Ns::Xmlns, prefix),
            (Some(_), "xmlns") => return Err(Fault::BadNsDecl),
            (None, local) => (Ns::None, local),
            (Some(prefix), local) => (resolve(scopes, prefix).ok_or(Fault::UnboundPrefix)?, local),
        });
    }
    if has_duplicate(keys, scopes) {
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
fn resolve(scopes: &[Decl<'_>], prefix: &str) -> Option<Ns> {
    if prefix == "xml" {
        return Some(Ns::Fixed(XML_NS));
    }
    match scopes.iter().rposition(|d| d.prefix == prefix) {
        Some(index) => Some(Ns::Declared(index)),
        None => (prefix == "stream").then_some(Ns::Fixed(ns::STREAM)),
    }
}

/// The namespace of an attribute name, as an index into the scope stack (so the keys of one
/// tag need no copy of a URI).
#[derive(Clone, Copy, Debug)]
enum Ns {
    /// An unprefixed attribute.
    None,
    /// A namespace declaration.
    Xmlns,
    /// `xml`, or `stream` when the frame does not declare it.
    Fixed(&'static str),
    /// Declared in the frame: `scopes[index]`.
    Declared(usize),
}

impl Ns {
    fn uri<'s>(self, scopes: &'s [Decl<'_>]) -> &'s str {
        match self {
            Ns::None => "",
            Ns::Xmlns => XMLNS_NS,
            Ns::Fixed(uri) => uri,
            Ns::Declared(index) => &scopes[index].uri,
        }
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

/// Whether two keys name the same (namespace URI, local name): the same expanded name (sorts
/// `keys` when there are many).
fn has_duplicate<'l>(keys: &mut [(Ns, &'l str)], scopes: &[Decl<'_>]) -> bool {
    let expanded = |&(ns, local): &(Ns, &'l str)| (ns.uri(scopes), local);
    if keys.len() <= PAIRWISE_MAX {
        return keys
            .iter()
            .enumerate()
            .any(|(i, k)| keys[..i].iter().any(|o| expanded(o) == expanded(k)));
    }
    keys.sort_unstable_by(|a, b| expanded(a).cmp(&expanded(b)));
    keys.windows(2).any(|w| expanded(&w[0]) == expanded(&w[1]))
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
