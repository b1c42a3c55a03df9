//! The classic HdrHistogram percentile distribution text (`.hgrm`), as printed by the Java
//! `outputPercentileDistribution` and by wrk2, so existing tools read it (for example the
//! HdrHistogram plotter at hdrhistogram.github.io/HdrHistogram/plotFiles.html).
//!
//! Columns: Value (milliseconds: recorded microseconds scaled by 1000), Percentile,
//! TotalCount, 1/(1-Percentile); 5 ticks per half distance to 100%; the final 100% line has no
//! last column; then the `#[Mean ...]`, `#[Max ...]`, `#[Buckets ...]` trailer.
//!
//! What it does not do: the interval log format (a later version), or CSV output.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Microseconds per output unit (milliseconds).
const SCALE: f64 = 1000.0;
/// Decimal places of values: the histogram's 3 significant digits.
const DECIMALS: usize = 3;
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Renders `h` (values in microseconds) as an `.hgrm` text.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; results are ignored throughout.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for step in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = h.highest_equivalent(step.value_iterated_to()) as f64 / SCALE;
            let q = step.quantile_iterated_to();
            if q < 1.0 {
                let inverse = 1.0 / (1.0 - q);
                let _ = writeln!(
                    out,
                    "{value:12.DECIMALS$} {q:2.12} {total:10} {inverse:14.2}"
                );
            } else {
                let _ = writeln!(out, "{value:12.DECIMALS$} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / SCALE,
            h.stdev() / SCALE,
            h.highest_equivalent(h.max()) as f64 / SCALE,
        )
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.DECIMALS$}, StdDeviation   = {sd:12.DECIMALS$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.DECIMALS$}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// Sub-buckets per bucket: the power of two covering 2 * 10^sigfig (HdrHistogram's rule).
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    fn rows(text: &str) -> Vec<Vec<f64>> {
        text.lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect()
    }

    #[test]
    fn writes_the_classic_layout() {
        let mut h = new_histogram();
        for us in 1..=10_000 {
            h.record(us).unwrap();
        }
        let text = percentile_distribution(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        let rows = rows(&text);
        assert_eq!(rows[0], vec![0.001, 0.0, 1.0, 1.0]);
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3, "the 100% line has no 1/(1-p) column");
        assert_eq!((last[1], last[2]), (1.0, 10_000.0));
        assert!((last[0] - 10.0).abs() < 0.01, "max ~10 ms, got {}", last[0]);
        let median = rows.iter().find(|r| r[1] >= 0.5).unwrap();
        assert!((median[0] - 5.0).abs() < 0.01, "{median:?}");
        for r in &rows[..rows.len() - 1] {
            assert!((r[3] - 1.0 / (1.0 - r[1])).abs() < 0.01, "{r:?}");
        }
        // Counts and percentiles never go down.
        assert!(rows
            .windows(2)
            .all(|w| w[1][1] >= w[0][1] && w[1][2] >= w[0][2]));
        // HdrHistogram's mean uses each bucket's median-equivalent value: 5.001 here.
        assert!(
            text.contains("#[Mean    =        5.001, StdDeviation   =        2.887]"),
            "{text}"
        );
        assert!(text.contains("Total count    =        10000]"));
        assert!(text.ends_with("SubBuckets     =         2048]\n"));
    }

    #[test]
    fn empty_histogram_has_header_and_trailer_only() {
        let text = percentile_distribution(&new_histogram());
        assert!(rows(&text).is_empty());
        assert!(text.contains("Total count    =            0]"));
    }
}
