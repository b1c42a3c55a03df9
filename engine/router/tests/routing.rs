//! Routing between sessions (RFC 6121 section 8), resource conflicts and the hand-off to the
//! home shard, through the two-router harness.

mod common;

use common::assert_service_unavailable;
use rookery_router::{token_password, StanzaType};
use rookery_testkit::{
    bind_iq, client_header, plain_auth, user_homed_on, ClientId, Cluster, TEST_SECRET,
};

fn available(cluster: &mut Cluster, client: ClientId, priority: i8) {
    cluster.send(
        client,
        &format!("<presence><priority>{priority}</priority></presence>"),
    );
    // The user's other available resources' presence may come back (RFC 6121 4.2.2);
    // nothing else does.
    let out = cluster.take_output(client);
    assert!(
        out.split("</presence>")
            .all(|p| p.is_empty() || p.starts_with("<presence")),
        "initial presence gets only presence back: {out}"
    );
}

#[test]
fn message_between_users_of_one_shard() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 0, 2));
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    let (b, b_jid) = cluster.login(0, &bob, Some("b"));
    cluster.send(
        a,
        &format!("<message to='{b_jid}' type='chat' id='m1'><body>hi</body></message>"),
    );
    assert_eq!(
        cluster.take_output(b),
        format!(
            "<message to='{b_jid}' type='chat' id='m1' from='{a_jid}'><body>hi</body></message>"
        )
    );
    assert_eq!(cluster.take_output(a), "");
    assert_eq!(cluster.router(0).stats().mail_out, 0);
}

#[test]
fn message_across_shards_goes_as_one_mail() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    let (b, b_jid) = cluster.login(1, &bob, Some("b"));
    cluster.send(
        a,
        &format!("<message to='{b_jid}' type='chat'><body>hop</body></message>"),
    );
    assert_eq!(
        cluster.take_output(b),
        format!("<message to='{b_jid}' type='chat' from='{a_jid}'><body>hop</body></message>")
    );
    assert_eq!(cluster.router(0).stats().mail_out, 1);
    assert_eq!(cluster.router(1).stats().mail_in, 1);
}

#[test]
fn from_is_always_overwritten() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    let (b, _) = cluster.login(0, "bob", Some("b"));
    cluster.send(
        a,
        "<message from='mallory@example.com/x' to='bob@example.com/b'><body/></message>",
    );
    let out = cluster.take_output(b);
    assert!(out.contains(&format!("from='{a_jid}'")), "{out}");
    assert!(!out.contains("mallory"));
}

#[test]
fn receipts_arrive_byte_identical_except_from() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    let (b, b_jid) = cluster.login(1, &bob, Some("b"));
    let request = format!(
        "<message to=\"{b_jid}\" id='r&amp;1'  type='chat'>\n  <body>x &lt; y</body>\
         <request xmlns='urn:xmpp:receipts'/><thread>t</thread></message>"
    );
    cluster.send(a, &request);
    let expected = request.replace("type='chat'>", &format!("type='chat' from='{a_jid}'>"));
    assert_eq!(cluster.take_bytes(b), expected.as_bytes());

    let receipt = format!(
        "<message to='{a_jid}' from='{a_jid}' id='ack1'><received xmlns='urn:xmpp:receipts' id='r&amp;1'/></message>"
    );
    cluster.send(b, &receipt);
    let got = String::from_utf8(cluster.take_bytes(a)).expect("UTF-8");
    // The stamp may move `from` within the start tag; every other byte is the client's.
    assert!(got.contains(&format!(" from='{b_jid}'")), "{got}");
    assert_eq!(
        got.replace(&format!(" from='{b_jid}'"), ""),
        receipt.replace(&format!(" from='{a_jid}'"), "")
    );
}

#[test]
fn message_to_an_offline_user_is_stored_not_bounced() {
    // Was `message_to_an_offline_user_bounces`: store-and-forward replaced the bounce.
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<message to='nobody@example.com' id='m9'><body>?</body></message>",
    );
    assert_eq!(cluster.take_output(a), "");
    assert_eq!(cluster.router(0).store().queue_len("nobody@example.com"), 1);
}

#[test]
fn bounces_cross_shards_back_to_the_sender() {
    let mut cluster = Cluster::new(2);
    let alice = user_homed_on("alice", 0, 2);
    let nobody = user_homed_on("nobody", 1, 2);
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    // Groupchat to an unbound full JID bounces (a chat would be stored now).
    cluster.send(
        a,
        &format!("<message to='{nobody}@example.com/x' type='groupchat' id='m2'><body/></message>"),
    );
    assert_service_unavailable(
        &cluster.take_output(a),
        "message",
        "m2",
        &format!("{nobody}@example.com/x"),
        &a_jid,
    );
    assert_eq!(
        cluster.router(1).stats().mail_out,
        1,
        "the bounce is mailed back"
    );
}

