//! Groups across shards: kicks (307), bans (301, rejoin forbidden), nick changes (303) seen by
//! another occupant, XEP-0410 self-ping, and a member's devices that did not join getting the
//! room's messages while another of its devices is in the room.

mod common;

use common::{join, room_homed_on};

use rookery_proto::Jid;
use rookery_testkit::{user_homed_on, ClientId, Cluster, TEST_DOMAIN};

const SHARDS: u16 = 3;

/// Owner ann (shard 0), ben (shard 2) in a room homed on shard 1.
fn room_of_two(cluster: &mut Cluster) -> (String, (ClientId, String), (ClientId, String)) {
    let room = room_homed_on(1, SHARDS);
    let ann = user_homed_on("ann", 0, SHARDS);
    let ben = user_homed_on("ben", 2, SHARDS);
    let (a, a_full) = cluster.login(0, &ann, Some("r"));
    let (b, b_full) = cluster.login(2, &ben, Some("r"));
    assert!(join(cluster, a, &room, "ann").contains("<status code='201'/>"));
    assert!(join(cluster, b, &room, "ben").contains("<status code='110'/>"));
    cluster.take_output(a);
    (room, (a, a_full), (b, b_full))
}

#[test]
fn a_kick_removes_and_a_ban_keeps_out() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, (a, _), (b, b_full)) = room_of_two(&mut cluster);
    cluster.send(
        a,
        &format!(
            "<iq type='set' id='k' to='{room}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='ben' role='none'/></query></iq>"
        ),
    );
    let out = cluster.take_output(b);
    assert!(
        out.contains("type='unavailable'")
            && out.contains("<status code='307'/><status code='110'/>"),
        "{out}"
    );
    let out = cluster.take_output(a);
    assert!(
        out.contains("<status code='307'/>") && out.contains("type='result' id='k'"),
        "{out}"
    );
    // A kicked member may come back.
    assert!(join(&mut cluster, b, &room, "ben").contains("<status code='110'/>"));
    cluster.take_output(a);
    let ben_bare = Jid::parse(&b_full).expect("jid").to_bare();
    cluster.send(
        a,
        &format!(
            "<iq type='set' id='ban' to='{room}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='outcast' jid='{ben_bare}'/></query></iq>"
        ),
    );
    let out = cluster.take_output(b);
    assert!(
        out.contains("<status code='301'/><status code='110'/>"),
        "{out}"
    );
    assert!(cluster.take_output(a).contains("type='result' id='ban'"));
    let refused = join(&mut cluster, b, &room, "ben");
    assert!(
        refused.contains("type='error'") && refused.contains("<forbidden"),
        "{refused}"
    );
    // Not a member any more: a message to the room does not reach ben.
    cluster.send(
        a,
        &format!("<message to='{room}' type='groupchat' id='m'><body>hi</body></message>"),
    );
    assert!(cluster.take_output(a).contains("<body>hi</body>"));
    assert_eq!(cluster.take_output(b), "");
}

#[test]
fn a_nick_change_is_seen_by_the_others_and_self_ping_is_answered() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, (a, _), (b, b_full)) = room_of_two(&mut cluster);
    let out = join(&mut cluster, b, &room, "benny");
    assert!(
        out.contains("<status code='303'/><status code='110'/>"),
        "{out}"
    );
    assert!(out.contains(&format!("from='{room}/benny'")), "{out}");
    let out = cluster.take_output(a);
    assert!(
        out.contains(&format!("from='{room}/ben'"))
            && out.contains("nick='benny'")
            && out.contains("<status code='303'/>"),
        "{out}"
    );
    assert!(
        out.contains(&format!("<presence from='{room}/benny' to=")),
        "{out}"
    );
    // A nick another occupant holds: conflict.
    assert!(join(&mut cluster, b, &room, "ann").contains("<conflict"));
    // XEP-0410: a ping to its own occupant JID is answered by the room.
    cluster.send(
        b,
        &format!("<iq type='get' id='sp' to='{room}/benny'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    assert_eq!(
        cluster.take_output(b),
        format!("<iq type='result' id='sp' from='{room}/benny' to='{b_full}'/>")
    );
    cluster.send(
        b,
        &format!("<iq type='get' id='d' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    );
    assert!(cluster
        .take_output(b)
        .contains("http://jabber.org/protocol/muc#self-ping-optimization"));
}

#[test]
fn a_members_other_devices_get_the_rooms_messages_while_one_is_in_the_room() {
    let mut cluster = Cluster::new(SHARDS);
    let (room, (a, _), (b, _)) = room_of_two(&mut cluster);
    let ben = user_homed_on("ben", 2, SHARDS);
    let (desktop, desktop_full) = cluster.login(2, &ben, Some("desktop"));
    cluster.send(desktop, "<presence/>");
    cluster.take_output(desktop);
    cluster.take_output(b);
    cluster.send(
        a,
        &format!("<message to='{room}' type='groupchat' id='m1'><body>hello</body></message>"),
    );
    let phone = cluster.take_output(b);
    assert_eq!(phone.matches("<body>hello</body>").count(), 1, "{phone}");
    let out = cluster.take_output(desktop);
    assert_eq!(out.matches("<body>hello</body>").count(), 1, "{out}");
    assert!(out.contains(&format!("to='{desktop_full}'")), "{out}");
}

#[test]
fn a_blocked_occupants_presence_and_messages_do_not_reach_the_blocker() {
    let mut cluster = Cluster::new(SHARDS);
    let room = room_homed_on(1, SHARDS);
    let ann = user_homed_on("ann", 0, SHARDS);
    let ben = user_homed_on("ben", 2, SHARDS);
    let cat = user_homed_on("cat", 1, SHARDS);
    let (a, _) = cluster.login(0, &ann, Some("r"));
    let (b, _) = cluster.login(2, &ben, Some("r"));
    let (c, _) = cluster.login(1, &cat, Some("r"));
    cluster.send(
        a,
        &format!(
            "<iq type='set' id='bl' to='{ann}@{TEST_DOMAIN}'><block xmlns='urn:xmpp:blocking'>\
             <item jid='{ben}@{TEST_DOMAIN}'/></block></iq>"
        ),
    );
    assert!(cluster.take_output(a).contains("type='result' id='bl'"));
    join(&mut cluster, a, &room, "ann");
    join(&mut cluster, c, &room, "cat");
    cluster.take_output(a);
    join(&mut cluster, b, &room, "ben");
    assert!(
        !cluster.take_output(a).contains("/ben'"),
        "ann does not see ben arrive"
    );
    assert!(cluster
        .take_output(c)
        .contains(&format!("from='{room}/ben'")));
    cluster.send(
        b,
        &format!("<message to='{room}' type='groupchat' id='m'><body>psst</body></message>"),
    );
    assert!(!cluster.take_output(a).contains("psst"), "nor his message");
    assert!(cluster.take_output(c).contains("psst"), "cat does");
    assert!(
        cluster.take_output(b).contains("psst"),
        "ben gets his reflection"
    );
}
