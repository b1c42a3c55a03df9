//! End to end over loopback against the real `rookery` server: the presence scenario, 50
//! clients with 4 contacts each for 2 s. The first run subscribes the contact ring (its
//! setup), the second, over two worker processes, finds it in the rosters and skips it;
//! both must deliver every status change to every contact, and every client must see each
//! of its contacts come online after its initial presence.
//!
//! `ROOKERY_LOAD_IT_SERVER=127.0.0.1:5322 ROOKERY_LOAD_IT_AUTH=plain:vsbench-` runs the same
//! against another server, e.g. the ejabberd of benches/scripts/vs-ejabberd.sh (whose rosters
//! may already hold the ring: then the first run skips its setup too).
//! Bounded: each run is a few seconds, killed after `common::RUN_TIMEOUT`.

#[allow(dead_code)] // these tests use Target and run_load_as, not run_load
mod common;

use serde_json::Value;

use common::{check_fanout, load_args, run_load_as, Server, Target};

const CLIENTS: u64 = 50;
const CONTACTS: u64 = 4;

fn check_delivery(summary: &Value) {
    // 50 clients x 2 changes/s x 2 s, give or take the random phases at the edges.
    let sent = check_fanout(summary, "presence", CLIENTS, 150..=250, CONTACTS);
    let p = &summary["presence"];
    let (receipts, c) = (&p["receipts"], &p["counters"]);
    assert_eq!(receipts["out_of_order"], 0, "{receipts}");
    assert_eq!(c["initial_expected"], CLIENTS * CONTACTS, "{c}");
    assert_eq!(c["initial_presences"], CLIENTS * CONTACTS, "{c}");
    assert_eq!(c["setup_incomplete_links"], 0, "{c}");
    assert_eq!(
        summary["latency_us"]["presence_delivery"]["count"].as_u64(),
        Some(sent * CONTACTS)
    );
    assert_eq!(
        summary["latency_us"]["presence_fanout_last"]["count"].as_u64(),
        Some(sent)
    );
}

#[test]
fn presence_reaches_every_contact_then_the_ring_persists() {
    let target = Target::from_env_or(Server::start);
    let ring = ["--contacts", "4", "--rate", "2", "--duration", "2s"];
    let mut base = load_args("presence", target.addr(), "50", "500", &ring);
    base.extend_from_slice(&["--probe-ms", "1000", "--drain-ms", "1000"]);
    let auth = target.auth();
    let (summary, dir, text) = run_load_as("presence-setup", &base, &auth, 0);
    check_delivery(&summary);
    let c = &summary["presence"]["counters"];
    assert_eq!(
        c["setup_runs"].as_u64().unwrap_or(0) + c["setup_skipped"].as_u64().unwrap_or(0),
        CLIENTS,
        "{c}"
    );
    if !target.is_external() {
        assert_eq!(
            c["setup_runs"], CLIENTS,
            "a fresh server has no rosters: {c}"
        );
    }
    assert!(dir.join("presence_fanout_last.hgrm").is_file());
    assert!(text.contains("initial presence: 200 of 200"), "{text}");
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));

    let mut again = base.to_vec();
    again.extend(["--processes", "2"]);
    let (summary, dir, _) = run_load_as("presence-again", &again, &auth, 0);
    check_delivery(&summary);
    assert_eq!(summary["processes"]["count"], 2);
    let c = &summary["presence"]["counters"];
    assert_eq!(c["setup_skipped"], CLIENTS, "rosters kept the ring: {c}");
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
