//! The presence and group scenarios' part of the record: their report lines and their
//! summary.json section.
//!
//! What it does not do: count (see `fanout::totals` and the workers) or judge (the gates
//! are the common ones in `output`: a lost receipt fails the run like a lost message).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::cli::RunConfig;
use crate::fanout::Fanout;
use crate::metrics::{Metric, Percentiles};
use crate::run::RunResult;

/// Receipts delivered per second: (mean over the sending time, with what arrived during the
/// drain; the busiest second of the measurement and the drain). First deliveries and
/// duplicates alike, as the server sent them; the peak from the per-second series.
pub fn delivery_rates(cfg: &RunConfig, r: &RunResult) -> Option<(f64, u64)> {
    let fanout = cfg.fanout.as_ref()?;
    if r.meta.steady_ns == 0 {
        return None;
    }
    let sending_s = cfg.duration_ms as f64 / 1000.0;
    let measured_s = (cfg.duration_ms + cfg.drain_ms) as f64 / 1000.0;
    let mean = (r.messages.delivered + r.messages.duplicated) as f64 / sending_s;
    let from_s = (r.meta.steady_ns.saturating_sub(r.meta.go_ns) / 1_000_000 + fanout.probe_ms())
        as f64
        / 1000.0;
    let peak = r
        .series
        .received_per_s(from_s.floor(), from_s + measured_s + 1.0)
        .into_iter()
        .max()
        .unwrap_or(0);
    Some((mean, peak))
}

/// The scenario's lines of the final report.
pub fn lines(cfg: &RunConfig, r: &RunResult, out: &mut String) {
    let (Some(fanout), Some(t)) = (&cfg.fanout, r.fan) else {
        return;
    };
    let c = &r.report.fan;
    // Writing to a String cannot fail; results are ignored below.
    match fanout {
        Fanout::Presence { contacts, .. } => {
            let _ = writeln!(
                out,
                "setup: subscribed on {} clients, in place on {}, out of time on {}; links not \
                 mutual {}; subscribe requests answered {}",
                c.setup_runs,
                c.setup_skipped,
                c.setup_timeouts,
                c.setup_incomplete_links,
                c.subscribes_answered
            );
            let _ = writeln!(
                out,
                "initial presence: {} of {} contact presences seen before the first change \
                 (the last {} ms after the initial presences), {} later",
                c.initial_presences, c.initial_expected, c.initial_last_ms, c.initial_late
            );
            if c.outside_ring > 0 {
                let _ = writeln!(
                    out,
                    "changes from users outside the ring (subscribed by an earlier run of \
                     another shape; not accounted): {}",
                    c.outside_ring
                );
            }
            let _ = write!(out, "status changes ({contacts} contacts each): ");
        }
        Fanout::Group {
            groups, members, ..
        } => {
            let errors: Vec<String> = c
                .join_errors()
                .into_iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "joins: {} done ({} retried while the room was locked); rooms created {}, \
                 configured {}, configuration refused {}; failed joins: {}",
                c.joins,
                c.join_retries,
                c.rooms_created,
                c.rooms_configured,
                c.room_config_errors,
                if errors.is_empty() {
                    "none".to_string()
                } else {
                    errors.join(", ")
                }
            );
            let _ = write!(
                out,
                "group messages ({groups} groups x {members} members): "
            );
        }
    }
    let _ = writeln!(
        out,
        "sent {}, reached every recipient {}, some {}, none {}",
        t.changes_sent, t.changes_complete, t.changes_partial, t.changes_unseen
    );
    if let Some((mean, peak)) = delivery_rates(cfg, r) {
        let _ = writeln!(
            out,
            "delivered: {mean:.0} stanzas/s mean over the sending time, {peak} in the busiest \
             second"
        );
    }
}

/// The scenario's section of summary.json (`None` for the other scenarios).
pub fn summary(cfg: &RunConfig, r: &RunResult) -> Option<Value> {
    let fanout = cfg.fanout.as_ref()?;
    let (each, last) = match fanout {
        Fanout::Presence { .. } => (Metric::PresenceDelivery, Metric::PresenceFanoutLast),
        Fanout::Group { .. } => (Metric::GroupDelivery, Metric::GroupFanoutLast),
    };
    let each = Percentiles::of(r.histograms().get(each));
    let last = Percentiles::of(r.histograms().get(last));
    let mut counters = serde_json::Map::new();
    let mut c = r.report.fan;
    for (name, value) in c.named() {
        counters.insert(name, json!(*value));
    }
    let rates = delivery_rates(cfg, r);
    Some(json!({
        "shape": fanout,
        "changes": r.fan,
        "receipts": r.messages,
        "counters": counters,
        "delivered_per_s_mean": rates.map(|(mean, _)| mean),
        "delivered_per_s_peak": rates.map(|(_, peak)| peak),
        "delivery_p50_us": each.p50_us,
        "delivery_p99_us": each.p99_us,
        "fanout_last_p50_us": last.p50_us,
        "fanout_last_p99_us": last.p99_us,
    }))
}
