//! summary.json: everything about a run a later tool or reader needs, in one JSON document.
//!
//! What it does not do: judge the run (the gate violations come from `output::violations`).

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde_json::{json, Map, Value};

use super::violations;
use crate::cli::{RunConfig, Scenario};
use crate::env::Environment;
use crate::metrics::{Metric, Percentiles};
use crate::run::RunResult;

pub fn summary_json(cfg: &RunConfig, r: &RunResult, env: &Environment) -> Value {
    let mut latency = Map::new();
    let mut encoded = Map::new();
    for metric in Metric::ALL {
        let h = r.histograms().get(metric);
        latency.insert(metric.name().into(), json!(Percentiles::of(h)));
        let mut bytes = Vec::new();
        if V2DeflateSerializer::new().serialize(h, &mut bytes).is_ok() {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            encoded.insert(metric.name().into(), Value::String(text));
        }
    }
    let errors: Map<String, Value> = r
        .errors()
        .entries()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let storm = r.storm_logins_per_s(cfg).map(|(mean, peak)| {
        json!({
            "logins": r.report.storm_logins,
            "logins_per_s_mean": mean,
            "logins_per_s_peak": peak,
            "login_p50_us": Percentiles::of(r.histograms().get(Metric::Login)).p50_us,
            "login_p99_us": Percentiles::of(r.histograms().get(Metric::Login)).p99_us,
        })
    });
    let offline = (cfg.scenario == Scenario::Offline).then(|| {
        let delivery = Percentiles::of(r.histograms().get(Metric::OfflineDelivery));
        json!({
            "senders": cfg.senders,
            "recipients": cfg.clients - cfg.senders,
            "messages_per_sender": cfg.messages,
            "drain": crate::offline::drain(r),
            "delivery_p50_us": delivery.p50_us,
            "delivery_p99_us": delivery.p99_us,
            "delay_missing": r.report.delay_missing,
        })
    });
    let tls = &r.report.tls;
    let security = json!({
        "tls": cfg.security.tls,
        "tls_verified": cfg.security.tls != crate::cli::TlsArg::None && !cfg.security.tls_insecure,
        "tls_resume": cfg.security.tls_resume,
        "tls_version": (tls.handshakes() > 0).then(|| tls.version_name()),
        "tls_cipher": (tls.handshakes() > 0).then(|| tls.cipher_name()),
        "handshakes_full": tls.full,
        "handshakes_resumed": tls.resumed,
        "tls_errors": tls.failed,
        "sasl": crate::security::mechanism_name(cfg.security.sasl),
        "ramp_logins_per_s": (r.ramp_ms > 0).then(|| {
            let ramp_logins = r.report.logins.saturating_sub(r.report.storm_logins);
            ramp_logins as f64 / (r.ramp_ms as f64 / 1000.0)
        }),
    });
    let mut summary = json!({
        "chat_storm": r.chat_storm(),
        "security": security,
        "tool": "rookery-load",
        "version": env!("CARGO_PKG_VERSION"),
        "config": cfg,
        "environment": env,
        "backend": { "kind": r.meta.backend, "reason": r.meta.backend_reason },
        "host_limits": {
            "nofile_soft": r.meta.nofile_soft,
            "ip_local_port_range": [r.meta.port_range.0, r.meta.port_range.1],
            "source_ips": r.meta.source_ips,
        },
        "processes": { "count": r.processes, "threads_per_process": r.threads_per_process },
        "phases_ms": { "ramp": r.ramp_ms, "steady_drain_close": r.steady_ms },
        "counts": {
            "clients": cfg.clients,
            "logins": r.report.logins,
            "peak_online": r.report.peak_online,
            "errors_total": r.errors().total(),
            "errors": errors,
            "messages": r.messages,
            "acks": r.acks,
            "receipts": r.receipts,
            "bounced": r.report.bounced,
            "redirects": r.report.redirects,
            "keepalives": r.report.keepalives,
            "foreign": r.report.foreign,
            "stale": r.report.stale,
            "skipped_no_peer": r.report.skipped_no_peer,
            "send_retries": r.report.send_retries,
            "latency_saturated": r.histograms().saturated,
            "sm_enabled_streams": r.report.sm_enabled,
            "sm_refused_streams": r.report.sm_failed,
            "sm_unavailable_streams": r.report.sm_unavailable,
        },
        "offline": offline,
        "storm": storm,
        "series_per_second": r.series.points,
        "memory": {
            "per_client_bytes": r.meta.memory.per_client_bytes,
            "rss_marginal_per_client_bytes": r.meta.memory.rss_marginal_per_client_bytes,
            "rss_growth_per_online_client_bytes": r.meta.memory.rss_growth_per_online_client_bytes,
            "rss_steady_growth_per_client_bytes": r.meta.memory.rss_steady_growth_per_client_bytes,
            "client_slot_bytes": crate::worker::slot_bytes(),
        },
        "latency_us": latency,
        "hgrm_value_unit": "ms",
        "histograms_v2_deflate_base64": encoded,
        "gates": { "violations": violations(cfg, r) },
    });
    // Presence and group: their own section, under the scenario's name.
    if let Some(section) = super::fanout::summary(cfg, r) {
        summary[cfg.scenario.name()] = section;
    }
    summary
}
