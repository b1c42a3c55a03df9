//! What a run measures: one latency histogram per [`Metric`] and the error counts.
//!
//! Histograms are HdrHistogram in microseconds with 3 significant digits (0.1% value
//! precision), trackable up to one hour; a longer value is recorded as one hour and counted
//! in `saturated` rather than dropped. Each worker thread records into its own [`Histograms`]
//! (no sharing on the hot path); the run merges them at the end. Worker processes ship theirs
//! to the parent as V2 deflate + base64 text ([`encode_histogram`], [`decode_histogram`]),
//! which merges them with `add`, exactly.
//!
//! What it does not do: decide what to record (the worker does) or print (see `output`).

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency tracked: one hour, in microseconds.
pub const HIGHEST_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram with the run's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that satisfy the crate's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5), so creation cannot fail.
    match Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS) {
        Ok(h) => h,
        Err(err) => unreachable!("constant histogram bounds rejected: {err:?}"),
    }
}

/// The latencies a run records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// TCP connect: connect started -> connected.
    Connect,
    /// Login: connect started -> session bound (and initial presence sent).
    Login,
    /// Message end to end from the *intended* send time (coordinated omission corrected).
    E2eCorrected,
    /// Message end to end from the actual send time.
    E2eUncorrected,
    /// How late the load generator sent each message (actual - intended send time): the part
    /// of the corrected latency that is the generator's own, not the server's.
    SendLag,
    /// XEP-0184 receipt round trip: intended send -> the recipient's receipt is back.
    ReceiptRtt,
    /// XEP-0198: intended send -> the server's `<a h=.../>` covering the message.
    SmAck,
    /// Offline: the recipient's login started (connect) -> a stored message arrived.
    OfflineDelivery,
    /// Presence: a status change's intended send time -> its receipt at each contact.
    PresenceDelivery,
    /// Presence: a status change's intended send time -> its receipt at the last contact.
    PresenceFanoutLast,
    /// Group: a message's intended send time -> its receipt at each member (sender included).
    GroupDelivery,
    /// Group: a message's intended send time -> its receipt at the last member.
    GroupFanoutLast,
    /// Chat with `--storm-fraction`: a dropped client's reconnect started -> online again.
    StormLogin,
}

impl Metric {
    pub const ALL: [Metric; 13] = [
        Metric::Connect,
        Metric::Login,
        Metric::E2eCorrected,
        Metric::E2eUncorrected,
        Metric::SendLag,
        Metric::ReceiptRtt,
        Metric::SmAck,
        Metric::OfflineDelivery,
        Metric::PresenceDelivery,
        Metric::PresenceFanoutLast,
        Metric::GroupDelivery,
        Metric::GroupFanoutLast,
        Metric::StormLogin,
    ];

    /// File and JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Login => "login",
            Metric::E2eCorrected => "e2e_corrected",
            Metric::E2eUncorrected => "e2e_uncorrected",
            Metric::SendLag => "send_lag",
            Metric::ReceiptRtt => "receipt_rtt",
            Metric::SmAck => "sm_ack",
            Metric::OfflineDelivery => "offline_delivery",
            Metric::PresenceDelivery => "presence_delivery",
            Metric::PresenceFanoutLast => "presence_fanout_last",
            Metric::GroupDelivery => "group_delivery",
            Metric::GroupFanoutLast => "group_fanout_last",
            Metric::StormLogin => "storm_login",
        }
    }

    /// Row label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Connect => "tcp connect",
            Metric::Login => "login",
            Metric::E2eCorrected => "message e2e (corrected)",
            Metric::E2eUncorrected => "message e2e (uncorrected)",
            Metric::SendLag => "send lag (generator)",
            Metric::ReceiptRtt => "receipt round trip",
            Metric::SmAck => "stream mgmt ack",
            Metric::OfflineDelivery => "offline delivery (login)",
            Metric::PresenceDelivery => "presence, each contact",
            Metric::PresenceFanoutLast => "presence, last contact",
            Metric::GroupDelivery => "group, each member",
            Metric::GroupFanoutLast => "group, last member",
            Metric::StormLogin => "login in the storm",
        }
    }

    /// The metric named `name` (see [`Metric::name`]).
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a histogram sent by a worker process could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    Base64,
    /// The V2 bytes did not decode (truncated, corrupt, or another encoding).
    V2(String),
    /// Decoded, but its bounds differ from [`new_histogram`]'s, so `add` could drop values.
    Bounds,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Base64 => f.write_str("histogram is not base64"),
            CodecError::V2(err) => write!(f, "histogram does not decode: {err}"),
            CodecError::Bounds => f.write_str("histogram has other bounds than this run's"),
        }
    }
}

