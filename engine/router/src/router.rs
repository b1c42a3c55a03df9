//! `Router`: the per-shard state machine's public entry points and shared helpers.
//!
//! What it does not do: parse frames (see `stream`, `bind`), answer or route stanzas (see
//! `local`, `routing`), store-and-forward (see `offline`) or stream management (see
//! `sm::elements`); those live in their own modules as further `impl Router` blocks, or as
//! methods on the home layer's `Home` (a field of `Router` beside the conn slab).
//! It never touches sockets, threads or clocks: time comes in as `now_ms` arguments (a
//! monotonic clock of the server's choosing), and wall-clock time, needed only for XEP-0203
//! stamps, as an offset from it set with `set_wall_clock`.
//!
//! Invariants:
//! - every conn in the slab has exactly one timer entry in the wheel until it is closing or has
//!   no deadline left (bound with idle timeout 0); entries are refreshed lazily on expiry.
//! - a conn in `Phase::Bound` is in the directory under its bare JID; leaving `Bound` (closing,
//!   closed) removes it first.
//! - after `Effects::close` the conn is `Closing` and ignores everything until `on_closed`.
//! - `now_ms` is the latest time any entry point was given; deep code reads it from there.

use std::net::IpAddr;
use std::sync::Arc;

use rookery_proto::{Framer, FramerLimits, Jid};
use rookery_store::{Durability, Store, StoreConfig};

use crate::config::RouterConfig;
use crate::effects::{ConnKey, Effects, Handoff};
use crate::errors::{Cause, Fault, SessionEnd, StreamError};
use crate::home::groups::muc::{Rooms, RoomsConfig};
use crate::home::offline::Waiter;
use crate::home::routing::{Envelope, Handled};
use crate::home::Home;
use crate::ids::IdGen;
use crate::location::{Location, Placement, ShardId};
use crate::mail::Mail;
use crate::maps::{HashState, Map};
use crate::random::{SecureRandom, KEY_BYTES};
use crate::replies;
use crate::stats::RouterStats;
use crate::stream::conn::{Conn, ConnSlab, Phase};
use crate::stream::header::Dialect;
use crate::stream::sasl::Sasl;
use crate::stream::throttle::{Budgets, Throttle};
use crate::timers::{TimerEntry, TimerWheel};
use crate::unauth::Unauthenticated;

/// The XMPP state machine of one shard. See the crate docs for the model.
#[derive(Debug)]
pub struct Router {
    pub(crate) config: Arc<RouterConfig>,
    pub(crate) limits: FramerLimits,
    /// The stream layer: every conn of this shard.
    pub(crate) conns: ConnSlab,
    /// The home layer: sessions, store, presence, rooms of the users homed here.
    pub(crate) home: Home,
    pub(crate) wheel: TimerWheel,
    pub(crate) ids: IdGen,
    /// Scratch for bytes the router writes (headers, stream errors, replies); reused, never
    /// shrunk.
    pub(crate) reply: Vec<u8>,
    /// Scratch for stamped stanzas being forwarded (the stream layer stamps a session's
    /// stanzas before the home layer routes them); reused, never shrunk.
    pub(crate) stamp: Vec<u8>,
    due: Vec<TimerEntry>,
    /// Conns not yet authenticated, per source address (`max_unauth_per_address`).
    pub(crate) unauth: Unauthenticated,
    /// The account backend and the SASL exchanges in progress.
    pub(crate) sasl: Sasl,
    /// Failed logins per address and account, and the failure answers that wait.
    pub(crate) throttle: Throttle,
    /// XEP-0114: the handshake digest (hex) each component conn must send, by slot.
    pub(crate) handshakes: Map<u32, [u8; 40]>,
}

