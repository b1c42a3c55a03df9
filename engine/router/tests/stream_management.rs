//! XEP-0198 through the cluster harness: enabling, acks both ways, deletion on the client's
//! ack, re-delivery after a broken stream, resumption (in time, too late, taking over), and
//! the unacked-queue limit.

mod common;

use common::{ack, acks, chat, enable, message_ids, resume, resume_id, R};
use rookery_router::{SM_MAX_UNACKED, SM_REQUEST_EVERY};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

const SM_REQUEST: &str = "<r xmlns='urn:xmpp:sm:3'/>";

fn ping(id: &str) -> String {
    format!("<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// Bob online with stream management (resumable if asked) on his home shard 1 of 2.
fn bob_with_sm(cluster: &mut Cluster, resume: bool) -> (ClientId, String, String) {
    let bob = user_homed_on("bob", 1, 2);
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    let enabled = enable(cluster, b, resume);
    cluster.send(b, "<presence/>");
    assert_eq!(cluster.take_output(b), "");
    (b, format!("{bob}@example.com"), enabled)
}

#[test]
fn enable_only_after_bind_and_only_once() {
    let mut cluster = Cluster::new(1);
    let client = cluster.authenticate(0, "alice");
    cluster.send(client, "<enable xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(
        cluster.take_output(client),
        "<failed xmlns='urn:xmpp:sm:3'><unexpected-request \
         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    cluster.send(client, &rookery_testkit::bind_iq("b", Some("r")));
    cluster.take_output(client);
    assert_eq!(
        enable(&mut cluster, client, false),
        "<enabled xmlns='urn:xmpp:sm:3'/>"
    );
    cluster.send(client, "<enable xmlns='urn:xmpp:sm:3'/>");
    assert!(cluster.take_output(client).contains("<unexpected-request "));
    let enabled = {
        let (c, _) = cluster.login(0, "carol", Some("r"));
        enable(&mut cluster, c, true)
    };
    let id = resume_id(&enabled);
    assert_eq!(
        enabled,
        format!("<enabled xmlns='urn:xmpp:sm:3' id='{id}' resume='true' max='300'/>")
    );
}

#[test]
fn client_requests_are_answered_with_the_handled_count() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    // Not enabled yet: an `<r/>` is not a known element.
    let (c, _) = cluster.login(0, "carol", Some("c"));
    cluster.send(c, R);
    assert!(cluster.take_output(c).contains("<unsupported-stanza-type "));
    enable(&mut cluster, a, false);
    cluster.send(a, R);
    assert_eq!(acks(&cluster.take_output(a)), [0]);
    cluster.send(a, &format!("{}{}<presence/>{R}", ping("1"), ping("2")));
    assert_eq!(acks(&cluster.take_output(a)), [3]);
    cluster.send(a, "<a xmlns='urn:xmpp:sm:3' h='x'/>");
    assert!(cluster.take_output(a).contains("<unsupported-stanza-type "));
}

#[test]
fn the_server_requests_acks_every_five_stanzas_and_on_a_tick() {
    let mut cluster = Cluster::new(2);
    let (alice, _) = (user_homed_on("alice", 0, 2), ());
    let (a, _) = cluster.login(0, &alice, Some("a"));
    let (b, bob_bare, _) = bob_with_sm(&mut cluster, false);
    for n in 0..SM_REQUEST_EVERY {
        cluster.send(a, &chat(&bob_bare, &format!("m{n}"), "x"));
    }
    let out = cluster.take_output(b);
    assert_eq!(message_ids(&out).len(), 5);
    assert!(out.ends_with(SM_REQUEST), "{out}");
    assert_eq!(out.matches(SM_REQUEST).count(), 1);
    cluster.send(a, &chat(&bob_bare, "m5", "x"));
    assert!(!cluster.take_output(b).contains(SM_REQUEST));
    cluster.advance(1_000);
    assert_eq!(
        cluster.take_output(b),
        SM_REQUEST,
        "the pacing timer asks for the rest"
    );
    cluster.advance(5_000);
    assert_eq!(cluster.take_output(b), "", "asked once per batch");
}

#[test]
fn the_recipients_ack_deletes_stored_messages() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, _) = bob_with_sm(&mut cluster, false);
    for n in 1..=3 {
        cluster.send(a, &chat(&bob_bare, &format!("m{n}"), "x"));
    }
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1", "m2", "m3"]);
    assert_eq!(
        cluster.router(1).store().queue_len(&bob_bare),
        3,
        "in flight, kept"
    );
    cluster.send(b, &ack(2));
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 1);
    cluster.send(b, &ack(3));
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 0);
}

