//! One worker thread: a driver, a slab of simulated clients, their timers, their results.
//!
//! The thread owns every conn of its clients (no per-client thread or task): the driver
//! delivers completions to [`Worker`] (the handler), which feeds bytes to each client's
//! state machine and sends what it answers. Between turns the worker starts the connects
//! that the ramp says are due and fires due timers from one binary heap (connect timeout,
//! login timeout, next message), then waits in the driver until the earliest of them.
//!
//! Phases, driven by [`Shared`]: ramp (connect everyone at this thread's share of
//! `--connect-rate`), steady (from the coordinator's start time for `--duration`; in chat,
//! messages are due on each client's open-loop schedule; in storm, every client drops and
//! reconnects in a loop, see `storm`; in offline the ramp is phase 1 and the steady phase
//! is phase 2, see `offline`; presence and group settle a client only once its setup is done,
//! see `presence` and `group`), drain (no new messages for `--drain-ms`),
//! closing (every stream ends with `</stream:stream>`, bounded by [`CLOSE_GRACE_NS`]).
//!
//! Invariants: a slot's conn id maps back to it only while the slot holds that conn; timers
//! are never cancelled, they carry the slot's connect attempt number and are dropped when it
//! no longer matches (a storm reconnects one slot many times) or the state is not the one
//! they guard; client `index` belongs to process `index % P` (see [`Part`]) and, inside it,
//! to thread `(index / P) % threads`.
//! What it does not do: reconnect failed clients outside a storm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rookery_io::{ConnId, Driver, Linger, Ops};
use rookery_proto::FramerLimits;

use crate::accounting::Ledger;
use crate::auth::Account;
use crate::cli::{RunConfig, Scenario, SmArg};
use crate::client::sm::SmPolicy;
use crate::client::{Client, LoginKind, Profile};
use crate::live::{Counter, Shared, PUBLISH_INTERVAL_NS};
use crate::metrics::{ErrorKind, Histograms};
use crate::offline::OfflinePlan;
use crate::run::Part;
use crate::schedule::{MessageSchedule, Pacer, Ramp, Rng};
use crate::security::{TlsConns, TlsOps};
use crate::sys::monotonic_ns;
use crate::targets::Targets;
use crate::transport::LayeredHandler;
use crate::wire::Receipt;

mod close;
mod events;
mod fan;
mod group;
mod offline;
mod presence;
mod report;
mod send;
mod slot;
mod storm;
#[cfg(test)]
pub(crate) mod testing;
use events::connect_error_kind;
use fan::{fan_state, Fan};
pub use report::WorkerReport;
use slot::{Note, Slot, SlotState};

/// How long closing waits for the server to answer our `</stream:stream>` before giving up.
pub const CLOSE_GRACE_NS: u64 = 3_000_000_000;
/// After aborting the stragglers, how long the driver gets to report their closes.
const ABORT_GRACE_NS: u64 = 500_000_000;
/// Longest wait in the driver, so phase changes and publishing are noticed promptly.
pub(crate) const MAX_WAIT_NS: u64 = 50_000_000;
/// Timers fired per loop turn; the rest wait one turn so I/O keeps flowing when behind.
const MAX_TIMERS_PER_TURN: usize = 65_536;
/// Connects started per loop turn, for the same reason.
const MAX_CONNECTS_PER_TURN: usize = 4_096;
/// When a message could not be queued (peer's output queue full), retry after this long.
const SEND_RETRY_NS: u64 = 1_000_000;
/// Tries to find an online peer before a message is skipped.
const PEER_TRIES: usize = 8;
/// Largest stanza accepted from the server.
const MAX_STANZA_BYTES: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    ConnectTimeout,
    LoginTimeout,
    Send,
    /// Storm: the client's `--online-ms` is over; drop it.
    Drop,
    /// Offline: the sender's wait for acks (`--drain-ms` after its last send) is over.
    AckWait,
    /// Presence and group: the client's `--setup-ms` is over.
    SetupTimeout,
    /// `--keepalive`: the client's next whitespace keepalive is due.
    Keepalive,
    /// Group: the next message of an owned group is due (the timer's slot field holds the
    /// group's index among the worker's owned groups, and its attempt is 0).
    GroupSend,
}

