//! The framer's state handlers for stanza content: text, CDATA, nested start and end tags
//! (with in-place name matching), and entity / character references.
//!
//! What it does not do: anything at stream level or inside start tags (see `scan.rs`).
//!
//! Invariants: an end tag is compared byte by byte with the start tag's name, read back from
//! the capture (`buf` then the current input), so no name is ever copied; a reference never
//! needs more than the 32-bit `aux` (packed entity name or saturated code point).

use super::fault::Fault;
use super::scan::{Act, Cursor, St};
use super::{Framer, IN_ATTR};
use crate::xml::{is_name_char, is_name_start, is_ws, is_xml_char};

/// Entity names packed big-endian into a u32 (names of at most four bytes fit).
const fn pack(name: &[u8]) -> u32 {
    let mut v = 0u32;
    let mut i = 0;
    while i < name.len() {
        v = (v << 8) | name[i] as u32;
        i += 1;
    }
    v
}
const PREDEFINED: [u32; 5] = [
    pack(b"lt"),
    pack(b"gt"),
    pack(b"amp"),
    pack(b"quot"),
    pack(b"apos"),
];
/// Marks an entity name too long to be one of the predefined five.
const LONG_NAME: u32 = u32::MAX;

impl Framer {
    pub(super) fn content(&mut self, b: u8, cur: &mut Cursor<'_>) -> Result<Act, Fault> {
        self.st = match (self.st, b) {
            (St::Text, b'<') => St::ContentLt,
            (St::Text, b'&') => {
                self.flags &= !IN_ATTR;
                self.aux = 0;
                St::EntName
            }
            (St::Text, b']') => St::TextBr1,
            (St::Text, _) => St::Text,
            (St::TextBr1, b']') | (St::TextBr2, b']') => St::TextBr2,
            (St::TextBr2, b'>') => return Err(Fault::CdataEndInText),
            (St::TextBr1 | St::TextBr2, _) => {
                self.st = St::Text;
                return Ok(Act::Again);
            }
            (St::ContentLt, b'/') => {
                self.aux = 0;
                St::EndName
            }
            (St::ContentLt, b'!') => St::ContentBang,
            (St::ContentLt, b'?') => return Err(Fault::Pi),
            (St::ContentLt, _) if is_name_start(b) => {
                let offset = self.offset(cur);
                self.push(offset);
                Framer::screen_open(cur, b);
                St::TagName
            }
            (St::ContentLt, _) => return Err(Fault::BadName),
            (St::ContentBang, b'[') => {
                self.aux = 0;
                St::CdataOpen
            }
            (St::ContentBang, _) => return Err(bang_fault(b, Fault::BadMarkup)),
            (St::CdataOpen, _) => return self.cdata_open(b),
            (St::Cdata, b']') => St::CdataBr1,
            (St::Cdata, _) => St::Cdata,
            (St::CdataBr1, b']') | (St::CdataBr2, b']') => St::CdataBr2,
            (St::CdataBr2, b'>') => St::Text,
            (St::CdataBr1 | St::CdataBr2, _) => {
                self.st = St::Cdata;
                return Ok(Act::Again);
            }
            (St::EndName, _) => return self.end_name(b, cur),
            (St::EndWs, b'>') => return Ok(self.close_element()),
            (St::EndWs, _) if is_ws(b) => St::EndWs,
            _ => return Err(Fault::BadEndTag),
        };
        Ok(Act::Next)
    }

    fn cdata_open(&mut self, b: u8) -> Result<Act, Fault> {
        const OPEN: &[u8] = b"CDATA[";
        if OPEN.get(self.aux as usize) != Some(&b) {
            return Err(Fault::BadMarkup);
        }
        self.aux += 1;
        if self.aux as usize == OPEN.len() {
            self.st = St::Cdata;
        }
        Ok(Act::Next)
    }

    /// One byte of an end tag's name, compared with the open element's name in place.
    fn end_name(&mut self, b: u8, cur: &Cursor<'_>) -> Result<Act, Fault> {
        let expected = self.capture_byte(cur, self.top_name() as usize + self.aux as usize);
        if is_name_char(b) {
            if expected != b {
                return Err(Fault::Mismatch);
            }
            self.aux += 1;
            return Ok(Act::Next);
        }
        if self.aux == 0 || !(is_ws(b) || b == b'>') {
            return Err(Fault::BadEndTag);
        }
        // The start tag's name ends with a non-name byte; a name byte here means the end
        // tag's name is a strict prefix of it.
        if is_name_char(expected) {
            return Err(Fault::Mismatch);
        }
        if b == b'>' {
            return Ok(self.close_element());
        }
        self.st = St::EndWs;
        Ok(Act::Next)
    }

    pub(super) fn reference(&mut self, b: u8) -> Result<Act, Fault> {
        let back = if self.flags & IN_ATTR != 0 {
            St::AttrValue
        } else {
            St::Text
        };
        match (self.st, b) {
            (St::EntName, b'#') if self.aux == 0 => self.st = St::CharRef,
            (St::EntName, b';') if self.aux == 0 => return Err(Fault::BareAmp),
            (St::EntName, b';') if PREDEFINED.contains(&self.aux) => self.st = back,
            (St::EntName, b';') => return Err(Fault::Undeclared),
            (St::EntName, _) if is_name_char(b) && (self.aux != 0 || is_name_start(b)) => {
                self.aux = if self.aux >= 1 << 24 {
                    LONG_NAME
                } else {
                    (self.aux << 8) | b as u32
                };
            }
            (St::EntName, _) => return Err(Fault::BareAmp),
            (St::CharRef, b'x') => self.st = St::CharRefHexStart,
            (St::CharRef, b'0'..=b'9') => {
                self.aux = u32::from(b - b'0');
                self.st = St::CharRefDec;
            }
            (St::CharRefDec | St::CharRefHex, b';') if is_xml_char(self.aux) => self.st = back,
            (St::CharRefDec | St::CharRefHexStart | St::CharRefHex, _) => {
                let radix = if self.st == St::CharRefDec { 10 } else { 16 };
                let digit = char::from(b).to_digit(radix).ok_or(Fault::BadCharRef)?;
                // Saturate just above the Unicode range so the value never overflows.
                self.aux = (self.aux * radix + digit).min(0x11_0000);
                self.st = if radix == 10 {
                    St::CharRefDec
                } else {
                    St::CharRefHex
                };
            }
            _ => return Err(Fault::BadCharRef),
        }
        Ok(Act::Next)
    }
}

/// The error for `<!` followed by `b` (`cdata` when `<![` is not allowed there).
pub(super) fn bang_fault(b: u8, cdata: Fault) -> Fault {
    match b {
        b'-' => Fault::Comment,
        b'[' => cdata,
        b'A'..=b'Z' => Fault::Dtd,
        _ => Fault::BadMarkup,
    }
}
