//! Backend conformance: the same tests, instantiated once per backend by `per_backend!`
//! (support/backends.rs).
//!
//! Each test drives a driver on the test thread with a recording handler; peers are std
//! blocking sockets (in helper threads when they must read and write at once), all on
//! 127.0.0.1 with port 0, with timeouts, joined before the test ends. io_uring tests print
//! `SKIP` and pass when `select_backend(Uring)` fails on this machine.
//!
//! Run one backend: `cargo test -p rookery-io --test conformance poll::` (or `uring::`).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::thread;
use std::time::{Duration, Instant};

use rookery_io::{
    BackendChoice, CloseReason, ConnId, Driver, Event, Handler, Limits, Linger, ListenerId, Ops,
    SendError,
};

#[macro_use]
#[path = "support/backends.rs"]
mod backends;

use backends::pattern;
#[cfg(target_os = "linux")]
use backends::uring_unavailable;

const DEADLINE: Duration = Duration::from_secs(20);
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Recorder {
    echo: bool,
    accepted: Vec<(ListenerId, ConnId, SocketAddr)>,
    connected: Vec<(ConnId, Result<(), i32>)>,
    received: HashMap<ConnId, Vec<u8>>,
    recv_events: usize,
    drained: Vec<ConnId>,
    closed: Vec<(ConnId, CloseReason)>,
    detached: Vec<(ConnId, OwnedFd, Vec<u8>)>,
    accept_failed: Vec<i32>,
    woken: usize,
    /// Event names in delivery order, for ordering checks.
    log: Vec<(&'static str, Option<ConnId>)>,
}

impl<D: Driver> Handler<D> for Recorder {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>) {
        match event {
            Event::Accepted {
                listener,
                conn,
                peer,
            } => {
                self.log.push(("accepted", Some(conn)));
                self.accepted.push((listener, conn, peer));
            }
            Event::Connected { conn, result } => {
                self.log.push(("connected", Some(conn)));
                self.connected.push((conn, result));
            }
            Event::Received { conn, data } => {
                assert!(!data.is_empty(), "Received must never be empty");
                self.log.push(("received", Some(conn)));
                self.recv_events += 1;
                if self.echo {
                    io.send(conn, data).expect("echo send");
                }
                self.received
                    .entry(conn)
                    .or_default()
                    .extend_from_slice(data);
            }
            Event::Drained { conn } => {
                self.log.push(("drained", Some(conn)));
                self.drained.push(conn);
            }
            Event::Closed { conn, reason } => {
                self.log.push(("closed", Some(conn)));
                self.closed.push((conn, reason));
            }
            Event::Detached {
                conn,
                socket,
                leftover,
            } => {
                self.log.push(("detached", Some(conn)));
                self.detached.push((conn, socket, leftover));
            }
            Event::AcceptFailed { errno, .. } => {
                self.log.push(("accept_failed", None));
                self.accept_failed.push(errno);
            }
            Event::Woken => {
                self.log.push(("woken", None));
                self.woken += 1;
            }
            Event::FileRead { .. } => panic!("no file is read in the socket tests"),
            Event::FileWritten { .. } => panic!("no file is registered in these tests"),
        }
    }
}

impl Recorder {
    fn got(&self, conn: ConnId) -> &[u8] {
        self.received.get(&conn).map_or(&[], |v| v)
    }

    fn closes_of(&self, conn: ConnId) -> Vec<CloseReason> {
        self.closed
            .iter()
            .filter(|c| c.0 == conn)
            .map(|c| c.1)
            .collect()
    }
}

/// Turns the driver (10 ms waits) until `done`, failing after [`DEADLINE`].
fn drive<D: Driver>(d: &mut D, h: &mut Recorder, what: &str, done: impl Fn(&Recorder) -> bool) {
    let start = Instant::now();
    while !done(h) {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; log tail: {:?}",
            tail(h)
        );
        d.turn(Some(Duration::from_millis(10)), h).expect("turn");
    }
}

/// Turns the driver for `dur` regardless of events.
fn drive_for<D: Driver>(d: &mut D, h: &mut Recorder, dur: Duration) {
    let start = Instant::now();
    while start.elapsed() < dur {
        d.turn(Some(Duration::from_millis(5)), h).expect("turn");
    }
}

fn tail(h: &Recorder) -> Vec<(&'static str, Option<ConnId>)> {
    h.log.iter().rev().take(12).rev().cloned().collect()
}

