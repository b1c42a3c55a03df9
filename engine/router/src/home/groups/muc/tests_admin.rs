//! Unit tests of affiliations (`muc#admin`), configuration (`muc#owner`), discovery and
//! persistence (encodings, load, damaged values).

use super::persist::{decode_affiliation, decode_room, encode_room};
use super::room::{Affiliation, Role, RoleSet, Room, RoomConfig, Subject};
use super::tests::{
    broadcast, jid, memory_store, only_error, rooms_config, sent, Bench, ALICE, BOB, CAROL, DAVE,
    ROOM,
};
use super::{RoomAction, Rooms};
use crate::tables::{self, AFFILIATIONS, ROOMS};

fn admin_set(
    bench: &mut Bench,
    from: &str,
    user: &str,
    affiliation: &str,
) -> Vec<super::RoomAction> {
    let iq = format!(
        "<iq type='set' id='s' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item affiliation='{affiliation}' jid='{user}'/></query></iq>"
    );
    bench.send(from, &iq)
}

fn admin_get(bench: &mut Bench, from: &str, affiliation: &str) -> Vec<super::RoomAction> {
    let iq = format!(
        "<iq type='get' id='g' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item affiliation='{affiliation}'/></query></iq>"
    );
    bench.send(from, &iq)
}

fn is_result(actions: &[super::RoomAction]) -> bool {
    actions
        .first()
        .and_then(sent)
        .is_some_and(|(_, s)| s.starts_with("<iq type='result'"))
}

#[test]
fn affiliation_lists_are_for_owners_and_admins() {
    let mut bench = Bench::three(10);
    let refused = admin_get(&mut bench, BOB, "member");
    assert!(only_error(&refused, BOB).contains("<error type='auth'><forbidden"));
    let members = admin_get(&mut bench, ALICE, "member");
    let (_, list) = sent(&members[0]).expect("a result");
    assert!(list.starts_with(&format!(
        "<iq type='result' id='g' from='{ROOM}' to='{ALICE}'>"
    )));
    assert!(list.contains(
        "<item affiliation='member' jid='bob@example.com' nick='bob' role='participant'/>"
    ));
    assert!(list.contains("jid='carol@example.com'"));
    assert!(
        !list.contains("jid='alice@"),
        "owners are another list: {list}"
    );
    let owners = admin_get(&mut bench, ALICE, "owner");
    assert!(sent(&owners[0])
        .expect("result")
        .1
        .contains("jid='alice@example.com'"));
    let roles = format!(
        "<iq type='get' id='g' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item role='participant'/></query></iq>"
    );
    let list = text_of_result(&bench.send(ALICE, &roles));
    assert!(list.contains("nick='bob' role='participant'"), "{list}");
    assert!(!list.contains("nick='al'"), "alice is a moderator: {list}");
}

fn text_of_result(actions: &[RoomAction]) -> String {
    let (to, reply) = sent(&actions[0]).expect("a reply");
    assert_eq!(to, ALICE);
    assert!(reply.contains("type='result'"), "{reply}");
    reply
}

#[test]
fn a_moderator_kicks_and_an_owner_bans() {
    let mut bench = Bench::three(10);
    let kick = format!(
        "<iq type='set' id='k' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item nick='bob' role='none'/></query></iq>"
    );
    // bob is no moderator: he may not kick carol.
    let carol_kick = kick.replace("nick='bob'", "nick='carol'");
    assert!(only_error(&bench.send(BOB, &carol_kick), BOB).contains("forbidden"));
    let actions = bench.send(ALICE, &kick);
    let (_, others, plan) = broadcast(&actions[0]).expect("the others hear it");
    assert!(others.contains("<status code='307'/>") && others.contains("role='none'"));
    assert_eq!(plan.len(), 2);
    let (to, own) = sent(&actions[1]).expect("bob hears it");
    assert_eq!(to, BOB);
    assert!(
        own.contains("<status code='307'/><status code='110'/>"),
        "{own}"
    );
    assert!(sent(&actions[2]).is_some_and(|(to, r)| to == ALICE && r.contains("type='result'")));
    let room = bench.rooms.room(ROOM).expect("room");
    assert!(room.nick_of_session(BOB).is_none());
    assert_eq!(
        room.affiliation("bob@example.com"),
        Affiliation::Member,
        "still a member"
    );
    // An owner cannot be kicked.
    let owner_kick = kick.replace("nick='bob'", "nick='al'");
    assert!(only_error(&bench.send(ALICE, &owner_kick), ALICE).contains("not-allowed"));
    // Voice changes: rooms are unmoderated.
    let voice = kick.replace("nick='bob' role='none'", "nick='carol' role='visitor'");
    assert!(only_error(&bench.send(ALICE, &voice), ALICE).contains("feature-not-implemented"));

    // A ban removes carol (301), ends her membership and keeps her out.
    let ban = admin_set(&mut bench, ALICE, "carol@example.com", "outcast");
    assert!(is_result(&ban), "{ban:?}");
    let (_, others, _) = broadcast(&ban[1]).expect("the others hear it");
    assert!(others.contains("<status code='301'/>") && others.contains("affiliation='outcast'"));
    let (to, own) = sent(&ban[2]).expect("carol hears it");
    assert_eq!(to, CAROL);
    assert!(
        own.contains("<status code='301'/><status code='110'/>"),
        "{own}"
    );
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(room.affiliation("carol@example.com"), Affiliation::Outcast);
    assert!(!room.affiliations.contains_key("carol@example.com"));
    let rejoin = bench.join(CAROL, "carol");
    assert!(only_error(&rejoin, CAROL).contains("forbidden"));
    let outcasts = format!(
        "<iq type='get' id='o' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item affiliation='outcast'/></query></iq>"
    );
    let list = text_of_result(&bench.send(ALICE, &outcasts));
    assert!(list.contains("<item affiliation='outcast' jid='carol@example.com'/>"));
    // Stored: the ban survives a reload; lifting it lets carol in again.
    let stored = bench
        .store
        .kv_get(AFFILIATIONS, &tables::key(ROOM, "carol@example.com"))
        .map(<[u8]>::to_vec);
    assert_eq!(stored.as_deref(), Some(&[1u8, 4][..]));
    assert!(is_result(&admin_set(
        &mut bench,
        ALICE,
        "carol@example.com",
        "none"
    )));
    assert!(bench
        .join(CAROL, "carol")
        .iter()
        .all(|a| sent(a).is_none_or(|(_, s)| !s.contains("type='error'"))));
}

