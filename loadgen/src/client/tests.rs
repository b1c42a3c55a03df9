//! Unit tests of the client state machine against canned server bytes.

use super::*;
use crate::auth::AuthSpec;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' version='1.0'>";
const PRE_AUTH: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const POST_AUTH: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>";
const POST_AUTH_SESSION: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>";
const BOUND: &str = "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
    <jid>user1@example.test/load</jid></bind></iq>";

fn auth() -> AuthSpec {
    AuthSpec::Token { secret: "s".into() }
}

fn account(auth: &AuthSpec) -> Account<'_> {
    Account {
        domain: "example.test",
        user_prefix: "user",
        number: 1,
        auth,
    }
}

/// A client plus everything it said and reported, as strings.
struct Harness {
    client: Client,
    profile: Profile,
    auth: AuthSpec,
    sent: String,
    events: Vec<String>,
}

impl Harness {
    fn started() -> Harness {
        let mut client = Client::new(
            FramerLimits {
                max_stanza_bytes: 65_536,
            },
            SmPolicy::EnableWhenOffered,
        );
        let mut out = Vec::new();
        client.start("example.test", &mut out);
        Harness {
            client,
            profile: Profile::Chat,
            auth: auth(),
            sent: String::from_utf8(out).unwrap(),
            events: Vec::new(),
        }
    }

    /// Feeds `data` in chunks of `chunk` bytes; returns what the client sent in reply.
    fn feed_chunked(&mut self, data: &str, chunk: usize) -> String {
        let mut out = Vec::new();
        let mut account = account(&self.auth);
        let events = &mut self.events;
        for piece in data.as_bytes().chunks(chunk) {
            self.client
                .on_data(piece, &mut account, self.profile, &mut out, &mut |ev| {
                    events.push(format!("{ev:?}"))
                });
        }
        let reply = String::from_utf8(out).unwrap();
        self.sent.push_str(&reply);
        reply
    }

    fn feed(&mut self, data: &str) -> String {
        self.feed_chunked(data, usize::MAX)
    }

    fn online() -> Harness {
        let mut h = Harness::started();
        h.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
        h.feed(&format!("{HEADER}{POST_AUTH}{BOUND}"));
        assert!(h.client.is_online());
        h.events.clear();
        h
    }
}

#[test]
fn logs_in_step_by_step() {
    let mut h = Harness::started();
    assert!(h
        .sent
        .starts_with("<?xml version='1.0'?><stream:stream to='example.test'"));
    let reply = h.feed(HEADER);
    assert_eq!(reply, "");
    assert_eq!(h.client.phase(), Phase::AwaitFeatures);

    let reply = h.feed(PRE_AUTH);
    // base64("\0user1\0" + token)
    let raw = format!("\0user1\0{}", crate::auth::token_password(b"s", "user1"));
    let expected = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
    assert_eq!(
        reply,
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{expected}</auth>"
        )
    );

    let reply = h.feed(SUCCESS);
    assert!(
        reply.starts_with("<?xml version='1.0'?><stream:stream to='example.test'"),
        "{reply}"
    );
    assert_eq!(h.client.phase(), Phase::AwaitHeader);

    h.feed(HEADER);
    let reply = h.feed(POST_AUTH);
    assert_eq!(
        reply,
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>load</resource></bind></iq>"
    );
    let reply = h.feed(BOUND);
    assert_eq!(reply, "<presence/>");
    assert_eq!(h.events, vec!["Online"]);
    assert!(h.client.is_online());
}

#[test]
fn same_result_when_fed_one_byte_at_a_time() {
    let script = [HEADER, PRE_AUTH, SUCCESS, HEADER, POST_AUTH, BOUND];
    let mut whole = Harness::started();
    for part in script {
        whole.feed(part);
    }
    let mut bytewise = Harness::started();
    for part in script {
        bytewise.feed_chunked(part, 1);
    }
    assert_eq!(whole.sent, bytewise.sent);
    assert_eq!(bytewise.events, vec!["Online"]);
}