fn listener() -> (TcpListener, SocketAddr) {
    listener_with_backlog(128)
}

fn listener_with_backlog(backlog: i32) -> (TcpListener, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(backlog).unwrap();
    let l: TcpListener = s.into();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn peer(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(PEER_TIMEOUT)).unwrap();
    s
}

/// Listens, connects one std peer and drives until the driver accepted it.
fn accept_one<D: Driver>(d: &mut D, h: &mut Recorder) -> (ConnId, TcpStream) {
    let (l, addr) = listener();
    d.listen(l).unwrap();
    let client = peer(addr);
    let before = h.accepted.len();
    drive(d, h, "accept", |h| h.accepted.len() > before);
    (h.accepted[before].1, client)
}

/// The start most tests share: a driver made with `limits` and one accepted conn.
fn driver_with_conn<D: Driver>(
    make: impl Fn(Limits) -> D,
    limits: Limits,
    h: &mut Recorder,
) -> (D, ConnId, TcpStream) {
    let mut d = make(limits);
    let (conn, client) = accept_one(&mut d, h);
    (d, conn, client)
}

/// Default limits but room for `max_output_bytes` queued per conn.
fn queue_limit(max_output_bytes: usize) -> Limits {
    Limits {
        max_output_bytes,
        ..Limits::default()
    }
}

/// Drives until `conn` got its `Closed`.
fn drive_until_closed<D: Driver>(d: &mut D, h: &mut Recorder, conn: ConnId, what: &str) {
    drive(d, h, what, |h| !h.closes_of(conn).is_empty());
}

fn read_exactly(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).expect("peer read");
    buf
}

// ---- the tests -------------------------------------------------------------------------

fn accept_and_receive_split<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let (l, addr) = listener();
    let lid = d.listen(l).unwrap();
    let mut client = peer(addr);
    drive(&mut d, &mut h, "accept", |h| h.accepted.len() == 1);
    let (listener, conn, from) = h.accepted[0];
    assert_eq!(listener, lid);
    assert_eq!(from, client.local_addr().unwrap());
    assert_eq!(d.open_conns(), 1);
    let msg = pattern(20_000, 1);
    for chunk in msg.chunks(733) {
        client.write_all(chunk).unwrap();
        d.turn(Some(Duration::ZERO), &mut h).unwrap();
    }
    drive(&mut d, &mut h, "all bytes", |h| {
        h.got(conn).len() >= msg.len()
    });
    assert_eq!(h.got(conn), &msg[..], "bytes arrive complete and in order");
    assert!(
        h.recv_events > 1,
        "data split across writes arrives as several events"
    );
}

fn echo_large_payload<D: Driver>(make: impl Fn(Limits) -> D) {
    let limits = Limits {
        recv_buffers: 64,
        ..queue_limit(16 << 20)
    };
    let mut h = Recorder {
        echo: true,
        ..Recorder::default()
    };
    let (mut d, conn, client) = driver_with_conn(make, limits, &mut h);
    // Larger than recv_buffer_bytes and than the loopback socket buffers: sends go partial.
    let payload = pattern(8 << 20, 2);
    let mut writer = client.try_clone().unwrap();
    let mut reader = client;
    let to_send = payload.clone();
    let w = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let r = thread::spawn(move || {
        let mut back = Vec::new();
        reader.read_to_end(&mut back).map(|_| back)
    });
    drive_until_closed(&mut d, &mut h, conn, "echo and close");
    w.join().unwrap();
    let back = r.join().unwrap().expect("peer read");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "echo preserved order");
    assert_eq!(h.closes_of(conn), vec![CloseReason::PeerClosed]);
    assert_eq!(d.open_conns(), 0);
}

