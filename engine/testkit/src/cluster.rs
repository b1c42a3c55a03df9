//! A recording `Effects`, and a cluster harness that runs N routers in one thread, moving
//! mail and hand-offs between them the way the server would, so cross-shard flows are tested
//! without threads or sockets. Logins go through `rookery-client` (see `login`).
//!
//! Stores: `Cluster::new` gives every router an in-memory store (everything is committed at
//! once); `Cluster::with_stores` takes the caller's (e.g. `Log` durability in a temp dir), and
//! the test then runs the group commit itself with `commit` / `fail_commit`, so it can look at
//! what happens before and after a commit. The wall clock starts at `TEST_WALL_CLOCK_MS`
//! (2026-11-28T18:00:00.000Z) and moves with `advance`.
//!
//! Why a second glue beside the server's shard loop: the router's unit and scenario tests want
//! to stop between any two steps (before a commit, with a conn paused, with a mail held) and
//! to read any router's state, which the real loop (threads, driver, mailbox) does not allow.
//! This harness is kept to moving effects and nothing else; the loop itself is covered by the
//! simulator (`rookery-sim` drives the server's real shard loop under seeds) and end to end.
//!
//! What it does not do: simulate I/O timing, mailbox capacity or partial writes (the simulator
//! does that). Failures inside the harness `panic!` on purpose: it is test code.
//!
//! Invariants: `ConnKey`s are unique across the whole cluster (one counter), and a logical
//! client keeps its `ClientId` when its conn is handed to another shard under a new key.

use std::collections::HashMap;
use std::sync::Arc;

use rookery_proto::Jid;
use rookery_router::{
    AuthBackend, Cause, ConnKey, Effects, Handoff, Location, Mail, Placement, Router, RouterConfig,
    ShardId, Transport,
};
use rookery_store::{LogSpan, Store, StoreError, SyncWriter};

/// Records every effect, in order, per kind, and models each conn's output queue: bytes
/// sent count as queued until the owner of the effects says the peer read them
/// (`take_queued`), and a send past `max_output_bytes` aborts the conn like the driver's
/// `QueueFull` does.
#[derive(Debug, Default)]
pub struct RecordingEffects {
    /// Bytes sent per conn, concatenated.
    pub sent: HashMap<ConnKey, Vec<u8>>,
    pub closed: Vec<ConnKey>,
    /// Why each close of `closed` was asked for, in the same order.
    pub close_causes: Vec<(ConnKey, Cause)>,
    pub mails: Vec<(Location, Mail)>,
    pub handoffs: Vec<(ConnKey, ShardId, Handoff)>,
    /// Log reads asked for: (tag, span).
    pub reads: Vec<(u64, LogSpan)>,
    /// Bytes queued per conn and not yet read by the peer.
    pub queued: HashMap<ConnKey, usize>,
    /// The driver's output cap, if modelled: a send that would pass it (with bytes already
    /// queued) aborts the conn and is recorded in `aborted`.
    pub max_output_bytes: Option<usize>,
    /// Conns aborted because a send passed `max_output_bytes` (slow consumer).
    pub aborted: Vec<ConnKey>,
    /// What `transport` answers per conn (absent: plain TCP); a test sets it to model TLS.
    pub transports: HashMap<ConnKey, Transport>,
    /// `start_tls` calls: the conn and the early bytes handed to its TLS layer.
    pub started_tls: Vec<(ConnKey, Vec<u8>)>,
}

impl Effects for RecordingEffects {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        let queued = self.queued.entry(conn).or_default();
        let over = self
            .max_output_bytes
            .is_some_and(|max| *queued > 0 && *queued + bytes.len() > max);
        if over {
            if !self.aborted.contains(&conn) {
                self.aborted.push(conn);
            }
            return;
        }
        *queued += bytes.len();
        self.sent.entry(conn).or_default().extend_from_slice(bytes);
    }
    fn queued_bytes(&self, conn: ConnKey) -> usize {
        self.queued.get(&conn).copied().unwrap_or(0)
    }
    fn read_log(&mut self, tag: u64, span: LogSpan) {
        self.reads.push((tag, span));
    }
    fn close(&mut self, conn: ConnKey, cause: Cause) {
        self.closed.push(conn);
        self.close_causes.push((conn, cause));
    }
    fn mail(&mut self, dest: Location, mail: Mail) {
        self.mails.push((dest, mail));
    }
    fn hand_off(&mut self, conn: ConnKey, dest: ShardId, handoff: Handoff) {
        self.handoffs.push((conn, dest, handoff));
    }
    fn transport(&self, conn: ConnKey) -> Transport {
        self.transports
            .get(&conn)
            .copied()
            .unwrap_or(Transport::PLAIN)
    }
    fn start_tls(&mut self, conn: ConnKey, early: &[u8]) {
        self.started_tls.push((conn, early.to_vec()));
    }
}

