//! What the server answers for an account's bare JID, across shards (alice homed on shard 0,
//! bob on 1, carol on 2): XEP-0163 PEP publish with notifications to subscribed contacts,
//! items byte-identical (an OMEMO device list and bundle), access models, publish-options,
//! limits, retract and delete; disco of the account; XEP-0054 vCards; XEP-0049 private
//! storage; XEP-0012 last activity and uptime.

use rookery_testkit::{user_homed_on, ClientId, Cluster};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

struct User {
    client: ClientId,
    bare: String,
}

/// Three shards, three users logged in on their home shards with initial presence; alice and
/// bob are subscribed to each other, carol to nobody. Stanzas up to 1 MiB (avatars).
fn setup() -> (Cluster, [User; 3]) {
    let mut cluster = Cluster::with_config(3, |config| {
        config.max_stanza_bytes = 1 << 20;
        config.max_output_bytes = config.max_output_bytes.max(4 << 20);
    });
    let users: [User; 3] = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(shard, name)| {
            let user = user_homed_on(name, shard as u16, 3);
            let (client, _) = cluster.login(shard as u16, &user, Some("r"));
            User {
                client,
                bare: format!("{user}@example.com"),
            }
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("three users"));
    let [a, b, c] = &users;
    for user in [a, b, c] {
        cluster.send(user.client, "<presence/>");
    }
    for (from, to) in [(a, b), (b, a)] {
        let subscribe = format!("<presence to='{}' type='subscribe'/>", to.bare);
        cluster.send(from.client, &subscribe);
        let subscribed = format!("<presence to='{}' type='subscribed'/>", from.bare);
        cluster.send(to.client, &subscribed);
    }
    for user in [a, b, c] {
        cluster.take_output(user.client);
    }
    (cluster, users)
}

