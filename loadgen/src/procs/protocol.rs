//! What a parent and its worker processes say to each other: one JSON object per line.
//!
//! Parent -> child (stdin): first the [`Spec`] (the run's config with the child's share of the
//! rates and threads, and the `--auth` spec, secret included: stdin is the one channel that
//! `ps` does not show), then [`ParentMsg`]s. Child -> parent (stdout): [`ChildMsg`]s; the
//! child's logs go to stderr. A closed stdin tells the child its parent is gone.
//!
//! Histograms travel V2 deflate + base64; ledgers as [`LedgerWire`]; per-sender sent counts as
//! base64 of little-endian (index u32, count u32) pairs; the presence and group scenarios'
//! receipts per change as `LastReceipts::to_wire`. Decoding checks everything against
//! the run (metric names, error kinds, sender indexes), so a corrupt line fails the run with a
//! clear error instead of skewing it.
//!
//! What it does not do: I/O (see `parent` and `child`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::accounting::{Ledger, LedgerWire, WireError};
use crate::cli::RunConfig;
use crate::fanout::table::{LastReceipts, TableError};
use crate::live::Snapshot;
use crate::metrics::{decode_histogram, encode_histogram, CodecError, Histograms, Metric};
use crate::run::PartMeta;
use crate::worker::WorkerReport;

/// The first line a worker process reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub config: RunConfig,
    /// `--auth` in full (the config's own copy is redacted when serialized).
    pub auth: String,
    pub parent_pid: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ParentMsg {
    /// Start the ramp at this CLOCK_MONOTONIC instant.
    Go { at_ns: u64 },
    /// Start the steady phase at this instant; every client not listed is online.
    Steady { at_ns: u64, not_online: Vec<u32> },
    /// Close everything now.
    Abort,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ChildMsg {
    /// Every thread has its driver.
    Ready,
    /// Second `second` since the ramp start: cumulative counters, latencies of that second
    /// (metric name -> histogram, non-empty ones only).
    Tick {
        second: u32,
        counts: Snapshot,
        latencies: BTreeMap<String, String>,
    },
    /// Every client of this process settled (online or failed); these are not online.
    Settled { not_online: Vec<u32> },
    /// The end: everything this process measured.
    Done {
        report: Box<ReportWire>,
        meta: PartMeta,
    },
    /// The process could not run its part.
    Failed { error: String },
}

/// A [`WorkerReport`] as it travels.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportWire {
    pub histograms: BTreeMap<String, String>,
    pub saturated: u64,
    pub ledger: LedgerWire,
    pub receipts: LedgerWire,
    pub sent: String,
    /// Like `sent`: (index, messages acknowledged) pairs.
    #[serde(default)]
    pub acked: String,
    /// `unacked_at_drop` as two pair lists, `(index, from)` and `(index, to)`, in step.
    #[serde(default)]
    pub unacked_from: String,
    #[serde(default)]
    pub unacked_to: String,
    pub errors: BTreeMap<String, u64>,
    pub counters: BTreeMap<String, u64>,
    /// Presence and group: the receipts per change (see `fanout::table`).
    #[serde(default)]
    pub fanout: String,
}

