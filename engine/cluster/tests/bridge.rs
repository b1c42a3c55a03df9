//! Two bridges over a real nats-server on loopback: payloads cross in order and once, one NATS
//! message per destination per turn, and survive a nats-server restart (the links send again
//! what the restart lost). Needs `nats-server` on PATH (Debian's package; .ci/run installs it).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rookery_cluster::bridge::{Bridge, BridgeConfig, Endpoint};
use rookery_cluster::link::LinkConfig;
use rookery_cluster::{ClusterFile, NodeId};
use rookery_testkit::nats::{free_port, NatsServer};

/// Payloads with their node (destination or source).
type Payloads = Arc<Mutex<Vec<(NodeId, Vec<u8>)>>>;

/// An endpoint whose "shards" are two shared vectors: what to send, and what arrived.
#[derive(Clone, Default)]
struct TestEndpoint {
    to_send: Payloads,
    got: Payloads,
}

impl Endpoint for TestEndpoint {
    fn outbound(&mut self, out: &mut Vec<(NodeId, Vec<u8>)>) {
        out.append(&mut self.to_send.lock().unwrap());
    }
    fn inbound(&mut self, from: NodeId, payload: Vec<u8>) {
        self.got.lock().unwrap().push((from, payload));
    }
    fn flush(&mut self, _may_sleep: bool) -> usize {
        0
    }
}

fn file(port: u16) -> ClusterFile {
    ClusterFile::parse(&format!(
        "nats = \"nats://127.0.0.1:{port}\"\nname = \"test{port}\"\n\
         [[node]]\nid = 1\nc2s = \"127.0.0.1:1\"\n[[node]]\nid = 2\nc2s = \"127.0.0.1:2\"\n"
    ))
    .unwrap()
}

fn start(port: u16, me: u16, endpoint: TestEndpoint, batch_wait: Duration) -> Bridge {
    let config = BridgeConfig {
        file: file(port),
        me: NodeId(me),
        link: LinkConfig {
            min_retry_ms: 100,
            ..LinkConfig::default()
        },
        batch_wait,
    };
    Bridge::start(config, endpoint).unwrap()
}

fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn payloads_cross_in_order_and_survive_a_nats_restart() {
    cross_in_order_through_a_restart(Duration::ZERO);
}

/// The same with gathering bridges: a bridge that moved mail runs again after its window
/// without being woken, and loses and reorders nothing.
#[test]
fn gathering_bridges_cross_in_order_and_survive_a_nats_restart() {
    cross_in_order_through_a_restart(Duration::from_millis(5));
}

fn cross_in_order_through_a_restart(batch_wait: Duration) {
    let port = free_port();
    let nats = NatsServer::start_on(port);
    let (one, two) = (TestEndpoint::default(), TestEndpoint::default());
    let a = start(port, 1, one.clone(), batch_wait);
    let b = start(port, 2, two.clone(), batch_wait);
    wait_for("both connected", Duration::from_secs(10), || {
        a.stats().connected.load(Relaxed) == 1 && b.stats().connected.load(Relaxed) == 1
    });
    // Subscriptions are live once connected; give the server a moment to register them.
    std::thread::sleep(Duration::from_millis(200));
    let wake = a.waker();
    for n in 0..200u32 {
        one.to_send
            .lock()
            .unwrap()
            .push((NodeId(2), n.to_le_bytes().to_vec()));
        if n % 20 == 19 {
            wake();
        }
    }
    wake();
    wait_for("200 payloads", Duration::from_secs(10), || {
        two.got.lock().unwrap().len() >= 200
    });
    // Restart nats-server with payloads in flight: they arrive after it comes back.
    drop(nats);
    for n in 200..300u32 {
        one.to_send
            .lock()
            .unwrap()
            .push((NodeId(2), n.to_le_bytes().to_vec()));
    }
    wake();
    std::thread::sleep(Duration::from_millis(300));
    let _nats = NatsServer::start_on(port);
    wait_for(
        "300 payloads after the restart",
        Duration::from_secs(30),
        || two.got.lock().unwrap().len() >= 300,
    );
    let got = two.got.lock().unwrap().clone();
    let expected: Vec<(NodeId, Vec<u8>)> = (0..300u32)
        .map(|n| (NodeId(1), n.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(got, expected, "in order, once");
    let stats = a.stats();
    assert!(stats.payloads_out.load(Relaxed) <= 300);
    let (buckets, _) = b.stats().latency();
    assert_eq!(
        buckets.last().unwrap().1,
        300,
        "every batch's latency recorded"
    );
    a.stop();
    b.stop();
}
