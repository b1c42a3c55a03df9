//! XEP-0313 message archive through the multi-shard harness: both sides of a chat are
//! archived on their home shards with a XEP-0359 stanza-id, a second device pages through
//! the conversation, filters by with/time/id work, preferences `never` stop archiving, rooms
//! archive groupchat, answer queries from members and send history to joiners, and the
//! archive survives a restart when it has a directory.

mod common;

use common::{chat, room_homed_on, TempDir};
use rookery_store::archive::ArchiveConfig;
use rookery_testkit::{user_homed_on, ClientId, Cluster, TEST_DOMAIN};

const SHARDS: u16 = 2;

fn cluster() -> Cluster {
    Cluster::with_config(SHARDS, |c| c.archive = Some(ArchiveConfig::memory()))
}

fn query(id: &str, qid: &str, fields: &str, rsm: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='{qid}'>\
<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
<value>urn:xmpp:mam:2</value></field>{fields}</x>\
<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set></query></iq>"
    )
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

/// The bodies of the result messages in `out`, in order.
fn bodies(out: &str) -> Vec<String> {
    out.split("<result ")
        .skip(1)
        .filter_map(|r| {
            let start = r.find("<body>")? + 6;
            Some(r[start..start + r[start..].find("</body>")?].to_owned())
        })
        .collect()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    Some(&text[start..start + text[start..].find(close)?])
}

struct Pair {
    a: ClientId,
    alice: String,
    bob: String,
    b: ClientId,
}

/// alice (home 0) and bob (home 1) exchange `n` messages each way, alternating.
fn chat_pair(cluster: &mut Cluster, n: usize) -> Pair {
    let (alice, bob) = (
        user_homed_on("alice", 0, SHARDS),
        user_homed_on("bob", 1, SHARDS),
    );
    let (a, _) = cluster.login(0, &alice, Some("a"));
    let (b, _) = cluster.login(1, &bob, Some("b"));
    cluster.send(a, "<presence/>");
    cluster.send(b, "<presence/>");
    let alice = format!("{alice}@{TEST_DOMAIN}");
    let bob = format!("{bob}@{TEST_DOMAIN}");
    for i in 0..n {
        cluster.advance(1_000);
        cluster.send(a, &chat(&bob, &format!("a{i}"), &format!("a{i}")));
        cluster.advance(1_000);
        cluster.send(b, &chat(&alice, &format!("b{i}"), &format!("b{i}")));
    }
    cluster.take_output(a);
    cluster.take_output(b);
    Pair { a, alice, bob, b }
}

#[test]
fn both_sides_are_archived_and_a_second_device_pages_through() {
    let mut cluster = cluster();
    let (alice, bob) = (
        user_homed_on("alice", 0, SHARDS),
        user_homed_on("bob", 1, SHARDS),
    );
    let (a, _) = cluster.login(0, &alice, Some("a"));
    let (b, _) = cluster.login(1, &bob, Some("b"));
    cluster.send(b, "<presence/>");
    cluster.take_output(b);
    let bob_bare = format!("{bob}@{TEST_DOMAIN}");
    cluster.send(a, &chat(&bob_bare, "m1", "hello"));
    let got = cluster.take_output(b);
    let sid = format!("<stanza-id xmlns='urn:xmpp:sid:0' by='{bob_bare}' id='");
    assert!(
        got.contains(&sid),
        "the delivered message carries bob's stanza-id: {got}"
    );
    // A stanza-id forged by the sender in bob's name is removed.
    let forged = format!(
        "<message to='{bob_bare}' type='chat' id='m2'><body>x</body>\
<stanza-id xmlns='urn:xmpp:sid:0' by='{bob_bare}' id='999'/></message>"
    );
    cluster.send(a, &forged);
    let got = cluster.take_output(b);
    assert!(!got.contains("id='999'"), "{got}");
    assert_eq!(got.matches("urn:xmpp:sid:0").count(), 1, "{got}");

    let mut cluster = self::cluster();
    let pair = chat_pair(&mut cluster, 3);
    // alice's second device, later: pages of 2, oldest first.
    let alice_local = pair.alice.split('@').next().expect("local");
    let (a2, _) = cluster.login(1, alice_local, Some("laptop"));
    let mut seen = Vec::new();
    let mut after = String::new();
    for page in 0..10 {
        let rsm = format!("<max>2</max>{after}");
        cluster.send(
            a2,
            &query(&format!("q{page}"), "Q", &field("with", &pair.bob), &rsm),
        );
        let out = cluster.take_output(a2);
        assert!(out.contains("queryid='Q'"), "{out}");
        assert!(
            out.contains("<forwarded xmlns='urn:xmpp:forward:0'><delay"),
            "{out}"
        );
        seen.extend(bodies(&out));
        let fin = between(&out, "<fin ", "</fin>").expect("a fin");
        if fin.contains("complete='true'") {
            break;
        }
        let last = between(fin, "<last>", "</last>").expect("a last id");
        after = format!("<after>{last}</after>");
    }
    assert_eq!(seen, ["a0", "b0", "a1", "b1", "a2", "b2"]);

    // The newest page, then the one before it.
    cluster.send(a2, &query("l1", "L", "", "<max>4</max><before/>"));
    let out = cluster.take_output(a2);
    assert_eq!(bodies(&out), ["a1", "b1", "a2", "b2"]);
    let first = between(&out, "<first>", "</first>")
        .expect("first")
        .to_owned();
    cluster.send(
        a2,
        &query(
            "l2",
            "L",
            "",
            &format!("<max>4</max><before>{first}</before>"),
        ),
    );
    let out = cluster.take_output(a2);
    assert_eq!(bodies(&out), ["a0", "b0"]);
    assert!(out.contains("complete='true'"), "{out}");

    // bob's archive on shard 1 holds the same conversation.
    cluster.send(pair.b, &query("bq", "B", "", ""));
    assert_eq!(bodies(&cluster.take_output(pair.b)).len(), 6);
    let _ = pair.a;
}

