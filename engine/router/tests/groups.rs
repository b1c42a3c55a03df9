//! Groups (XEP-0045 rooms) through the multi-shard harness: members homed on different
//! shards join a room homed on another, a groupchat message reaches every occupant once from
//! `room/nick`, members who are offline get it from their queue at their next login (with a
//! XEP-0203 delay), leaving is announced, and refusals travel back across shards.

mod common;

use common::{join, room_homed_on};

use rookery_router::ShardId;
use rookery_testkit::{user_homed_on, ClientId, Cluster, TEST_DOMAIN};

const SHARDS: u16 = 3;

fn say(cluster: &mut Cluster, client: ClientId, room: &str, id: &str, body: &str) {
    cluster.send(
        client,
        &format!("<message to='{room}' type='groupchat' id='{id}'><body>{body}</body></message>"),
    );
}

/// One logged-in user: its client, full JID and nick.
struct Member {
    client: ClientId,
    jid: String,
    nick: String,
    user: String,
}

fn login(cluster: &mut Cluster, prefix: &str, home: u16) -> Member {
    let user = user_homed_on(prefix, home, SHARDS);
    // Land on another shard than home, so the hand-off is part of the path.
    let (client, jid) = cluster.login((home + 1) % SHARDS, &user, Some("r"));
    Member {
        client,
        jid,
        nick: prefix.to_owned(),
        user,
    }
}

/// Four users homed on shards 0, 1, 2, 0 join a room homed on shard 1, in order.
fn four_in_a_room(cluster: &mut Cluster) -> (String, Vec<Member>) {
    let room = room_homed_on(1, SHARDS);
    let people: Vec<Member> = [("ann", 0), ("ben", 1), ("cat", 2), ("dan", 0)]
        .into_iter()
        .map(|(prefix, home)| login(cluster, prefix, home))
        .collect();
    for (n, member) in people.iter().enumerate() {
        let out = join(cluster, member.client, &room, &member.nick);
        let own = format!(
            "<presence from='{room}/{}' to='{}'>",
            member.nick, member.jid
        );
        assert!(
            out.contains(&own),
            "{} gets its own presence: {out}",
            member.nick
        );
        assert!(out.contains("<status code='110'/>"), "{out}");
        assert_eq!(out.contains("<status code='201'/>"), n == 0, "{out}");
        assert!(out.ends_with("<subject/></message>"), "subject last: {out}");
        assert_eq!(
            out.matches("<presence ").count(),
            n + 1,
            "the others, then itself"
        );
        for earlier in &people[..n] {
            let theirs = format!("<presence from='{room}/{}'", earlier.nick);
            assert!(
                out.contains(&theirs),
                "{} sees {}: {out}",
                member.nick,
                earlier.nick
            );
            let news = cluster.take_output(earlier.client);
            assert!(
                news.contains(&format!("from='{room}/{}'", member.nick)),
                "{} hears that {} joined: {news}",
                earlier.nick,
                member.nick
            );
        }
    }
    (room, people)
}

#[test]
fn a_message_reaches_every_occupant_once_across_shards() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, people) = four_in_a_room(&mut cluster);
    say(&mut cluster, people[2].client, &room, "g1", "hello all");
    cluster.commit_all();
    for member in &people {
        let out = cluster.take_output(member.client);
        let expected = format!(
            "<message type='groupchat' id='g1' from='{room}/cat' to='{}'><body>hello all</body></message>",
            member.jid
        );
        assert_eq!(out, expected, "{} gets it once", member.nick);
    }
    // The room's home shard sent one fan-out mail per other shard, not one per member.
    let home = cluster.router(1).stats();
    assert!(home.fanouts >= 1);
    assert_eq!(home.groups, 1);
    assert_eq!(home.group_occupants, 4);
}