fn many_conns_share_small_ring<D: Driver>(make: impl Fn(Limits) -> D) {
    // Two fds per conn (both ends live here), and the other backend's copy of this test may run
    // at the same time: stay well inside RLIMIT_NOFILE.
    let soft = rookery_io::raise_nofile_limit().unwrap().soft;
    let conns = 500.min(usize::try_from(soft / 5).unwrap_or(500));
    if conns < 500 {
        eprintln!("many_conns_share_small_ring: {conns} conns (RLIMIT_NOFILE {soft})");
    }
    let limits = Limits {
        recv_buffers: 8,
        recv_buffer_bytes: 512,
        ..Limits::default()
    };
    let mut d = make(limits);
    let mut h = Recorder {
        echo: true,
        ..Recorder::default()
    };
    let (l, addr) = listener_with_backlog(1024);
    d.listen(l).unwrap();
    let clients = thread::spawn(move || {
        let mut peers: Vec<TcpStream> = (0..conns).map(|_| peer(addr)).collect();
        for round in 0..2u32 {
            // Every conn sends at once: far more data than 8 buffers, so the ring runs dry.
            for (i, p) in peers.iter_mut().enumerate() {
                p.write_all(&pattern(300, i as u32 + round * 1000)).unwrap();
            }
            for (i, p) in peers.iter_mut().enumerate() {
                assert_eq!(read_exactly(p, 300), pattern(300, i as u32 + round * 1000));
            }
            thread::sleep(Duration::from_millis(50)); // idle between rounds
        }
        drop(peers);
    });
    drive(&mut d, &mut h, "all conns echo and close", |h| {
        h.closed.len() == conns
    });
    clients.join().expect("clients saw their echoes");
    assert_eq!(h.accepted.len(), conns);
    assert!(h.closed.iter().all(|c| c.1 == CloseReason::PeerClosed));
    assert_eq!(d.open_conns(), 0);
}

fn peer_close_delivers_one_closed<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, Limits::default(), &mut h);
    client.write_all(b"bye").unwrap();
    drop(client);
    drive_until_closed(&mut d, &mut h, conn, "closed");
    drive_for(&mut d, &mut h, Duration::from_millis(100));
    assert_eq!(h.got(conn), b"bye");
    assert_eq!(
        h.closes_of(conn),
        vec![CloseReason::PeerClosed],
        "exactly one Closed"
    );
    assert_eq!(d.open_conns(), 0);
}

fn close_flush_delivers_queued_bytes<D: Driver>(make: impl Fn(Limits) -> D) {
    let limits = Limits {
        linger_ms: 15_000,
        ..queue_limit(8 << 20)
    };
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, limits, &mut h);
    let payload = pattern(6 << 20, 3);
    d.ops().send(conn, &payload).unwrap();
    d.ops().close(conn, Linger::Flush);
    assert_eq!(
        d.ops().send(conn, b"late"),
        Err(SendError::Stale),
        "closing conns refuse sends"
    );
    let r = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200)); // the driver must wait for a slow reader
        let mut got = Vec::new();
        client.read_to_end(&mut got).map(|_| got)
    });
    drive_until_closed(&mut d, &mut h, conn, "flush close");
    let got = r.join().unwrap().expect("peer read until FIN");
    assert!(
        got == payload,
        "all queued bytes arrive before FIN ({} of {})",
        got.len(),
        payload.len()
    );
    assert_eq!(h.closes_of(conn), vec![CloseReason::Local]);
}

fn close_abort_is_prompt<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, queue_limit(32 << 20), &mut h);
    let payload = pattern(16 << 20, 4);
    d.ops().send(conn, &payload).unwrap();
    drive_for(&mut d, &mut h, Duration::from_millis(100)); // fill the socket buffers
    assert!(
        d.ops().queued_bytes(conn) > 0,
        "the peer is not reading: bytes stay queued"
    );
    let start = Instant::now();
    d.ops().close(conn, Linger::Abort);
    drive_until_closed(&mut d, &mut h, conn, "abort close");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "abort does not wait for the peer"
    );
    assert_eq!(h.closes_of(conn), vec![CloseReason::Local]);
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got); // EOF or reset, either ends the read
    assert!(got.len() < payload.len(), "queued bytes were dropped");
    assert_eq!(d.open_conns(), 0);
}

fn stale_ids_are_rejected<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, _client) = driver_with_conn(make, Limits::default(), &mut h);
    let forged = ConnId {
        index: conn.index,
        generation: conn.generation.wrapping_add(1),
    };
    assert_eq!(d.ops().send(forged, b"x"), Err(SendError::Stale));
    assert_eq!(
        d.ops().send(
            ConnId {
                index: 9999,
                generation: 0
            },
            b"x"
        ),
        Err(SendError::Stale)
    );
    d.ops().close(conn, Linger::Abort);
    drive_until_closed(&mut d, &mut h, conn, "closed");
    assert_eq!(d.ops().send(conn, b"x"), Err(SendError::Stale));
    assert_eq!(d.ops().queued_bytes(conn), 0);
    d.ops().close(conn, Linger::Flush);
    d.ops().detach(conn);
    let (conn2, _client2) = accept_one(&mut d, &mut h);
    assert_eq!(conn2.index, conn.index, "slot reused");
    assert_eq!(
        d.ops().send(conn, b"x"),
        Err(SendError::Stale),
        "old id misses the new conn"
    );
    drive_for(&mut d, &mut h, Duration::from_millis(50));
    assert_eq!(h.closes_of(conn).len(), 1, "calls on a stale id are no-ops");
    assert!(h.detached.is_empty());
}

