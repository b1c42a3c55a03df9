//! XMPP over WebSocket (RFC 7395) end to end, under every backend, on two shards (so a
//! WebSocket conn adopted by one shard is handed to its user's home shard with its layer):
//! a `websockets` (Python) client logs in, sees a slixmpp TCP user's presence and chats with
//! it, every message it gets parsing as a document of its own; unmasked, binary and
//! oversized frames close only their conn with 1002, 1003 and 1009; a wrong `<open/>`
//! namespace gets a standalone `<stream:error>` and `<close/>`; a XEP-0198 session dropped
//! without `<close/>` is resumed over a new WebSocket with the message sent meanwhile
//! (`tests/interop/ws_chat.py`). `scripts/test.sh` installs `websockets` when missing; a
//! missing one fails this test (never skipped silently).

mod support;

use std::process::Command;

use support::certs::TestCa;
use support::{backends, token, user_on_shard, Server, DOMAIN};

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

#[test]
fn a_websocket_user_and_a_tcp_user_chat_and_bad_frames_close_only_their_conn() {
    for backend in backends() {
        let shards = 2u16;
        let http_port = free_port().to_string();
        let http = format!("127.0.0.1:{http_port}");
        let server = Server::start(backend, shards as usize, &["--http-listen", &http]);
        let web = user_on_shard("web", 1, shards);
        let tcp = user_on_shard("tcp", 0, shards);
        let path = format!("{}/tests/interop/ws_chat.py", env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("python3")
            .arg(path)
            .args([
                "127.0.0.1",
                &server.addr.port().to_string(),
                &http_port,
                DOMAIN,
            ])
            .args([format!("{web}@{DOMAIN}"), token(&web)])
            .args([format!("{tcp}@{DOMAIN}"), token(&tcp)])
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend}: {stdout}\n{stderr}");
        for needle in [
            format!("\"ws_jid\": \"{web}@{DOMAIN}/web\""),
            "\"features_sm\": true".into(),
            format!("\"tcp_saw_ws_presence_from\": \"{web}@{DOMAIN}/web\""),
            format!("\"ws_saw_tcp_presence_from\": \"{tcp}@{DOMAIN}/"),
            "\"tcp_got\": \"hello from the web\"".into(),
            format!("\"tcp_got_from\": \"{web}@{DOMAIN}/web\""),
            "\"ws_got\": \"hello from tcp <&>\"".into(),
            "\"close_unmasked\": 1002".into(),
            "\"close_binary\": 1003".into(),
            "\"close_oversized\": 1009".into(),
            "\"eof_unmasked\": true".into(),
            "\"eof_binary\": true".into(),
            "\"eof_oversized\": true".into(),
            "\"stream_error\": [\"invalid-namespace\"]".into(),
            format!("\"error_after_open\": \"{DOMAIN}\""),
            "\"still_chatting\": true".into(),
            "\"ws_closed_with\": \"{urn:ietf:params:xml:ns:xmpp-framing}close\"".into(),
            "\"resumed\": true".into(),
            "\"resumed_body\": \"while you were away\"".into(),
        ] {
            assert!(stdout.contains(&needle), "{backend}: {needle} in {stdout}");
        }
        let metrics = server.metrics();
        assert!(
            metrics.contains("rookery_http_websocket_upgrades_total "),
            "{metrics}"
        );
    }
}

/// `wss://`: the HTTP listener ends TLS (the XMPP listener's certificate) and relays the
/// plaintext to a shard over a socket pair; two users log in and chat through it, and the
/// relays are counted while they last.
#[test]
fn websocket_over_https_is_relayed_to_the_shards() {
    let ca = TestCa::new("ws-tls", DOMAIN);
    for backend in backends() {
        let http_port = free_port().to_string();
        let http = format!("127.0.0.1:{http_port}");
        let (cert, key) = (ca.arg("server.pem"), ca.arg("server.key"));
        let flags = [
            "--http-listen",
            &http,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        let server = Server::start(backend, 2, &flags);
        let (one, two) = (user_on_shard("one", 0, 2), user_on_shard("two", 1, 2));
        let path = format!("{}/tests/interop/ws_tls.py", env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("python3")
            .arg(path)
            .args(["127.0.0.1", &http_port, DOMAIN, &ca.arg("ca.pem")])
            .args([format!("{one}@{DOMAIN}"), token(&one)])
            .args([format!("{two}@{DOMAIN}"), token(&two)])
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{backend}: {stdout}\n{stderr}");
        assert!(stdout.contains("\"wss_body\": \"over wss\""), "{stdout}");
        assert!(
            stdout.contains(&format!("\"wss_from\": \"{one}@{DOMAIN}/tls1\"")),
            "{stdout}"
        );
        let metrics = server.metrics();
        assert!(
            metrics.contains("\nrookery_http_websocket_upgrades_total 2\n"),
            "{metrics}"
        );
    }
}
