//! Store-and-forward: offline queues flushed at login with delay stamps, senders acknowledged
//! only after the recipient's home shard committed, store refusals, and restart from the log.

mod common;

use common::{ack, acks, chat, enable, enospc, log_cluster, memory_store, message_ids, TempDir, R};
use rookery_testkit::{user_homed_on, Cluster, TEST_WALL_CLOCK_MS};

const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

fn stamp(offset_ms: u64) -> String {
    let mut out = String::from("2026-11-28T18:00:");
    let ms = (TEST_WALL_CLOCK_MS + offset_ms) % 60_000;
    out.push_str(&format!("{:02}.{:03}Z", ms / 1_000, ms % 1_000));
    out
}

#[test]
fn offline_messages_arrive_in_order_with_delay_stamps_on_login() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (a, a_jid) = cluster.login(0, &alice, Some("a"));
    for (n, wait_ms) in [(1, 0), (2, 1_500), (3, 2_250)] {
        cluster.advance(wait_ms);
        cluster.send(a, &chat(&bob_bare, &format!("m{n}"), &format!("hello {n}")));
    }
    assert_eq!(
        cluster.take_output(a),
        "",
        "no bounce: the messages are stored"
    );
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 3);

    // Bob lands on shard 0 and is handed to his home shard 1; binding alone flushes nothing.
    let (b, _) = cluster.login(0, &bob, Some("phone"));
    assert_eq!(cluster.take_output(b), "");
    cluster.send(b, "<presence/>");
    let out = cluster.take_output(b);
    assert_eq!(message_ids(&out), ["m1", "m2", "m3"]);
    let delay = |offset_ms| {
        format!(
            "<delay xmlns='urn:xmpp:delay' from='example.com' stamp='{}'/></message>",
            stamp(offset_ms)
        )
    };
    let first = format!(
        "<message to='{bob_bare}' type='chat' id='m1' from='{a_jid}'><body>hello 1</body>{}",
        delay(0)
    );
    assert!(out.starts_with(&first), "{out}");
    assert!(out.contains(&format!("<body>hello 2</body>{}", delay(1_500))));
    assert!(out.contains(&format!("<body>hello 3</body>{}", delay(3_750))));
    // Written to a session without stream management: deleted at once.
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 0);
    assert_eq!(cluster.router(1).stats().offline_delivered, 3);
    // A second presence does not flush again, and live messages carry no delay.
    cluster.send(b, "<presence/>");
    cluster.send(a, &chat(&bob_bare, "m4", "live"));
    let out = cluster.take_output(b);
    assert_eq!(message_ids(&out), ["m4"]);
    assert!(!out.contains("<delay"));
}

#[test]
fn negative_priority_gets_no_offline_messages() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    cluster.send(a, &chat("bob@example.com", "m1", "x"));
    let (b, _) = cluster.login(0, "bob", Some("b"));
    cluster.send(b, "<presence><priority>-1</priority></presence>");
    assert_eq!(cluster.take_output(b), "");
    cluster.send(b, "<presence><priority>0</priority></presence>");
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);
}

#[test]
fn a_sender_is_acknowledged_only_after_the_commit() {
    let dir = TempDir::new("ack-after-commit");
    let mut cluster = log_cluster(1, dir.path());
    let (a, _) = cluster.login(0, "alice", Some("a"));
    enable(&mut cluster, a, false);
    // Message and request in one read: the request waits for the message's commit.
    cluster.send(a, &format!("{}{R}", chat("bob@example.com", "m1", "x")));
    assert_eq!(acks(&cluster.take_output(a)), Vec::<u32>::new());
    cluster.send(a, R);
    assert_eq!(acks(&cluster.take_output(a)), Vec::<u32>::new());
    assert!(cluster.commit(0).expect("commit").is_some());
    assert_eq!(
        acks(&cluster.take_output(a)),
        [1, 1],
        "both requests answered"
    );
    // A stanza that needs no storage is handled at once.
    cluster.send(
        a,
        &format!("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>{R}"),
    );
    assert_eq!(acks(&cluster.take_output(a)), [2]);
}

#[test]
fn a_cross_shard_sender_hears_of_the_commit_by_mail() {
    let dir = TempDir::new("committed-mail");
    let mut cluster = log_cluster(2, dir.path());
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (a, _) = cluster.login(0, &alice, Some("a"));
    enable(&mut cluster, a, false);
    cluster.send(a, &chat(&bob_bare, "m1", "x"));
    // A ping after it is handled at once, but h is the contiguous prefix: still 0.
    cluster.send(
        a,
        &format!("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>{R}"),
    );
    let out = cluster.take_output(a);
    assert!(out.contains("id='p'"), "{out}");
    assert_eq!(acks(&out), Vec::<u32>::new());
    assert_eq!(
        cluster.commit(0).expect("commit"),
        None,
        "nothing stored on shard 0"
    );
    assert_eq!(acks(&cluster.take_output(a)), Vec::<u32>::new());
    let mail_before = cluster.router(1).stats().mail_out;
    assert!(cluster.commit(1).expect("commit").is_some());
    assert_eq!(
        cluster.router(1).stats().mail_out,
        mail_before + 1,
        "one Committed mail"
    );
    assert_eq!(acks(&cluster.take_output(a)), [2]);
}

