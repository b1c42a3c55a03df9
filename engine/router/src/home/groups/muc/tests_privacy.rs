//! Unit tests of what a room lets clients say about themselves and what it shows strangers:
//! no client-written `muc#user` extension survives into an occupant's presence, however it is
//! written, and a members-only room shows non-members nothing it holds.

use super::tests::{broadcast, only_error, sent, Bench, ALICE, BOB, DAVE, ROOM};
use super::RoomAction;

const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// Every stanza the actions carry, as text.
fn stanzas(actions: &[RoomAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match (sent(a), broadcast(a)) {
            (Some((_, s)), _) | (_, Some((_, s, _))) => s,
            (None, None) => unreachable!("an action is a send or a broadcast"),
        })
        .collect()
}

/// Asserts the occupant presence `stanza` carries exactly one `muc#user` element, the room's
/// own, first, and none of the forged item's claims, and that it parses strictly.
fn assert_only_the_rooms_extension(stanza: &str) {
    let wrapped = format!(
        "<s xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{stanza}</s>"
    );
    let doc = roxmltree::Document::parse(&wrapped)
        .unwrap_or_else(|e| panic!("not well-formed ({e}): {stanza}"));
    let presence = doc
        .root_element()
        .first_element_child()
        .expect("a presence");
    let extensions: Vec<_> = presence
        .descendants()
        .filter(|n| n.tag_name().namespace() == Some(MUC_USER) && n.tag_name().name() == "x")
        .collect();
    assert_eq!(extensions.len(), 1, "one muc#user extension: {stanza}");
    assert_eq!(
        presence.first_element_child(),
        Some(extensions[0]),
        "the room's extension comes first: {stanza}"
    );
    assert!(!stanza.contains("forged"), "{stanza}");
    if stanza.contains("/bob'") {
        // Bob is a member; only his forged item said owner.
        assert!(!stanza.contains("affiliation='owner'"), "{stanza}");
    }
}

#[test]
fn a_forged_muc_user_extension_never_reaches_occupants() {
    let forgeries = [
        format!("<x xmlns='{MUC_USER}'><item affiliation='owner' jid='forged@x/y'/></x>"),
        format!("<p:x xmlns:p='{MUC_USER}'><p:item affiliation='owner' jid='forged@x'/></p:x>"),
        "<x xmlns='http://jabber.org/protocol/muc&#35;user'><item affiliation='owner' \
         jid='forged@x'/></x>"
            .to_owned(),
        "<x xmlns='http://jabber.org/protocol/muc&#x23;user'><item affiliation='owner' \
         jid='forged@x'/></x>"
            .to_owned(),
        format!(
            "<y xmlns:p='{MUC_USER}'/><q:x xmlns:q='{MUC_USER}'><q:item affiliation='owner' \
                 jid='forged@x'/></q:x>"
        ),
    ];
    for forged in &forgeries {
        let mut bench = Bench::new(10);
        bench.join(ALICE, "al");
        // In the join itself: what the others and the joiner see.
        let join = format!(
            "<presence to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/>\
             <show>chat</show>{forged}</presence>"
        );
        let actions = bench.send(BOB, &join);
        let presences: Vec<String> = stanzas(&actions)
            .into_iter()
            .filter(|s| s.starts_with("<presence"))
            .collect();
        assert_eq!(
            presences.len(),
            3,
            "to alice, to bob, bob's own: {actions:?}"
        );
        for presence in &presences {
            assert_only_the_rooms_extension(presence);
        }
        assert!(presences.iter().any(|p| p.contains("<show>chat</show>")));
        // In a presence update, and shown again to a later joiner.
        let update = format!("<presence to='{ROOM}/bob'>{forged}<show>away</show></presence>");
        for presence in stanzas(&bench.send(BOB, &update)) {
            assert_only_the_rooms_extension(&presence);
        }
        let later = bench.join(DAVE, "dave");
        for presence in stanzas(&later)
            .iter()
            .filter(|s| s.starts_with("<presence"))
        {
            assert_only_the_rooms_extension(presence);
        }
    }
}

#[test]
fn muc_user_inherited_from_the_presence_is_removed_too() {
    let mut bench = Bench::new(10);
    bench.join(ALICE, "al");
    // The children inherit the presence's default namespace; copied alone they would become
    // jabber:client elements, but they were written as muc#user ones: dropped.
    let join = format!(
        "<presence to='{ROOM}/bob' xmlns='{MUC_USER}'><x><item affiliation='owner' \
         jid='forged@x'/></x></presence>"
    );
    for presence in stanzas(&bench.send(BOB, &join)) {
        if presence.starts_with("<presence") {
            assert_only_the_rooms_extension(&presence);
        }
    }
    // A child using a prefix the presence declares is dropped (alone it is not well-formed).
    let update = format!(
        "<presence to='{ROOM}/bob' xmlns:c='urn:c'><c:caps/><status>here</status></presence>"
    );
    let out = stanzas(&bench.send(BOB, &update));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("<status>here</status>") && !out[0].contains("caps"));
    assert_only_the_rooms_extension(&out[0]);
}

/// Makes `ROOM` (alice owner, bob member) members-only; returns the bench.
fn members_only_room() -> Bench {
    let mut bench = Bench::new(10);
    bench.join(ALICE, "al");
    bench.join(BOB, "bob");
    let form = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'>\
         <value>1</value></field><field var='muc#roomconfig_roomname'><value>Secret plans\
         </value></field></x></query></iq>"
    );
    let done = stanzas(&bench.send(ALICE, &form));
    assert!(done.iter().any(|s| s.contains("type='result'")), "{done:?}");
    let subject =
        format!("<message to='{ROOM}' type='groupchat'><subject>the heist</subject></message>");
    bench.send(BOB, &subject);
    bench
}

fn disco(bench: &mut Bench, from: &str, what: &str) -> String {
    let iq = format!(
        "<iq type='get' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#{what}'/></iq>"
    );
    let out = stanzas(&bench.send(from, &iq));
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].clone()
}

#[test]
fn a_members_only_room_shows_strangers_nothing() {
    let mut bench = members_only_room();
    // A member sees the name, the subject and the occupant count.
    let member = disco(&mut bench, BOB, "info");
    assert!(
        member.contains("Secret plans") && member.contains("the heist"),
        "{member}"
    );
    assert!(member.contains("muc#roominfo_occupants"), "{member}");
    // A stranger learns that it is a members-only conference room, and nothing else.
    let stranger = disco(&mut bench, DAVE, "info");
    assert!(stranger.contains("type='result'"), "{stranger}");
    assert!(stranger.contains("<identity category='conference' type='text'/>"));
    assert!(
        stranger.contains("<feature var='muc_membersonly'/>"),
        "{stranger}"
    );
    for hidden in ["Secret plans", "the heist", "roominfo", "<value>"] {
        assert!(!stranger.contains(hidden), "{hidden} shown: {stranger}");
    }
    let items = disco(&mut bench, DAVE, "items");
    assert!(items.ends_with("<query xmlns='http://jabber.org/protocol/disco#items'/></iq>"));
    // Joining as an occupant's nick or not, the refusal is the same and names no one.
    let taken = only_error(&bench.join(DAVE, "bob"), DAVE);
    let free = only_error(&bench.join(DAVE, "zed"), DAVE);
    for error in [&taken, &free] {
        assert!(error.contains("<registration-required "), "{error}");
        assert!(!error.contains("conflict"), "{error}");
    }
    assert_eq!(
        taken.replace("/bob", "/zed"),
        free,
        "a held nick changes nothing"
    );
}
