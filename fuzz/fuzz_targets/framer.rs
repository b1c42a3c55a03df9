//! Feeds the input to the framer in two chunks split at `data[0]`, parses every stanza with
//! `StanzaView` and `Element`, and checks that a strict, namespace-aware parser (roxmltree)
//! accepts every stanza the framer yields (see `rookery_proto::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rookery_proto::fuzzing::framer_two_chunks_with(
    data,
    |doc| roxmltree::Document::parse(doc).map(drop).map_err(|e| e.to_string())
));
