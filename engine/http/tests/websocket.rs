//! The RFC 7395 upgrade over real sockets: a 101 with the right accept key, the socket and the
//! bytes read past the request handed to the engine's sink (here a channel), refusals with a
//! reason, and a refused hand-over counted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Harness;
use rookery_http::{Refusal, WebSocketConn};
use rookery_upload::SlotPolicy;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WAIT: Duration = Duration::from_secs(10);

fn request(protocol: &str, version: &str) -> String {
    format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

/// A harness whose upgraded conns arrive on the returned channel (or are refused).
fn harness(accept: bool) -> (Harness, mpsc::Receiver<WebSocketConn>) {
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let h = Harness::start(SlotPolicy::default(), move |config| {
        let tx = Arc::clone(&tx);
        config.websocket = Some(Arc::new(move |conn| {
            if !accept {
                return Err(conn);
            }
            tx.lock().unwrap().send(conn).unwrap();
            Ok(())
        }));
    });
    (h, rx)
}

/// Reads until the end of a response head (bounded by the socket's read timeout).
fn read_head(client: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..100 {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            return (head, got[end + 4..].to_vec());
        }
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    panic!("no response head");
}

#[test]
fn an_upgrade_hands_the_socket_and_early_bytes_to_the_engine() {
    let (h, conns) = harness(true);
    let mut client = TcpStream::connect(h.addr()).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    // The first frame goes with the request, before the 101: it must not be lost.
    let early = b"\x81\x84abcd....";
    let mut wire = request("xmpp", "13").into_bytes();
    wire.extend_from_slice(early);
    client.write_all(&wire).unwrap();
    let (head, after) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(lower.contains("sec-websocket-protocol: xmpp"), "{head}");
    assert!(after.is_empty());

    let conn = conns.recv_timeout(WAIT).expect("the conn reached the sink");
    assert_eq!(conn.peer, client.local_addr().unwrap());
    assert!(!conn.tls_relayed);
    let mut server_side = TcpStream::from(conn.socket);
    server_side.set_nonblocking(false).unwrap();
    server_side.set_read_timeout(Some(WAIT)).unwrap();
    let mut seen = conn.leftover;
    let mut buf = [0u8; 64];
    while seen.len() < early.len() {
        let n = server_side.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(seen, early);
    // The socket is the client's conn, live in both directions, and hyper no longer reads it.
    server_side.write_all(b"\x81\x02hi").unwrap();
    let mut answer = [0u8; 4];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"\x81\x02hi");
    assert_eq!(h.handle().metrics().websocket_upgrades_total, 1);
}

#[test]
fn bad_handshakes_are_refused_with_a_reason() {
    let (h, conns) = harness(true);
    for (protocol, version, status, reason) in [
        ("chat", "13", "400", "subprotocol xmpp required"),
        ("xmpp", "8", "426", "Sec-WebSocket-Version: 13"),
    ] {
        let mut client = TcpStream::connect(h.addr()).unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        client
            .write_all(request(protocol, version).as_bytes())
            .unwrap();
        let (head, mut body) = read_head(&mut client);
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&body).contains('\n') {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0);
            body.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&body).contains(reason), "{body:?}");
    }
    assert!(conns.try_recv().is_err());
    let refused = h
        .handle()
        .metrics()
        .refusals_of(Refusal::WebSocketHandshake);
    assert_eq!(refused, 2);
}

#[test]
fn a_refused_hand_over_closes_the_conn_and_is_counted() {
    let (h, _conns) = harness(false);
    let mut client = TcpStream::connect(h.addr()).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.write_all(request("xmpp", "13").as_bytes()).unwrap();
    let (head, _) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut buf = [0u8; 16];
    assert_eq!(
        client.read(&mut buf).unwrap(),
        0,
        "closed after the refusal"
    );
    h.wait_until("the refusal is counted", |h| {
        h.handle().metrics().refusals_of(Refusal::WebSocketHandover) == 1
    });
}

#[test]
fn an_upgrade_from_a_page_whose_origin_is_not_allowed_gets_403() {
    let (tx, conns) = mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let h = Harness::start(SlotPolicy::default(), move |config| {
        let tx = Arc::clone(&tx);
        config.websocket = Some(Arc::new(move |conn| {
            tx.lock().unwrap().send(conn).unwrap();
            Ok(())
        }));
        config.websocket_origins =
            rookery_http::AllowedOrigins::parse(&["https://chat.example.org"]).unwrap();
    });
    let with_origin = |origin: Option<&str>| {
        let mut request = request("xmpp", "13");
        if let Some(origin) = origin {
            request.insert_str(request.len() - 2, &format!("Origin: {origin}\r\n"));
        }
        let mut client = TcpStream::connect(h.addr()).unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        client.write_all(request.as_bytes()).unwrap();
        let (head, mut body) = read_head(&mut client);
        let mut buf = [0u8; 512];
        while head.starts_with("HTTP/1.1 403") && !body.contains(&b'\n') {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0, "closed inside the body: {body:?}");
            body.extend_from_slice(&buf[..n]);
        }
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    for allowed in [
        Some("https://chat.example.org"),
        Some("HTTPS://Chat.Example.Org"),
        None,
    ] {
        let (head, _) = with_origin(allowed);
        assert!(head.starts_with("HTTP/1.1 101"), "{allowed:?}: {head}");
        conns
            .recv_timeout(WAIT)
            .expect("the upgraded conn handed over");
    }
    for refused in ["https://evil.example", "http://chat.example.org", "null"] {
        let (head, body) = with_origin(Some(refused));
        assert!(head.starts_with("HTTP/1.1 403"), "{refused}: {head}");
        assert!(
            body.contains(&format!("Origin {refused} may not")),
            "{body}"
        );
        assert!(body.contains("--ws-allowed-origin"), "{body}");
    }
    assert!(
        conns.try_recv().is_err(),
        "no refused conn reached the engine"
    );
    let metrics = h.handle().metrics();
    assert_eq!(metrics.refusals_of(Refusal::WebSocketOrigin), 3);
    assert_eq!(metrics.websocket_upgrades_total, 3);
}
