//! One shard: a thread pinned to a core that owns a driver, a router and a mailbox.
//!
//! The loop turn, in order: drain inbound mail into the router; wait for I/O (at most until
//! the router's next timer, and not at all when mail is staged or arrived); hand every
//! completion to the router; run the router's timers; flush staged mail once, waking only
//! destinations that sleep. The loop is generic over the driver, so the hot path has no
//! dynamic dispatch and the same code runs on io_uring and on mio.
//!
//! In a cluster the grid has one more participant after the shards, the bridge to the other
//! nodes (`cluster`): router mail for a location of another node goes to it as
//! [`ShardMail::Remote`], and comes back from it as [`ShardMail::Router`].
//!
//! What crosses threads: only [`ShardMail`] through the mailbox, the process-wide conn counter
//! and stop flag in [`Shared`], and the published [`ShardStats`].
//!
//! Seams: besides the driver, the loop is generic over its clock and its mail transport
//! (`seams`), and [`Shard::turn`] runs one turn and returns, so the simulator (`rookery-sim`)
//! drives this very loop, N shards in one thread with a virtual clock and a seeded mailbox;
//! [`run`] is the server's loop around it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery_http::WebSocketConn;
use rookery_io::{ConnId, Driver, Event, FileId, Handler, Linger, Ops, SendError};
use rookery_mailbox::ShardId;
use rookery_router::{Cause, ConnKey, Effects, Handoff, Location, Mail, NodeId, Router, Transport};
use rookery_store::LogSpan;
use tracing::{info, warn};

use crate::admin_accounts::{AccountInbox, AccountWaits, MAX_ACCOUNTS_PER_TURN};
use crate::commit::Committer;
use crate::metrics::{LoopStats, ShardStats};
use crate::reads::Reads;
use crate::seams::{Clock, MailTransport};
use crate::transport::{ConnLayers, Opened, Transports, SCRATCH_KEEP_BYTES};
use crate::usage::{UsageInbox, MAX_USAGE_PER_TURN};
use crate::websocket::{WsInbox, MAX_WS_ADOPTS_PER_TURN};

/// What one shard mails another.
pub enum ShardMail {
    /// Router-to-router traffic (stanzas for users whose home is the receiver).
    Router(Mail),
    /// A conn whose user lives on the receiver: the socket, its stream state, unread bytes.
    Adopt {
        socket: OwnedFd,
        handoff: Handoff,
        leftover: Vec<u8>,
        /// Its TLS layer (`leftover` is ciphertext then).
        layers: Option<ConnLayers>,
    },
    /// Router mail for a shard of another node: staged to the cluster bridge, the grid's
    /// last participant (see `cluster`), which carries it over NATS.
    Remote { dest: Location, mail: Mail },
}

/// Process-wide state every shard reads: the stop flag and the fd ceiling.
#[derive(Debug)]
pub struct Shared {
    /// Set once by the signal watcher. Read with Acquire once per turn; pairs with the
    /// Release store in `request_stop`, so a shard that sees it also sees nothing else: the
    /// flag carries no data.
    pub stop: AtomicBool,
    /// Conns open in the whole process (every shard), against `max_conns`.
    pub open_conns: AtomicU64,
    pub max_conns: u64,
    pub started: Instant,
}