#[test]
fn filters_by_time_and_id_and_refuses_bad_ids() {
    let mut cluster = cluster();
    let pair = chat_pair(&mut cluster, 3);
    cluster.send(pair.a, &query("all", "A", "", ""));
    let out = cluster.take_output(pair.a);
    let stamps: Vec<&str> = out
        .split("<delay xmlns='urn:xmpp:delay' stamp='")
        .skip(1)
        .map(|s| &s[..s.find('\'').expect("end")])
        .collect();
    assert_eq!(stamps.len(), 6);
    let window = format!("{}{}", field("start", stamps[2]), field("end", stamps[3]));
    cluster.send(pair.a, &query("t", "T", &window, ""));
    assert_eq!(bodies(&cluster.take_output(pair.a)), ["a1", "b1"]);
    let ids: Vec<&str> = out
        .split("<result ")
        .skip(1)
        .map(|r| between(r, " id='", "'").expect("result id"))
        .collect();
    cluster.send(pair.a, &query("i", "I", &field("after-id", ids[3]), ""));
    assert_eq!(bodies(&cluster.take_output(pair.a)), ["a2", "b2"]);
    cluster.send(pair.a, &query("bad", "X", &field("after-id", "nope"), ""));
    assert!(cluster.take_output(pair.a).contains("<item-not-found"));
    cluster.send(
        pair.a,
        &query("bad2", "X", &field("start", "yesterday"), ""),
    );
    assert!(cluster.take_output(pair.a).contains("<bad-request"));
}

#[test]
fn prefs_never_stop_archiving_and_are_kept() {
    let mut cluster = cluster();
    let pair = chat_pair(&mut cluster, 1);
    let set = format!(
        "<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='always'>\
<always/><never><jid>{}</jid></never></prefs></iq>",
        pair.bob
    );
    cluster.send(pair.a, &set);
    let out = cluster.take_output(pair.a);
    assert!(
        out.contains("type='result'") && out.contains(&pair.bob),
        "{out}"
    );
    cluster.send(pair.a, &chat(&pair.bob, "x", "not archived"));
    cluster.send(pair.b, &chat(&pair.alice, "y", "not archived either"));
    cluster.take_output(pair.a);
    cluster.send(pair.a, &query("q", "Q", "", ""));
    assert_eq!(bodies(&cluster.take_output(pair.a)), ["a0", "b0"]);
    cluster.send(
        pair.a,
        "<iq type='get' id='p2'><prefs xmlns='urn:xmpp:mam:2'/></iq>",
    );
    let out = cluster.take_output(pair.a);
    assert!(
        out.contains(&format!("<never><jid>{}</jid></never>", pair.bob)),
        "{out}"
    );
    // bob did not opt out: his archive has all four.
    cluster.send(pair.b, &query("q", "Q", "", ""));
    assert_eq!(bodies(&cluster.take_output(pair.b)).len(), 4);
}

