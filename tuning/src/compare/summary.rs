//! rookery-load's record of a run, read back: the run folder it created under `--output`
//! and the fields of its summary.json that the compare report shows.
//!
//! Not here: running anything. Missing fields stay 0 / None rather than failing, so a newer or
//! older rookery-load still gives a partial report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What rookery-load's summary.json says (the fields the report shows).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadFigures {
    pub scenario: String,
    /// rookery-load's I/O backend.
    pub backend: String,
    pub clients: u64,
    pub logins: u64,
    pub peak_online: u64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub ramp_ms: u64,
    /// (p50, p99, p999) in microseconds.
    pub connect_us: [u64; 3],
    pub login_us: [u64; 3],
    pub message_us: [u64; 3],
    pub messages_delivered: u64,
    pub storm_logins_per_s_mean: Option<f64>,
    pub storm_login_p99_us: Option<u64>,
    pub loadgen_per_client_bytes: Option<u64>,
}

/// The run folder rookery-load created under `out` (the newest one holding summary.json).
pub(crate) fn find_summary_dir(out: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

pub(crate) fn read_summary(dir: &Path) -> Option<LoadFigures> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(figures_from(&v))
}

/// Extracts the report's fields from a summary.json value (missing fields stay 0 / None).
pub(crate) fn figures_from(v: &serde_json::Value) -> LoadFigures {
    let u = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let pct = |name: &str| [50, 99, 999].map(|q| u(&format!("/latency_us/{name}/p{q}_us")));
    let errors = v
        .pointer("/counts/errors")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| Some((k.clone(), x.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    LoadFigures {
        scenario: v
            .pointer("/config/scenario")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string(),
        backend: v
            .pointer("/backend/kind")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string(),
        clients: u("/config/clients"),
        logins: u("/counts/logins"),
        peak_online: u("/counts/peak_online"),
        errors_total: u("/counts/errors_total"),
        errors,
        ramp_ms: u("/phases_ms/ramp"),
        connect_us: pct("connect"),
        login_us: pct("login"),
        message_us: pct("e2e_corrected"),
        messages_delivered: u("/counts/messages/delivered"),
        storm_logins_per_s_mean: v
            .pointer("/storm/logins_per_s_mean")
            .and_then(serde_json::Value::as_f64),
        storm_login_p99_us: v
            .pointer("/storm/login_p99_us")
            .and_then(serde_json::Value::as_u64),
        loadgen_per_client_bytes: v
            .pointer("/memory/per_client_bytes")
            .and_then(serde_json::Value::as_u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_fields_are_extracted() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"config":{"scenario":"storm","clients":5000},
                "counts":{"logins":104484,"peak_online":5000,"errors_total":2,
                          "errors":{"reset":2,"refused":0},"messages":{"delivered":0}},
                "phases_ms":{"ramp":1206},
                "latency_us":{"login":{"p50_us":848,"p99_us":894975,"p999_us":1182719}},
                "storm":{"logins_per_s_mean":4974.2,"login_p99_us":894975},
                "memory":{"per_client_bytes":338}}"#,
        )
        .unwrap();
        let f = figures_from(&v);
        assert_eq!(f.scenario, "storm");
        assert_eq!((f.clients, f.logins, f.errors_total), (5000, 104_484, 2));
        assert_eq!(f.errors.len(), 1, "zero counts are dropped");
        assert_eq!(f.login_us, [848, 894_975, 1_182_719]);
        assert_eq!(f.connect_us, [0, 0, 0], "missing histogram stays zero");
        assert_eq!(f.storm_logins_per_s_mean, Some(4974.2));
        assert_eq!(f.loadgen_per_client_bytes, Some(338));
    }
}