fn queue_full_at_limit<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, queue_limit(1000), &mut h);
    {
        let mut ops = d.ops();
        assert_eq!(ops.send(conn, &[1; 600]), Ok(()));
        assert_eq!(ops.send(conn, &[2; 401]), Err(SendError::QueueFull));
        assert_eq!(ops.queued_bytes(conn), 600, "a refused send queues nothing");
        assert_eq!(ops.send(conn, &[3; 400]), Ok(()));
        assert_eq!(ops.send(conn, &[4; 1]), Err(SendError::QueueFull));
        assert_eq!(ops.send(conn, &[]), Ok(()));
    }
    drive(&mut d, &mut h, "drained", |h| h.drained.contains(&conn));
    assert_eq!(d.ops().queued_bytes(conn), 0);
    let got = read_exactly(&mut client, 1000);
    assert!(got[..600].iter().all(|&b| b == 1) && got[600..].iter().all(|&b| b == 3));
    // An empty queue takes one write larger than the cap (a big roster result), and then
    // nothing more until it drains.
    h.drained.clear();
    assert_eq!(d.ops().send(conn, &[5; 1500]), Ok(()));
    assert_eq!(d.ops().send(conn, &[6; 1]), Err(SendError::QueueFull));
    drive(&mut d, &mut h, "drained again", |h| {
        h.drained.contains(&conn)
    });
    let got = read_exactly(&mut client, 1500);
    assert!(got.iter().all(|&b| b == 5));
}

fn detach_then_adopt<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut a = make(Limits::default());
    let mut b = make(Limits::default());
    hand_off(&mut a, &mut b);
}

/// The shard hand-off path: detach from `a` with bytes in both directions, adopt into `b`.
fn hand_off<A: Driver, B: Driver>(a: &mut A, b: &mut B) {
    let mut ha = Recorder::default();
    let mut hb = Recorder::default();
    let (conn, mut client) = accept_one(a, &mut ha);
    client.write_all(b"hello-a").unwrap();
    drive(a, &mut ha, "first bytes", |h| h.got(conn) == b"hello-a");
    a.ops().send(conn, b"from-a;").unwrap();
    a.ops().detach(conn);
    assert_eq!(
        a.ops().send(conn, b"x"),
        Err(SendError::Stale),
        "detaching conns refuse sends"
    );
    client.write_all(b"pipelined;").unwrap(); // in flight during the detach
    drive(a, &mut ha, "detached", |h| !h.detached.is_empty());
    assert!(ha.closed.is_empty(), "Detached replaces Closed");
    assert_eq!(a.open_conns(), 0);
    assert_eq!(ha.got(conn), b"hello-a", "no Received after detach");
    let (_, socket, leftover) = ha.detached.pop().unwrap();
    let conn_b = b.ops().adopt(socket).unwrap();
    client.write_all(b"after").unwrap();
    let want: &[u8] = b"pipelined;after";
    let done = |h: &Recorder| leftover.len() + h.got(conn_b).len() >= want.len();
    drive(b, &mut hb, "bytes after hand-off", done);
    let mut all = leftover.clone();
    all.extend_from_slice(hb.got(conn_b));
    assert_eq!(all, want, "no byte lost or reordered across the hand-off");
    b.ops().send(conn_b, b"from-b").unwrap();
    b.ops().close(conn_b, Linger::Flush);
    drive_until_closed(b, &mut hb, conn_b, "close");
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(
        got, b"from-a;from-b",
        "a's queue is written before b's bytes"
    );
}

