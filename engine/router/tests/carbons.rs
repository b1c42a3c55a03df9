//! XEP-0280 Message Carbons through the router harness: enabling, received and sent copies,
//! what is never copied, bare-JID delivery, XEP-0198 counting of copies, and a sender on
//! another shard.

mod common;

use common::{acks, enable, R};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

const ENABLE: &str = "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
const DISABLE: &str = "<iq type='set' id='c2'><disable xmlns='urn:xmpp:carbons:2'/></iq>";

fn enable_carbons(cluster: &mut Cluster, client: ClientId, jid: &str) {
    cluster.send(client, ENABLE);
    assert_eq!(
        cluster.take_output(client),
        format!("<iq type='result' id='c1' to='{jid}'/>")
    );
}

/// The copy `owner_full` gets of `inner` (as its recipient or sender saw it).
fn carbon(direction: &str, owner_full: &str, inner: &str) -> String {
    let bare = &owner_full[..owner_full.find('/').expect("a full JID")];
    let inner = inner.replacen("<message ", "<message xmlns='jabber:client' ", 1);
    format!(
        "<message from='{bare}' to='{owner_full}' type='chat'><{direction} \
         xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>{inner}\
         </forwarded></{direction}></message>"
    )
}

struct Four {
    cluster: Cluster,
    /// alice's sessions: a and b enable carbons, c does not.
    a: (ClientId, String),
    b: (ClientId, String),
    c: (ClientId, String),
    bob: (ClientId, String),
}

fn four(shards: u16, bob_shard: u16) -> Four {
    let mut cluster = Cluster::new(shards);
    let alice = user_homed_on("alice", 0, shards);
    let bob = user_homed_on("bob", bob_shard, shards);
    let a = cluster.login(0, &alice, Some("a"));
    let b = cluster.login(0, &alice, Some("b"));
    let c = cluster.login(0, &alice, Some("c"));
    let bob = cluster.login(bob_shard, &bob, Some("x"));
    enable_carbons(&mut cluster, a.0, &a.1);
    enable_carbons(&mut cluster, b.0, &b.1);
    Four {
        cluster,
        a,
        b,
        c,
        bob,
    }
}

#[test]
fn disco_advertises_carbons() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<iq type='get' id='d' to='example.com'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.contains("<feature var='urn:xmpp:carbons:2'/>"), "{out}");
}

#[test]
fn a_get_is_a_bad_request() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<iq type='get' id='g'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.starts_with("<iq type='error' id='g'"), "{out}");
    assert!(out.contains("<bad-request "), "{out}");
}

#[test]
fn received_and_sent_chats_are_copied_to_the_other_enabled_sessions() {
    let Four {
        mut cluster,
        a,
        b,
        c,
        bob,
    } = four(1, 0);
    let to_a = format!(
        "<message to='{}' type='chat' id='m1'><body>hi</body></message>",
        a.1
    );
    cluster.send(bob.0, &to_a);
    let delivered = format!(
        "<message to='{}' type='chat' id='m1' from='{}'><body>hi</body></message>",
        a.1, bob.1
    );
    assert_eq!(cluster.take_output(a.0), delivered);
    assert_eq!(
        cluster.take_output(b.0),
        carbon("received", &b.1, &delivered)
    );
    assert_eq!(cluster.take_output(c.0), "", "c did not enable carbons");

    let answer = format!(
        "<message to='{}' type='chat' id='m2'><body>hello</body></message>",
        bob.1
    );
    cluster.send(a.0, &answer);
    let sent = format!(
        "<message to='{}' type='chat' id='m2' from='{}'><body>hello</body></message>",
        bob.1, a.1
    );
    assert_eq!(cluster.take_output(bob.0), sent);
    assert_eq!(cluster.take_output(b.0), carbon("sent", &b.1, &sent));
    assert_eq!(cluster.take_output(a.0), "", "no copy to the sender itself");
    assert_eq!(cluster.take_output(c.0), "");
    assert_eq!(cluster.router(0).stats().carbons_out, 2);

    // A resend of m1 is filtered as a duplicate: neither written nor copied again.
    cluster.send(bob.0, &to_a);
    assert_eq!(cluster.take_output(a.0), "");
    assert_eq!(cluster.take_output(b.0), "");
    assert_eq!(cluster.router(0).stats().carbons_out, 2);

    // Disabled: nothing more.
    cluster.send(b.0, DISABLE);
    assert!(cluster
        .take_output(b.0)
        .starts_with("<iq type='result' id='c2'"));
    cluster.send(bob.0, &to_a.replace("m1", "m3"));
    assert_eq!(cluster.take_output(a.0), delivered.replace("m1", "m3"));
    assert_eq!(cluster.take_output(b.0), "");
}

