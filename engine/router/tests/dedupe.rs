//! The home shard's duplicate window: a one-to-one message resent with the same id (after a
//! `remote-server-timeout` or a reconnect) is stored and delivered once, and every send of it
//! is acknowledged (XEP-0198), the resend no earlier than the first copy's commit.

mod common;

use common::{acks, chat, enable, log_cluster, message_ids, TempDir, R};
use rookery_testkit::{user_homed_on, Cluster};

#[test]
fn a_resend_before_the_commit_is_stored_once_and_acknowledged_with_the_first() {
    let dir = TempDir::new("dup-before-commit");
    let mut cluster = log_cluster(2, dir.path());
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (a, _) = cluster.login(0, &alice, Some("a"));
    enable(&mut cluster, a, false);
    cluster.send(a, &chat(&bob_bare, "m1", "hello"));
    cluster.send(a, &chat(&bob_bare, "m1", "hello"));
    cluster.send(a, R);
    assert_eq!(
        acks(&cluster.take_output(a)),
        Vec::<u32>::new(),
        "neither send is acknowledged before bob's home committed"
    );
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 1);
    assert_eq!(cluster.router(1).stats().duplicates_filtered, 1);
    assert!(cluster.commit(1).expect("commit").is_some());
    assert_eq!(
        acks(&cluster.take_output(a)),
        [2],
        "both sends handled by one commit"
    );
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    cluster.send(b, "<presence/>");
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);
}

#[test]
fn a_resend_from_a_new_session_after_delivery_is_acknowledged_not_delivered() {
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    cluster.send(b, "<presence/>");
    cluster.take_output(b);
    let (a, _) = cluster.login(0, &alice, Some("a"));
    enable(&mut cluster, a, false);
    cluster.send(a, &format!("{}{R}", chat(&bob_bare, "m1", "hello")));
    assert_eq!(acks(&cluster.take_output(a)), [1]);
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);

    // The client reconnects under another resource and resends what it never saw acked.
    cluster.disconnect(a);
    let (again, _) = cluster.login(0, &alice, Some("a2"));
    enable(&mut cluster, again, false);
    cluster.send(again, &format!("{}{R}", chat(&bob_bare, "m1", "hello")));
    assert_eq!(acks(&cluster.take_output(again)), [1], "acknowledged");
    assert_eq!(cluster.take_output(b), "", "not delivered twice");
    let stats = cluster.router(1).stats();
    assert_eq!((stats.messages_stored, stats.duplicates_filtered), (1, 1));
    assert_eq!(stats.dup_window_keys, 1);

    // A new id is a new message.
    cluster.send(again, &chat(&bob_bare, "m2", "more"));
    assert_eq!(message_ids(&cluster.take_output(b)), ["m2"]);
}

#[test]
fn the_same_id_from_another_sender_or_to_another_recipient_is_a_new_message() {
    let mut cluster = Cluster::new(2);
    let (alice, carol) = (user_homed_on("alice", 0, 2), user_homed_on("carol", 0, 2));
    let (bob, dave) = (user_homed_on("bob", 1, 2), user_homed_on("dave", 1, 2));
    let (bob_bare, dave_bare) = (format!("{bob}@example.com"), format!("{dave}@example.com"));
    let (a, _) = cluster.login(0, &alice, Some("a"));
    let (c, _) = cluster.login(0, &carol, Some("c"));
    cluster.send(a, &chat(&bob_bare, "same", "from alice"));
    cluster.send(c, &chat(&bob_bare, "same", "from carol"));
    cluster.send(a, &chat(&dave_bare, "same", "to dave"));
    assert_eq!(cluster.router(1).store().queue_len(&bob_bare), 2);
    assert_eq!(cluster.router(1).store().queue_len(&dave_bare), 1);
    assert_eq!(cluster.router(1).stats().duplicates_filtered, 0);
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    cluster.send(b, "<presence/>");
    let out = cluster.take_output(b);
    assert!(
        out.contains("from alice") && out.contains("from carol"),
        "{out}"
    );
}

#[test]
fn a_key_pushed_out_of_the_window_is_stored_again() {
    let mut cluster = Cluster::with_config(2, |config| config.dup_window_entries = 2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (a, _) = cluster.login(0, &alice, Some("a"));
    for id in ["m1", "m2", "m3", "m3", "m1", "m2"] {
        cluster.send(a, &chat(&bob_bare, id, id));
    }
    // m3 (in the window) is filtered; m1 left when m3 came and is stored again, which
    // pushes m2 out in turn, so m2's resend is stored too.
    let stats = cluster.router(1).stats();
    assert_eq!((stats.messages_stored, stats.duplicates_filtered), (5, 1));
    assert_eq!(stats.dup_window_keys, 2);
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    cluster.send(b, "<presence/>");
    assert_eq!(
        message_ids(&cluster.take_output(b)),
        ["m1", "m2", "m3", "m1", "m2"]
    );
}

#[test]
fn messages_without_an_id_are_never_filtered() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("a"));
    for _ in 0..2 {
        cluster.send(
            a,
            "<message to='bob@example.com' type='chat'><body>x</body></message>",
        );
    }
    assert_eq!(cluster.router(0).store().queue_len("bob@example.com"), 2);
    assert_eq!(cluster.router(0).stats().duplicates_filtered, 0);
}
