use super::*;

/// Records what the conn asked of the router; stamps routed stanzas as a runtime would.
#[derive(Default)]
struct Recorder {
    bound: Vec<String>,
    routed: Vec<(String, String)>,
    unroutable: usize,
}

impl Router for Recorder {
    fn bind(&mut self, jid: &Jid) {
        self.bound.push(jid.as_str().to_string());
    }

    fn route(&mut self, to: &Jid, from: &Jid, stanza: &StanzaView<'_>) {
        let mut out = Vec::new();
        stanza.stamp(from.as_str(), None, &mut out);
        self.routed
            .push((to.as_str().to_string(), String::from_utf8(out).unwrap()));
    }

    fn unroutable(&mut self) {
        self.unroutable += 1;
    }
}

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream to='example.test' \
xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

fn conn() -> Conn {
    Conn::new("example.test".into(), 7)
}

/// SASL PLAIN for `authcid` with password "pw".
fn auth(authcid: &str) -> Vec<u8> {
    let creds = format!("\0{authcid}\0pw");
    let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
    format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{b64}</auth>")
        .into_bytes()
}

fn feed(c: &mut Conn, data: &[u8], r: &mut Recorder) -> (Flow, String) {
    let mut out = Vec::new();
    let flow = c.on_data(data, &mut out, r);
    (flow, String::from_utf8(out).unwrap())
}

/// Logs `user` in and binds `resource`; returns the conn.
fn online(user: &str, resource: &str, r: &mut Recorder) -> Conn {
    let mut c = conn();
    let (_, out) = feed(&mut c, HEADER, r);
    assert!(out.contains("<mechanism>PLAIN</mechanism>"), "{out}");
    let (_, out) = feed(&mut c, &auth(user), r);
    assert_eq!(out, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let (_, out) = feed(&mut c, HEADER, r);
    assert!(
        out.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        "{out}"
    );
    assert!(
        !out.contains("urn:xmpp:sm:3"),
        "stream management is not offered: {out}"
    );
    let bind = format!(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    );
    let (flow, out) = feed(&mut c, bind.as_bytes(), r);
    assert_eq!(flow, Flow::Open);
    assert!(out.starts_with("<iq type='result' id='b1'><bind"), "{out}");
    c
}

#[test]
fn login_binds_the_requested_resource() {
    let mut r = Recorder::default();
    let c = online("User1", "load", &mut r);
    assert_eq!(r.bound, ["user1@example.test/load"]);
    assert_eq!(c.jid().unwrap().as_str(), "user1@example.test/load");
}

#[test]
fn login_split_at_every_byte_gives_the_same_answers() {
    let mut whole = Vec::new();
    whole.extend_from_slice(HEADER);
    whole.extend_from_slice(&auth("u"));
    whole.extend_from_slice(HEADER);
    whole.extend_from_slice(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    let mut r = Recorder::default();
    let (_, expected) = feed(&mut conn(), &whole, &mut r);
    for split in 1..whole.len() {
        let mut c = conn();
        let mut r = Recorder::default();
        let (_, a) = feed(&mut c, &whole[..split], &mut r);
        let (flow, b) = feed(&mut c, &whole[split..], &mut r);
        assert_eq!(flow, Flow::Open);
        assert_eq!(a + &b, expected, "split at {split}");
        assert_eq!(r.bound, ["u@example.test/relay-7"], "split at {split}");
    }
}

#[test]
fn bind_without_resource_generates_one() {
    let mut r = Recorder::default();
    let mut c = conn();
    feed(&mut c, HEADER, &mut r);
    feed(&mut c, &auth("a"), &mut r);
    feed(&mut c, HEADER, &mut r);
    let (_, out) = feed(
        &mut c,
        b"<iq type='set' id='x'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        &mut r,
    );
    assert!(out.contains("<jid>a@example.test/relay-7</jid>"), "{out}");
}

#[test]
fn a_message_is_routed_stamped_with_the_senders_full_jid() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let msg = b"<message to='bob@example.test/load' from='forged@x' type='chat'><body>hi</body></message>";
    let (flow, out) = feed(&mut c, msg, &mut r);
    assert_eq!((flow, out.as_str()), (Flow::Open, ""));
    assert_eq!(r.routed.len(), 1);
    let (to, stanza) = &r.routed[0];
    assert_eq!(to, "bob@example.test/load");
    assert!(
        stanza.contains("from='alice@example.test/load'"),
        "{stanza}"
    );
    assert!(!stanza.contains("forged"), "{stanza}");
    assert!(stanza.ends_with("<body>hi</body></message>"), "{stanza}");
}

#[test]
fn bare_destinations_are_routed_and_bad_ones_are_counted() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    feed(
        &mut c,
        b"<message to='Bob@Example.Test'><body>1</body></message>",
        &mut r,
    );
    assert_eq!(r.routed[0].0, "bob@example.test");
    for bad in [
        &b"<message to='bob@elsewhere.test'><body>2</body></message>"[..],
        b"<message><body>3</body></message>",
        b"<message to='@'><body>4</body></message>",
        b"<message to='example.test'><body>5</body></message>",
    ] {
        feed(&mut c, bad, &mut r);
    }
    assert_eq!(r.routed.len(), 1);
    assert_eq!(r.unroutable, 4);
}

