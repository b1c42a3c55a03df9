//! Rosters and presence (RFC 6121) across shards: the subscription handshake with roster
//! pushes, presence broadcast as one mail per destination shard, probes at login, unavailable
//! when a session ends, requests waiting for an offline user, roster limits, floods, and
//! rosters surviving a restart from the log.

mod common;

use common::{befriend, log_cluster, TempDir};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

/// Three shards; alice on 0, bob on 1, carol on 2, each logged in on its home shard.
fn three_users(cluster: &mut Cluster) -> [(ClientId, String, String); 3] {
    ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(shard, name)| {
            let user = user_homed_on(name, shard as u16, 3);
            let (client, full) = cluster.login(shard as u16, &user, Some("r"));
            (client, full, format!("{user}@example.com"))
        })
        .collect::<Vec<_>>()
        .try_into()
        .expect("three users")
}

fn roster(cluster: &mut Cluster, client: ClientId) -> String {
    cluster.send(
        client,
        "<iq type='get' id='ro'><query xmlns='jabber:iq:roster'/></iq>",
    );
    cluster.take_output(client)
}

#[test]
fn subscription_handshake_pushes_rosters_and_ends_in_both() {
    let mut cluster = Cluster::new(3);
    let [(a, _, alice), (b, _, bob), _] = three_users(&mut cluster);
    for client in [a, b] {
        cluster.send(client, "<presence/>");
        cluster.take_output(client);
    }
    cluster.send(a, &format!("<presence to='{bob}' type='subscribe'/>"));
    let out = cluster.take_output(a);
    assert!(
        out.contains(&format!(
            "<item jid='{bob}' subscription='none' ask='subscribe'/>"
        )),
        "alice's roster push shows the pending request: {out}"
    );
    let out = cluster.take_output(b);
    assert_eq!(
        out,
        format!("<presence type='subscribe' from='{alice}' to='{bob}'/>"),
        "bob gets the request from alice's bare JID, and no roster push (RFC 6121 3.1.3)"
    );
    cluster.send(b, &format!("<presence to='{alice}' type='subscribed'/>"));
    assert!(cluster
        .take_output(b)
        .contains(&format!("<item jid='{alice}' subscription='from'/>")));
    let out = cluster.take_output(a);
    assert!(
        out.contains(&format!("<item jid='{bob}' subscription='to'/>")),
        "{out}"
    );
    assert!(out.contains(&format!(
        "<presence type='subscribed' from='{bob}' to='{alice}'/>"
    )));
    // And back: both.
    cluster.send(b, &format!("<presence to='{alice}' type='subscribe'/>"));
    assert!(cluster.take_output(a).contains("type='subscribe'"));
    cluster.send(a, &format!("<presence to='{bob}' type='subscribed'/>"));
    assert!(roster(&mut cluster, a).contains(&format!("<item jid='{bob}' subscription='both'/>")));
    assert!(roster(&mut cluster, b).contains(&format!("<item jid='{alice}' subscription='both'/>")));
}

#[test]
fn presence_reaches_contacts_on_other_shards_as_one_mail_per_shard() {
    let mut cluster = Cluster::new(3);
    let [(a, a_full, alice), (b, b_full, bob), (c, c_full, carol)] = three_users(&mut cluster);
    // Two more contacts of alice on carol's shard: one mail must carry both.
    let dave = user_homed_on("dave", 2, 3);
    let (d, _) = cluster.login(2, &dave, Some("r"));
    let dave_bare = format!("{dave}@example.com");
    befriend(&mut cluster, (a, &alice), (b, &bob));
    befriend(&mut cluster, (a, &alice), (c, &carol));
    befriend(&mut cluster, (a, &alice), (d, &dave_bare));
    for client in [b, c, d] {
        cluster.send(client, "<presence/>");
    }
    for client in [a, b, c, d] {
        cluster.take_output(client);
    }
    let mail_before = cluster.router(0).stats().mail_out;
    cluster.send(a, "<presence><status>lunch</status></presence>");
    let mails = cluster.router(0).stats().mail_out - mail_before;
    // Probes (shards 1 and 2) and the broadcast (shards 1 and 2): four mails for three contacts.
    assert_eq!(mails, 4, "one mail per destination shard per fan-out");
    for (client, full) in [(b, &b_full), (c, &c_full)] {
        let out = cluster.take_output(client);
        assert!(
            out.contains(&format!("<presence from='{a_full}' to='")) && out.contains("lunch"),
            "{full} got: {out}"
        );
    }
    // Alice's initial presence probed her contacts: she hears each one's presence.
    let out = cluster.take_output(a);
    for full in [&b_full, &c_full] {
        assert!(
            out.contains(&format!("<presence from='{full}' to='{a_full}'")),
            "{out}"
        );
    }
    // An update goes out without new probes.
    let mail_before = cluster.router(0).stats().mail_out;
    cluster.send(a, "<presence><show>away</show></presence>");
    assert_eq!(cluster.router(0).stats().mail_out - mail_before, 2);
    assert!(cluster.take_output(d).contains("<show>away</show>"));
    assert_eq!(
        cluster.take_output(a),
        "",
        "no probes answered for an update"
    );
}

