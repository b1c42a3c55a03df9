//! Phase 1 of a drain: the senders build the recipient's backlog.
//!
//! One thread and one conn per sender. A sender writes its messages in batches of
//! [`BATCH`], each followed by `<r/>`, while fewer than `--window` are unacknowledged, and
//! reads the server's `<a h/>`s when the window is full; it is done when every message it
//! sent is acknowledged. An error stanza back (the server refused to store: a budget) stops
//! every sender: the asked backlog cannot be built.
//!
//! What it does not do: check that the messages arrive (see `recv`). Invariant: a sender
//! sends nothing but its messages after login (no presence), so the server's `h` counts
//! exactly its messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rookery_client::{Event, SmMode};
use rookery_proto::StanzaKind;
use serde::Serialize;

use super::body::{self, Probe};
use super::conn::Conn;
use super::{DrainConfig, DrainError};

/// Messages written between two `<r/>`.
const BATCH: u32 = 64;
/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What phase 1 did.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stored {
    pub sent: u64,
    pub acked: u64,
    pub seconds: f64,
    pub msgs_per_s: f64,
}

/// Shared between the sender threads: acknowledged messages so far, and the stop flag a
/// failing sender raises (the flag is only a hint to stop early, so Relaxed throughout).
#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    stop: AtomicBool,
}

/// Runs every sender until the whole backlog is acknowledged; fails with the first error.
pub fn store(cfg: &DrainConfig) -> Result<Stored, DrainError> {
    let began = Instant::now();
    let deadline = began + cfg.store_timeout();
    let progress = Progress::default();
    let results: Vec<Result<u64, DrainError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.senders)
            .map(|s| {
                let progress = &progress;
                scope.spawn(move || {
                    let result = send_all(cfg, s, deadline, progress);
                    if result.is_err() {
                        progress.stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        let mut shown = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if !cfg.quiet && shown.elapsed() >= PROGRESS_EVERY {
                shown = Instant::now();
                let acked = progress.acked.load(Ordering::Relaxed);
                eprintln!("store: {acked} of {} acknowledged", cfg.messages);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    // Report the cause, not the other senders' reaction to the stop flag.
    let mut acked = 0;
    let mut first_err = None;
    for result in results {
        match result {
            Ok(n) => acked += n,
            Err(err) if first_err.is_none() || matches!(err, DrainError::Refused { .. }) => {
                first_err = Some(err)
            }
            Err(_) => {}
        }
    }
    if let Some(err) = first_err {
        return Err(err);
    }
    let seconds = began.elapsed().as_secs_f64();
    Ok(Stored {
        sent: u64::from(cfg.messages),
        acked,
        seconds,
        msgs_per_s: acked as f64 / seconds.max(1e-9),
    })
}

/// What a sender learnt from the server so far.
#[derive(Default)]
struct Acks {
    enabled: bool,
    sm_failed: bool,
    acked: u32,
    refused: u64,
    first_refusal: Option<String>,
    ended: Option<String>,
}

impl Acks {
    fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::SmEnabled { .. } => self.enabled = true,
            Event::SmFailed { .. } => self.sm_failed = true,
            Event::Acked { h } => self.acked = h,
            Event::Stanza(view)
                if view.kind() == StanzaKind::Message
                    && view.stanza_type().as_deref() == Some("error") =>
            {
                self.refused += 1;
                let text = String::from_utf8_lossy(view.bytes());
                self.first_refusal
                    .get_or_insert_with(|| text.chars().take(300).collect());
            }
            Event::StreamError(err) => self.ended = Some(format!("stream error {err:?}")),
            Event::StreamClosed => self.ended = Some("the server closed the stream".into()),
            Event::ProtocolError { detail } => self.ended = Some(detail.into()),
            Event::AckTooHigh { h, sent } => {
                self.ended = Some(format!("the server acked {h} of our {sent} stanzas"))
            }
            _ => {}
        }
    }
}

/// Sender `s`: logs in, sends its messages, waits for their acks; returns how many were
/// acknowledged.
fn send_all(
    cfg: &DrainConfig,
    s: u32,
    deadline: Instant,
    progress: &Progress,
) -> Result<u64, DrainError> {
    let login = cfg.login(s);
    let user = login.username.clone();
    let (mut conn, _) = Conn::open(
        cfg.server,
        login,
        (SmMode::Enable, cfg.max_stanza_bytes()),
        deadline,
    )?;
    let count = cfg.messages_of(s);
    let to = cfg.recipient_jid();
    let mut acks = Acks::default();
    let (mut sent, mut counted) = (0u32, 0u32);
    while sent < count || acks.acked < sent {
        if progress.stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return Err(DrainError::StoreTimeout {
                acked: progress.acked.load(Ordering::Relaxed),
                sent: u64::from(cfg.messages),
            });
        }
        let in_flight = sent - acks.acked;
        if acks.enabled && sent < count && in_flight < cfg.window {
            let batch = (count - sent).min(cfg.window - in_flight).min(BATCH);
            for _ in 0..batch {
                let probe = Probe {
                    run: cfg.run_id,
                    sender: s,
                    seq: sent,
                };
                body::write_message(conn.out(), &to, probe, cfg.body_bytes);
                sent += 1;
            }
            conn.stream_mut().count_sent(batch);
            conn.request_ack();
            conn.flush()?;
            continue;
        }
        conn.pump(|event, _, _| acks.on_event(event))?;
        conn.flush()?;
        if acks.sm_failed {
            return Err(DrainError::NoStreamManagement { user });
        }
        if acks.refused > 0 {
            return Err(DrainError::Refused {
                refused: acks.refused,
                first: acks.first_refusal.unwrap_or_default(),
            });
        }
        if let Some(detail) = acks.ended {
            return Err(DrainError::Ended { user, detail });
        }
        progress
            .acked
            .fetch_add(u64::from(acks.acked - counted), Ordering::Relaxed);
        counted = acks.acked;
    }
    conn.close(Duration::from_secs(1));
    Ok(u64::from(acks.acked))
}
