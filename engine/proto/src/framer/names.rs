//! The scan's screen of start-tag names: in the same pass, it vouches for the common start
//! tag, and sends every other frame to the exact check (`namespaces.rs`) once it is complete.
//!
//! What it does: while a start tag is scanned wholly inside one input, it notes where each
//! name begins (in the scan's `Cursor`, on the stack) and whether the scan saw a `:` or a
//! non-ASCII byte in it; at each attribute name's end it reads three of its bytes (all of it
//! only after a `:`). The tag is vouched for when its element name is ASCII without `:`, every
//! attribute name is ASCII without `:` or is `xml:` + such a name, no two attribute names
//! hash to the same bit of a 64-bit set (so none is repeated), and an `xmlns` value holds no
//! reference and is not one of the two reserved namespaces. Such a tag is namespace-well-formed
//! whatever surrounds it, so a frame made only of them needs nothing more.
//!
//! What it does not do: refuse anything. A tag it cannot vouch for (a prefix, a non-ASCII
//! name, two names on one bit, a tag spanning two inputs, ...) only sets `NS_CHECK`, and the
//! exact check decides when the frame is complete. So the outcome never depends on how the
//! input was split.
//!
//! Invariants: no allocation, no state in `Framer` beyond the one `NS_CHECK` bit; marks are
//! used only while `TagMarks::here` says the tag began in the current input, so every noted
//! index points into `Cursor::data`.

use super::namespaces::{XMLNS_NS, XML_NS};
use super::scan::{Cursor, St};
use super::{Framer, IN_ATTR, NS_CHECK};

/// Where the names of the start tag being scanned lie in the current input.
#[derive(Clone, Copy, Default)]
pub(super) struct TagMarks {
    /// The tag began in the current input (else the marks are stale and unused).
    here: bool,
    /// The attribute being scanned is `xmlns`: its value is looked at when it ends.
    xmlns_value: bool,
    /// The attribute value being scanned holds a reference.
    pub(super) value_ref: bool,
    /// The name being scanned has a `:` or a non-ASCII byte (set by the scan as it goes).
    pub(super) special: bool,
    /// Start of the name or value being scanned.
    at: usize,
    /// One bit per attribute name seen in the tag (a hash of the name picks it): a repeated
    /// bit may be a repeated name, for the exact check to decide.
    seen: u64,
}

/// Whether `name` needs nothing more: ASCII without `:` (the scan already checked its first
/// byte is a letter or `_` and the others name bytes, so it is an `NCName`).
fn plain(name: &[u8]) -> bool {
    name.iter().all(|&b| b < 0x80 && b != b':')
}

/// The bit of a (non-empty) attribute name: its length, first, middle and last bytes, mixed.
/// The multiplier was picked so that the attributes XMPP puts together on one element (`to
/// from type id xmlns xml:lang`, `jid name node`, `xmlns ver hash node`, ...) get distinct
/// bits (see the test), keeping their tags on the screen's path.
fn bit(name: &[u8]) -> u64 {
    let (first, last) = (name[0], name[name.len() - 1]);
    let key = (name.len() as u32 & 0xFF)
        | u32::from(first) << 8
        | u32::from(name[name.len() / 2]) << 16
        | u32::from(last) << 24;
    1 << (key.wrapping_mul(0xCD61_3E31) >> 26)
}

impl Framer {
    /// A scan that starts inside a start tag cannot see the tag's first names.
    #[inline]
    pub(super) fn screen_resume(&mut self) {
        let in_tag = match self.st {
            in_start_tag!() => true,
            in_reference!() => self.flags & IN_ATTR != 0,
            _ => false,
        };
        if in_tag {
            self.flags |= NS_CHECK;
        }
    }

    /// The element name of a start tag begins with `first` at `cur.i`.
    #[inline]
    pub(super) fn screen_open(cur: &mut Cursor<'_>, first: u8) {
        cur.marks = TagMarks {
            here: true,
            at: cur.i,
            special: first >= 0x80,
            ..TagMarks::default()
        };
    }

