//! XEP-0191 Blocking Command across shards: the list's get, block, unblock and unblock-all
//! with pushes to the sessions that asked for it; a blocked contact's message refused with
//! service-unavailable, its presence dropped; the user's own stanzas to it refused with
//! not-acceptable + `<blocked/>`; unavailable presence to a blocked subscriber; domain items;
//! the size limit; the list surviving a restart from the log.

mod common;

use common::{befriend, log_cluster, TempDir};
use rookery_testkit::{user_homed_on, ClientId, Cluster};

/// Two shards; alice on 0, bob on 1, both available.
fn two_users(cluster: &mut Cluster) -> [(ClientId, String, String); 2] {
    let users: [(ClientId, String, String); 2] = ["alice", "bob"]
        .iter()
        .enumerate()
        .map(|(shard, name)| {
            let user = user_homed_on(name, shard as u16, 2);
            let (client, full) = cluster.login(shard as u16, &user, Some("r"));
            (client, full, format!("{user}@example.com"))
        })
        .collect::<Vec<_>>()
        .try_into()
        .expect("two users");
    for (client, _, _) in &users {
        cluster.send(*client, "<presence/>");
    }
    for (client, _, _) in &users {
        cluster.take_output(*client);
    }
    users
}

fn block(cluster: &mut Cluster, client: ClientId, jid: &str) -> String {
    cluster.send(
        client,
        &format!(
            "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='{jid}'/></block></iq>"
        ),
    );
    cluster.take_output(client)
}