impl RecordingEffects {
    /// Everything sent to `conn` so far, as text, drained.
    pub fn take_text(&mut self, conn: ConnKey) -> String {
        let bytes = self.sent.remove(&conn).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn is_closed(&self, conn: ConnKey) -> bool {
        self.closed.contains(&conn)
    }
}

/// The token secret the harness configures.
pub const TEST_SECRET: &[u8] = b"rookery-test-secret";
/// The domain the harness serves.
pub const TEST_DOMAIN: &str = "example.com";
/// Unix ms of the cluster's start (`now_ms` 1000): 2026-11-28T18:00:00.000Z.
pub const TEST_WALL_CLOCK_MS: u64 = 1_795_888_800_000;
/// The cluster's `now_ms` at start.
const START_MS: u64 = 1_000;

/// A logical client of the cluster (stable across hand-offs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(pub usize);

#[derive(Debug)]
struct Client {
    shard: u16,
    key: ConnKey,
    out: Vec<u8>,
    closed: bool,
    /// Bytes "still in the socket" when a hand-off happens: they travel as the leftover.
    unread: Vec<u8>,
    /// The client does not read: what the server sends stays queued (see `pause_reading`).
    paused: bool,
    /// Bytes sent while paused, not yet read.
    backlog: Vec<u8>,
}

/// N routers in one thread with a virtual clock.
#[derive(Debug)]
pub struct Cluster {
    pub routers: Vec<Router>,
    fx: Vec<RecordingEffects>,
    clients: Vec<Client>,
    by_key: HashMap<ConnKey, ClientId>,
    next_key: u64,
    pub now_ms: u64,
    /// Shards whose incoming mail is lost (`lose_mail_to`), and what was lost.
    lossy: Vec<u16>,
    lost: Vec<(Location, Mail)>,
}

impl Cluster {
    /// `shards` routers serving `TEST_DOMAIN` with the token backend and default limits.
    pub fn new(shards: u16) -> Cluster {
        Cluster::with_config(shards, |_| {})
    }

    /// Like `new`, letting the caller adjust the config first.
    pub fn with_config(shards: u16, adjust: impl FnOnce(&mut RouterConfig)) -> Cluster {
        let config = test_config(shards, adjust);
        let routers =
            (0..shards).map(|s| Router::with_seed(config.clone(), s, 0x5eed + u64::from(s)));
        Cluster::assemble(routers.collect())
    }

    /// Like `with_config`, with shard `s`'s store made by `store(s)`.
    pub fn with_stores(
        shards: u16,
        adjust: impl FnOnce(&mut RouterConfig),
        mut store: impl FnMut(u16) -> Store,
    ) -> Cluster {
        let config = test_config(shards, adjust);
        let routers = (0..shards).map(|s| {
            Router::with_store_and_seed(config.clone(), s, store(s), 0x5eed + u64::from(s))
        });
        Cluster::assemble(routers.collect())
    }

    fn assemble(mut routers: Vec<Router>) -> Cluster {
        for router in &mut routers {
            router.set_wall_clock(START_MS, TEST_WALL_CLOCK_MS);
        }
        let shards = routers.len();
        Cluster {
            routers,
            fx: (0..shards).map(|_| RecordingEffects::default()).collect(),
            clients: Vec::new(),
            by_key: HashMap::new(),
            next_key: 1,
            now_ms: START_MS,
            lossy: Vec::new(),
            lost: Vec::new(),
        }
    }

    /// Runs one group commit on `shard` with a blocking writer, then delivers what it
    /// releases (acks, `Mail::Committed`). `Ok(None)`: nothing was pending.
    pub fn commit(&mut self, shard: u16) -> Result<Option<u64>, StoreError> {
        let s = usize::from(shard);
        let result = self.routers[s].commit_with(&mut SyncWriter, self.now_ms, &mut self.fx[s]);
        self.pump();
        result
    }

    /// `commit` on every shard, in order, until none has anything pending.
    pub fn commit_all(&mut self) {
        for shard in 0..self.routers.len() as u16 {
            if let Err(error) = self.commit(shard) {
                panic!("commit on shard {shard} failed: {error}");
            }
        }
    }

