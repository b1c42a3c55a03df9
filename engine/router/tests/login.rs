//! Stream, SASL and bind flows of one conn, through the public API with the cluster harness.

use rookery_router::{token_password, ConnKey, Router, RouterConfig};
use rookery_testkit::{
    bind_iq, bound_jid, client_header, plain_auth, ClientId, Cluster, RecordingEffects, TEST_SECRET,
};

const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// A conn that has sent its header; our header and features are already taken.
fn opened_client(cluster: &mut Cluster) -> ClientId {
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    cluster.take_output(client);
    client
}

/// A conn authenticated as `user` with a valid token, its restarted stream opened, not bound.
fn authed_client(cluster: &mut Cluster, user: &str) -> ClientId {
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    cluster.send(client, &valid_auth(user));
    cluster.send(client, &client_header());
    cluster.take_output(client);
    client
}

/// A PLAIN `<auth/>` for `user` with the token the test secret gives.
fn valid_auth(user: &str) -> String {
    plain_auth(user, &token_password(TEST_SECRET, user))
}

/// An `<auth/>` with mechanism `mechanism` and (base64) `payload`.
fn sasl_auth(mechanism: &str, payload: &str) -> String {
    format!("<auth xmlns='{SASL_NS}' mechanism='{mechanism}'>{payload}</auth>")
}

/// The SASL `<failure/>` with `condition`.
fn sasl_failure(condition: &str) -> String {
    format!("<failure xmlns='{SASL_NS}'><{condition}/></failure>")
}

/// The SASL `<success/>` (no additional data).
fn sasl_success() -> String {
    format!("<success xmlns='{SASL_NS}'/>")
}

#[test]
fn full_login_with_token_auth_and_bind() {
    let mut cluster = Cluster::new(1);
    let client = cluster.connect(0);
    assert_eq!(
        cluster.take_output(client),
        "",
        "nothing is sent before the client header"
    );

    cluster.send(client, &client_header());
    let out = cluster.take_output(client);
    assert!(out.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "));
    assert!(out.contains(" from='example.com' version='1.0' xml:lang='en'>"));
    assert!(out.ends_with(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    ));

    cluster.send(client, &valid_auth("alice"));
    assert_eq!(cluster.take_output(client), sasl_success());

    cluster.send(client, &client_header());
    let out = cluster.take_output(client);
    assert!(out.contains("<stream:stream "));
    // Post-auth features now offer XEP-0198 stream management too.
    assert!(out.ends_with(
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session \
         xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
         <sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/></stream:features>"
    ));

    cluster.send(client, &bind_iq("b1", Some("laptop")));
    assert_eq!(
        cluster.take_output(client),
        "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@example.com/laptop</jid></bind></iq>"
    );

    cluster.send(
        client,
        "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    );
    assert_eq!(
        cluster.take_output(client),
        "<iq type='result' id='s1' to='alice@example.com/laptop'/>"
    );
    let stats = cluster.router(0).stats();
    assert_eq!((stats.conns, stats.sessions), (1, 1));
}

#[test]
fn stream_ids_differ_between_streams() {
    let mut cluster = Cluster::new(1);
    let a = cluster.connect(0);
    let b = cluster.connect(0);
    cluster.send(a, &client_header());
    cluster.send(b, &client_header());
    let id = |text: String| {
        text.split(" id='")
            .nth(1)
            .map(|s| s[..s.find('\'').unwrap_or(0)].to_owned())
    };
    let (id_a, id_b) = (id(cluster.take_output(a)), id(cluster.take_output(b)));
    assert!(id_a.is_some());
    assert_ne!(id_a, id_b);
}

#[test]
fn bind_without_resource_generates_one() {
    let mut cluster = Cluster::new(1);
    let client = authed_client(&mut cluster, "alice");
    cluster.send(client, &bind_iq("b1", None));
    let jid = bound_jid(&cluster.take_output(client)).expect("bound");
    let resource = jid
        .strip_prefix("alice@example.com/rk")
        .expect("generated resource");
    assert_eq!(resource.len(), 16);
    assert!(resource.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn empty_challenge_then_response() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    cluster.send(
        client,
        &format!("<auth xmlns='{SASL_NS}' mechanism='PLAIN'/>"),
    );
    assert_eq!(
        cluster.take_output(client),
        format!("<challenge xmlns='{SASL_NS}'/>")
    );
    let auth = valid_auth("bob");
    let response = auth
        .split('>')
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("payload");
    cluster.send(
        client,
        &format!("<response xmlns='{SASL_NS}'>{response}</response>"),
    );
    assert_eq!(cluster.take_output(client), sasl_success());
}

#[test]
fn wrong_password_fails_and_three_failures_close() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    for attempt in 1..=3 {
        cluster.send(client, &plain_auth("alice", "wrong"));
        let out = cluster.take_output(client);
        assert!(out.starts_with(&sasl_failure("not-authorized")));
        if attempt < 3 {
            assert!(
                !cluster.is_closed(client),
                "closed after {attempt} failures"
            );
        } else {
            assert!(out.ends_with(
                "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                 </stream:error></stream:stream>"
            ));
            assert!(cluster.is_closed(client));
        }
    }
    assert_eq!(cluster.router(0).stats().auth_failures, 3);
}

#[test]
fn a_retry_after_a_failure_can_succeed() {
    let mut cluster = Cluster::new(1);
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    cluster.send(client, &plain_auth("alice", "wrong"));
    cluster.take_output(client);
    cluster.send(client, &valid_auth("alice"));
    assert!(cluster.take_output(client).contains("<success"));
}

#[test]
fn sasl_failure_conditions() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    cluster.send(client, &sasl_auth("SCRAM-SHA-1", "biws"));
    assert_eq!(
        cluster.take_output(client),
        sasl_failure("invalid-mechanism")
    );
    cluster.send(client, &sasl_auth("PLAIN", "*not base64*"));
    assert_eq!(
        cluster.take_output(client),
        sasl_failure("incorrect-encoding")
    );
}

#[test]
fn invalid_authzid_is_refused() {
    use base64::Engine;
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    let pw = token_password(TEST_SECRET, "alice");
    let payload =
        base64::engine::general_purpose::STANDARD.encode(format!("eve@example.com\0alice\0{pw}"));
    cluster.send(client, &sasl_auth("PLAIN", &payload));
    assert_eq!(cluster.take_output(client), sasl_failure("invalid-authzid"));
}

fn assert_stream_error(out: &str, condition: &str) {
    let tail = format!(
        "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
         </stream:stream>"
    );
    assert!(out.ends_with(&tail), "expected {condition}, got: {out}");
}

#[test]
fn a_stanza_before_auth_is_not_authorized() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    cluster.send(
        client,
        "<message to='bob@example.com'><body>hi</body></message>",
    );
    assert_stream_error(&cluster.take_output(client), "not-authorized");
    assert!(cluster.is_closed(client));
    assert_eq!(
        cluster.router(0).stats().conns,
        0,
        "on_closed removed the conn"
    );
}

