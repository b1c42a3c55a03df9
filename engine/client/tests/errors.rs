//! Stream errors (condition, text, see-other-host), the server's close, protocol errors, and
//! the transport hook with a toy layer.

mod support;

use rookery_client::layer::{Layer, LayerError, Layered};
use rookery_client::{split_host_port, Event, Phase, SmMode, Stream};
use support::*;

fn online() -> Pair {
    let mut pair = Pair::new(Script::default(), login("secret", Some("r")), SmMode::Off);
    pair.connect();
    pair.events.clear();
    pair
}

#[test]
fn see_other_host_carries_the_host() {
    let mut pair = online();
    let mut host = None;
    let mut out = Vec::new();
    pair.client.feed(
        b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>\
          [2001:db8::7]:5223</see-other-host><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>\
          moved &amp; gone</text></stream:error></stream:stream>",
        &mut pair.account,
        &mut out,
        |ev, _: &mut Stream<()>, _: &mut Vec<u8>| {
            let Event::StreamError(error) = ev else {
                panic!("{ev:?}")
            };
            assert_eq!(error.condition, "see-other-host");
            assert_eq!(error.text.as_deref(), Some("moved & gone"));
            let other = error.other_host.unwrap();
            host = split_host_port(&other).map(|(h, p)| (h.to_owned(), p));
        },
    );
    assert_eq!(host, Some(("2001:db8::7".to_owned(), Some(5223))));
    assert_eq!(pair.client.phase(), Phase::Done);
}

#[test]
fn stream_errors_report_their_condition_in_any_phase() {
    let error = "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                 <app xmlns='urn:example'/></stream:error>";
    let mut pair = online();
    pair.push(error);
    assert_eq!(
        pair.events,
        ["StreamError(StreamError { condition: \"conflict\", text: None, other_host: None })"]
    );
    // Before the features too.
    let (_, events) = replay(
        format!("{HEADER}{error}").as_bytes(),
        &[],
        &mut login("secret", None),
        SmMode::Off,
    );
    assert_eq!(events.len(), 1);
    assert!(events[0].starts_with("StreamError(StreamError { condition: \"conflict\""));
}

#[test]
fn server_close_and_protocol_errors_end_the_stream() {
    let mut pair = online();
    pair.push("<presence from='a@example.test'/></stream:stream>");
    assert_eq!(
        pair.events,
        ["Stanza(<presence from='a@example.test'/>)", "StreamClosed"]
    );
    for bad in [
        "<message><body></message>",
        "<!-- no -->",
        "text at stream level",
    ] {
        let mut pair = online();
        pair.push(bad);
        assert_eq!(pair.events.len(), 1, "{bad}");
        assert!(
            pair.events[0].starts_with("ProtocolError"),
            "{bad}: {:?}",
            pair.events
        );
        assert_eq!(pair.client.phase(), Phase::Done);
    }
}

/// A toy layer: every byte XORed with 0x20 on the wire.
struct Xor;

impl Layer for Xor {
    fn decode(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        _: &mut Vec<u8>,
    ) -> Result<(), LayerError> {
        stream.extend(wire.iter().map(|b| b ^ 0x20));
        Ok(())
    }

    fn encode(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), LayerError> {
        wire.extend(stream.iter().map(|b| b ^ 0x20));
        Ok(())
    }
}

#[test]
fn a_layer_carries_the_whole_login() {
    let mut server = Server::new(Script::default());
    let mut layered = Layered::new(client(SmMode::Off), Xor);
    let mut account = login("secret", Some("r"));
    let mut wire = Vec::new();
    layered.start(DOMAIN, &mut wire).unwrap();
    let mut events = Vec::new();
    while !wire.is_empty() {
        let plain: Vec<u8> = wire.iter().map(|b| b ^ 0x20).collect();
        let reply: Vec<u8> = server.on_bytes(&plain).iter().map(|b| b ^ 0x20).collect();
        wire.clear();
        layered
            .feed(&reply, &mut account, &mut wire, |ev, _, _| {
                events.push(render(&ev))
            })
            .unwrap();
    }
    assert_eq!(
        events,
        [
            "Authenticated",
            "Bound { jid: \"user@example.test/r\" }",
            "Online"
        ]
    );
    let mut wire = Vec::new();
    layered.send(b"<presence/>", &mut wire).unwrap();
    assert_eq!(
        wire,
        b"<presence/>".iter().map(|b| b ^ 0x20).collect::<Vec<u8>>()
    );
}