/// (due ns, slot, the slot's connect attempt when armed, kind).
type Timer = Reverse<(u64, u32, u16, TimerKind)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunPhase {
    Ramp,
    Steady {
        start_ns: u64,
        stop_send_ns: u64,
        finish_ns: u64,
    },
    /// `aborted`: the grace ran out and the remaining conns were aborted; the loop ends at
    /// the (extended) deadline whatever the driver still reports.
    Closing {
        deadline_ns: u64,
        aborted: bool,
    },
}

/// The handler and everything it owns.
pub struct Worker<'a> {
    cfg: &'a RunConfig,
    shared: &'a Shared,
    thread: usize,
    slots: Vec<Slot>,
    /// Driver conn index -> slot, `u32::MAX` when free.
    conn_slots: Vec<u32>,
    timers: BinaryHeap<Timer>,
    ramp: Ramp,
    next_connect: usize,
    /// Slots `..connect_end` may connect in this phase (offline phase 1: the senders only).
    connect_end: usize,
    /// The slot the current ramp started with (offline phase 2 ramps the recipients anew).
    ramp_first: usize,
    offline: Option<OfflinePlan>,
    /// Offline: recipient slots not yet settled (online or failed).
    recipients_left: usize,
    /// Storm: slots waiting for a reconnect, oldest first, and the pace they may go at.
    reconnects: std::collections::VecDeque<u32>,
    pacer: Pacer,
    /// Storm: true from the storm start until `--duration` is over (chat: until sending
    /// stops).
    storming: bool,
    /// Chat with `--storm-fraction`: when its storm starts, until it has.
    chat_storm_due_ns: Option<u64>,
    receipt: Receipt,
    sm_policy: SmPolicy,
    /// SASL mechanisms and STARTTLS of every client (`--sasl`, `--tls`).
    login: LoginKind,
    /// The worker's TLS (taken out while a `TlsOps` borrows it, see `run`).
    tls: TlsConns,
    /// Slots whose server said `<proceed/>` during the event being handled: their TLS
    /// session starts once the handler is done with the client (see `events`).
    starttls_ready: Vec<usize>,
    profile: Profile,
    fan: Fan,
    /// Where each client connects (`--server`, its home node, a redirect's target).
    targets: Targets,
    sources: &'a [IpAddr],
    schedule: Option<MessageSchedule>,
    phase: RunPhase,
    accounting_open: bool,
    /// This run's id, carried by every probe.
    run_id: u32,
    rng: Rng,
    report: WorkerReport,
    recent: Histograms,
    online: u64,
    settled: u64,
    attempts: u64,
    sent: u64,
    /// Counters are published at `go + k * PUBLISH_INTERVAL_NS`, so a second's counters are
    /// cut at the same instant in every thread and process.
    next_publish_ns: u64,
    out: Vec<u8>,
    notes: Vec<Note>,
}

/// Runs one worker (thread `thread` of the process running `part`) to the end of the run.
pub fn run<D: Driver>(
    mut driver: D,
    cfg: &RunConfig,
    shared: &Shared,
    (part, thread): (Part, usize),
    sources: &[IpAddr],
) -> std::io::Result<WorkerReport> {
    // Wait until every worker has its driver, so the ramp starts together and the
    // coordinator's memory baseline includes every driver's fixed buffers.
    let Some(go_ns) = shared.ready_and_wait() else {
        return Ok(WorkerReport::default());
    };
    let mut worker = Worker::new(cfg, shared, (part, thread), sources, go_ns);
    let base = crate::security::base_config(cfg).map_err(std::io::Error::other)?;
    worker.tls = TlsConns::new(cfg, base.as_ref(), worker.slots.len());
    let mut ws = crate::transport::worker_layers(cfg, thread);
    loop {
        let now = monotonic_ns();
        // The worker's TLS, then its WebSocket framing, sit between it and the driver's ops
        // for this turn's calls (a run has one or the other; see `transport`).
        let mut tls = std::mem::take(&mut worker.tls);
        let fan_wake = {
            let mut inner = driver.ops();
            let mut framed = ws.ops(&mut inner);
            let io = &mut TlsOps {
                inner: &mut framed,
                tls: &mut tls,
            };
            worker.advance_phase(io, now);
            worker.fan_turn(io, now)
        };
        if let RunPhase::Closing {
            deadline_ns,
            aborted,
        } = worker.phase
        {
            if driver.open_conns() == 0 || (now >= deadline_ns && aborted) {
                worker.tls = tls;
                break;
            }
        }
        {
            let mut inner = driver.ops();
            let mut framed = ws.ops(&mut inner);
            let io = &mut TlsOps {
                inner: &mut framed,
                tls: &mut tls,
            };
            if let RunPhase::Closing { deadline_ns, .. } = worker.phase {
                if now >= deadline_ns {
                    worker.abort_remaining(io, now);
                }
            }
            worker.start_due_connects(io, now);
            worker.start_due_reconnects(io, now);
            worker.fire_timers(io, now);
        }
        worker.tls = tls;
        worker.publish(now, false);
        let wake_ns = worker.next_wake_ns(now).min(fan_wake.unwrap_or(u64::MAX));
        let mut handler = LayeredHandler {
            inner: &mut worker,
            ws: &mut ws,
        };
        driver.turn(
            Some(Duration::from_nanos(wake_ns.saturating_sub(now))),
            &mut handler,
        )?;
    }
    worker.publish(monotonic_ns(), true);
    Ok(worker.finish())
}