    /// A group commit on `shard` whose write fails with `error` (disk full, ...). Returns
    /// false when nothing was pending.
    pub fn fail_commit(&mut self, shard: u16, error: std::io::Error) -> bool {
        let s = usize::from(shard);
        let Some(batch) = self.routers[s].begin_commit() else {
            return false;
        };
        let result = self.routers[s].finish_commit(batch, Err(error), self.now_ms, &mut self.fx[s]);
        assert!(result.is_err(), "a failed write must not commit");
        self.pump();
        true
    }

    pub fn router_mut(&mut self, shard: u16) -> &mut Router {
        &mut self.routers[usize::from(shard)]
    }

    /// A new conn accepted by `shard` (from an unknown address: no per-address budget).
    pub fn connect(&mut self, shard: u16) -> ClientId {
        self.connect_from(shard, None)
    }

    /// A new conn accepted by `shard` from source address `peer`.
    pub fn connect_from(&mut self, shard: u16, peer: Option<std::net::IpAddr>) -> ClientId {
        self.connect_with(shard, peer, Transport::PLAIN)
    }

    /// A new conn whose layers below the stream are `transport` from its first byte (a
    /// WebSocket conn: the server's layer turns `<open/>` into the header the router reads,
    /// so tests send RFC 6120 bytes and read the router's RFC 7395 output).
    pub fn connect_with(
        &mut self,
        shard: u16,
        peer: Option<std::net::IpAddr>,
        transport: Transport,
    ) -> ClientId {
        let key = self.fresh_key();
        if transport != Transport::PLAIN {
            self.fx[usize::from(shard)]
                .transports
                .insert(key, transport);
        }
        let id = self.add_client(shard, key);
        self.routers[usize::from(shard)].on_connect(
            key,
            peer,
            self.now_ms,
            &mut self.fx[usize::from(shard)],
        );
        self.pump();
        id
    }

    /// Registers a fresh client of conn `key` on `shard` (before its router hears of it).
    fn add_client(&mut self, shard: u16, key: ConnKey) -> ClientId {
        let id = ClientId(self.clients.len());
        self.clients.push(Client {
            shard,
            key,
            out: Vec::new(),
            closed: false,
            unread: Vec::new(),
            paused: false,
            backlog: Vec::new(),
        });
        self.by_key.insert(key, id);
        id
    }

    /// A new conn accepted by `shard` on the XEP-0114 component listener.
    pub fn connect_component(&mut self, shard: u16) -> ClientId {
        let key = self.fresh_key();
        let id = self.add_client(shard, key);
        let fx = &mut self.fx[usize::from(shard)];
        self.routers[usize::from(shard)].on_component_connect(key, None, self.now_ms, fx);
        self.pump();
        id
    }

    /// The layers below the client's stream are TLS from now on (what the server's
    /// transport layer answers after a handshake), with this tls-exporter value.
    pub fn secure(&mut self, client: ClientId, exporter: Option<[u8; 32]>) {
        let c = &self.clients[client.0];
        let transport = Transport {
            security: rookery_router::Security::Tls { exporter },
            framing: rookery_router::Framing::Stream,
        };
        self.fx[usize::from(c.shard)]
            .transports
            .insert(c.key, transport);
    }

    /// The early bytes of the client's STARTTLS, if the router started TLS on its conn.
    pub fn take_started_tls(&mut self, client: ClientId) -> Option<Vec<u8>> {
        let c = &self.clients[client.0];
        let started = &mut self.fx[usize::from(c.shard)].started_tls;
        let at = started.iter().position(|(key, _)| *key == c.key)?;
        Some(started.remove(at).1)
    }

    /// The client sends `bytes`; the shard holding its conn reads them now.
    pub fn send(&mut self, client: ClientId, bytes: &str) {
        self.send_bytes(client, bytes.as_bytes(), b"");
    }

    /// The client sends `now`, then `unread`; if `now` triggers a hand-off, `unread` is what
    /// the server collects from the socket and passes as the leftover, else it is read next.
    pub fn send_bytes(&mut self, client: ClientId, now: &[u8], unread: &[u8]) {
        let c = &mut self.clients[client.0];
        if c.closed {
            return;
        }
        c.unread = unread.to_vec();
        let (shard, key) = (usize::from(c.shard), c.key);
        self.routers[shard].on_data(key, now, self.now_ms, &mut self.fx[shard]);
        self.pump();
        let rest = std::mem::take(&mut self.clients[client.0].unread);
        if !rest.is_empty() {
            self.send_bytes(client, &rest, b"");
        }
    }

