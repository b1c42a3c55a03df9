//! Tests of the admin endpoint over loopback: answers, the whole-request deadline, scrapers
//! not blocking each other, the in-flight bound and the accept backoff. No test asserts a
//! speed: a "prompt" answer is one that comes while another conn still holds a request open
//! under a deadline far longer than the test's own read timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::*;

fn start(limits: Limits) -> SocketAddr {
    serve("127.0.0.1:0".parse().unwrap(), limits, || {
        "m 1\n".to_string()
    })
    .unwrap()
}

/// A full scrape; the reply text, or the error that ended it.
fn scrape(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(read_timeout))?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Whether the server closed `conn` (EOF or reset) within `wait`.
fn closed_by_server(conn: &mut TcpStream, wait: Duration) -> bool {
    conn.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 64];
    match conn.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
    }
}

#[test]
fn answers_metrics_and_404() {
    let addr = start(Limits::default());
    let reply = scrape(addr, Duration::from_secs(10)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nm 1\n"), "{reply}");
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
}

#[test]
fn a_silent_client_does_not_keep_others_from_their_metrics() {
    // The silent conn may hold its request for 60 s; the scraper gives up after 20 s.
    let addr = start(Limits {
        deadline: Duration::from_secs(60),
        max_in_flight: 8,
    });
    let silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let reply = scrape(addr, Duration::from_secs(20)).expect("served while the others wait");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    drop((silent, half));
}

#[test]
fn the_deadline_covers_the_whole_request_not_each_read() {
    // One byte every 50 ms keeps every single read short; the 300 ms deadline still ends it.
    let addr = start(Limits {
        deadline: Duration::from_millis(300),
        max_in_flight: 8,
    });
    let mut drip = TcpStream::connect(addr).unwrap();
    let head =
        b"GET /metrics HTTP/1.1\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    for byte in head {
        if drip.write_all(std::slice::from_ref(byte)).is_err()
            || closed_by_server(&mut drip, Duration::from_millis(50))
        {
            break;
        }
        sent += 1;
    }
    assert!(
        sent < head.len(),
        "the server kept reading a dripping request: all {sent} bytes"
    );
    assert!(closed_by_server(&mut drip, Duration::from_secs(10)));
}

#[test]
fn past_the_in_flight_bound_a_conn_is_turned_away_at_once() {
    let addr = start(Limits {
        deadline: Duration::from_secs(60),
        max_in_flight: 1,
    });
    let mut holder = TcpStream::connect(addr).unwrap();
    holder.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // The holder was accepted first (the listen queue is FIFO), so this one finds no room.
    let busy = scrape(addr, Duration::from_secs(20));
    assert!(
        !busy.as_deref().unwrap_or("").starts_with("HTTP/1.1 200"),
        "{busy:?}"
    );
    // Once the holder hangs up, its slot frees and scrapes are served again.
    drop(holder);
    let served = (0..500).any(|_| {
        let ok = scrape(addr, Duration::from_secs(20))
            .is_ok_and(|reply| reply.starts_with("HTTP/1.1 200 OK"));
        if !ok {
            std::thread::sleep(Duration::from_millis(10));
        }
        ok
    });
    assert!(served, "the freed slot serves scrapes");
}

#[test]
fn accept_errors_back_off_doubling_to_a_cap() {
    let mut backoff = Backoff::default();
    assert!(backoff.is_first());
    let sleeps: Vec<Duration> = (0..10).map(|_| backoff.next_sleep()).collect();
    assert_eq!(sleeps[0], BACKOFF_FIRST);
    assert!(sleeps
        .windows(2)
        .all(|w| w[1] == (w[0] * 2).min(BACKOFF_MAX)));
    assert_eq!(*sleeps.last().unwrap(), BACKOFF_MAX);
    assert!(!backoff.is_first());
    backoff.reset();
    assert_eq!(backoff.next_sleep(), BACKOFF_FIRST);
    // Out of descriptors is the process's problem (back off); a reset conn is not.
    assert!(!about_one_conn(&std::io::Error::from_raw_os_error(
        libc_emfile()
    )));
    assert!(about_one_conn(&ErrorKind::ConnectionAborted.into()));
}

/// EMFILE on Linux and the BSDs.
fn libc_emfile() -> i32 {
    24
}

/// One request with `body`; the reply text.
fn request(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn account_routes_check_names_and_bodies_before_any_shard() {
    let domain = rookery_proto::Jid::new(None, "example.test", None).unwrap();
    let desk = Arc::new(AccountDesk::new(
        rookery_router::Placement::local(1),
        domain,
    ));
    let addr = serve_with_accounts(
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        || "m 1\n".to_string(),
        Some(desk),
    )
    .unwrap();
    let bad_name = request(
        addr,
        "POST /accounts/add/a@b HTTP/1.1\r\ncontent-length: 2\r\n\r\n",
        b"pw",
    );
    assert!(bad_name.starts_with("HTTP/1.1 400 "), "{bad_name}");
    // Refused on its length alone (the body is not sent: closing with unread bytes would
    // reset the conn and lose the reply).
    let too_long = request(
        addr,
        "POST /accounts/add/erin HTTP/1.1\r\ncontent-length: 5000\r\n\r\n",
        b"",
    );
    assert!(too_long.starts_with("HTTP/1.1 413 "), "{too_long}");
    let empty = request(
        addr,
        "POST /accounts/passwd/erin HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        b"",
    );
    assert!(empty.starts_with("HTTP/1.1 400 "), "{empty}");
    let unknown = request(addr, "GET /accounts/nothing HTTP/1.1\r\n\r\n", b"");
    assert!(unknown.starts_with("HTTP/1.1 404 "), "{unknown}");
    assert!(scrape(addr, Duration::from_secs(20))
        .unwrap()
        .ends_with("m 1\n"));
}
