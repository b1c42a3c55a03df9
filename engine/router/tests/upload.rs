//! XEP-0363 HTTP File Upload through the multi-shard harness: the service is found through the
//! domain's disco#items, its disco#info carries the XEP-0128 form with `max-file-size`, a
//! request gets a slot whose PUT URL the HTTP side verifies with the secret alone, and the
//! XEP's errors come back for a file too large, a bad name or type, a type not allowed, the
//! quota and a malformed request. The per-shard ledger follows usage events and the start-up
//! seed. Every answer is parsed with a strict XML parser (roxmltree).

use rookery_proto::Jid;
use rookery_router::{Router, UploadConfig};
use rookery_testkit::{user_homed_on, ClientId, Cluster, TEST_DOMAIN, TEST_WALL_CLOCK_MS};
use rookery_upload::{ContentTypes, SlotPolicy, SlotSigner, SlotToken, UsageEvent};

const SECRET: &[u8] = &[7; 32];
const PUBLIC_URL: &str = "https://files.example.com:5443";
const UPLOAD_NS: &str = "urn:xmpp:http:upload:0";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

fn upload_domain() -> String {
    format!("upload.{TEST_DOMAIN}")
}

fn policy() -> SlotPolicy {
    SlotPolicy {
        max_file_bytes: 1_000,
        quota_bytes_per_user: 1_500,
        slot_ttl_s: 300,
        content_types: ContentTypes::Only(vec!["image/*".into(), "text/plain".into()]),
        max_open_slots_per_user: 4,
    }
}

fn cluster(shards: u16) -> Cluster {
    Cluster::with_config(shards, |config| {
        // Slots expire after minutes of virtual time: no idle close meanwhile.
        config.idle_timeout_ms = 0;
        config.upload = Some(UploadConfig {
            domain: upload_domain(),
            policy: policy(),
            secret: SECRET.to_vec(),
            public_url: PUBLIC_URL.into(),
        });
    })
}

/// Sends one iq get and returns the single stanza answered, checked to be well-formed.
fn ask(cluster: &mut Cluster, client: ClientId, to: &str, id: &str, payload: &str) -> String {
    cluster.send(
        client,
        &format!("<iq type='get' id='{id}' to='{to}'>{payload}</iq>"),
    );
    let out = cluster.take_output(client);
    roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    out
}

fn request(cluster: &mut Cluster, client: ClientId, id: &str, attrs: &str) -> String {
    let payload = format!("<request xmlns='{UPLOAD_NS}' {attrs}/>");
    ask(cluster, client, &upload_domain(), id, &payload)
}

/// The error condition and type of an iq error (asserting it is one, from the service).
fn error_of(out: &str, id: &str) -> (String, String) {
    let doc = roxmltree::Document::parse(out).unwrap();
    let iq = doc.root_element();
    assert_eq!(iq.attribute("type"), Some("error"), "{out}");
    assert_eq!(iq.attribute("id"), Some(id), "{out}");
    assert_eq!(
        iq.attribute("from"),
        Some(upload_domain().as_str()),
        "{out}"
    );
    let error = iq.children().find(|n| n.has_tag_name("error")).unwrap();
    let condition = error
        .children()
        .find(|n| n.is_element() && n.tag_name().namespace() == Some(STANZAS_NS))
        .filter(|n| n.tag_name().name() != "text")
        .unwrap();
    (
        condition.tag_name().name().to_owned(),
        error.attribute("type").unwrap().to_owned(),
    )
}

/// The PUT and GET URLs of a slot result.
fn slot_urls(out: &str) -> (String, String) {
    let doc = roxmltree::Document::parse(out).unwrap();
    let iq = doc.root_element();
    assert_eq!(iq.attribute("type"), Some("result"), "{out}");
    let slot = iq
        .children()
        .find(|n| n.has_tag_name((UPLOAD_NS, "slot")))
        .unwrap();
    let url = |name: &str| {
        let element = slot.children().find(|n| n.has_tag_name((UPLOAD_NS, name)));
        element.and_then(|e| e.attribute("url")).unwrap().to_owned()
    };
    (url("put"), url("get"))
}

fn now_s() -> u64 {
    TEST_WALL_CLOCK_MS / 1000
}

