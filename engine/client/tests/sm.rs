//! XEP-0198 against the scripted server: enable, `<r/>` answered with the inbound count,
//! `<a h/>` reported when it advances, counters modulo 2^32, an `h` too high, resumption
//! (`<resumed/>` renumbers, `<failed/>` binds afresh), and a clean close ending it.

mod support;

use rookery_client::{Event, SmMode, SmStatus, Stream};
use support::*;

fn sm_script() -> Script {
    Script {
        sm: true,
        ..Script::default()
    }
}

fn online(sm: SmMode) -> Pair {
    let mut pair = Pair::new(sm_script(), login("secret", Some("r")), sm);
    pair.connect();
    assert!(pair.client.is_online(), "{:?}", pair.events);
    pair
}

fn status(pair: &Pair) -> SmStatus {
    pair.client.stream().sm_status().expect("XEP-0198 on")
}

#[test]
fn enable_goes_out_before_online_and_counts_both_ways() {
    let mut pair = online(SmMode::Enable);
    assert_eq!(
        pair.events[2..],
        ["Online", "SmEnabled { resumable: false }"]
    );
    let sent = String::from_utf8(pair.sent.clone()).unwrap();
    assert!(sent.ends_with("<enable xmlns='urn:xmpp:sm:3'/>"), "{sent}");
    pair.push(
        "<message from='a@example.test'><body>1</body></message><presence from='b@example.test'/>",
    );
    pair.push("<r xmlns='urn:xmpp:sm:3'/>");
    let sent = String::from_utf8(pair.sent.clone()).unwrap();
    assert!(sent.ends_with("<a xmlns='urn:xmpp:sm:3' h='2'/>"), "{sent}");
    pair.send_stanza("<presence/>");
    pair.send_stanza("<message to='a@example.test'><body>x</body></message>");
    pair.events.clear();
    let mut out = Vec::new();
    assert!(pair.client.stream_mut().request_ack(&mut out));
    pair.exchange(out);
    assert_eq!(pair.events, ["Acked { h: 2 }"]);
    assert_eq!(
        status(&pair),
        SmStatus {
            enabled: true,
            resumable: false,
            inbound: 2,
            outbound: 2,
            acked: 2
        }
    );
}

#[test]
fn stale_acks_are_ignored_and_too_high_ends_the_stream() {
    let mut pair = online(SmMode::Enable);
    pair.client.stream_mut().count_sent(3);
    pair.events.clear();
    pair.push("<a xmlns='urn:xmpp:sm:3' h='2'/><a xmlns='urn:xmpp:sm:3' h='1'/><a xmlns='urn:xmpp:sm:3' h='2'/>");
    assert_eq!(pair.events, ["Acked { h: 2 }"]);
    let before = pair.sent.len();
    pair.push("<a xmlns='urn:xmpp:sm:3' h='4'/>");
    assert_eq!(pair.events[1], "AckTooHigh { h: 4, sent: 3 }");
    let sent = String::from_utf8(pair.sent[before..].to_vec()).unwrap();
    assert!(
        sent.contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='4' send-count='3'/>"),
        "{sent}"
    );
    assert!(sent.ends_with("</stream:stream>"));
    pair.push("<a xmlns='urn:xmpp:sm:3' h='3'/>");
    assert_eq!(
        pair.events.len(),
        2,
        "nothing is read once the stream is over"
    );
}

