//! Properties of the server layer: any bytes give a result, never a panic; a masked message
//! stream decodes the same whatever the reads' sizes.

use proptest::prelude::*;
use rookery_ws::frame::{self, Opcode};
use rookery_ws::ServerLayer;

proptest! {
    #[test]
    fn any_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut layer = ServerLayer::new(256);
        let (mut stream, mut reply) = (Vec::new(), Vec::new());
        for chunk in &chunks {
            let _ = layer.open(chunk, &mut stream, &mut reply);
            let _ = layer.seal(chunk, &mut reply);
        }
    }

    #[test]
    fn splits_do_not_change_the_stream(
        texts in prop::collection::vec("[ <>a-z/'=]{0,40}", 1..8),
        split in 1usize..50,
        key in any::<[u8; 4]>(),
    ) {
        let mut wire = Vec::new();
        for text in &texts {
            frame::write_frame(&mut wire, Opcode::Text, &[text.as_bytes()], Some(key));
        }
        let decode = |step: usize| {
            let mut layer = ServerLayer::new(1024);
            let (mut stream, mut reply) = (Vec::new(), Vec::new());
            for chunk in wire.chunks(step) {
                layer.open(chunk, &mut stream, &mut reply).unwrap();
            }
            stream
        };
        prop_assert_eq!(decode(wire.len()), decode(split));
    }
}