    /// Advances the virtual clock and ticks every router.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        for (router, fx) in self.routers.iter_mut().zip(&mut self.fx) {
            router.on_tick(self.now_ms, fx);
        }
        self.pump();
    }

    /// From now on, mail to `shard` is lost on the way (kept for `take_lost_mail`), as
    /// mail to another node may be: a fake remote location that never answers.
    pub fn lose_mail_to(&mut self, shard: u16) {
        self.lossy.push(shard);
    }

    /// The mail lost so far (see `lose_mail_to`), drained.
    pub fn take_lost_mail(&mut self) -> Vec<(Location, Mail)> {
        std::mem::take(&mut self.lost)
    }

    /// Delivers `mail` to `shard` now, as a late answer would arrive.
    pub fn deliver_mail(&mut self, shard: u16, mail: Mail) {
        let s = usize::from(shard);
        self.routers[s].on_mail(mail, self.now_ms, &mut self.fx[s]);
        self.pump();
    }

    /// The peer hangs up.
    pub fn disconnect(&mut self, client: ClientId) {
        let c = &mut self.clients[client.0];
        c.closed = true;
        let (shard, key) = (usize::from(c.shard), c.key);
        self.routers[shard].on_closed(key, self.now_ms, &mut self.fx[shard]);
        self.pump();
    }

    pub fn shutdown(&mut self) {
        for (router, fx) in self.routers.iter_mut().zip(&mut self.fx) {
            router.shutdown(fx);
        }
        self.pump();
    }

    /// The client's initial presence, after checking that nothing came before it (what waits
    /// for a session, stored messages and subscription requests, waits for its initial
    /// presence); returns what came after it.
    pub fn initial_presence(&mut self, client: ClientId) -> String {
        assert_eq!(
            self.take_output(client),
            "",
            "nothing before initial presence"
        );
        self.send(client, "<presence/>");
        self.take_output(client)
    }

    /// What the client received since the last call.
    pub fn take_output(&mut self, client: ClientId) -> String {
        let out = std::mem::take(&mut self.clients[client.0].out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Raw bytes the client received since the last call.
    pub fn take_bytes(&mut self, client: ClientId) -> Vec<u8> {
        std::mem::take(&mut self.clients[client.0].out)
    }

    pub fn is_closed(&self, client: ClientId) -> bool {
        self.clients[client.0].closed
    }

    /// The shard currently holding the client's conn.
    pub fn shard_of(&self, client: ClientId) -> u16 {
        self.clients[client.0].shard
    }

    pub fn router(&self, shard: u16) -> &Router {
        &self.routers[usize::from(shard)]
    }

    fn fresh_key(&mut self) -> ConnKey {
        self.next_key += 1;
        ConnKey(self.next_key)
    }

    /// Applies recorded effects until none are left: output to clients, closes (followed by
    /// `on_closed`, as the server does), mail to the destination router, hand-offs.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for shard in 0..self.fx.len() {
                progressed |= self.drain_shard(shard);
            }
            if !progressed {
                return;
            }
        }
    }

    fn drain_shard(&mut self, shard: usize) -> bool {
        let recorded = &mut self.fx[shard];
        let sent = std::mem::take(&mut recorded.sent);
        let mut closed = std::mem::take(&mut recorded.closed);
        // The harness acts on closes, not on their causes: keep the record from growing.
        recorded.close_causes.clear();
        closed.append(&mut recorded.aborted);
        let mails = std::mem::take(&mut recorded.mails);
        let handoffs = std::mem::take(&mut recorded.handoffs);
        let reads = std::mem::take(&mut recorded.reads);
        let busy = !(sent.is_empty()
            && closed.is_empty()
            && mails.is_empty()
            && handoffs.is_empty()
            && reads.is_empty());
        for (key, bytes) in sent {
            let client = self.by_key[&key];
            let c = &mut self.clients[client.0];
            if c.paused {
                c.backlog.extend_from_slice(&bytes);
                continue;
            }
            c.out.extend_from_slice(&bytes);
            // The peer read everything at once: the queue drained.
            self.fx[shard].queued.remove(&key);
            self.routers[shard].on_drained(key, self.now_ms, &mut self.fx[shard]);
        }
        for (tag, span) in reads {
            let result = read_span(self.routers[shard].store(), span);
            let result = result.as_deref().map_err(|&errno| errno);
            self.routers[shard].on_log_read(tag, result, self.now_ms, &mut self.fx[shard]);
        }
        for key in closed {
            let client = self.by_key[&key];
            self.clients[client.0].closed = true;
            self.routers[shard].on_closed(key, self.now_ms, &mut self.fx[shard]);
        }
        for (location, mail) in mails {
            let dest = usize::from(location.shard.0);
            assert_ne!(dest, shard, "a router mailed itself");
            if self.lossy.contains(&location.shard.0) {
                self.lost.push((location, mail));
                continue;
            }
            self.routers[dest].on_mail(mail, self.now_ms, &mut self.fx[dest]);
        }
        for (key, dest, handoff) in handoffs {
            self.adopt(key, dest, handoff);
        }
        busy
    }

    fn adopt(&mut self, old_key: ConnKey, dest: ShardId, handoff: Handoff) {
        let client = self.by_key[&old_key];
        let new_key = self.fresh_key();
        self.by_key.insert(new_key, client);
        let c = &mut self.clients[client.0];
        let old_shard = usize::from(c.shard);
        c.shard = dest.0;
        c.key = new_key;
        let leftover = std::mem::take(&mut c.unread);
        let dest = usize::from(dest.0);
        // Its TLS layer goes with the socket, as the server's `Adopt` carries it.
        if let Some(transport) = self.fx[old_shard].transports.remove(&old_key) {
            self.fx[dest].transports.insert(new_key, transport);
        }
        self.routers[dest].on_adopted(new_key, handoff, &leftover, self.now_ms, &mut self.fx[dest]);
    }

    /// The client stops reading: bytes the server sends stay queued on its conn (the
    /// router sees them in `Effects::queued_bytes`) until `read_some`.
    pub fn pause_reading(&mut self, client: ClientId) {
        self.clients[client.0].paused = true;
    }

    /// The paused client reads up to `max_bytes` of what waits for it (into its output);
    /// when nothing is left waiting, its conn has drained. Returns the bytes read.
    pub fn read_some(&mut self, client: ClientId, max_bytes: usize) -> usize {
        let c = &mut self.clients[client.0];
        let n = max_bytes.min(c.backlog.len());
        let rest = c.backlog.split_off(n);
        let read = std::mem::replace(&mut c.backlog, rest);
        c.out.extend_from_slice(&read);
        let (shard, key, empty) = (usize::from(c.shard), c.key, c.backlog.is_empty());
        let queued = self.fx[shard].queued.entry(key).or_default();
        *queued = queued.saturating_sub(n);
        if empty && n > 0 {
            self.fx[shard].queued.remove(&key);
            self.routers[shard].on_drained(key, self.now_ms, &mut self.fx[shard]);
        }
        self.pump();
        n
    }

    /// Bytes waiting for a paused client.
    pub fn unread_bytes(&self, client: ClientId) -> usize {
        self.clients[client.0].backlog.len()
    }

    /// Models the driver's output cap on every shard (see `RecordingEffects`).
    pub fn set_output_cap(&mut self, max_bytes: usize) {
        for fx in &mut self.fx {
            fx.max_output_bytes = Some(max_bytes);
        }
    }
}