impl<'a> Worker<'a> {
    fn new(
        cfg: &'a RunConfig,
        shared: &'a Shared,
        (part, thread): (Part, usize),
        sources: &'a [IpAddr],
        now: u64,
    ) -> Self {
        let threads = cfg.threads as u32;
        let sm_policy = match cfg.stream_management {
            SmArg::On => SmPolicy::EnableWhenOffered,
            SmArg::Off => SmPolicy::Off,
        };
        let profile = match cfg.scenario {
            Scenario::Presence => Profile::Roster,
            Scenario::Group => Profile::Group,
            _ => Profile::Chat,
        };
        // Process `part.index` owns part.index, part.index + P, ...; its threads take turns.
        let first = part.index + part.of * thread as u32;
        let stride = (part.of * threads) as usize;
        let targets = worker_targets(cfg);
        let login = LoginKind {
            mechanisms: crate::security::mechanisms(cfg.security.sasl),
            starttls: cfg.security.tls == crate::cli::TlsArg::Starttls,
        };
        let slots: Vec<Slot> = (first..cfg.clients)
            .step_by(stride)
            .map(|index| {
                let mut slot = Slot::new(index, new_client(sm_policy, login));
                slot.target = targets.first(index);
                slot
            })
            .collect();
        let local = |c: u32| {
            let k = c.checked_sub(first)? as usize;
            k.is_multiple_of(stride).then_some(k / stride)
        };
        let fan = fan_state(cfg, slots.len(), local);
        let share = cfg.connect_rate / f64::from(threads);
        let offline = OfflinePlan::of(cfg);
        // The ledger keeps a row per possible sender: none needed when nobody sends (hold).
        let senders = match (cfg.scenario, offline) {
            (_, Some(plan)) => plan.senders,
            (Scenario::Chat | Scenario::Presence | Scenario::Group, None) => cfg.ledger_rows(),
            _ => 0,
        };
        // Offline: slots are in index order, so the senders come first.
        let connect_end = offline.map_or(slots.len(), |plan| {
            slots.iter().take_while(|s| plan.is_sender(s.index)).count()
        });
        let recipients_left = slots.len() - connect_end;
        let receipt_senders = if cfg.receipts { senders } else { 0 };
        Worker {
            cfg,
            shared,
            thread,
            ramp: Ramp::new(now, share),
            next_connect: 0,
            connect_end,
            ramp_first: 0,
            offline,
            recipients_left,
            reconnects: std::collections::VecDeque::new(),
            pacer: Pacer::new(cfg.reconnect_rate.map(|r| r / f64::from(threads))),
            storming: false,
            chat_storm_due_ns: None,
            receipt: if cfg.receipts {
                Receipt::Request
            } else {
                Receipt::None
            },
            sm_policy,
            login,
            tls: TlsConns::default(),
            starttls_ready: Vec::new(),
            profile,
            fan,
            targets,
            conn_slots: Vec::new(),
            timers: BinaryHeap::with_capacity(slots.len()),
            slots,
            sources,
            // Per client; a group's schedule is the group's (see `group`).
            schedule: (cfg.scenario.sends() && cfg.scenario != Scenario::Group)
                .then(|| MessageSchedule::new(cfg.rate, cfg.pattern)),
            phase: RunPhase::Ramp,
            accounting_open: true,
            run_id: cfg.run_id,
            rng: Rng::new(cfg.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            report: WorkerReport {
                // Fan-out receipts are numbered seq * fan-out + position (see `fanout`).
                ledger: Ledger::new(senders, cfg.max_seq() * cfg.per_change()),
                receipts: Ledger::new(receipt_senders, cfg.max_seq()),
                ..WorkerReport::default()
            },
            recent: Histograms::default(),
            online: 0,
            // Offline recipients wait for phase 2: phase 1 (the ramp) is settled without them.
            settled: recipients_left as u64,
            attempts: 0,
            sent: 0,
            next_publish_ns: now + PUBLISH_INTERVAL_NS,
            out: Vec::with_capacity(4096),
            notes: Vec::new(),
        }
    }

    fn account(&self, index: u32) -> Account<'a> {
        Account {
            domain: &self.cfg.domain,
            user_prefix: &self.cfg.user_prefix,
            number: u64::from(index) + 1,
            auth: &self.cfg.auth,
        }
    }

