//! `--ws-allowed-origin` end to end: a server given a list upgrades requests from those
//! origins (and from clients that send none, which are not browsers) and answers 403 to any
//! other origin, counted as `reason="websocket_origin"`; an entry that is not an origin stops
//! the server at start with what to write instead.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Server, DOMAIN, SECRET, WAIT};

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// The status line of the answer to a WebSocket upgrade sent with `origin`.
fn upgrade_status(http: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {http}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n{origin}\r\n"
    );
    let mut conn = TcpStream::connect(http).expect("the HTTP listener");
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = conn.read(&mut buf).expect("an answer within WAIT");
        assert!(n > 0, "closed before a status line: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn only_listed_origins_may_open_a_websocket() {
    let http = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--http-listen",
        &http,
        "--ws-allowed-origin",
        "https://chat.example.test,http://127.0.0.1:8080",
    ];
    let server = Server::start("poll", 1, &flags);
    for allowed in [
        Some("https://chat.example.test"),
        Some("http://127.0.0.1:8080"),
        None,
    ] {
        let status = upgrade_status(&http, allowed);
        assert!(status.starts_with("HTTP/1.1 101"), "{allowed:?}: {status}");
    }
    for refused in ["https://evil.example", "http://127.0.0.1:8081"] {
        let status = upgrade_status(&http, Some(refused));
        assert!(status.starts_with("HTTP/1.1 403"), "{refused}: {status}");
    }
    let metrics = server.metrics();
    assert!(
        metrics.contains("rookery_http_refusals_total{reason=\"websocket_origin\"} 2\n"),
        "{metrics}"
    );
}

#[test]
fn an_entry_that_is_not_an_origin_stops_the_server_at_start() {
    let data_dir = Server::temp_data_dir();
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args(["--listen", "127.0.0.1:0", "--domain", DOMAIN])
        .args(["--token-secret", SECRET, "--http-listen", &http])
        .args(["--data-dir", &data_dir.display().to_string()])
        .args(["--ws-allowed-origin", "https://chat.example.test/app"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rookery");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {stderr}");
    assert!(
        stderr.contains("--ws-allowed-origin") && stderr.contains("scheme://host[:port]"),
        "{stderr}"
    );
}
