//! Unit tests of the room state machine: `Rooms` driven directly with a memory store, the
//! actions it returns inspected. Joins, presence, messages and leaving here; affiliations,
//! configuration, discovery and persistence in `tests_admin`.

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind, StanzaView};
use rookery_store::{Durability, Store, StoreConfig};

use super::room::Affiliation;
use super::{RoomAction, Rooms, RoomsConfig};
use crate::effects::StanzaType;
use crate::home::groups::fanout::FanoutPlan;
use crate::mail::Recipient;

pub(super) const ROOM: &str = "r@groups.example.com";
pub(super) const ALICE: &str = "alice@example.com/a";
pub(super) const BOB: &str = "bob@example.com/b";
pub(super) const CAROL: &str = "carol@example.com/c";
pub(super) const DAVE: &str = "dave@example.com/d";

pub(super) fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("valid test JID")
}

pub(super) fn memory_store() -> Store {
    Store::open(StoreConfig::new("", 0).with_durability(Durability::Memory))
        .expect("a memory store opens")
}

pub(super) fn rooms_config(max_members: usize, shards: u16) -> RoomsConfig {
    RoomsConfig {
        service: jid("groups.example.com"),
        local_domain: "example.com".into(),
        max_members,
        max_rooms: 1_000,
        max_rooms_per_user: 100,
        placement: crate::location::Placement::local(shards),
        location: crate::location::Location::local(0),
        default_broadcast: crate::config::BroadcastRoles::ALL,
        hash: crate::maps::HashState::from_seed(0),
    }
}

/// Rooms, a store, and a way to send them stanzas.
pub(super) struct Bench {
    pub rooms: Rooms,
    pub store: Store,
}

impl Bench {
    pub fn new(max_members: usize) -> Bench {
        Bench {
            rooms: Rooms::load(rooms_config(max_members, 3), &memory_store()),
            store: memory_store(),
        }
    }

    /// `stanza` (with a `to`) from `from`; the actions it caused.
    pub fn send(&mut self, from: &str, stanza: &str) -> Vec<RoomAction> {
        let view = StanzaView::parse(stanza.as_bytes()).expect("test stanza parses");
        let to = jid(&view.to().expect("test stanza has a to"));
        let mut out = Vec::new();
        self.rooms
            .on_stanza(&jid(from), &to, &view, (&mut self.store, None), &mut out);
        out
    }