#[test]
fn contacts_see_unavailable_when_the_last_session_ends() {
    let mut cluster = Cluster::new(3);
    let [(a, a_full, alice), (b, _, bob), _] = three_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    cluster.send(b, "<presence/>");
    cluster.send(a, "<presence/>");
    cluster.take_output(b);
    cluster.disconnect(a);
    let out = cluster.take_output(b);
    assert_eq!(
        out,
        format!("<presence type='unavailable' from='{a_full}' to='{bob}'/>")
    );
    // An explicit unavailable is broadcast as the client sent it, once.
    let (a2, a2_full) = cluster.login(0, &alice.replace("@example.com", ""), Some("two"));
    cluster.send(a2, "<presence/>");
    cluster.take_output(b);
    cluster.send(
        a2,
        "<presence type='unavailable'><status>bye</status></presence>",
    );
    let out = cluster.take_output(b);
    assert!(
        out.contains(&format!("from='{a2_full}'")) && out.contains("bye"),
        "{out}"
    );
    cluster.disconnect(a2);
    assert_eq!(cluster.take_output(b), "", "no second unavailable");
}

#[test]
fn a_request_to_an_offline_user_waits_for_its_login_and_is_never_auto_approved() {
    let mut cluster = Cluster::new(3);
    let alice = user_homed_on("alice", 0, 3);
    let bob = user_homed_on("bob", 1, 3);
    let (a, _) = cluster.login(0, &alice, Some("r"));
    cluster.send(
        a,
        &format!("<presence to='{bob}@example.com' type='subscribe'/>"),
    );
    cluster.take_output(a);
    let (b, _) = cluster.login(1, &bob, Some("r"));
    let out = cluster.initial_presence(b);
    assert!(
        out.contains(&format!(
            "<presence type='subscribe' from='{alice}@example.com'"
        )),
        "{out}"
    );
    assert!(
        !cluster.take_output(a).contains("subscribed"),
        "not approved by the server"
    );
    assert!(
        !roster(&mut cluster, b).contains("<item"),
        "a request alone adds nothing to bob's roster"
    );
}