    /// Moves ramp -> steady -> closing as the coordinator and the clock say.
    fn advance_phase<O: Ops>(&mut self, io: &mut O, now: u64) {
        match self.phase {
            RunPhase::Ramp => {
                let Some(start) = self.shared.steady_start() else {
                    return;
                };
                if self.offline.is_some() {
                    return self.start_recipients(start);
                }
                // Presence: the initial presences first, the changes after --probe-ms.
                let probe_ns = self.fan.presence_mut().map_or(0, |p| p.probe_ns());
                // Chat: `--hold-first` idles every session before the first messages.
                let measure_ns = start + probe_ns + self.cfg.hold_first_ms * 1_000_000;
                self.chat_storm_due_ns = self
                    .cfg
                    .chat_storm
                    .map(|storm| measure_ns + storm.at_ms * 1_000_000);
                let stop_send_ns = measure_ns + self.cfg.duration_ms * 1_000_000;
                let drain_ns = if self.cfg.scenario.sends() {
                    self.cfg.drain_ms * 1_000_000
                } else {
                    0
                };
                self.phase = RunPhase::Steady {
                    start_ns: start,
                    stop_send_ns,
                    finish_ns: stop_send_ns + drain_ns,
                };
                self.schedule_first_messages(measure_ns);
                self.presence_steady(start, measure_ns);
                self.group_steady(start);
            }
            RunPhase::Steady {
                finish_ns: u64::MAX,
                ..
            } if self.offline.is_some() && !self.shared.aborted() => self.maybe_end_drain(now),
            RunPhase::Steady { stop_send_ns, .. } if self.storming && now >= stop_send_ns => {
                self.storming = false;
            }
            RunPhase::Steady { finish_ns, .. } if now >= finish_ns || self.shared.aborted() => {
                self.begin_closing(io, now);
            }
            RunPhase::Steady {
                start_ns,
                stop_send_ns,
                ..
            } => {
                // Not when the phase is announced but on the first turn at or after its start,
                // so the storm starts at the common instant (the coordinator sets it ahead).
                let due = (start_ns..stop_send_ns).contains(&now);
                if self.cfg.scenario == Scenario::Storm && !self.storming && due {
                    self.start_storm(io, now);
                }
                if let (Some(at), Some(storm)) = (self.chat_storm_due_ns, self.cfg.chat_storm) {
                    if now >= at {
                        self.chat_storm_due_ns = None;
                        self.start_chat_storm(io, storm, now);
                    }
                }
            }
            RunPhase::Closing { .. } => {}
        }
        if self.shared.aborted() && self.phase == RunPhase::Ramp {
            self.begin_closing(io, now);
        }
    }

    fn start_due_connects<O: Ops>(&mut self, io: &mut O, now: u64) {
        let mut started = 0;
        while self.next_connect < self.connect_end
            && started < MAX_CONNECTS_PER_TURN
            && self.ramp.due((self.next_connect - self.ramp_first) as u64) <= now
        {
            let i = self.next_connect;
            self.next_connect += 1;
            started += 1;
            self.connect(io, i, now);
        }
    }

