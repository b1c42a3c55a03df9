//! Feeds the input to the framer in two chunks split at `data[0]` and parses every stanza
//! with `StanzaView` and `Element` (see `rookery_proto::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rookery_proto::fuzzing::framer_two_chunks(data));
