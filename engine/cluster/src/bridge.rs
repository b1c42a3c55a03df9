//! The bridge thread of a node: its one NATS client, between its shards and the other nodes.
//!
//! Why a thread of its own: the official NATS client (async-nats) is async; the shards are
//! plain threads on io_uring or mio and stay runtime-free. The bridge runs a current-thread
//! tokio runtime on one thread and talks to the shards through an [`Endpoint`] (the server
//! implements it over its mailboxes: the bridge is one more participant of the shard grid).
//!
//! One turn of the bridge, whenever something happens (a NATS message, a wake-up from a
//! shard, a timer): take what the shards staged for other nodes, one payload per destination
//! node (so a turn publishes one NATS message per node, however many stanzas it carries),
//! give it to the [`Links`] (sequence numbers, retransmission, budgets), publish the frames
//! due, and hand in-order payloads from other nodes to the shards. Node N listens on
//! `<name>.node.<N>`; the client reconnects by itself when nats-server restarts (frames lost
//! meanwhile are sent again).
//!
//! Under load it gathers (`BridgeConfig::batch_wait`): after a turn that moved mail it stays
//! marked awake for one window, so the shards stage mail without waking it, then takes
//! everything that came (from the shards and from NATS) in one turn. A turn that moved
//! nothing ends the gathering: the bridge sleeps until the next wake-up as before. Each
//! cross-node message costs about ten thread wake-ups across the node processes of a host;
//! gathering trades at most one window of latency per hop for fewer of them.
//!
//! What it does not do: encode or decode mail (the endpoint does), or block the shards: they
//! only stage mail and call the waker.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::file::ClusterFile;
use crate::link::{LinkConfig, Links, SendRefused};
use crate::stats::BridgeStats;
use crate::NodeId;

/// Longest the bridge sleeps without a reason (it also wakes on every NATS message and shard
/// wake-up).
const IDLE_TICK: Duration = Duration::from_millis(100);

/// The server's side of the bridge: its shards' mail, as payloads per node.
pub trait Endpoint: Send + 'static {
    /// The mail the shards staged for other nodes since the last call, encoded as one
    /// payload per destination node.
    fn outbound(&mut self, out: &mut Vec<(NodeId, Vec<u8>)>);
    /// A payload from `from`, in order and once: hand its mail to the shards.
    fn inbound(&mut self, from: NodeId, payload: Vec<u8>);
    /// The end of a turn: push what `inbound` staged to the shards (and wake them); returns
    /// the mail still waiting in the bridge's lanes (the queue-depth gauge). While it is not
    /// zero the bridge runs its next turn soon ([`BUSY_RETRY`]) instead of sleeping.
    /// `may_sleep` false: the bridge is gathering and runs again within its window without
    /// being woken, so the endpoint must not mark it asleep (the shards then stage mail
    /// without a wake-up).
    fn flush(&mut self, may_sleep: bool) -> usize;
    /// Called once, on the bridge's thread before its first turn, with the bridge's waker
    /// (what [`Bridge::waker`] returns): the endpoint registers it where the shards wake it.
    fn attach(&mut self, _wake: Waker) {}
}

/// Wakes the bridge for a turn (cheap, any thread).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// NATS messages one turn takes when several are already waiting (the rest wait for the next
/// turn, so the shards' outbound mail is not held back by a flood from the bus).
const MAX_MESSAGES_PER_TURN: usize = 256;

/// How often a busy bridge copies the link's counters into its stats (an idle one does it at
/// every [`IDLE_TICK`] turn).
const GAUGE_INTERVAL_MS: u64 = 50;

/// How soon the bridge runs again while mail waits in its lanes (a full lane toward a shard,
/// or more inbound mail than one turn takes).
pub const BUSY_RETRY: Duration = Duration::from_millis(1);

/// How to start a bridge.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub file: ClusterFile,
    pub me: NodeId,
    pub link: LinkConfig,
    /// How long the bridge gathers mail after a turn that moved some (zero: it sleeps until
    /// woken after every turn).
    pub batch_wait: Duration,
}

/// A running bridge.
pub struct Bridge {
    thread: Option<JoinHandle<()>>,
    stop: Arc<Notify>,
    wake: Arc<Notify>,
    stats: Arc<BridgeStats>,
}