/// A Unix stream socket adopts like a TCP one (the HTTP server relays WebSocket-over-TLS
/// plaintext to a shard through a socket pair); a datagram socket is refused.
fn adopt_a_unix_stream_socket<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder {
        echo: true,
        ..Recorder::default()
    };
    let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
    let conn = d.ops().adopt(OwnedFd::from(ours)).unwrap();
    peer.write_all(b"over unix").unwrap();
    drive(&mut d, &mut h, "echoed", |h| h.got(conn) == b"over unix");
    drive_for(&mut d, &mut h, Duration::from_millis(50)); // the echo's send is submitted
    let mut echoed = [0u8; 9];
    peer.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"over unix");
    d.ops().close(conn, Linger::Flush);
    drive_until_closed(&mut d, &mut h, conn, "close");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let (datagram, _) = std::os::unix::net::UnixDatagram::pair().unwrap();
    assert!(d.ops().adopt(OwnedFd::from(datagram)).is_err());
}

fn connect_and_talk<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let (l, addr) = listener();
    let plain = d.ops().connect(addr, None).unwrap();
    let source: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bound = d.ops().connect(addr, Some(source)).unwrap();
    d.ops().send(plain, b"early").unwrap(); // queued before the connect completes
    drive(&mut d, &mut h, "connected", |h| h.connected.len() == 2);
    assert!(
        h.connected.iter().all(|c| c.1 == Ok(())),
        "{:?}",
        h.connected
    );
    assert_eq!(d.open_conns(), 2);
    d.ops().send(bound, b"hi").unwrap();
    drive_for(&mut d, &mut h, Duration::from_millis(20));
    let mut plain_peer = None;
    let mut bound_peer = None;
    for _ in 0..2 {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(PEER_TIMEOUT)).unwrap();
        match &read_exactly(&mut s, 2)[..] {
            b"ea" => {
                assert_eq!(read_exactly(&mut s, 3), b"rly");
                plain_peer = Some(s);
            }
            b"hi" => bound_peer = Some(s),
            other => panic!("unexpected bytes {other:?}"),
        }
    }
    let (p_plain, mut p_bound) = (plain_peer.unwrap(), bound_peer.unwrap());
    p_bound.write_all(b"yo").unwrap();
    drive(&mut d, &mut h, "reply", |h| h.got(bound) == b"yo");
    drop((p_plain, p_bound));
    drive(&mut d, &mut h, "both closed", |h| h.closed.len() == 2);
}

fn connect_refused<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let (l, addr) = listener();
    drop(l); // nothing listens there now
    let conn = d.ops().connect(addr, None).unwrap();
    drive_until_closed(&mut d, &mut h, conn, "closed");
    let refused = libc::ECONNREFUSED;
    assert_eq!(h.connected, vec![(conn, Err(refused))]);
    assert_eq!(h.closes_of(conn), vec![CloseReason::ConnectFailed(refused)]);
    let order: Vec<_> = h.log.iter().map(|e| e.0).collect();
    assert_eq!(
        order,
        ["connected", "closed"],
        "Connected(Err) comes before Closed"
    );
    assert_eq!(d.open_conns(), 0);
}

/// Wakes `d` from another thread 100 ms from now.
fn wake_in_100_ms<D: Driver>(d: &D) -> thread::JoinHandle<()> {
    let waker = d.wake_handle();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        waker.wake();
    })
}

fn wake_from_other_thread<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let t = wake_in_100_ms(&d);
    let start = Instant::now();
    while h.woken == 0 && start.elapsed() < Duration::from_secs(5) {
        d.turn(Some(Duration::from_secs(10)), &mut h).unwrap();
    }
    let elapsed = start.elapsed();
    t.join().unwrap();
    assert_eq!(h.woken, 1);
    assert!(
        elapsed < Duration::from_secs(2),
        "a wake interrupts a long wait ({elapsed:?})"
    );
    // Wakes before a turn: the next turn does not block, and a burst is one Woken.
    let waker = d.wake_handle();
    waker.wake();
    waker.clone().wake();
    waker.wake();
    let start = Instant::now();
    d.turn(Some(Duration::from_secs(10)), &mut h).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    drive_for(&mut d, &mut h, Duration::from_millis(50));
    assert_eq!(h.woken, 2);
}

fn turn_timeout_is_honoured<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let (l, _addr) = listener();
    d.listen(l).unwrap();
    d.turn(Some(Duration::ZERO), &mut h).unwrap(); // settle initial submissions
    let start = Instant::now();
    let stats = d.turn(Some(Duration::from_millis(60)), &mut h).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(stats.events, 0);
    assert!(h.log.is_empty());
    assert!(
        elapsed >= Duration::from_millis(50),
        "waited the timeout ({elapsed:?})"
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "and not much longer ({elapsed:?})"
    );
    let start = Instant::now();
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "zero timeout does not block"
    );
}

