//! Stanza framer: finds top-level element boundaries in a byte stream split anywhere.
//!
//! What it does: a resumable byte-at-a-time state machine (in [`scan`]) that recognises the
//! optional XML declaration, the stream header, each first-level element (stanza) and the
//! stream close tag, while enforcing RFC 6120 section 11 restrictions: no comments, no
//! processing instructions (other than one leading XML declaration), no DTD, only the five
//! predefined entities and legal character references, no forbidden control characters,
//! matching end tags, valid UTF-8 (checked once per completed frame, only when it holds
//! non-ASCII bytes), and a size limit on every captured frame.
//!
//! Every frame is also namespace-well-formed (Namespaces in XML 1.0) in the frame itself, so a
//! stanza forwarded as bytes parses in any recipient's stream: names are `QName`s, no two
//! attributes share a qualified or expanded name, every prefix but `xml` and `stream` (which
//! every stream declares) is declared within the frame, and no declaration is illegal. The
//! scan screens each start tag in place (`names.rs`) and vouches for the common one (ASCII
//! names, no prefix but `xml:` on attributes, distinct names); any other frame gets the exact
//! check (`namespaces.rs`) once complete.
//!
//! What it does not do: any parsing beyond boundaries and names (see [`crate::view`] and
//! [`crate::element`]). It performs no I/O.
//!
//! Invariants:
//! - Each input byte is scanned once (O(n) total however the input is split; the screen reads
//!   a few bytes of a name again, the exact check reads a frame it checks once more); a frame
//!   wholly inside one `input` is returned without copying; a frame spanning pushes is copied
//!   once into `buf`, which never holds more than `max_stanza_bytes`.
//! - Between stanzas, after `next_frame` returned `Ok(None)`, the framer owns no heap memory.
//! - `size_of::<Framer>()` is 24 bytes on 64-bit targets (asserted in a test): names of open
//!   elements are kept as offsets into the frame (depth 1 implicit, depth 2 inline, deeper in
//!   `deep`), the error is a one-byte `Fault`, the attribute quote is a flag bit, and the
//!   buffer and the deep stack sit in a box (`Held`) that exists only while a frame spans
//!   pushes or nests three deep: a stanza wholly inside one input and at most two levels deep
//!   allocates nothing; a deeper one allocates the box and the stack.
//! - No allocation for a frame the screen vouches for; the exact check (a prefix, a duplicate,
//!   a start tag split between two inputs) may allocate.
//! - The outcome (frames and error) does not depend on how the input is split: namespace
//!   faults are decided only on the complete frame.
//! - After an error every call returns the same error.

/// The scanner states inside a start tag, as one pattern (a macro: a pattern cannot be a
/// constant) for the per-byte dispatch in `scan.rs` and the screen in `names.rs`; `St` must be
/// in scope where it is used.
macro_rules! in_start_tag {
    () => {
        St::TagName
            | St::TagWs
            | St::AttrName
            | St::AttrNameWs
            | St::AttrEq
            | St::AttrValue
            | St::AttrDone
            | St::TagSlash
    };
}

/// The scanner states inside an entity or character reference (in content or an attribute
/// value), likewise.
macro_rules! in_reference {
    () => {
        St::EntName | St::CharRef | St::CharRefDec | St::CharRefHexStart | St::CharRefHex
    };
}

mod content;
mod fault;
mod names;
mod namespaces;
mod scan;

use fault::Fault;
use scan::{St, Step};

/// Limits applied by the framer.
#[derive(Clone, Copy, Debug)]
pub struct FramerLimits {
    /// Largest stanza accepted, in bytes. Also caps the stream header, the XML declaration,
    /// the stream close tag and the partial-stanza buffer.
    pub max_stanza_bytes: usize,
}

/// One unit found in the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The stream header `<stream:stream ...>` (raw open-tag bytes, from '<' to '>').
    /// An XML declaration `<?xml ...?>` before it is accepted and skipped (only there).
    StreamOpen(&'a [u8]),
    /// One complete first-level element of the stream, from its '<' to its final '>'.
    Stanza(&'a [u8]),
    /// `</stream:stream>` (the closing tag of the stream element).
    StreamClose,
}

/// Why the framer stopped; close the stream with the error named by [`FrameError::condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Malformed XML: stream error `not-well-formed`.
    NotWellFormed(&'static str),
    /// Comments, PIs (other than the leading XML declaration), DTDs, undeclared entities:
    /// stream error `restricted-xml`.
    RestrictedXml(&'static str),
    /// A stanza (or partial buffer, or stream header) over `max_stanza_bytes`:
    /// stream error `policy-violation`.
    TooLarge,
}

impl FrameError {
    /// The RFC 6120 stream error condition element name for this error.
    pub fn condition(&self) -> &'static str {
        match self {
            FrameError::NotWellFormed(_) => "not-well-formed",
            FrameError::RestrictedXml(_) => "restricted-xml",
            FrameError::TooLarge => "policy-violation",
        }
    }

    /// A short human-readable cause (safe to send as stream error text).
    pub fn detail(&self) -> &'static str {
        match self {
            FrameError::NotWellFormed(d) | FrameError::RestrictedXml(d) => d,
            FrameError::TooLarge => "stanza exceeds the size limit",
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.condition(), self.detail())
    }
}