impl Bridge {
    /// Starts the bridge thread. It connects in the background (and keeps retrying: a node may
    /// start before nats-server); mail for other nodes waits in the links meanwhile.
    pub fn start(config: BridgeConfig, endpoint: impl Endpoint) -> std::io::Result<Bridge> {
        let stop = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(BridgeStats::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (s, w, st) = (stop.clone(), wake.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rookery-bridge-{}", config.me.0))
            .spawn(move || runtime.block_on(run(config, endpoint, s, w, st)))?;
        Ok(Bridge {
            thread: Some(thread),
            stop,
            wake,
            stats,
        })
    }

    /// What the shards call after staging mail for the bridge (cheap, any thread).
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        waker_of(&self.wake)
    }

    pub fn stats(&self) -> Arc<BridgeStats> {
        self.stats.clone()
    }

    /// Stops the thread (after one last turn) and waits for it.
    pub fn stop(mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

fn waker_of(wake: &Arc<Notify>) -> impl Fn() + Send + Sync + 'static {
    let wake = wake.clone();
    move || wake.notify_one()
}

/// Microseconds since the Unix epoch (the frames' send times; every node on one host shares
/// the clock, so bus latency is measured across processes).
fn wall_us() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
}

async fn run(
    config: BridgeConfig,
    mut endpoint: impl Endpoint,
    stop: Arc<Notify>,
    wake: Arc<Notify>,
    stats: Arc<BridgeStats>,
) {
    endpoint.attach(Arc::new(waker_of(&wake)));
    let started = tokio::time::Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut links = Links::new(config.me, wall_us(), config.link.clone());
    let subject = config.file.subject(config.me);
    let stats_cb = stats.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("rookery-{}", config.me.0))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let stats = stats_cb.clone();
            async move {
                match event {
                    async_nats::Event::Connected => stats.connected.store(1, Relaxed),
                    async_nats::Event::Disconnected => stats.connected.store(0, Relaxed),
                    other => tracing::debug!("nats: {other}"),
                }
            }
        });
    let client = match options.connect(config.file.nats.clone()).await {
        Ok(client) => client,
        Err(error) => {
            warn!(
                "cluster bridge: cannot start the NATS client ({:?}): {error}",
                config.file.nats
            );
            return;
        }
    };
    let mut subscriber = match client.subscribe(subject.clone()).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            warn!("cluster bridge: cannot subscribe to {subject}: {error}");
            return;
        }
    };
    stats.connected.store(1, Relaxed);
    info!("cluster bridge of {} up: listening on {subject}", config.me);
    let mut turn = Turn {
        config: &config,
        client: &client,
        stats: &stats,
        outbound: Vec::new(),
        frames: Vec::new(),
        moved: 0,
        gauges_due_ms: 0,
    };
    let mut depth = 0;
    let mut gathering = false;
    loop {
        if gathering {
            // Under load: mail gathers for one window instead of waking the bridge per
            // message; NATS messages wait in the subscriber meanwhile.
            tokio::select! {
                _ = stop.notified() => break,
                _ = tokio::time::sleep(config.batch_wait) => {}
            }
            take_waiting(&mut subscriber, MAX_MESSAGES_PER_TURN, |payload| {
                turn.receive(&mut links, &mut endpoint, payload, now_ms());
            })
            .await;
            (depth, gathering) = turn.send(&mut links, &mut endpoint, now_ms()).await;
            continue;
        }
        let sleep = match links.next_deadline_ms() {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_TICK),
            None => IDLE_TICK,
        };
        let sleep = if depth > 0 {
            sleep.min(BUSY_RETRY)
        } else {
            sleep
        };
        tokio::select! {
            _ = stop.notified() => break,
            message = subscriber.next() => {
                let Some(message) = message else { break };
                turn.receive(&mut links, &mut endpoint, &message.payload, now_ms());
                // Every message already here joins this turn: one hand-over to the shards
                // (one wake-up each) for all of them, not one per message.
                take_waiting(&mut subscriber, MAX_MESSAGES_PER_TURN - 1, |payload| {
                    turn.receive(&mut links, &mut endpoint, payload, now_ms());
                })
                .await;
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
        (depth, gathering) = turn.send(&mut links, &mut endpoint, now_ms()).await;
    }
    // One last turn, so mail staged before the stop is not left behind.
    turn.send(&mut links, &mut endpoint, now_ms()).await;
    let _ = client.flush().await;
}