#[test]
fn who_may_change_affiliations() {
    let mut bench = Bench::three(10);
    // A member grants nothing.
    let refused = admin_set(&mut bench, BOB, "dave@example.com", "member");
    assert!(only_error(&refused, BOB).contains("forbidden"));
    // The owner makes bob admin: bob's presence is re-broadcast with his new role.
    let promoted = admin_set(&mut bench, ALICE, "bob@example.com", "admin");
    assert!(is_result(&promoted), "{promoted:?}");
    let (_, presence, plan) = broadcast(&promoted[1]).expect("bob's new presence");
    assert!(presence.contains("affiliation='admin' role='moderator'"));
    assert_eq!(plan.len(), 3);
    // An admin adds a member, but may not make admins or touch the owner.
    assert!(is_result(&admin_set(
        &mut bench,
        BOB,
        "dave@example.com",
        "member"
    )));
    let refused = admin_set(&mut bench, BOB, "carol@example.com", "admin");
    assert!(only_error(&refused, BOB).contains("forbidden"));
    let refused = admin_set(&mut bench, BOB, "alice@example.com", "none");
    assert!(only_error(&refused, BOB).contains("forbidden"));
    // Anyone leaves the group for good; the last owner may not.
    assert!(is_result(&admin_set(
        &mut bench,
        CAROL,
        "carol@example.com",
        "none"
    )));
    let refused = admin_set(&mut bench, ALICE, "alice@example.com", "none");
    assert!(only_error(&refused, ALICE).contains("conflict"));
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(room.affiliation("dave@example.com"), Affiliation::Member);
    assert_eq!(room.affiliation("carol@example.com"), Affiliation::None);
    assert_eq!(room.affiliation("bob@example.com"), Affiliation::Admin);
    let key = tables::key(ROOM, "dave@example.com");
    assert!(bench.store.kv_get(AFFILIATIONS, &key).is_some());
    assert!(bench
        .store
        .kv_get(AFFILIATIONS, &tables::key(ROOM, "carol@example.com"))
        .is_none());
    // A member may not ban.
    let ban = admin_set(&mut bench, DAVE, "eve@example.com", "outcast");
    assert!(only_error(&ban, DAVE).contains("forbidden"));
}

#[test]
fn adding_members_past_the_cap_is_refused() {
    let mut bench = Bench::three(3);
    let refused = admin_set(&mut bench, ALICE, "dave@example.com", "member");
    let error = only_error(&refused, ALICE);
    assert!(
        error.contains("not-allowed") && error.contains("maximum of 3"),
        "{error}"
    );
}

#[test]
fn maxusers_caps_the_people_in_the_room_at_once() {
    let mut bench = Bench::three(10);
    let form = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_maxusers'>\
         <value>3</value></field></x></query></iq>"
    );
    assert!(is_result(&bench.send(ALICE, &form)));
    let refused = bench.join(DAVE, "dave");
    let error = only_error(&refused, DAVE);
    assert!(error.contains("maximum of 3 people"), "{error}");
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(
        room.affiliation("dave@example.com"),
        Affiliation::None,
        "not made a member"
    );
    // Another session of someone inside is not one more person.
    let second = bench.join("bob@example.com/tablet", "bob");
    assert!(second
        .iter()
        .filter_map(sent)
        .all(|(_, s)| !s.contains("type='error'")));
}