#[test]
fn acknowledging_more_than_was_sent_closes_the_stream() {
    let mut cluster = Cluster::new(2);
    let (b, _, _) = bob_with_sm(&mut cluster, true);
    cluster.send(b, &ack(4));
    let out = cluster.take_output(b);
    assert!(out.contains("<undefined-condition "), "{out}");
    assert!(out.contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='4' send-count='0'/>"));
    assert!(cluster.is_closed(b));
    assert_eq!(
        cluster.router(1).stats().detached_sessions,
        0,
        "not resumable"
    );
}

#[test]
fn unacked_messages_come_again_after_a_non_resumed_reconnect() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, _) = bob_with_sm(&mut cluster, false);
    cluster.send(a, &chat(&bob_bare, "m1", "first"));
    cluster.send(a, &chat(&bob_bare, "m2", "second"));
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1", "m2"]);
    cluster.send(b, &ack(1));
    cluster.disconnect(b);
    // No resumption enabled: the session ended, m2 stays queued for the next login.
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 1);
    let bob = bob_bare.split('@').next().unwrap_or_default().to_owned();
    let (b2, _) = cluster.login(0, &bob, Some("laptop"));
    cluster.send(b2, "<presence/>");
    let out = cluster.take_output(b2);
    assert_eq!(
        message_ids(&out),
        ["m2"],
        "the original id, so clients can drop it"
    );
    assert!(out.contains("<body>second</body><delay "), "{out}");
}

#[test]
fn resumption_within_the_timeout_resends_the_unacked_rest() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, enabled) = bob_with_sm(&mut cluster, true);
    let id = resume_id(&enabled);
    // Inbound: the presence (1) and this ping (2).
    cluster.send(b, &format!("{}{R}", ping("p1")));
    assert_eq!(acks(&cluster.take_output(b)), [2]);
    for n in 1..=3 {
        cluster.send(a, &chat(&bob_bare, &format!("m{n}"), "x"));
    }
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1", "m2", "m3"]);
    cluster.send(b, &ack(1)); // the ping result
    cluster.disconnect(b);
    assert_eq!(cluster.router(1).stats().detached_sessions, 1);
    // While detached, a new message is stored and waits.
    cluster.send(a, &chat(&bob_bare, "m4", "x"));
    assert_eq!(cluster.take_output(a), "");
    cluster.advance(200_000);
    // Back on shard 0: the conn is handed to the home shard to resume there. The client had
    // also received m1 (h = 2: ping result + m1).
    let bob = bob_bare.split('@').next().unwrap_or_default().to_owned();
    let b2 = cluster.authenticate(0, &bob);
    cluster.send(b2, &resume(&id, 2));
    assert_eq!(cluster.shard_of(b2), 1);
    let out = cluster.take_output(b2);
    let resumed = format!("<resumed xmlns='urn:xmpp:sm:3' h='2' previd='{id}'/>");
    assert!(out.starts_with(&resumed), "{out}");
    assert_eq!(message_ids(&out), ["m2", "m3", "m4"]);
    assert_eq!(
        cluster.router(1).store().queue_len(&bob_bare),
        3,
        "m1 was acked"
    );
    // The count continues from h = 2: m2, m3, m4 are stanzas 3, 4, 5.
    cluster.send(b2, &ack(5));
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 0);
    assert_eq!(cluster.router(1).stats().resumed, 1);
    // The resumed stream is a normal session again.
    cluster.send(a, &chat(&format!("{bob_bare}/phone"), "m5", "x"));
    assert_eq!(message_ids(&cluster.take_output(b2)), ["m5"]);
}

#[test]
fn resumption_after_the_timeout_fails_and_the_queue_waits_for_login() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, enabled) = bob_with_sm(&mut cluster, true);
    let id = resume_id(&enabled);
    cluster.send(a, &chat(&bob_bare, "m1", "x"));
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);
    cluster.disconnect(b);
    cluster.advance(301_000);
    assert_eq!(cluster.router(1).stats().detached_sessions, 0);
    let bob = bob_bare.split('@').next().unwrap_or_default().to_owned();
    let b2 = cluster.authenticate(1, &bob);
    cluster.send(b2, &resume(&id, 0));
    assert_eq!(
        cluster.take_output(b2),
        "<failed xmlns='urn:xmpp:sm:3'><item-not-found \
         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    // The client binds a fresh session instead, and gets m1 again when available.
    cluster.send(b2, &rookery_testkit::bind_iq("b2", Some("phone")));
    assert!(cluster.take_output(b2).contains("<jid>"));
    cluster.send(b2, "<presence/>");
    assert_eq!(message_ids(&cluster.take_output(b2)), ["m1"]);
    assert_eq!(cluster.router(1).stats().resume_failures, 1);
}

