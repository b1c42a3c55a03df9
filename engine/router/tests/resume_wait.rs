//! XEP-0198 resumption while stanzas of the old stream are still being stored: `<resumed h>`
//! waits until they are committed, so `h` counts them and a client resending what lies above
//! `h` (XEP-0198 5) duplicates nothing; the wait is bounded, and a conn that gives up, or a
//! session that ends meanwhile, leaves nothing hanging. Found by rookery-sim
//! (`--resume-unacked`, seeds 7, 9, 13, 14, 21 before the fix).

mod common;

use common::{acks, chat, enable, enospc, log_cluster, message_ids, resume, resume_id, TempDir, R};
use rookery_router::SM_RESUME_WAIT_MS;
use rookery_testkit::{bind_iq, user_homed_on, ClientId, Cluster};

/// Two shards logging to a fresh temp dir; Bob (no stream management) is online on his home
/// shard 1, Alice (resumable) on hers, shard 0, having sent her initial presence (stanza 1) and
/// a chat to Bob (stanza 2) that Bob got but shard 1 has not committed. Alice's stream then dies.
struct Setup {
    // Declared before `_dir` so the cluster (and its open logs) drops before the dir goes.
    cluster: Cluster,
    alice: String,
    bob: ClientId,
    bob_bare: String,
    previd: String,
    _dir: TempDir,
}

fn alice_dies_before_the_commit(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let mut cluster = log_cluster(2, dir.path());
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let bob_bare = format!("{bob}@example.com");
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    cluster.send(b, "<presence/>");
    let (a, _) = cluster.login(0, &alice, Some("pc"));
    let previd = resume_id(&enable(&mut cluster, a, true));
    cluster.send(a, "<presence/>");
    cluster.commit_all();
    cluster.send(a, &chat(&bob_bare, "m1", "one"));
    assert_eq!(message_ids(&cluster.take_output(b)), ["m1"]);
    cluster.disconnect(a);
    Setup {
        cluster,
        alice,
        bob: b,
        bob_bare,
        previd,
        _dir: dir,
    }
}

impl Setup {
    /// A new conn of Alice's on `shard`, authenticated, that sends `<resume h='0'/>` followed
    /// by `then` in the same read.
    fn resume_on(&mut self, shard: u16, then: &str) -> ClientId {
        let client = self.cluster.authenticate(shard, &self.alice);
        let request = format!("{}{then}", resume(&self.previd, 0));
        self.cluster.send(client, &request);
        client
    }

    /// The `<resumed/>` answer acknowledging `h` stanzas.
    fn resumed(&self, h: u32) -> String {
        format!(
            "<resumed xmlns='urn:xmpp:sm:3' h='{h}' previd='{}'/>",
            self.previd
        )
    }
}

#[test]
fn resumed_h_counts_a_stanza_stored_but_not_yet_committed() {
    let mut s = alice_dies_before_the_commit("resume-wait");
    // Alice comes back on shard 1 (handed to her home shard 0) and pipelines an <r/>.
    let a2 = s.resume_on(1, R);
    let resumed = s.resumed(2);
    let cluster = &mut s.cluster;
    assert_eq!(cluster.shard_of(a2), 0);
    assert_eq!(
        cluster.take_output(a2),
        "",
        "the answer waits for m1's commit"
    );
    assert_eq!(cluster.router(0).stats().resumes_delayed, 1);
    // Before the fix: <resumed h='1'/> here, Alice resent m1 as stanza 2, and Bob got it twice.
    cluster.commit_all();
    let out = cluster.take_output(a2);
    assert!(out.starts_with(&resumed), "{out}");
    assert_eq!(
        acks(&out),
        [2],
        "the held <r/> is answered after <resumed/>"
    );
    // h = 2 covers m1: a XEP-0198 client resends nothing, Bob has m1 once.
    assert_eq!(cluster.take_output(s.bob), "");
    // Both sides number the next stanza 3.
    cluster.send(a2, &chat(&s.bob_bare, "m2", "two"));
    assert_eq!(message_ids(&cluster.take_output(s.bob)), ["m2"]);
    cluster.commit_all();
    cluster.send(a2, R);
    assert_eq!(acks(&cluster.take_output(a2)), [3]);
    assert_eq!(cluster.router(0).stats().resumed, 1);
}

