//! A run's record: the results folder (summary.json, one `.hgrm` per metric), the final report
//! printed on stdout, and the pass/fail gates.
//!
//! Folder: `<output>/<YYYYMMDD-HHMMSS>-<scenario>-<slug>/` (UTC; `-2`, `-3`... appended if
//! it exists). summary.json holds the whole config (secret redacted), the environment
//! (commit, kernel, CPU, backend), counts, percentiles in microseconds, and each histogram in
//! HdrHistogram V2 deflate + base64 form so later tools can merge runs exactly.
//!
//! What it does not do: interval logs and plots (a later version).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde_json::{json, Map, Value};

use crate::cli::{RunConfig, Scenario};
use crate::env::Environment;
use crate::hgrm::percentile_distribution;
use crate::metrics::{Metric, Percentiles};
use crate::run::RunResult;

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
            percentile_distribution(result.histograms.get(metric)),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let summary = summary_json(cfg, result, env);
    let text = serde_json::to_string_pretty(&summary).context("encoding summary.json")?;
    let path = dir.join("summary.json");
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(dir)
}

fn create_run_dir(output: &Path, scenario: &str, slug: &str) -> anyhow::Result<PathBuf> {
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

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn summary_json(cfg: &RunConfig, r: &RunResult, env: &Environment) -> Value {
    let mut latency = Map::new();
    let mut encoded = Map::new();
    for metric in Metric::ALL {
        let h = r.histograms.get(metric);
        latency.insert(metric.name().into(), json!(Percentiles::of(h)));
        let mut bytes = Vec::new();
        if V2DeflateSerializer::new().serialize(h, &mut bytes).is_ok() {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            encoded.insert(metric.name().into(), Value::String(text));
        }
    }
    let errors: Map<String, Value> = r
        .errors
        .entries()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "tool": "rookery-load",
        "version": env!("CARGO_PKG_VERSION"),
        "config": cfg,
        "environment": env,
        "backend": { "kind": r.backend.to_string(), "reason": r.backend_reason },
        "host_limits": {
            "nofile_soft": r.nofile_soft,
            "ip_local_port_range": [r.port_range.0, r.port_range.1],
            "source_ips": r.source_ips,
        },
        "phases_ms": { "ramp": r.ramp_ms, "steady_drain_close": r.steady_ms },
        "counts": {
            "clients": cfg.clients,
            "logins": r.logins,
            "peak_online": r.peak_online,
            "errors_total": r.errors.total(),
            "errors": errors,
            "messages": r.messages,
            "bounced": r.bounced,
            "foreign": r.foreign,
            "stale": r.stale,
            "skipped_no_peer": r.skipped_no_peer,
            "send_retries": r.send_retries,
            "latency_saturated": r.histograms.saturated,
        },
        "memory": {
            "per_client_bytes": r.memory.per_client_bytes,
            "rss_marginal_per_client_bytes": r.memory.rss_marginal_per_client_bytes,
            "rss_growth_per_online_client_bytes": r.memory.rss_growth_per_online_client_bytes,
            "client_slot_bytes": crate::worker::slot_bytes(),
        },
        "latency_us": latency,
        "hgrm_value_unit": "ms",
        "histograms_v2_deflate_base64": encoded,
        "gates": { "violations": violations(cfg, r) },
    })
}

/// Reasons the run failed its gates (empty when it passed): messages lost, no client online,
/// `--max-p99`, `--max-errors`.
pub fn violations(cfg: &RunConfig, r: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    if r.logins == 0 {
        out.push("no client came online".to_string());
    }
    if r.messages.lost > 0 {
        out.push(format!(
            "{} of {} messages lost",
            r.messages.lost, r.messages.sent
        ));
    }
    if r.messages.unexpected > 0 {
        out.push(format!(
            "{} probes no sender sent (corruption or misrouting)",
            r.messages.unexpected
        ));
    }
    if let Some(max_ms) = cfg.max_p99_ms {
        let metric = gated_metric(cfg.scenario);
        let p99_ms = Percentiles::of(r.histograms.get(metric)).p99_us as f64 / 1000.0;
        if p99_ms > max_ms {
            out.push(format!(
                "{} p99 {p99_ms:.3} ms > --max-p99 {max_ms} ms",
                metric.label()
            ));
        }
    }
    if let Some(max) = cfg.max_errors {
        if r.errors.total() > max {
            out.push(format!(
                "{} client errors > --max-errors {max}",
                r.errors.total()
            ));
        }
    }
    out
}

fn gated_metric(scenario: Scenario) -> Metric {
    match scenario {
        Scenario::Chat => Metric::E2eCorrected,
        Scenario::Hold => Metric::Login,
    }
}

/// The final report printed on stdout.
pub fn report_text(cfg: &RunConfig, r: &RunResult, dir: Option<&Path>) -> String {
    let mut out = String::new();
    let rate = match cfg.scenario {
        Scenario::Chat => format!(", {} msg/s each ({:?})", cfg.rate, cfg.pattern).to_lowercase(),
        Scenario::Hold => String::new(),
    };
    // Writing to a String cannot fail; results are ignored below.
    let _ = writeln!(
        out,
        "\nrookery-load {}: {} clients{rate}, {} s against {}, backend {}, {} threads",
        cfg.scenario.name(),
        cfg.clients,
        cfg.duration_ms as f64 / 1000.0,
        cfg.server,
        r.backend,
        cfg.threads
    );
    let _ = writeln!(
        out,
        "{:<27} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for metric in Metric::ALL {
        let p = Percentiles::of(r.histograms.get(metric));
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
    let m = &r.messages;
    let _ = writeln!(
        out,
        "logins {} of {} (ramp {:.1} s); messages sent {}, delivered {}, lost {}, duplicated {}, \
         out of order {}, bounced {}",
        r.logins,
        cfg.clients,
        r.ramp_ms as f64 / 1000.0,
        m.sent,
        m.delivered,
        m.lost,
        m.duplicated,
        m.out_of_order,
        r.bounced
    );
    let errors: Vec<String> = r
        .errors
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
    if let Some(bytes) = r.memory.per_client_bytes {
        let _ = writeln!(
            out,
            "memory: {bytes} B user space per simulated client (marginal RSS + slot)"
        );
    }
    if let Some(dir) = dir {
        let _ = writeln!(out, "results: {}", dir.display());
    }
    out
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