impl Router {
    /// A router for shard `shard` of `config.shards` with an in-memory store (durability
    /// `Memory`, default offline quota): nothing survives the process. For tests and tools:
    /// seed 0, so ids and map orders are the same every run (the server passes a seed from
    /// the OS to `with_store_and_seed`).
    ///
    /// # Panics
    /// If `config.domain` is not a valid JID domain (the server validates it at start-up), if
    /// `config.upload` has an invalid domain, secret or URL (the server checks it with
    /// `UploadConfig::issuer`), or if `shard >= config.shards` (a wiring bug).
    pub fn new(config: Arc<RouterConfig>, shard: u16) -> Router {
        Router::with_seed(config, shard, 0)
    }

    /// A router owning `store`, the shard's opened store (any durability), with seed 0 (see
    /// `new`).
    ///
    /// # Panics
    /// As `new`.
    pub fn with_store(config: Arc<RouterConfig>, shard: u16, store: Store) -> Router {
        Router::with_store_and_seed(config, shard, store, 0)
    }

    /// Like `new` with seed `seed`: it decides the stream ids and generated resources, and
    /// keys the router's hash maps (`maps`). The simulator passes one from its PRNG.
    pub fn with_seed(config: Arc<RouterConfig>, shard: u16, seed: u64) -> Router {
        Router::with_store_and_seed(config, shard, memory_store(shard), seed)
    }

    /// Like `with_store` with seed `seed`. The server draws `seed` from the OS at start, so
    /// ids are unpredictable and the maps keep HashDoS resistance.
    pub fn with_store_and_seed(
        config: Arc<RouterConfig>,
        shard: u16,
        store: Store,
        seed: u64,
    ) -> Router {
        Router::assemble(config, seed, shard, store)
    }

    fn assemble(config: Arc<RouterConfig>, seed: u64, shard: u16, store: Store) -> Router {
        let ids = IdGen::with_seed(shard, seed);
        // Another stream than the ids' (which mix the seed with a counter).
        let hash = HashState::from_seed(!seed);
        // Invariant: the server validated and lowercased the domain before building config.
        let domain = Jid::new(None, &config.domain, None).expect("RouterConfig::domain is valid");
        let shards = config.shards.max(1);
        assert!(
            shard < shards,
            "shard {shard} out of range for {shards} shards"
        );
        // Invariant: the server validated the groups domain (and RouterConfig::new derives a
        // valid one from a valid domain).
        let service = Jid::new(None, &config.groups_domain, None)
            .expect("RouterConfig::groups_domain is valid");
        let placement = match &config.cluster {
            Some(cluster) => {
                // Invariant: the server built the table with this node's shard count.
                assert_eq!(
                    cluster.placement.shards(),
                    shards,
                    "the cluster placement's shard count for this node differs from config.shards"
                );
                cluster.placement.clone()
            }
            None => Placement::local(shards),
        };
        let location = Location {
            node: placement.me(),
            shard: ShardId(shard),
        };
        let rooms_config = RoomsConfig {
            service,
            local_domain: config.domain.as_str().into(),
            max_members: config.group_max_members,
            max_rooms: config.max_rooms_per_shard,
            max_rooms_per_user: config.max_rooms_per_user,
            placement: placement.clone(),
            location,
            default_broadcast: config.group_presence_broadcast,
            hash,
        };
        let rooms = Rooms::load(rooms_config, &store);
        let home = Home::new(
            &config,
            (domain, location, placement),
            store,
            rooms,
            (hash, SecureRandom::from_seed(seed)),
        );
        let sasl = Sasl::new(&config.auth, hash);
        let throttle = Throttle::new(Budgets::of(&config), hash);
        Router {
            limits: FramerLimits {
                max_stanza_bytes: config.max_stanza_bytes,
            },
            config,
            conns: ConnSlab::new(hash),
            home,
            wheel: TimerWheel::new(0),
            ids,
            reply: Vec::new(),
            stamp: Vec::new(),
            due: Vec::new(),
            unauth: Unauthenticated::new(hash),
            sasl,
            throttle,
            handshakes: hash.map(),
        }
    }

    /// Why this shard's message archive did not open (configured but unusable), if so.
    pub fn archive_error(&self) -> Option<&str> {
        self.home.mam_error.as_deref()
    }