#[test]
fn a_commit_that_cannot_happen_fails_the_resumption_after_the_bound() {
    let mut s = alice_dies_before_the_commit("resume-bound");
    assert!(
        s.cluster.fail_commit(1, enospc()),
        "m1's batch fails: disk full"
    );
    let a2 = s.resume_on(0, "");
    let cluster = &mut s.cluster;
    cluster.advance(SM_RESUME_WAIT_MS - 100);
    assert_eq!(cluster.take_output(a2), "");
    cluster.advance(200);
    // Only the presence is acknowledged; m1 is of unknown fate to Alice, and the session ends
    // (answering <resumed h='1'/> would make her resend m1, which Bob already has).
    assert_eq!(
        cluster.take_output(a2),
        "<failed xmlns='urn:xmpp:sm:3' h='1'><resource-constraint \
         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    let stats = cluster.router(0).stats();
    assert_eq!((stats.resume_failures, stats.detached_sessions), (1, 0));
    // The conn binds a fresh session; the late commit changes nothing for it.
    cluster.send(a2, &bind_iq("b2", Some("pc")));
    assert!(cluster.take_output(a2).contains("<jid>"));
    enable(cluster, a2, true);
    cluster.advance(1_000);
    cluster.commit_all();
    assert_eq!(cluster.router(1).store().live_messages(), 0, "m1 committed");
    cluster.send(a2, R);
    assert_eq!(acks(&cluster.take_output(a2)), [0]);
    assert_eq!(cluster.take_output(s.bob), "", "m1 is never repeated");
    cluster.send(a2, &chat(&s.bob_bare, "m2", "two"));
    assert_eq!(message_ids(&cluster.take_output(s.bob)), ["m2"]);
}

#[test]
fn a_conn_that_drops_while_waiting_leaves_the_session_resumable() {
    let mut s = alice_dies_before_the_commit("resume-drop");
    let a2 = s.resume_on(0, "");
    s.cluster.disconnect(a2);
    assert_eq!(s.cluster.router(0).stats().detached_sessions, 1);
    s.cluster.commit_all();
    let a3 = s.resume_on(0, "");
    let out = s.cluster.take_output(a3);
    assert_eq!(out, s.resumed(2));
    assert_eq!(s.cluster.take_output(s.bob), "");
}

#[test]
fn a_newer_resume_or_bind_ends_a_waiting_resumption() {
    let mut s = alice_dies_before_the_commit("resume-newer");
    let a2 = s.resume_on(0, "");
    // A newer <resume/> takes the session over: the older waiting stream gets a conflict.
    let a3 = s.resume_on(0, "");
    let cluster = &mut s.cluster;
    assert!(cluster.take_output(a2).contains("<conflict "));
    assert!(cluster.is_closed(a2));
    assert_eq!(cluster.take_output(a3), "");
    // A new bind of the same full JID ends the session: the waiting stream hears it at once.
    let _ = cluster.login(0, &s.alice, Some("pc"));
    assert_eq!(
        cluster.take_output(a3),
        "<failed xmlns='urn:xmpp:sm:3'><item-not-found \
         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    assert!(!cluster.is_closed(a3), "it may still bind");
}

#[test]
fn a_message_for_a_detached_session_that_is_not_stored_comes_after_resumption() {
    // Found by rookery-sim with resumption on: the store bounced a chat of Alice's while she
    // was detached, the bounce (type error, never stored) was dropped, and <resumed h> then
    // acknowledged the chat as handled: she could never learn it failed.
    let mut cluster = Cluster::new(2);
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    let (b, _) = cluster.login(1, &bob, Some("phone"));
    let (a, alice_full) = cluster.login(0, &alice, Some("pc"));
    let previd = resume_id(&enable(&mut cluster, a, true));
    cluster.disconnect(a);
    let error = format!(
        "<message type='error' id='e1' to='{alice_full}'><error type='wait'>\
         <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    );
    cluster.send(b, &error);
    cluster.send(
        b,
        &format!("<message type='headline' id='h1' to='{alice_full}'/>"),
    );
    assert_eq!(
        cluster.take_output(b),
        "",
        "no bounce: the session will get them"
    );
    let a2 = cluster.authenticate(0, &alice);
    cluster.send(a2, &resume(&previd, 0));
    let out = cluster.take_output(a2);
    assert!(out.starts_with("<resumed "), "{out}");
    assert_eq!(message_ids(&out), ["e1", "h1"]);
    cluster.send(a2, &common::ack(2));
    cluster.send(a2, R);
    assert_eq!(acks(&cluster.take_output(a2)), [0]);
}