#[test]
fn legacy_session_is_established_when_required() {
    let mut h = Harness::started();
    h.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
    h.feed(&format!("{HEADER}{POST_AUTH_SESSION}"));
    let reply = h.feed(BOUND);
    assert!(
        reply.starts_with("<iq type='set' id='sess1'><session"),
        "{reply}"
    );
    assert!(h.events.is_empty());
    let reply = h.feed("<iq type='result' id='sess1'/>");
    assert_eq!(reply, "<presence/>");
    assert_eq!(h.events, vec!["Online"]);
}

#[test]
fn reports_messages_with_borrowed_or_unescaped_bodies() {
    let mut h = Harness::online();
    h.feed(
        "<message from='user2@example.test/load' to='user1@example.test/load' type='chat'>\
         <body>rl r=1 s=1 q=0 i=5 a=6</body></message>\
         <message from='a@example.test/x'><body xml:lang='en'>a &amp; b</body></message>\
         <message from='a@example.test/x'><received xmlns='urn:xmpp:receipts' id='m1'/></message>\
         <message from='b@example.test/x'><body>kept</body>\
         <delay xmlns='urn:xmpp:delay' from='example.test' stamp='2024-01-01T00:00:00Z'/></message>\
         <message from='b@example.test/x'><body>x</body><delay xmlns='urn:other'/></message>",
    );
    assert_eq!(
        h.events,
        vec![
            "Message { body: \"rl r=1 s=1 q=0 i=5 a=6\", delayed: false }",
            "Message { body: \"a & b\", delayed: false }",
            "Receipt { id: \"m1\" }",
            "Message { body: \"kept\", delayed: true }",
            "Message { body: \"x\", delayed: false }",
        ]
    );
}

#[test]
fn bounced_messages_and_presence() {
    let mut h = Harness::online();
    h.feed(
        "<presence from='user2@example.test/load'/>\
         <message type='error' from='user9@example.test/load'><body>rl r=1 s=0 q=1 i=1 a=1</body>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         </error></message>",
    );
    assert_eq!(h.events, vec!["Bounced"]);
}