#[test]
fn the_service_is_found_through_disco_items_and_announces_its_limit() {
    let mut cluster = cluster(1);
    let (alice, _) = cluster.login(0, "alice", Some("r"));
    let items = ask(
        &mut cluster,
        alice,
        TEST_DOMAIN,
        "i1",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    );
    let doc = roxmltree::Document::parse(&items).unwrap();
    let jids: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .filter_map(|n| n.attribute("jid"))
        .collect();
    assert_eq!(jids, [format!("groups.{TEST_DOMAIN}"), upload_domain()]);

    let info = ask(
        &mut cluster,
        alice,
        &upload_domain(),
        "i2",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    let doc = roxmltree::Document::parse(&info).unwrap();
    assert_eq!(doc.root_element().attribute("type"), Some("result"));
    let identity = doc.descendants().find(|n| n.has_tag_name("identity"));
    let identity = identity.unwrap();
    assert_eq!(identity.attribute("category"), Some("store"));
    assert_eq!(identity.attribute("type"), Some("file"));
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("feature") && n.attribute("var") == Some(UPLOAD_NS)));
    let form = doc
        .descendants()
        .find(|n| n.has_tag_name(("jabber:x:data", "x")))
        .unwrap();
    let value_of = |var: &str| {
        let field = form
            .children()
            .find(|n| n.attribute("var") == Some(var))
            .unwrap();
        let value = field.children().find(|n| n.has_tag_name("value")).unwrap();
        value.text().unwrap().to_owned()
    };
    assert_eq!(value_of("FORM_TYPE"), UPLOAD_NS);
    assert_eq!(value_of("max-file-size"), "1000");

    // Ping answers; an address under the service does not exist.
    let ping = ask(
        &mut cluster,
        alice,
        &upload_domain(),
        "p",
        "<ping xmlns='urn:xmpp:ping'/>",
    );
    assert!(ping.contains("type='result'"), "{ping}");
    let to = format!("x@{}", upload_domain());
    let out = ask(
        &mut cluster,
        alice,
        &to,
        "x",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    assert!(out.contains("<service-unavailable "), "{out}");
}

#[test]
fn a_slot_carries_urls_the_http_side_verifies_for_the_requester() {
    for shards in [1u16, 2] {
        let mut cluster = cluster(shards);
        let user = user_homed_on("alice", shards - 1, shards);
        // Logged in on shard 0: with two shards the session is handed to its home first.
        let (alice, full) = cluster.login(0, &user, Some("phone"));
        let out = request(
            &mut cluster,
            alice,
            "s1",
            "filename='holiday photo.jpg' size='900' content-type='image/jpeg'",
        );
        assert!(out.contains(&format!("to='{full}'")), "{out}");
        let (put, get) = slot_urls(&out);
        assert!(put.starts_with(&format!("{PUBLIC_URL}/upload/")), "{put}");
        assert!(put.ends_with("/holiday%20photo.jpg"), "{put}");
        assert!(get.starts_with(&format!("{PUBLIC_URL}/download/")), "{get}");
        let signer = SlotSigner::new(SECRET, PUBLIC_URL).unwrap();
        let path = &put[PUBLIC_URL.len()..];
        let grant = signer.verify_put(path, now_s()).unwrap();
        assert_eq!(grant.owner.as_str(), format!("{user}@{TEST_DOMAIN}"));
        assert_eq!(grant.size_bytes, 900);
        assert_eq!(grant.content_type, "image/jpeg");
        assert_eq!(grant.expires_unix_s, now_s() + 300);
        // Another secret does not verify it.
        let other = SlotSigner::new(&[8; 32], PUBLIC_URL).unwrap();
        assert!(other.verify_put(path, now_s()).is_err());
        // No content-type is application/octet-stream, which this policy does not allow.
        let second = request(&mut cluster, alice, "s2", "filename='a.txt' size='10'");
        assert_eq!(
            error_of(&second, "s2"),
            ("not-acceptable".into(), "modify".into())
        );
        // Tokens differ per slot.
        let third = request(
            &mut cluster,
            alice,
            "s3",
            "filename='a.txt' size='10' content-type='text/plain'",
        );
        assert_ne!(slot_urls(&third).1, get);
    }
}

#[test]
fn refusals_are_the_xeps_errors() {
    let mut cluster = cluster(1);
    let (alice, _) = cluster.login(0, "alice", Some("r"));
    let out = request(
        &mut cluster,
        alice,
        "big",
        "filename='a.png' size='1001' content-type='image/png'",
    );
    assert_eq!(
        error_of(&out, "big"),
        ("not-acceptable".into(), "modify".into())
    );
    let doc = roxmltree::Document::parse(&out).unwrap();
    let max = doc
        .descendants()
        .find(|n| n.has_tag_name((UPLOAD_NS, "max-file-size")))
        .and_then(|n| n.text());
    assert_eq!(max, Some("1000"), "{out}");

    let cases = [
        (
            "filename='' size='1' content-type='image/png'",
            "bad-request",
            "modify",
        ),
        (
            "filename='..' size='1' content-type='image/png'",
            "bad-request",
            "modify",
        ),
        (
            "filename='a' size='1' content-type='not a type'",
            "bad-request",
            "modify",
        ),
        (
            "filename='a' size='1' content-type='text/html'",
            "not-acceptable",
            "modify",
        ),
        (
            "filename='a' content-type='image/png'",
            "bad-request",
            "modify",
        ),
        (
            "filename='a' size='lots' content-type='image/png'",
            "bad-request",
            "modify",
        ),
    ];
    for (n, (attrs, condition, kind)) in cases.into_iter().enumerate() {
        let id = format!("r{n}");
        let out = request(&mut cluster, alice, &id, attrs);
        assert_eq!(
            error_of(&out, &id),
            (condition.into(), kind.into()),
            "{attrs}"
        );
    }
    // A set, or another payload, is not a slot request.
    cluster.send(
        alice,
        &format!(
            "<iq type='set' id='s' to='{}'><request xmlns='{UPLOAD_NS}' filename='a' \
             size='1'/></iq>",
            upload_domain()
        ),
    );
    let out = cluster.take_output(alice);
    assert_eq!(
        error_of(&out, "s"),
        ("service-unavailable".into(), "cancel".into())
    );
    // Nothing refused counted against the quota: a full-size slot still fits.
    let ok = request(
        &mut cluster,
        alice,
        "ok",
        "filename='a.png' size='1000' content-type='image/png'",
    );
    slot_urls(&ok);
    let stats = cluster.router(0).stats();
    assert_eq!((stats.upload_slots, stats.upload_refusals), (1, 7));
}