#[test]
fn counters_wrap_modulo_2_pow_32() {
    let mut pair = online(SmMode::Enable);
    pair.client.stream_mut().count_sent(u32::MAX);
    pair.push(&format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", u32::MAX - 1));
    pair.client.stream_mut().count_sent(3); // wraps to 2
    pair.events.clear();
    pair.push("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    assert_eq!(pair.events, ["Acked { h: 1 }"], "1 is ahead of 2^32 - 2");
    pair.push("<a xmlns='urn:xmpp:sm:3' h='3'/>");
    assert_eq!(pair.events[1], "AckTooHigh { h: 3, sent: 2 }");
}

#[test]
fn sm_elements_without_enable_are_ignored() {
    let mut pair = online(SmMode::Off);
    let before = pair.sent.len();
    pair.push("<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='9'/>");
    assert_eq!(pair.sent.len(), before, "not answered");
    assert_eq!(
        pair.events,
        [
            "Authenticated",
            "Bound { jid: \"user@example.test/r\" }",
            "Online"
        ]
    );
    assert!(pair.client.stream().sm_status().is_none());
    assert!(!pair.client.stream_mut().request_ack(&mut Vec::new()));
}

#[test]
fn enable_refused_drops_the_counters() {
    let mut pair = Pair::new(Script::default(), login("secret", None), SmMode::Enable);
    let transcript = format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
         <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}<stream:features>\
         <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>\
         <iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@d/r</jid></bind></iq>\
         <failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    let (_, events) = replay(
        transcript.as_bytes(),
        &[],
        &mut pair.account,
        SmMode::Enable,
    );
    assert_eq!(events[3], "SmFailed { condition: \"unexpected-request\" }");
    pair.client = client(SmMode::Enable);
}

fn dropped_and_reconnected(resume_h: Option<u32>) -> Pair {
    let mut pair = online(SmMode::EnableResumable);
    pair.send_stanza("<presence/>");
    pair.send_stanza("<message to='a@example.test'><body>1</body></message>");
    pair.send_stanza("<message to='a@example.test'><body>2</body></message>");
    pair.push("<message from='a@example.test'><body>in</body></message>");
    assert!(status(&pair).resumable);
    // The conn dies; the server handled `resume_h` of our three stanzas.
    pair.server.reconnect();
    pair.server_resume(resume_h);
    pair.events.clear();
    pair.sent.clear();
    pair.connect();
    pair
}

trait ResumeScript {
    fn server_resume(&mut self, h: Option<u32>);
}

impl ResumeScript for Pair {
    fn server_resume(&mut self, h: Option<u32>) {
        let mut script = sm_script();
        script.resume_h = h;
        let transcript = std::mem::take(&mut self.server.transcript);
        self.server = Server::new(script);
        self.server.transcript = transcript;
        self.server.reconnect();
    }
}

#[test]
fn resumption_renumbers_from_the_servers_h() {
    let mut pair = dropped_and_reconnected(Some(1));
    let sent = String::from_utf8(pair.sent.clone()).unwrap();
    assert!(
        sent.ends_with("<resume xmlns='urn:xmpp:sm:3' previd='sm-1' h='1'/>"),
        "{sent}"
    );
    assert!(!sent.contains("<bind"), "{sent}");
    assert_eq!(pair.events, ["Authenticated", "Resumed { h: 1 }"]);
    assert!(pair.client.is_online());
    let sm = status(&pair);
    assert_eq!((sm.outbound, sm.acked, sm.inbound), (1, 1, 1));
    // The caller resends the two unhandled stanzas: counted again after h.
    pair.client.stream_mut().count_sent(2);
    assert_eq!(status(&pair).outbound, 3);
}

#[test]
fn resumption_refused_binds_a_fresh_session() {
    let pair = dropped_and_reconnected(None);
    assert_eq!(
        pair.events,
        [
            "Authenticated",
            "ResumeFailed { condition: \"item-not-found\" }",
            "Bound { jid: \"user@example.test/r\" }",
            "Online",
            "SmEnabled { resumable: true }"
        ]
    );
    assert_eq!(status(&pair).outbound, 0, "a new session counts from zero");
}

#[test]
fn resumed_with_h_beyond_what_was_sent_is_refused() {
    let pair = dropped_and_reconnected(Some(5));
    assert_eq!(
        pair.events,
        ["Authenticated", "AckTooHigh { h: 5, sent: 3 }"]
    );
}

#[test]
fn clean_close_and_forget_end_resumption() {
    let mut pair = online(SmMode::EnableResumable);
    let mut out = Vec::new();
    pair.client.close(&mut out);
    assert_eq!(out, b"</stream:stream>");
    pair.exchange(out);
    assert_eq!(pair.events.last().unwrap(), "StreamClosed");
    pair.server.reconnect();
    pair.events.clear();
    pair.connect();
    assert_eq!(pair.events[1], "Bound { jid: \"user@example.test/r\" }");

    // forget_resumption: the caller abandons the session before reconnecting.
    let mut pair = online(SmMode::EnableResumable);
    pair.client.stream_mut().forget_resumption();
    assert!(status(&pair).resumable, "not while online");
    pair.server.reconnect();
    let mut out = Vec::new();
    pair.client.start(DOMAIN, &mut out);
    pair.client.stream_mut().forget_resumption();
    assert!(pair.client.stream().sm_status().is_none());
    pair.events.clear();
    pair.exchange(out);
    assert_eq!(pair.events[1], "Bound { jid: \"user@example.test/r\" }");
}

#[test]
fn caller_data_lives_with_the_session() {
    let mut client: rookery_client::Client<Vec<u32>> =
        rookery_client::Client::new(rookery_client::Options {
            sm: SmMode::Enable,
            ..Default::default()
        });
    let mut server = Server::new(sm_script());
    let mut account = login("secret", None);
    let mut to_server = Vec::new();
    client.start(DOMAIN, &mut to_server);
    let mut acked = Vec::new();
    while !to_server.is_empty() {
        let reply = server.on_bytes(&to_server);
        to_server.clear();
        client.feed(
            &reply,
            &mut account,
            &mut to_server,
            |ev, stream: &mut Stream<Vec<u32>>, _: &mut Vec<u8>| {
                if let Event::Acked { h } = ev {
                    acked.push(h);
                }
                if let Event::Online = ev {
                    stream.sm_data_mut().unwrap().push(7);
                }
            },
        );
    }
    assert_eq!(client.stream().sm_data(), Some(&vec![7]));
}