#[test]
fn roster_set_remove_and_the_roster_limit() {
    let mut cluster = Cluster::with_config(1, |config| config.roster_max = 2);
    let (a, _) = cluster.login(0, "alice", Some("one"));
    let (a2, _) = cluster.login(0, "alice", Some("two"));
    let set = |jid: &str, name: &str| {
        format!(
            "<iq type='set' id='s-{name}'><query xmlns='jabber:iq:roster'>\
             <item jid='{jid}' name='{name}'><group>Friends</group></item></query></iq>"
        )
    };
    cluster.send(a, &set("bob@example.com", "Bob"));
    let out = cluster.take_output(a);
    assert!(out.contains("<iq type='result' id='s-Bob'"), "{out}");
    let item =
        "<item jid='bob@example.com' name='Bob' subscription='none'><group>Friends</group></item>";
    assert!(out.contains(item), "push to the requesting session: {out}");
    assert!(
        cluster.take_output(a2).contains(item),
        "push to the other session"
    );
    cluster.send(a, &set("carol@example.com", "Carol"));
    cluster.send(a, &set("dave@example.com", "Dave"));
    let out = cluster.take_output(a);
    assert!(
        out.contains("id='s-Dave'") && out.contains("<not-allowed "),
        "{out}"
    );
    cluster.send(
        a,
        "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@example.com' subscription='remove'/></query></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.contains("subscription='remove'") && out.contains("<iq type='result' id='rm'"));
    cluster.send(
        a,
        "<iq type='set' id='rm2'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@example.com' subscription='remove'/></query></iq>",
    );
    assert!(cluster.take_output(a).contains("<item-not-found "));
    cluster.send(
        a,
        "<iq type='set' id='two'><query xmlns='jabber:iq:roster'>\
         <item jid='x@example.com'/><item jid='y@example.com'/></query></iq>",
    );
    assert!(cluster.take_output(a).contains("<bad-request "));
    let list = roster(&mut cluster, a);
    assert!(list.contains("carol@example.com") && !list.contains("bob@example.com"));
}

#[test]
fn a_presence_flood_closes_the_stream_with_policy_violation() {
    let mut cluster = Cluster::with_config(1, |config| {
        config.presence_burst = 10;
        config.presence_rate_per_s = 1;
    });
    let (a, _) = cluster.login(0, "alice", Some("r"));
    for _ in 0..10 {
        cluster.send(a, "<presence/>");
    }
    assert!(!cluster.is_closed(a), "the burst is allowed");
    cluster.advance(2_000);
    cluster.send(a, "<presence/>");
    cluster.send(a, "<presence/>");
    assert!(!cluster.is_closed(a), "two earned back in two seconds");
    cluster.send(a, "<presence/>");
    assert!(cluster.is_closed(a));
    assert!(cluster.take_output(a).contains("<policy-violation "));
    assert_eq!(cluster.router(0).stats().presence_floods, 1);
}

#[test]
fn rosters_survive_a_restart_from_the_log() {
    let dir = TempDir::new("rosters");
    let (alice, bob) = (user_homed_on("alice", 0, 2), user_homed_on("bob", 1, 2));
    {
        let mut cluster = log_cluster(2, dir.path());
        let (a, _) = cluster.login(0, &alice, Some("r"));
        let (b, _) = cluster.login(1, &bob, Some("r"));
        befriend(
            &mut cluster,
            (a, &format!("{alice}@example.com")),
            (b, &format!("{bob}@example.com")),
        );
        cluster.commit_all();
    }
    let mut cluster = log_cluster(2, dir.path());
    let (a, _) = cluster.login(0, &alice, Some("r"));
    assert!(roster(&mut cluster, a).contains(&format!(
        "<item jid='{bob}@example.com' subscription='both'/>"
    )));
}

#[test]
fn a_roster_set_is_answered_only_once_committed() {
    let dir = TempDir::new("roster-commit");
    let mut cluster = log_cluster(1, dir.path());
    let (a, _) = cluster.login(0, "alice", Some("r"));
    cluster.send(
        a,
        "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@example.com'/></query></iq>",
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("<item jid='bob@example.com'"),
        "the push goes out: {out}"
    );
    assert!(
        !out.contains("type='result'"),
        "no result before the commit: {out}"
    );
    cluster.commit_all();
    assert!(cluster
        .take_output(a)
        .contains("<iq type='result' id='s1' to='alice@example.com/r'/>"));
}

#[test]
fn a_resumption_that_takes_over_a_live_conn_keeps_the_presence() {
    use common::{enable, resume, resume_id};
    let mut cluster = Cluster::new(3);
    let [(a, a_full, alice), (b, _, bob), _] = three_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    let id = resume_id(&enable(&mut cluster, a, true));
    cluster.send(b, "<presence/>");
    cluster.send(a, "<presence/>");
    cluster.take_output(a);
    cluster.take_output(b);
    // A new conn resumes while the old one is still attached (its close not seen yet).
    let user = alice.trim_end_matches("@example.com");
    let again = cluster.authenticate(0, user);
    cluster.send(again, &resume(&id, 0));
    assert!(cluster.take_output(again).contains("<resumed "));
    assert!(cluster.is_closed(a), "the old conn is replaced");
    let out = cluster.take_output(b);
    assert!(
        !out.contains("unavailable"),
        "the session lives on: no unavailable for {a_full}: {out}"
    );
    cluster.send(again, "<presence><status>still here</status></presence>");
    assert!(cluster.take_output(b).contains("still here"));
}

#[test]
fn a_detached_session_gets_the_presence_it_missed_when_it_resumes() {
    use common::{enable, resume, resume_id};
    let mut cluster = Cluster::new(3);
    let [(a, _, alice), (b, b_full, bob), _] = three_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    let id = resume_id(&enable(&mut cluster, a, true));
    cluster.send(a, "<presence/>");
    cluster.send(b, "<presence/>");
    cluster.take_output(a);
    cluster.disconnect(a);
    cluster.send(
        b,
        "<presence><status>while you were away</status></presence>",
    );
    let user = alice.trim_end_matches("@example.com");
    let again = cluster.authenticate(0, user);
    cluster.send(again, &resume(&id, 0));
    let out = cluster.take_output(again);
    assert!(out.contains("<resumed "), "{out}");
    assert!(
        out.contains(&format!("from='{b_full}'")) && out.contains("while you were away"),
        "the change comes after <resumed/>: {out}"
    );
}

#[test]
fn an_oversized_presence_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::new(3);
    let [(a, _, alice), (b, _, bob), _] = three_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    cluster.send(b, "<presence/>");
    cluster.take_output(b);
    let status = "x".repeat(9_000);
    cluster.send(
        a,
        &format!("<presence><status>{status}</status></presence>"),
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("<presence type='error'") && out.contains("<not-acceptable "),
        "{out}"
    );
    assert_eq!(cluster.take_output(b), "", "nothing broadcast");
    cluster.send(a, "<presence><status>fine</status></presence>");
    assert!(cluster.take_output(b).contains("fine"));
}