impl Shared {
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Longest a shutdown waits for streams to flush their goodbye before the shard exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Upper bound on one wait, so timers and the stop flag are looked at regularly.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// How soon a shard with mail stuck behind a full lane tries again.
const BACKPRESSURE_RETRY: Duration = Duration::from_millis(1);
/// Mails taken from the inbox per turn; the rest wait, so one busy peer cannot starve I/O.
const MAX_MAIL_PER_TURN: usize = 8192;
/// How often refused conns are logged (a summary line, never one line per conn).
const REFUSED_LOG_INTERVAL_MS: u64 = 10_000;

/// Everything a shard starts with besides its driver (and, in the server, its listener).
pub struct ShardParts<M, C> {
    pub index: usize,
    pub mailbox: M,
    pub router: Router,
    pub stats: Arc<ShardStats>,
    pub shared: Arc<Shared>,
    pub clock: C,
    /// Upload usage events for the users homed here (`--http-listen`), else `None`.
    pub usage: Option<Arc<UsageInbox>>,
    /// Account changes from the admin endpoint (`--auth file`), else `None`.
    pub accounts: Option<Arc<AccountInbox>>,
    /// The certificate for STARTTLS and direct TLS (`--tls-cert`), else `None`.
    pub tls: Option<rookery_tls::TlsContext>,
    /// Conns the HTTP server upgraded to WebSocket for this shard (`--http-listen`), else
    /// `None` (see `websocket`).
    pub websocket: Option<Arc<WsInbox>>,
    /// When quiet WebSocket conns are pinged and given up (`--ws-ping-interval`), else `None`.
    pub ws_keepalive: Option<rookery_ws::KeepalivePolicy>,
    /// `--commit-delay-ms`: how long log records nobody waits for may wait to share a write
    /// (0: every turn writes what it appended; see `commit`).
    pub commit_delay_ms: u64,
}

/// Whether the shard goes on after a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnEnd {
    Running,
    /// Shutdown finished (streams closed and flushed, or the grace ran out).
    Finished,
}

/// One shard: its driver and everything else, run one [`turn`](Shard::turn) at a time.
pub struct Shard<D: Driver, M, C> {
    driver: D,
    state: ShardState<M, C>,
}

/// The shard's state outside the driver; it is the driver's event handler.
struct ShardState<M, C> {
    index: usize,
    router: Router,
    clock: C,
    /// Where the router's effects go; a separate field so the router and it borrow apart.
    out: Outbox<M>,
    inbox: Vec<ShardMail>,
    /// The durable log's writes in flight through the driver.
    committer: Committer,
    /// Whether the store accepted writes at the last look (to log changes once).
    store_available: bool,
    stats: Arc<ShardStats>,
    shared: Arc<Shared>,
    stopping_since_ms: Option<u64>,
    refused_unlogged: u64,
    refused_logged_at_ms: u64,
    /// The loop's own numbers, published with the router's after every turn.
    loop_stats: LoopStats,
    heap_published_at_ms: u64,
    usage: Option<Arc<UsageInbox>>,
    accounts: Option<Arc<AccountInbox>>,
    /// Account changes applied, waiting for their commit to be answered.
    account_waits: AccountWaits,
    /// The direct-TLS listener (XEP-0368), whose conns start with a TLS layer.
    tls_listener: Option<rookery_io::ListenerId>,
    /// The XEP-0114 component listener, whose conns speak `jabber:component:accept`.
    component_listener: Option<rookery_io::ListenerId>,
    /// Stream bytes a layer decoded, for the router (reused; see `transport`).
    decoded: Vec<u8>,
    websocket: Option<Arc<WsInbox>>,
}

/// The shard's outgoing side: staged mail, conns being handed off, log reads, and effect
/// counters.
struct Outbox<M> {
    mailbox: M,
    /// This node (`NodeId::LOCAL` on a single node).
    node: NodeId,
    /// The cluster bridge's lane (the grid's last participant); `None` on a single node.
    bridge: Option<ShardId>,
    /// Conns being detached, with where they go once the driver hands the socket back.
    handoffs: HashMap<ConnKey, (u16, Handoff)>,
    /// Reads of stored messages in flight, and the log they read (the committer's file,
    /// updated when compaction replaces it).
    reads: Reads,
    log_file: Option<FileId>,
    slow_consumer_closes: u64,
    /// Closes the router asked for, per cause (`Cause::ALL` order).
    closes: [u64; Cause::ALL.len()],
    /// The layers below the streams (TLS).
    transports: Transports,
}

impl<M: MailTransport<ShardMail>> Outbox<M> {
    fn fx<'a, O: Ops>(&'a mut self, io: &'a mut O) -> ShardEffects<'a, O, M> {
        ShardEffects {
            io,
            mailbox: &mut self.mailbox,
            node: self.node,
            bridge: self.bridge,
            handoffs: &mut self.handoffs,
            reads: &mut self.reads,
            log_file: self.log_file,
            slow_consumer_closes: &mut self.slow_consumer_closes,
            closes: &mut self.closes,
            transports: &mut self.transports,
        }
    }
}