#[test]
fn errors_and_headlines_never_bounce() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(a, "<message to='nobody@example.com' type='error' id='e'/>");
    cluster.send(
        a,
        "<message to='nobody@example.com' type='headline' id='h'/>",
    );
    cluster.send(a, "<presence to='nobody@example.com'/>");
    cluster.send(a, "<iq to='nobody@example.com/x' type='result' id='r'/>");
    assert_eq!(cluster.take_output(a), "");
}

#[test]
fn bare_jid_delivery_follows_availability_and_priority() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    let (b1, _) = cluster.login(0, "bob", Some("one"));
    let (b2, _) = cluster.login(0, "bob", Some("two"));
    let (b3, _) = cluster.login(0, "bob", Some("three"));
    let (b4, _) = cluster.login(0, "bob", Some("four"));
    // Bound but no presence yet: the bare JID has no available resource, so the message is
    // stored (it used to bounce) and goes to the first resource that becomes available.
    cluster.send(a, "<message to='bob@example.com' id='x1'><body/></message>");
    assert_eq!(cluster.take_output(a), "");
    cluster.send(b1, "<presence><priority>5</priority></presence>");
    let flushed = cluster.take_output(b1);
    assert!(flushed.contains("id='x1'"), "{flushed}");
    assert!(
        flushed.contains("<delay xmlns='urn:xmpp:delay'"),
        "{flushed}"
    );
    assert_eq!(cluster.router(0).store().queue_len("bob@example.com"), 0);
    available(&mut cluster, b2, 0);
    available(&mut cluster, b3, -1);
    cluster.send(
        a,
        "<message to='bob@example.com' type='chat' id='x2'><body/></message>",
    );
    assert!(cluster.take_output(b1).contains("id='x2'"));
    assert!(cluster.take_output(b2).contains("id='x2'"));
    assert_eq!(
        cluster.take_output(b3),
        "",
        "negative priority gets no bare messages"
    );
    assert_eq!(cluster.take_output(b4), "", "not available");
    assert_eq!(cluster.take_output(a), "");

    cluster.send(b1, "<presence type='unavailable'/>");
    cluster.send(a, "<message to='bob@example.com' id='x3'><body/></message>");
    assert_eq!(cluster.take_output(b1), "");
    assert!(cluster.take_output(b2).contains("id='x3'"));
    // A full JID reaches its resource whatever its presence.
    cluster.send(
        a,
        "<message to='bob@example.com/four' id='x4'><body/></message>",
    );
    assert!(cluster.take_output(b4).contains("id='x4'"));
    // An unknown full JID falls back to the bare JID for chat.
    cluster.send(
        a,
        "<message to='bob@example.com/gone' type='chat' id='x5'><body/></message>",
    );
    assert!(cluster.take_output(b2).contains("id='x5'"));
    // Groupchat to an unknown full JID bounces.
    cluster.send(
        a,
        "<message to='bob@example.com/gone' type='groupchat' id='x6'><body/></message>",
    );
    assert_service_unavailable(
        &cluster.take_output(a),
        "message",
        "x6",
        "bob@example.com/gone",
        &a_jid,
    );
}

#[test]
fn directed_presence_goes_to_available_resources_or_nowhere() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    let (b1, _) = cluster.login(0, "bob", Some("one"));
    let (b2, _) = cluster.login(0, "bob", Some("two"));
    available(&mut cluster, b1, -5);
    cluster.send(a, "<presence to='bob@example.com'/>");
    assert_eq!(
        cluster.take_output(b1),
        format!("<presence to='bob@example.com' from='{a_jid}'/>")
    );
    assert_eq!(cluster.take_output(b2), "");
    cluster.send(a, "<presence to='bob@example.com/two'/>");
    assert!(cluster.take_output(b2).contains("<presence"));
    cluster.send(a, "<presence to='bob@example.com/none'/>");
    assert_eq!(cluster.take_output(a), "");
}

#[test]
fn iq_routing_to_full_and_bare_jids() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    let (b, b_jid) = cluster.login(1, &bob, Some("b"));
    cluster.send(
        a,
        &format!("<iq to='{b_jid}' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"),
    );
    assert!(cluster.take_output(b).contains(&format!("from='{a_jid}'")));
    cluster.send(b, &format!("<iq to='{a_jid}' type='result' id='v1'/>"));
    assert_eq!(
        cluster.take_output(a),
        format!("<iq to='{a_jid}' type='result' id='v1' from='{b_jid}'/>")
    );
    let bare = format!("{bob}@example.com");
    cluster.send(
        a,
        &format!("<iq to='{bare}' type='get' id='v2'><query xmlns='jabber:iq:version'/></iq>"),
    );
    assert_service_unavailable(&cluster.take_output(a), "iq", "v2", &bare, &a_jid);
    assert_eq!(cluster.take_output(b), "");
}