fn stop_listening_closes_listeners<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, client) = driver_with_conn(make, Limits::default(), &mut h);
    let listen_addr = client.peer_addr().unwrap();
    d.stop_listening();
    drive_for(&mut d, &mut h, Duration::from_millis(50));
    let err = TcpStream::connect(listen_addr).expect_err("listener is closed");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(
        d.ops().send(conn, b"still here"),
        Ok(()),
        "conns outlive their listener"
    );
}

fn linger_timeout_bounds_flush<D: Driver>(make: impl Fn(Limits) -> D) {
    let limits = Limits {
        linger_ms: 200,
        ..queue_limit(32 << 20)
    };
    let mut h = Recorder::default();
    let (mut d, conn, _client) = driver_with_conn(make, limits, &mut h); // never reads
    d.ops().send(conn, &pattern(16 << 20, 5)).unwrap();
    let start = Instant::now();
    d.ops().close(conn, Linger::Flush);
    drive_until_closed(&mut d, &mut h, conn, "linger timeout");
    let elapsed = start.elapsed();
    assert_eq!(h.closes_of(conn), vec![CloseReason::LingerTimeout]);
    // Two-sided like `turn_timeout_is_honoured`'s check, but with this test's bounds and words.
    assert!(
        elapsed >= Duration::from_millis(150),
        "waited for the peer ({elapsed:?})"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "but not past linger_ms ({elapsed:?})"
    );
    assert_eq!(d.open_conns(), 0);
}

fn peer_reset_is_an_error<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, client) = driver_with_conn(make, Limits::default(), &mut h);
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client); // RST
    drive_until_closed(&mut d, &mut h, conn, "closed");
    assert_eq!(
        h.closes_of(conn),
        vec![CloseReason::Error(libc::ECONNRESET)]
    );
}

/// Detach while a large queue is still being written to a slow reader: `Detached` waits for
/// the queue, and the adopter's bytes follow it on the wire.
fn detach_waits_for_large_queue<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut b = make(queue_limit(8 << 20));
    let mut ha = Recorder::default();
    let mut hb = Recorder::default();
    let (mut a, conn, mut client) = driver_with_conn(&make, queue_limit(8 << 20), &mut ha);
    let big = pattern(3 << 20, 6);
    a.ops().send(conn, &big).unwrap();
    a.ops().detach(conn);
    let want_len = big.len() + 6;
    let r = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let mut got = vec![0; want_len];
        client.read_exact(&mut got).map(|_| got)
    });
    drive(&mut a, &mut ha, "detached", |h| !h.detached.is_empty());
    let (_, socket, _) = ha.detached.pop().unwrap();
    let conn_b = b.ops().adopt(socket).unwrap();
    b.ops().send(conn_b, b"from-b").unwrap();
    drive(&mut b, &mut hb, "peer read all", |_| r.is_finished());
    let got = r.join().unwrap().expect("peer read");
    assert!(
        got[..big.len()] == big[..],
        "the whole queue of `a` came first"
    );
    assert_eq!(&got[big.len()..], b"from-b");
}

/// Dropping a driver with a send blocked on a full socket, multishot recvs and accepts armed:
/// `Drop` cancels and reaps them all (promptly, so nothing is leaked) and closes the sockets.
fn drop_with_ops_in_flight<D: Driver>(make: impl Fn(Limits) -> D) {
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, queue_limit(32 << 20), &mut h);
    let (_idle, _client2) = accept_one(&mut d, &mut h);
    d.ops().send(conn, &pattern(16 << 20, 7)).unwrap();
    drive_for(&mut d, &mut h, Duration::from_millis(50));
    assert!(d.ops().queued_bytes(conn) > 0);
    let start = Instant::now();
    drop(d);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "drop reaped quickly ({:?})",
        start.elapsed()
    );
    let mut sink = Vec::new();
    let _ = client.read_to_end(&mut sink); // ends with EOF or reset: the socket was closed
    assert!(sink.len() < 16 << 20);
}