fn blocklist(cluster: &mut Cluster, client: ClientId) -> String {
    cluster.send(
        client,
        "<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    cluster.take_output(client)
}

#[test]
fn a_blocked_contact_cannot_reach_the_user_and_the_user_cannot_reach_it() {
    let mut cluster = Cluster::new(2);
    let [(a, a_full, alice), (b, b_full, bob)] = two_users(&mut cluster);
    assert_eq!(
        blocklist(&mut cluster, a),
        "<iq type='result' id='bl' to='".to_owned()
            + &a_full
            + "'><blocklist xmlns='urn:xmpp:blocking'></blocklist></iq>"
    );
    let out = block(&mut cluster, a, &bob);
    assert!(out.contains("type='result' id='b1'"), "{out}");
    assert!(
        out.contains(&format!(
            "<block xmlns='urn:xmpp:blocking'><item jid='{bob}'/></block>"
        )),
        "the session that asked for the list gets the push: {out}"
    );
    assert!(blocklist(&mut cluster, a).contains(&format!("<item jid='{bob}'/>")));

    // bob -> alice: not delivered, service-unavailable back.
    cluster.send(
        b,
        &format!("<message to='{alice}' id='m1' type='chat'><body>hi</body></message>"),
    );
    assert_eq!(cluster.take_output(a), "", "nothing reaches alice");
    let out = cluster.take_output(b);
    assert!(
        out.contains("type='error'")
            && out.contains("id='m1'")
            && out.contains("service-unavailable"),
        "{out}"
    );
    // An iq request too; directed presence is dropped silently.
    cluster.send(
        b,
        &format!("<iq to='{a_full}' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    assert!(cluster.take_output(b).contains("service-unavailable"));
    cluster.send(b, &format!("<presence to='{alice}'/>"));
    assert_eq!(cluster.take_output(a), "");
    assert_eq!(cluster.take_output(b), "");

    // alice -> bob: refused with not-acceptable + <blocked/>.
    cluster.send(
        a,
        &format!("<message to='{b_full}' id='m2' type='chat'><body>x</body></message>"),
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("id='m2'")
            && out.contains("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
            && out.contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"),
        "{out}"
    );
    assert_eq!(cluster.take_output(b), "", "nothing reaches bob");

    // Unblock restores both ways.
    cluster.send(
        a,
        &format!(
            "<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='{bob}'/></unblock></iq>"
        ),
    );
    let out = cluster.take_output(a);
    assert!(out.contains("type='result' id='u1'"), "{out}");
    assert!(out.contains(&format!(
        "<unblock xmlns='urn:xmpp:blocking'><item jid='{bob}'/></unblock>"
    )));
    cluster.send(
        b,
        &format!("<message to='{alice}' id='m3' type='chat'><body>back</body></message>"),
    );
    assert!(cluster.take_output(a).contains("<body>back</body>"));
    assert_eq!(cluster.take_output(b), "");
}

#[test]
fn blocking_a_subscriber_sends_it_unavailable_and_leaves_it_out_of_broadcasts() {
    let mut cluster = Cluster::new(2);
    let [(a, a_full, alice), (b, _, bob)] = two_users(&mut cluster);
    befriend(&mut cluster, (a, &alice), (b, &bob));
    for client in [a, b] {
        cluster.send(client, "<presence/>");
    }
    cluster.take_output(a);
    cluster.take_output(b);
    blocklist(&mut cluster, a);
    block(&mut cluster, a, &bob);
    let out = cluster.take_output(b);
    assert!(
        out.contains(&format!("from='{a_full}'")) && out.contains("type='unavailable'"),
        "bob sees alice go unavailable: {out}"
    );
    cluster.send(a, "<presence><show>away</show></presence>");
    assert_eq!(
        cluster.take_output(b),
        "",
        "no broadcast to a blocked contact"
    );
}

#[test]
fn domain_items_match_every_jid_of_the_domain_and_unblock_all_clears() {
    let mut cluster = Cluster::new(2);
    let [(a, _, alice), (b, _, _)] = two_users(&mut cluster);
    blocklist(&mut cluster, a);
    block(&mut cluster, a, "example.com");
    cluster.send(
        b,
        &format!("<message to='{alice}' type='chat'><body>hi</body></message>"),
    );
    assert_eq!(cluster.take_output(a), "");
    cluster.send(
        a,
        "<iq type='set' id='ua'><unblock xmlns='urn:xmpp:blocking'/></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.contains("type='result' id='ua'"), "{out}");
    assert!(
        out.contains("<unblock xmlns='urn:xmpp:blocking'></unblock>"),
        "{out}"
    );
    assert!(!blocklist(&mut cluster, a).contains("<item"));
    cluster.send(
        b,
        &format!("<message to='{alice}' type='chat'><body>hi</body></message>"),
    );
    assert!(cluster.take_output(a).contains("<body>hi</body>"));
}

#[test]
fn bad_requests_and_the_size_limit_change_nothing() {
    let mut cluster = Cluster::new(1);
    let (a, _) = cluster.login(0, "alice", Some("r"));
    cluster.send(
        a,
        "<iq type='set' id='e'><block xmlns='urn:xmpp:blocking'/></iq>",
    );
    assert!(cluster.take_output(a).contains("bad-request"));
    let mut items = String::new();
    for i in 0..1001 {
        items.push_str(&format!("<item jid='u{i}@example.com'/>"));
    }
    cluster.send(
        a,
        &format!("<iq type='set' id='big'><block xmlns='urn:xmpp:blocking'>{items}</block></iq>"),
    );
    assert!(cluster.take_output(a).contains("resource-constraint"));
    assert!(!blocklist(&mut cluster, a).contains("<item"));
    cluster.send(
        a,
        "<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert!(cluster
        .take_output(a)
        .contains("<feature var='urn:xmpp:blocking'/>"));
}

#[test]
fn blocklists_survive_a_restart_from_the_log() {
    let dir = TempDir::new("blocklists");
    let alice = user_homed_on("alice", 0, 2);
    {
        let mut cluster = log_cluster(2, dir.path());
        let (a, _) = cluster.login(0, &alice, Some("r"));
        cluster.send(
            a,
            "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='eve@example.com'/></block></iq>",
        );
        cluster.commit_all();
        assert!(cluster.take_output(a).contains("type='result' id='b'"));
    }
    let mut cluster = log_cluster(2, dir.path());
    let (a, _) = cluster.login(0, &alice, Some("r"));
    assert!(blocklist(&mut cluster, a).contains("<item jid='eve@example.com'/>"));
}