fn stored(owner: &str, token: u8, size_bytes: u64) -> UsageEvent {
    UsageEvent::Stored {
        owner: Jid::parse(owner).unwrap(),
        token: SlotToken::from_random([token; 16]),
        size_bytes,
    }
}

#[test]
fn the_quota_counts_open_slots_stored_files_and_removals() {
    let mut cluster = cluster(1);
    let (alice, _) = cluster.login(0, "alice", Some("r"));
    let owner = format!("alice@{TEST_DOMAIN}");
    let png = |size: u64| format!("filename='a.png' size='{size}' content-type='image/png'");
    slot_urls(&request(&mut cluster, alice, "a", &png(1_000)));
    // 1,000 reserved: 600 more passes the 1,500 quota.
    let out = request(&mut cluster, alice, "b", &png(600));
    assert_eq!(
        error_of(&out, "b"),
        ("resource-constraint".into(), "wait".into())
    );
    // The slot expires unused: its reservation no longer counts.
    cluster.advance(301_000);
    slot_urls(&request(&mut cluster, alice, "c", &png(600)));
    // A file of 1,000 stored (reported by the HTTP side) counts after its slot expired.
    cluster.router_mut(0).on_usage(&stored(&owner, 1, 1_000));
    cluster.advance(301_000);
    let out = request(&mut cluster, alice, "d", &png(600));
    assert_eq!(
        error_of(&out, "d"),
        ("resource-constraint".into(), "wait".into())
    );
    // Removed by retention: room again.
    let removed = UsageEvent::Removed {
        owner: Jid::parse(&owner).unwrap(),
        token: SlotToken::from_random([1; 16]),
        size_bytes: 1_000,
    };
    cluster.router_mut(0).on_usage(&removed);
    slot_urls(&request(&mut cluster, alice, "e", &png(600)));
    assert_eq!(cluster.router(0).stats().upload_usage_events, 2);
}

#[test]
fn the_ledger_is_seeded_with_files_stored_before_start() {
    let mut cluster = cluster(1);
    let router: &mut Router = cluster.router_mut(0);
    router.seed_upload_usage(&Jid::parse(&format!("alice@{TEST_DOMAIN}")).unwrap(), 1_200);
    let (alice, _) = cluster.login(0, "alice", Some("r"));
    let png = |size: u64| format!("filename='a.png' size='{size}' content-type='image/png'");
    let out = request(&mut cluster, alice, "a", &png(301));
    assert_eq!(
        error_of(&out, "a"),
        ("resource-constraint".into(), "wait".into())
    );
    slot_urls(&request(&mut cluster, alice, "b", &png(300)));
    // Others are not affected.
    let (bob, _) = cluster.login(0, "bob", Some("r"));
    slot_urls(&request(&mut cluster, bob, "c", &png(1_000)));
}

#[test]
fn without_an_upload_service_its_domain_is_remote_and_not_listed() {
    let mut cluster = Cluster::new(1);
    let (alice, _) = cluster.login(0, "alice", Some("r"));
    let out = request(&mut cluster, alice, "u", "filename='a' size='1'");
    assert!(out.contains("<remote-server-not-found "), "{out}");
    let items = ask(
        &mut cluster,
        alice,
        TEST_DOMAIN,
        "i",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    );
    assert!(items.contains(&format!("<item jid='groups.{TEST_DOMAIN}'/>")));
    assert!(!items.contains("upload."), "{items}");
    // Usage events are ignored.
    cluster
        .router_mut(0)
        .on_usage(&stored(&format!("alice@{TEST_DOMAIN}"), 1, 5));
    assert_eq!(cluster.router(0).stats().upload_usage_events, 0);
}
