//! The HTTP side of XEP-0363 against a real server on 127.0.0.1:0 and a real HTTP client.

mod common;

use common::{full, path_of, Harness, Pattern, PatternBody, Reply};
use hyper::{Method, StatusCode};
use rookery_http::Refusal;
use rookery_upload::{ContentTypes, SlotPolicy, UsageEvent};

fn harness() -> Harness {
    Harness::start(SlotPolicy::default(), |_| {})
}

fn stored_ok(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn upload_then_download_is_byte_identical() {
    let mut h = harness();
    let data = Pattern::bytes(1, 300_000);
    let slot = h.slot(
        "romeo@montague.tld/garden",
        "très cool.jpg",
        300_000,
        Some("image/jpeg"),
    );
    assert!(slot.get_url.ends_with("/tr%C3%A8s%20cool.jpg"));
    stored_ok(&h.put(&slot.put_url, Some("image/jpeg"), &data));
    let got = h.get(&slot.get_url, &[]);
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body == data, "downloaded bytes differ");
    assert_eq!(got.header("content-type"), Some("image/jpeg"));
    assert_eq!(got.header("content-length"), Some("300000"));
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        got.header("etag"),
        Some(format!("\"{}\"", slot.token).as_str())
    );
    assert_eq!(
        got.header("last-modified"),
        Some("Sat, 06 Dec 2025 05:46:40 GMT")
    );
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert!(got
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    let head = h.request(Method::HEAD, &slot.get_url, &[], full(b""));
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());
    let metrics = h.handle().metrics();
    assert_eq!((metrics.files, metrics.stored_bytes), (1, 300_000));
    assert_eq!(
        (metrics.uploads_total, metrics.upload_bytes_total),
        (1, 300_000)
    );
    assert_eq!(
        (metrics.downloads_total, metrics.download_bytes_total),
        (1, 300_000)
    );
    let owner = rookery_proto::Jid::parse("romeo@montague.tld").unwrap();
    let stored = UsageEvent::Stored {
        owner,
        token: slot.token,
        size_bytes: 300_000,
    };
    assert_eq!(h.events(), vec![stored]);
}

#[test]
fn single_ranges_and_conditional_requests() {
    let mut h = harness();
    let data = Pattern::bytes(2, 10_000);
    let slot = h.slot("juliet@capulet.tld", "song.ogg", 10_000, Some("audio/ogg"));
    stored_ok(&h.put(&slot.put_url, Some("audio/ogg"), &data));
    let part = h.get(&slot.get_url, &[("range", "bytes=1000-1999")]);
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/10000"));
    assert_eq!(part.header("content-length"), Some("1000"));
    assert!(part.body == data[1000..2000]);
    let tail = h.get(&slot.get_url, &[("range", "bytes=-10")]);
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert!(tail.body == data[9_990..]);
    let open = h.get(&slot.get_url, &[("range", "bytes=9000-")]);
    assert!(open.body == data[9_000..]);
    let past = h.get(&slot.get_url, &[("range", "bytes=10000-")]);
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), Some("bytes */10000"));
    let etag = format!("\"{}\"", slot.token);
    let stale = h.get(
        &slot.get_url,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    );
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body.len(), 10_000);
    let fresh = h.get(
        &slot.get_url,
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    );
    assert_eq!(fresh.status, StatusCode::PARTIAL_CONTENT);
    let cached = h.get(&slot.get_url, &[("if-none-match", &etag)]);
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(
        h.handle()
            .metrics()
            .refusals_of(Refusal::RangeNotSatisfiable),
        1
    );
}

#[test]
fn an_expired_slot_is_refused() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "late.txt", 5, Some("text/plain"));
    h.advance(SlotPolicy::DEFAULT_SLOT_TTL_S);
    let reply = h.put(&slot.put_url, Some("text/plain"), b"hello");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&reply.body).contains("expired"));
    assert_eq!(h.get(&slot.get_url, &[]).status, StatusCode::NOT_FOUND);
    assert_eq!(h.handle().metrics().refusals_of(Refusal::Expired), 1);
}