    /// The counters of this shard's message archive, when it is on.
    pub fn archive_stats(&self) -> Option<rookery_store::archive::ArchiveStats> {
        self.home.mam.as_ref().map(|m| m.archive.stats())
    }

    /// Tells the router that monotonic `now_ms` is Unix time `unix_ms` (wall clock). Used
    /// only for XEP-0203 stamps of stored messages; call once at start (and again whenever
    /// the wall clock may have been stepped). Until then stamps count from the Unix epoch.
    pub fn set_wall_clock(&mut self, now_ms: u64, unix_ms: u64) {
        self.home.wall_offset_ms = unix_ms as i64 - now_ms as i64;
    }

    /// Keys the router's generator of unpredictable bytes (SCRAM nonces, upload slot tokens)
    /// with `key`: the server draws it from the OS for every router. Until then the key is
    /// derived from the seed (reproducible: right for tests and the simulator only).
    pub fn set_random_key(&mut self, key: &[u8; KEY_BYTES]) {
        self.home.random = SecureRandom::from_key(key);
        let resume_key = self
            .home
            .random
            .derive_key(crate::home::SM_RESUME_KEY_LABEL);
        self.home.sm.set_resume_key(&resume_key);
    }

    pub(crate) fn advance_clock(&mut self, now_ms: u64) {
        self.home.now_ms = self.home.now_ms.max(now_ms);
    }

    /// A new conn accepted by this shard from `peer` (its source address, when known).
    /// Nothing is sent until the client's header, unless the address holds
    /// `max_unauth_per_address` conns not yet authenticated: then the stream is closed at
    /// once with policy-violation. The conn's framing (RFC 6120, or RFC 7395 over WebSocket)
    /// is read from `Effects::transport` here, once.
    pub fn on_connect(
        &mut self,
        conn: ConnKey,
        peer: Option<IpAddr>,
        now_ms: u64,
        fx: &mut impl Effects,
    ) {
        self.advance_clock(now_ms);
        let framer = Framer::new(self.limits);
        let mut state = Conn::new(conn, framer, now_ms);
        state.dialect = Dialect::of(fx.transport(conn).framing);
        let slot = self.insert_conn(state, now_ms);
        let Some(peer) = peer else {
            return;
        };
        if !self
            .unauth
            .admit(slot, peer, self.config.max_unauth_per_address)
        {
            self.home.stats.unauth_refusals += 1;
            self.stream_error(slot, StreamError::PolicyViolation.by(Cause::Config), fx);
        }
    }

    /// Bytes received on `conn`.
    pub fn on_data(&mut self, conn: ConnKey, data: &[u8], now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        let Some(slot) = self.conns.slot_of(conn) else {
            return;
        };
        let Some(state) = self.conns.get_mut(slot) else {
            return;
        };
        if state.phase == Phase::Closing {
            return;
        }
        state.active_ms = now_ms;
        self.feed(slot, data, fx);
        self.after_call(fx);
    }

    /// The conn is gone (peer closed, error, or after our close). Ends its session, or
    /// detaches it when it enabled XEP-0198 resumption.
    pub fn on_closed(&mut self, conn: ConnKey, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        if let Some(slot) = self.conns.slot_of(conn) {
            self.leave_directory(slot, SessionEnd::Detach, fx);
            self.conns.remove(slot);
            self.home.sessions.remove(slot);
            // What it had written and not confirmed stays in the store.
            self.home.deliveries.remove(slot);
            self.unauth.release(slot);
            self.sasl.forget(slot);
            self.throttle.forget(slot);
        }
        self.after_call(fx);
    }

    /// The conn's output queue became empty: every byte written to it is in the kernel. Its
    /// stored messages are delivered (deleted, for a session without XEP-0198) and its
    /// backlog continues (see `delivery`).
    pub fn on_drained(&mut self, conn: ConnKey, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        let Some(slot) = self.conns.slot_of(conn) else {
            return;
        };
        self.home.drained(&self.conns, slot, fx);
        self.continue_probes(fx);
        self.after_call(fx);
    }

