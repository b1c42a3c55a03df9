//! The presence and group profiles: roster, presence, iq answers and groupchat events.

use super::*;

#[test]
fn roster_profile_withholds_presence_and_reports_the_roster() {
    let (mut h, reply) = online_with(SmPolicy::EnableWhenOffered, Profile::Roster);
    assert_eq!(
        reply, "<enable xmlns='urn:xmpp:sm:3'/>",
        "no initial presence"
    );
    let mut out = Vec::new();
    h.client.request_roster(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>"
    );
    h.feed(
        "<iq type='result' id='roster1' to='user1@example.test/load'><query \
         xmlns='jabber:iq:roster' ver='3'><item jid='user2@example.test' subscription='both'/>\
         <item jid='user9@example.test' subscription='to' ask='subscribe'><group>x</group></item>\
         <item jid='user5@example.test'/></query></iq>",
    );
    assert_eq!(
        h.events,
        vec![
            "RosterItem { jid: \"user2@example.test\", subscription: Both }",
            "RosterItem { jid: \"user9@example.test\", subscription: To }",
            "RosterItem { jid: \"user5@example.test\", subscription: None }",
            "RosterLoaded",
        ]
    );
    h.events.clear();
    // A push is acknowledged (RFC 6121 2.1.6) and counted for stream management.
    let reply = h.feed(
        "<iq type='set' id='push&amp;1' from='user1@example.test'><query \
         xmlns='jabber:iq:roster'><item jid='user3@example.test' subscription='from'/></query></iq>",
    );
    assert_eq!(reply, "<iq type='result' id='push&amp;1'/>");
    assert_eq!(
        h.events,
        vec!["RosterItem { jid: \"user3@example.test\", subscription: From }"]
    );
    h.client.wrote_stanzas(2);
    assert_eq!(
        h.client.sm().map(|s| s.0),
        Some(4),
        "roster get, push answer and the worker's two stanzas"
    );
    // Other iqs still get the usual answer; answers to ours are reported.
    let reply = h.feed("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>");
    assert!(reply.contains("service-unavailable"), "{reply}");
    h.events.clear();
    h.feed("<iq type='result' id='cfg-3'/><iq type='error' id='cfg-4'/>");
    assert_eq!(
        h.events,
        vec![
            "IqAnswer { id: \"cfg-3\", ok: true }",
            "IqAnswer { id: \"cfg-4\", ok: false }"
        ]
    );
}

#[test]
fn presence_is_reported_with_status_muc_codes_and_errors() {
    let (mut h, reply) = online_with(SmPolicy::EnableWhenOffered, Profile::Group);
    assert!(
        reply.ends_with("<presence/>"),
        "group clients are available: {reply}"
    );
    h.feed(
        "<presence from='user2@example.test/load'><status>rk r=1 s=1 q=0 i=5 a=6</status></presence>\
         <presence from='user2@example.test' type='subscribe'/>\
         <presence from='g1@groups.example.test/user1'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item role='moderator'/><status code='201'/><status code='110'/></x></presence>\
         <presence from='g2@groups.example.test/user1' type='error'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>\
         <message from='g1@groups.example.test/user2' type='groupchat'><body>rk r=1 s=1 q=0 i=5 a=6</body></message>\
         <message from='g1@groups.example.test' type='groupchat'><subject/></message>",
    );
    assert_eq!(
        h.events,
        vec![
            "Presence(PresenceEvent { from: \"user2@example.test/load\", kind: Available, \
             status: Some(\"rk r=1 s=1 q=0 i=5 a=6\"), muc_self: false, muc_created: false, \
             error: None })",
            "Presence(PresenceEvent { from: \"user2@example.test\", kind: Subscribe, \
             status: None, muc_self: false, muc_created: false, error: None })",
            "Presence(PresenceEvent { from: \"g1@groups.example.test/user1\", kind: Available, \
             status: None, muc_self: true, muc_created: true, error: None })",
            "Presence(PresenceEvent { from: \"g2@groups.example.test/user1\", kind: Error, \
             status: None, muc_self: false, muc_created: false, \
             error: Some(\"service-unavailable\") })",
            "GroupMessage { from: \"g1@groups.example.test/user2\", body: \"rk r=1 s=1 q=0 i=5 a=6\" }",
        ],
        "the body-less subject is not reported"
    );
}

#[test]
fn chat_profile_still_ignores_presence_and_answers() {
    let mut h = Harness::online();
    h.feed(
        "<presence from='user2@example.test/load'/><iq type='result' id='cfg-3'/>\
         <iq type='result' id='roster1'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(h.events.is_empty(), "{:?}", h.events);
    h.feed(
        "<message from='g1@groups.example.test/user2' type='groupchat'><body>x</body></message>",
    );
    assert_eq!(h.events, vec!["Message { body: \"x\", delayed: false }"]);
}