/// Why a worker process' line was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ProtocolError {
    Json(String),
    Histogram(CodecError),
    Ledger(WireError),
    Table(TableError),
    UnknownMetric(String),
    UnknownError(String),
    UnknownCounter(String),
    BadSentCounts,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::Json(err) => write!(f, "not a message: {err}"),
            ProtocolError::Histogram(err) => err.fmt(f),
            ProtocolError::Ledger(err) => err.fmt(f),
            ProtocolError::Table(err) => err.fmt(f),
            ProtocolError::UnknownMetric(m) => write!(f, "unknown metric {m:?}"),
            ProtocolError::UnknownError(e) => write!(f, "unknown error kind {e:?}"),
            ProtocolError::UnknownCounter(c) => write!(f, "unknown counter {c:?}"),
            ProtocolError::BadSentCounts => f.write_str("sent counts are corrupt"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// One line of JSON (no newline inside: serde_json escapes them).
pub fn to_line<T: Serialize>(msg: &T) -> String {
    // Our message types hold only strings, numbers, maps with string keys and sequences,
    // which serde_json always serializes.
    serde_json::to_string(msg).unwrap_or_else(|e| unreachable!("message not serializable: {e}"))
}

pub fn from_line<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, ProtocolError> {
    serde_json::from_str(line).map_err(|e| ProtocolError::Json(e.to_string()))
}

/// Histograms by metric name, non-empty ones only.
pub fn encode_histograms(h: &Histograms) -> BTreeMap<String, String> {
    Metric::ALL
        .into_iter()
        .filter(|&m| !h.get(m).is_empty())
        .map(|m| (m.name().to_string(), encode_histogram(h.get(m))))
        .collect()
}

pub fn decode_histograms(map: &BTreeMap<String, String>) -> Result<Histograms, ProtocolError> {
    let mut out = Histograms::default();
    for (name, text) in map {
        let metric =
            Metric::from_name(name).ok_or_else(|| ProtocolError::UnknownMetric(name.clone()))?;
        let h = decode_histogram(text).map_err(ProtocolError::Histogram)?;
        out.add(metric, &h);
    }
    Ok(out)
}

/// The plain counters of a report, by name (one list, so encode and decode cannot drift).
fn counters(r: &mut WorkerReport) -> Vec<(String, &mut u64)> {
    let plain: [(&str, &mut u64); 19] = [
        ("logins", &mut r.logins),
        ("peak_online", &mut r.peak_online),
        ("bounced", &mut r.bounced),
        ("redirects", &mut r.redirects),
        ("foreign", &mut r.foreign),
        ("skipped_no_peer", &mut r.skipped_no_peer),
        ("send_retries", &mut r.send_retries),
        ("stale", &mut r.stale),
        ("storm_logins", &mut r.storm_logins),
        ("storm_dropped", &mut r.storm_dropped),
        ("keepalives", &mut r.keepalives),
        ("storm_start_ns", &mut r.storm_start_ns),
        ("storm_last_login_ns", &mut r.storm_last_login_ns),
        ("sm_enabled", &mut r.sm_enabled),
        ("sm_failed", &mut r.sm_failed),
        ("sm_unavailable", &mut r.sm_unavailable),
        ("offline_deliveries", &mut r.offline_deliveries),
        ("delay_missing", &mut r.delay_missing),
        ("last_delivery_ns", &mut r.last_delivery_ns),
    ];
    let mut all: Vec<(String, &mut u64)> =
        plain.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    all.extend(r.tls.named().into_iter().map(|(k, v)| (k.to_string(), v)));
    all.extend(r.fan.named());
    all
}

/// base64 of little-endian (index u32, count u32) pairs.
fn encode_pairs(pairs: &[(u32, u32)]) -> String {
    let mut bytes = Vec::with_capacity(pairs.len() * 8);
    for &(index, count) in pairs {
        bytes.extend_from_slice(&index.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads back [`encode_pairs`], refusing indexes at or above `clients` (the ledger's rows).
fn decode_pairs(text: &str, clients: u32) -> Result<Vec<(u32, u32)>, ProtocolError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ProtocolError::BadSentCounts)?;
    if bytes.len() % 8 != 0 {
        return Err(ProtocolError::BadSentCounts);
    }
    let mut out = Vec::with_capacity(bytes.len() / 8);
    for pair in bytes.chunks_exact(8) {
        let index = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
        let count = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
        if index >= clients {
            return Err(ProtocolError::BadSentCounts);
        }
        out.push((index, count));
    }
    Ok(out)
}

pub fn encode_report(mut report: WorkerReport) -> ReportWire {
    let ranges = std::mem::take(&mut report.unacked_at_drop);
    ReportWire {
        histograms: encode_histograms(&report.histograms),
        saturated: report.histograms.saturated,
        ledger: report.ledger.to_wire(),
        receipts: report.receipts.to_wire(),
        sent: encode_pairs(&report.sent),
        acked: encode_pairs(&report.acked),
        unacked_from: encode_pairs(&ranges.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()),
        unacked_to: encode_pairs(&ranges.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>()),
        errors: report
            .errors
            .entries()
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        fanout: report.last_receipts.to_wire(),
        counters: counters(&mut report)
            .into_iter()
            .map(|(k, v)| (k, *v))
            .collect(),
    }
}

/// Rebuilds a report of a run of `clients` clients that send one message per receipt (chat,
/// offline: one ledger row per client).
#[cfg(test)]
pub fn decode_report(wire: &ReportWire, clients: u32) -> Result<WorkerReport, ProtocolError> {
    decode_with(wire, clients, clients, u32::MAX)
}

/// Rebuilds a report of the run `cfg` (any scenario).
pub fn decode_report_for(
    wire: &ReportWire,
    cfg: &RunConfig,
) -> Result<WorkerReport, ProtocolError> {
    decode_with(wire, cfg.clients, cfg.ledger_rows(), cfg.max_seq())
}

/// `rows`: of the ledger (senders, or groups); `max_seq`: of one sender's (or group's).
fn decode_with(
    wire: &ReportWire,
    clients: u32,
    rows: u32,
    max_seq: u32,
) -> Result<WorkerReport, ProtocolError> {
    let mut report = WorkerReport {
        histograms: decode_histograms(&wire.histograms)?,
        ledger: Ledger::from_wire(&wire.ledger, rows).map_err(ProtocolError::Ledger)?,
        receipts: Ledger::from_wire(&wire.receipts, clients).map_err(ProtocolError::Ledger)?,
        last_receipts: LastReceipts::from_wire(&wire.fanout, rows, max_seq)
            .map_err(ProtocolError::Table)?,
        ..WorkerReport::default()
    };
    report.histograms.saturated = wire.saturated;
    for (name, &count) in &wire.errors {
        if !report.errors.add_named(name, count) {
            return Err(ProtocolError::UnknownError(name.clone()));
        }
    }
    for (name, &value) in &wire.counters {
        let mut known = counters(&mut report);
        let slot = known
            .iter_mut()
            .find(|(k, _)| *k == *name)
            .ok_or_else(|| ProtocolError::UnknownCounter(name.clone()))?;
        *slot.1 = value;
    }
    report.sent = decode_pairs(&wire.sent, rows)?;
    report.acked = decode_pairs(&wire.acked, clients)?;
    let from = decode_pairs(&wire.unacked_from, clients)?;
    let to = decode_pairs(&wire.unacked_to, clients)?;
    if from.len() != to.len() || from.iter().zip(&to).any(|(f, t)| f.0 != t.0 || f.1 > t.1) {
        return Err(ProtocolError::BadSentCounts);
    }
    report.unacked_at_drop = from.iter().zip(&to).map(|(f, t)| (f.0, f.1, t.1)).collect();
    Ok(report)
}

#[cfg(test)]
mod tests;