    fn connect<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let slot = &mut self.slots[i];
        let source = (!self.sources.is_empty())
            .then(|| SocketAddr::new(self.sources[slot.index as usize % self.sources.len()], 0));
        self.attempts += 1;
        slot.started_ns = now;
        slot.attempt = slot.attempt.wrapping_add(1);
        let attempt = slot.attempt;
        match io.connect(self.targets.addr(slot.target), source) {
            Ok(conn) => {
                slot.conn = Some(conn);
                slot.state = SlotState::Connecting;
                let at = conn.index as usize;
                if self.conn_slots.len() <= at {
                    self.conn_slots.resize(at + 1, u32::MAX);
                }
                self.conn_slots[at] = i as u32;
                let due = now + self.cfg.connect_timeout_ms * 1_000_000;
                self.timers
                    .push(Reverse((due, i as u32, attempt, TimerKind::ConnectTimeout)));
            }
            Err(err) => {
                let kind = connect_error_kind(err.raw_os_error());
                self.fail(io, i, kind);
            }
        }
    }

    fn fire_timers<O: Ops>(&mut self, io: &mut O, now: u64) {
        for _ in 0..MAX_TIMERS_PER_TURN {
            match self.timers.peek() {
                Some(Reverse((due, _, _, _))) if *due <= now => {}
                _ => return,
            }
            let Some(Reverse((_, i, attempt, kind))) = self.timers.pop() else {
                return;
            };
            let i = i as usize;
            if kind == TimerKind::GroupSend {
                self.send_group_due(io, i, now);
                continue;
            }
            if self.slots[i].attempt != attempt {
                continue; // armed for an earlier conn of this slot
            }
            match (kind, self.slots[i].state) {
                (TimerKind::ConnectTimeout, SlotState::Connecting) => {
                    self.fail(io, i, ErrorKind::ConnectTimeout)
                }
                (TimerKind::LoginTimeout, SlotState::LoggingIn) => {
                    self.fail(io, i, ErrorKind::LoginTimeout)
                }
                (TimerKind::Send, SlotState::Online) if self.fan.is_some() => {
                    self.send_status_due(io, i, now)
                }
                (TimerKind::Send, SlotState::Online) => self.send_due(io, i, now),
                (TimerKind::SetupTimeout, SlotState::Online) => {
                    self.presence_setup_timeout(io, i);
                    self.group_setup_timeout(i);
                }
                (TimerKind::Drop, SlotState::Online) if self.storming => self.drop_conn(io, i),
                (TimerKind::AckWait, SlotState::Online) => self.settle(i),
                (TimerKind::Keepalive, SlotState::Online) => self.send_keepalive(io, i, now),
                _ => {}
            }
        }
    }

    /// Arms slot `i`'s next whitespace keepalive (`--keepalive`): the first at a random
    /// instant within the interval, so a ramp's clients do not all ping in the same second.
    fn arm_keepalive(&mut self, i: usize, now: u64, first: bool) {
        let interval = self.cfg.keepalive_ms * 1_000_000;
        if interval == 0 {
            return;
        }
        let due = now
            + if first {
                1 + self.rng.below(interval)
            } else {
                interval
            };
        let attempt = self.slots[i].attempt;
        self.timers
            .push(Reverse((due, i as u32, attempt, TimerKind::Keepalive)));
    }

    /// Sends one space on slot `i`'s stream (RFC 6120 4.6.1) and arms the next.
    fn send_keepalive<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        if let Some(conn) = self.slots[i].conn {
            if io.send(conn, b" ").is_ok() {
                self.report.keepalives += 1;
            }
        }
        self.arm_keepalive(i, now, false);
    }

    /// Ends slot `i` with an error: counted once, its conn closed at once. In a storm the
    /// client then queues for a reconnect like every other.
    fn fail<O: Ops>(&mut self, io: &mut O, i: usize, kind: ErrorKind) {
        if let Some(conn) = self.end_with_error(i, kind) {
            io.close(conn, Linger::Abort);
        }
    }

    /// [`Worker::fail`] but for closing the conn, which it returns for the caller to close
    /// (none when the slot had already ended or has no conn: a conn the driver closed itself).
    fn end_with_error(&mut self, i: usize, kind: ErrorKind) -> Option<ConnId> {
        match self.slots[i].state {
            SlotState::Failed | SlotState::Closing => return None,
            SlotState::Online => {
                self.shared.set_online(self.slots[i].index, false);
                self.online -= 1;
                // Online counted as settled, except an offline sender still at work or a
                // client still in its setup (both settle once: see `settle`).
                if self.offline.is_some() || self.fan.is_some() {
                    self.settle(i);
                }
            }
            SlotState::Pending | SlotState::Connecting | SlotState::LoggingIn => self.settle(i),
        }
        let slot = &mut self.slots[i];
        slot.state = SlotState::Failed;
        self.report.errors.add(kind);
        let open = slot.conn;
        if self.storming {
            self.requeue(i);
        }
        open
    }

    /// Publishes counters and recent latencies at each publishing instant.
    fn publish(&mut self, now: u64, force: bool) {
        if !force && now < self.next_publish_ns {
            return;
        }
        while self.next_publish_ns <= now {
            self.next_publish_ns += PUBLISH_INTERVAL_NS;
        }
        let live = &self.shared.threads[self.thread];
        let received = self.report.ledger.deliveries();
        for (counter, value) in [
            (Counter::Attempts, self.attempts),
            (Counter::Online, self.online),
            (Counter::Logins, self.report.logins),
            (Counter::Settled, self.settled),
            (Counter::Sent, self.sent),
            (Counter::Received, received),
            (Counter::Errors, self.report.errors.total()),
        ] {
            live.publish(counter, value);
        }
        // Poisoned only if the coordinator panicked while holding it; keep going either way.
        live.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(&self.recent);
        self.report.histograms.merge(&self.recent);
        self.recent.reset();
    }

    fn next_wake_ns(&self, now: u64) -> u64 {
        let mut wake = (now + MAX_WAIT_NS).min(self.next_publish_ns);
        if let Some(Reverse((due, _, _, _))) = self.timers.peek() {
            wake = wake.min(*due);
        }
        if self.next_connect < self.connect_end {
            let k = (self.next_connect - self.ramp_first) as u64;
            wake = wake.min(self.ramp.due(k));
        }
        if self.storming && !self.reconnects.is_empty() {
            wake = wake.min(self.pacer.next_free_ns().max(now));
        }
        wake
    }

    fn finish(mut self) -> WorkerReport {
        self.report.tls = self.tls.counters;
        // Clients never connected (ramp cut short by an abort) count as settled failures of
        // no kind: they simply never ran.
        self.report.sent = match &self.fan {
            // A group's messages are the group's, sent by whichever member.
            Fan::Group(g) => g.sent(),
            _ => self.slots.iter().map(|s| (s.index, s.seq)).collect(),
        };
        self.report.acked = self
            .slots
            .iter()
            .filter(|s| s.acked > 0)
            .map(|s| (s.index, s.acked))
            .collect();
        self.report
    }
}

