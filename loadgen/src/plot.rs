//! The run's two plots, as SVG (drawn with `plotters`; SVG needs no system fonts):
//!
//! - `latency-percentiles.svg`: the classic HdrHistogram percentile curve, one line per latency
//!   metric that has values: x is 1/(1-p) on a log scale (ticks labelled 90%, 99%, 99.9%...),
//!   y the latency in milliseconds, on a log scale too so a 0.1 ms connect and a 500 ms
//!   login share one chart;
//! - `timeline.svg`: clients online (left axis) and messages and logins per second (right
//!   axis) over the run, from the per-second series.
//!
//! What it does not do: read files, or plot anything but what a run recorded.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::metrics::Metric;
use crate::series::Point;

/// Why a plot could not be drawn (the backend's error, as text: it is not `Send`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "drawing a plot: {}", self.0)
    }
}

impl std::error::Error for PlotError {}

fn err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

const SIZE: (u32, u32) = (960, 600);
/// The percentile curve stops at 99.9999%: beyond it a run rarely has a value of its own.
const MAX_INVERSE: f64 = 1e6;
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// (1/(1-p), milliseconds) points of a histogram in microseconds: 5 steps per half-distance,
/// as the `.hgrm` file has them.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for step in h.iter_quantiles(5) {
        let q = step.quantile_iterated_to();
        let inverse = if q >= 1.0 {
            MAX_INVERSE
        } else {
            (1.0 / (1.0 - q)).min(MAX_INVERSE)
        };
        let ms = (h.highest_equivalent(step.value_iterated_to()) as f64 / 1000.0).max(0.001);
        points.push((inverse, ms));
    }
    points
}

/// "99.9%" for x = 1000.
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Draws the percentile curves of `metrics` (label, histogram in microseconds).
pub fn percentiles_svg(
    path: &Path,
    metrics: &[(Metric, &Histogram<u64>)],
) -> Result<(), PlotError> {
    let curves: Vec<(Metric, Vec<(f64, f64)>)> = metrics
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|&(m, h)| (m, percentile_points(h)))
        .collect();
    let all = curves.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if hi > 0.0 {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.001, 1.0)
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..MAX_INVERSE).log_scale(), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&percentile_label)
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (k, (metric, points)) in curves.into_iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(metric.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Per-second rates from cumulative points: (second, value per second).
fn rate(points: &[Point], pick: fn(&Point) -> u64) -> Vec<(f64, f64)> {
    let mut before = (0u32, 0u64);
    points
        .iter()
        .map(|p| {
            let seconds = f64::from(p.second.saturating_sub(before.0).max(1));
            let value = pick(p).saturating_sub(before.1) as f64 / seconds;
            before = (p.second, pick(p));
            (f64::from(p.second), value)
        })
        .collect()
}

/// Draws clients online and the message and login rates over the run.
pub fn timeline_svg(path: &Path, points: &[Point]) -> Result<(), PlotError> {
    let end_s = points.last().map_or(1.0, |p| f64::from(p.second)).max(1.0);
    let online: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (f64::from(p.second), p.online as f64))
        .collect();
    let rates = [
        ("msgs/s sent", rate(points, |p| p.sent)),
        ("msgs/s received", rate(points, |p| p.received)),
        ("logins/s", rate(points, |p| p.logins)),
    ];
    let online_max = online.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let rate_max = rates
        .iter()
        .flat_map(|(_, r)| r.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("connections and throughput", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..end_s, 0.0..online_max)
        .map_err(err)?
        .set_secondary_coord(0.0..end_s, 0.0..rate_max);
    chart
        .configure_mesh()
        .x_desc("seconds since the ramp started")
        .y_desc("clients online")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("per second")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let black = BLACK.stroke_width(2);
    chart
        .draw_series(LineSeries::new(online, black))
        .map_err(err)?
        .label("clients online")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], black));
    for (k, (label, values)) in rates.into_iter().enumerate() {
        let color = COLORS[k % COLORS.len()].stroke_width(2);
        chart
            .draw_secondary_series(LineSeries::new(values, color))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rookery-load-plot-{}-{name}", std::process::id()))
    }

    fn check_svg(path: &Path, must_contain: &[&str]) {
        let text = std::fs::read_to_string(path).unwrap();
        let _ = std::fs::remove_file(path);
        assert!(text.len() > 1000, "{} bytes", text.len());
        assert!(text.trim_start().starts_with("<svg"), "{}", &text[..80]);
        assert!(text.trim_end().ends_with("</svg>"));
        assert_eq!(text.matches("<svg").count(), 1);
        for needle in must_contain {
            assert!(text.contains(needle), "{needle:?} missing");
        }
    }

    #[test]
    fn percentile_labels_read_as_percent() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&1e6), "99.9999%");
    }

    #[test]
    fn draws_percentile_curves() {
        let (mut a, mut b) = (new_histogram(), new_histogram());
        for v in 1..=10_000 {
            a.record(v * 10).unwrap();
            b.record(50 + v % 7).unwrap();
        }
        let points = percentile_points(&a);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.last().unwrap().0, MAX_INVERSE);
        let path = temp("p.svg");
        let empty = new_histogram();
        percentiles_svg(
            &path,
            &[
                (Metric::Login, &a),
                (Metric::Connect, &b),
                (Metric::SmAck, &empty),
            ],
        )
        .unwrap();
        check_svg(&path, &["login", "tcp connect", "99.9%", "<polyline"]);
    }

    #[test]
    fn draws_the_timeline() {
        let points: Vec<Point> = (1..=20)
            .map(|s| Point {
                second: s,
                online: u64::from(s.min(10)) * 100,
                logins: u64::from(s.min(10)) * 100,
                sent: u64::from(s) * 1000,
                received: u64::from(s) * 990,
                ..Point::default()
            })
            .collect();
        assert_eq!(rate(&points, |p| p.sent)[3], (4.0, 1000.0));
        let path = temp("t.svg");
        timeline_svg(&path, &points).unwrap();
        check_svg(
            &path,
            &["clients online", "msgs/s sent", "logins/s", "<polyline"],
        );
        // An empty run still gives a valid (empty) chart.
        let path = temp("t0.svg");
        timeline_svg(&path, &[]).unwrap();
        check_svg(&path, &["clients online"]);
    }
}