impl std::error::Error for CodecError {}

/// V2 deflate serialization, base64 (standard alphabet): the form the Java and Rust
/// HdrHistogram tools read.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a histogram of u64 counts.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads back [`encode_histogram`]'s output (V2 with or without deflate).
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, CodecError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| CodecError::Base64)?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| CodecError::V2(format!("{e:?}")))?;
    let mut h = new_histogram();
    h.add(&decoded).map_err(|_| CodecError::Bounds)?;
    Ok(h)
}

/// One histogram per [`Metric`], created when its first value (or merge) arrives.
///
/// Why lazy: one histogram with the run's bounds is ~377 KB, and a process keeps several sets
/// of them (per worker thread: its report, its recent second, the published second; the
/// coordinator's). A scenario uses 2 to 5 of the 12 metrics, and resetting a histogram
/// writes every count, so eager sets cost ~20 MB of RSS per process: ~1 KB per client over a
/// million-client run of 52 processes. So `reset` frees the histograms that hold values (the
/// next value maps fresh zero pages: `sys::fix_mmap_threshold`) instead of clearing them.
#[derive(Clone, Debug, Default)]
pub struct Histograms {
    by_metric: [Option<Box<Histogram<u64>>>; Metric::ALL.len()],
    /// Values above [`HIGHEST_US`], recorded as it.
    pub saturated: u64,
}

/// What `get` returns for a metric with no histogram yet.
fn empty_histogram() -> &'static Histogram<u64> {
    static EMPTY: std::sync::OnceLock<Histogram<u64>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(new_histogram)
}

impl Histograms {
    pub fn record(&mut self, metric: Metric, value_us: u64) {
        let value_us = if value_us > HIGHEST_US {
            self.saturated += 1;
            HIGHEST_US
        } else {
            value_us
        };
        // In range by the clamp above, so recording cannot fail.
        let _ = self.slot(metric).record(value_us);
    }

    pub fn get(&self, metric: Metric) -> &Histogram<u64> {
        self.by_metric[metric.index()]
            .as_deref()
            .unwrap_or_else(|| empty_histogram())
    }

    /// Adds a decoded histogram into `metric`'s (same bounds: see [`decode_histogram`]).
    pub fn add(&mut self, metric: Metric, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        // Both come from new_histogram's bounds, so adding cannot fail.
        let _ = self.slot(metric).add(h);
    }

    pub fn merge(&mut self, other: &Histograms) {
        for metric in Metric::ALL {
            if let Some(theirs) = other.by_metric[metric.index()].as_deref() {
                self.add(metric, theirs);
            }
        }
        self.saturated += other.saturated;
    }

    pub fn reset(&mut self) {
        for slot in &mut self.by_metric {
            if slot.as_deref().is_some_and(|h| !h.is_empty()) {
                *slot = None;
            }
        }
        self.saturated = 0;
    }

    /// Histograms created so far (for the memory test).
    #[cfg(test)]
    fn created(&self) -> usize {
        self.by_metric.iter().flatten().count()
    }

