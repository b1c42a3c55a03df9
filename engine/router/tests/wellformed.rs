//! Property: everything the router writes to a client or stores parses with a strict,
//! namespace-aware XML parser (roxmltree), whatever a logged-in client sends. The client's
//! input is generated stanzas to contacts, an offline user, a room and its occupants, the
//! server and itself, with children that mix legal and illegal namespaces, forged `muc#user`
//! extensions (default namespace, prefix, escaped URI, inherited), escapes and nesting (see
//! `rookery_testkit::fuzzing` for the scenario around it).

use proptest::prelude::*;
use rookery_proto::writer::{escape_attr, escape_text};
use rookery_testkit::fuzzing::{check_session, client_session, Delivered, ROOM};

/// Parses `delivered` strictly; the error names what and where.
fn parse(delivered: &Delivered) -> Result<(), String> {
    let text = std::str::from_utf8(&delivered.document)
        .map_err(|e| format!("{}: not UTF-8: {e}", delivered.what))?;
    roxmltree::Document::parse(text)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}\n{text}", delivered.what))
}

fn attr(value: &str) -> String {
    let mut out = Vec::new();
    escape_attr(value, &mut out);
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

fn text(value: &str) -> String {
    let mut out = Vec::new();
    escape_text(value, &mut out);
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

/// Children, as templates: `{t}` is replaced by escaped text, `{v}` by an escaped value.
const CHILDREN: &[&str] = &[
    "<body>{t}</body>",
    "<subject>{t}</subject>",
    "<show>away</show>",
    "<status xml:lang='{v}'>{t}</status>",
    "<priority>{t}</priority>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' jid='{v}'/></x>",
    "<p:x xmlns:p='http://jabber.org/protocol/muc#user'><p:item affiliation='owner'/></p:x>",
    "<x xmlns='http://jabber.org/protocol/muc&#35;user'><item role='moderator' jid='{v}'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='{v}'/></x>",
    "<query xmlns='http://jabber.org/protocol/disco#info' node='{v}'/>",
    "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    "<ping xmlns='urn:xmpp:ping'/>",
    "<query xmlns='jabber:iq:roster'><item jid='{v}' name='{v}'/></query>",
    "<query xmlns='http://jabber.org/protocol/muc#owner'/>",
    "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' \
     type='submit'><field var='muc#roomconfig_roomname'><value>{t}</value></field>\
     <field var='muc#roomconfig_membersonly'><value>{v}</value></field></x></query>",
    "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' \
     jid='{v}'/></query>",
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{v}' ver='{v}'/>",
    "<request xmlns='urn:xmpp:receipts'/>",
    "<stream:x a='{v}'/>",
    "<e xmlns:q='urn:q'><q:f q:a='{v}'>{t}</q:f></e>",
    "<r:g r:a='{v}'/>",
    "<delay xmlns='urn:xmpp:delay' stamp='{v}'/>",
    "<m\u{e9}t\u{e9} \u{e9}='{v}'><![CDATA[{t}]]></m\u{e9}t\u{e9}>",
    "{t}",
];

/// Children the framer refuses: the stream ends there.
const REFUSED: &[&str] = &["<x a='1' a='2'/>", "<u:x/>", "<x xmlns:p=''/>"];

/// Extra attributes of a stanza's own tag.
const ROOT_ATTRS: &[&str] = &[
    "",
    " xml:lang='{v}'",
    " xmlns:r='urn:r'",
    " xmlns='jabber:client'",
    " xmlns='http://jabber.org/protocol/muc#user' xmlns:r='urn:r'",
    " from='{v}'",
    " xmlns:p='urn:p' p:a='{v}'",
];

/// Addressees, the room occupant alice is (she joins first) most often.
fn addresses() -> Vec<String> {
    let alice = rookery_testkit::user_homed_on("alice", 0, 2);
    let bob = rookery_testkit::user_homed_on("bob", 1, 2);
    let carol = rookery_testkit::user_homed_on("carol", 0, 2);
    vec![
        format!("{ROOM}/alice"),
        format!("{ROOM}/alice"),
        format!("{ROOM}/alice"),
        format!("{bob}@example.com"),
        format!("{bob}@example.com/b"),
        format!("{carol}@example.com"),
        format!("{carol}@example.com"),
        format!("{alice}@example.com/a"),
        ROOM.to_owned(),
        ROOM.to_owned(),
        format!("{ROOM}/bob"),
        "groups.example.com".to_owned(),
        "example.com".to_owned(),
        "nobody@elsewhere.test".to_owned(),
    ]
}

/// One stanza: kind, addressee (index or none), type, root attrs, children, text, value.
type Spec = (
    usize,
    Option<usize>,
    usize,
    usize,
    Vec<usize>,
    String,
    String,
);

fn spec() -> impl Strategy<Value = Spec> {
    // Children a room copies or refuses to copy come up more often.
    let interesting: Vec<usize> = (0..CHILDREN.len())
        .filter(|&i| {
            ["muc", "r:", "q:", "stream:"]
                .iter()
                .any(|k| CHILDREN[i].contains(k))
        })
        .collect();
    let child = prop_oneof![
        10 => prop::sample::select(interesting),
        9 => 0usize..CHILDREN.len(),
        1 => (0usize..REFUSED.len()).prop_map(|i| CHILDREN.len() + i),
    ];
    (
        prop::sample::select(vec![0usize, 1, 1, 2]),
        prop::option::weighted(0.9, 0usize..14),
        0usize..8,
        prop::sample::select(vec![0usize, 1, 2, 2, 2, 3, 4, 4, 5, 6]),
        prop::collection::vec(child, 0..4),
        "[a-z <>&'\"\u{e9}\\]]{0,12}",
        "[a-z0-9@/. <>&'\"]{0,10}",
    )
}

fn render((kind, to, ty, root, kids, t, v): &Spec, addresses: &[String]) -> String {
    const MESSAGE: &[&str] = &[
        "",
        "chat",
        "chat",
        "groupchat",
        "groupchat",
        "normal",
        "headline",
        "error",
    ];
    const PRESENCE: &[&str] = &["", "", "", "", "unavailable", "subscribe", "probe", "error"];
    const IQ: &[&str] = &[
        "get", "get", "get", "set", "set", "result", "error", "bogus",
    ];
    let (name, types) = match kind {
        0 => ("message", MESSAGE),
        1 => ("presence", PRESENCE),
        _ => ("iq", IQ),
    };
    let fill = |s: &str| s.replace("{t}", &text(t)).replace("{v}", &attr(v));
    let mut out = format!("<{name} id='{}'", attr(v));
    if let Some(to) = to {
        out.push_str(&format!(" to='{}'", attr(&addresses[*to])));
    }
    if !types[*ty].is_empty() {
        out.push_str(&format!(" type='{}'", types[*ty]));
    }
    out.push_str(&fill(ROOT_ATTRS[*root]));
    out.push('>');
    for &kid in kids {
        let child = CHILDREN
            .get(kid)
            .unwrap_or_else(|| &REFUSED[kid - CHILDREN.len()]);
        out.push_str(&fill(child));
    }
    out.push_str(&format!("</{name}>"));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn everything_written_or_stored_parses_strictly(specs in prop::collection::vec(spec(), 1..8),
                                                    split in any::<usize>()) {
        let addresses = addresses();
        let join = format!("<presence to='{ROOM}/alice'/>");
        let input: String = std::iter::once(join)
            .chain(specs.iter().map(|s| render(s, &addresses)))
            .collect();
        for delivered in client_session(input.as_bytes(), split % (input.len() + 1)) {
            if let Err(e) = parse(&delivered) {
                prop_assert!(false, "{}\ninput: {}", e, input);
            }
        }
    }
}

#[test]
fn a_forged_join_reaches_bob_without_the_forgery() {
    let forged = format!(
        "<presence to='{ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/>\
         <x xmlns='http://jabber.org/protocol/muc&#35;user'><item affiliation='owner' \
         jid='forged@evil.test'/></x></presence>"
    );
    let delivered = client_session(forged.as_bytes(), 0);
    let bob = delivered
        .iter()
        .find(|d| d.what.starts_with("stream of bob"))
        .expect("bob's stream");
    let text = String::from_utf8_lossy(&bob.document);
    assert!(text.contains(&format!("from='{ROOM}/alice'")), "{text}");
    assert!(!text.contains("forged"), "{text}");
    for d in &delivered {
        assert_eq!(parse(d), Ok(()));
    }
}

/// Strict parse for `check_session`.
fn strict(doc: &str) -> Result<(), String> {
    roxmltree::Document::parse(doc)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn the_fuzz_seed_corpus_replays_clean() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/router_session");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("the router_session corpus exists") {
        let mut data = std::fs::read(entry.expect("a corpus entry").path()).expect("readable");
        check_session(&data, strict);
        // The same input in two reads split elsewhere (data[0] is the split).
        for split in (0..=255u8).step_by(17) {
            data[0] = split;
            check_session(&data, strict);
        }
        seeds += 1;
    }
    assert!(seeds >= 12, "the committed seeds are there ({seeds})");
}
