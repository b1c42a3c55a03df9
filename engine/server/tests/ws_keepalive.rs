//! The WebSocket keepalive end to end (`--ws-ping-interval 1 --ws-ping-timeout 1`), under
//! every backend, over raw sockets so every frame is seen: a quiet conn gets an empty ping
//! (RFC 6455 5.5.2; RFC 7395 forbids whitespace keepalives); a conn that answers with pongs
//! stays open and keeps being pinged; a conn that never answers gets a close frame with 1001
//! and EOF; the pings and the timeout are counted.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{backends, Server};

/// Longest wait for one frame: the check runs every second, the policy is 1 s + 1 s.
const FRAME_WAIT: Duration = Duration::from_secs(5);

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A WebSocket conn past its 101 (nothing else sent: no XMPP needed for the keepalive).
fn upgraded(http: &str) -> TcpStream {
    let mut conn = TcpStream::connect(http).expect("the HTTP listener");
    conn.set_read_timeout(Some(FRAME_WAIT)).unwrap();
    let request = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {http}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).unwrap();
    // Byte by byte up to the end of the head: the frames after it stay unread.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end of the response head: {head:?}");
        conn.read_exact(&mut byte).expect("the 101 response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    conn
}

/// The next server frame (unmasked, short: only control frames come here): opcode, payload.
fn next_frame(conn: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    conn.read_exact(&mut header).ok()?;
    assert_eq!(header[1] & 0x80, 0, "server frames are unmasked");
    let len = usize::from(header[1] & 0x7f);
    assert!(len < 126, "a control frame: {header:?}");
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).ok()?;
    Some((header[0], payload))
}

/// A masked empty pong (clients mask every frame).
const PONG: [u8; 6] = [0x8A, 0x80, 1, 2, 3, 4];
const PING_OPCODE: u8 = 0x89;
const CLOSE_OPCODE: u8 = 0x88;

#[test]
fn quiet_websockets_are_pinged_and_those_that_never_answer_are_closed_with_1001() {
    for backend in backends() {
        let http = format!("127.0.0.1:{}", free_port());
        let flags = [
            "--http-listen",
            &http,
            "--ws-ping-interval",
            "1",
            "--ws-ping-timeout",
            "1",
        ];
        let server = Server::start(backend, 1, &flags);
        let mut answering = upgraded(&http);
        let mut silent = upgraded(&http);

        // Both quiet: both pinged (in the same check); only one answers.
        let started = Instant::now();
        for conn in [&mut silent, &mut answering] {
            assert_eq!(next_frame(conn), Some((PING_OPCODE, vec![])), "{backend}");
        }
        answering.write_all(&PONG).unwrap();

        // The silent conn: the close frame with 1001, then EOF.
        let (opcode, payload) = next_frame(&mut silent).expect("a close frame");
        assert_eq!(opcode, CLOSE_OPCODE, "{backend}");
        assert_eq!(
            payload[..2],
            1001u16.to_be_bytes(),
            "{backend}: {payload:?}"
        );
        let mut rest = [0u8; 16];
        assert_eq!(silent.read(&mut rest).ok(), Some(0), "{backend}: EOF");
        let closed_after = started.elapsed();
        assert!(
            closed_after >= Duration::from_millis(900),
            "{backend}: closed after {closed_after:?}, before the timeout"
        );

        // The answering conn: pinged again after each quiet spell, never closed.
        for round in 0..2 {
            let frame = next_frame(&mut answering);
            assert_eq!(
                frame,
                Some((PING_OPCODE, vec![])),
                "{backend}: round {round}"
            );
            answering.write_all(&PONG).unwrap();
        }

        let pings = server.wait_metric("rookery_websocket_keepalive_pings_total", 4);
        assert!(pings >= 4, "{backend}: {pings} pings");
        assert_eq!(
            server.wait_metric("rookery_websocket_keepalive_timeouts_total", 1),
            1,
            "{backend}"
        );
    }
}