#[test]
fn an_oversized_unavailable_presence_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::new(3);
    let [(a, _, alice), (b, _, bob), _] = three_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    cluster.send(b, "<presence/>");
    cluster.send(a, "<presence/>");
    cluster.take_output(a);
    cluster.take_output(b);
    let status = "x".repeat(9_000);
    cluster.send(
        a,
        &format!("<presence type='unavailable'><status>{status}</status></presence>"),
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("<presence type='error'") && out.contains("<not-acceptable "),
        "{out}"
    );
    assert_eq!(cluster.take_output(b), "", "nothing broadcast");
    // Alice is still available: her next change reaches Bob as an update.
    cluster.send(a, "<presence><status>still here</status></presence>");
    let update = cluster.take_output(b);
    assert!(
        update.contains("still here") && !update.contains("unavailable"),
        "{update}"
    );
    cluster.send(
        a,
        "<presence type='unavailable'><status>bye</status></presence>",
    );
    let gone = cluster.take_output(b);
    assert!(
        gone.contains("type='unavailable'") && gone.contains("bye"),
        "{gone}"
    );
}

#[test]
fn a_plain_presence_is_answered_as_sent_after_a_richer_one_and_ends_with_its_session() {
    use common::{enable, resume_id};
    let mut cluster = Cluster::new(3);
    let [(a, a_full, alice), (b, _, bob), _] = three_users(&mut cluster);
    assert!(!resume_id(&enable(&mut cluster, a, true)).is_empty());
    cluster.send(a, "<presence><show>away</show></presence>");
    cluster.send(a, "<presence/>");
    cluster.send(b, "<presence/>");
    cluster.take_output(a);
    cluster.take_output(b);
    // Alice approves bob: he gets her current presence (RFC 6121 3.1.5), the plain one rebuilt.
    cluster.send(b, &format!("<presence to='{alice}' type='subscribe'/>"));
    cluster.send(a, &format!("<presence to='{bob}' type='subscribed'/>"));
    let out = cluster.take_output(b);
    assert!(
        out.contains(&format!("<presence from='{a_full}' to='{bob}'/>")) && !out.contains("away"),
        "the plain presence replaced the away one: {out}"
    );
    // A second resource of alice hears the first one's plain presence at its login.
    let user = alice.trim_end_matches("@example.com");
    let (second, second_full) = cluster.login(0, user, Some("two"));
    cluster.send(second, "<presence/>");
    let out = cluster.take_output(second);
    assert!(
        out.contains(&format!("<presence from='{a_full}' to='{second_full}'/>")),
        "{out}"
    );
    cluster.send(second, "<presence type='unavailable'/>");
    cluster.take_output(b);
    // Detached, the session stays available; when its resumption window ends, bob hears
    // that it is gone, though nothing of its presence was kept but its availability.
    cluster.disconnect(a);
    assert!(!cluster.take_output(b).contains(&a_full));
    let mut out = String::new();
    for _ in 0..7 {
        // Bob's keepalives keep his own conn open past its idle timeout.
        cluster.send(b, " ");
        cluster.advance(50_000);
        out.push_str(&cluster.take_output(b));
    }
    assert!(
        out.contains(&format!(
            "<presence type='unavailable' from='{a_full}' to='{bob}'/>"
        )),
        "{out}"
    );
}
