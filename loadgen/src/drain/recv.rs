//! Phase 2 of a drain: the recipient logs in and reads its backlog.
//!
//! It binds (with XEP-0198 or without, as asked), sends its initial presence (which starts
//! the server's delivery of the offline queue) and reads until every message of the run
//! arrived, then keeps reading for `--settle` to catch duplicates, and closes. With
//! XEP-0198 it acks every `--ack-every` stanzas (and answers the server's `<r/>`, which the
//! client does by itself), and acks everything before closing so the server can forget the
//! backlog. The drain time runs from the bind to the read that completed the backlog.
//!
//! What it does not do: judge the result (see `record`). A stream that ends mid-drain is
//! not an error of the tool: it is recorded (`ended`) and fails the run's gates.

use std::time::{Duration, Instant};

use rookery_client::{element_text, wire, Event, SmMode, SmStatus, Stream};
use rookery_proto::{StanzaKind, StanzaView};
use serde::Serialize;

use super::body;
use super::conn::Conn;
use super::ledger::{Ledger, Tally};
use super::record::{process_sched, server_memory, thread_sched, Sched};
use super::{DrainConfig, DrainError};

/// XEP-0203 delayed delivery: every stored message carries it.
const NS_DELAY: &str = "urn:xmpp:delay";
/// Longest the recipient's login may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the server's RSS is sampled and progress printed.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What phase 2 measured.
#[derive(Clone, Debug, Serialize)]
pub struct Drained {
    pub tally: Tally,
    pub missing: u64,
    /// Stored messages that came without `<delay/>`.
    pub delay_missing: u64,
    /// Bodies of this run whose size is not `--body-bytes`.
    pub damaged: u64,
    /// Messages whose body is not a drain probe at all, and error stanzas.
    pub other_messages: u64,
    pub connect_to_bind_ms: f64,
    pub bind_to_online_ms: f64,
    /// From the bind to the last message (to the end of reading when incomplete).
    pub bind_to_last_s: f64,
    pub msgs_per_s: f64,
    /// Body bytes of the unique messages over the drain time, in 10^6 bytes per second.
    pub body_mb_per_s: f64,
    /// Bytes read from the socket over the drain time (everything: stanzas, acks requests).
    pub wire_bytes: u64,
    pub wire_mb_per_s: f64,
    pub message_stanza_bytes: u64,
    /// Acks the recipient sent (`<a h/>`, besides answers to `<r/>`).
    pub acks_sent: u64,
    pub server_rss_peak_kib: Option<u64>,
    /// CPU the server (every thread; `--server-pid`) and the recipient's thread used from
    /// the login's end to the end of the drain, in % of one core over that time: tells
    /// which side limits the rate.
    pub server_cpu_pct: Option<f64>,
    pub recipient_cpu_pct: Option<f64>,
    /// Time runnable but waiting for a CPU (another process had it), in the same units: a
    /// busy machine, not the drain, limited the rate when this is high.
    pub server_runq_wait_pct: Option<f64>,
    pub recipient_runq_wait_pct: Option<f64>,
    /// Why the stream ended before the recipient closed it, if it did.
    pub ended: Option<String>,
}

/// What the recipient counted, fed by the client's events.
struct Reader<'a> {
    cfg: &'a DrainConfig,
    ledger: Ledger,
    delay_missing: u64,
    damaged: u64,
    other_messages: u64,
    stanza_bytes: u64,
    acked_inbound: u32,
    acks_sent: u64,
    ended: Option<String>,
}

