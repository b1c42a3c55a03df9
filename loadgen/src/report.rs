//! `rookery-load report DIR [DIR...]`: recorded runs side by side, one column per run.
//!
//! A DIR is a run folder (holding summary.json) or a folder of run folders (each one taken,
//! in name order). summary.json is read as loose JSON so runs recorded by older or newer
//! versions still show whatever fields they share; a missing field prints as `-`.
//!
//! What it does not do: merge or re-compute histograms (summary.json keeps them encoded for
//! a later version that will).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

/// Widest a run column gets; longer folder names are shortened from the left.
const COLUMN_WIDTH: usize = 24;

/// Finds the runs named by `dirs` and renders the table.
pub fn report(dirs: &[PathBuf]) -> anyhow::Result<String> {
    let mut runs = Vec::new();
    for dir in dirs {
        for run_dir in run_dirs(dir)? {
            let path = run_dir.join("summary.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let summary: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            runs.push((name_of(&run_dir), summary));
        }
    }
    Ok(render(&runs))
}

fn run_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("summary.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "{}: not a run folder and not readable as a folder of runs",
            dir.display()
        )
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    if found.is_empty() {
        bail!(
            "{}: no summary.json in it or in its sub-folders",
            dir.display()
        );
    }
    found.sort();
    Ok(found)
}

fn name_of(dir: &Path) -> String {
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= COLUMN_WIDTH {
        return name;
    }
    let tail: String = chars[chars.len() - (COLUMN_WIDTH - 1)..].iter().collect();
    format!("~{tail}")
}

/// One table row: a label and how to read it from a summary.
type Row = (&'static str, fn(&Value) -> String);

const ROWS: &[Row] = &[
    ("scenario", |s| text(&s["config"]["scenario"])),
    ("clients", |s| text(&s["config"]["clients"])),
    ("msgs/s per client", |s| text(&s["config"]["rate"])),
    ("duration (s)", |s| ms_as_s(&s["config"]["duration_ms"])),
    ("backend", |s| text(&s["backend"]["kind"])),
    ("transport", |s| text(&s["config"]["transport"])),
    ("threads", |s| text(&s["config"]["threads"])),
    ("kernel", |s| text(&s["environment"]["kernel"])),
    ("commit", |s| {
        text(&s["environment"]["git_commit"])
            .chars()
            .take(10)
            .collect()
    }),
    ("logins", |s| text(&s["counts"]["logins"])),
    ("errors", |s| text(&s["counts"]["errors_total"])),
    ("messages sent", |s| text(&s["counts"]["messages"]["sent"])),
    ("delivered", |s| text(&s["counts"]["messages"]["delivered"])),
    ("lost", |s| text(&s["counts"]["messages"]["lost"])),
    ("login p50 (ms)", |s| {
        us_as_ms(&s["latency_us"]["login"]["p50_us"])
    }),
    ("login p99 (ms)", |s| {
        us_as_ms(&s["latency_us"]["login"]["p99_us"])
    }),
    ("e2e p50 (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_corrected"]["p50_us"])
    }),
    ("e2e p90 (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_corrected"]["p90_us"])
    }),
    ("e2e p99 (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_corrected"]["p99_us"])
    }),
    ("e2e p99.9 (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_corrected"]["p999_us"])
    }),
    ("e2e max (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_corrected"]["max_us"])
    }),
    ("e2e p99 uncorr. (ms)", |s| {
        us_as_ms(&s["latency_us"]["e2e_uncorrected"]["p99_us"])
    }),
    ("send lag p99 (ms)", |s| {
        us_as_ms(&s["latency_us"]["send_lag"]["p99_us"])
    }),
    ("fan-out p99 each (ms)", |s| {
        us_as_ms(fanout(s, "delivery_p99_us"))
    }),
    ("fan-out p99 last (ms)", |s| {
        us_as_ms(fanout(s, "fanout_last_p99_us"))
    }),
    ("processes", |s| text(&s["processes"]["count"])),
    ("storm logins/s mean", |s| {
        s["storm"]["logins_per_s_mean"]
            .as_f64()
            .map_or_else(|| "-".into(), |v| format!("{v:.0}"))
    }),
    ("storm logins/s peak", |s| {
        text(&s["storm"]["logins_per_s_peak"])
    }),
    ("receipts missing", |s| {
        text(&s["counts"]["receipts"]["lost"])
    }),
    ("sm ack p99 (ms)", |s| {
        us_as_ms(&s["latency_us"]["sm_ack"]["p99_us"])
    }),
    ("gate violations", |s| {
        match s["gates"]["violations"].as_array() {
            Some(v) => v.len().to_string(),
            None => "-".into(),
        }
    }),
];

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value of the presence or group section (null for the other scenarios).
fn fanout<'a>(s: &'a Value, key: &str) -> &'a Value {
    match &s["presence"] {
        Value::Null => &s["group"][key],
        presence => &presence[key],
    }
}

fn us_as_ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |us| format!("{:.3}", us / 1000.0))
}

fn ms_as_s(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |ms| format!("{}", ms / 1000.0))
}

fn render(runs: &[(String, Value)]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; results are ignored below.
    let _ = write!(out, "{:<22}", "run");
    for (name, _) in runs {
        let _ = write!(out, " {name:>COLUMN_WIDTH$}");
    }
    out.push('\n');
    for (label, read) in ROWS {
        let _ = write!(out, "{label:<22}");
        for (_, summary) in runs {
            let cell: String = read(summary).chars().take(COLUMN_WIDTH).collect();
            let _ = write!(out, " {cell:>COLUMN_WIDTH$}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_runs_side_by_side_from_folders() {
        let root = std::env::temp_dir().join(format!("rookery-load-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (name, p99) in [("run-a", 1500), ("run-b", 2500)] {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let summary = serde_json::json!({
                "config": { "scenario": "chat", "clients": 50, "duration_ms": 5000 },
                "latency_us": { "e2e_corrected": { "p99_us": p99 } },
                "gates": { "violations": [] },
            });
            std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        }
        let table = report(std::slice::from_ref(&root)).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("run-a") && lines[0].contains("run-b"),
            "{table}"
        );
        let p99 = lines
            .iter()
            .find(|l| l.starts_with("e2e p99 (ms)"))
            .unwrap();
        assert!(p99.contains("1.500") && p99.contains("2.500"), "{p99}");
        let backend = lines.iter().find(|l| l.starts_with("backend")).unwrap();
        assert!(
            backend.trim_end().ends_with('-'),
            "missing fields print as -: {backend}"
        );
        assert!(report(&[root.join("nope")]).is_err());
    }

    #[test]
    fn fanout_rows_read_the_presence_or_group_section() {
        let presence = serde_json::json!({ "presence": { "fanout_last_p99_us": 4000 } });
        let group = serde_json::json!({ "group": { "fanout_last_p99_us": 7500 } });
        let chat = serde_json::json!({ "latency_us": {} });
        let cell = |s: &Value| us_as_ms(fanout(s, "fanout_last_p99_us"));
        assert_eq!(
            (cell(&presence), cell(&group), cell(&chat)),
            ("4.000".into(), "7.500".into(), "-".into())
        );
    }

    #[test]
    fn long_names_keep_their_tail() {
        let name = name_of(Path::new("/r/20250101-000000-chat-c2000-r1-extra-long"));
        assert_eq!(name.chars().count(), COLUMN_WIDTH);
        assert!(name.starts_with('~') && name.ends_with("extra-long"));
    }
}