    /// The element name ends before `cur.i`.
    #[inline]
    pub(super) fn screen_element_name(&mut self, cur: &Cursor<'_>) {
        let m = &cur.marks;
        if m.here && m.special {
            self.flags |= NS_CHECK;
        }
    }

    /// An attribute name begins with `first` at `cur.i`.
    #[inline]
    pub(super) fn screen_attr_start(cur: &mut Cursor<'_>, first: u8) {
        cur.marks.at = cur.i;
        cur.marks.special = first >= 0x80;
    }

    /// An attribute value begins after the quote at `cur.i`.
    #[inline]
    pub(super) fn screen_value_start(cur: &mut Cursor<'_>) {
        if cur.marks.xmlns_value {
            cur.marks.at = cur.i + 1;
            cur.marks.value_ref = false;
        }
    }

    /// An attribute name ends before `cur.i`.
    #[inline]
    pub(super) fn screen_attr_name(&mut self, cur: &mut Cursor<'_>) {
        let (data, m) = (cur.data, &mut cur.marks);
        if !m.here {
            return;
        }
        let name = &data[m.at..cur.i];
        let simple = !m.special
            || name.strip_prefix(b"xml:").is_some_and(|local| {
                let starts = local
                    .first()
                    .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_');
                starts && plain(local) && local != b"xmlns"
            });
        // Not empty: the scan entered the name on a name-start byte.
        let bit = bit(name);
        if !simple || m.seen & bit != 0 {
            self.flags |= NS_CHECK;
            m.here = false;
            return;
        }
        m.seen |= bit;
        m.xmlns_value = name == b"xmlns";
    }

    /// An attribute value ends before `cur.i` (at its closing quote).
    #[inline]
    pub(super) fn screen_value(&mut self, cur: &mut Cursor<'_>) {
        if cur.marks.here && cur.marks.xmlns_value {
            self.screen_namespace(cur);
        }
    }

    /// The value of an `xmlns` attribute ends before `cur.i`.
    #[inline]
    fn screen_namespace(&mut self, cur: &mut Cursor<'_>) {
        let m = &mut cur.marks;
        m.xmlns_value = false;
        let value = &cur.data[m.at..cur.i];
        if m.value_ref || value == XML_NS.as_bytes() || value == XMLNS_NS.as_bytes() {
            self.flags |= NS_CHECK;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_xmpp_puts_together_get_distinct_bits() {
        let together: &[&[&str]] = &[
            &["to", "from", "type", "id", "xmlns", "xml:lang"],
            &["jid", "name", "subscription", "ask", "approved"],
            &["category", "type", "name", "xml:lang"],
            &["affiliation", "role", "jid", "nick"],
            &["xmlns", "ver", "hash", "node"],
            &["xmlns", "from", "stamp"],
            &["xmlns", "h", "previd"],
            &["xmlns", "id", "max", "resume", "location"],
            &["xmlns", "var", "type", "label"],
            &["xmlns", "type", "action", "node", "sessionid"],
            &["xmlns", "queryid", "node"],
            &["xmlns", "url", "jid", "node", "name"],
            &["xmlns", "seconds", "maxstanzas", "maxchars", "since"],
            &["xmlns", "version", "to", "from", "id", "xml:lang"],
        ];
        for names in together {
            let bits = names.iter().fold(0u64, |seen, n| {
                let b = bit(n.as_bytes());
                assert_eq!(seen & b, 0, "{n} shares a bit in {names:?}");
                seen | b
            });
            assert_eq!(bits.count_ones() as usize, names.len());
        }
    }

    #[test]
    fn plain_names() {
        assert!(plain(b"to") && plain(b"a-b.c_1"));
        assert!(!plain(b"p:a") && !plain("\u{e9}".as_bytes()));
    }
}