#[test]
fn a_wrong_size_or_type_is_refused() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "a.png", 10, Some("image/png"));
    let short = h.put(&slot.put_url, Some("image/png"), &[0u8; 9]);
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let long = h.put(&slot.put_url, Some("image/png"), &[0u8; 11]);
    assert_eq!(long.status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunked = PatternBody::new(3, 10, false);
    let headers = [("content-type", "image/png")];
    let no_length = h.request(Method::PUT, &slot.put_url, &headers, chunked);
    assert_eq!(no_length.status, StatusCode::LENGTH_REQUIRED);
    let wrong_type = h.put(&slot.put_url, Some("image/jpeg"), &[0u8; 10]);
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_type = h.put(&slot.put_url, None, &[0u8; 10]);
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let metrics = h.handle().metrics();
    assert_eq!(metrics.refusals_of(Refusal::WrongLength), 2);
    assert_eq!(metrics.refusals_of(Refusal::LengthRequired), 1);
    assert_eq!(metrics.refusals_of(Refusal::WrongType), 2);
    // Refusals used nothing up: the right upload still goes through, in another case.
    stored_ok(&h.put(&slot.put_url, Some("IMAGE/PNG"), &[7u8; 10]));
    // A slot requested without a type takes a PUT without one.
    let untyped = h.slot("romeo@montague.tld", "blob", 3, None);
    stored_ok(&h.put(&untyped.put_url, None, b"abc"));
    assert_eq!(
        h.get(&untyped.get_url, &[]).header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn an_empty_file_is_a_file() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "empty.txt", 0, Some("text/plain"));
    stored_ok(&h.put(&slot.put_url, Some("text/plain"), b""));
    let got = h.get(&slot.get_url, &[]);
    assert_eq!(
        (got.status, got.header("content-length")),
        (StatusCode::OK, Some("0"))
    );
    assert!(got.body.is_empty());
    let range = h.get(&slot.get_url, &[("range", "bytes=0-")]);
    assert_eq!(range.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h.handle().metrics().files, 1);
}

#[test]
fn a_second_put_is_refused_and_the_file_kept() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "once.txt", 4, Some("text/plain"));
    stored_ok(&h.put(&slot.put_url, Some("text/plain"), b"one!"));
    let again = h.put(&slot.put_url, Some("text/plain"), b"two!");
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(h.get(&slot.get_url, &[]).body, b"one!");
    assert_eq!(
        h.handle().metrics().refusals_of(Refusal::AlreadyUploaded),
        1
    );
}

#[test]
fn altered_or_foreign_urls_are_refused() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "a.txt", 4, Some("text/plain"));
    let path = path_of(&slot.put_url);
    let base = slot.put_url.strip_suffix(path).unwrap();
    let renamed = format!("{base}{}", path.replace("a.txt", "b.txt"));
    assert_eq!(
        h.put(&renamed, Some("text/plain"), b"data").status,
        StatusCode::FORBIDDEN
    );
    let truncated = format!("{base}{}", path.rsplit_once('/').unwrap().0);
    assert_eq!(
        h.put(&truncated, Some("text/plain"), b"data").status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.handle().metrics().refusals_of(Refusal::BadSignature), 1);
    // The GET URL's name must match too: one file, one URL.
    stored_ok(&h.put(&slot.put_url, Some("text/plain"), b"data"));
    let other_name = slot.get_url.replace("a.txt", "c.txt");
    assert_eq!(h.get(&other_name, &[]).status, StatusCode::NOT_FOUND);
    let reencoded = slot.get_url.replace("a.txt", "a%2Etxt");
    assert_eq!(h.get(&reencoded, &[]).body, b"data");
    let wrong_method = h.request(Method::DELETE, &slot.get_url, &[], full(b""));
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("allow"), Some("OPTIONS, HEAD, GET"));
}

#[test]
fn an_aborted_upload_leaves_nothing_and_can_be_retried() {
    use std::io::Write as _;
    let mut h = harness();
    let data = Pattern::bytes(4, 1_000_000);
    let slot = h.slot(
        "romeo@montague.tld",
        "big.bin",
        1_000_000,
        Some("application/octet-stream"),
    );
    {
        let mut raw = std::net::TcpStream::connect(h.addr()).unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            path_of(&slot.put_url)
        );
        raw.write_all(head.as_bytes()).unwrap();
        raw.write_all(&data[..400_000]).unwrap();
    }
    h.wait_until("the server sees the abort", |h| {
        h.handle().metrics().refusals_of(Refusal::UploadAborted) == 1
    });
    let tmp = h.upload_dir().join("upload/tmp");
    h.wait_until("the temp file is gone", |_| {
        std::fs::read_dir(&tmp).unwrap().count() == 0
    });
    assert_eq!(h.get(&slot.get_url, &[]).status, StatusCode::NOT_FOUND);
    stored_ok(&h.put(&slot.put_url, Some("application/octet-stream"), &data));
    assert!(h.get(&slot.get_url, &[]).body == data);
    assert!(h.handle().metrics().upload_bytes_total >= 1_400_000);
}

