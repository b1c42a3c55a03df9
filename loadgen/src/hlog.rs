//! HdrHistogram interval logs (`.hlog`): one file per latency metric, one interval per second
//! of the run, each tagged with the metric's name, written with the hdrhistogram crate's
//! `IntervalLogWriter` and its V2 deflate serializer, so the Java `HistogramLogProcessor`,
//! HdrHistogram's plotter and the Rust crate's reader all read them.
//!
//! Timestamps: `BaseTime` and `StartTime` are the wall-clock instant of the ramp start; an
//! interval's timestamp is its start in seconds after it. Values are microseconds; the max
//! column is in milliseconds (`MaxValueDivisor` 1000).
//!
//! What it does not do: choose what an interval holds (see `series`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::metrics::Metric;
use crate::series::Interval;

/// Writes `<metric>.hlog` in `dir` for every metric with at least one interval; returns the
/// files written. `start` is the wall-clock time of the ramp start.
pub fn write_interval_logs(
    dir: &Path,
    intervals: &[Interval],
    start: SystemTime,
) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for metric in Metric::ALL {
        let mine: Vec<&Interval> = intervals.iter().filter(|i| i.metric == metric).collect();
        if mine.is_empty() {
            continue;
        }
        let path = dir.join(format!("{}.hlog", metric.name()));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        write_log(&mut file, metric, &mine, start)?;
        std::io::Write::flush(&mut file)?;
        written.push(path);
    }
    Ok(written)
}

fn write_log<W: std::io::Write>(
    out: &mut W,
    metric: Metric,
    intervals: &[&Interval],
    start: SystemTime,
) -> std::io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "rookery-load {} ({}), values in microseconds",
            metric.name(),
            metric.label()
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(out, &mut serializer)?;
    // Metric names are short, spaceless ASCII, which the format accepts as tags.
    let tag = Tag::new(metric.name());
    for interval in intervals {
        let h = interval
            .histogram()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let start_s = Duration::from_secs(u64::from(interval.second.saturating_sub(1)));
        log.write_histogram(&h, start_s, Duration::from_secs(1), tag)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_histogram, new_histogram};
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn round_trips_through_the_crates_reader() {
        let mut intervals = Vec::new();
        for second in 1..=3u32 {
            let mut h = new_histogram();
            for v in 0..u64::from(second) * 10 {
                h.record(1000 + v).unwrap();
            }
            intervals.push(Interval {
                second,
                metric: Metric::Login,
                encoded: encode_histogram(&h),
            });
        }
        let mut e2e = new_histogram();
        e2e.record(42).unwrap();
        intervals.push(Interval {
            second: 2,
            metric: Metric::E2eCorrected,
            encoded: encode_histogram(&e2e),
        });
        let dir = std::env::temp_dir().join(format!("rookery-load-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let files = write_interval_logs(&dir, &intervals, start).unwrap();
        assert_eq!(files.len(), 2);
        let bytes = std::fs::read(dir.join("login.hlog")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("#[BaseTime: 1700000000.000"), "{text}");
        let mut seen = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            match entry.unwrap() {
                LogEntry::Interval(i) => {
                    assert_eq!(i.tag().map(|t| t.as_str()), Some("login"));
                    assert_eq!(i.duration(), Duration::from_secs(1));
                    let raw = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        i.encoded_histogram(),
                    )
                    .unwrap();
                    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                        .deserialize(&mut raw.as_slice())
                        .unwrap();
                    seen.push((i.start_timestamp().as_secs(), h.len()));
                }
                LogEntry::StartTime(_) | LogEntry::BaseTime(_) => {}
            }
        }
        assert_eq!(seen, vec![(0, 10), (1, 20), (2, 30)]);
    }
}
