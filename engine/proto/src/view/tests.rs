//! Unit tests for the stanza view: routing fields, children, errors and stamping.

use super::*;

const MSG: &str = "<message to='juliet@example.com' type='chat' id='m&amp;1' \
    from='evil@x'><body>a &lt; b</body><sm:r xmlns:sm='urn:xmpp:sm:3'/>\
    <request xmlns='urn:xmpp:receipts'/><x xmlns='y'><body/></x></message>";

fn stamped(stanza: &str, from: &str, to: Option<&str>) -> String {
    let view = StanzaView::parse(stanza.as_bytes()).unwrap();
    let mut out = b"prefix:".to_vec();
    view.stamp(from, to, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn routing_fields() {
    let v = StanzaView::parse(MSG.as_bytes()).unwrap();
    assert_eq!(
        (v.name(), v.local_name(), v.kind()),
        ("message", "message", StanzaKind::Message)
    );
    assert_eq!(v.to().unwrap(), "juliet@example.com");
    assert!(matches!(v.to(), Some(Cow::Borrowed(_))));
    assert_eq!(v.from().unwrap(), "evil@x");
    assert_eq!(v.stanza_type().unwrap(), "chat");
    assert_eq!(v.id().unwrap(), "m&1");
    assert_eq!(v.attr("type").unwrap(), "chat");
    assert_eq!(v.attr("nope"), None);
    assert_eq!(v.xmlns(), None);
    assert!(!v.is_empty_element());
    assert_eq!(v.bytes(), MSG.as_bytes());
}

#[test]
fn kinds_and_prefixes() {
    let kind = |s: &str| StanzaView::parse(s.as_bytes()).unwrap().kind();
    assert_eq!(kind("<presence/>"), StanzaKind::Presence);
    assert_eq!(kind("<iq type='get'></iq>"), StanzaKind::Iq);
    assert_eq!(kind("<r xmlns='urn:xmpp:sm:3'/>"), StanzaKind::Other);
    let v = StanzaView::parse(b"<sm:a xmlns='d' xmlns:sm='urn:xmpp:sm:3' h='3'/>").unwrap();
    assert_eq!((v.name(), v.local_name()), ("sm:a", "a"));
    assert_eq!(v.xmlns(), Some("urn:xmpp:sm:3"));
    assert!(v.is_empty_element());
    assert_eq!(v.children().count(), 0);
    let v = StanzaView::parse(b"<r xmlns='urn:xmpp:sm:3'/>").unwrap();
    assert_eq!(v.xmlns(), Some("urn:xmpp:sm:3"));
}

#[test]
fn children_first_level_only() {
    let v = StanzaView::parse(MSG.as_bytes()).unwrap();
    let kids: Vec<_> = v
        .children()
        .map(|c| (c.name, c.local_name, c.xmlns))
        .collect();
    assert_eq!(
        kids,
        [
            ("body", "body", None),
            ("sm:r", "r", Some("urn:xmpp:sm:3")),
            ("request", "request", Some("urn:xmpp:receipts")),
            ("x", "x", Some("y")),
        ]
    );
    assert_eq!(v.children().next().unwrap().bytes, b"<body>a &lt; b</body>");
    assert_eq!(
        v.children().nth(3).unwrap().bytes,
        b"<x xmlns='y'><body/></x>"
    );
    assert!(v.has_child("request", "urn:xmpp:receipts"));
    assert!(v.has_child("r", "urn:xmpp:sm:3"));
    assert!(!v.has_child("body", "y"));
    assert!(!v.has_child("request", "other"));
}

#[test]
fn children_skip_cdata_and_tricky_values() {
    let s = "<iq><![CDATA[<fake/>]]><a v='/>'>t<b><![CDATA[</a>]]></b></a>text<c/></iq>";
    let v = StanzaView::parse(s.as_bytes()).unwrap();
    let names: Vec<_> = v.children().map(|c| c.name).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        v.children().next().unwrap().bytes,
        b"<a v='/>'>t<b><![CDATA[</a>]]></b></a>"
    );
}

#[test]
fn parse_errors() {
    for bad in [
        &b""[..],
        b"text",
        b"<a",
        b"<a x='1' x2>",
        b"<1a/>",
        b"<a x='\xff'/>",
    ] {
        assert!(StanzaView::parse(bad).is_err(), "{bad:?}");
    }
    for dup in [
        "<a from='x' from='y'/>",
        "<a to='x' to='y'/>",
        "<a xmlns='x' xmlns='y'/>",
    ] {
        let err = StanzaView::parse(dup.as_bytes()).unwrap_err();
        assert_eq!(err, ViewError::NotWellFormed("duplicate attribute"));
    }
}

#[test]
fn stamp_replaces_or_adds() {
    // Existing from (and to), both replaced; the stanza body is untouched.
    let out = stamped(
        "<message from='evil' to='a'><b/></message>",
        "r@x/1",
        Some("c"),
    );
    assert_eq!(out, "prefix:<message from='r@x/1' to='c'><b/></message>");
    // No from: added. `to` left alone when None.
    let out = stamped("<presence to='a&amp;b'/>", "me@x", None);
    assert_eq!(out, "prefix:<presence to='a&amp;b' from='me@x'/>");
    // to before from in the original; values needing escapes.
    let out = stamped("<iq to='t' id='1' from='f'>x</iq>", "a'b", Some("<&>"));
    assert_eq!(
        out,
        "prefix:<iq id='1' from='a&apos;b' to='&lt;&amp;&gt;'>x</iq>"
    );
    // Whitespace before `/>` and `>` is kept.
    let out = stamped("<a from=\"x\" />", "y", None);
    assert_eq!(out, "prefix:<a  from='y'/>");
    let out = stamped("<a\nx='1'\n>z</a>", "y", None);
    assert_eq!(out, "prefix:<a\nx='1'\n from='y'>z</a>");
    // The stamped stanza parses back with the new values.
    let again = stamped("<message from='evil' to='a'><b/></message>", "r@x/1", None);
    let v = StanzaView::parse(&again.as_bytes()[7..]).unwrap();
    assert_eq!(
        (v.from().unwrap(), v.to().unwrap()),
        ("r@x/1".into(), "a".into())
    );
}