/// A batching window never holds back a wake, a timeout or data: every backend honours them
/// with `batch_wait_us` set (the poll backend ignores the window).
fn batched_waits_lose_nothing<D: Driver>(make: impl Fn(Limits) -> D) {
    let limits = Limits {
        batch_wait_us: 5_000,
        ..Limits::default()
    };
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(make, limits, &mut h);
    // An idle turn still ends at its timeout, not at the window.
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    let start = Instant::now();
    d.turn(Some(Duration::from_millis(60)), &mut h).unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(1),
        "an idle batched turn waits its timeout ({elapsed:?})"
    );
    // A wake from another thread ends an unbounded wait.
    let t = wake_in_100_ms(&d);
    let start = Instant::now();
    while h.woken == 0 && start.elapsed() < Duration::from_secs(5) {
        d.turn(None, &mut h).unwrap();
    }
    t.join().unwrap();
    assert_eq!(h.woken, 1, "the wake arrived");
    assert!(start.elapsed() < Duration::from_secs(2));
    // Data in both directions, all of it.
    for round in 0..20u8 {
        client.write_all(&[round; 100]).unwrap();
        drive(&mut d, &mut h, "the round's bytes", |h| {
            h.got(conn).len() == 100 * (usize::from(round) + 1)
        });
        d.ops().send(conn, &[round; 10]).unwrap();
        d.turn(Some(Duration::ZERO), &mut h).unwrap(); // submits the write
        assert_eq!(read_exactly(&mut client, 10), vec![round; 10]);
    }
}

per_backend!(
    batched_waits_lose_nothing,
    accept_and_receive_split,
    echo_large_payload,
    many_conns_share_small_ring,
    peer_close_delivers_one_closed,
    close_flush_delivers_queued_bytes,
    close_abort_is_prompt,
    stale_ids_are_rejected,
    queue_full_at_limit,
    detach_then_adopt,
    adopt_a_unix_stream_socket,
    connect_and_talk,
    connect_refused,
    wake_from_other_thread,
    turn_timeout_is_honoured,
    stop_listening_closes_listeners,
    linger_timeout_bounds_flush,
    peer_reset_is_an_error,
    detach_waits_for_large_queue,
    drop_with_ops_in_flight,
);

#[test]
fn auto_selection_reports_a_reason() {
    let s = rookery_io::select_backend(BackendChoice::Auto, &Limits::default()).unwrap();
    eprintln!("auto selects {}: {}", s.kind, s.reason);
    assert!(!s.reason.is_empty());
}

/// io_uring with the kernel's min-timeout wait: completions that arrive inside the window are
/// handled in one turn (one wake-up), not one turn each.
#[cfg(target_os = "linux")]
#[test]
fn uring_batching_gathers_completions_into_one_turn() {
    if let Some(why) = uring_unavailable() {
        eprintln!("SKIP uring_batching_gathers_completions_into_one_turn: {why}");
        return;
    }
    let limits = Limits {
        batch_wait_us: 500_000,
        ..Limits::default()
    };
    let mut h = Recorder::default();
    let (mut d, conn, client) =
        driver_with_conn(|l| rookery_io::UringDriver::new(l).unwrap(), limits, &mut h);
    if d.batch_wait_us() == 0 {
        eprintln!("SKIP uring_batching_gathers_completions_into_one_turn: no IORING_FEAT_MIN_TIMEOUT (Linux < 6.12)");
        return;
    }
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    // Five small writes, 2 ms apart, all well inside the 500 ms window of the turn below.
    let writer = thread::spawn(move || {
        let mut client = client;
        for i in 0..5u8 {
            thread::sleep(Duration::from_millis(2));
            client.write_all(&[i; 8]).unwrap();
        }
        client
    });
    let start = Instant::now();
    let mut turns = 0;
    while h.got(conn).len() < 40 && start.elapsed() < Duration::from_secs(5) {
        d.turn(Some(Duration::from_secs(5)), &mut h).unwrap();
        turns += 1;
    }
    let elapsed = start.elapsed();
    let _client = writer.join().unwrap();
    assert_eq!(
        h.got(conn).len(),
        40,
        "all five writes arrived ({elapsed:?})"
    );
    // Without the window each write is a wake-up and a turn of its own (five); a write that
    // lands before the turn starts its wait makes it two.
    assert!(
        turns <= 2,
        "{turns} turns for five writes 2 ms apart ({elapsed:?})"
    );
}

