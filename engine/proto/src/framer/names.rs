//! The scan's screen of start-tag names: in the same pass, it vouches for the common start
//! tag, and sends every other frame to the exact check (`namespaces.rs`) once it is complete.
//!
//! What it does: while a start tag is scanned wholly inside one input, it notes where each
//! name begins (in the scan's `Cursor`, on the stack) and, at each name's end, looks at those
//! few bytes again. The tag is vouched for when its element name is ASCII without `:`, every
//! attribute name is ASCII without `:` or is `xml:` + such a name, no two attribute names are
//! equal, it has at most [`FAST_ATTRS`] attributes, and an `xmlns` value holds no reference
//! and is not one of the two reserved namespaces. Such a tag is namespace-well-formed
//! whatever surrounds it, so a frame made only of them needs nothing more.
//!
//! What it does not do: refuse anything. A tag it cannot vouch for (a prefix, a non-ASCII
//! name, a duplicate, a tag spanning two inputs, ...) only sets `NS_CHECK`, and the exact check
//! decides when the frame is complete. So the outcome never depends on how the input was split.
//!
//! Invariants: no allocation, no state in `Framer` beyond the one `NS_CHECK` bit; marks are
//! used only while `TagMarks::here` says the tag began in the current input, so every noted
//! index points into `Cursor::data`.

use super::namespaces::{XMLNS_NS, XML_NS};
use super::scan::{Cursor, St};
use super::{Framer, IN_ATTR, NS_CHECK};

/// Attribute names compared in place per start tag; a tag with more goes to the exact check.
pub(super) const FAST_ATTRS: usize = 8;

/// Where the names of the start tag being scanned lie in the current input.
#[derive(Clone, Copy, Default)]
pub(super) struct TagMarks {
    /// The tag began in the current input (else the marks are stale and unused).
    here: bool,
    /// The attribute being scanned is `xmlns`: its value is looked at when it ends.
    xmlns_value: bool,
    count: usize,
    /// Start of the name or value being scanned.
    at: usize,
    /// `(start, end)` of each attribute name seen so far in the tag.
    names: [(usize, usize); FAST_ATTRS],
}

/// Whether `name` needs nothing more: ASCII without `:` (the scan already checked its first
/// byte is a letter or `_` and the others name bytes, so it is an `NCName`).
fn plain(name: &[u8]) -> bool {
    name.iter().all(|&b| b < 0x80 && b != b':')
}

impl Framer {
    /// A scan that starts inside a start tag cannot see the tag's first names.
    pub(super) fn screen_resume(&mut self) {
        let in_tag = match self.st {
            St::TagName
            | St::TagWs
            | St::AttrName
            | St::AttrNameWs
            | St::AttrEq
            | St::AttrValue
            | St::AttrDone
            | St::TagSlash => true,
            St::EntName | St::CharRef | St::CharRefDec | St::CharRefHexStart | St::CharRefHex => {
                self.flags & IN_ATTR != 0
            }
            _ => false,
        };
        if in_tag {
            self.flags |= NS_CHECK;
        }
    }

    /// The element name of a start tag begins at `cur.i`.
    pub(super) fn screen_open(cur: &mut Cursor<'_>) {
        cur.marks = TagMarks {
            here: true,
            at: cur.i,
            ..TagMarks::default()
        };
    }

    /// The element name ends before `cur.i`.
    pub(super) fn screen_element_name(&mut self, cur: &Cursor<'_>) {
        let m = &cur.marks;
        if m.here && !plain(&cur.data[m.at..cur.i]) {
            self.flags |= NS_CHECK;
        }
    }

    /// An attribute name (or its value, for `value_start`) begins at `cur.i`.
    pub(super) fn screen_mark(cur: &mut Cursor<'_>, value_start: bool) {
        cur.marks.at = cur.i + usize::from(value_start);
    }

    /// An attribute name ends before `cur.i`.
    pub(super) fn screen_attr_name(&mut self, cur: &mut Cursor<'_>) {
        let (data, m) = (cur.data, &mut cur.marks);
        if !m.here {
            return;
        }
        let name = &data[m.at..cur.i];
        let simple = plain(name)
            || name.strip_prefix(b"xml:").is_some_and(|local| {
                let starts = local
                    .first()
                    .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_');
                starts && plain(local) && local != b"xmlns"
            });
        let seen = &m.names[..m.count];
        let repeated = seen.iter().any(|&(s, e)| &data[s..e] == name);
        if !simple || repeated || m.count == FAST_ATTRS {
            self.flags |= NS_CHECK;
            m.here = false;
            return;
        }
        m.names[m.count] = (m.at, cur.i);
        m.count += 1;
        m.xmlns_value = name == b"xmlns";
    }

    /// An attribute value ends before `cur.i` (at its closing quote).
    pub(super) fn screen_value(&mut self, cur: &mut Cursor<'_>) {
        let m = &mut cur.marks;
        if !(m.here && m.xmlns_value) {
            return;
        }
        m.xmlns_value = false;
        let value = &cur.data[m.at..cur.i];
        if value.contains(&b'&') || value == XML_NS.as_bytes() || value == XMLNS_NS.as_bytes() {
            self.flags |= NS_CHECK;
        }
    }
}