#[test]
fn offline_members_get_group_messages_at_their_next_login() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, people) = four_in_a_room(&mut cluster);
    // Dan leaves the room, then goes offline; cat just goes offline.
    cluster.send(
        people[3].client,
        &format!("<presence type='unavailable' to='{room}/dan'/>"),
    );
    let out = cluster.take_output(people[3].client);
    assert!(
        out.contains("type='unavailable'") && out.contains("<status code='110'/>"),
        "{out}"
    );
    let seen = cluster.take_output(people[0].client);
    assert!(seen.contains(&format!("from='{room}/dan'")) && seen.contains("role='none'"));
    cluster.disconnect(people[3].client);
    cluster.disconnect(people[2].client);
    // Cat's shard leaves the room on behalf of the session that ended.
    let seen = cluster.take_output(people[0].client);
    assert!(
        seen.contains(&format!("type='unavailable' from='{room}/cat'")),
        "{seen}"
    );
    cluster.take_output(people[1].client);

    cluster.advance(1_000);
    say(&mut cluster, people[1].client, &room, "g2", "while away");
    cluster.commit_all();
    for member in &people[..2] {
        let live = format!(
            "<message type='groupchat' id='g2' from='{room}/ben' to='{}'><body>while away</body></message>",
            member.jid
        );
        assert_eq!(
            cluster.take_output(member.client),
            live,
            "live, and reflected to ben"
        );
    }

    for (offline, shard) in [(&people[2], 2), (&people[3], 0)] {
        let bare = format!("{}@{TEST_DOMAIN}", offline.user);
        assert_eq!(cluster.router(shard).store().queue_len(&bare), 1, "{bare}");
        let (client, _) = cluster.login(shard, &offline.user, Some("again"));
        let out = cluster.initial_presence(client);
        let stored = format!("id='g2' from='{room}/ben' to='{bare}'><body>while away</body><delay xmlns='urn:xmpp:delay'");
        assert!(
            out.contains(&stored),
            "{} gets it with a delay: {out}",
            offline.nick
        );
        assert_eq!(out.matches("while away").count(), 1, "{out}");
    }
}

#[test]
fn leaving_is_announced_and_the_leaver_stops_receiving() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, people) = four_in_a_room(&mut cluster);
    let (ann, ben) = (&people[0], &people[1]);
    cluster.send(
        ben.client,
        &format!("<presence type='unavailable' to='{room}/ben'/>"),
    );
    let own = cluster.take_output(ben.client);
    assert!(own.starts_with(&format!(
        "<presence type='unavailable' from='{room}/ben' to='{}'>",
        ben.jid
    )));
    assert!(own.contains("<status code='110'/>"), "{own}");
    for other in [&people[0], &people[2], &people[3]] {
        let out = cluster.take_output(other.client);
        assert!(
            out.contains(&format!("type='unavailable' from='{room}/ben'")),
            "{out}"
        );
        assert!(!out.contains("110"), "{out}");
    }
    // Ben is still a member and online (but not available): the message waits in his queue.
    say(&mut cluster, ann.client, &room, "g3", "after");
    cluster.commit_all();
    assert_eq!(cluster.take_output(ben.client), "");
    let bare = format!("{}@{TEST_DOMAIN}", ben.user);
    assert_eq!(cluster.router(1).store().queue_len(&bare), 1);
    // A message from outside the room is refused, back across shards.
    say(&mut cluster, ben.client, &room, "g4", "let me");
    let error = cluster.take_output(ben.client);
    assert!(error.starts_with(&format!(
        "<message type='error' id='g4' from='{room}' to='{}'>",
        ben.jid
    )));
    assert!(error.contains("<not-acceptable"), "{error}");
}