impl Reader<'_> {
    fn new(cfg: &DrainConfig) -> Reader<'_> {
        let sent = (0..cfg.senders).map(|s| cfg.messages_of(s)).collect();
        Reader {
            cfg,
            ledger: Ledger::new(cfg.run_id, sent),
            delay_missing: 0,
            damaged: 0,
            other_messages: 0,
            stanza_bytes: 0,
            acked_inbound: 0,
            acks_sent: 0,
            ended: None,
        }
    }

    fn on_event(&mut self, event: Event<'_>, stream: &mut Stream<()>, out: &mut Vec<u8>) {
        match event {
            Event::Stanza(view) if view.kind() == StanzaKind::Message => {
                self.on_message(&view);
                self.maybe_ack(stream.sm_status(), out, self.cfg.ack_every);
            }
            Event::StreamError(err) => self.ended = Some(format!("stream error {err:?}")),
            Event::StreamClosed => self.ended = Some("the server closed the stream".into()),
            Event::ProtocolError { detail } => self.ended = Some(detail.into()),
            _ => {}
        }
    }

    fn on_message(&mut self, view: &StanzaView<'_>) {
        self.stanza_bytes += view.bytes().len() as u64;
        let body = view
            .children()
            .find(|c| c.local_name == "body")
            .and_then(|c| element_text(c.bytes));
        let probe = body.as_deref().and_then(body::parse);
        let (Some(body), Some(probe)) = (body.as_deref(), probe) else {
            self.other_messages += 1;
            return;
        };
        if probe.run == self.cfg.run_id && body.len() != self.cfg.body_bytes {
            self.damaged += 1;
        }
        self.ledger.record(probe.run, probe.sender, probe.seq);
        if !view.has_child("delay", NS_DELAY) {
            self.delay_missing += 1;
        }
    }

    /// Acks what arrived once `every` stanzas (>= 1) came since the last ack.
    fn maybe_ack(&mut self, status: Option<SmStatus>, out: &mut Vec<u8>, every: u32) {
        let Some(status) = status.filter(|s| s.enabled) else {
            return;
        };
        if every > 0 && status.inbound.wrapping_sub(self.acked_inbound) >= every {
            wire::ack(status.inbound, out);
            self.acked_inbound = status.inbound;
            self.acks_sent += 1;
        }
    }
}

/// Logs the recipient in and reads the backlog; see the module docs.
pub fn drain(cfg: &DrainConfig) -> Result<Drained, DrainError> {
    let sm = if cfg.recipient_sm {
        SmMode::Enable
    } else {
        SmMode::Off
    };
    let login = cfg.login(cfg.senders);
    let framing = (sm, cfg.max_stanza_bytes());
    let (mut conn, times) = Conn::open(cfg.server, login, framing, Instant::now() + LOGIN_TIMEOUT)?;
    let cpu_from = Cpu::now(cfg);
    conn.out().extend_from_slice(b"<presence/>");
    conn.stream_mut().count_sent(1);
    conn.flush()?;
    let mut reader = Reader::new(cfg);
    let deadline = times.bound + cfg.drain_timeout();
    let mut last = None;
    let mut settle_until = None;
    let mut watch = Watch::new();
    let mut cpu = None;
    loop {
        let now = Instant::now();
        if now > deadline || settle_until.is_some_and(|until| now >= until) {
            break;
        }
        let before = reader.ledger.tally().unique;
        match conn.pump(|e, s, o| reader.on_event(e, s, o)) {
            Err(DrainError::Closed { .. }) => {
                reader.ended = Some("the server closed the conn".into());
                break;
            }
            other => other?,
        };
        conn.flush()?;
        if reader.ledger.tally().unique > before {
            last = Some(Instant::now());
        }
        if reader.ended.is_some() {
            break;
        }
        if settle_until.is_none() && reader.ledger.complete() {
            // Everything arrived: ack it all, then watch for duplicates.
            cpu = Some(cpu_from.until_now(cfg));
            let status = conn.stream().sm_status();
            reader.maybe_ack(status, conn.out(), 1);
            conn.flush()?;
            settle_until = Some(Instant::now() + Duration::from_millis(cfg.settle_ms));
        }
        watch.tick(cfg, reader.ledger.tally());
    }
    let end = if reader.ledger.complete() {
        last.unwrap_or(times.bound)
    } else {
        Instant::now()
    };
    let cpu = cpu.unwrap_or_else(|| cpu_from.until_now(cfg));
    let wire_bytes = conn.read_bytes;
    if reader.ended.is_none() {
        conn.close(Duration::from_secs(2));
    }
    let mut drained = figures(cfg, reader, times, end, wire_bytes, watch.rss_peak_kib);
    cpu.apply(&mut drained);
    Ok(drained)
}