#[test]
fn losing_membership_of_a_members_only_room_removes_the_occupant() {
    let mut bench = Bench::three(10);
    let form = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'>\
         <value>true</value></field></x></query></iq>"
    );
    assert!(is_result(&bench.send(ALICE, &form)));
    let actions = admin_set(&mut bench, ALICE, "carol@example.com", "none");
    assert!(is_result(&actions), "{actions:?}");
    let (_, others, plan) = broadcast(&actions[1]).expect("to the others");
    assert!(others.contains("<status code='321'/>") && others.contains("role='none'"));
    assert_eq!(plan.len(), 2);
    let (to, own) = sent(&actions[2]).expect("to carol");
    assert_eq!(to, CAROL);
    assert!(
        own.contains("<status code='321'/><status code='110'/>"),
        "{own}"
    );
    assert_eq!(bench.rooms.counts(), (1, 2));
}

#[test]
fn the_configuration_form_shows_and_takes_values() {
    let mut bench = Bench::three(10);
    let get = format!(
        "<iq type='get' id='f' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>"
    );
    assert!(only_error(&bench.send(BOB, &get), BOB).contains("forbidden"));
    let form = sent(&bench.send(ALICE, &get)[0]).expect("the form").1;
    assert!(form.contains("<field var='muc#roomconfig_maxusers' type='text-single'"));
    assert!(form.contains("<value>10</value>"), "{form}");
    let submit = |fields: &str| {
        format!(
            "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
        )
    };
    // The instant-room acceptance and a non-persistent request are accepted.
    assert!(is_result(&bench.send(ALICE, &submit(""))));
    let fields = "<field var='muc#roomconfig_persistentroom'><value>0</value></field>\
                  <field var='muc#roomconfig_roomname'><value>Team</value></field>\
                  <field var='muc#roomconfig_maxusers'><value>5000</value></field>\
                  <field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field>";
    assert!(is_result(&bench.send(ALICE, &submit(fields))));
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(&*room.config.name, "Team");
    assert_eq!(room.config.max_users, 10, "clamped to the member cap");
    assert!(room.config.broadcast.contains(Role::Moderator));
    assert!(!room.config.broadcast.contains(Role::Participant));
    let bad = "<field var='muc#roomconfig_membersonly'><value>maybe</value></field>";
    assert!(only_error(&bench.send(ALICE, &submit(bad)), ALICE).contains("bad-request"));
    // With participants' presence not broadcast, a joiner sees only the owner.
    let joined = bench.join(DAVE, "dave");
    assert!(joined.iter().all(|a| broadcast(a).is_none()), "{joined:?}");
    let presences = joined
        .iter()
        .filter_map(sent)
        .filter(|(_, s)| s.starts_with("<presence"));
    assert_eq!(presences.count(), 2, "alice's and dave's own");
}

