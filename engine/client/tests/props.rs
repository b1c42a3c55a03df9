//! Properties: any bytes, in any phase, split anywhere, give events and never a panic; a
//! login split into random chunks is the same as one read.

mod support;

use proptest::prelude::*;
use rookery_client::{SmMode, Stream};
use support::*;

fn recorded_login() -> Vec<u8> {
    let script = Script {
        mechanisms: vec!["SCRAM-SHA-256"],
        sm: true,
        ..Script::default()
    };
    let mut pair = Pair::new(script, login("secret", Some("r")), SmMode::EnableResumable);
    pair.connect();
    pair.server.transcript
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_after_any_prefix_never_panic(
        cut in 0usize..2000,
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        split in 0usize..300,
    ) {
        let transcript = recorded_login();
        let prefix = &transcript[..cut.min(transcript.len())];
        let mut input = prefix.to_vec();
        input.extend_from_slice(&noise);
        let split = (prefix.len() + split).min(input.len());
        let mut client = client(SmMode::EnableResumable);
        let mut out = Vec::new();
        client.start(DOMAIN, &mut out);
        let mut account = login("secret", Some("r"));
        for part in [&input[..split], &input[split..]] {
            client.feed(part, &mut account, &mut out, |_, s: &mut Stream<()>, _: &mut Vec<u8>| s.count_sent(1));
        }
    }

    #[test]
    fn xmlish_noise_online_never_panics(
        pieces in proptest::collection::vec(prop_oneof![
            Just("<a xmlns='urn:xmpp:sm:3' h='".to_owned()),
            Just("<r xmlns='urn:xmpp:sm:3'/>".to_owned()),
            Just("<enabled xmlns='urn:xmpp:sm:3' resume='true' id='x'/>".to_owned()),
            Just("<resumed xmlns='urn:xmpp:sm:3' h='".to_owned()),
            Just("<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>".to_owned()),
            Just("</stream:error>".to_owned()),
            Just("<message><body>".to_owned()),
            Just("</body></message>".to_owned()),
            Just("'/>".to_owned()),
            "[0-9]{1,11}",
            "[<>/a-z:=' &;]{0,12}",
        ], 0..20),
    ) {
        let transcript = recorded_login();
        let mut client = client(SmMode::EnableResumable);
        let mut out = Vec::new();
        client.start(DOMAIN, &mut out);
        let mut account = login("secret", Some("r"));
        client.feed(&transcript, &mut account, &mut out, |_, _: &mut Stream<()>, _: &mut Vec<u8>| {});
        prop_assert!(client.is_online());
        for piece in &pieces {
            client.feed(piece.as_bytes(), &mut account, &mut out, |_, s: &mut Stream<()>, _: &mut Vec<u8>| {
                s.count_sent(1);
            });
        }
    }

    #[test]
    fn random_chunks_log_in_like_one_read(cuts in proptest::collection::vec(1usize..80, 0..40)) {
        let transcript = recorded_login();
        let whole = replay(&transcript, &[], &mut login("secret", Some("r")), SmMode::EnableResumable);
        let chunked = replay(&transcript, &cuts, &mut login("secret", Some("r")), SmMode::EnableResumable);
        prop_assert_eq!(whole, chunked);
    }
}
