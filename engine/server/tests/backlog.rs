//! Offline backlogs far larger than a conn's output cap, end to end on real sockets, both
//! backends: 10,000 messages of 300 B and 200 of 60 KiB wait for six offline users, who then
//! log in as a client without XEP-0198, a client with XEP-0198 that acks every 100 stanzas
//! (and never answers `<r/>`), and a client that reads at 400 KB/s. Every message arrives,
//! in order, none twice where XEP-0198 is on, nothing is left in the store, and the server's
//! RSS stays bounded while it serves 45 MB of backlog (the stanzas are read back from its log,
//! not kept in memory).

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::{backends, RawClient, Server, DOMAIN};

const SMALL: (usize, usize) = (10_000, 300);
const LARGE: (usize, usize) = (200, 60 * 1024);
/// A slow reader's pace.
const SLOW_BYTES_PER_S: usize = 400 * 1024;
/// Longest any drain may take (the slow 12 MB one needs ~30 s).
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// No XEP-0198: reads as fast as it can.
    Plain,
    /// XEP-0198 on; sends `<a h>` after every 100 messages, ignores `<r/>`.
    AcksEvery100,
    /// No XEP-0198; reads at `SLOW_BYTES_PER_S`.
    Slow,
}

#[test]
fn offline_backlogs_reach_every_kind_of_reader_complete_and_in_order() {
    let backends = backends();
    std::thread::scope(|scope| {
        for backend in backends {
            scope.spawn(move || run_backend(backend));
        }
    });
}

fn run_backend(backend: &str) {
    let server = Server::start(backend, 2, &[]);
    let rss_before = rss_kib(server.pid());
    let plan: Vec<(String, (usize, usize), Reader)> = [SMALL, LARGE]
        .into_iter()
        .flat_map(|shape| {
            [Reader::Plain, Reader::AcksEvery100, Reader::Slow]
                .into_iter()
                .map(move |reader| (shape, reader))
        })
        .enumerate()
        .map(|(i, (shape, reader))| (format!("reader{i}"), shape, reader))
        .collect();
    let (mut alice, _) = RawClient::login(server.addr, "alice", "phone");
    for (user, (count, size), _) in &plan {
        send_backlog(&mut alice, user, *count, *size);
    }
    // A ping after the messages: every one of them was handled (stored) before its answer.
    alice.send("<iq type='get' id='sync2'><ping xmlns='urn:xmpp:ping'/></iq>");
    alice.expect("sync2");
    let peak_rss = AtomicU64::new(rss_before);
    let done = AtomicBool::new(false);
    let addr = server.addr;
    let pid = server.pid();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let start = Instant::now();
            while start.elapsed() < DRAIN_LIMIT && !done.load(Relaxed) {
                peak_rss.fetch_max(rss_kib(pid), Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let readers: Vec<_> = plan
            .iter()
            .map(|(user, (count, _), reader)| {
                scope.spawn(move || drain(addr, user, *count, *reader, backend))
            })
            .collect();
        for reader in readers {
            reader.join().expect("reader thread");
        }
        done.store(true, Relaxed);
        watcher.join().expect("watcher");
    });
    let peak = peak_rss.load(Relaxed);
    let grew_kib = peak.saturating_sub(rss_before);
    eprintln!("{backend}: RSS {rss_before} KiB before, peak {peak} KiB while draining 45 MB");
    assert!(
        grew_kib < 64 * 1024,
        "{backend}: the server's RSS grew by {grew_kib} KiB serving the backlogs"
    );
    assert_eq!(
        server.wait_metric("rookery_stored_messages", 0),
        0,
        "{backend}"
    );
}

/// Sends `count` chats of about `size` bytes to `user`'s bare JID, in big writes.
fn send_backlog(alice: &mut RawClient, user: &str, count: usize, size: usize) {
    let body = "x".repeat(size.saturating_sub(120));
    let mut chunk = String::with_capacity(1 << 20);
    for n in 0..count {
        chunk.push_str(&format!(
            "<message to='{user}@{DOMAIN}' type='chat' id='{user}-{n}'><body>{body}</body></message>"
        ));
        if chunk.len() >= 1 << 20 {
            alice.send(&chunk);
            chunk.clear();
        }
    }
    alice.send(&chunk);
}

/// Logs `user` in as `reader` and reads its backlog; asserts every message arrived in order,
/// and once where XEP-0198 is on.
fn drain(addr: SocketAddr, user: &str, count: usize, reader: Reader, backend: &str) {
    let (mut client, _) = RawClient::bind_only(addr, user, "r");
    if reader == Reader::AcksEvery100 {
        client.send("<enable xmlns='urn:xmpp:sm:3'/>");
        client.expect("<enabled");
        client.expect(">");
    }
    client.send("<presence/>");
    let mut ids = Ids::new(user);
    let mut acked = 0;
    let start = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    while ids.seen.len() < count {
        assert!(
            start.elapsed() < DRAIN_LIMIT,
            "{backend} {user} {reader:?}: {} of {count} after {:?}",
            ids.seen.len(),
            start.elapsed()
        );
        let want = if reader == Reader::Slow {
            10 * 1024
        } else {
            buf.len()
        };
        let n = match client.stream.read(&mut buf[..want]) {
            Ok(0) => panic!(
                "{backend} {user} {reader:?}: closed after {}",
                ids.seen.len()
            ),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => panic!("{backend} {user}: read error {e}"),
        };
        ids.feed(&buf[..n]);
        if reader == Reader::AcksEvery100 && ids.seen.len() - acked >= 100 {
            acked = ids.seen.len();
            client.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{acked}'/>"));
        }
        if reader == Reader::Slow {
            // 10 KiB per 100 ms.
            std::thread::sleep(Duration::from_millis((n * 1000 / SLOW_BYTES_PER_S) as u64));
        }
    }
    let expected: Vec<usize> = (0..count).collect();
    assert_eq!(ids.seen.len(), count, "{backend} {user} {reader:?}");
    assert!(
        ids.seen == expected,
        "{backend} {user} {reader:?}: out of order or twice"
    );
    if reader == Reader::AcksEvery100 {
        client.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{count}'/>"));
    }
    // A ping round trip, then a clean close: without XEP-0198 the last writes are confirmed
    // once the conn drained, which the pong proves.
    client.send("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>");
    client.expect("id='end'");
    client.send("</stream:stream>");
    eprintln!(
        "{backend} {user} {reader:?}: {count} in {:?}",
        start.elapsed()
    );
}

/// Message ids (`user-N`) parsed from a byte stream split anywhere.
struct Ids {
    prefix: String,
    pending: String,
    seen: Vec<usize>,
}

impl Ids {
    fn new(user: &str) -> Ids {
        Ids {
            prefix: format!(" id='{user}-"),
            pending: String::new(),
            seen: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.pending.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = self.pending.find("</message>") {
            let message: String = self.pending.drain(..end + "</message>".len()).collect();
            let Some(start) = message.find(&self.prefix) else {
                continue;
            };
            let rest = &message[start + self.prefix.len()..];
            let n = rest[..rest.find('\'').expect("quoted id")]
                .parse()
                .expect("a number");
            self.seen.push(n);
        }
    }
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