    /// A log read asked for with `Effects::read_log(tag, ..)` returned: the record's bytes, or
    /// the errno. The stored message it was for is written if its session is still there.
    pub fn on_log_read(
        &mut self,
        tag: u64,
        result: Result<&[u8], i32>,
        now_ms: u64,
        fx: &mut impl Effects,
    ) {
        self.advance_clock(now_ms);
        self.home.read_returned(&self.conns, tag, result, fx);
        self.after_call(fx);
    }

    /// Mail from another shard.
    pub fn on_mail(&mut self, mail: Mail, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        self.home.stats.mail_in += 1;
        match mail {
            Mail::Deliver {
                to,
                from,
                kind,
                ty,
                stanza,
                ack,
            } => {
                let envelope = Envelope {
                    to: &to,
                    from: &from,
                    kind,
                    ty,
                    stanza: &stanza,
                };
                let handled = if to.domain() == self.home.rooms.service().domain() {
                    self.room_stanza(&envelope, ack, fx)
                } else {
                    self.home.deliver_home(&self.conns, &envelope, ack, fx)
                };
                // Every Deliver carrying an ack is answered exactly once (see `effects`).
                if let (Handled::Now, Some(ack)) = (handled, ack) {
                    self.release(ack, fx);
                }
            }
            Mail::Committed(ack) => self.home.sm.mark_handled(ack.session, ack.stanza, fx),
            Mail::Fanout(fanout) => self.deliver_fanout(&fanout, fx),
            Mail::NodeFanout(fanout) => self.on_node_fanout(&fanout, fx),
            Mail::Gathered { gather, refused } => self.on_gathered(gather.id, refused, fx),
        }
        self.after_call(fx);
    }

    /// A conn handed over by another shard arrives here under a new key.
    pub fn on_adopted(
        &mut self,
        conn: ConnKey,
        handoff: Handoff,
        leftover: &[u8],
        now_ms: u64,
        fx: &mut impl Effects,
    ) {
        self.advance_clock(now_ms);
        self.home.stats.handoffs_in += 1;
        self.adopt(conn, handoff, leftover, now_ms, fx);
        self.after_call(fx);
    }

    /// Timers: auth and idle timeouts, XEP-0198 request pacing and resumption windows, and the
    /// store's retry pacing after a failed write (so the next `begin_commit` retries). Call at
    /// least every ~100 ms or at next_deadline_ms.
    pub fn on_tick(&mut self, now_ms: u64, fx: &mut impl Effects) {
        self.advance_clock(now_ms);
        self.home.store.retry_due(now_ms);
        self.sm_tick(fx);
        self.expire_mail(fx);
        self.home.departures.expire(now_ms);
        // Before the conn timers: a resumption failing now restarts its conn's bind window.
        self.finish_resumes(fx);
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(now_ms, &mut due);
        for entry in due.drain(..) {
            let Some(conn) = self.conns.resolve(entry) else {
                continue;
            };
            match self.deadline_ms(entry.slot, conn) {
                None => {}
                Some(deadline_ms) if deadline_ms <= now_ms => {
                    self.stream_error(entry.slot, StreamError::ConnectionTimeout, fx);
                }
                Some(deadline_ms) => self.wheel.insert(deadline_ms, entry),
            }
        }
        self.due = due;
        self.answer_delayed_failures(fx);
        self.home.push_tick(&self.conns, fx);
        self.continue_probes(fx);
        self.after_call(fx);
    }

