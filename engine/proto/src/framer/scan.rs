//! The framer's resumable state machine: one byte at a time, all state kept in [`Framer`].
//!
//! What it does: classifies each byte against the current [`St`], keeps the open-element name
//! offsets, enforces the capture size limit, and reports where a frame ends ([`Step`]). The
//! prolog, stream-level and start-tag states are handled here; stanza content and references
//! in `content.rs`.
//!
//! What it does not do: copy bytes, validate UTF-8 or check namespaces (the driver in
//! `framer.rs` does those once a frame is complete); at the end of each start-tag name and
//! `xmlns` value it calls the screen in `names.rs`, which only sets a flag.
//!
//! Invariants: a byte is either consumed (`Act::Next`) or re-dispatched once in a new state
//! (`Act::Again`, only from the `]`-lookahead states, which always move to a state that
//! consumes), so the loop is O(n). While `CAPTURE` is set, no byte is accepted that would make
//! the captured frame longer than `max`.

use super::fault::Fault;
use super::names::TagMarks;
use super::STREAM_OPEN;
use super::{Framer, CAPTURE, CHILD, DECL_SEEN, DQUOTE, IN_ATTR, NON_ASCII, NS_CHECK, ROOT};
use crate::xml::{is_forbidden_ctrl, is_name_char, is_name_start, is_ws};

/// Scanner state. Grouped by where in the stream it occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum St {
    // Before the stream header.
    Prolog,
    PrologLt,
    DeclName,
    DeclBody,
    DeclQuest,
    // At stream level (depth 1) between stanzas, or after the stream closed.
    Level1,
    Level1Lt,
    Bang,
    StreamEndName,
    StreamEndWs,
    Closed,
    // Inside a start tag (stream header or any element of a stanza).
    TagName,
    TagWs,
    AttrName,
    AttrNameWs,
    AttrEq,
    AttrValue,
    AttrDone,
    TagSlash,
    // Inside a stanza's content.
    Text,
    TextBr1,
    TextBr2,
    ContentLt,
    ContentBang,
    CdataOpen,
    Cdata,
    CdataBr1,
    CdataBr2,
    EndName,
    EndWs,
    // References, in text or in an attribute value (`IN_ATTR` says which).
    EntName,
    CharRef,
    CharRefDec,
    CharRefHexStart,
    CharRefHex,
}

/// Result of scanning one input slice.
pub(super) enum Step {
    /// Input used up; keep `data[from..]` as the frame prefix when `Some(from)`.
    Need(Option<usize>),
    /// Stream header complete at `end`; it starts at `start` in this input, or in `buf`.
    Open { start: Option<usize>, end: usize },
    /// Stanza complete at `end`; same convention as `Open`.
    Stanza { start: Option<usize>, end: usize },
    /// Stream close tag ending at `end`.
    Close(usize),
}

/// What one byte did.
pub(super) enum Act {
    Next,
    Again,
    Open,
    Stanza,
    Close,
}

/// Position in the current input.
pub(super) struct Cursor<'d> {
    pub(super) data: &'d [u8],
    pub(super) i: usize,
    /// Where the frame being captured starts in `data`; `None` when it began in `buf`.
    pub(super) cap: Option<usize>,
    /// First index of `data` that would take the capture over the limit.
    pub(super) limit: usize,
    /// The screen's notes on the start tag being scanned (see `names.rs`).
    pub(super) marks: TagMarks,
}

