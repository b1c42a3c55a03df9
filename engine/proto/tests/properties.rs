//! Property tests for rookery-proto:
//! 1. a generated valid stream gives the same frames however its bytes are split;
//! 2. arbitrary bytes in arbitrary chunks never panic and never over-buffer;
//! 3. `Jid::parse` never panics and its canonical form round-trips.

mod support;

use proptest::prelude::*;
use rookery_proto::fuzzing::{check_stanza, each_frame};
use rookery_proto::writer::escape_attr;
use rookery_proto::{Frame, FrameError, Framer, FramerLimits, Jid};
use support::{tree, write, Tag};

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Open(Vec<u8>),
    Stanza(Vec<u8>),
    Close,
}

/// Feeds `chunks` in order; returns the frames and the first error.
fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Owned>, Option<FrameError>) {
    let mut framer = Framer::new(FramerLimits {
        max_stanza_bytes: max,
    });
    let mut frames = Vec::new();
    for chunk in chunks {
        let fed = each_frame(&mut framer, chunk, |frame| {
            frames.push(match frame {
                Frame::StreamOpen(b) => Owned::Open(b.to_vec()),
                Frame::Stanza(b) => Owned::Stanza(b.to_vec()),
                Frame::StreamClose => Owned::Close,
            })
        });
        if let Err(e) = fed {
            return (frames, Some(e));
        }
        assert!(framer.buffered_bytes() <= max);
    }
    (frames, None)
}

/// An element's tag: a generated name and its attributes (value, quote), spelt with spaces
/// where XML allows them.
#[derive(Clone, Debug)]
struct Elem {
    name: String,
    attrs: Vec<(String, char)>,
}

type Node = support::Node<Elem>;

impl Tag for Elem {
    fn open(&self, out: &mut Vec<u8>) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        // A prefixed name is declared on its own element (the framer refuses a prefix the
        // stanza does not declare).
        if let Some((prefix, _)) = self.name.split_once(':') {
            out.extend_from_slice(format!(" xmlns:{prefix}='urn:x:{prefix}'").as_bytes());
        }
        for (i, (value, quote)) in self.attrs.iter().enumerate() {
            out.extend_from_slice(format!(" a{i} = {quote}").as_bytes());
            escape_attr(value, out);
            out.push(*quote as u8);
        }
    }

    fn empty_end(&self) -> Option<&'static [u8]> {
        // Both forms of an empty element occur.
        self.attrs.len().is_multiple_of(2).then_some(b" />")
    }

    fn close(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("</{} >", self.name).as_bytes());
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-z <>&'\"\\]/=\t\n\u{e9}\u{1F600}]{0,12}"
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("message".to_string()),
        Just("body".to_string()),
        Just("sm:r".to_string()),
        "[a-z][a-z0-9._-]{0,6}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    tree(text(), text(), element)
}

/// An element with a generated name and up to 2 attributes (each quoted with ' or ").
fn element(kids: impl Strategy<Value = Vec<Node>>) -> impl Strategy<Value = Node> {
    let attrs = prop::collection::vec((text(), prop::bool::ANY), 0..3);
    (name(), attrs, kids).prop_map(|(name, attrs, kids)| Node::Elem {
        tag: Elem {
            name,
            attrs: attrs
                .into_iter()
                .map(|(v, q)| (v, if q { '\'' } else { '"' }))
                .collect(),
        },
        kids,
    })
}

fn stanza() -> impl Strategy<Value = Node> {
    element(prop::collection::vec(node(), 0..4))
}

/// A whole stream and the frames it must produce.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Owned>)> {
    (
        prop::bool::ANY,
        prop::collection::vec((stanza(), "[ \n]{0,2}"), 0..5),
        prop::bool::ANY,
    )
        .prop_map(|(decl, stanzas, close)| {
            let header = b"<stream:stream xmlns='jabber:client' to='x&amp;y' version=\"1.0\">";
            let mut bytes = Vec::new();
            if decl {
                bytes.extend_from_slice(b"<?xml version='1.0'?>\n");
            }
            bytes.extend_from_slice(header);
            let mut frames = vec![Owned::Open(header.to_vec())];
            for (stanza, ws) in stanzas {
                bytes.extend_from_slice(ws.as_bytes());
                let mut one = Vec::new();
                write(&stanza, &mut one);
                bytes.extend_from_slice(&one);
                frames.push(Owned::Stanza(one));
            }
            if close {
                bytes.extend_from_slice(b" </stream:stream>");
                frames.push(Owned::Close);
            }
            (bytes, frames)
        })
}

/// Splits `bytes` at the given (unsorted, possibly repeated) cut points.
fn split_at_points<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&bytes[last..p]);
        last = p;
    }
    chunks.push(&bytes[last..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn valid_streams_frame_the_same_at_every_split((bytes, expected) in stream(),
                                                   cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let whole = run(1 << 16, &[&bytes]);
        prop_assert_eq!(&whole, &(expected, None));
        for split in 0..=bytes.len() {
            prop_assert_eq!(&run(1 << 16, &[&bytes[..split], &bytes[split..]]), &whole, "split {}", split);
        }
        prop_assert_eq!(&run(1 << 16, &split_at_points(&bytes, &cuts)), &whole);
        for frame in &whole.0 {
            if let Owned::Stanza(s) = frame {
                check_stanza(s);
            }
        }
    }

    #[test]
    fn valid_streams_fail_only_with_too_large_under_a_small_limit((bytes, _) in stream(),
                                                                  max in 1usize..200) {
        let (_, err) = run(max, &[&bytes]);
        prop_assert!(matches!(err, None | Some(FrameError::TooLarge)), "{:?}", err);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_any_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400),
                                        cuts in prop::collection::vec(any::<usize>(), 0..8),
                                        with_header in prop::bool::ANY,
                                        max in 1usize..300) {
        let mut data = Vec::new();
        if with_header {
            data.extend_from_slice(b"<stream:stream>");
        }
        data.extend_from_slice(&bytes);
        // The public exact check takes anything without panicking.
        let _ = rookery_proto::framer::check_namespaces(&data);
        let chunks = split_at_points(&data, &cuts);
        let (frames, err) = run(max, &chunks);
        for frame in &frames {
            if let Owned::Stanza(s) = frame {
                prop_assert!(s.len() <= max);
                check_stanza(s);
            }
        }
        // The outcome does not depend on chunking.
        prop_assert_eq!((frames, err), run(max, &[&data]));
    }

    #[test]
    fn markup_like_bytes_never_panic(text in "[<>/a-c =&#;x0-9'\"!?\\[\\]CDAT-]{0,200}") {
        let data = format!("<s>{text}");
        let (frames, _) = run(256, &[data.as_bytes()]);
        for frame in &frames {
            if let Owned::Stanza(s) = frame {
                check_stanza(s);
            }
        }
    }

    #[test]
    fn jid_parse_round_trips(s in prop_oneof![
        any::<String>(),
        "[a-zA-Z\u{c9}\u{212A}\u{130}@/. :]{0,24}",
    ]) {
        if let Ok(jid) = Jid::parse(&s) {
            let again = Jid::parse(jid.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&jid));
            prop_assert!(jid.as_str().starts_with(jid.bare_str()));
            prop_assert_eq!(jid.to_string(), jid.as_str());
            prop_assert_eq!(jid.is_bare(), jid.resource().is_none());
        }
    }
}