#[test]
fn answers_ping_and_refuses_other_iqs() {
    let mut h = Harness::online();
    let reply =
        h.feed("<iq type='get' id='p1' from='example.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(reply, "<iq type='result' id='p1' to='example.test'/>");
    let reply = h.feed(
        "<iq type='get' id='v&amp;1' from='x@example.test/r'><query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(
        reply,
        "<iq type='error' id='v&amp;1' to='x@example.test/r'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    );
    assert_eq!(h.feed("<iq type='result' id='zz'/>"), "");
    assert!(h.events.is_empty());
}

#[test]
fn auth_failure_ends_the_stream() {
    let mut h = Harness::started();
    h.feed(&format!(
        "{HEADER}{PRE_AUTH}<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
    ));
    assert_eq!(
        h.events,
        vec!["AuthFailed { condition: \"not-authorized\" }"]
    );
    assert_eq!(h.client.phase(), Phase::Done);
    assert_eq!(h.feed(POST_AUTH), "", "input after the end is ignored");
    assert_eq!(h.events.len(), 1);
}

#[test]
fn missing_plain_mechanism_is_an_auth_failure() {
    let mut h = Harness::started();
    h.feed(&format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>"
    ));
    assert_eq!(
        h.events,
        vec!["AuthFailed { condition: \"the --sasl mechanism is not offered\" }"]
    );
}

#[test]
fn bind_error_is_reported() {
    let mut h = Harness::started();
    h.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
    h.feed(&format!(
        "{HEADER}{POST_AUTH}<iq type='error' id='bind1'><error type='cancel'>\
         <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    assert_eq!(h.events, vec!["BindFailed { condition: \"not-allowed\" }"]);
}

/// See-other-host after authentication (what a cluster node sends a client homed elsewhere)
/// is a redirect carrying the host; without a host it stays a plain stream error.
#[test]
fn see_other_host_is_a_redirect() {
    let mut h = Harness::started();
    h.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
    h.feed(&format!(
        "{HEADER}<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>\
         127.0.0.1:5232</see-other-host></stream:error></stream:stream>"
    ));
    assert_eq!(h.events, vec!["Redirect { host: \"127.0.0.1:5232\" }"]);

    let mut h = Harness::online();
    h.feed(
        "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         </stream:error>",
    );
    assert_eq!(
        h.events,
        vec!["StreamError { condition: \"see-other-host\" }"]
    );
}

#[test]
fn stream_error_and_close() {
    let mut h = Harness::online();
    h.feed(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
         </stream:stream>",
    );
    assert_eq!(h.events, vec!["StreamError { condition: \"conflict\" }"]);

    let mut h = Harness::online();
    h.feed("</stream:stream>");
    assert_eq!(h.events, vec!["StreamClosed"]);
    assert_eq!(h.client.phase(), Phase::Done);
}

#[test]
fn garbage_is_a_protocol_error() {
    let mut h = Harness::started();
    h.feed(&format!(
        "{HEADER}<stream:features><!-- x --></stream:features>"
    ));
    assert_eq!(h.events.len(), 1);
    assert!(h.events[0].starts_with("ProtocolError"), "{:?}", h.events);
    assert_eq!(h.client.phase(), Phase::Done);
}

#[test]
fn close_sends_the_stream_end_once() {
    let mut h = Harness::online();
    let mut out = Vec::new();
    h.client.close(&mut out);
    h.client.close(&mut out);
    assert_eq!(out, b"</stream:stream>");
    assert_eq!(h.client.phase(), Phase::Closing);
    h.feed("<message from='a@example.test/x'><body>late</body></message></stream:stream>");
    assert_eq!(
        h.events,
        vec!["Message { body: \"late\", delayed: false }", "StreamClosed"]
    );
}

#[test]
fn client_is_small() {
    // Budget: a whole simulated client (this plus the worker's slot) under 512 bytes.
    let size = std::mem::size_of::<Client>();
    assert!(size <= 80, "Client is {size} bytes");
    let h = Harness::online();
    assert_eq!(
        h.client.heap_bytes(),
        0,
        "an idle online client holds no heap buffer"
    );
    // With XEP-0198: one block (the crate's counters and this client's ack bookkeeping),
    // 56 bytes, a 64-byte malloc chunk; the initial presence, unacknowledged while the client
    // idles, is kept inside it (see `sm`).
    let (h, _) = online_with(SmPolicy::EnableWhenOffered, Profile::Chat);
    assert_eq!(h.client.sm().map(|s| s.1), Some(0));
    let heap = h.client.heap_bytes() + h.client.sm_heap_bytes();
    assert!(heap <= 56, "XEP-0198 block and queues are {heap} bytes");
}

const POST_AUTH_SM: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <sm xmlns='urn:xmpp:sm:3'/></stream:features>";

/// A client logged in and bound with `policy` (a server that offers XEP-0198) and
/// `profile`; returns it (events cleared) and its reply to the bind result.
fn online_with(policy: SmPolicy, profile: Profile) -> (Harness, String) {
    let mut h = Harness::started();
    h.client = Client::new(
        FramerLimits {
            max_stanza_bytes: 65_536,
        },
        policy,
    );
    h.profile = profile;
    let mut out = Vec::new();
    h.client.start("example.test", &mut out);
    h.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
    h.feed(&format!("{HEADER}{POST_AUTH_SM}"));
    let reply = h.feed(BOUND);
    assert!(h.client.is_online());
    h.events.clear();
    (h, reply)
}

#[test]
fn answers_receipt_requests_and_reports_receipts() {
    let mut h = Harness::online();
    let reply = h.feed(
        "<message from='user2@example.test/load' id='rl-1-1-0-5' type='chat'>\
         <body>rl r=1 s=1 q=0 i=5 a=6</body><request xmlns='urn:xmpp:receipts'/></message>\
         <message from='user3@example.test/load'><received xmlns='urn:xmpp:receipts' id='rl-1-0-4-9'/></message>\
         <message from='user4@example.test/load'><request xmlns='urn:xmpp:receipts'/></message>",
    );
    assert_eq!(
        reply,
        "<message to='user2@example.test/load'><received xmlns='urn:xmpp:receipts' \
         id='rl-1-1-0-5'/></message>",
        "a request without an id gets no receipt"
    );
    assert_eq!(
        h.events,
        vec![
            "Message { body: \"rl r=1 s=1 q=0 i=5 a=6\", delayed: false }",
            "Receipt { id: \"rl-1-0-4-9\" }",
        ]
    );
}

#[test]
fn stream_management_is_enabled_when_offered() {
    let (mut h, reply) = online_with(SmPolicy::EnableWhenOffered, Profile::Chat);
    assert_eq!(reply, "<enable xmlns='urn:xmpp:sm:3'/><presence/>");
    assert_eq!(h.client.sm().map(|s| s.0), Some(1), "presence counted");
    h.feed("<enabled xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(h.events, vec!["SmEnabled"]);
    h.events.clear();
    // Two messages sent by the worker, each followed by <r/>.
    let mut out = Vec::new();
    h.client.on_message_sent(1_000, &mut out);
    h.client.on_message_sent(2_000, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<r xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>"
    );
    // A message and a ping arrive (2 inbound); the ping answer is our 4th stanza.
    let reply = h.feed(
        "<message from='user2@example.test/load'><body>hi</body></message>\
         <iq type='get' id='p1' from='example.test'><ping xmlns='urn:xmpp:ping'/></iq>\
         <r xmlns='urn:xmpp:sm:3'/>",
    );
    assert_eq!(
        reply,
        "<iq type='result' id='p1' to='example.test'/><a xmlns='urn:xmpp:sm:3' h='2'/>"
    );
    h.events.clear();
    assert_eq!(h.client.messages_acked(), 0);
    h.feed("<a xmlns='urn:xmpp:sm:3' h='2'/>");
    assert_eq!(h.events, vec!["SmAcked { intended_ns: 1000 }"]);
    assert_eq!(
        h.client.messages_acked(),
        1,
        "h=2: the presence and the first message"
    );
    h.feed("<a xmlns='urn:xmpp:sm:3' h='4'/>");
    assert_eq!(
        h.client.messages_acked(),
        2,
        "the ping answer is not a message"
    );
    assert_eq!(
        h.events,
        vec![
            "SmAcked { intended_ns: 1000 }",
            "SmAcked { intended_ns: 2000 }"
        ]
    );
    assert_eq!(h.client.sm(), Some((4, 0)));
}

#[test]
fn stream_management_off_or_refused() {
    let (mut h, reply) = online_with(SmPolicy::Off, Profile::Chat);
    assert_eq!(reply, "<presence/>");
    assert!(h.client.sm().is_none());
    let mut out = Vec::new();
    h.client.on_message_sent(1, &mut out);
    assert!(out.is_empty(), "no <r/> without stream management");
    assert_eq!(
        h.feed("<r xmlns='urn:xmpp:sm:3'/>"),
        "",
        "not ours to answer"
    );

    let (mut h, _) = online_with(SmPolicy::EnableWhenOffered, Profile::Chat);
    h.feed("<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    assert_eq!(h.events, vec!["SmFailed"]);
    assert!(h.client.sm().is_none());

    // Offered nowhere (rookery today): nothing changes on the wire.
    let mut plain = Harness::started();
    plain.feed(&format!("{HEADER}{PRE_AUTH}{SUCCESS}"));
    let reply = plain.feed(&format!("{HEADER}{POST_AUTH}{BOUND}"));
    assert!(
        reply.ends_with("</iq><presence/>") && !reply.contains("enable"),
        "{reply}"
    );
}

mod fanout;
