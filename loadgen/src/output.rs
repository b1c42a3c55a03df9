//! A run's record: the results folder (summary.json, one `.hgrm` per metric), the final report
//! printed on stdout, and the pass/fail gates.
//!
//! Folder: `<output>/<YYYYMMDD-HHMMSS>-<scenario>-<slug>/` (UTC; `-2`, `-3`... appended if
//! it exists). summary.json (see `summary`) holds the whole config (secret redacted), the
//! environment (commit, kernel, CPU, backend), counts, percentiles in microseconds, the
//! per-second series, and each histogram in HdrHistogram V2 deflate + base64 form so later
//! tools can merge runs exactly. Beside it: a `.hgrm` per metric, a `.hlog` interval log per
//! metric that has values (see `hlog`), `latency-percentiles.svg` and `timeline.svg` (see
//! `plot`).
//!
//! What it does not do: measure anything; a plot that cannot be drawn is a warning, not a
//! failed run (the numbers are already written by then).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::warn;

use crate::cli::{RunConfig, Scenario};
use crate::env::Environment;
use crate::hgrm::percentile_distribution;
use crate::metrics::{Metric, Percentiles};
use crate::run::RunResult;
use crate::sys::monotonic_ns;
use crate::{hlog, plot};

mod fanout;
mod summary;