    /// When `on_tick` next has work (at most one timer slot late); None when no timer is set.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        [
            self.wheel.next_deadline_ms(),
            self.home.sm.next_deadline_ms(),
            self.home.deadlines.next_deadline_ms(),
            self.throttle.next_deadline_ms(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Graceful stop: every stream gets `<system-shutdown/>` + `</stream:stream>` and a close.
    pub fn shutdown(&mut self, fx: &mut impl Effects) {
        for slot in self.conns.live_slots() {
            self.stream_error(slot, StreamError::SystemShutdown, fx);
        }
    }

    pub fn stats(&self) -> RouterStats {
        RouterStats {
            conns: self.conns.len() as u64,
            sessions: self.home.directory.sessions() as u64,
            detached_sessions: self.home.sm.detached() as u64,
            stored_messages: self.home.store.live_messages() as u64,
            backlog_sessions: self.home.deliveries.backlogs() as u64,
            unauth_conns: self.unauth.len() as u64,
            auth_throttle_entries: self.throttle.entries() as u64,
            auth_throttle_evictions: self.throttle.evictions,
            log_reads_in_flight: self.home.deliveries.reads_in_flight() as u64,
            roster_items: self.home.store.kv_len(crate::tables::ROSTER) as u64,
            dup_window_keys: self.home.dups.len() as u64,
            dup_window_bytes: self.home.dups.bytes() as u64,
            ..self.home.stats
        }
    }

    /// User-space heap bytes held by conns and sessions: slab, key index and directory tables
    /// by capacity (entry size + 1 control byte), each conn's JID and framer buffer, the timer
    /// wheel, stream management state, commit waiters and the scratch buffers. Allocator
    /// overhead per block is not counted, nor the store (see `Store::stats`). O(conns).
    pub fn heap_bytes(&self) -> usize {
        self.heap_breakdown().iter().map(|&(_, bytes)| bytes).sum()
    }

    /// `heap_bytes` per table, named: where the memory of idle sessions goes (see the
    /// `memory_per_idle_session` tests). O(conns), like `heap_bytes`.
    pub fn heap_breakdown(&self) -> [(&'static str, usize); 15] {
        let (conn_slab, conn_index, conn_owned) = self.conns.heap_parts();
        let (sm_slots, sm_timers, sm_rest) = self.home.sm.heap_parts();
        let scratch = self.reply.capacity()
            + self.home.bounce.capacity()
            + self.stamp.capacity()
            + self.home.delayed.capacity()
            + self.due.capacity() * std::mem::size_of::<TimerEntry>();
        [
            ("conn slab", conn_slab),
            ("conn index", conn_index),
            ("conn jid+framer", conn_owned),
            ("directory", self.home.directory.heap_bytes()),
            ("wheel", self.wheel.heap_bytes()),
            ("sm slots", sm_slots),
            ("sm timers", sm_timers),
            ("sm other", sm_rest),
            (
                "waiters",
                self.home.waiters.capacity() * std::mem::size_of::<Waiter>(),
            ),
            ("scratch", scratch),
            ("deliveries", self.home.deliveries.heap_bytes()),
            ("sessions", self.home.sessions.heap_bytes()),
            ("unauth", self.unauth.heap_bytes()),
            ("sasl", self.sasl.heap_bytes()),
            ("throttle", self.throttle.heap_bytes()),
        ]
    }

    /// Bytes of XEP-0198 unacked stanzas kept in memory for this shard's sessions (stored
    /// messages are kept as ids). O(sessions): read it periodically, like `heap_bytes`.
    pub fn sm_kept_bytes(&self) -> usize {
        self.home.sm.kept_bytes()
    }

    /// The shard index of this router.
    pub fn shard(&self) -> u16 {
        self.home.location.shard.0
    }

    /// Where this router is (its node and shard).
    pub fn location(&self) -> Location {
        self.home.location
    }

    /// Where every bare JID is homed, as this router decides it.
    pub fn placement(&self) -> &Placement {
        &self.home.placement
    }

    /// The served domain.
    /// The longest stanza a conn may send (`--max-stanza-bytes`): a transport layer sizes its
    /// messages by it.
    pub fn max_stanza_bytes(&self) -> usize {
        self.limits.max_stanza_bytes
    }

    pub fn domain(&self) -> &Jid {
        &self.home.domain
    }

    /// Stores a conn and arms its timer; returns its slot.
    pub(crate) fn insert_conn(&mut self, conn: Conn, now_ms: u64) -> u32 {
        if let Some(old) = self.conns.slot_of(conn.key) {
            // The server reused a key before on_closed: drop the stale conn quietly.
            if let Some((full, _)) = self.leave_directory_quietly(old, SessionEnd::Detach) {
                self.home.presences.take(full.as_str());
            }
            self.conns.remove(old);
            self.home.sessions.remove(old);
            self.unauth.release(old);
            self.sasl.forget(old);
            self.throttle.forget(old);
        }
        let slot = self.conns.insert(conn);
        self.arm_timer(slot, now_ms);
        slot
    }

    fn arm_timer(&mut self, slot: u32, now_ms: u64) {
        let Some(deadline_ms) = self.conns.get(slot).and_then(|c| self.deadline_ms(slot, c)) else {
            return;
        };
        self.wheel.restart_if_empty(now_ms);
        self.wheel.insert(deadline_ms, self.conns.timer_entry(slot));
    }

    /// The conn's next deadline: auth (until bound) and idle (if enabled), whichever is first.
    fn deadline_ms(&self, slot: u32, conn: &Conn) -> Option<u64> {
        if conn.phase == Phase::Closing {
            return None;
        }
        let idle_ms = self.config.idle_timeout_ms;
        let idle = (idle_ms > 0).then(|| conn.active_ms.saturating_add(idle_ms));
        // A client waiting for `<resumed/>` is not late: the wait's own bound ends it first.
        let waiting = self.home.sessions.pending(slot);
        let waiting_ms = waiting.map_or(0, |r| r.deadline_ms);
        let auth = !matches!(conn.phase, Phase::Bound | Phase::Component);
        let auth = auth.then(|| {
            let window_ms = conn
                .connected_ms
                .saturating_add(self.config.auth_timeout_ms);
            window_ms.max(waiting_ms)
        });
        match (idle, auth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends a stream error (after our header, if none went out yet) and closes the conn.
    pub(crate) fn stream_error(
        &mut self,
        slot: u32,
        fault: impl Into<Fault>,
        fx: &mut impl Effects,
    ) {
        let fault = fault.into();
        self.stream_error_ending(slot, fault, fault.error.end(), fx);
    }

    /// `stream_error`, with what becomes of the session said by the caller.
    pub(crate) fn stream_error_ending(
        &mut self,
        slot: u32,
        fault: Fault,
        end: SessionEnd,
        fx: &mut impl Effects,
    ) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        self.reply.clear();
        let dialect = conn.dialect;
        if !conn.header_sent {
            let id = self.ids.stream_id();
            dialect.open(&mut self.reply, &id, self.home.domain.as_str());
        }
        replies::stream_error(&mut self.reply, dialect, &fault);
        fx.send(conn.key, &self.reply);
        fx.close(conn.key, fault.cause);
        self.home.stats.stream_errors += 1;
        self.leave_directory(slot, end, fx);
    }

    /// Like `stream_error`, with the error element of `fault` (and `</stream:stream>`) already
    /// written into `self.reply` by the caller. For bound conns only, whose header went out
    /// long ago.
    pub(crate) fn stream_error_raw(&mut self, slot: u32, fault: Fault, fx: &mut impl Effects) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        fx.send(conn.key, &self.reply);
        fx.close(conn.key, fault.cause);
        self.home.stats.stream_errors += 1;
        self.leave_directory(slot, fault.error.end(), fx);
    }

    /// The end of every entry point: answers the resumptions that became answerable (see
    /// `resume`), then closes the conns whose XEP-0198 queue overflowed.
    pub(crate) fn after_call(&mut self, fx: &mut impl Effects) {
        self.finish_resumes(fx);
        self.fill_backlogs(fx);
        self.close_doomed(fx);
    }

    /// Writes what the backlogs that became due during this call have room for.
    fn fill_backlogs(&mut self, fx: &mut impl Effects) {
        // A fill makes nothing else due in the same call (reads and drains come later), so
        // one pass suffices; the loop only guards against that changing.
        for _ in 0..4 {
            let due = self.home.deliveries.take_due();
            if due.is_empty() {
                return;
            }
            for slot in due {
                self.home.fill(&self.conns, slot, fx);
            }
        }
    }

    /// Closes the conns whose XEP-0198 queue overflowed during the last call.
    pub(crate) fn close_doomed(&mut self, fx: &mut impl Effects) {
        while let Some(slot) = self.home.doomed.pop() {
            self.stream_error(slot, StreamError::PolicyViolation, fx);
        }
    }

    /// Answers the client's `</stream:stream>` with ours and closes.
    pub(crate) fn close_stream(&mut self, slot: u32, fx: &mut impl Effects) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        self.reply.clear();
        conn.dialect.close(&mut self.reply);
        fx.send(conn.key, &self.reply);
        fx.close(conn.key, Cause::Peer);
        // XEP-0198 7: a cleanly closed stream cannot be resumed.
        self.leave_directory(slot, SessionEnd::Terminate, fx);
    }

    /// Marks the conn closing, takes its session (if any) out of the directory, and ends or
    /// detaches its stream management session as `end` says. A session that is not detached
    /// for resumption ends its presence (contacts and rooms hear unavailable).
    pub(crate) fn leave_directory(&mut self, slot: u32, end: SessionEnd, fx: &mut impl Effects) {
        if let Some((full, was_available)) = self.leave_directory_quietly(slot, end) {
            self.end_presence(&full, None, was_available, fx);
        }
    }

    /// `leave_directory` without telling anyone: returns the full JID whose presence ended
    /// and whether the session was available.
    fn leave_directory_quietly(&mut self, slot: u32, end: SessionEnd) -> Option<(Jid, bool)> {
        let conn = self.conns.get_mut(slot)?;
        if conn.phase == Phase::Component {
            if let Some(name) = &conn.jid {
                self.home.components.detach(name.domain(), conn.key);
            }
        }
        self.handshakes.remove(&slot);
        let was_bound = conn.phase == Phase::Bound;
        conn.phase = Phase::Closing;
        // Nothing more is written to it: what it had not confirmed stays in the store.
        self.home.deliveries.remove(slot);
        let key = conn.key;
        // The session's state goes with it (detached state lives on in `SmTable`).
        let pending = self.home.sessions.take_pending(slot);
        let held = self.home.sessions.take_held(slot);
        let session = self.home.sessions.remove(slot);
        let presence = session
            .as_ref()
            .map_or((false, 0), |s| (s.available, s.priority));
        let sm = session.and_then(|s| s.sm());
        let full = conn.jid.clone().filter(|_| was_bound);
        if let Some(jid) = &full {
            self.home.directory.remove(jid.bare_str(), slot);
            self.home.note_session_end(jid);
        }
        let detached = match (sm, &full) {
            (Some(token), Some(jid)) => self.end_sm(token, end, (jid, presence)),
            (Some(token), None) => {
                // Not reached (`<enable/>` needs a bound conn, which has its JID); without
                // one there is nothing to resume.
                self.home.sm.remove(token);
                false
            }
            (None, _) => false,
        };
        if let (true, Some(token), Some(held)) = (detached, sm, held) {
            self.home.keep_held_for_resume(token, held);
        }
        if let Some(pending) = pending {
            // The resumption is given up; the session waits for another one.
            let until_ms = self
                .home
                .now_ms
                .saturating_add(self.config.resume_timeout_ms);
            self.home.sm.abandon_resume(pending.token, key, until_ms);
        }
        full.filter(|_| !detached && end != SessionEnd::Resumed)
            .map(|jid| (jid, presence.0))
    }
}

/// The store of `new` and `with_seed`: in memory, nothing to open.
pub(crate) fn memory_store(shard: u16) -> Store {
    let config = StoreConfig::new("", shard).with_durability(Durability::Memory);
    // Invariant: a Memory store touches no file, so opening it cannot fail.
    Store::open(config).expect("a Memory store opens without I/O")
}
