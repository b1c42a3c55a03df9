//! Property: the router's output does not depend on how the input bytes are split into reads.

use proptest::prelude::*;
use rookery_router::token_password;
use rookery_testkit::{bind_iq, client_header, plain_auth, user_homed_on, Cluster, TEST_SECRET};

/// Alice logs in and, with pipelined stanzas, pings, messages Bob and herself, then closes.
fn alice_script(alice: &str, bob: &str) -> Vec<u8> {
    let mut script = String::new();
    script.push_str(&client_header());
    script.push_str(&plain_auth(alice, &token_password(TEST_SECRET, alice)));
    script.push_str(&client_header());
    script.push_str(&bind_iq("b1", Some("a")));
    script.push_str("<presence><priority>1</priority></presence> \n ");
    script.push_str("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
    script.push_str(&format!(
        "<message to='{bob}@example.com' id='m1'><body>a &amp; b</body></message>"
    ));
    script.push_str(&format!(
        "<message to='{alice}@example.com'><body><![CDATA[<x>]]></body></message>"
    ));
    // A chat to an offline user is stored now (no bounce); groupchat to a bare JID still
    // bounces, so the script keeps an error on Alice's wire.
    script.push_str("<message to='nobody@example.com' id='m2'/>");
    script.push_str("<message to='nobody@example.com' type='groupchat' id='m3'/>");
    script.push_str("</stream:stream>");
    script.into_bytes()
}

/// Runs the script cut at `cuts` on `shards` shards; returns what Alice and Bob received.
/// With 2 shards Alice lands on shard 0 but is homed on shard 1 (a hand-off), Bob on shard 0.
fn run(cuts: &[usize], shards: u16) -> (Vec<u8>, Vec<u8>) {
    let mut cluster = Cluster::new(shards);
    let alice_name = user_homed_on("alice", shards - 1, shards);
    let bob_name = user_homed_on("bob", 0, shards);
    let (bob, _) = cluster.login(0, &bob_name, Some("b"));
    cluster.send(bob, "<presence/>");
    let alice = cluster.connect(0);
    let script = alice_script(&alice_name, &bob_name);
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (script.len() + 1)).collect();
    points.sort_unstable();
    points.push(script.len());
    for end in points {
        if end > start {
            cluster.send_bytes(alice, &script[start..end], b"");
            start = end;
        }
    }
    (cluster.take_bytes(alice), cluster.take_bytes(bob))
}

#[test]
fn the_one_shot_run_does_what_the_script_says() {
    for shards in [1, 2] {
        let (alice, bob) = run(&[], shards);
        let alice = String::from_utf8(alice).expect("UTF-8");
        let bob = String::from_utf8(bob).expect("UTF-8");
        let jid = format!(
            "{}@example.com/a",
            user_homed_on("alice", shards - 1, shards)
        );
        assert!(alice.contains(&format!("<jid>{jid}</jid>")), "{alice}");
        assert!(alice.contains(&format!("<iq type='result' id='p' to='{jid}'/>")));
        assert!(alice.contains("<![CDATA[<x>]]>"));
        assert!(alice.contains("<service-unavailable "));
        assert!(
            alice.contains("id='m3'") && !alice.contains("id='m2'"),
            "{alice}"
        );
        assert!(alice.ends_with("</stream:stream>"));
        assert!(bob.contains("<body>a &amp; b</body>"), "{bob}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_output(cuts in proptest::collection::vec(0usize..2_000, 0..40)) {
        prop_assert_eq!(run(&cuts, 1), run(&[], 1));
        prop_assert_eq!(run(&cuts, 2), run(&[], 2));
    }
}

#[test]
fn every_single_split_point_gives_the_same_output() {
    for shards in [1, 2] {
        let reference = run(&[], shards);
        let len = alice_script(&user_homed_on("alice", shards - 1, shards), "bob0").len();
        for cut in 0..=len + 8 {
            assert_eq!(
                run(&[cut], shards),
                reference,
                "split at {cut} on {shards} shards"
            );
        }
    }
}