#[test]
fn resuming_a_still_attached_session_takes_it_over() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, enabled) = bob_with_sm(&mut cluster, true);
    let id = resume_id(&enabled);
    cluster.send(a, &chat(&bob_bare, "m1", "x"));
    cluster.take_output(b);
    // The old TCP conn is dead but the server has not noticed yet.
    let bob = bob_bare.split('@').next().unwrap_or_default().to_owned();
    let b2 = cluster.authenticate(1, &bob);
    cluster.send(b2, &resume(&id, 0));
    assert!(cluster.take_output(b).contains("<conflict "));
    assert!(cluster.is_closed(b));
    let out = cluster.take_output(b2);
    assert!(out.starts_with("<resumed "), "{out}");
    assert_eq!(message_ids(&out), ["m1"]);
    let stats = cluster.router(1).stats();
    assert_eq!((stats.sessions, stats.detached_sessions), (1, 0));
}

#[test]
fn a_new_bind_of_the_same_full_jid_ends_a_detached_session() {
    let mut cluster = Cluster::new(2);
    let (b, bob_bare, enabled) = bob_with_sm(&mut cluster, true);
    let id = resume_id(&enabled);
    cluster.disconnect(b);
    let bob = bob_bare.split('@').next().unwrap_or_default().to_owned();
    let _ = cluster.login(1, &bob, Some("phone"));
    assert_eq!(cluster.router(1).stats().detached_sessions, 0);
    let b3 = cluster.authenticate(1, &bob);
    cluster.send(b3, &resume(&id, 0));
    assert!(cluster.take_output(b3).contains("<item-not-found "));
}

#[test]
fn a_clean_close_is_not_resumable() {
    let mut cluster = Cluster::new(2);
    let (b, _, _) = bob_with_sm(&mut cluster, true);
    cluster.send(b, "</stream:stream>");
    assert_eq!(cluster.router(1).stats().detached_sessions, 0);
}

#[test]
fn past_the_unacked_limit_messages_wait_in_the_store() {
    let mut cluster = Cluster::new(2);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, _) = bob_with_sm(&mut cluster, false);
    let total = SM_MAX_UNACKED + 10;
    for n in 0..total {
        cluster.send(a, &chat(&bob_bare, &format!("m{n}"), "x"));
    }
    let out = cluster.take_output(b);
    assert_eq!(message_ids(&out).len(), SM_MAX_UNACKED);
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), total);
    // Acking frees room in the window: the held-back ten follow at once, in order, with
    // delay stamps (read back from the store).
    cluster.send(b, &ack(10));
    let out = cluster.take_output(b);
    let expected: Vec<String> = (SM_MAX_UNACKED..total).map(|n| format!("m{n}")).collect();
    assert_eq!(message_ids(&out), expected);
    assert!(out.contains("<delay "));
    cluster.send(b, &ack(total as u32));
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 0);
}

#[test]
fn a_client_that_never_acks_is_closed_at_the_hard_limit() {
    // The sender's presence rate limit must not stop the flood first.
    let mut cluster = Cluster::with_config(2, |config| config.presence_burst = 1_000_000);
    let (a, _) = cluster.login(0, &user_homed_on("alice", 0, 2), Some("a"));
    let (b, bob_bare, _) = bob_with_sm(&mut cluster, true);
    let presence = format!("<presence to='{bob_bare}/phone'/>");
    for _ in 0..rookery_router::SM_MAX_UNACKED_HARD {
        cluster.send(a, &presence);
    }
    assert!(!cluster.is_closed(b), "at the limit, not past it");
    cluster.send(a, &presence);
    let out = cluster.take_output(b);
    assert!(out.ends_with(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         </stream:error></stream:stream>"
    ));
    assert!(cluster.is_closed(b));
    assert_eq!(
        cluster.router(1).stats().detached_sessions,
        0,
        "not resumable"
    );
}
