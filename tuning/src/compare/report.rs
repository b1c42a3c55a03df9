//! The side-by-side report of `compare`: `report.md` (one column per profile) and
//! `report.json` (everything, including per-cache slab growth and all counter deltas).
//!
//! Not here: measuring. Invariant: every figure in the markdown is derived from fields of
//! `report.json`, so the JSON alone can reproduce the table.

use std::fmt::Write as _;
use std::path::Path;

use super::{CompareReport, ProfileRun};
use crate::apply::Outcome;
use crate::util::{human_bytes, thousands};
use crate::TuneError;

/// Counters shown in the table (netstat `TcpExt.*`, snmp `Tcp.*`), in this order.
pub const SHOWN_COUNTERS: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.SyncookiesSent",
    "Tcp.RetransSegs",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TCPMemoryPressures",
    "TcpExt.TCPRcvQDrop",
    "TcpExt.TCPBacklogDrop",
    "TcpExt.TCPAbortOnMemory",
    "Tcp.PassiveOpens",
    "Tcp.ActiveOpens",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
];

/// Writes `report.md` and `report.json` into `dir`.
pub fn write_report(report: &CompareReport, dir: &Path) -> Result<(), TuneError> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| TuneError::Unsupported(format!("serialising the report: {e}")))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| TuneError::io(format!("writing {}", path.display()), e))
    };
    write("report.json", &json)?;
    write("report.md", &markdown(report))
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn per(total: i64, n: u64) -> String {
    (total.max(0) as u64)
        .checked_div(n)
        .map_or("-".to_string(), |b| format!("{} B", thousands(b)))
}

/// One table row: a label and one cell per run.
fn row(out: &mut String, label: &str, runs: &[ProfileRun], cell: impl Fn(&ProfileRun) -> String) {
    let cells: Vec<String> = runs.iter().map(cell).collect();
    let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
}

/// Cell from the load figures, `-` when the run has none.
fn load_cell(r: &ProfileRun, f: impl Fn(&super::LoadFigures) -> String) -> String {
    r.load.as_ref().map_or("-".to_string(), f)
}

