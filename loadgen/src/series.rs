//! The run over time: one [`Point`] of counters per second and one interval histogram per
//! metric per second, from one source (a single-process run) or several (worker processes),
//! plus the live progress line built from them.
//!
//! Every source reports cumulative counters and the latencies it recorded since its last
//! report, at common instants (start + k seconds, CLOCK_MONOTONIC, shared by all processes of
//! the host). The aggregator keeps each source's latest counters (carried forward when a
//! source is late or done) and merges the latencies it received, and closes second k when the
//! coordinator says so: the point is the sum of the latest counters, the interval is what was
//! merged since the previous close (kept V2-encoded, so a long run holds kilobytes, not one
//! full histogram per second).
//!
//! What it does not do: write files (see `hlog`, `plot`, `output`) or read clocks.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::live::Snapshot;
use crate::metrics::Percentiles;
use crate::metrics::{decode_histogram, encode_histogram, CodecError, Histograms, Metric};

/// Counters summed over sources at the end of one second of the run (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Seconds since the ramp started (the end of the interval).
    pub second: u32,
    pub online: u64,
    pub attempts: u64,
    pub logins: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    /// The load generator's resident set size, summed over its worker processes, in KiB.
    pub rss_kib: u64,
}

/// One second's latencies of one metric, V2 deflate + base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The interval covers `second - 1 .. second` since the ramp start.
    pub second: u32,
    pub metric: Metric,
    pub encoded: String,
}

impl Interval {
    pub fn histogram(&self) -> Result<Histogram<u64>, CodecError> {
        decode_histogram(&self.encoded)
    }
}

/// The per-second record of a run.
#[derive(Debug)]
pub struct Series {
    latest: Vec<Snapshot>,
    pending: Histograms,
    so_far: Histograms,
    pub points: Vec<Point>,
    pub intervals: Vec<Interval>,
}

impl Series {
    pub fn new(sources: usize) -> Series {
        Series {
            latest: vec![Snapshot::default(); sources],
            pending: Histograms::default(),
            so_far: Histograms::default(),
            points: Vec::new(),
            intervals: Vec::new(),
        }
    }

    /// Source `source` reports its cumulative `counts` and latencies recorded since its last
    /// report.
    pub fn add(&mut self, source: usize, counts: Snapshot, latencies: &Histograms) {
        if let Some(latest) = self.latest.get_mut(source) {
            *latest = counts;
        }
        self.pending.merge(latencies);
    }

    /// Ends second `second` (seconds since the ramp start) and returns its point.
    pub fn close_second(&mut self, second: u32) -> Point {
        let sum = |f: fn(&Snapshot) -> u64| self.latest.iter().map(f).sum();
        let point = Point {
            second,
            online: sum(|s| s.online),
            attempts: sum(|s| s.attempts),
            logins: sum(|s| s.logins),
            sent: sum(|s| s.sent),
            received: sum(|s| s.received),
            errors: sum(|s| s.errors),
            rss_kib: sum(|s| s.rss_kib),
        };
        for metric in Metric::ALL {
            let h = self.pending.get(metric);
            if !h.is_empty() {
                self.intervals.push(Interval {
                    second,
                    metric,
                    encoded: encode_histogram(h),
                });
            }
        }
        self.so_far.merge(&self.pending);
        self.pending.reset();
        self.points.push(point);
        point
    }