/// io_uring: stanzas given to one conn in a turn leave in one send op, in order.
#[cfg(target_os = "linux")]
#[test]
fn uring_one_send_per_conn_per_turn() {
    if let Some(why) = uring_unavailable() {
        eprintln!("SKIP uring_one_send_per_conn_per_turn: {why}");
        return;
    }
    let mut h = Recorder::default();
    let (mut d, conn, mut client) = driver_with_conn(
        |l| rookery_io::UringDriver::new(l).unwrap(),
        Limits::default(),
        &mut h,
    );
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    let before = d.send_ops();
    let mut expected = Vec::new();
    for i in 0..50u8 {
        let stanza = [i; 10];
        d.ops().send(conn, &stanza).unwrap();
        expected.extend_from_slice(&stanza);
    }
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    assert_eq!(
        read_exactly(&mut client, expected.len()),
        expected,
        "in order"
    );
    drive_for(&mut d, &mut h, Duration::from_millis(20));
    assert_eq!(
        d.send_ops() - before,
        1,
        "fifty sends in one turn, one send op"
    );
}

/// The hand-off also works between backends (a socket detached by io_uring is blocking, one
/// detached by poll is non-blocking: each `adopt` sets what it needs).
#[cfg(target_os = "linux")]
#[test]
fn hand_off_across_backends() {
    if let Some(why) = uring_unavailable() {
        eprintln!("SKIP hand_off_across_backends: {why}");
        return;
    }
    let mut poll = rookery_io::PollDriver::new(Limits::default()).unwrap();
    let mut uring = rookery_io::UringDriver::new(Limits::default()).unwrap();
    hand_off(&mut poll, &mut uring);
    hand_off(&mut uring, &mut poll);
}

#[cfg(target_os = "linux")]
#[path = "support/emfile.rs"]
mod emfile;

/// Echo handler for the rate measurement (the `Recorder` keeps every byte; this keeps none).
struct Echo {
    accepted: usize,
}

impl<D: Driver> Handler<D> for Echo {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>) {
        match event {
            Event::Accepted { .. } => self.accepted += 1,
            Event::Received { conn, data } => io.send(conn, data).expect("echo"),
            _ => {}
        }
    }
}

/// 100 conns in lockstep rounds of 64-byte ping-pongs; prints msgs/s, syscall batches per turn
/// and events per turn. Numbers are rough (the peers share the machine with the driver).
fn echo_rate<D: Driver>(name: &str, make: impl Fn(Limits) -> D) {
    const CONNS: usize = 100;
    let rounds: usize = std::env::var("ROOKERY_ECHO_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let mut d = make(Limits::default());
    let mut h = Echo { accepted: 0 };
    let (l, addr) = listener_with_backlog(1024);
    d.listen(l).unwrap();
    let peers = thread::spawn(move || {
        let mut peers: Vec<TcpStream> = (0..CONNS).map(|_| peer(addr)).collect();
        peers.iter().for_each(|p| p.set_nodelay(true).unwrap());
        let start = Instant::now();
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            peers
                .iter_mut()
                .for_each(|p| p.write_all(&[7; 64]).unwrap());
            peers
                .iter_mut()
                .for_each(|p| p.read_exact(&mut buf).unwrap());
        }
        start.elapsed()
    });
    let (mut turns, mut batches, mut events) = (0u64, 0u64, 0u64);
    while !peers.is_finished() {
        let stats = d.turn(Some(Duration::from_millis(10)), &mut h).unwrap();
        turns += 1;
        batches += u64::from(stats.submit_calls);
        events += u64::from(stats.events);
    }
    let elapsed = peers.join().unwrap();
    let msgs = (CONNS * rounds) as f64;
    eprintln!(
        "{name}: {:.0} echoes/s, {:.2} syscall batches/turn, {:.1} events/turn ({turns} turns)",
        msgs / elapsed.as_secs_f64(),
        batches as f64 / turns as f64,
        events as f64 / turns as f64,
    );
    assert_eq!(h.accepted, CONNS);
}

/// Runs in every test pass with a short round count (it checks 100 conns echo in lockstep);
/// for a measurement raise the rounds:
/// `ROOKERY_ECHO_ROUNDS=2000 cargo test --release -p rookery-io --test conformance echo_rate -- --nocapture`
#[test]
fn echo_rate_both_backends() {
    echo_rate("poll", |l| rookery_io::PollDriver::new(l).unwrap());
    #[cfg(target_os = "linux")]
    if uring_unavailable().is_none() {
        echo_rate("uring", |l| rookery_io::UringDriver::new(l).unwrap());
    }
}