/// A shard's listeners: the client port (plaintext, STARTTLS when a certificate is loaded)
/// and, with `--listen-tls`, the direct-TLS port (XEP-0368).
pub struct Listeners {
    pub plain: TcpListener,
    pub tls: Option<TcpListener>,
    /// `--component-listen`: XEP-0114 component conns.
    pub component: Option<TcpListener>,
}

/// Runs the shard until the stop flag is set and its streams are closed.
pub fn run<D: Driver, M: MailTransport<ShardMail>, C: Clock>(
    mut driver: D,
    listeners: Listeners,
    parts: ShardParts<M, C>,
) -> anyhow::Result<()> {
    driver.listen(listeners.plain)?;
    let tls_listener = match listeners.tls {
        Some(listener) => Some(driver.listen(listener)?),
        None => None,
    };
    let component_listener = match listeners.component {
        Some(listener) => Some(driver.listen(listener)?),
        None => None,
    };
    let mut shard = Shard::new(driver, parts)?;
    shard.state.tls_listener = tls_listener;
    shard.state.component_listener = component_listener;
    while shard.turn()? == TurnEnd::Running {}
    Ok(())
}

impl<D: Driver, M: MailTransport<ShardMail>, C: Clock> Shard<D, M, C> {
    /// Registers the store's log with the driver and the driver's waker with the mailbox.
    pub fn new(mut driver: D, parts: ShardParts<M, C>) -> std::io::Result<Self> {
        let mut committer = Committer::new(parts.commit_delay_ms);
        committer.attach(&mut driver, parts.router.store())?;
        let wake = driver.wake_handle();
        if let Some(inbox) = &parts.websocket {
            inbox.set_waker(wake.clone());
        }
        parts.mailbox.set_waker(Box::new(move || wake.wake()));
        let placement = parts.router.placement();
        let node = placement.me();
        // In a cluster the bridge follows the shards in the grid.
        let bridge = placement.is_cluster().then(|| ShardId(placement.shards()));
        let state = ShardState {
            index: parts.index,
            router: parts.router,
            clock: parts.clock,
            out: Outbox {
                mailbox: parts.mailbox,
                node,
                bridge,
                handoffs: HashMap::new(),
                reads: Reads::default(),
                log_file: committer.file(),
                slow_consumer_closes: 0,
                closes: [0; Cause::ALL.len()],
                transports: Transports::new(parts.tls, parts.ws_keepalive),
            },
            inbox: Vec::new(),
            committer,
            store_available: true,
            stats: parts.stats,
            shared: parts.shared,
            stopping_since_ms: None,
            refused_unlogged: 0,
            refused_logged_at_ms: 0,
            loop_stats: LoopStats::default(),
            heap_published_at_ms: 0,
            usage: parts.usage,
            accounts: parts.accounts,
            account_waits: AccountWaits::default(),
            tls_listener: None,
            component_listener: None,
            decoded: Vec::new(),
            websocket: parts.websocket,
        };
        Ok(Shard { driver, state })
    }

    /// One loop turn: drain mail, commit, wait for I/O (at most the budget; the driver
    /// decides what waiting means), handle completions, run timers, commit, flush mail.
    pub fn turn(&mut self) -> std::io::Result<TurnEnd> {
        let (state, driver) = (&mut self.state, &mut self.driver);
        state.drain_usage();
        state.drain_accounts();
        state.drain_mail(&mut driver.ops());
        state.drain_websocket(&mut driver.ops());
        // Records the mail appended (stanzas stored for this shard's users) leave before the
        // wait, not after it: their senders' acknowledgements wait for this commit.
        state.pump_commits(&mut driver.ops());
        if state.stopping_since_ms.is_none() && state.shared.stop.load(Ordering::Acquire) {
            state.begin_shutdown(driver);
        }
        let timeout = state.wait_budget();
        let turn = driver.turn(Some(timeout), state)?;
        state.out.mailbox.awake();
        let now_ms = state.clock.now_ms();
        state
            .router
            .on_tick(now_ms, &mut state.out.fx(&mut driver.ops()));
        state.out.transports.keep_alive(&mut driver.ops(), now_ms);
        // Everything this turn appended to the log leaves in one write.
        state.pump_commits(&mut driver.ops());
        state.account_waits.answer_committed(&state.router);
        let flushed = state.out.mailbox.flush();
        state.loop_stats.mailbox_full += flushed.full_lanes as u64;
        state.log_refused(now_ms);
        state.compact_if_due(driver);
        state.publish(driver, turn.submit_calls, now_ms);
        if state.shutdown_finished(driver, now_ms) {
            return Ok(TurnEnd::Finished);
        }
        Ok(TurnEnd::Running)
    }