/// The run's targets (the config was checked when resolved, so this falls back to `--server`
/// alone only if the cluster file changed under us, and says so).
fn worker_targets(cfg: &RunConfig) -> Targets {
    let cluster = cfg.cluster.as_ref().map(|c| c.text.as_str());
    Targets::new(
        cfg.server,
        cluster,
        &cfg.user_prefix,
        &cfg.domain,
        cfg.clients,
    )
    .unwrap_or_else(|err| {
        tracing::warn!("{err:#}: every client connects to --server");
        Targets::new(cfg.server, None, "", "", 0).expect("no cluster file, nothing to parse")
    })
}

/// A fresh client state machine (its framer holds no buffer until bytes arrive).
fn new_client(sm_policy: SmPolicy, login: LoginKind) -> Client {
    let limits = FramerLimits {
        max_stanza_bytes: MAX_STANZA_BYTES,
    };
    Client::with_login(limits, sm_policy, login)
}

/// Bytes of one client's slot in a worker's slab (the rest of a client's user-space cost is
/// the driver's conn slot and, while busy, buffers).
pub fn slot_bytes() -> usize {
    std::mem::size_of::<Slot>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_pop_earliest_first() {
        let mut heap: BinaryHeap<Timer> = BinaryHeap::new();
        heap.push(Reverse((30, 1, 0, TimerKind::Send)));
        heap.push(Reverse((10, 2, 0, TimerKind::LoginTimeout)));
        heap.push(Reverse((20, 0, 0, TimerKind::ConnectTimeout)));
        let order: Vec<u64> =
            std::iter::from_fn(|| heap.pop().map(|Reverse((d, _, _, _))| d)).collect();
        assert_eq!(order, vec![10, 20, 30]);
    }
}