#[test]
fn presence_without_to_is_dropped_quietly() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let (flow, out) = feed(&mut c, b"<presence/>", &mut r);
    assert_eq!((flow, out.as_str()), (Flow::Open, ""));
    assert!(r.routed.is_empty());
    assert_eq!(r.unroutable, 0);
}

#[test]
fn iqs_to_the_server_are_answered() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let (_, out) = feed(
        &mut c,
        b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
        &mut r,
    );
    assert_eq!(out, "<iq type='result' id='p'/>");
    let (_, out) = feed(
        &mut c,
        b"<iq type='get' id='r' to='alice@example.test'><query xmlns='jabber:iq:roster'/></iq>",
        &mut r,
    );
    assert!(out.starts_with("<iq type='error' id='r'>"), "{out}");
    assert!(out.contains("<service-unavailable "), "{out}");
    let (_, out) = feed(&mut c, b"<iq type='result' id='z'/>", &mut r);
    assert_eq!(out, "");
    let (_, out) = feed(
        &mut c,
        b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        &mut r,
    );
    assert_eq!(out, "<iq type='result' id='s'/>");
    assert!(r.routed.is_empty());
}

#[test]
fn an_iq_to_another_user_is_routed() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    feed(
        &mut c,
        b"<iq type='get' id='p' to='bob@example.test/load'><ping xmlns='urn:xmpp:ping'/></iq>",
        &mut r,
    );
    assert_eq!(r.routed.len(), 1);
}

#[test]
fn stream_management_is_refused() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let (_, out) = feed(&mut c, b"<enable xmlns='urn:xmpp:sm:3'/>", &mut r);
    assert!(out.starts_with("<failed xmlns='urn:xmpp:sm:3'>"), "{out}");
}

#[test]
fn the_client_closing_is_answered_and_ends_the_conn() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let (flow, out) = feed(&mut c, b"</stream:stream>", &mut r);
    assert_eq!((flow, out.as_str()), (Flow::Close, "</stream:stream>"));
    let (flow, out) = feed(&mut c, b"<message to='b@example.test'/>", &mut r);
    assert_eq!(
        (flow, out.as_str()),
        (Flow::Close, ""),
        "input after the end is ignored"
    );
}

#[test]
fn malformed_xml_ends_the_stream_with_an_error() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let (flow, out) = feed(&mut c, b"<message><body></message>", &mut r);
    assert_eq!(flow, Flow::Close);
    assert!(out.contains("<not-well-formed "), "{out}");
    assert!(out.ends_with("</stream:stream>"), "{out}");
}

#[test]
fn other_mechanisms_and_bad_credentials_fail_then_close() {
    let mut r = Recorder::default();
    let mut c = conn();
    feed(&mut c, HEADER, &mut r);
    let (flow, out) = feed(
        &mut c,
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>x</auth>",
        &mut r,
    );
    assert_eq!(flow, Flow::Open);
    assert!(out.contains("<invalid-mechanism/>"), "{out}");
    let (_, out) = feed(
        &mut c,
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!</auth>",
        &mut r,
    );
    assert!(out.contains("<incorrect-encoding/>"), "{out}");
    let (flow, out) = feed(&mut c, &auth("no@pe"), &mut r);
    assert_eq!(flow, Flow::Close, "third failure: {out}");
    assert!(out.contains("<policy-violation "), "{out}");
    assert!(r.bound.is_empty());
}

#[test]
fn stanzas_before_authentication_end_the_stream() {
    let mut r = Recorder::default();
    let mut c = conn();
    feed(&mut c, HEADER, &mut r);
    let (flow, out) = feed(&mut c, b"<message to='b@example.test'/>", &mut r);
    assert_eq!(flow, Flow::Close);
    assert!(out.contains("<not-authorized "), "{out}");
    assert!(r.routed.is_empty());
}

#[test]
fn stanzas_before_bind_are_not_routed() {
    let mut r = Recorder::default();
    let mut c = conn();
    feed(&mut c, HEADER, &mut r);
    feed(&mut c, &auth("a"), &mut r);
    feed(&mut c, HEADER, &mut r);
    let (flow, _) = feed(
        &mut c,
        b"<message to='b@example.test'><body>x</body></message>",
        &mut r,
    );
    assert_eq!(flow, Flow::Open);
    assert!(r.routed.is_empty());
    assert_eq!(r.unroutable, 1);
}

#[test]
fn an_oversized_stanza_is_a_policy_violation() {
    let mut r = Recorder::default();
    let mut c = online("alice", "load", &mut r);
    let mut big = b"<message to='b@example.test'><body>".to_vec();
    big.resize(MAX_STANZA_BYTES + 10, b'a');
    let (flow, out) = feed(&mut c, &big, &mut r);
    assert_eq!(flow, Flow::Close);
    assert!(out.contains("<policy-violation "), "{out}");
}
