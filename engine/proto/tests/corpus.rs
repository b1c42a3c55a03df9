//! Runs every file of the fuzz seed corpus (`fuzz/corpus/framer`) through the same function
//! as the fuzz target, so the corpus is exercised by `cargo test` on stable, and checks the
//! expected outcome of each seed when fed in one piece.

use std::path::PathBuf;

use rookery_proto::fuzzing::{framer_two_chunks, FUZZ_MAX_STANZA_BYTES};
use rookery_proto::{Frame, FrameError, Framer, FramerLimits};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/framer")
}

/// Frames `data[1..]` in one piece: (frames seen, error condition if any).
fn outcome(data: &[u8]) -> (usize, Option<&'static str>) {
    let mut framer = Framer::new(FramerLimits {
        max_stanza_bytes: FUZZ_MAX_STANZA_BYTES,
    });
    let data = &data[1..];
    let (mut pos, mut frames) = (0, 0);
    loop {
        let mut input = &data[pos..];
        let before = input.len();
        match framer.next_frame(&mut input) {
            Ok(None) => return (frames, None),
            Ok(Some(Frame::StreamOpen(_) | Frame::Stanza(_) | Frame::StreamClose)) => frames += 1,
            Err(e) => return (frames, Some(FrameError::condition(&e))),
        }
        pos += before - input.len();
    }
}

#[test]
fn corpus_seeds_run_and_give_the_expected_outcome() {
    let expected: &[(&str, usize, Option<&str>)] = &[
        ("01-login", 2, None),
        ("02-restart-bind", 2, None),
        ("03-chat-receipt", 2, None),
        ("04-presence-keepalive", 2, None),
        ("05-sm", 4, None),
        ("06-cdata-escapes", 2, None),
        ("07-roster-deep", 3, None),
        ("08-close", 2, None),
        ("09-comment", 1, Some("restricted-xml")),
        ("10-doctype", 0, Some("restricted-xml")),
        ("11-undeclared-entity", 1, Some("restricted-xml")),
        ("12-mismatched", 1, Some("not-well-formed")),
        ("13-bad-utf8", 1, Some("not-well-formed")),
        ("14-control-char", 1, Some("not-well-formed")),
        ("15-bad-charref", 1, Some("not-well-formed")),
        ("16-pi-in-stanza", 1, Some("restricted-xml")),
        ("17-text-at-stream-level", 1, Some("not-well-formed")),
        ("18-prefixed-dup-attrs", 1, Some("not-well-formed")),
        ("19-too-large", 1, Some("policy-violation")),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus directory exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        framer_two_chunks(&data);
        // Every split point, too: the harness must never panic whatever data[0] says.
        for split in 0..=255u8 {
            let mut shifted = data.clone();
            shifted[0] = split;
            framer_two_chunks(&shifted);
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        if let Some(&(_, frames, cond)) = expected.iter().find(|(n, _, _)| *n == name) {
            assert_eq!(outcome(&data), (frames, cond), "{name}");
            seen += 1;
        }
    }
    assert_eq!(seen, expected.len(), "every listed seed is present");
}