/// The markdown report.
pub fn markdown(report: &CompareReport) -> String {
    let runs = &report.runs;
    let mut out = String::new();
    // A column is named after its profile and any --set overrides, so two runs of one profile
    // stay apart.
    let names: Vec<String> = runs
        .iter()
        .map(|r| {
            if r.overrides.is_empty() {
                r.profile.clone()
            } else {
                format!("{} ({})", r.profile, r.overrides.join(", "))
            }
        })
        .collect();
    let _ = writeln!(out, "# rookery-tune compare: {}\n", names.join(" vs "));
    let _ = writeln!(out, "Command: `{}`\n", report.command.join(" "));
    let h = &report.host;
    let _ = writeln!(
        out,
        "Host: kernel {}, {} CPUs, {} RAM; load average at start `{}`; checkout commit {} (where rookery-tune ran; not necessarily the binaries'); started {} UTC.\n\
         Binaries: `{}`, `{}`.\n",
        h.kernel,
        h.cpus,
        human_bytes(h.mem_total_bytes),
        h.loadavg_at_start,
        h.git_commit.as_deref().unwrap_or("unknown"),
        report.started_utc,
        h.rookery.display(),
        h.rookery_load.display()
    );
    let _ = writeln!(
        out,
        "Each profile ran in its own fresh network namespace (rookery and rookery-load both inside, \
         over its loopback), one after the other. Counters are deltas over the load run read inside \
         the namespace. Slab figures are host-wide caches sampled at the peak of sessions, so other \
         processes on the host add noise; on loopback each connection has two sockets (both ends) \
         in the same kernel.\n"
    );
    let _ = writeln!(out, "| | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
    setup_rows(&mut out, runs);
    load_rows(&mut out, runs);
    memory_rows(&mut out, runs);
    for name in SHOWN_COUNTERS {
        row(&mut out, name, runs, |r| {
            thousands(r.counters.get(*name).copied().unwrap_or(0).max(0) as u64)
        });
    }
    details(&mut out, runs);
    out
}

/// What was applied and whether the run worked.
fn setup_rows(out: &mut String, runs: &[ProfileRun]) {
    row(out, "overrides", runs, |r| {
        if r.overrides.is_empty() {
            "-".into()
        } else {
            r.overrides.join(", ")
        }
    });
    row(
        out,
        "settings set / unchanged / host-wide skipped / problems",
        runs,
        |r| {
            r.applied.as_ref().map_or("-".into(), |a| {
                let n = |f: &dyn Fn(&Outcome) -> bool| {
                    a.settings.iter().filter(|s| f(&s.outcome)).count()
                };
                format!(
                    "{} / {} / {} / {}",
                    n(&|o| *o == Outcome::Set),
                    n(&|o| *o == Outcome::Unchanged),
                    n(&|o| *o == Outcome::SkippedHostWide),
                    a.problems()
                )
            })
        },
    );
    row(out, "run error", runs, |r| {
        r.error.clone().unwrap_or_else(|| "-".into())
    });
    row(out, "backend: rookery / rookery-load", runs, |r| {
        let server = r.server_backend.as_deref().unwrap_or("-");
        load_cell(r, |f| format!("{server} / {}", f.backend))
    });
    row(out, "rookery-load exit status", runs, |r| {
        r.load_exit.map_or("-".into(), |c| c.to_string())
    });
}

/// Figures from rookery-load's summary.json and rookery's metrics.
fn load_rows(out: &mut String, runs: &[ProfileRun]) {
    row(out, "clients / peak online", runs, |r| {
        load_cell(r, |f| {
            format!("{} / {}", thousands(f.clients), thousands(f.peak_online))
        })
    });
    row(out, "peak server conns / sessions (metrics)", runs, |r| {
        format!(
            "{} / {}",
            thousands(r.peak_conns),
            thousands(r.peak_sessions)
        )
    });
    row(
        out,
        "accept rate during ramp (clients / ramp time), conn/s",
        runs,
        |r| {
            load_cell(r, |f| {
                (f.clients * 1000)
                    .checked_div(f.ramp_ms)
                    .map_or("-".into(), thousands)
            })
        },
    );
    row(out, "logins (total)", runs, |r| {
        load_cell(r, |f| thousands(f.logins))
    });
    row(out, "storm login rate, mean /s", runs, |r| {
        load_cell(r, |f| {
            f.storm_logins_per_s_mean
                .map_or("-".into(), |x| format!("{x:.0}"))
        })
    });
    row(out, "connect p50 / p99 / p999, ms", runs, |r| {
        load_cell(r, |f| f.connect_us.map(ms).join(" / "))
    });
    row(out, "login p50 / p99 / p999, ms", runs, |r| {
        load_cell(r, |f| f.login_us.map(ms).join(" / "))
    });
    row(out, "message p50 / p99 / p999, ms (corrected)", runs, |r| {
        load_cell(r, |f| {
            if f.messages_delivered == 0 {
                "-".into()
            } else {
                f.message_us.map(ms).join(" / ")
            }
        })
    });
    row(out, "rookery refused conns (fd limit)", runs, |r| {
        thousands(r.refused_conns)
    });
    row(out, "client errors", runs, |r| {
        load_cell(r, |f| {
            let kinds: Vec<String> = f.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            if kinds.is_empty() {
                thousands(f.errors_total)
            } else {
                format!("{} ({})", thousands(f.errors_total), kinds.join(", "))
            }
        })
    });
}

/// Kernel and user-space memory per connection.
fn memory_rows(out: &mut String, runs: &[ProfileRun]) {
    row(out, "kernel slab growth, socket caches", runs, |r| {
        human_bytes(r.slab_socket_delta_bytes.max(0) as u64)
    });
    row(out, "kernel bytes per connection (both ends)", runs, |r| {
        per(r.slab_socket_delta_bytes, r.peak_conns)
    });
    row(out, "kernel bytes per socket", runs, |r| {
        per(r.slab_socket_delta_bytes, r.peak_conns * 2)
    });
    row(out, "meminfo Slab growth per connection", runs, |r| {
        per(r.slab_meminfo_delta_bytes, r.peak_conns)
    });
    row(out, "rookery RSS growth per session", runs, |r| {
        per(
            r.rss_peak_bytes as i64 - r.rss_before_bytes as i64,
            r.peak_sessions,
        )
    });
    row(out, "rookery router heap per session", runs, |r| {
        per(r.heap_peak_bytes as i64, r.peak_sessions)
    });
}

fn details(out: &mut String, runs: &[ProfileRun]) {
    for r in runs {
        let _ = writeln!(out, "\n## {}\n\n{}\n", r.profile, r.about);
        let _ = writeln!(
            out,
            "- namespace `{}`; samples taken: {}",
            r.netns, r.samples
        );
        let _ = writeln!(out, "- rookery {}", r.server_command.join(" "));
        let _ = writeln!(out, "- rookery-load {}", r.load_command.join(" "));
        if let Some(dir) = &r.load_dir {
            let _ = writeln!(out, "- rookery-load results: `{}`", dir.display());
        }
        let Some(a) = &r.applied else { continue };
        for s in &a.settings {
            let what = match &s.outcome {
                Outcome::Set => "set".to_string(),
                Outcome::Unchanged => "unchanged".to_string(),
                Outcome::Clamped { got } => format!("CLAMPED to {got}"),
                Outcome::Refused { error } => format!("REFUSED ({error})"),
                Outcome::SkippedHostWide => format!(
                    "skipped, host-wide (host has {})",
                    s.before.as_deref().unwrap_or("-")
                ),
                Outcome::SkippedBoot => "skipped, boot-time".to_string(),
                Outcome::Missing => "MISSING here".to_string(),
            };
            let _ = writeln!(
                out,
                "- `{} = {}` ({}): {what}",
                s.key,
                s.wanted,
                s.scope.label()
            );
        }
        for n in &a.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
}