impl std::error::Error for FrameError {}

/// Whether `element` declares every prefix it uses (besides `xml` and `stream`), with the
/// other namespace rules the framer applies to a stanza. For an element cut out of a stanza
/// the framer yielded (a child the router copies into a stanza of its own): a child relying on
/// a declaration of its parent would no longer be well-formed on its own.
///
/// `element` must be one complete element taken from such a stanza (the check does not
/// re-validate syntax); anything else may give any answer, but never panics.
pub fn check_namespaces(element: &[u8]) -> Result<(), FrameError> {
    namespaces::check(element, false).map_err(Fault::error)
}

/// Capacity of a released frame buffer kept for reuse within one `next_frame` loop; above it
/// the buffer goes back to the allocator immediately.
const KEEP_CAPACITY_BYTES: usize = 4096;

// `flags` bits.
/// The stream header has been returned (depth >= 1).
const STREAM_OPEN: u16 = 1 << 0;
/// The XML declaration was seen for the current stream.
const DECL_SEEN: u16 = 1 << 1;
/// A frame (header or stanza) is being captured.
const CAPTURE: u16 = 1 << 2;
/// The stanza root is open (stanza depth >= 1).
const ROOT: u16 = 1 << 3;
/// An element at stanza depth 2 is open; its name offset is in `child`.
const CHILD: u16 = 1 << 4;
/// The reference being scanned sits in an attribute value (else in text).
const IN_ATTR: u16 = 1 << 5;
/// The frame being captured holds a non-ASCII byte, so it needs UTF-8 validation.
const NON_ASCII: u16 = 1 << 6;
/// `buf` holds the frame returned last; drop it on the next call.
const STALE: u16 = 1 << 7;
/// The attribute value being scanned is quoted with `"` (else `'`).
const DQUOTE: u16 = 1 << 8;
/// The frame being captured has a start tag the screen could not vouch for: it gets the exact
/// namespace check when complete.
const NS_CHECK: u16 = 1 << 9;

/// What a framer keeps on the heap while a frame is in progress: boxed, and dropped between
/// stanzas, so an idle framer is its 24 bytes of scan state and no more.
#[derive(Default)]
struct Held {
    /// The captured prefix of the frame in progress (or the last frame, when `STALE`).
    buf: Vec<u8>,
    /// Name offsets (relative to the frame's '<') of open elements at stanza depth >= 3.
    deep: Vec<u32>,
}

/// Resumable stanza framer for one stream. See the module docs.
pub struct Framer {
    /// The partial frame and the deep element stack; `None` between stanzas.
    held: Option<Box<Held>>,
    /// `max_stanza_bytes`, clamped to u32 so offsets fit in u32.
    max: u32,
    /// Name offset of the open element at stanza depth 2 (valid when `CHILD`).
    child: u32,
    /// Per-state scratch: end-tag compare index, packed entity name, char ref value, or a
    /// length counter for uncaptured markup.
    aux: u32,
    st: St,
    flags: u16,
    fault: Option<Fault>,
}

impl Framer {
    /// A framer expecting an (optional XML declaration and a) stream header.
    pub fn new(limits: FramerLimits) -> Framer {
        Framer {
            held: None,
            max: u32::try_from(limits.max_stanza_bytes).unwrap_or(u32::MAX),
            child: 0,
            aux: 0,
            st: St::Prolog,
            flags: 0,
            fault: None,
        }
    }