#[test]
fn a_detached_sender_resumes_with_the_committed_count() {
    let dir = TempDir::new("detached-sender");
    let mut cluster = log_cluster(2, dir.path());
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (a, _) = cluster.login(0, &alice, Some("a"));
    let id = common::resume_id(&enable(&mut cluster, a, true));
    // Committed while detached: the resumed count covers it.
    cluster.send(a, &chat(&bob_bare, "m1", "x"));
    cluster.disconnect(a);
    cluster.commit_all();
    let a2 = cluster.authenticate(1, &alice);
    cluster.send(a2, &common::resume(&id, 0));
    let resumed = |h| format!("<resumed xmlns='urn:xmpp:sm:3' h='{h}' previd='{id}'/>");
    assert!(cluster.take_output(a2).starts_with(&resumed(1)));
    // Not committed yet when resuming: the answer (and the <r/> after it) waits for the
    // commit, so the resumed count covers m2 and the client does not resend it.
    cluster.send(a2, &chat(&bob_bare, "m2", "x"));
    cluster.disconnect(a2);
    let a3 = cluster.authenticate(0, &alice);
    cluster.send(a3, &format!("{}{R}", common::resume(&id, 0)));
    assert_eq!(cluster.take_output(a3), "");
    cluster.commit_all();
    let out = cluster.take_output(a3);
    assert!(out.starts_with(&resumed(2)), "{out}");
    assert_eq!(acks(&out), [2]);
}

#[test]
fn a_full_queue_bounces_resource_constraint() {
    let mut cluster = Cluster::with_stores(1, |_| {}, |shard| memory_store(shard, 2));
    let (a, a_jid) = cluster.login(0, "alice", Some("a"));
    enable(&mut cluster, a, false);
    for n in 1..=3 {
        cluster.send(a, &chat("bob@example.com", &format!("m{n}"), "x"));
    }
    cluster.send(a, R);
    let out = cluster.take_output(a);
    let bounce = format!(
        "<message type='error' id='m3' from='bob@example.com' to='{a_jid}'><error type='wait'>\
         <resource-constraint xmlns='{STANZA_ERRORS}'/></error></message>"
    );
    assert!(out.starts_with(&bounce), "{out}");
    assert_eq!(
        acks(&out),
        [3],
        "a refused stanza is handled (with an error)"
    );
    assert_eq!(cluster.router(0).store().queue_len("bob@example.com"), 2);
    assert_eq!(cluster.router(0).stats().store_refusals, 1);
}

#[test]
fn an_unavailable_store_bounces_and_acknowledges_nothing_unstored() {
    let dir = TempDir::new("unavailable");
    let mut cluster = log_cluster(1, dir.path());
    let (a, _) = cluster.login(0, "alice", Some("a"));
    enable(&mut cluster, a, false);
    cluster.send(a, &format!("{}{R}", chat("bob@example.com", "m1", "x")));
    assert!(cluster.fail_commit(0, enospc()));
    assert_eq!(acks(&cluster.take_output(a)), Vec::<u32>::new());
    // Disk full: new messages are refused, and m1 (stored, not committed) is not acked.
    cluster.send(a, &format!("{}{R}", chat("bob@example.com", "m2", "x")));
    let out = cluster.take_output(a);
    assert!(
        out.contains("id='m2'") && out.contains("<resource-constraint "),
        "{out}"
    );
    assert_eq!(acks(&out), Vec::<u32>::new());
    // The retry is paced by ticks; once due, the next commit rewrites m1 and succeeds.
    assert_eq!(cluster.commit(0).expect("not due: nothing written"), None);
    cluster.advance(1_000);
    cluster.advance(1_000);
    assert!(cluster.commit(0).expect("retry").is_some());
    assert_eq!(acks(&cluster.take_output(a)), [2, 2]);
    cluster.send(a, &chat("bob@example.com", "m3", "x"));
    assert_eq!(cluster.take_output(a), "", "available again");
    assert_eq!(cluster.router(0).store().queue_len("bob@example.com"), 2);
}

#[test]
fn queued_messages_survive_a_restart() {
    let dir = TempDir::new("restart");
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    {
        let mut cluster = log_cluster(2, dir.path());
        let (a, _) = cluster.login(1, &alice, Some("a"));
        enable(&mut cluster, a, false);
        cluster.send(a, &chat(&bob_bare, "m1", "one"));
        cluster.send(a, &chat(&bob_bare, "m2", "two"));
        cluster.commit_all();
        cluster.send(a, R);
        assert_eq!(acks(&cluster.take_output(a)), [2]);
        // Dropping the cluster drops the routers and their stores (as a killed server).
    }
    let mut cluster = log_cluster(2, dir.path());
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 2);
    let (b, _) = cluster.login(0, &bob, Some("b"));
    cluster.send(b, "<presence/>");
    let out = cluster.take_output(b);
    assert_eq!(message_ids(&out), ["m1", "m2"]);
    assert!(out.contains("<body>one</body><delay "), "{out}");
}

#[test]
fn a_recipient_without_stream_management_gets_it_deleted_at_once() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    let (b, _) = cluster.login(0, "bob", Some("b"));
    cluster.send(b, "<presence/>");
    cluster.send(a, &chat("bob@example.com", "m1", "x"));
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);
    assert_eq!(cluster.router(0).store().live_messages(), 0);
    assert_eq!(cluster.router(0).stats().messages_stored, 1);
    // Acks from a client without stream management are a stream error (not enabled).
    cluster.send(b, &ack(1));
    assert!(cluster.take_output(b).contains("<unsupported-stanza-type "));
}