impl Framer {
    /// Scans `data` until a frame completes or the input is used up.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<Step, Fault> {
        let mut cur = Cursor {
            data,
            i: 0,
            cap: None,
            limit: usize::MAX,
            marks: TagMarks::default(),
        };
        self.screen_resume();
        if self.flags & CAPTURE != 0 {
            // `buf` holds at most `max` bytes (enforced below on every push).
            cur.limit = (self.max as usize).saturating_sub(self.buf().len());
        }
        loop {
            self.fast_skip(&mut cur);
            let Some(&b) = data.get(cur.i) else { break };
            if cur.i >= cur.limit {
                return Err(Fault::TooLarge);
            }
            if is_forbidden_ctrl(b) {
                return Err(Fault::Ctrl);
            }
            match self.step(b, &mut cur)? {
                Act::Next => {
                    if b >= 0x80 {
                        self.flags |= NON_ASCII;
                    }
                    cur.i += 1;
                }
                Act::Again => {}
                Act::Open => return Ok(self.finish(&cur, true)),
                Act::Stanza => return Ok(self.finish(&cur, false)),
                Act::Close => return Ok(Step::Close(cur.i)),
            }
        }
        let keep = (self.flags & CAPTURE != 0).then(|| cur.cap.unwrap_or(0));
        Ok(Step::Need(keep))
    }

    fn finish(&mut self, cur: &Cursor<'_>, open: bool) -> Step {
        self.flags &= !CAPTURE;
        let (start, end) = (cur.cap, cur.i);
        if open {
            Step::Open { start, end }
        } else {
            Step::Stanza { start, end }
        }
    }

    /// Skips runs of bytes that cannot change the state (text, attribute values, CDATA, names,
    /// whitespace); each is exactly what `step` would consume with `Act::Next` in place.
    fn fast_skip(&mut self, cur: &mut Cursor<'_>) {
        let stop = cur.limit.min(cur.data.len());
        let (data, from) = (cur.data, cur.i);
        let (end, high) = match self.st {
            St::Text => plain_run(data, from, stop, |b| {
                b >= 0x20 && !matches!(b, b'<' | b'&' | b']')
            }),
            St::AttrValue => {
                let q = if self.flags & DQUOTE != 0 {
                    b'"'
                } else {
                    b'\''
                };
                plain_run(data, from, stop, |b| {
                    b >= 0x20 && !matches!(b, b'<' | b'&') && b != q
                })
            }
            St::Cdata => plain_run(data, from, stop, |b| b >= 0x20 && b != b']'),
            // A name's `:` goes through `step`, where the screen notes it.
            St::TagName | St::AttrName => {
                plain_run(data, from, stop, |b| is_name_char(b) && b != b':')
            }
            St::Level1 | St::TagWs => plain_run(data, from, stop, is_ws),
            _ => return,
        };
        cur.i = end;
        if high >= 0x80 {
            self.flags |= NON_ASCII;
            if matches!(self.st, St::TagName | St::AttrName) {
                cur.marks.special = true;
            }
        }
    }

    fn step(&mut self, b: u8, cur: &mut Cursor<'_>) -> Result<Act, Fault> {
        match self.st {
            St::Prolog | St::PrologLt | St::DeclName | St::DeclBody | St::DeclQuest => {
                self.prolog(b, cur)
            }
            St::Level1
            | St::Level1Lt
            | St::Bang
            | St::StreamEndName
            | St::StreamEndWs
            | St::Closed => self.level1(b, cur),
            in_start_tag!() => self.tag(b, cur),
            in_reference!() => self.reference(b),
            _ => self.content(b, cur),
        }
    }

    fn prolog(&mut self, b: u8, cur: &mut Cursor<'_>) -> Result<Act, Fault> {
        match self.st {
            St::Prolog if is_ws(b) => {}
            St::Prolog if b == b'<' => self.st = St::PrologLt,
            St::Prolog => return Err(Fault::TextBeforeHeader),
            St::PrologLt if b == b'?' && self.flags & DECL_SEEN == 0 => {
                self.aux = 0;
                self.st = St::DeclName;
            }
            St::PrologLt if b == b'?' => return Err(Fault::Pi),
            St::PrologLt if b == b'!' => self.st = St::Bang,
            St::PrologLt if is_name_start(b) => {
                self.begin_capture(cur)?;
                Framer::screen_open(cur, b);
                self.st = St::TagName;
            }
            St::PrologLt => return Err(Fault::BadName),
            St::DeclName if self.aux < 3 => {
                // Anything but `<?xml` followed by whitespace is a processing instruction.
                if b != b"xml"[self.aux as usize] {
                    return Err(Fault::Pi);
                }
                self.aux += 1;
            }
            St::DeclName if is_ws(b) => self.st = St::DeclBody,
            St::DeclName => return Err(Fault::Pi),
            _ => {
                // The declaration is skipped, not captured: bound it by counting.
                self.aux += 1;
                if self.aux > self.max {
                    return Err(Fault::TooLarge);
                }
                self.st = match (self.st, b) {
                    (_, b'?') => St::DeclQuest,
                    (St::DeclQuest, b'>') => {
                        self.flags |= DECL_SEEN;
                        St::Prolog
                    }
                    _ => St::DeclBody,
                };
            }
        }
        Ok(Act::Next)
    }

    fn level1(&mut self, b: u8, cur: &mut Cursor<'_>) -> Result<Act, Fault> {
        match self.st {
            St::Level1 if is_ws(b) => {}
            St::Level1 if b == b'<' => self.st = St::Level1Lt,
            St::Level1 => return Err(Fault::TextAtStreamLevel),
            St::Level1Lt if b == b'/' => {
                self.aux = 0;
                self.st = St::StreamEndName;
            }
            St::Level1Lt if b == b'!' => self.st = St::Bang,
            St::Level1Lt if b == b'?' => return Err(Fault::Pi),
            St::Level1Lt if is_name_start(b) => {
                self.begin_capture(cur)?;
                Framer::screen_open(cur, b);
                self.flags |= ROOT;
                self.st = St::TagName;
            }
            St::Level1Lt => return Err(Fault::BadName),
            St::Bang => return Err(super::content::bang_fault(b, Fault::CdataAtStreamLevel)),
            St::StreamEndName if is_name_char(b) && (self.aux > 0 || is_name_start(b)) => {
                // Not captured: bound the name by counting.
                self.aux += 1;
                if self.aux > self.max {
                    return Err(Fault::TooLarge);
                }
            }
            St::StreamEndName | St::StreamEndWs if b == b'>' && self.aux > 0 => {
                self.st = St::Closed;
                return Ok(Act::Close);
            }
            St::StreamEndName | St::StreamEndWs if is_ws(b) && self.aux > 0 => {
                self.st = St::StreamEndWs;
            }
            St::StreamEndName | St::StreamEndWs => return Err(Fault::BadEndTag),
            _ if is_ws(b) => {}
            _ => return Err(Fault::AfterClose),
        }
        Ok(Act::Next)
    }

    fn tag(&mut self, b: u8, cur: &mut Cursor<'_>) -> Result<Act, Fault> {
        self.st = match (self.st, b) {
            (St::TagName | St::AttrName, _) if is_name_char(b) => {
                cur.marks.special |= b == b':' || b >= 0x80;
                return Ok(Act::Next);
            }
            (St::TagName, _) => {
                // The element name ended just before `b`.
                self.screen_element_name(cur);
                match b {
                    b'/' => St::TagSlash,
                    b'>' => return self.tag_end(),
                    _ if is_ws(b) => St::TagWs,
                    _ => return Err(Fault::BadName),
                }
            }
            (St::AttrName, _) => {
                self.screen_attr_name(cur);
                match b {
                    b'=' => St::AttrEq,
                    _ if is_ws(b) => St::AttrNameWs,
                    _ => return Err(Fault::BadAttr),
                }
            }
            (St::TagWs | St::AttrDone, b'/') => St::TagSlash,
            (St::TagWs | St::AttrDone, b'>') => return self.tag_end(),
            (St::TagWs | St::AttrDone, _) if is_ws(b) => St::TagWs,
            (St::AttrDone, _) => return Err(Fault::MissingWs),
            (St::TagWs, _) if is_name_start(b) => {
                Framer::screen_attr_start(cur, b);
                St::AttrName
            }
            (St::AttrNameWs, _) if is_ws(b) => St::AttrNameWs,
            (St::AttrNameWs, b'=') => St::AttrEq,
            (St::AttrEq, _) if is_ws(b) => St::AttrEq,
            (St::AttrEq, b'"' | b'\'') => {
                self.flags = (self.flags & !DQUOTE) | if b == b'"' { DQUOTE } else { 0 };
                Framer::screen_value_start(cur);
                St::AttrValue
            }
            (St::AttrEq, _) => return Err(Fault::Unquoted),
            (St::AttrValue, b'"' | b'\'') if (b == b'"') == (self.flags & DQUOTE != 0) => {
                self.screen_value(cur);
                St::AttrDone
            }
            (St::AttrValue, b'<') => return Err(Fault::LtInAttr),
            (St::AttrValue, b'&') => {
                cur.marks.value_ref = true;
                self.flags |= IN_ATTR;
                self.aux = 0;
                St::EntName
            }
            (St::AttrValue, _) => St::AttrValue,
            (St::TagSlash, b'>') => return self.empty_end(),
            (St::TagSlash, _) => return Err(Fault::BadTag),
            _ => return Err(Fault::BadAttr),
        };
        Ok(Act::Next)
    }

    /// `>` closing a start tag.
    fn tag_end(&mut self) -> Result<Act, Fault> {
        if self.flags & STREAM_OPEN == 0 {
            self.flags |= STREAM_OPEN;
            self.st = St::Level1;
            return Ok(Act::Open);
        }
        self.st = St::Text;
        Ok(Act::Next)
    }

    /// `/>` closing an empty-element tag.
    fn empty_end(&mut self) -> Result<Act, Fault> {
        if self.flags & STREAM_OPEN == 0 {
            return Err(Fault::EmptyStream);
        }
        Ok(self.close_element())
    }

    pub(super) fn close_element(&mut self) -> Act {
        if self.pop() {
            self.st = St::Level1;
            Act::Stanza
        } else {
            self.st = St::Text;
            Act::Next
        }
    }

    /// Starts capturing a frame whose `<` is the byte before `cur.i`.
    pub(super) fn begin_capture(&mut self, cur: &mut Cursor<'_>) -> Result<(), Fault> {
        self.flags = (self.flags | CAPTURE) & !(NON_ASCII | NS_CHECK);
        let max = self.max as usize;
        if cur.i == 0 {
            // The `<` ended the previous input and was not kept: restore it.
            self.held_mut().buf.push(b'<');
            cur.cap = None;
            cur.limit = max.saturating_sub(1);
        } else {
            cur.cap = Some(cur.i - 1);
            cur.limit = (cur.i - 1).saturating_add(max);
        }
        if cur.i >= cur.limit {
            return Err(Fault::TooLarge);
        }
        Ok(())
    }

    /// Offset of `data[cur.i]` from the start of the frame being captured.
    pub(super) fn offset(&self, cur: &Cursor<'_>) -> u32 {
        let off = self.buf().len() + cur.i - cur.cap.unwrap_or(0);
        // The capture is at most `max` (a u32) bytes long, enforced before every byte.
        u32::try_from(off).unwrap_or(u32::MAX)
    }

    /// Byte `k` of the frame being captured (0 past the end, which no caller reaches).
    pub(super) fn capture_byte(&self, cur: &Cursor<'_>, k: usize) -> u8 {
        let buf = self.buf();
        match k.checked_sub(buf.len()) {
            None => buf[k],
            Some(rest) => cur
                .data
                .get(cur.cap.unwrap_or(0) + rest)
                .copied()
                .unwrap_or(0),
        }
    }

    /// Records the name offset of a newly opened element below the stanza root.
    pub(super) fn push(&mut self, offset: u32) {
        if self.flags & CHILD == 0 {
            self.child = offset;
            self.flags |= CHILD;
        } else {
            self.held_mut().deep.push(offset);
        }
    }

    /// Closes the innermost open element; true when it was the stanza root.
    pub(super) fn pop(&mut self) -> bool {
        let deep = self.held.as_deref_mut().map(|held| &mut held.deep);
        if deep.and_then(Vec::pop).is_some() {
            false
        } else if self.flags & CHILD != 0 {
            self.flags &= !CHILD;
            false
        } else {
            self.flags &= !ROOT;
            true
        }
    }

    /// Name offset of the innermost open element (the root's name always starts at 1).
    pub(super) fn top_name(&self) -> u32 {
        match self.held.as_deref().and_then(|held| held.deep.last()) {
            Some(&offset) => offset,
            None if self.flags & CHILD != 0 => self.child,
            None => 1,
        }
    }
}

/// Index of the first byte in `data[from..stop]` that is not `plain`, and the OR of the bytes
/// skipped (its high bit says whether any was non-ASCII). Generic so each call inlines its test.
#[inline(always)]
fn plain_run(data: &[u8], from: usize, stop: usize, plain: impl Fn(u8) -> bool) -> (usize, u8) {
    let mut high = 0u8;
    let mut i = from;
    while i < stop && plain(data[i]) {
        high |= data[i];
        i += 1;
    }
    (i, high)
}