/// Sends a PUT head with `Expect: 100-continue` and returns the first status line answered.
fn first_status_line(stream: &mut std::net::TcpStream, path: &str, len: usize) -> String {
    use std::io::{BufRead as _, Write as _};
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\
         Content-Type: text/plain\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&*stream)
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn expect_100_continue_asks_for_the_body_only_when_it_is_wanted() {
    use std::io::{Read as _, Write as _};
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "c.txt", 5, Some("text/plain"));
    let path = path_of(&slot.put_url);
    let mut refused = std::net::TcpStream::connect(h.addr()).unwrap();
    let forged = path.replace("c.txt", "d.txt");
    assert!(first_status_line(&mut refused, &forged, 5).starts_with("HTTP/1.1 403"));
    let mut accepted = std::net::TcpStream::connect(h.addr()).unwrap();
    assert!(first_status_line(&mut accepted, path, 5).starts_with("HTTP/1.1 100"));
    accepted.write_all(b"hello").unwrap();
    let mut rest = [0u8; 64];
    let n = accepted.read(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest[..n]);
    assert!(rest.trim_start().starts_with("HTTP/1.1 201"), "{rest}");
    assert_eq!(h.get(&slot.get_url, &[]).body, b"hello");
}

#[test]
fn cors_preflight_and_the_websocket_seam() {
    let mut h = harness();
    let slot = h.slot("romeo@montague.tld", "a.txt", 1, Some("text/plain"));
    let headers = [
        ("origin", "https://web.example"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ];
    let preflight = h.request(Method::OPTIONS, &slot.put_url, &headers, full(b""));
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    assert!(preflight
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Content-Type"));
    assert_eq!(preflight.header("access-control-max-age"), Some("86400"));
    let ws_url = format!("http://{}/xmpp-websocket", h.addr());
    assert_eq!(h.get(&ws_url, &[]).status, StatusCode::NOT_IMPLEMENTED);
    let nowhere = format!("http://{}/elsewhere", h.addr());
    assert_eq!(h.get(&nowhere, &[]).status, StatusCode::NOT_FOUND);
}

#[test]
fn a_public_url_path_prefixes_the_routes() {
    let mut h = Harness::start(SlotPolicy::default(), |config| {
        config.public_url = "http://127.0.0.1/xmpp/files".into();
    });
    let slot = h.slot("romeo@montague.tld", "p.txt", 3, Some("text/plain"));
    assert!(path_of(&slot.put_url).starts_with("/xmpp/files/upload/"));
    stored_ok(&h.put(&slot.put_url, Some("text/plain"), b"abc"));
    assert_eq!(h.get(&slot.get_url, &[]).body, b"abc");
    // A proxy that strips the prefix is served too.
    let stripped = slot.get_url.replace("/xmpp/files/", "/");
    assert_eq!(h.get(&stripped, &[]).body, b"abc");
}

#[test]
fn conns_past_the_limit_are_closed() {
    let h = Harness::start(SlotPolicy::default(), |config| config.limits.max_conns = 1);
    let held = std::net::TcpStream::connect(h.addr()).unwrap();
    h.wait_until("the first conn is served", |h| {
        h.handle().metrics().conns_open == 1
    });
    let url = format!("http://{}/elsewhere", h.addr());
    let refused = h.rt.block_on(common::send(
        h.addr(),
        common::build(Method::GET, &url, &[], full(b"")),
    ));
    assert!(refused.is_err(), "a conn past max_conns was served");
    assert_eq!(h.handle().metrics().refusals_of(Refusal::TooManyConns), 1);
    drop(held);
    h.wait_until("the held conn is closed", |h| {
        h.handle().metrics().conns_open == 0
    });
    assert_eq!(h.get(&url, &[]).status, StatusCode::NOT_FOUND);
}

#[test]
fn policy_refusals_happen_before_any_url_exists() {
    // The router's side: what the XEP errors look like for this harness's policy.
    let policy = SlotPolicy {
        max_file_bytes: 100,
        content_types: ContentTypes::Only(vec!["image/*".into()]),
        ..SlotPolicy::default()
    };
    let mut h = Harness::start(policy, |_| {});
    let owner = rookery_proto::Jid::parse("romeo@montague.tld").unwrap();
    let too_big = rookery_upload::SlotRequest {
        filename: "a.png",
        size_bytes: 101,
        content_type: Some("image/png"),
    };
    let refusal = h
        .issuer
        .issue(&mut h.ledger, &owner, &too_big, 0, [1; 16])
        .unwrap_err();
    assert!(refusal
        .stanza_error()
        .to_xml()
        .contains("<max-file-size>100</max-file-size>"));
    let wrong_type = rookery_upload::SlotRequest {
        content_type: Some("text/html"),
        size_bytes: 10,
        ..too_big
    };
    let refusal = h
        .issuer
        .issue(&mut h.ledger, &owner, &wrong_type, 0, [2; 16])
        .unwrap_err();
    assert!(refusal.stanza_error().to_xml().contains("<not-acceptable "));
}