/// Scheduler counters at one instant: the server's (all threads) and this thread's.
struct Cpu {
    at: Instant,
    server: Option<Sched>,
    thread: Option<Sched>,
}

/// % of one core over an interval: (server run, server wait, thread run, thread wait).
struct CpuUse([Option<f64>; 4]);

impl Cpu {
    fn now(cfg: &DrainConfig) -> Cpu {
        Cpu {
            at: Instant::now(),
            server: cfg.server_pid.and_then(process_sched),
            thread: thread_sched(),
        }
    }

    /// What each used since `self`.
    fn until_now(&self, cfg: &DrainConfig) -> CpuUse {
        let now = Cpu::now(cfg);
        let wall_ns = now.at.duration_since(self.at).as_nanos().max(1) as f64;
        let pct =
            |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / wall_ns * 100.0);
        let (s0, s1, t0, t1) = (self.server, now.server, self.thread, now.thread);
        CpuUse([
            pct(s0.map(|s| s.run_ns), s1.map(|s| s.run_ns)),
            pct(s0.map(|s| s.wait_ns), s1.map(|s| s.wait_ns)),
            pct(t0.map(|s| s.run_ns), t1.map(|s| s.run_ns)),
            pct(t0.map(|s| s.wait_ns), t1.map(|s| s.wait_ns)),
        ])
    }
}

impl CpuUse {
    fn apply(&self, d: &mut Drained) {
        [
            d.server_cpu_pct,
            d.server_runq_wait_pct,
            d.recipient_cpu_pct,
            d.recipient_runq_wait_pct,
        ] = self.0;
    }
}

/// The server's RSS peak and the progress line, while the recipient reads.
struct Watch {
    rss_peak_kib: Option<u64>,
    sampled: Instant,
    shown: Instant,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            rss_peak_kib: None,
            sampled: Instant::now(),
            shown: Instant::now(),
        }
    }

    fn tick(&mut self, cfg: &DrainConfig, tally: Tally) {
        if self.sampled.elapsed() >= SAMPLE_EVERY {
            self.sampled = Instant::now();
            let rss = cfg.server_pid.and_then(server_memory);
            self.rss_peak_kib = self.rss_peak_kib.max(rss);
        }
        if !cfg.quiet && self.shown.elapsed() >= PROGRESS_EVERY {
            self.shown = Instant::now();
            eprintln!("drain: {} of {} received", tally.unique, tally.expected);
        }
    }
}

fn figures(
    cfg: &DrainConfig,
    reader: Reader<'_>,
    times: super::conn::LoginTimes,
    end: Instant,
    wire_bytes: u64,
    server_rss_peak_kib: Option<u64>,
) -> Drained {
    let tally = reader.ledger.tally();
    let seconds = end.saturating_duration_since(times.bound).as_secs_f64();
    let per_s = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Drained {
        tally,
        missing: tally.missing(),
        delay_missing: reader.delay_missing,
        damaged: reader.damaged,
        other_messages: reader.other_messages,
        connect_to_bind_ms: ms(times.bound - times.connected),
        bind_to_online_ms: ms(times.online - times.bound),
        bind_to_last_s: seconds,
        msgs_per_s: per_s(tally.unique as f64),
        body_mb_per_s: per_s(tally.unique as f64 * cfg.body_bytes as f64) / 1e6,
        wire_bytes,
        wire_mb_per_s: per_s(wire_bytes as f64) / 1e6,
        message_stanza_bytes: reader.stanza_bytes,
        acks_sent: reader.acks_sent,
        server_rss_peak_kib,
        server_cpu_pct: None,
        recipient_cpu_pct: None,
        server_runq_wait_pct: None,
        recipient_runq_wait_pct: None,
        ended: reader.ended,
    }
}
