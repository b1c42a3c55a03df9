//! Router heap per idle session, table by table (issue 15: an idle session within 512 B of
//! server RSS with XEP-0198 on). The counts match one shard of `benches/scripts/
//! idle-sessions.sh` at 19,000 sessions on two shards: the slope between 4,750 and 9,500
//! sessions includes the tables' growth (hashbrown and `Vec` double), as the script's does.
//!
//! Run with `--nocapture` to see the breakdown.

mod common;

use rookery_testkit::Cluster;

/// Sessions on one shard at the script's half-way reading and at its end.
const HALF: usize = 4_750;
const FULL: usize = 2 * HALF;

/// Logs in `users` idle sessions (as `rookery-load hold` does: bind, optionally `<enable/>`,
/// initial presence, nothing more) and returns the router's breakdown after each half.
fn idle_sessions(sm: bool) -> [Vec<(&'static str, usize)>; 2] {
    let mut cluster = Cluster::new(1);
    let mut readings = Vec::new();
    for i in 0..FULL {
        let (client, _) = cluster.login(0, &format!("user{i}"), Some("rookery-load"));
        if sm {
            common::enable(&mut cluster, client, false);
        }
        cluster.send(client, "<presence/>");
        assert_eq!(
            cluster.take_output(client),
            "",
            "an idle session gets nothing"
        );
        if i + 1 == HALF || i + 1 == FULL {
            readings.push(cluster.router(0).heap_breakdown().to_vec());
        }
    }
    let [half, full] = readings.try_into().expect("two readings");
    [half, full]
}

/// Prints the slope per table; returns the total slope per session.
fn report(label: &str, [half, full]: &[Vec<(&'static str, usize)>; 2]) -> usize {
    let added = FULL - HALF;
    println!("{label}: router heap per session between {HALF} and {FULL} sessions");
    let mut total = 0;
    for ((name, at_half), (_, at_full)) in half.iter().zip(full) {
        let slope = at_full.saturating_sub(*at_half) / added;
        total += at_full.saturating_sub(*at_half);
        println!(
            "  {name:<16} {slope:>4} B  (at {FULL}: {at_full} B, {} B/session)",
            at_full / FULL
        );
    }
    let slope = total / added;
    println!("  {:<16} {slope:>4} B", "total");
    slope
}

#[test]
fn memory_per_idle_session_with_stream_management() {
    let slope = report("SM on", &idle_sessions(true));
    assert!(slope <= 370, "{slope} B per idle SM session");
}

#[test]
fn memory_per_idle_session_without_stream_management() {
    let slope = report("SM off", &idle_sessions(false));
    assert!(slope <= 290, "{slope} B per idle session");
}