    /// Pull the next frame, consuming bytes from the front of `input`.
    ///
    /// `Ok(None)`: `input` is used up and no complete frame is available; any partial element
    /// has been copied into the framer's own buffer (so the caller may drop `input`).
    /// The returned frame borrows `input` when the element lies wholly inside it (no copy),
    /// or the framer's buffer when it spanned several pushes.
    /// After an `Err` the framer is dead: every later call returns the same error.
    ///
    /// Because the returned frame may borrow the framer, each call borrows it for as long as
    /// the `input` slice's lifetime. Call it with a fresh slice variable per iteration (a
    /// single `input` variable reused across loop iterations does not pass the borrow checker):
    ///
    /// ```
    /// # use rookery_proto::{Frame, Framer, FramerLimits};
    /// let data = b"<stream:stream to='x'><message/>";
    /// let mut framer = Framer::new(FramerLimits { max_stanza_bytes: 1 << 16 });
    /// let mut pos = 0;
    /// let mut frames = 0;
    /// loop {
    ///     let mut input = &data[pos..];
    ///     let before = input.len();
    ///     let Some(frame) = framer.next_frame(&mut input).unwrap() else { break };
    ///     frames += 1;
    ///     if let Frame::Stanza(bytes) = frame { assert_eq!(bytes, b"<message/>"); }
    ///     pos += before - input.len();
    /// }
    /// assert_eq!(frames, 2);
    /// ```
    pub fn next_frame<'b>(
        &'b mut self,
        input: &mut &'b [u8],
    ) -> Result<Option<Frame<'b>>, FrameError> {
        if let Some(fault) = self.fault {
            return Err(fault.error());
        }
        if self.flags & STALE != 0 {
            self.flags &= !STALE;
            self.release_buf();
        }
        let data: &'b [u8] = input;
        let step = match self.scan(data) {
            Ok(step) => step,
            Err(fault) => return Err(self.die(fault)),
        };
        let (start, end, open) = match step {
            Step::Need(keep) => {
                self.stash(data, keep);
                *input = &data[data.len()..];
                return Ok(None);
            }
            Step::Close(end) => {
                *input = &data[end + 1..];
                return Ok(Some(Frame::StreamClose));
            }
            Step::Open { start, end } => (start, end, true),
            Step::Stanza { start, end } => (start, end, false),
        };
        *input = &data[end + 1..];
        if let Err(fault) = self.complete(data, start, end, open) {
            return Err(self.die(fault));
        }
        let this: &'b Framer = self;
        let bytes = match start {
            Some(s) => &data[s..=end],
            None => this.buf(),
        };
        Ok(Some(if open {
            Frame::StreamOpen(bytes)
        } else {
            Frame::Stanza(bytes)
        }))
    }

    /// Stream restart (after SASL success): expect a new (optional XML decl +) stream header.
    /// Does not revive a framer that returned an error.
    pub fn reset(&mut self) {
        self.held = None;
        self.child = 0;
        self.aux = 0;
        self.st = St::Prolog;
        self.flags = 0;
    }

    /// Bytes held for a partial element.
    pub fn buffered_bytes(&self) -> usize {
        if self.flags & STALE != 0 {
            0
        } else {
            self.buf().len()
        }
    }

    /// Heap bytes owned (for memory accounting); 0 for an idle framer between stanzas.
    pub fn heap_bytes(&self) -> usize {
        self.held.as_deref().map_or(0, |held| {
            let deep = held.deep.capacity() * std::mem::size_of::<u32>();
            std::mem::size_of::<Held>() + held.buf.capacity() + deep
        })
    }

    /// The captured bytes (empty when nothing is held).
    fn buf(&self) -> &[u8] {
        self.held.as_deref().map_or(&[], |held| &held.buf)
    }

    /// The heap part, created on first use (a frame spanning pushes, or depth >= 3).
    fn held_mut(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Box::default)
    }

    /// Finishes a frame ending at `data[end]`: copies it into `buf` when it began in an
    /// earlier push, then validates UTF-8 and checks namespaces if needed.
    fn complete(
        &mut self,
        data: &[u8],
        start: Option<usize>,
        end: usize,
        open: bool,
    ) -> Result<(), Fault> {
        let non_ascii = self.flags & NON_ASCII != 0;
        let ns_check = self.flags & NS_CHECK != 0;
        self.flags &= !(NON_ASCII | NS_CHECK);
        if start.is_none() {
            self.flags |= STALE;
        }
        let bytes = match start {
            Some(s) => &data[s..=end],
            None => {
                let held = self.held_mut();
                held.buf.extend_from_slice(&data[..=end]);
                &held.buf[..]
            }
        };
        if non_ascii {
            let text = std::str::from_utf8(bytes).map_err(|_| Fault::BadUtf8)?;
            if text.contains(['\u{FFFE}', '\u{FFFF}']) {
                return Err(Fault::NonChar);
            }
        }
        if ns_check {
            namespaces::check(bytes, open)?;
        }
        Ok(())
    }

    /// Keeps the partial frame at the end of `data` (or frees memory when there is none).
    fn stash(&mut self, data: &[u8], keep: Option<usize>) {
        let Some(from) = keep else {
            self.held = None;
            return;
        };
        let tail = &data[from..];
        let max = self.max as usize;
        let buf = &mut self.held_mut().buf;
        let needed = buf.len() + tail.len();
        if needed > buf.capacity() {
            // Grow geometrically but never past the limit: the scan already refused any byte
            // that would take the capture over `max`, so `needed <= max`.
            let target = needed.max((buf.capacity() * 2).min(max));
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(tail);
    }

    /// Drops the last returned frame: keeps a small buffer for reuse, frees a big one.
    fn release_buf(&mut self) {
        let Some(held) = self.held.as_deref_mut() else {
            return;
        };
        if held.buf.capacity() > KEEP_CAPACITY_BYTES {
            held.buf = Vec::new();
        } else {
            held.buf.clear();
        }
    }

    /// Records a fatal error and frees memory; the framer stays dead.
    fn die(&mut self, fault: Fault) -> FrameError {
        self.fault = Some(fault);
        self.held = None;
        fault.error()
    }
}

#[cfg(test)]
mod tests;