fn publish(node: &str, id: &str, payload: &str, options: &str) -> String {
    let options = if options.is_empty() {
        String::new()
    } else {
        let mut form = String::from(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'>\
             <value>http://jabber.org/protocol/pubsub#publish-options</value></field>",
        );
        for pair in options.split(',') {
            let (var, value) = pair.split_once('=').expect("var=value");
            form.push_str(&format!(
                "<field var='pubsub#{var}'><value>{value}</value></field>"
            ));
        }
        form.push_str("</x></publish-options>");
        form
    };
    format!(
        "<iq type='set' id='p-{id}'><pubsub xmlns='{PUBSUB}'><publish node='{node}'>\
         <item id='{id}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

fn items(to: &str, node: &str, id: &str) -> String {
    format!(
        "<iq type='get' id='{id}' to='{to}'><pubsub xmlns='{PUBSUB}'><items node='{node}'/>\
         </pubsub></iq>"
    )
}

fn condition(out: &str) -> &str {
    let start = out
        .find("<error ")
        .unwrap_or_else(|| panic!("an error in {out:?}"))
        + "<error ".len();
    let after = &out[start..];
    let name = &after[after.find("><").expect("a condition") + 2..];
    &name[..name.find(' ').expect("a namespace")]
}

// An OMEMO device list and a bundle as Conversations writes them: odd quoting, whitespace
// and attribute order must come back as they went in.
const DEVICELIST: &str =
    "<list xmlns=\"eu.siacs.conversations.axolotl\">\n  <device id=\"1234\" />\
<device id='99' label=\"phone &amp; co\"/></list>";
const BUNDLE: &str = "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic \
signedPreKeyId='1'>BTu2c3RlcmVkK2Jhc2U2NA==</signedPreKeyPublic><signedPreKeySignature>\
c2lnbmF0dXJlIGJ5dGVz</signedPreKeySignature><identityKey>aWRlbnRpdHkga2V5</identityKey>\
<prekeys><preKeyPublic preKeyId='1'>cHJla2V5MQ==</preKeyPublic></prekeys></bundle>";

#[test]
fn a_publish_reaches_subscribed_contacts_and_items_come_back_byte_identical() {
    let (mut cluster, [a, b, c]) = setup();
    let node = "eu.siacs.conversations.axolotl.devicelist";
    cluster.send(
        a.client,
        &publish(node, "current", DEVICELIST, "access_model=open"),
    );
    let out = cluster.take_output(a.client);
    assert!(
        out.contains("<iq type='result' id='p-current'") && out.contains("<item id='current'/>"),
        "{out}"
    );
    // The owner's own session hears its publish too.
    assert!(out.contains(DEVICELIST), "{out}");
    let event = cluster.take_output(b.client);
    assert!(event.contains("type='headline'"), "{event}");
    assert!(event.contains(&format!("from='{}'", a.bare)), "{event}");
    assert!(
        event.contains(&format!(
            "<event xmlns='{PUBSUB}#event'><items node='{node}'><item id='current'"
        )),
        "{event}"
    );
    assert!(event.contains(DEVICELIST), "{event}");
    assert_eq!(cluster.take_output(c.client), "", "carol is not subscribed");

    let bundle_node = "eu.siacs.conversations.axolotl.bundles:1234";
    cluster.send(a.client, &publish(bundle_node, "current", BUNDLE, ""));
    cluster.take_output(a.client);
    cluster.take_output(b.client);
    for (user, expect) in [(&b, true), (&c, false)] {
        cluster.send(user.client, &items(&a.bare, bundle_node, "i1"));
        let out = cluster.take_output(user.client);
        if expect {
            let want = format!("<items node='{bundle_node}'><item id='current'>{BUNDLE}</item>");
            assert!(out.contains(&want), "{out}");
            assert!(out.contains(&format!("from='{}'", a.bare)), "{out}");
        } else {
            // Presence access (the default): carol is not subscribed.
            assert_eq!(condition(&out), "not-authorized", "{out}");
        }
    }
    // The open device list is for anyone.
    cluster.send(c.client, &items(&a.bare, node, "i2"));
    let out = cluster.take_output(c.client);
    assert!(out.contains(DEVICELIST), "{out}");
}

#[test]
fn whitelist_max_items_options_limits_retract_and_delete() {
    let (mut cluster, [a, b, _]) = setup();
    let node = "urn:xmpp:bookmarks:1";
    let options = "persist_items=true,max_items=max,access_model=whitelist";
    for room in ["r1", "r2", "r3"] {
        let payload =
            format!("<conference xmlns='urn:xmpp:bookmarks:1' name='{room}' autojoin='true'/>");
        let jid = format!("{room}@groups.example.com");
        cluster.send(a.client, &publish(node, &jid, &payload, options));
        let out = cluster.take_output(a.client);
        assert!(out.contains("type='result'"), "{out}");
    }
    assert_eq!(
        cluster.take_output(b.client),
        "",
        "whitelist: no notification"
    );
    cluster.send(a.client, &items(&a.bare, node, "own"));
    let out = cluster.take_output(a.client);
    assert_eq!(out.matches("<conference ").count(), 3, "{out}");
    cluster.send(b.client, &items(&a.bare, node, "theirs"));
    assert_eq!(condition(&cluster.take_output(b.client)), "not-allowed");

    // Options that differ from the node's: precondition not met.
    let payload = "<conference xmlns='urn:xmpp:bookmarks:1'/>";
    cluster.send(a.client, &publish(node, "x", payload, "access_model=open"));
    assert_eq!(condition(&cluster.take_output(a.client)), "conflict");

    // Default max_items is 1: a second item replaces the first.
    let nick = "http://jabber.org/protocol/nick";
    for (id, name) in [("1", "Al"), ("2", "Alice")] {
        let payload = format!("<nick xmlns='{nick}'>{name}</nick>");
        cluster.send(a.client, &publish(nick, id, &payload, ""));
    }
    cluster.take_output(a.client);
    let events = cluster.take_output(b.client);
    assert_eq!(events.matches("<event ").count(), 2, "{events}");
    cluster.send(b.client, &items(&a.bare, nick, "n"));
    let out = cluster.take_output(b.client);
    assert!(
        out.contains("<item id='2'><nick xmlns='http://jabber.org/protocol/nick'>Alice</nick>"),
        "{out}"
    );
    assert!(!out.contains(">Al<"), "{out}");

    // Too large, and a payload without its own namespace.
    let big = format!("<nick xmlns='{nick}'>{}</nick>", "x".repeat(70 * 1024));
    cluster.send(a.client, &publish(nick, "big", &big, ""));
    assert_eq!(condition(&cluster.take_output(a.client)), "not-acceptable");
    let avatar = format!(
        "<data xmlns='urn:xmpp:avatar:data'>{}</data>",
        "A".repeat(200 * 1024)
    );
    cluster.send(
        a.client,
        &publish("urn:xmpp:avatar:data", "sha1", &avatar, ""),
    );
    assert!(cluster
        .take_output(a.client)
        .contains("<iq type='result' id='p-sha1'"));
    cluster.take_output(b.client);
    cluster.send(a.client, &publish(nick, "bare", "<nick>x</nick>", ""));
    assert_eq!(condition(&cluster.take_output(a.client)), "bad-request");
    // Only the owner publishes.
    let to_alice = publish(
        nick,
        "z",
        "<nick xmlns='http://jabber.org/protocol/nick'>B</nick>",
        "",
    )
    .replacen("<iq ", &format!("<iq to='{}' ", a.bare), 1);
    cluster.send(b.client, &to_alice);
    assert_eq!(condition(&cluster.take_output(b.client)), "forbidden");

    // Retract with notification, then delete the node.
    cluster.send(
        a.client,
        &format!(
            "<iq type='set' id='rt'><pubsub xmlns='{PUBSUB}'><retract node='{nick}' notify='true'>\
             <item id='2'/></retract></pubsub></iq>"
        ),
    );
    assert!(cluster
        .take_output(a.client)
        .contains("<iq type='result' id='rt'"));
    let event = cluster.take_output(b.client);
    assert!(event.contains("<retract id='2'/>"), "{event}");
    cluster.send(
        a.client,
        &format!(
            "<iq type='set' id='del'><pubsub xmlns='{PUBSUB}#owner'><delete node='{nick}'/>\
             </pubsub></iq>"
        ),
    );
    assert!(cluster
        .take_output(a.client)
        .contains("<iq type='result' id='del'"));
    assert!(cluster
        .take_output(b.client)
        .contains(&format!("<delete node='{nick}'/>")));
    cluster.send(b.client, &items(&a.bare, nick, "gone"));
    assert_eq!(condition(&cluster.take_output(b.client)), "item-not-found");
}

#[test]
fn the_account_answers_disco() {
    let (mut cluster, [a, b, _]) = setup();
    cluster.send(
        a.client,
        &publish("pub", "1", "<x xmlns='urn:example'/>", ""),
    );
    cluster.send(
        a.client,
        &publish(
            "secret",
            "1",
            "<x xmlns='urn:example'/>",
            "access_model=whitelist",
        ),
    );
    cluster.take_output(a.client);
    cluster.take_output(b.client);
    cluster.send(
        b.client,
        &format!(
            "<iq type='get' id='di' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            a.bare
        ),
    );
    let out = cluster.take_output(b.client);
    assert!(
        out.contains("<identity category='pubsub' type='pep'/>"),
        "{out}"
    );
    assert!(out.contains("pubsub#publish-options"), "{out}");
    cluster.send(
        b.client,
        &format!(
            "<iq type='get' id='dit' to='{}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
            a.bare
        ),
    );
    let out = cluster.take_output(b.client);
    assert!(out.contains("node='pub'"), "{out}");
    assert!(!out.contains("node='secret'"), "{out}");
    // The server's own disco#info names what it serves for accounts.
    cluster.send(
        a.client,
        "<iq type='get' id='s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let out = cluster.take_output(a.client);
    assert!(
        out.contains("vcard-temp") && out.contains("jabber:iq:private"),
        "{out}"
    );
}

#[test]
fn vcards_private_storage_and_last_activity() {
    let (mut cluster, [a, b, c]) = setup();
    let vcard = "<vCard xmlns='vcard-temp'><FN>Alice  A.</FN><NICKNAME>al</NICKNAME></vCard>";
    cluster.send(a.client, &format!("<iq type='set' id='v'>{vcard}</iq>"));
    assert!(cluster
        .take_output(a.client)
        .contains("<iq type='result' id='v'"));
    for user in [&b, &c] {
        cluster.send(
            user.client,
            &format!(
                "<iq type='get' id='vg' to='{}'><vCard xmlns='vcard-temp'/></iq>",
                a.bare
            ),
        );
        let out = cluster.take_output(user.client);
        assert!(out.contains(vcard), "{out}");
    }
    cluster.send(
        b.client,
        &format!(
            "<iq type='get' id='none' to='{}'><vCard xmlns='vcard-temp'/></iq>",
            c.bare
        ),
    );
    assert!(cluster
        .take_output(b.client)
        .contains("<vCard xmlns='vcard-temp'/>"));
    cluster.send(
        b.client,
        &format!("<iq type='set' id='vs' to='{}'>{vcard}</iq>", a.bare),
    );
    assert_eq!(condition(&cluster.take_output(b.client)), "forbidden");

    let stored = "<storage xmlns='storage:rosternotes'><note jid='x@y'>hi</note></storage>";
    cluster.send(
        a.client,
        &format!("<iq type='set' id='ps'><query xmlns='jabber:iq:private'>{stored}</query></iq>"),
    );
    assert!(cluster.take_output(a.client).contains("type='result'"));
    let get = "<query xmlns='jabber:iq:private'><storage xmlns='storage:rosternotes'/></query>";
    cluster.send(a.client, &format!("<iq type='get' id='pg'>{get}</iq>"));
    assert!(cluster.take_output(a.client).contains(stored));
    cluster.send(
        b.client,
        &format!("<iq type='get' id='pb' to='{}'>{get}</iq>", a.bare),
    );
    assert_eq!(condition(&cluster.take_output(b.client)), "forbidden");
    cluster.send(
        a.client,
        "<iq type='get' id='pj'><query xmlns='jabber:iq:private'><x xmlns='jabber:x:data'/></query></iq>",
    );
    assert_eq!(condition(&cluster.take_output(a.client)), "not-acceptable");

    let last =
        |to: &str| format!("<iq type='get' id='l' to='{to}'><query xmlns='jabber:iq:last'/></iq>");
    cluster.send(b.client, &last(&a.bare));
    assert!(cluster.take_output(b.client).contains("seconds='0'"));
    cluster.send(c.client, &last(&a.bare));
    assert_eq!(condition(&cluster.take_output(c.client)), "forbidden");
    cluster.disconnect(a.client);
    cluster.take_output(b.client);
    cluster.advance(7_000);
    cluster.send(b.client, &last(&a.bare));
    let out = cluster.take_output(b.client);
    assert!(out.contains("seconds='7'"), "{out}");
    cluster.send(b.client, &last("example.com"));
    let out = cluster.take_output(b.client);
    assert!(
        out.contains("<query xmlns='jabber:iq:last' seconds='"),
        "{out}"
    );
}
