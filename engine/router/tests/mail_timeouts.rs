//! Mail that is never answered (`RouterConfig::mail_timeout_ms`): the harness loses mail to
//! one shard on purpose, a fake remote location. The sender's stanza gets a
//! `remote-server-timeout` error and counts as handled; a late answer is ignored.

mod common;

use common::{acks, chat, enable, R};
use rookery_router::{Mail, RouterConfig};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

const TIMEOUT_MS: u64 = RouterConfig::DEFAULT_MAIL_TIMEOUT_MS;

/// Alice, homed on shard 0 of 2, online with stream management; Bob's bare JID (shard 1).
fn alice_and_bob(cluster: &mut Cluster) -> (ClientId, String, String) {
    let alice = user_homed_on("alice", 0, 2);
    let (a, full) = cluster.login(0, &alice, Some("a"));
    enable(cluster, a, false);
    let bob = format!("{}@example.com", user_homed_on("bob", 1, 2));
    (a, full, bob)
}

#[test]
fn an_unanswered_stanza_times_out_with_an_error_and_counts_as_handled() {
    let mut cluster = Cluster::new(2);
    let (a, alice, bob) = alice_and_bob(&mut cluster);
    cluster.lose_mail_to(1);
    cluster.send(a, &chat(&bob, "m1", "hello"));
    cluster.send(a, R);
    assert_eq!(
        cluster.take_output(a),
        "",
        "the <r/> waits for shard 1's answer"
    );
    cluster.advance(TIMEOUT_MS - 1_000);
    assert_eq!(cluster.take_output(a), "", "not yet");
    cluster.advance(1_000);
    assert_eq!(
        cluster.take_output(a),
        format!(
            "<message type='error' id='m1' from='{bob}' to='{alice}'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </message><a xmlns='urn:xmpp:sm:3' h='1'/>"
        ),
        "the error, then the waiting <r/> answered: the stanza is handled"
    );
    assert_eq!(cluster.router(0).stats().mail_timeouts, 1);
    // The lost mail arrives after all: Bob's shard stores it and answers; the answer is
    // ignored (no second error, the count does not move).
    let lost = cluster.take_lost_mail();
    assert_eq!(lost.len(), 1);
    let (_, deliver) = lost.into_iter().next().expect("one mail");
    assert!(matches!(deliver, Mail::Deliver { ack: Some(_), .. }));
    cluster.deliver_mail(1, deliver);
    cluster.commit_all();
    cluster.send(a, R);
    assert_eq!(acks(&cluster.take_output(a)), [1]);
    cluster.advance(TIMEOUT_MS);
    let out = cluster.take_output(a);
    // Only the server's own ack request for the error it wrote (XEP-0198 pacing).
    assert_eq!(out, R, "no second error");
    assert_eq!(cluster.router(0).stats().mail_timeouts, 1);
}

#[test]
fn answered_mail_never_times_out() {
    let mut cluster = Cluster::new(2);
    let (a, _, bob) = alice_and_bob(&mut cluster);
    cluster.send(a, &chat(&bob, "m1", "stored for bob"));
    cluster.commit_all();
    cluster.send(a, R);
    assert_eq!(acks(&cluster.take_output(a)), [1]);
    cluster.advance(TIMEOUT_MS * 2);
    assert_eq!(cluster.take_output(a), "");
    assert_eq!(cluster.router(0).stats().mail_timeouts, 0);
}

#[test]
fn a_headline_times_out_quietly() {
    let mut cluster = Cluster::new(2);
    let (a, _, bob) = alice_and_bob(&mut cluster);
    cluster.lose_mail_to(1);
    let headline = format!("<message to='{bob}' type='headline' id='h1'><body>x</body></message>");
    cluster.send(a, &headline);
    cluster.advance(TIMEOUT_MS);
    cluster.send(a, R);
    assert_eq!(
        cluster.take_output(a),
        "<a xmlns='urn:xmpp:sm:3' h='1'/>",
        "no error for a headline (RFC 6121 5.2.2), but handled"
    );
    assert_eq!(cluster.router(0).stats().mail_timeouts, 1);
}
