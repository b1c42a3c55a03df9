//! Stanzas the server answers itself (iq ping, disco, roster, errors), stream-level rules of a
//! bound session, shutdown, stats and memory, through the cluster harness.

mod common;

use common::{assert_service_unavailable, STANZA_ERRORS};
use rookery_testkit::{user_homed_on, Cluster};

#[test]
fn ping_disco_and_roster_are_answered_by_the_server() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(
        cluster.take_output(a),
        format!("<iq type='result' id='p1' from='example.com' to='{a_jid}'/>")
    );
    cluster.send(
        a,
        "<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.starts_with(&format!("<iq type='result' id='d1' to='{a_jid}'><query xmlns='http://jabber.org/protocol/disco#info'>")));
    for needle in [
        "<identity category='server' type='im'",
        "<feature var='urn:xmpp:ping'/>",
        "<feature var='jabber:iq:roster'/>",
        "<feature var='http://jabber.org/protocol/disco#items'/>",
    ] {
        assert!(out.contains(needle), "{needle} missing in {out}");
    }
    cluster.send(a, "<iq type='get' id='d2' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    // The domain's services: the group service (the upload service only when configured).
    assert!(cluster.take_output(a).contains(
        "<query xmlns='http://jabber.org/protocol/disco#items'>\
         <item jid='groups.example.com'/></query></iq>"
    ));
    cluster.send(
        a,
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(
        cluster.take_output(a),
        format!("<iq type='result' id='r1' to='{a_jid}'><query xmlns='jabber:iq:roster'/></iq>")
    );
    cluster.send(
        a,
        "<iq type='get' id='r2' to='alice@example.com'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(cluster
        .take_output(a)
        .contains("<query xmlns='jabber:iq:roster'/>"));
}

#[test]
fn unknown_requests_and_messages_to_the_server_get_errors() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<iq type='get' id='q1' to='example.com'><vCard xmlns='vcard-temp'/></iq>",
    );
    assert_service_unavailable(&cluster.take_output(a), "iq", "q1", "example.com", &a_jid);
    cluster.send(a, "<message to='example.com' id='q2'><body/></message>");
    assert_service_unavailable(
        &cluster.take_output(a),
        "message",
        "q2",
        "example.com",
        &a_jid,
    );
    cluster.send(a, "<iq type='result' id='q3' to='example.com'/>");
    assert_eq!(cluster.take_output(a), "");
    cluster.send(a, "<iq id='q4'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(cluster.take_output(a).contains("<bad-request "));
}

#[test]
fn other_domains_are_remote_server_not_found() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    cluster.send(
        a,
        "<message to='bob@elsewhere.org' id='f1'><body/></message>",
    );
    assert_eq!(
        cluster.take_output(a),
        format!(
            "<message type='error' id='f1' from='bob@elsewhere.org' to='{a_jid}'><error type='cancel'>\
             <remote-server-not-found xmlns='{STANZA_ERRORS}'/></error></message>"
        )
    );
    cluster.send(a, "<message to='@@bad' id='f2'><body/></message>");
    assert!(cluster.take_output(a).contains("<jid-malformed "));
}

#[test]
fn shutdown_sends_system_shutdown_to_every_stream() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, _) = cluster.login(1, &user_homed_on("bob", 1, 2), Some("b"));
    let c = cluster.connect(0);
    cluster.shutdown();
    for client in [a, b] {
        assert_eq!(
            cluster.take_output(client),
            "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             </stream:error></stream:stream>"
        );
        assert!(cluster.is_closed(client));
    }
    let out = cluster.take_output(c);
    assert!(
        out.starts_with("<?xml"),
        "a conn without header gets ours first"
    );
    assert!(out.contains("<system-shutdown "));
    assert_eq!(
        cluster.router(0).stats().conns + cluster.router(1).stats().conns,
        0
    );
}

#[test]
fn non_stanza_elements_after_bind_are_unsupported() {
    // `<enable xmlns='urn:xmpp:sm:3'/>` was the example here until XEP-0198 was supported;
    // any other first-level element still closes the stream.
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(a, "<query xmlns='urn:example:unknown'/>");
    assert!(cluster.take_output(a).contains("<unsupported-stanza-type "));
    assert!(cluster.is_closed(a));
}

#[test]
fn stats_count_stanzas_in_and_out() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    let (_b, b_jid) = cluster.login(0, "bob", Some("b"));
    let before = cluster.router(0).stats();
    cluster.send(a, &format!("<message to='{b_jid}'><body/></message>"));
    let after = cluster.router(0).stats();
    assert_eq!(after.stanzas_in - before.stanzas_in, 1);
    assert_eq!(after.stanzas_out - before.stanzas_out, 1);
}

#[test]
fn memory_per_idle_session_is_small() {
    let mut cluster = Cluster::new(1);
    let base = cluster.router(0).heap_bytes();
    let n = 2_000;
    for i in 0..n {
        let (client, _) = cluster.login(0, &format!("user{i}"), None);
        cluster.take_output(client);
    }
    let per_session = (cluster.router(0).heap_bytes() - base) / n;
    println!("router heap per idle session: {per_session} B");
    assert!(per_session < 600, "{per_session} B per session");
}