    fn slot(&mut self, metric: Metric) -> &mut Histogram<u64> {
        self.by_metric[metric.index()].get_or_insert_with(|| Box::new(new_histogram()))
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Why a simulated client failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connect refused (ECONNREFUSED): nothing listening, or the accept queue overflowed.
    Refused,
    /// Connect did not finish within `--connect-timeout`.
    ConnectTimeout,
    /// Connect failed for another reason (EADDRNOTAVAIL: out of source ports, ENETUNREACH...).
    ConnectFailed,
    /// Connected, but not online within `--login-timeout`.
    LoginTimeout,
    AuthFailure,
    BindFailure,
    StreamError,
    /// The server closed the conn (FIN) before we did.
    Closed,
    /// The conn was reset (ECONNRESET), by the server or the kernel.
    Reset,
    /// The server sent something we cannot follow (bad XML, unexpected element).
    Protocol,
    /// See-other-host more than 3 times in one login, or to an address we cannot use.
    RedirectLoop,
    /// TLS failed: the certificate was refused, an alert, a bad record, STARTTLS refused.
    Tls,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Refused,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectFailed,
        ErrorKind::LoginTimeout,
        ErrorKind::AuthFailure,
        ErrorKind::BindFailure,
        ErrorKind::StreamError,
        ErrorKind::Closed,
        ErrorKind::Protocol,
        ErrorKind::Reset,
        ErrorKind::RedirectLoop,
        ErrorKind::Tls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::LoginTimeout => "login_timeout",
            ErrorKind::AuthFailure => "auth_failure",
            ErrorKind::BindFailure => "bind_failure",
            ErrorKind::StreamError => "stream_error",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Reset => "reset",
            ErrorKind::RedirectLoop => "redirect_loop",
            ErrorKind::Tls => "tls",
        }
    }
}

/// Count per [`ErrorKind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        self.0[kind as usize] += 1;
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Adds `count` errors of the kind named `name`; false when no kind has that name.
    pub fn add_named(&mut self, name: &str, count: u64) -> bool {
        match ErrorKind::ALL.iter().find(|k| k.name() == name) {
            Some(&kind) => {
                self.0[kind as usize] += count;
                true
            }
            None => false,
        }
    }

    /// `(name, count)` for every kind, in a fixed order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ErrorKind::ALL.iter().map(|&k| (k.name(), self.get(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_exist_only_for_metrics_with_values() {
        let mut a = Histograms::default();
        assert_eq!(a.created(), 0);
        assert!(a.get(Metric::Login).is_empty(), "absent reads as empty");
        a.record(Metric::Login, 800);
        a.reset();
        let mut b = Histograms::default();
        b.merge(&a);
        b.add(Metric::Connect, &new_histogram());
        assert_eq!(
            (a.created(), b.created()),
            (0, 0),
            "reset frees; empty ones are not copied"
        );
        a.record(Metric::E2eCorrected, 5);
        b.merge(&a);
        assert_eq!(b.created(), 1);
        assert_eq!(b.get(Metric::E2eCorrected).len(), 1);
    }

    #[test]
    fn records_merges_and_saturates() {
        let mut a = Histograms::default();
        let mut b = Histograms::default();
        for v in 1..=1000 {
            a.record(Metric::E2eCorrected, v);
        }
        b.record(Metric::E2eCorrected, HIGHEST_US * 2);
        a.merge(&b);
        let p = Percentiles::of(a.get(Metric::E2eCorrected));
        assert_eq!(p.count, 1001);
        assert_eq!(a.saturated, 1);
        assert!((499..=501).contains(&p.p50_us), "{p:?}");
        assert!(p.max_us >= HIGHEST_US);
        assert_eq!(
            Percentiles::of(a.get(Metric::Login)),
            Percentiles::default()
        );
    }

    #[test]
    fn histograms_round_trip_through_text() {
        let mut h = new_histogram();
        for v in [1, 10, 999, 123_456, HIGHEST_US] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(
            decode_histogram(&encode_histogram(&new_histogram())).unwrap(),
            new_histogram()
        );
        assert_eq!(decode_histogram("***"), Err(CodecError::Base64));
        assert!(matches!(decode_histogram("AAAA"), Err(CodecError::V2(_))));
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn error_counts_add_up() {
        let mut a = ErrorCounts::default();
        a.add(ErrorKind::Refused);
        a.add(ErrorKind::Closed);
        let mut b = ErrorCounts::default();
        b.add(ErrorKind::Closed);
        a.merge(&b);
        assert_eq!(a.get(ErrorKind::Closed), 2);
        assert_eq!(a.total(), 3);
        assert_eq!(a.entries().count(), ErrorKind::ALL.len());
        assert!(a.add_named("reset", 4) && !a.add_named("nope", 1));
        assert_eq!(a.get(ErrorKind::Reset), 4);
    }
}