/// The order of events the simulator found: a session joins a room and ends, the client
/// logs in again with the same resource and joins again, while the room's answers to the old
/// session (its join, its leave) are still on their way to the user's home shard (a cross-node
/// link retransmitting). The room takes join, leave, join in that order and keeps the new
/// session; the new session hears that the old one left, then its own join, never the old
/// session's "you are in" followed by "you left".
#[test]
fn a_new_session_of_the_same_full_jid_does_not_get_the_old_sessions_room_presence() {
    let mut cluster = Cluster::new(SHARDS);
    let room = room_homed_on(1, SHARDS);
    let ann = login(&mut cluster, "ann", 2);
    join(&mut cluster, ann.client, &room, &ann.nick);
    cluster.commit_all();
    cluster.take_output(ann.client);
    let ben = user_homed_on("ben", 0, SHARDS);
    // Everything for ben's home shard waits on the way from now on.
    cluster.lose_mail_to(0);
    let (old, jid) = cluster.login(0, &ben, Some("r"));
    join(&mut cluster, old, &room, "ben");
    cluster.commit_all();
    cluster.disconnect(old);
    cluster.commit_all();
    let (new, again) = cluster.login(0, &ben, Some("r"));
    assert_eq!(again, jid, "the same full JID");
    assert_eq!(
        join(&mut cluster, new, &room, "ben"),
        "",
        "the room's answers wait"
    );
    cluster.commit_all();
    let stats = cluster.router(1).stats();
    assert_eq!(stats.group_occupants, 2, "ann and the new session of ben");
    // The room's stanzas reach ben's home shard now, in the order they were sent.
    let held = cluster.take_lost_mail();
    assert!(
        held.len() >= 4,
        "old join's answers, its leave's, the new join's: {held:?}"
    );
    for (location, mail) in held {
        assert_eq!(location.shard, ShardId(0));
        cluster.deliver_mail(0, mail);
    }
    let out = cluster.take_output(new);
    let own = format!("<presence from='{room}/ben' to='{jid}'>");
    let left = format!("<presence type='unavailable' from='{room}/ben' to='{jid}'>");
    let ann_there = format!("<presence from='{room}/ann' to='{jid}'>");
    assert_eq!(
        out.matches(&own).count(),
        1,
        "its own join's answer only: {out}"
    );
    assert_eq!(
        out.matches(&ann_there).count(),
        1,
        "one occupant list: {out}"
    );
    assert_eq!(
        out.matches(&left).count(),
        1,
        "the old session's departure: {out}"
    );
    let (left_at, own_at) = (out.find(&left), out.find(&own));
    assert!(
        left_at < own_at,
        "the departure comes before the join: {out}"
    );
    assert!(cluster.router(0).stats().stale_room_presence >= 2);
    // The new session is in the room: it gets what ann says.
    say(&mut cluster, ann.client, &room, "after", "still there?");
    cluster.commit_all();
    for (location, mail) in cluster.take_lost_mail() {
        assert_eq!(location.shard, ShardId(0));
        cluster.deliver_mail(0, mail);
    }
    let out = cluster.take_output(new);
    assert!(
        out.contains("id='after'") && out.contains("still there?"),
        "{out}"
    );
}

#[test]
fn the_join_past_the_group_cap_is_refused_with_the_cap() {
    let mut cluster = Cluster::with_config(SHARDS, |config| config.group_max_members = 2);
    let room = room_homed_on(2, SHARDS);
    let ann = login(&mut cluster, "ann", 0);
    let ben = login(&mut cluster, "ben", 1);
    let cat = login(&mut cluster, "cat", 0);
    join(&mut cluster, ann.client, &room, "ann");
    join(&mut cluster, ben.client, &room, "ben");
    cluster.take_output(ann.client);
    let refused = join(&mut cluster, cat.client, &room, "cat");
    assert!(
        refused.starts_with(&format!(
            "<presence type='error' from='{room}/cat' to='{}'>",
            cat.jid
        )),
        "{refused}"
    );
    assert!(refused.contains("<service-unavailable"), "{refused}");
    assert!(refused.contains("maximum of 2 members"), "{refused}");
    assert_eq!(
        cluster.take_output(ann.client),
        "",
        "nobody hears of a refused join"
    );
}