#[test]
fn a_second_bind_of_the_same_full_jid_closes_the_old_session() {
    let mut cluster = Cluster::new(2);
    let alice = user_homed_on("alice", 1, 2);
    let (old, jid) = cluster.login(1, &alice, Some("phone"));
    let (new, jid2) = cluster.login(0, &alice, Some("phone"));
    assert_eq!(jid, jid2);
    let out = cluster.take_output(old);
    assert!(out.ends_with(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
    ));
    assert!(cluster.is_closed(old));
    assert!(!cluster.is_closed(new));
    assert_eq!(cluster.router(1).stats().sessions, 1);
    let (bob, _) = cluster.login(1, &user_homed_on("bob", 1, 2), Some("b"));
    cluster.send(
        bob,
        &format!("<message to='{jid}'><body>new</body></message>"),
    );
    assert!(cluster.take_output(new).contains("<body>new</body>"));
}

#[test]
fn bind_on_the_wrong_shard_hands_off_with_pipelined_bytes() {
    let mut cluster = Cluster::new(2);
    let alice = user_homed_on("alice", 1, 2);
    let bob = user_homed_on("bob", 1, 2);
    let (b, b_jid) = cluster.login(1, &bob, Some("b"));
    let a = cluster.connect(0);
    cluster.send(a, &client_header());
    cluster.send(a, &plain_auth(&alice, &token_password(TEST_SECRET, &alice)));
    cluster.send(a, &client_header());
    cluster.take_output(a);
    // Bind, then a message in the same read (travels as `pending`), then a message the server
    // had not read yet (travels as the leftover), split mid-stanza.
    let now = format!(
        "{}<message to='{b_jid}' id='p1'><body>1</body></message><mess",
        bind_iq("b1", Some("a"))
    );
    let unread = format!("age to='{b_jid}' id='p2'><body>2</body></message>");
    cluster.send_bytes(a, now.as_bytes(), unread.as_bytes());
    assert_eq!(cluster.shard_of(a), 1);
    assert_eq!(
        cluster.take_output(a),
        format!(
            "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{alice}@example.com/a</jid></bind></iq>"
        )
    );
    let out = cluster.take_output(b);
    assert!(out.contains("id='p1'") && out.contains("id='p2'"), "{out}");
    assert!(out.find("id='p1'") < out.find("id='p2'"), "order kept");
    let (s0, s1) = (cluster.router(0).stats(), cluster.router(1).stats());
    assert_eq!((s0.handoffs_out, s1.handoffs_in), (1, 1));
    assert_eq!((s0.conns, s1.sessions), (0, 2));
}

#[test]
fn a_session_ends_when_its_conn_closes() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    let (b, _) = cluster.login(0, "bob", Some("b"));
    cluster.disconnect(b);
    assert_eq!(cluster.router(0).stats().sessions, 1);
    // An iq to the gone resource bounces; a message to it is stored (it used to bounce).
    cluster.send(
        a,
        "<iq to='bob@example.com/b' type='get' id='z'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_service_unavailable(
        &cluster.take_output(a),
        "iq",
        "z",
        "bob@example.com/b",
        &a_jid,
    );
    cluster.send(
        a,
        "<message to='bob@example.com/b' id='z2'><body/></message>",
    );
    assert_eq!(cluster.take_output(a), "");
    assert_eq!(cluster.router(0).store().queue_len("bob@example.com"), 1);
}

#[test]
fn stanza_types_cross_shards_with_the_mail() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, b_jid) = cluster.login(1, &user_homed_on("bob", 1, 2), Some("b"));
    cluster.send(b, "<presence/>");
    cluster.send(
        a,
        &format!(
            "<message to='{}' type='headline'><body/></message>",
            b_jid.split('/').next().unwrap_or("")
        ),
    );
    assert!(cluster.take_output(b).contains("type='headline'"));
    assert_eq!(
        StanzaType::classify(rookery_proto::StanzaKind::Message, Some("headline")),
        StanzaType::Headline
    );
}

#[test]
fn a_generated_resource_is_bound_on_the_home_shard() {
    let mut cluster = Cluster::new(2);
    let alice = user_homed_on("alice", 1, 2);
    let (a, jid) = cluster.login(0, &alice, None);
    assert!(jid.starts_with(&format!("{alice}@example.com/rk")), "{jid}");
    assert_eq!(cluster.shard_of(a), 1);
    // The old shard's timer entry for the moved conn must not fire there.
    cluster.advance(20_000);
    assert!(!cluster.is_closed(a));
    assert_eq!(cluster.router(0).next_deadline_ms(), None);
}