/// Reads `span` of the store's log the way the driver would (pread here).
fn read_span(store: &Store, span: LogSpan) -> Result<Vec<u8>, i32> {
    use std::os::unix::fs::FileExt;
    let Some(file) = store.log_file() else {
        return Err(9); // EBADF: a store without a log has nothing to read
    };
    let mut buf = vec![0; span.len as usize];
    file.read_exact_at(&mut buf, span.offset)
        .map_err(|e| e.raw_os_error().unwrap_or(5))?;
    Ok(buf)
}

fn test_config(shards: u16, adjust: impl FnOnce(&mut RouterConfig)) -> Arc<RouterConfig> {
    let auth = AuthBackend::Token {
        secret: TEST_SECRET.to_vec(),
    };
    let mut config = RouterConfig::new(TEST_DOMAIN, auth);
    config.shards = shards;
    adjust(&mut config);
    Arc::new(config)
}

/// The first `prefix<n>` (n = 0, 1, ...) whose home is `shard` of `shards`.
pub fn user_homed_on(prefix: &str, shard: u16, shards: u16) -> String {
    (0..10_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|user| {
            let jid = Jid::new(Some(user), TEST_DOMAIN, None);
            jid.is_ok_and(|jid| Placement::local(shards).home(&jid).shard == ShardId(shard))
        })
        .unwrap_or_else(|| panic!("no user {prefix}N homed on shard {shard}"))
}