#[test]
fn a_stanza_after_auth_before_bind_is_not_authorized() {
    let mut cluster = Cluster::new(1);
    let client = authed_client(&mut cluster, "alice");
    cluster.send(client, "<presence/>");
    assert_stream_error(&cluster.take_output(client), "not-authorized");
    assert!(cluster.is_closed(client));
}

#[test]
fn an_oversized_stanza_is_a_policy_violation() {
    let mut cluster = Cluster::with_config(1, |c| c.max_stanza_bytes = 256);
    let client = opened_client(&mut cluster);
    cluster.send(client, &sasl_auth("PLAIN", &"A".repeat(400)));
    assert_stream_error(&cluster.take_output(client), "policy-violation");
    assert!(cluster.is_closed(client));
}

#[test]
fn malformed_xml_is_not_well_formed() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    cluster.send(client, "<auth></wrong>");
    assert_stream_error(&cluster.take_output(client), "not-well-formed");
    assert_eq!(cluster.router(0).stats().stream_errors, 1);
}

#[test]
fn header_errors_are_sent_after_our_header() {
    let cases = [
        (
            client_header().replace("to='example.com'", "to='elsewhere.org'"),
            "host-unknown",
        ),
        (
            client_header().replace("xmlns='jabber:client'", "xmlns='jabber:server'"),
            "invalid-namespace",
        ),
        (
            client_header().replace("version='1.0'", "version='0.9'"),
            "unsupported-version",
        ),
    ];
    for (header, condition) in cases {
        let mut cluster = Cluster::new(1);
        let client = cluster.connect(0);
        cluster.send(client, &header);
        let out = cluster.take_output(client);
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream "),
            "{condition}: {out}"
        );
        assert!(!out.contains("<stream:features>"));
        assert_stream_error(&out, condition);
        assert!(cluster.is_closed(client));
    }
}

#[test]
fn a_frame_error_before_the_header_still_sends_a_header() {
    let mut cluster = Cluster::new(1);
    let client = cluster.connect(0);
    cluster.send(client, "<!-- hello -->");
    let out = cluster.take_output(client);
    assert!(out.starts_with("<?xml version='1.0'?><stream:stream "));
    assert_stream_error(&out, "restricted-xml");
}

#[test]
fn client_stream_close_is_answered_and_closed() {
    let mut cluster = Cluster::new(1);
    let (client, _) = cluster.login(0, "alice", Some("r"));
    cluster.send(client, "</stream:stream>");
    assert_eq!(cluster.take_output(client), "</stream:stream>");
    assert!(cluster.is_closed(client));
    let stats = cluster.router(0).stats();
    assert_eq!((stats.conns, stats.sessions), (0, 0));
}