#[test]
fn disco_advertises_the_archive_only_when_on() {
    let mut cluster = cluster();
    let pair = chat_pair(&mut cluster, 0);
    let disco = format!(
        "<iq type='get' id='d' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        pair.alice
    );
    cluster.send(pair.a, &disco);
    assert!(cluster
        .take_output(pair.a)
        .contains("<feature var='urn:xmpp:mam:2'/>"));
    let mut off = Cluster::new(SHARDS);
    let (a, _) = off.login(0, &user_homed_on("alice", 0, SHARDS), Some("a"));
    off.send(
        a,
        &disco.replace(
            &pair.alice,
            &format!("{}@{TEST_DOMAIN}", user_homed_on("alice", 0, SHARDS)),
        ),
    );
    assert!(!off.take_output(a).contains("urn:xmpp:mam:2"));
    off.send(a, &query("q", "Q", "", ""));
    assert!(off.take_output(a).contains("<service-unavailable"));
}

#[test]
fn rooms_archive_groupchat_answer_queries_and_send_history() {
    let mut cluster = cluster();
    let room = room_homed_on(1, SHARDS);
    let (u1, u2) = (user_homed_on("u", 0, SHARDS), user_homed_on("v", 1, SHARDS));
    let (c1, _) = cluster.login(0, &u1, Some("r"));
    cluster.send(
        c1,
        &format!(
            "<presence to='{room}/one'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ),
    );
    cluster.take_output(c1);
    for i in 0..25 {
        cluster.advance(1_000);
        let say =
            format!("<message to='{room}' type='groupchat' id='g{i}'><body>g{i}</body></message>");
        cluster.send(c1, &say);
    }
    let out = cluster.take_output(c1);
    let sid = format!("<stanza-id xmlns='urn:xmpp:sid:0' by='{room}' id='");
    assert_eq!(
        out.matches(&sid).count(),
        25,
        "reflections carry the room's stanza-id"
    );

    // A joiner gets the last 20 by default, with delays, before the subject.
    let (c2, _) = cluster.login(1, &u2, Some("r"));
    cluster.send(
        c2,
        &format!(
            "<presence to='{room}/two'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ),
    );
    let out = cluster.take_output(c2);
    let history: Vec<&str> = out
        .split("<message ")
        .skip(1)
        .filter(|m| m.contains("<body>"))
        .collect();
    assert_eq!(history.len(), 20, "{out}");
    assert!(history[0].contains("<body>g5</body>") && history[19].contains("<body>g24</body>"));
    assert!(history[0].contains(&format!("<delay xmlns='urn:xmpp:delay' from='{room}'")));
    assert!(
        out.find("<body>g24</body>") < out.find("<subject"),
        "history before the subject"
    );
    cluster.send(
        c2,
        &format!("<presence to='{room}/two' type='unavailable'/>"),
    );
    cluster.send(c2, &format!("<presence to='{room}/two'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='3'/></x></presence>"));
    let out = cluster.take_output(c2);
    assert_eq!(out.matches("<body>").count(), 3, "{out}");

    // The room's archive, queried at the room.
    let q =
        query("rq", "R", "", "<max>5</max><before/>").replace("<iq ", &format!("<iq to='{room}' "));
    cluster.send(c2, &q);
    let out = cluster.take_output(c2);
    assert_eq!(bodies(&out), ["g20", "g21", "g22", "g23", "g24"]);
    assert!(
        out.contains(&format!("from='{room}'")) && out.contains("<fin "),
        "{out}"
    );
    let info = format!("<iq to='{room}' type='get' id='di'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    cluster.send(c2, &info);
    assert!(cluster.take_output(c2).contains("urn:xmpp:mam:2"));
}

#[test]
fn the_archive_survives_a_restart() {
    let dir = TempDir::new("mam");
    let config = ArchiveConfig {
        dir: Some(dir.path().to_path_buf()),
        retention_ms: 0,
        segment_bytes: 1 << 20,
        memory_max_bytes: 0,
    };
    let adjust = |c: &mut rookery_router::RouterConfig| c.archive = Some(config.clone());
    let mut cluster = Cluster::with_config(SHARDS, adjust);
    let pair = chat_pair(&mut cluster, 2);
    drop(cluster);
    assert!(dir.path().join("shard-0").is_dir() && dir.path().join("shard-1").is_dir());
    let mut cluster = Cluster::with_config(SHARDS, adjust);
    let alice_local = pair.alice.split('@').next().expect("local");
    let (a, _) = cluster.login(0, alice_local, Some("again"));
    cluster.send(a, &query("q", "Q", "", ""));
    assert_eq!(bodies(&cluster.take_output(a)), ["a0", "b0", "a1", "b1"]);
    assert!(cluster
        .router(0)
        .archive_stats()
        .is_some_and(|s| s.write_failures == 0));
}
