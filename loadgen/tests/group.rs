//! End to end over loopback against the real `rookery` server: the group scenario (XEP-0045),
//! 3 groups of 10 members for 2 s: every message reaches every member, the sender included;
//! once in one process, once over two worker processes (the rooms then exist already). Then
//! a server whose groups hold 8 members refuses 2 joins per group, counted by condition.
//!
//! `ROOKERY_LOAD_IT_SERVER=127.0.0.1:5322 ROOKERY_LOAD_IT_AUTH=plain:vsbench-` runs the first
//! part against another server, e.g. the ejabberd of benches/scripts/vs-ejabberd.sh.
//! Bounded: each run is a few seconds, killed after `common::RUN_TIMEOUT`.

#[allow(dead_code)] // these tests use Target and run_load_as, not run_load
mod common;

use serde_json::Value;

use common::{check_fanout, load_args, run_load_as, Server, Target};

const GROUPS: u64 = 3;
const MEMBERS: u64 = 10;

fn args(addr: &str) -> Vec<&str> {
    let groups = ["--groups", "3", "--members", "10", "--rate", "2"];
    let mut args = load_args("group", addr, "30", "500", &groups);
    args.extend_from_slice(&["--duration", "2s", "--drain-ms", "1000"]);
    args
}

fn check_delivery(summary: &Value) {
    // 3 groups x 2 messages/s x 2 s, give or take the random phases at the edges.
    let sent = check_fanout(summary, "group", GROUPS * MEMBERS, 9..=15, MEMBERS);
    let g = &summary["group"];
    let c = &g["counters"];
    assert_eq!(c["joins"], GROUPS * MEMBERS, "{c}");
    assert_eq!(
        summary["latency_us"]["group_fanout_last"]["count"].as_u64(),
        Some(sent)
    );
    assert!(g["delivered_per_s_peak"].as_u64().unwrap_or(0) > 0, "{g}");
}

#[test]
fn group_messages_reach_every_member() {
    let target = Target::from_env_or(Server::start);
    let auth = target.auth();
    let (summary, dir, text) = run_load_as("group", &args(target.addr()), &auth, 0);
    check_delivery(&summary);
    if !target.is_external() {
        let c = &summary["group"]["counters"];
        assert_eq!(
            c["rooms_created"], GROUPS,
            "a fresh server has no rooms: {c}"
        );
        assert_eq!(c["rooms_configured"], GROUPS, "{c}");
    }
    assert!(text.contains("failed joins: none"), "{text}");
    assert!(dir.join("group_fanout_last.hgrm").is_file());
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));

    let mut two = args(target.addr());
    two.extend(["--processes", "2"]);
    let (summary, dir, _) = run_load_as("group-2p", &two, &auth, 0);
    check_delivery(&summary);
    assert_eq!(summary["processes"]["count"], 2);
    assert_eq!(summary["group"]["counters"]["rooms_created"], 0);
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}

#[test]
fn joins_past_the_group_cap_are_refused_and_counted() {
    if std::env::var_os("ROOKERY_LOAD_IT_SERVER").is_some() {
        eprintln!("SKIPPED joins_past_the_group_cap: it starts its own rookery with a small cap");
        return;
    }
    let server = Server::start_with(&["--group-max-members", "8"]);
    let auth = Target::Rookery(server);
    let (summary, dir, text) = run_load_as("group-cap", &args(auth.addr()), &auth.auth(), 3);
    let c = &summary["group"]["counters"];
    assert_eq!(c["joins"], GROUPS * 8, "{c}");
    assert_eq!(c["join_error_service-unavailable"], GROUPS * 2, "{c}");
    assert!(
        text.contains("failed joins: service-unavailable 6"),
        "{text}"
    );
    let receipts = &summary["group"]["receipts"];
    let sent = summary["group"]["changes"]["changes_sent"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(receipts["delivered"].as_u64(), Some(sent * 8), "{receipts}");
    assert_eq!(receipts["lost"].as_u64(), Some(sent * 2), "{receipts}");
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