    /// The router, read-only (checks, stats).
    pub fn router(&self) -> &Router {
        &self.state.router
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// The driver, for a simulation to feed it completions between turns.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    pub fn mailbox(&self) -> &M {
        &self.state.out.mailbox
    }

    /// Whether a log write is in flight (a simulation's settle check).
    pub fn committing(&self) -> bool {
        self.state.committer.busy() || self.state.committer.holding()
    }
}

impl<M: MailTransport<ShardMail>, C: Clock> ShardState<M, C> {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Starts the log write the committer says is due; at once, whatever it holds, when an
    /// account change waits for it, a compaction is due (it needs an idle log) or the shard
    /// is stopping.
    fn pump_commits<O: Ops>(&mut self, io: &mut O) {
        let now_ms = self.now_ms();
        let urgent = self.stopping_since_ms.is_some()
            || self.account_waits.waiting()
            || self.router.store().compaction_due();
        self.committer.pump(&mut self.router, io, now_ms, urgent);
    }

    /// How long the next wait may block: zero when there is mail to move, else until the
    /// router's next timer or the held log records' write, capped so the stop flag is seen
    /// promptly.
    fn wait_budget(&mut self) -> Duration {
        if self.out.mailbox.staged() > 0 {
            // A destination lane is full: nobody wakes senders when room frees up, so retry
            // soon, without spinning (completions still end the wait early).
            return BACKPRESSURE_RETRY;
        }
        if !self.out.mailbox.prepare_to_sleep() {
            return Duration::ZERO; // mail arrived meanwhile; the asleep mark is already cleared
        }
        let now_ms = self.now_ms();
        let timers = self
            .router
            .next_deadline_ms()
            .map(|deadline_ms| deadline_ms.saturating_sub(now_ms));
        let held = self.committer.hold_left_ms(now_ms);
        match timers.into_iter().chain(held).min() {
            Some(left_ms) => Duration::from_millis(left_ms).min(MAX_WAIT),
            None => MAX_WAIT,
        }
    }

    /// Account changes from the admin endpoint since the last turn, into the store (answered
    /// once committed: see `account_waits`).
    fn drain_accounts(&mut self) {
        if let Some(inbox) = &self.accounts {
            let waits = &mut self.account_waits;
            inbox.drain(MAX_ACCOUNTS_PER_TURN, &mut self.router, waits);
            waits.answer_committed(&self.router);
        }
    }

    /// Upload usage reported by the HTTP server since the last turn, into the quota ledger.
    fn drain_usage(&mut self) {
        if let Some(inbox) = &self.usage {
            let router = &mut self.router;
            inbox.drain(MAX_USAGE_PER_TURN, |event| router.on_usage(event));
            self.loop_stats.upload_usage_dropped = inbox.dropped();
        }
    }