    /// `from` joins `ROOM` as `nick`.
    pub fn join(&mut self, from: &str, nick: &str) -> Vec<RoomAction> {
        let stanza = format!(
            "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        );
        self.send(from, &stanza)
    }

    pub fn leave(&mut self, from: &str, nick: &str) -> Vec<RoomAction> {
        self.send(
            from,
            &format!("<presence type='unavailable' to='{ROOM}/{nick}'/>"),
        )
    }

    pub fn say(&mut self, from: &str, body: &str) -> Vec<RoomAction> {
        let stanza =
            format!("<message to='{ROOM}' type='groupchat' id='m'><body>{body}</body></message>");
        self.send(from, &stanza)
    }

    /// Alice creates the room (as `al`); bob (`bob`) and carol (`carol`) join.
    pub fn three(max_members: usize) -> Bench {
        let mut bench = Bench::new(max_members);
        bench.join(ALICE, "al");
        bench.join(BOB, "bob");
        bench.join(CAROL, "carol");
        bench
    }
}

/// A `Send`: its recipient and text.
pub(super) fn sent(action: &RoomAction) -> Option<(&str, String)> {
    match action {
        RoomAction::Send { to, stanza, .. } => Some((to.as_str(), text(stanza))),
        RoomAction::Broadcast { .. } => None,
    }
}

/// A `Broadcast`: its `from`, text and plan.
pub(super) fn broadcast(action: &RoomAction) -> Option<(&str, String, &Arc<FanoutPlan>)> {
    match action {
        RoomAction::Broadcast {
            from, stanza, plan, ..
        } => Some((from.as_str(), text(stanza), plan)),
        RoomAction::Send { .. } => None,
    }
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("rooms write UTF-8")
}

/// The only action, a `Send` of an error; its text.
pub(super) fn only_error(actions: &[RoomAction], to: &str) -> String {
    assert_eq!(actions.len(), 1, "{actions:?}");
    let Some((dest, stanza)) = sent(&actions[0]) else {
        panic!("expected an error, got {actions:?}");
    };
    assert_eq!(dest, to);
    assert!(stanza.contains("type='error'"), "{stanza}");
    stanza
}

fn sessions(recipients: &[Recipient]) -> Vec<String> {
    let mut names: Vec<String> = recipients
        .iter()
        .map(|r| match r {
            Recipient::Session(j) => format!("session {j}"),
            Recipient::Member(j) => format!("member {j}"),
            Recipient::Available(j) => format!("available {j}"),
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_join_creates_the_room_with_the_joiner_as_owner() {
    let mut bench = Bench::new(10);
    let actions = bench.join(ALICE, "al");
    assert_eq!(
        actions.len(),
        2,
        "self presence and subject only: {actions:?}"
    );
    let (to, presence) = sent(&actions[0]).expect("a send");
    assert_eq!(to, ALICE);
    assert_eq!(
        presence,
        format!(
            "<presence from='{ROOM}/al' to='{ALICE}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='owner' role='moderator' jid='{ALICE}'/><status code='100'/>\
             <status code='110'/><status code='201'/></x></presence>"
        )
    );
    let (to, subject) = sent(&actions[1]).expect("a send");
    assert_eq!(to, ALICE);
    assert_eq!(
        subject,
        format!("<message type='groupchat' from='{ROOM}' to='{ALICE}'><subject/></message>")
    );
    let room = bench.rooms.room(ROOM).expect("room exists");
    assert_eq!(room.affiliation("alice@example.com"), Affiliation::Owner);
    assert_eq!(bench.rooms.counts(), (1, 1));
    assert!(bench.store.kv_get(crate::tables::ROOMS, ROOM).is_some());
}

#[test]
fn a_joiner_gets_occupants_then_itself_then_the_subject() {
    let mut bench = Bench::new(10);
    bench.join(ALICE, "al");
    bench.join(BOB, "bob");
    let actions = bench.join(CAROL, "carol");
    assert_eq!(actions.len(), 5, "{actions:?}");
    let (to, first) = sent(&actions[0]).expect("al's presence");
    assert_eq!(to, CAROL);
    assert!(first.starts_with(&format!("<presence from='{ROOM}/al' to='{CAROL}'>")));
    assert!(first.contains(&format!(
        "affiliation='owner' role='moderator' jid='{ALICE}'"
    )));
    let (_, second) = sent(&actions[1]).expect("bob's presence");
    assert!(second.contains(&format!("from='{ROOM}/bob'")));
    assert!(second.contains("affiliation='member' role='participant'"));
    let (from, news, plan) = broadcast(&actions[2]).expect("carol's presence to the others");
    assert_eq!(from, format!("{ROOM}/carol"));
    assert!(!news.contains("to="), "{news}");
    assert!(!news.contains("code='110'"), "{news}");
    assert_eq!(plan.len(), 2, "alice and bob, not carol");
    let (_, own) = sent(&actions[3]).expect("carol's own presence");
    assert!(own.contains("<status code='110'/>") && own.contains("<status code='100'/>"));
    assert!(!own.contains("201"), "not a creation: {own}");
    let (_, subject) = sent(&actions[4]).expect("subject");
    assert!(subject.contains("<subject/>"));
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(room.affiliation("carol@example.com"), Affiliation::Member);
}

#[test]
fn groupchat_reaches_every_occupant_and_absent_member_once() {
    let mut bench = Bench::three(10);
    bench.join(DAVE, "dave");
    bench.join("dave@example.com/second", "dave");
    bench.leave(CAROL, "carol");
    let actions = bench.say(ALICE, "hi");
    assert_eq!(actions.len(), 1, "{actions:?}");
    let (from, stanza, plan) = broadcast(&actions[0]).expect("a broadcast");
    assert_eq!(from, format!("{ROOM}/al"));
    assert_eq!(
        stanza,
        format!("<message to='{ROOM}' type='groupchat' id='m' from='{ROOM}/al'><body>hi</body></message>")
    );
    let room = bench.rooms.room(ROOM).expect("room");
    let recipients = room.message_recipients();
    assert_eq!(
        sessions(&recipients),
        vec![
            format!("member alice@example.com"),
            format!("member bob@example.com"),
            format!("member carol@example.com"),
            format!("member dave@example.com"),
            format!("session {ALICE}"),
            format!("session {BOB}"),
            format!("session dave@example.com/d"),
            format!("session dave@example.com/second"),
        ]
    );
    // A present member's entry follows its sessions (its other devices get the message
    // live); an absent one (carol) comes after every occupant (stored for her).
    let dave = recipients
        .iter()
        .position(|r| matches!(r, Recipient::Session(j) if j.as_str() == "dave@example.com/second"))
        .expect("dave's second session");
    assert!(
        matches!(&recipients[dave + 1], Recipient::Member(j) if j.as_str() == "dave@example.com")
    );
    assert!(
        matches!(recipients.last(), Some(Recipient::Member(j)) if j.as_str() == "carol@example.com")
    );
    assert_eq!(
        **plan,
        FanoutPlan::build(recipients, &crate::location::Placement::local(3))
    );
    // The hot path reuses the plan; a membership change rebuilds it.
    let again = bench.say(BOB, "again");
    let (_, _, second) = broadcast(&again[0]).expect("a broadcast");
    assert!(Arc::ptr_eq(plan, second));
    bench.join(CAROL, "carol");
    let after = bench.say(BOB, "back");
    let (_, _, third) = broadcast(&after[0]).expect("a broadcast");
    assert!(!Arc::ptr_eq(plan, third));
    assert_eq!(third.len(), 9, "five sessions, four present members");
}

#[test]
fn groupchat_from_outside_the_room_is_refused() {
    let mut bench = Bench::three(10);
    let actions = bench.say(DAVE, "let me in");
    let error = only_error(&actions, DAVE);
    assert!(error.starts_with(&format!(
        "<message type='error' id='m' from='{ROOM}' to='{DAVE}'>"
    )));
    assert!(
        error.contains("<error type='modify'><not-acceptable"),
        "{error}"
    );
    let missing = bench.send(
        DAVE,
        "<message to='nope@groups.example.com' type='groupchat'/>",
    );
    assert!(only_error(&missing, DAVE).contains("item-not-found"));
    // An error is never answered.
    let bounce = format!("<message to='{ROOM}' type='error'><body/></message>");
    assert!(bench.send(DAVE, &bounce).is_empty());
}

#[test]
fn a_nick_held_by_someone_else_is_a_conflict() {
    let mut bench = Bench::three(10);
    let actions = bench.join(DAVE, "bob");
    let error = only_error(&actions, DAVE);
    assert!(error.starts_with(&format!(
        "<presence type='error' from='{ROOM}/bob' to='{DAVE}'>"
    )));
    assert!(error.contains("<error type='cancel'><conflict"), "{error}");
    // The same user under a second nick from another session: conflict too.
    let other = bench.join("bob@example.com/tablet", "bobby");
    assert!(only_error(&other, "bob@example.com/tablet").contains("You are in this group as 'bob'"));
    // Its second session under its own nick: admitted, nobody else told.
    let second = bench.join("bob@example.com/tablet", "bob");
    assert!(second.iter().all(|a| broadcast(a).is_none()), "{second:?}");
    assert_eq!(second.len(), 4, "al, carol, self, subject: {second:?}");
    assert_eq!(bench.rooms.counts(), (1, 3));
}

#[test]
fn leaving_tells_the_others_and_keeps_the_membership() {
    let mut bench = Bench::three(10);
    let actions = bench.leave(BOB, "bob");
    assert_eq!(actions.len(), 2, "{actions:?}");
    let (from, others, plan) = broadcast(&actions[0]).expect("to the others");
    assert_eq!(from, format!("{ROOM}/bob"));
    assert!(others.contains("type='unavailable'") && others.contains("role='none'"));
    assert!(!others.contains("110"));
    assert_eq!(plan.len(), 2, "alice and carol");
    let (to, own) = sent(&actions[1]).expect("to bob");
    assert_eq!(to, BOB);
    assert!(own.contains("type='unavailable'") && own.contains("<status code='110'/>"));
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(room.affiliation("bob@example.com"), Affiliation::Member);
    assert_eq!(bench.rooms.counts(), (1, 2));
    // A second unavailable (the session's end, sent by the user's shard) changes nothing;
    // only the sender hears it is out (its shard waits for that answer).
    let again = bench.leave(BOB, "bob");
    assert_eq!(again.len(), 1, "{again:?}");
    let (to, own) = sent(&again[0]).expect("to bob");
    assert_eq!(to, BOB);
    assert!(own.starts_with(&format!("<presence type='unavailable' from='{ROOM}/bob'")));
    assert!(own.contains("role='none'") && own.contains("<status code='110'/>"));
    assert_eq!(bench.rooms.counts(), (1, 2));
    // So does the leave of a room that does not exist.
    let nowhere = bench.send(
        BOB,
        "<presence type='unavailable' to='nowhere@groups.example.com/bob'/>",
    );
    assert_eq!(nowhere.len(), 1, "{nowhere:?}");
    let (to, own) = sent(&nowhere[0]).expect("to bob");
    assert_eq!(to, BOB);
    assert!(
        own.contains("from='nowhere@groups.example.com/bob'"),
        "{own}"
    );
    assert!(own.contains("affiliation='none'") && own.contains("<status code='110'/>"));
    assert_eq!(bench.rooms.counts(), (1, 2));
}

#[test]
fn one_session_of_several_leaving_hears_it_alone() {
    let mut bench = Bench::three(10);
    bench.join("bob@example.com/tablet", "bob");
    let actions = bench.leave(BOB, "bob");
    assert_eq!(actions.len(), 1, "{actions:?}");
    let (to, own) = sent(&actions[0]).expect("to the leaving session");
    assert_eq!(to, BOB);
    assert!(own.contains("<status code='110'/>"));
    assert_eq!(bench.rooms.counts(), (1, 3));
}

#[test]
fn presence_updates_are_broadcast_and_shown_to_later_joiners() {
    let mut bench = Bench::three(10);
    let away = format!("<presence to='{ROOM}/bob'><show>away</show></presence>");
    let actions = bench.send(BOB, &away);
    assert_eq!(actions.len(), 1, "{actions:?}");
    let (_, update, plan) = broadcast(&actions[0]).expect("a broadcast");
    assert!(update.starts_with(&format!(
        "<presence from='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc#user'>"
    )));
    assert!(
        update.ends_with("</x><show>away</show></presence>"),
        "{update}"
    );
    assert_eq!(plan.len(), 3);
    let joined = bench.join(DAVE, "dave");
    let bob = joined
        .iter()
        .filter_map(sent)
        .find(|(_, s)| s.contains("/bob'"))
        .expect("bob's presence to dave");
    assert!(bob.1.contains("<show>away</show>"));
    // A nick change (XEP-0045 7.6): unavailable with 303 and the new nick, then available,
    // to the others and (with 110) to bob; a nick someone else holds is a conflict.
    let rename = bench.join(BOB, "robert");
    assert_eq!(rename.len(), 4, "{rename:?}");
    let (from, gone, plan) = broadcast(&rename[0]).expect("the others hear bob leave");
    assert_eq!(from, format!("{ROOM}/bob"));
    assert!(gone.contains("type='unavailable'") && gone.contains("nick='robert'"));
    assert!(gone.contains("<status code='303'/>"), "{gone}");
    assert_eq!(plan.len(), 3, "alice, carol, dave");
    let (to, own) = sent(&rename[1]).expect("bob hears it too");
    assert_eq!(to, BOB);
    assert!(
        own.contains("<status code='303'/><status code='110'/>"),
        "{own}"
    );
    let (from, back, _) = broadcast(&rename[2]).expect("then robert arrives");
    assert_eq!(from, format!("{ROOM}/robert"));
    assert!(back.contains("<show>") || !back.contains("type="), "{back}");
    let (_, own) = sent(&rename[3]).expect("bob's own new presence");
    assert!(own.contains(&format!("from='{ROOM}/robert'")) && own.contains("code='110'"));
    let room = bench.rooms.room(ROOM).expect("room");
    assert_eq!(room.nick_of_session(BOB), Some("robert"));
    assert!(!room.occupants.contains_key("bob"));
    let taken = bench.join(BOB, "carol");
    assert!(only_error(&taken, BOB).contains("conflict"));
    assert_eq!(
        bench.rooms.room(ROOM).expect("room").nick_of_session(BOB),
        Some("robert")
    );
}

#[test]
fn members_only_rooms_refuse_strangers() {
    let mut bench = Bench::three(10);
    let form = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'>\
         <value>1</value></field></x></query></iq>"
    );
    let result = bench.send(ALICE, &form);
    assert_eq!(result.len(), 1, "{result:?}");
    assert!(sent(&result[0])
        .expect("result")
        .1
        .contains("type='result'"));
    let refused = bench.join(DAVE, "dave");
    let error = only_error(&refused, DAVE);
    assert!(
        error.contains("<error type='auth'><registration-required"),
        "{error}"
    );
    // A member (bob, who left) comes back.
    bench.leave(BOB, "bob");
    assert!(bench
        .join(BOB, "bob")
        .iter()
        .all(|a| !format!("{a:?}").contains("error")));
}

#[test]
fn the_join_past_the_member_cap_is_refused() {
    let mut bench = Bench::three(3);
    let refused = bench.join(DAVE, "dave");
    let error = only_error(&refused, DAVE);
    assert!(
        error.contains("<error type='wait'><service-unavailable"),
        "{error}"
    );
    assert!(error.contains("maximum of 3 members"), "{error}");
    assert_eq!(bench.rooms.room(ROOM).expect("room").member_count(), 3);
    // Members still come and go when the group is full.
    bench.leave(CAROL, "carol");
    let back = bench.join(CAROL, "carol");
    assert!(back
        .iter()
        .filter_map(sent)
        .all(|(_, s)| !s.contains("type='error'")));
}

#[test]
fn subject_changes_are_kept_broadcast_and_sent_to_joiners() {
    let mut bench = Bench::three(10);
    let change =
        format!("<message to='{ROOM}' type='groupchat'><subject>Plans</subject></message>");
    let actions = bench.send(BOB, &change);
    let (from, _, plan) = broadcast(&actions[0]).expect("a broadcast");
    assert_eq!(from, format!("{ROOM}/bob"));
    assert_eq!(
        plan.len(),
        6,
        "three occupant sessions and their three members"
    );
    let joined = bench.join(DAVE, "dave");
    let (_, subject) = sent(joined.last().expect("actions")).expect("the subject");
    assert_eq!(
        subject,
        format!("<message type='groupchat' from='{ROOM}/bob' to='{DAVE}'><subject>Plans</subject></message>")
    );
    let long = "x".repeat(super::room::MAX_SUBJECT_BYTES + 1);
    let change =
        format!("<message to='{ROOM}' type='groupchat'><subject>{long}</subject></message>");
    assert!(only_error(&bench.send(BOB, &change), BOB).contains("not-acceptable"));
}

#[test]
fn private_messages_go_to_the_occupant_from_the_sender_nick() {
    let mut bench = Bench::three(10);
    let pm = format!("<message to='{ROOM}/carol' type='chat' id='p'><body>psst</body></message>");
    let actions = bench.send(BOB, &pm);
    assert_eq!(actions.len(), 1);
    let RoomAction::Send { to, kind, ty, .. } = &actions[0] else {
        panic!("a send: {actions:?}");
    };
    assert_eq!(
        (to.as_str(), *kind, *ty),
        (CAROL, StanzaKind::Message, StanzaType::Chat)
    );
    assert_eq!(
        sent(&actions[0]).expect("send").1,
        format!("<message type='chat' id='p' from='{ROOM}/bob' to='{CAROL}'><body>psst</body></message>")
    );
    let nobody = format!("<message to='{ROOM}/zed' type='chat'><body/></message>");
    assert!(only_error(&bench.send(BOB, &nobody), BOB).contains("item-not-found"));
    assert!(only_error(&bench.send(DAVE, &pm), DAVE).contains("not-acceptable"));
}

#[test]
fn presence_without_a_nick_is_malformed() {
    let mut bench = Bench::new(10);
    let actions = bench.send(ALICE, &format!("<presence to='{ROOM}'/>"));
    assert!(only_error(&actions, ALICE).contains("jid-malformed"));
    assert_eq!(bench.rooms.counts(), (0, 0));
}
