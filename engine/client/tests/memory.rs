//! The client's size: the load generator holds one per simulated client (hundreds of
//! thousands), so an idle online client must stay small and, without XEP-0198, own no heap.

mod support;

use rookery_client::{Client, SmMode};
use support::*;

#[test]
fn client_is_small_and_idle_online_owns_no_heap() {
    let size = std::mem::size_of::<Client>();
    assert!(size <= 80, "Client is {size} bytes");
    let mut pair = Pair::new(Script::default(), login("secret", Some("r")), SmMode::Off);
    pair.connect();
    assert!(pair.client.is_online());
    assert_eq!(pair.client.heap_bytes(), 0);
}

#[test]
fn xep_0198_costs_one_small_block() {
    let script = Script {
        sm: true,
        mechanisms: vec!["SCRAM-SHA-256"],
        ..Script::default()
    };
    let mut pair = Pair::new(script, login("secret", Some("r")), SmMode::Enable);
    pair.connect();
    assert!(pair.client.is_online());
    let heap = pair.client.heap_bytes();
    assert!(heap > 0 && heap <= 48, "XEP-0198 block is {heap} bytes");
    eprintln!(
        "size_of Client = {} B, heap with XEP-0198 = {heap} B",
        std::mem::size_of::<Client>()
    );
}