#[test]
fn auth_timeout_closes_with_connection_timeout() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    let deadline = cluster
        .router(0)
        .next_deadline_ms()
        .expect("auth timer armed");
    assert!(deadline >= cluster.now_ms + RouterConfig::DEFAULT_AUTH_TIMEOUT_MS);
    cluster.advance(9_000);
    assert!(!cluster.is_closed(client));
    cluster.advance(1_100);
    assert_stream_error(&cluster.take_output(client), "connection-timeout");
    assert!(cluster.is_closed(client));
}

#[test]
fn a_timeout_before_any_header_sends_our_header_first() {
    let mut cluster = Cluster::new(1);
    let client = cluster.connect(0);
    cluster.advance(10_100);
    let out = cluster.take_output(client);
    assert!(out.starts_with("<?xml version='1.0'?><stream:stream "));
    assert_stream_error(&out, "connection-timeout");
}

#[test]
fn a_bound_session_outlives_the_auth_timeout() {
    let mut cluster = Cluster::new(1);
    let (client, _) = cluster.login(0, "alice", Some("r"));
    cluster.advance(30_000);
    assert!(!cluster.is_closed(client));
}

#[test]
fn idle_timeout_counts_any_byte_as_activity() {
    let mut cluster = Cluster::with_config(1, |c| c.idle_timeout_ms = 60_000);
    let (client, _) = cluster.login(0, "alice", Some("r"));
    for _ in 0..5 {
        cluster.advance(50_000);
        cluster.send(client, " ");
    }
    assert!(
        !cluster.is_closed(client),
        "whitespace keepalives keep the session"
    );
    cluster.advance(59_000);
    assert!(!cluster.is_closed(client));
    cluster.advance(2_000);
    assert_stream_error(&cluster.take_output(client), "connection-timeout");
    assert!(cluster.is_closed(client));
    assert_eq!(cluster.router(0).stats().sessions, 0);
}

#[test]
fn idle_timeout_zero_means_none() {
    let mut cluster = Cluster::with_config(1, |c| c.idle_timeout_ms = 0);
    let (client, _) = cluster.login(0, "alice", Some("r"));
    cluster.advance(20_000);
    assert_eq!(cluster.router(0).next_deadline_ms(), None);
    cluster.advance(10_000_000);
    assert!(!cluster.is_closed(client));
}

#[test]
fn the_restart_header_may_arrive_in_the_same_read_as_auth() {
    let mut cluster = Cluster::new(1);
    let client = opened_client(&mut cluster);
    let pipelined = format!(
        "{}{}{}",
        valid_auth("alice"),
        client_header(),
        bind_iq("b1", Some("r"))
    );
    cluster.send(client, &pipelined);
    let out = cluster.take_output(client);
    assert!(out.contains("<success"));
    assert!(out.contains("<jid>alice@example.com/r</jid>"), "{out}");
}

#[test]
fn input_split_at_every_byte_gives_the_same_login() {
    let user = "carol";
    let script = format!("{}{}", client_header(), valid_auth(user));
    let mut cluster = Cluster::new(1);
    let client = cluster.connect(0);
    for byte in script.as_bytes() {
        cluster.send_bytes(client, std::slice::from_ref(byte), b"");
    }
    assert!(cluster.take_output(client).ends_with(&sasl_success()));
}

#[test]
fn recording_effects_work_with_a_bare_router() {
    let config = RouterConfig::new("example.com", rookery_router::AuthBackend::Open);
    let mut router = Router::new(std::sync::Arc::new(config), 0);
    let mut fx = RecordingEffects::default();
    router.on_connect(ConnKey(7), None, 0, &mut fx);
    router.on_data(ConnKey(7), client_header().as_bytes(), 0, &mut fx);
    router.on_data(
        ConnKey(7),
        plain_auth("zed", "anything").as_bytes(),
        0,
        &mut fx,
    );
    assert!(fx.take_text(ConnKey(7)).ends_with(&sasl_success()));
    router.shutdown(&mut fx);
    assert!(fx.take_text(ConnKey(7)).contains("<system-shutdown "));
    assert!(fx.is_closed(ConnKey(7)));
    assert!(router.heap_bytes() > 0);
}

#[test]
fn every_close_says_which_side_caused_it() {
    use rookery_router::Cause;
    let mut config = RouterConfig::new("example.com", rookery_router::AuthBackend::Open);
    config.max_unauth_per_address = 1;
    let mut router = Router::new(std::sync::Arc::new(config), 0);
    let mut fx = RecordingEffects::default();
    let here: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    router.on_connect(ConnKey(1), Some(here), 0, &mut fx);
    // Over the per-address budget: refused by configuration.
    router.on_connect(ConnKey(2), Some(here), 0, &mut fx);
    // Garbage from the client: its fault.
    router.on_connect(ConnKey(3), None, 0, &mut fx);
    router.on_data(ConnKey(3), b"<stream:stream></wrong>", 0, &mut fx);
    // Shutdown: the shard's own reason.
    router.shutdown(&mut fx);
    assert_eq!(
        fx.close_causes,
        [
            (ConnKey(2), Cause::Config),
            (ConnKey(3), Cause::Peer),
            (ConnKey(1), Cause::Shard),
        ]
    );
}
