//! Random client input after a scripted login, through a two-shard router cluster: no panic,
//! and every byte any client receives (and every stored message) is well-formed XML to a
//! strict, namespace-aware parser (see `rookery_testkit::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rookery_testkit::fuzzing::check_session(data, |doc| {
    roxmltree::Document::parse(doc).map(drop).map_err(|e| e.to_string())
}));