#[test]
fn memberships_survive_a_restart_from_the_log() {
    let dir = common_dir("groups-restart");
    let room = room_homed_on(1, SHARDS);
    {
        let mut cluster = log_cluster(SHARDS, &dir);
        let alice = login(&mut cluster, "alice", 0);
        let out = join(&mut cluster, alice.client, &room, "alice");
        assert_eq!(out, "", "the room's creation is answered once stored");
        cluster.commit_all();
        let out = cluster.take_output(alice.client);
        assert!(out.contains("code='201'"), "{out}");
    }
    let mut cluster = log_cluster(SHARDS, &dir);
    let bob = login(&mut cluster, "bob", 2);
    join(&mut cluster, bob.client, &room, "bob");
    cluster.commit_all();
    let out = cluster.take_output(bob.client);
    assert!(
        out.contains("code='110'") && !out.contains("code='201'"),
        "{out}"
    );
    say(&mut cluster, bob.client, &room, "g1", "while you were out");
    cluster.commit_all();
    let alice = login(&mut cluster, "alice", 0);
    cluster.send(alice.client, "<presence/>");
    let out = cluster.take_output(alice.client);
    assert!(out.contains("while you were out"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn common_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rookery-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn log_cluster(shards: u16, dir: &std::path::Path) -> Cluster {
    use rookery_store::{Durability, Store, StoreConfig};
    Cluster::with_stores(
        shards,
        |_| {},
        |shard| {
            let config = StoreConfig::new(dir, shard).with_durability(Durability::Log);
            Store::open(config).expect("store opens")
        },
    )
}

#[test]
fn a_copy_the_store_refuses_is_reported_to_the_sender_not_dropped_silently() {
    use rookery_store::{Durability, Store, StoreConfig};
    // Every shard keeps at most one queued message per user.
    let mut cluster = Cluster::with_stores(
        SHARDS,
        |_| {},
        |shard| {
            let mut config = StoreConfig::new("", shard).with_durability(Durability::Memory);
            config.offline_max = 1;
            Store::open(config).expect("memory store")
        },
    );
    let (room, people) = four_in_a_room(&mut cluster);
    // dan goes away (still a member); ann sends two messages: the second cannot be queued.
    cluster.disconnect(people[3].client);
    for member in &people[..3] {
        cluster.take_output(member.client);
    }
    say(&mut cluster, people[0].client, &room, "g1", "first");
    say(&mut cluster, people[0].client, &room, "g2", "second");
    cluster.commit_all();
    let out = cluster.take_output(people[0].client);
    assert!(
        out.contains(&format!(
            "<message type='error' id='g2' from='{room}' to='{}'><error type='wait'><resource-constraint ",
            people[0].jid
        )),
        "{out}"
    );
    assert!(out.contains("not stored for 1 member(s)"), "{out}");
    assert!(
        !out.contains("id='g1' from='groups") && out.matches("type='error'").count() == 1,
        "{out}"
    );
    assert!(
        cluster.take_output(people[1].client).contains("second"),
        "the others got it"
    );
}

#[test]
fn the_service_default_can_limit_presence_broadcast_in_new_groups() {
    use rookery_router::BroadcastRoles;
    let mut cluster = Cluster::with_config(SHARDS, |config| {
        config.group_presence_broadcast = BroadcastRoles::parse("moderator").expect("valid roles");
    });
    let room = room_homed_on(0, SHARDS);
    let people: Vec<Member> = [("ann", 0), ("ben", 1), ("cat", 2)]
        .into_iter()
        .map(|(prefix, home)| login(&mut cluster, prefix, home))
        .collect();
    let outputs: Vec<String> = people
        .iter()
        .map(|member| join(&mut cluster, member.client, &room, &member.nick))
        .collect();
    // cat, the third, sees the owner's presence (a moderator) and its own, not ben's.
    assert!(
        outputs[2].contains(&format!("from='{room}/ann'")),
        "{}",
        outputs[2]
    );
    assert!(
        outputs[2].contains(&format!("from='{room}/cat'")),
        "{}",
        outputs[2]
    );
    assert!(
        !outputs[2].contains(&format!("from='{room}/ben'")),
        "{}",
        outputs[2]
    );
    let ben_heard = cluster.take_output(people[1].client);
    assert!(
        !ben_heard.contains("/cat'"),
        "participants are not announced: {ben_heard}"
    );
    say(
        &mut cluster,
        people[1].client,
        &room,
        "g1",
        "still delivered",
    );
    for member in &people {
        assert!(cluster
            .take_output(member.client)
            .contains("still delivered"));
    }
}

#[test]
fn a_fan_out_a_shard_never_answers_times_out_with_an_error_to_the_sender() {
    use rookery_router::{Mail, RouterConfig};
    let mut cluster = Cluster::new(SHARDS);
    let (room, people) = four_in_a_room(&mut cluster);
    // cat's shard (2) stands for a location whose mail is lost on the way.
    cluster.lose_mail_to(2);
    say(&mut cluster, people[0].client, &room, "g1", "anyone there?");
    cluster.commit_all();
    let sent = cluster.take_output(people[0].client);
    assert!(!sent.contains("type='error'"), "{sent}");
    cluster.advance(RouterConfig::DEFAULT_MAIL_TIMEOUT_MS);
    let out = cluster.take_output(people[0].client);
    assert_eq!(
        out,
        format!(
            "<message type='error' id='g1' from='{room}' to='{}'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </message>",
            people[0].jid
        )
    );
    assert_eq!(cluster.router(1).stats().mail_timeouts, 1);
    // The fan-out arrives late after all: cat gets the message, the room's shard ignores
    // the late answer (no second error).
    let fanouts: Vec<Mail> = cluster
        .take_lost_mail()
        .into_iter()
        .map(|(_, mail)| mail)
        .filter(|mail| matches!(mail, Mail::Fanout(_)))
        .collect();
    assert_eq!(fanouts.len(), 1);
    for mail in fanouts {
        cluster.deliver_mail(2, mail);
    }
    cluster.commit_all();
    assert!(cluster
        .take_output(people[2].client)
        .contains("anyone there?"));
    cluster.advance(RouterConfig::DEFAULT_MAIL_TIMEOUT_MS);
    assert_eq!(cluster.take_output(people[0].client), "");
    assert_eq!(cluster.router(1).stats().mail_timeouts, 1);
}