    /// The progress line for the last closed second.
    pub fn progress_line(&self, clients: u32) -> String {
        let n = self.points.len();
        let Some(now) = self.points.last() else {
            return String::new();
        };
        let before = if n >= 2 {
            self.points[n - 2]
        } else {
            Point::default()
        };
        let seconds = f64::from(now.second.saturating_sub(before.second).max(1));
        let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
        // The first delivery metric with values; logins until there is one.
        let (label, p) = [
            ("e2e", Metric::E2eCorrected),
            ("presence", Metric::PresenceDelivery),
            ("group", Metric::GroupDelivery),
            ("login", Metric::Login),
        ]
        .into_iter()
        .map(|(label, m)| (label, Percentiles::of(self.so_far.get(m))))
        .find(|(label, p)| p.count > 0 || *label == "login")
        .unwrap_or(("login", Percentiles::default()));
        format!(
            "[{:6.1}s] online {}/{clients} (started {}) logins/s {:.0} sent/s {:.0} \
             recv/s {:.0} {label} p50 {:.2}ms p99 {:.2}ms errors {} rss {:.0}MiB",
            f64::from(now.second),
            now.online,
            now.attempts,
            per_s(now.logins, before.logins),
            per_s(now.sent, before.sent),
            per_s(now.received, before.received),
            p.p50_us as f64 / 1000.0,
            p.p99_us as f64 / 1000.0,
            now.errors,
            now.rss_kib as f64 / 1024.0,
        )
    }

    /// The per-second points as CSV (`series.csv`), header first: what a results folder
    /// plots sessions, rates and the load generator's memory over time from.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("second,online,attempts,logins,sent,received,errors,loadgen_rss_kib\n");
        for p in &self.points {
            use std::fmt::Write;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                p.second, p.online, p.attempts, p.logins, p.sent, p.received, p.errors, p.rss_kib
            );
        }
        out
    }

    /// Logins per second in each closed second whose interval lies inside `from_s..=to_s`.
    pub fn logins_per_s(&self, from_s: f64, to_s: f64) -> Vec<u64> {
        self.per_s(|p| p.logins, from_s, to_s)
    }

    /// Messages received per second, likewise.
    pub fn received_per_s(&self, from_s: f64, to_s: f64) -> Vec<u64> {
        self.per_s(|p| p.received, from_s, to_s)
    }

    fn per_s(&self, counter: fn(&Point) -> u64, from_s: f64, to_s: f64) -> Vec<u64> {
        let mut before = 0;
        let mut out = Vec::new();
        for p in &self.points {
            let start = f64::from(p.second) - 1.0;
            if start >= from_s - 1e-9 && f64::from(p.second) <= to_s + 1e-9 {
                out.push(counter(p).saturating_sub(before));
            }
            before = counter(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(online: u64, logins: u64, sent: u64) -> Snapshot {
        Snapshot {
            online,
            logins,
            sent,
            attempts: logins,
            rss_kib: 1024 * online,
            ..Snapshot::default()
        }
    }

    #[test]
    fn sums_sources_and_carries_late_ones_forward() {
        let mut series = Series::new(2);
        let mut lat = Histograms::default();
        lat.record(Metric::Login, 1500);
        series.add(0, counts(3, 3, 0), &lat);
        series.add(1, counts(4, 4, 50), &lat);
        let p = series.close_second(1);
        assert_eq!((p.online, p.logins, p.sent), (7, 7, 50));
        let line = series.progress_line(10);
        assert!(
            line.contains("online 7/10") && line.contains("sent/s 50"),
            "{line}"
        );
        assert!(line.contains("login p50 1.50ms"), "{line}");
        assert!(line.contains("rss 7MiB"), "RSS summed over sources: {line}");
        // Second 2: only source 0 reports; source 1's counters carry forward.
        series.add(0, counts(5, 5, 10), &Histograms::default());
        let p = series.close_second(2);
        assert_eq!((p.online, p.logins, p.sent), (9, 9, 60));
        let line = series.progress_line(10);
        assert!(
            line.contains("sent/s 10") && line.contains("logins/s 2"),
            "{line}"
        );
        // One interval (login, second 1) holding both sources' values.
        assert_eq!(series.intervals.len(), 1);
        let h = series.intervals[0].histogram().unwrap();
        assert_eq!((series.intervals[0].second, h.len()), (1, 2));
        assert_eq!(series.logins_per_s(1.0, 2.0), vec![2]);
        assert_eq!(
            series.csv().lines().nth(2),
            Some("2,9,9,9,60,0,0,9216"),
            "second 2: 5 MiB + 4 MiB carried forward"
        );
        assert_eq!(series.logins_per_s(0.0, 2.0), vec![7, 2]);
    }
}