/// Creates the run's folder and writes every file; returns the folder.
pub fn write_results(
    cfg: &RunConfig,
    result: &RunResult,
    env: &Environment,
) -> anyhow::Result<PathBuf> {
    let dir = create_run_dir(&cfg.output, cfg.scenario.name(), &cfg.slug)?;
    for metric in Metric::ALL {
        let path = dir.join(format!("{}.hgrm", metric.name()));
        std::fs::write(
            &path,
            percentile_distribution(result.histograms().get(metric)),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    // The ramp start on the wall clock: now, minus how long ago it was on the monotonic one.
    let ago = monotonic_ns().saturating_sub(result.meta.go_ns);
    let start = std::time::SystemTime::now() - std::time::Duration::from_nanos(ago);
    hlog::write_interval_logs(&dir, &result.series.intervals, start)
        .with_context(|| format!("writing interval logs in {}", dir.display()))?;
    let curves: Vec<_> = Metric::ALL
        .into_iter()
        .map(|m| (m, result.histograms().get(m)))
        .collect();
    if let Err(err) = plot::percentiles_svg(&dir.join("latency-percentiles.svg"), &curves) {
        warn!("latency-percentiles.svg: {err}");
    }
    if let Err(err) = plot::timeline_svg(&dir.join("timeline.svg"), &result.series.points) {
        warn!("timeline.svg: {err}");
    }
    let path = dir.join("series.csv");
    std::fs::write(&path, result.series.csv())
        .with_context(|| format!("writing {}", path.display()))?;
    let summary = summary::summary_json(cfg, result, env);
    let text = serde_json::to_string_pretty(&summary).context("encoding summary.json")?;
    let path = dir.join("summary.json");
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(dir)
}

pub(crate) fn create_run_dir(output: &Path, scenario: &str, slug: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(output)
        .with_context(|| format!("--output {}: cannot create the folder", output.display()))?;
    let base = format!(
        "{}-{scenario}-{slug}",
        utc_stamp(std::time::SystemTime::now())
    );
    for attempt in 1..100 {
        let name = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        let dir = output.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!(
        "{}: 99 run folders named {base} already exist",
        output.display()
    )
}

/// `YYYYMMDD-HHMMSS` in UTC (the results/ folder convention, shared with rookery-tune).
pub use rookery_tune::utc_stamp_at as utc_stamp;

/// Reasons the run failed its gates (empty when it passed): messages lost, no client online,
/// `--max-p99`, `--max-errors`.
pub fn violations(cfg: &RunConfig, r: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    if r.report.logins == 0 {
        out.push("no client came online".to_string());
    }
    match r.acks {
        // Only what the server acknowledged is guaranteed (XEP-0198).
        Some(acks) if acks.acked_lost > 0 => out.push(format!(
            "{} of {} acknowledged messages lost",
            acks.acked_lost, acks.acknowledged
        )),
        Some(_) => {}
        None if r.messages.lost > 0 => out.push(format!(
            "{} of {} {} lost",
            r.messages.lost,
            r.messages.sent,
            if cfg.fanout.is_some() {
                "expected receipts"
            } else {
                "messages"
            }
        )),
        None => {}
    }
    if r.report.delay_missing > 0 {
        out.push(format!(
            "{} stored messages delivered without <delay xmlns='urn:xmpp:delay'/> (XEP-0203)",
            r.report.delay_missing
        ));
    }
    if r.messages.unexpected > 0 {
        out.push(format!(
            "{} probes no sender sent (corruption or misrouting)",
            r.messages.unexpected
        ));
    }
    if let Some(receipts) = r.receipts.filter(|t| t.lost > 0) {
        out.push(format!(
            "{} of {} receipts missing",
            receipts.lost, receipts.sent
        ));
    }
    if let Some(max_ms) = cfg.max_p99_ms {
        let metric = gated_metric(cfg.scenario);
        let p99_ms = Percentiles::of(r.histograms().get(metric)).p99_us as f64 / 1000.0;
        if p99_ms > max_ms {
            out.push(format!(
                "{} p99 {p99_ms:.3} ms > --max-p99 {max_ms} ms",
                metric.label()
            ));
        }
    }
    if let Some(max) = cfg.max_errors {
        if r.errors().total() > max {
            out.push(format!(
                "{} client errors > --max-errors {max}",
                r.errors().total()
            ));
        }
    }
    out
}

fn gated_metric(scenario: Scenario) -> Metric {
    match scenario {
        Scenario::Chat => Metric::E2eCorrected,
        Scenario::Offline => Metric::OfflineDelivery,
        Scenario::Presence => Metric::PresenceDelivery,
        Scenario::Group => Metric::GroupFanoutLast,
        Scenario::Hold | Scenario::Storm => Metric::Login,
    }
}

/// The final report printed on stdout.
pub fn report_text(cfg: &RunConfig, r: &RunResult, dir: Option<&Path>) -> String {
    let mut out = String::new();
    let rate = match cfg.scenario {
        Scenario::Chat => format!(", {} msg/s each ({:?})", cfg.rate, cfg.pattern).to_lowercase(),
        Scenario::Offline => format!(
            " ({} senders x {} messages at {} msg/s to {} offline recipients)",
            cfg.senders,
            cfg.messages,
            cfg.rate,
            cfg.clients - cfg.senders
        ),
        Scenario::Presence => {
            format!(", {} status changes/s each ({:?})", cfg.rate, cfg.pattern).to_lowercase()
        }
        Scenario::Group => {
            format!(", {} msg/s per group ({:?})", cfg.rate, cfg.pattern).to_lowercase()
        }
        Scenario::Hold | Scenario::Storm => String::new(),
    };
    // Writing to a String cannot fail; results are ignored below.
    let _ = writeln!(
        out,
        "\nrookery-load {}: {} clients{rate}, {} s against {} over {}, backend {}, {} process(es) \
         x {} threads",
        cfg.scenario.name(),
        cfg.clients,
        cfg.duration_ms as f64 / 1000.0,
        cfg.server,
        match cfg.transport {
            crate::cli::TransportArg::Tcp => cfg.transport.name().to_owned(),
            crate::cli::TransportArg::Websocket => {
                format!("{} {}", cfg.transport.name(), cfg.ws_path)
            }
        },
        r.meta.backend,
        r.processes,
        r.threads_per_process
    );
    let _ = writeln!(out, "{}", security_line(cfg, r));
    latency_table(r, &mut out);
    let m = &r.messages;
    let _ = writeln!(
        out,
        "logins {} ({} clients; ramp {:.1} s); {} {}, delivered {}, lost {}, duplicated {}, \
         out of order {}, bounced {}, redirects {}",
        r.report.logins,
        cfg.clients,
        r.ramp_ms as f64 / 1000.0,
        if cfg.fanout.is_some() {
            "receipts expected"
        } else {
            "messages sent"
        },
        m.sent,
        m.delivered,
        m.lost,
        m.duplicated,
        m.out_of_order,
        r.report.bounced,
        r.report.redirects
    );
    fanout::lines(cfg, r, &mut out);
    extra_lines(cfg, r, &mut out);
    let errors: Vec<String> = r
        .errors()
        .entries()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "errors: {}",
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        }
    );
    if let Some(bytes) = r.meta.memory.per_client_bytes {
        let _ = writeln!(
            out,
            "memory: {bytes} B user space per simulated client (marginal RSS + slot + steady growth)"
        );
    }
    if let Some(dir) = dir {
        let _ = writeln!(out, "results: {}", dir.display());
    }
    out
}

/// TLS and SASL of the run: version, cipher, full vs resumed handshakes, and the login rate
/// of the ramp (all logins over the ramp's length).
pub fn security_line(cfg: &RunConfig, r: &RunResult) -> String {
    let s = &cfg.security;
    let t = &r.report.tls;
    let ramp_s = r.ramp_ms as f64 / 1000.0;
    // The ramp's logins: all but the storm's reconnects.
    let ramp_logins = r.report.logins.saturating_sub(r.report.storm_logins);
    let rate = if ramp_s > 0.0 {
        format!("{:.0}", ramp_logins as f64 / ramp_s)
    } else {
        "-".into()
    };
    let sasl = crate::security::mechanism_name(s.sasl);
    let tls = match s.tls {
        crate::cli::TlsArg::None => "tls none".to_string(),
        mode => format!(
            "tls {} ({} {}{}), handshakes {} full + {} resumed (resumption {}), tls errors {}",
            if mode == crate::cli::TlsArg::Direct {
                "direct"
            } else {
                "starttls"
            },
            t.version_name(),
            t.cipher_name(),
            if s.tls_insecure { ", NOT VERIFIED" } else { "" },
            t.full,
            t.resumed,
            if s.tls_resume { "on" } else { "off" },
            t.failed
        ),
    };
    format!("security: {tls}; sasl {sasl}; ramp logins/s {rate}")
}

/// One row per metric that has values (connect and login always).
fn latency_table(r: &RunResult, out: &mut String) {
    let _ = writeln!(
        out,
        "{:<27} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for metric in Metric::ALL {
        let p = Percentiles::of(r.histograms().get(metric));
        if p.count == 0 && !matches!(metric, Metric::Connect | Metric::Login) {
            continue;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{:<27} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            metric.label(),
            p.count,
            ms(p.p50_us),
            ms(p.p90_us),
            ms(p.p99_us),
            ms(p.p999_us),
            ms(p.max_us)
        );
    }
}

/// Storm, receipts and stream management lines, when they apply.
fn extra_lines(cfg: &RunConfig, r: &RunResult, out: &mut String) {
    if let Some((mean, peak)) = r.storm_logins_per_s(cfg) {
        let _ = writeln!(
            out,
            "storm: {} logins in {} s: {mean:.0} logins/s mean, {peak} in the busiest second",
            r.report.storm_logins,
            cfg.duration_ms as f64 / 1000.0
        );
    }
    if r.report.keepalives > 0 {
        let _ = writeln!(
            out,
            "keepalives: {} whitespace pings sent (one per client every {} s)",
            r.report.keepalives,
            cfg.keepalive_ms as f64 / 1000.0
        );
    }
    if let Some(storm) = r.chat_storm() {
        let back = storm.back_ms.map_or("not all back".to_string(), |ms| {
            format!("last back after {:.1} s", ms as f64 / 1000.0)
        });
        let rate = storm
            .logins_per_s
            .map_or(String::new(), |r| format!(", {r:.0} logins/s"));
        let _ = writeln!(
            out,
            "storm at {:.1} s: {} clients dropped, {} logins again; {back}{rate}",
            storm.after_go_ms as f64 / 1000.0,
            storm.dropped,
            storm.logins,
        );
    }
    if let Some(t) = r.receipts {
        let _ = writeln!(
            out,
            "receipts: expected {}, received {}, missing {}, duplicated {}",
            t.sent, t.delivered, t.lost, t.duplicated
        );
    }
    if let Some(a) = r.acks {
        let _ = writeln!(
            out,
            "acknowledged (XEP-0198) {}: delivered {}, lost {}; unacknowledged {}: delivered {}, \
             lost {}",
            a.acknowledged,
            a.acked_delivered,
            a.acked_lost,
            a.unacked,
            a.unacked_delivered,
            a.unacked_lost
        );
    }
    if let Some(d) = crate::offline::drain(r).filter(|_| cfg.scenario == Scenario::Offline) {
        let _ = writeln!(
            out,
            "offline drain: {} delivered in {:.2} s after phase 2 began: {:.0} msgs/s mean, {} in \
             the busiest second; without <delay/>: {}",
            d.delivered,
            d.span_ms as f64 / 1000.0,
            d.rate_mean_per_s,
            d.rate_peak_per_s,
            r.report.delay_missing
        );
    }
    if r.report.sm_enabled + r.report.sm_failed > 0 {
        let _ = writeln!(
            out,
            "stream management (XEP-0198): enabled on {} streams, refused on {}",
            r.report.sm_enabled, r.report.sm_failed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2024-02-29 23:59:59 UTC (a leap day).
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "20240229-235959"
        );
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }
}
