//! Entry points shared by the cargo-fuzz targets and the corpus test (hidden from docs).
//!
//! What it does: drives the public API the way the server does, with extra consistency
//! checks that panic on a bug (so the fuzzer reports it): the framer never buffers past its
//! limit, a dead framer repeats its error, every stanza it yields passes the exact namespace
//! check (so its one-pass screen vouched for nothing it should not have), and a stanza stamped
//! by the view re-frames as exactly one stanza carrying the stamped `from`.
//!
//! What it does not do: anything on the production path; it exists only for testing.

use crate::element::Element;
use crate::framer::{check_namespaces, Frame, FrameError, Framer, FramerLimits};
use crate::view::StanzaView;

/// Limit used by the fuzz harness: small, so the size checks are reached.
pub const FUZZ_MAX_STANZA_BYTES: usize = 4096;

/// Feeds `data[1..]` to a framer in two chunks split at `data[0]`, and parses every stanza
/// with [`StanzaView`] and [`Element`] (and the header with [`Element::parse_open_tag`]).
pub fn framer_two_chunks(data: &[u8]) {
    framer_two_chunks_with(data, |_| Ok(()));
}

/// [`framer_two_chunks`], and every stanza, inside a stream element that declares what every
/// stream declares, must pass `parse` (a strict XML parser the caller brings: this crate has
/// none); panics naming the stanza otherwise.
pub fn framer_two_chunks_with(data: &[u8], parse: impl Fn(&str) -> Result<(), String>) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let mut framer = Framer::new(FramerLimits {
        max_stanza_bytes: FUZZ_MAX_STANZA_BYTES,
    });
    for chunk in [&rest[..cut], &rest[cut..]] {
        if let Err(err) = feed(&mut framer, chunk, &parse) {
            let mut again: &[u8] = b"<x/>";
            assert_eq!(
                framer.next_frame(&mut again),
                Err(err),
                "a dead framer repeats its error"
            );
            return;
        }
        assert!(framer.buffered_bytes() <= FUZZ_MAX_STANZA_BYTES);
    }
}

fn feed(
    framer: &mut Framer,
    chunk: &[u8],
    parse: &impl Fn(&str) -> Result<(), String>,
) -> Result<(), FrameError> {
    each_frame(framer, chunk, |frame| match frame {
        Frame::StreamOpen(header) => {
            if let Ok(e) = Element::parse_open_tag(header) {
                let _ = (e.ns(), e.attrs().count());
            }
        }
        Frame::Stanza(stanza) => {
            check_stanza(stanza);
            parse_in_stream(stanza, parse);
        }
        Frame::StreamClose => {}
    })
}

/// Drains `chunk` through `framer` as the server's read loop does, handing each frame to
/// `on_frame`, until the framer needs more bytes or fails. Asserts the framer's contract that
/// it asks for more only once it took the whole chunk. (Each call gets a fresh slice of the
/// rest: a frame borrows the framer until it is dropped.)
pub fn each_frame(
    framer: &mut Framer,
    chunk: &[u8],
    mut on_frame: impl FnMut(Frame<'_>),
) -> Result<(), FrameError> {
    let mut pos = 0;
    loop {
        let mut input = &chunk[pos..];
        let before = input.len();
        let Some(frame) = framer.next_frame(&mut input)? else {
            assert!(
                input.is_empty(),
                "more bytes asked for before all were taken"
            );
            return Ok(());
        };
        on_frame(frame);
        pos += before - input.len();
    }
}

/// Runs `parse` on `stanza` inside a stream element; panics naming the stanza on failure.
fn parse_in_stream(stanza: &[u8], parse: &impl Fn(&str) -> Result<(), String>) {
    // The framer validated UTF-8 (a stanza with a non-ASCII byte) or saw only ASCII.
    let Ok(text) = std::str::from_utf8(stanza) else {
        panic!("a framed stanza is not UTF-8: {stanza:?}");
    };
    let doc = format!(
        "<stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>{text}</stream:stream>"
    );
    if let Err(error) = parse(&doc) {
        panic!("a framed stanza does not parse ({error}): {text:?}");
    }
}

/// Exercises the view and the element parser on one framed stanza, and checks that the
/// framer's one-pass screen let nothing through that its exact namespace check refuses.
pub fn check_stanza(stanza: &[u8]) {
    assert_eq!(
        check_namespaces(stanza),
        Ok(()),
        "a framed stanza fails the exact namespace check: {:?}",
        String::from_utf8_lossy(stanza)
    );
    if let Ok(e) = Element::parse(stanza) {
        let _ = (e.text(), e.ns(), e.children().count());
    }
    let Ok(view) = StanzaView::parse(stanza) else {
        return;
    };
    let _ = (
        view.kind(),
        view.to(),
        view.id(),
        view.stanza_type(),
        view.xmlns(),
    );
    for child in view.children() {
        assert!(child.bytes.starts_with(b"<") && child.bytes.ends_with(b">"));
        let _ = check_namespaces(child.bytes);
    }
    let from = "stamped@example.com/r&'\"<>";
    let mut out = Vec::new();
    view.stamp(from, Some("to@example.com"), &mut out);
    let mut framer = Framer::new(FramerLimits {
        max_stanza_bytes: out.len() + 64,
    });
    let mut header: &[u8] = b"<s>";
    assert!(matches!(
        framer.next_frame(&mut header),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    let mut input: &[u8] = &out;
    let Ok(Some(Frame::Stanza(again))) = framer.next_frame(&mut input) else {
        panic!(
            "stamped stanza does not frame: {:?}",
            String::from_utf8_lossy(&out)
        );
    };
    assert!(input.is_empty(), "stamping produced more than one stanza");
    // Panicking is the point here: it is how the fuzzer learns that stamping broke a stanza.
    let view = StanzaView::parse(again).expect("stamped stanza parses");
    assert_eq!(view.from().as_deref(), Some(from));
    assert_eq!(view.to().as_deref(), Some("to@example.com"));
}