    fn drain_mail<O: Ops>(&mut self, io: &mut O) {
        // The inbox Vec is reused across turns; it is taken out so the router can be called
        // while the mails are consumed.
        let mut inbox = std::mem::take(&mut self.inbox);
        self.out
            .mailbox
            .drain(MAX_MAIL_PER_TURN, |_, mail| inbox.push(mail));
        let now_ms = self.now_ms();
        for mail in inbox.drain(..) {
            match mail {
                ShardMail::Router(mail) => self.router.on_mail(mail, now_ms, &mut self.out.fx(io)),
                ShardMail::Adopt {
                    socket,
                    handoff,
                    leftover,
                    layers,
                } => self.adopt(io, socket, (handoff, layers), &leftover, now_ms),
                // Only the bridge takes mail for other nodes; the bridge hands this shard
                // `Router` mail.
                ShardMail::Remote { .. } => {
                    warn!(
                        shard = self.index,
                        "mail for another node reached a shard (a bug); dropped"
                    );
                }
            }
        }
        self.inbox = inbox;
    }

    fn adopt<O: Ops>(
        &mut self,
        io: &mut O,
        socket: OwnedFd,
        (handoff, layers): (Handoff, Option<ConnLayers>),
        leftover: &[u8],
        now_ms: u64,
    ) {
        if self.stopping_since_ms.is_some() {
            // Shutting down: the socket closes on drop, without a goodbye; count it gone.
            self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        match io.adopt(socket) {
            Ok(conn) => {
                let key = ConnKey(conn.to_u64());
                let Some(layers) = layers else {
                    self.router
                        .on_adopted(key, handoff, leftover, now_ms, &mut self.out.fx(io));
                    return;
                };
                self.out.transports.insert(key, layers);
                let mut decoded = std::mem::take(&mut self.decoded);
                decoded.clear();
                if let Opened::Failed = self.out.transports.open(io, key, leftover, &mut decoded) {
                    decoded.clear();
                }
                self.router
                    .on_adopted(key, handoff, &decoded, now_ms, &mut self.out.fx(io));
                self.decoded = decoded;
            }
            Err(err) => {
                self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
                warn!(
                    shard = self.index,
                    "could not adopt a handed-off conn: {err}"
                );
            }
        }
    }

    /// Conns the HTTP server upgraded to WebSocket since the last turn: adopted here.
    fn drain_websocket<O: Ops>(&mut self, io: &mut O) {
        let Some(inbox) = self.websocket.clone() else {
            return;
        };
        inbox.drain(MAX_WS_ADOPTS_PER_TURN, |conn| {
            self.adopt_websocket(io, conn)
        });
    }

    /// An upgraded conn joins this shard like an accepted one (the conn ceiling, the router's
    /// `on_connect`), with a WebSocket layer; the frames read with the request go in first.
    fn adopt_websocket<O: Ops>(&mut self, io: &mut O, conn: WebSocketConn) {
        let open = self.shared.open_conns.fetch_add(1, Ordering::Relaxed) + 1;
        if open > self.shared.max_conns || self.stopping_since_ms.is_some() {
            // Refused: the socket closes when `conn` drops here.
            self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
            self.refused_unlogged += 1;
            self.loop_stats.refused_conns += 1;
            return;
        }
        let id = match io.adopt(conn.socket) {
            Ok(id) => id,
            Err(err) => {
                self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
                warn!(
                    shard = self.index,
                    "could not adopt a WebSocket conn: {err}"
                );
                return;
            }
        };
        let key = ConnKey(id.to_u64());
        let max_stanza_bytes = self.router.max_stanza_bytes();
        self.out
            .transports
            .start_websocket(key, max_stanza_bytes, conn.tls_relayed);
        let now_ms = self.now_ms();
        self.router
            .on_connect(key, Some(conn.peer.ip()), now_ms, &mut self.out.fx(io));
        if !conn.leftover.is_empty() {
            self.open_and_route(io, key, &conn.leftover, now_ms);
        }
    }

    fn on_accepted<O: Ops>(
        &mut self,
        io: &mut O,
        listener: rookery_io::ListenerId,
        conn: ConnId,
        peer: std::net::SocketAddr,
    ) {
        let open = self.shared.open_conns.fetch_add(1, Ordering::Relaxed) + 1;
        if open > self.shared.max_conns || self.stopping_since_ms.is_some() {
            // Over the ceiling: refuse at once; the Closed event gives the slot back.
            io.close(conn, Linger::Abort);
            self.refused_unlogged += 1;
            self.loop_stats.refused_conns += 1;
            return;
        }
        let now_ms = self.now_ms();
        let key = ConnKey(conn.to_u64());
        if self.tls_listener == Some(listener) {
            self.out.transports.start_tls(io, key, &[]);
        }
        let fx = &mut self.out.fx(io);
        if self.component_listener == Some(listener) {
            self.router
                .on_component_connect(key, Some(peer.ip()), now_ms, fx);
        } else {
            self.router.on_connect(key, Some(peer.ip()), now_ms, fx);
        }
    }

    /// Bytes from a conn: through its layers (TLS), then to the router. A STARTTLS the
    /// router negotiated in this call may leave early TLS bytes: they are opened next.
    fn on_received<O: Ops>(&mut self, io: &mut O, key: ConnKey, data: &[u8]) {
        let now_ms = self.now_ms();
        if self.out.transports.is_empty() {
            self.router.on_data(key, data, now_ms, &mut self.out.fx(io));
        } else {
            self.open_and_route(io, key, data, now_ms);
        }
        while let Some((key, early)) = self.out.transports.take_early() {
            self.open_and_route(io, key, &early, now_ms);
        }
    }

    fn open_and_route<O: Ops>(&mut self, io: &mut O, key: ConnKey, data: &[u8], now_ms: u64) {
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        match self.out.transports.open(io, key, data, &mut decoded) {
            Opened::Bare => self.router.on_data(key, data, now_ms, &mut self.out.fx(io)),
            Opened::Decoded if !decoded.is_empty() => {
                self.router
                    .on_data(key, &decoded, now_ms, &mut self.out.fx(io))
            }
            Opened::Decoded | Opened::Failed => {}
        }
        if decoded.capacity() > SCRATCH_KEEP_BYTES {
            decoded = Vec::new();
        }
        self.decoded = decoded;
    }

    fn begin_shutdown<D: Driver>(&mut self, driver: &mut D) {
        let now_ms = self.now_ms();
        self.stopping_since_ms = Some(now_ms);
        driver.stop_listening();
        self.router.shutdown(&mut self.out.fx(&mut driver.ops()));
        info!(
            shard = self.index,
            conns = driver.open_conns(),
            "shutting down: streams closed with system-shutdown"
        );
    }

    fn shutdown_finished<D: Driver>(&self, driver: &D, now_ms: u64) -> bool {
        let Some(since_ms) = self.stopping_since_ms else {
            return false;
        };
        let drained = driver.open_conns() == 0
            && self.out.mailbox.staged() == 0
            && self.out.handoffs.is_empty()
            && !self.committer.busy()
            && self.router.store().stats().pending_bytes == 0;
        drained || now_ms.saturating_sub(since_ms) > SHUTDOWN_GRACE.as_millis() as u64
    }

    /// A log write finished: the store commits (or turns unavailable) and the router releases
    /// what waited for the commit. Availability changes are logged once each.
    fn on_log_written<O: Ops>(
        &mut self,
        io: &mut O,
        token: u64,
        result: Result<(), i32>,
        buffer: Vec<u8>,
    ) {
        let Some((batch, result)) = self.committer.on_written(token, result, buffer) else {
            return;
        };
        let now_ms = self.now_ms();
        let outcome = self
            .router
            .finish_commit(batch, result, now_ms, &mut self.out.fx(io));
        match outcome {
            Err(err) if self.store_available => {
                self.store_available = false;
                warn!(
                    shard = self.index,
                    "durable log write failed: {err}; stanzas that need storage are refused \
                     (resource-constraint) until a retry succeeds (disk full? free space under --data-dir)"
                );
            }
            Ok(_) if !self.store_available => {
                self.store_available = true;
                info!(
                    shard = self.index,
                    "durable log writable again: storing and acknowledging resumed"
                );
            }
            _ => {}
        }
    }

    /// Compacts the log when it is mostly dead records (synchronous; see `commit`).
    fn compact_if_due<D: Driver>(&mut self, driver: &mut D) {
        let reading = self.out.reads.busy();
        let done = self
            .committer
            .compact_if_due(driver, &mut self.router, reading);
        match done {
            Some(Ok(report)) => info!(shard = self.index, "log compacted: {report:?}"),
            Some(Err(err)) => warn!(shard = self.index, "{err}"),
            None => return,
        }
        // The log was replaced (or re-registered): reads go to the new file.
        self.out.log_file = self.committer.file();
    }

    /// A read of a stored message returned: the router writes it to its session.
    fn on_log_read<O: Ops>(
        &mut self,
        io: &mut O,
        token: u64,
        result: Result<(), i32>,
        buffer: Vec<u8>,
    ) {
        let Some(tag) = self.out.reads.finish(token) else {
            return;
        };
        let now_ms = self.now_ms();
        let bytes = result.map(|()| buffer.as_slice());
        self.router
            .on_log_read(tag, bytes, now_ms, &mut self.out.fx(io));
        self.out.reads.recycle(buffer);
    }

    fn log_refused(&mut self, now_ms: u64) {
        if self.refused_unlogged == 0
            || now_ms.saturating_sub(self.refused_logged_at_ms) < REFUSED_LOG_INTERVAL_MS
        {
            return;
        }
        warn!(
            shard = self.index,
            refused = self.refused_unlogged,
            ceiling = self.shared.max_conns,
            "conn ceiling reached: new conns refused (raise RLIMIT_NOFILE / LimitNOFILE, or add processes)"
        );
        self.refused_unlogged = 0;
        self.refused_logged_at_ms = now_ms;
    }

    fn publish<D: Driver>(&mut self, driver: &D, submit_calls: u32, now_ms: u64) {
        let own = &mut self.loop_stats;
        // heap_bytes walks every conn and sm_kept_bytes every session: once per second, not
        // every turn.
        if now_ms.saturating_sub(self.heap_published_at_ms) >= 1000 {
            self.heap_published_at_ms = now_ms;
            own.heap_bytes = self.router.heap_bytes() as u64;
            own.sm_kept_bytes = self.router.sm_kept_bytes() as u64;
            let store = self.router.store().stats();
            own.log_bytes = store.log_bytes;
            own.log_writes = store.commits;
            own.stored_bytes = store.message_bytes;
            own.store_index_bytes = store.index_heap_bytes;
            own.tls_heap_bytes = self.out.transports.heap_bytes() as u64;
        }
        let tls = self.out.transports.stats();
        own.tls_sessions = tls.tls_sessions;
        own.tls_handshakes = tls.tls_handshakes;
        own.tls_failures_peer = tls.tls_failures_peer;
        own.tls_failures_local = tls.tls_failures_local;
        own.websocket_sessions = tls.ws_sessions;
        own.websocket_frame_errors = tls.ws_frame_errors;
        own.websocket_keepalive_pings = tls.ws_keepalive_pings;
        own.websocket_keepalive_timeouts = tls.ws_keepalive_timeouts;
        own.conns = driver.open_conns() as u64;
        own.mailbox_staged = self.out.mailbox.staged() as u64;
        own.slow_consumer_closes = self.out.slow_consumer_closes;
        [
            own.closes_peer,
            own.closes_os,
            own.closes_config,
            own.closes_shard,
        ] = self.out.closes;
        own.store_available = u64::from(self.router.store().is_available());
        own.loop_turns += 1;
        own.submit_calls += u64::from(submit_calls);
        self.stats.publish(&self.router.stats(), own);
    }
}

impl<D: Driver, M: MailTransport<ShardMail>, C: Clock> Handler<D> for ShardState<M, C> {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>) {
        match event {
            Event::Accepted {
                listener,
                conn,
                peer,
            } => self.on_accepted(io, listener, conn, peer),
            Event::Received { conn, data } => self.on_received(io, ConnKey(conn.to_u64()), data),
            Event::Closed { conn, .. } => {
                self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
                self.out.transports.remove(ConnKey(conn.to_u64()));
                let now_ms = self.now_ms();
                self.router
                    .on_closed(ConnKey(conn.to_u64()), now_ms, &mut self.out.fx(io));
            }
            Event::Detached {
                conn,
                socket,
                leftover,
            } => {
                let key = ConnKey(conn.to_u64());
                let Some((dest, handoff)) = self.out.handoffs.remove(&key) else {
                    // Only hand-offs detach conns in the server; anything else is a bug.
                    unreachable!("conn {conn:?} detached without a pending hand-off");
                };
                let layers = self.out.transports.remove(key);
                self.out.mailbox.stage(
                    ShardId(dest),
                    ShardMail::Adopt {
                        socket,
                        handoff,
                        leftover,
                        layers,
                    },
                );
            }
            Event::AcceptFailed { errno, .. } => {
                self.refused_unlogged += 1;
                self.loop_stats.refused_conns += 1;
                if errno != libc::EMFILE && errno != libc::ENFILE {
                    warn!(
                        shard = self.index,
                        "accept failed: {}",
                        std::io::Error::from_raw_os_error(errno)
                    );
                }
            }
            Event::FileWritten {
                token,
                result,
                buffer,
                ..
            } => self.on_log_written(io, token, result, buffer),
            Event::Drained { conn } => {
                let now_ms = self.now_ms();
                self.router
                    .on_drained(ConnKey(conn.to_u64()), now_ms, &mut self.out.fx(io));
            }
            Event::FileRead {
                token,
                result,
                buffer,
                ..
            } => self.on_log_read(io, token, result, buffer),
            // The server makes no outgoing conns.
            Event::Connected { .. } | Event::Woken => {}
        }
    }
}