#[test]
fn discovery_of_the_service_and_rooms() {
    let mut bench = Bench::three(10);
    let service = "<iq type='get' id='d' to='groups.example.com'>\
                   <query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
    let info = sent(&bench.send(DAVE, service)[0]).expect("result").1;
    assert!(info.contains("category='conference' type='text'"));
    assert!(info.contains("<feature var='http://jabber.org/protocol/muc'/>"));
    let items = "<iq type='get' id='d' to='groups.example.com'>\
                 <query xmlns='http://jabber.org/protocol/disco#items'/></iq>";
    let items = sent(&bench.send(DAVE, items)[0]).expect("result").1;
    assert!(items.contains(&format!("<item jid='{ROOM}'/>")), "{items}");
    let room = format!(
        "<iq type='get' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    );
    let info = sent(&bench.send(DAVE, &room)[0]).expect("result").1;
    for feature in ["muc_persistent", "muc_open", "muc_nonanonymous"] {
        assert!(
            info.contains(&format!("<feature var='{feature}'/>")),
            "{info}"
        );
    }
    let unknown = format!("<iq type='get' id='v' to='{ROOM}'><vCard xmlns='vcard-temp'/></iq>");
    assert!(only_error(&bench.send(DAVE, &unknown), DAVE).contains("service-unavailable"));
    let ping =
        |to: &str| format!("<iq type='get' id='p' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(is_result(&bench.send(BOB, &ping(&format!("{ROOM}/bob")))));
    let stranger = bench.send(DAVE, &ping(&format!("{ROOM}/bob")));
    assert!(only_error(&stranger, DAVE).contains("not-acceptable"));
    let missing = "<iq type='get' id='x' to='zz@groups.example.com'>\
                   <query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
    assert!(only_error(&bench.send(DAVE, missing), DAVE).contains("item-not-found"));
    // A result is never answered.
    assert!(bench
        .send(DAVE, &format!("<iq type='result' id='r' to='{ROOM}'/>"))
        .is_empty());
}

#[test]
fn rooms_survive_a_reload_from_the_store() {
    let mut bench = Bench::three(10);
    let fields = "<field var='muc#roomconfig_membersonly'><value>1</value></field>\
                  <field var='muc#roomconfig_roomname'><value>Crew</value></field>\
                  <field var='muc#roomconfig_maxusers'><value>7</value></field>";
    let form = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
    );
    assert!(is_result(&bench.send(ALICE, &form)));
    bench.send(
        BOB,
        &format!("<message to='{ROOM}' type='groupchat'><subject>Hi</subject></message>"),
    );
    admin_set(&mut bench, ALICE, "dave@example.com", "admin");
    // The bench's config has 3 shards; reload with the room's home shard.
    let mut config = rooms_config(10, 3);
    config.location = config.placement.home(&jid(ROOM));
    let reloaded = Rooms::load(config.clone(), &bench.store);
    assert_eq!(reloaded.counts(), (1, 0), "occupants are not persisted");
    let room = reloaded.room(ROOM).expect("room restored");
    assert_eq!(&*room.config.name, "Crew");
    assert!(room.config.members_only);
    assert_eq!(room.config.max_users, 7);
    assert_eq!(&*room.subject.text, "Hi");
    assert_eq!(&*room.subject.nick, "bob");
    assert_eq!(room.affiliation("alice@example.com"), Affiliation::Owner);
    assert_eq!(room.affiliation("bob@example.com"), Affiliation::Member);
    assert_eq!(room.affiliation("dave@example.com"), Affiliation::Admin);
    assert_eq!(room.member_count(), 4);
    // Another shard restores nothing of it.
    config.location.shard.0 = (config.location.shard.0 + 1) % 3;
    assert_eq!(Rooms::load(config, &bench.store).counts(), (0, 0));
}

#[test]
fn damaged_values_are_skipped_without_losing_the_room() {
    let mut store = memory_store();
    let bad_room = "bad@groups.example.com";
    store.kv_set(ROOMS, bad_room, &[1, 0, 7]).expect("set");
    store
        .kv_set(ROOMS, "good@groups.example.com", &[9, 9, 9])
        .expect("set");
    store.kv_set(ROOMS, "not a jid@@", &[1]).expect("set");
    store
        .kv_set(ROOMS, "elsewhere@other.example.com", &[1])
        .expect("set");
    let owner = tables::key(bad_room, "u@example.com");
    store.kv_set(AFFILIATIONS, &owner, &[1, 1]).expect("set");
    let broken = tables::key(bad_room, "v@example.com");
    store.kv_set(AFFILIATIONS, &broken, &[1]).expect("set");
    let orphan = tables::key("orphan@groups.example.com", "w@example.com");
    store.kv_set(AFFILIATIONS, &orphan, &[1, 3]).expect("set");
    let rooms = Rooms::load(rooms_config(10, 1), &store);
    assert_eq!(
        rooms.counts(),
        (3, 0),
        "bad, good (default config) and orphan"
    );
    let room = rooms.room(bad_room).expect("kept");
    assert_eq!(room.config, RoomConfig::new(10));
    assert_eq!(room.affiliation("u@example.com"), Affiliation::Owner);
    assert_eq!(room.affiliation("v@example.com"), Affiliation::None);
    let orphan = rooms.room("orphan@groups.example.com").expect("restored");
    assert_eq!(orphan.affiliation("w@example.com"), Affiliation::Member);
}

#[test]
fn every_truncation_of_a_room_record_is_refused() {
    let mut room = Room::new(jid(ROOM), RoomConfig::new(1024));
    room.config.name = "Nåme".into();
    room.config.members_only = true;
    room.config.broadcast = RoleSet(2);
    room.subject = Subject {
        text: "subject".into(),
        nick: "nick".into(),
    };
    let bytes = encode_room(&room);
    let (config, subject) = decode_room(&bytes).expect("round trip");
    assert_eq!(
        (config, subject),
        (room.config.clone(), room.subject.clone())
    );
    for len in 0..bytes.len() {
        assert_eq!(decode_room(&bytes[..len]), None, "prefix of {len} bytes");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"future");
    assert!(
        decode_room(&longer).is_some(),
        "appended fields are ignored"
    );
    assert_eq!(decode_affiliation(&[1, 2]), Some(Affiliation::Admin));
    assert_eq!(decode_affiliation(&[1]), None);
    assert_eq!(decode_affiliation(&[2, 1]), None);
    assert_eq!(decode_affiliation(&[1, 4]), Some(Affiliation::Outcast));
    assert_eq!(decode_affiliation(&[1, 5]), None);
}