#[test]
fn a_sender_on_another_shard_is_copied_on_the_home_shard() {
    let Four {
        mut cluster,
        a,
        b,
        bob,
        ..
    } = four(2, 1);
    cluster.send(
        bob.0,
        &format!(
            "<message to='{}' type='chat' id='x1'><body>far</body></message>",
            a.1
        ),
    );
    let delivered = format!(
        "<message to='{}' type='chat' id='x1' from='{}'><body>far</body></message>",
        a.1, bob.1
    );
    assert_eq!(cluster.take_output(a.0), delivered);
    assert_eq!(
        cluster.take_output(b.0),
        carbon("received", &b.1, &delivered)
    );
}

#[test]
fn private_no_copy_and_other_types_are_not_copied() {
    let Four {
        mut cluster,
        a,
        b,
        bob,
        ..
    } = four(1, 0);
    let never = [
        "<message to='{to}' type='chat'><body>p</body><private xmlns='urn:xmpp:carbons:2'/></message>",
        "<message to='{to}' type='chat'><body>n</body><no-copy xmlns='urn:xmpp:hints'/></message>",
        "<message to='{to}' type='headline'><body>h</body></message>",
        "<message to='{to}'><subject>no body</subject></message>",
        "<message to='{to}' type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>",
    ];
    for stanza in never {
        cluster.send(bob.0, &stanza.replace("{to}", &a.1));
        assert!(!cluster.take_output(a.0).is_empty(), "{stanza} delivered");
        assert_eq!(cluster.take_output(b.0), "", "{stanza} not copied");
        cluster.send(a.0, &stanza.replace("{to}", &bob.1));
        assert!(!cluster.take_output(bob.0).is_empty(), "{stanza} delivered");
        assert_eq!(cluster.take_output(b.0), "", "{stanza} not copied");
    }
    // A normal message with a body is.
    cluster.send(
        bob.0,
        &format!("<message to='{}'><body>n</body></message>", a.1),
    );
    assert!(cluster
        .take_output(b.0)
        .contains("<received xmlns='urn:xmpp:carbons:2'>"));
}

#[test]
fn a_bare_jid_message_is_copied_only_to_sessions_that_did_not_get_it() {
    let Four {
        mut cluster,
        a,
        b,
        c,
        bob,
    } = four(1, 0);
    for client in [a.0, b.0, c.0] {
        cluster.initial_presence(client);
    }
    for client in [a.0, b.0, c.0] {
        cluster.take_output(client);
    }
    let bare = &a.1[..a.1.find('/').expect("full")];
    cluster.send(
        bob.0,
        &format!("<message to='{bare}' type='chat' id='b1'><body>all</body></message>"),
    );
    let delivered = format!(
        "<message to='{bare}' type='chat' id='b1' from='{}'><body>all</body></message>",
        bob.1
    );
    for client in [a.0, b.0, c.0] {
        assert_eq!(cluster.take_output(client), delivered, "everyone got it");
    }
    assert_eq!(cluster.router(0).stats().carbons_out, 0);

    // b goes to a negative priority: it no longer gets bare-JID messages, but a copy.
    cluster.send(b.0, "<presence><priority>-1</priority></presence>");
    for client in [a.0, b.0, c.0] {
        cluster.take_output(client);
    }
    cluster.send(
        bob.0,
        &format!("<message to='{bare}' type='chat' id='b2'><body>two</body></message>"),
    );
    let delivered = delivered.replace("b1", "b2").replace(">all<", ">two<");
    assert_eq!(cluster.take_output(a.0), delivered);
    assert_eq!(cluster.take_output(c.0), delivered);
    assert_eq!(
        cluster.take_output(b.0),
        carbon("received", &b.1, &delivered)
    );
}

#[test]
fn copies_are_counted_by_stream_management() {
    let Four {
        mut cluster,
        a,
        b,
        bob,
        ..
    } = four(1, 0);
    enable(&mut cluster, b.0, false);
    cluster.send(
        bob.0,
        &format!("<message to='{}' type='chat'><body>1</body></message>", a.1),
    );
    cluster.send(
        a.0,
        &format!(
            "<message to='{}' type='chat'><body>2</body></message>",
            bob.1
        ),
    );
    let out = cluster.take_output(b.0);
    assert_eq!(
        out.matches("xmlns='urn:xmpp:carbons:2'").count(),
        2,
        "{out}"
    );
    // b acknowledges both copies: the server accepts h=2 (an h beyond what it sent is an
    // error, RFC: XEP-0198 4) and asks nothing more.
    cluster.send(b.0, &common::ack(2));
    cluster.send(b.0, R);
    assert_eq!(acks(&cluster.take_output(b.0)), [0]);
    assert!(!cluster.is_closed(b.0));
}

#[test]
fn a_message_to_ones_own_other_resource_is_not_copied() {
    let Four {
        mut cluster,
        a,
        b,
        c,
        ..
    } = four(1, 0);
    cluster.send(
        a.0,
        &format!(
            "<message to='{}' type='chat'><body>self</body></message>",
            c.1
        ),
    );
    assert!(cluster.take_output(c.0).contains(">self<"));
    assert_eq!(cluster.take_output(b.0), "");
    assert_eq!(cluster.take_output(a.0), "");
}