/// The router's effects, applied to this shard's driver and mailbox.
struct ShardEffects<'a, O: Ops, M> {
    io: &'a mut O,
    mailbox: &'a mut M,
    node: NodeId,
    bridge: Option<ShardId>,
    handoffs: &'a mut HashMap<ConnKey, (u16, Handoff)>,
    reads: &'a mut Reads,
    log_file: Option<FileId>,
    slow_consumer_closes: &'a mut u64,
    closes: &'a mut [u64; Cause::ALL.len()],
    transports: &'a mut Transports,
}

impl<O: Ops, M: MailTransport<ShardMail>> Effects for ShardEffects<'_, O, M> {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        let id = ConnId::from_u64(conn.0);
        let queued = if self.transports.is_empty() {
            !matches!(self.io.send(id, bytes), Err(SendError::QueueFull))
        } else {
            self.transports.seal_and_send(self.io, conn, bytes)
        };
        if !queued {
            // A peer that does not read cannot hold the shard's memory hostage: drop it.
            *self.slow_consumer_closes += 1;
            self.io.close(id, Linger::Abort);
        }
    }

    fn close(&mut self, conn: ConnKey, cause: Cause) {
        self.closes[cause.index()] += 1;
        self.transports.close(self.io, conn);
        self.io.close(ConnId::from_u64(conn.0), Linger::Flush);
    }

    fn transport(&self, conn: ConnKey) -> Transport {
        self.transports.transport(conn)
    }

    fn start_tls(&mut self, conn: ConnKey, early: &[u8]) {
        self.transports.start_tls(self.io, conn, early);
    }

    fn queued_bytes(&self, conn: ConnKey) -> usize {
        self.io.queued_bytes(ConnId::from_u64(conn.0))
    }

    fn read_log(&mut self, tag: u64, span: LogSpan) {
        self.reads.start(self.io, self.log_file, tag, span);
    }

    fn mail(&mut self, dest: Location, mail: Mail) {
        if dest.node == self.node {
            self.mailbox
                .stage(ShardId(dest.shard.0), ShardMail::Router(mail));
            return;
        }
        match self.bridge {
            Some(bridge) => self.mailbox.stage(bridge, ShardMail::Remote { dest, mail }),
            // Only a cluster placement names other nodes.
            None => debug_assert!(false, "mail for {dest:?} without a cluster bridge"),
        }
    }

    fn hand_off(&mut self, conn: ConnKey, dest: rookery_router::ShardId, handoff: Handoff) {
        self.handoffs.insert(conn, (dest.0, handoff));
        self.io.detach(ConnId::from_u64(conn.0));
    }
}