/// Hands `receive` up to `max` NATS messages already waiting in `subscriber`, without waiting
/// for more.
async fn take_waiting(
    subscriber: &mut async_nats::Subscriber,
    max: usize,
    mut receive: impl FnMut(&[u8]),
) {
    for _ in 0..max {
        match futures_lite::future::poll_once(subscriber.next()).await {
            Some(Some(message)) => receive(&message.payload),
            _ => break,
        }
    }
}

/// The state one bridge turn works with.
struct Turn<'a> {
    config: &'a BridgeConfig,
    client: &'a async_nats::Client,
    stats: &'a BridgeStats,
    outbound: Vec<(NodeId, Vec<u8>)>,
    frames: Vec<(NodeId, Vec<u8>)>,
    /// NATS messages taken and payloads given to the links since the last `send`.
    moved: usize,
    /// When the link's counters and gauges are next copied into the stats.
    gauges_due_ms: u64,
}

impl Turn<'_> {
    fn receive(
        &mut self,
        links: &mut Links,
        endpoint: &mut impl Endpoint,
        frame: &[u8],
        now_ms: u64,
    ) {
        self.moved += 1;
        self.stats.msgs_in.fetch_add(1, Relaxed);
        self.stats.bytes_in.fetch_add(frame.len() as u64, Relaxed);
        let received = match links.receive(frame, now_ms, wall_us()) {
            Ok(received) => received,
            Err(error) => {
                self.stats.bad_frames.fetch_add(1, Relaxed);
                tracing::debug!("cluster bridge: dropped a message: {error}");
                return;
            }
        };
        let now_us = wall_us();
        for delivered in received.delivered {
            self.stats
                .observe_latency(now_us.saturating_sub(delivered.sent_us));
            self.stats.payloads_in.fetch_add(1, Relaxed);
            endpoint.inbound(received.from, delivered.payload);
        }
    }

    /// Sends what the shards staged and what is due; returns the endpoint's queue depth and
    /// whether to gather for a window before the next turn (this turn moved mail).
    async fn send(
        &mut self,
        links: &mut Links,
        endpoint: &mut impl Endpoint,
        now_ms: u64,
    ) -> (usize, bool) {
        self.outbound.clear();
        endpoint.outbound(&mut self.outbound);
        self.moved += self.outbound.len();
        let now_us = wall_us();
        for (node, payload) in self.outbound.drain(..) {
            match links.send(node, payload, now_ms, now_us) {
                Ok(frame) => {
                    self.stats.payloads_out.fetch_add(1, Relaxed);
                    self.frames.push((node, frame));
                }
                Err(SendRefused::Budget { .. }) => {
                    self.stats.refused.fetch_add(1, Relaxed);
                }
                Err(SendRefused::ToSelf) => {
                    warn!("cluster bridge: mail for this node itself reached the bridge (a placement bug)");
                }
            }
        }
        links.poll(now_ms, &mut self.frames);
        for (node, frame) in self.frames.drain(..) {
            let subject = self.config.file.subject(node);
            let len = frame.len() as u64;
            match self.client.publish(subject, frame.into()).await {
                Ok(()) => {
                    self.stats.msgs_out.fetch_add(1, Relaxed);
                    self.stats.bytes_out.fetch_add(len, Relaxed);
                }
                Err(_) => {
                    self.stats.publish_errors.fetch_add(1, Relaxed);
                }
            }
        }
        let gather = !self.config.batch_wait.is_zero() && std::mem::take(&mut self.moved) > 0;
        let depth = endpoint.flush(!gather);
        self.stats.queue_depth.store(depth as u64, Relaxed);
        if now_ms < self.gauges_due_ms {
            return (depth, gather);
        }
        // The link's gauges walk every peer: refreshed every GAUGE_INTERVAL_MS, not per turn.
        self.gauges_due_ms = now_ms + GAUGE_INTERVAL_MS;
        let link = links.stats();
        self.stats.retransmits.store(link.retransmits, Relaxed);
        self.stats.duplicates.store(link.duplicates, Relaxed);
        self.stats.given_up.store(link.given_up, Relaxed);
        self.stats.peer_restarts.store(link.peer_restarts, Relaxed);
        self.stats.stale.store(link.stale, Relaxed);
        self.stats.pending_bytes.store(link.pending_bytes, Relaxed);
        self.stats.acks_sent.store(link.acks_sent, Relaxed);
        self.stats.retry_ms.store(link.retry_ms, Relaxed);
        (depth, gather)
    }
}
