//! End to end over loopback against the real `rookery` server: `rookery-load drain` stores a
//! small backlog (3 senders x 600 messages of 2 KiB in all) for one offline recipient, which
//! then reads it with XEP-0198 (acking every 50) and without it; every message must arrive
//! exactly once and in order, with the server's RSS recorded. Once per server backend
//! (io_uring skipped, visibly, where the kernel refuses it); 64 KiB bodies once. A store
//! budget too small for the backlog fails the run with an error naming the server's options.
//!
//! Bounded: each run is a few seconds, killed after `common::RUN_TIMEOUT`; each server runs on
//! a random 127.0.0.1 port with its own temporary data folder (see `common::Server`).

#[allow(dead_code)] // this test uses the server and the bounded run only
mod common;

use rookery_io::{select_backend, BackendChoice, Limits};
use serde_json::Value;

use common::{run_bounded, run_load, Server};

const MESSAGES: u64 = 600;

fn drain_args<'a>(server: &'a Server, pid: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["drain", "--server", &server.addr, "--server-pid", pid];
    args.extend_from_slice(&["--senders", "3", "--messages", "600"]);
    args.extend_from_slice(&["--body-bytes", "2048", "--settle", "300ms"]);
    args.extend_from_slice(extra);
    args
}

fn check_drain(summary: &Value, sm: bool) {
    assert_eq!(summary["scenario"], "drain");
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(summary["store"]["acked"], MESSAGES, "{}", summary["store"]);
    let drain = &summary["drain"];
    let tally = &drain["tally"];
    assert_eq!(tally["expected"], MESSAGES, "{drain}");
    assert_eq!(tally["unique"], MESSAGES, "{drain}");
    assert_eq!(tally["duplicates"], 0, "{drain}");
    assert_eq!(tally["out_of_order"], 0, "{drain}");
    assert_eq!(drain["missing"], 0, "{drain}");
    assert_eq!(drain["delay_missing"], 0, "{drain}");
    assert_eq!(drain["damaged"], 0, "{drain}");
    assert!(drain["ended"].is_null(), "{drain}");
    assert!(drain["msgs_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{drain}");
    let wire = drain["wire_bytes"].as_u64().unwrap_or(0);
    assert!(
        wire > MESSAGES * 2048,
        "every body crossed the wire: {drain}"
    );
    let acks = drain["acks_sent"].as_u64().unwrap_or(0);
    if sm {
        // One every 50 stanzas (the presence echo may count too), plus the final one.
        assert!((12..=14).contains(&acks), "{drain}");
    } else {
        assert_eq!(acks, 0, "{drain}");
    }
    assert_eq!(summary["config"]["recipient_sm"], sm);
    let rss = &summary["server_rss_kib"];
    for point in ["start", "stored", "drained"] {
        assert!(rss[point].as_u64().unwrap_or(0) > 0, "{point}: {rss}");
    }
}

fn drain_on(backend: &str) {
    let limits = Limits::default();
    if backend == "uring" && select_backend(BackendChoice::Uring, &limits).is_err() {
        eprintln!("SKIPPED drain over io_uring: this kernel refuses it");
        return;
    }
    for sm in [true, false] {
        let server = Server::start_with(&["--backend", backend, "--shards", "2"]);
        let pid = server.pid().to_string();
        let mode = if sm { "on" } else { "off" };
        let extra = ["--stream-management", mode, "--ack-every", "50"];
        let name = format!("drain-{backend}-{mode}");
        let (summary, dir, text) = run_load(&name, &drain_args(&server, &pid, &extra), 0);
        check_drain(&summary, sm);
        assert!(text.contains("drain: 600 of 600 in"), "{text}");
        drop(server);
        let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
    }
}

#[test]
fn drain_over_poll() {
    drain_on("poll");
}

#[test]
fn drain_over_io_uring() {
    drain_on("uring");
}

#[test]
fn a_backlog_over_the_budget_is_refused_with_the_fix() {
    let server = Server::start_with(&["--offline-max", "100"]);
    let pid = server.pid().to_string();
    let output = std::env::temp_dir().join(format!("rookery-load-it-drain-refused-{pid}"));
    let mut args = drain_args(&server, &pid, &[]);
    let auth = format!("token:{}", common::SECRET);
    args.extend(["--auth", &auth, "--quiet"]);
    let (status, text) = run_bounded(&args, &output);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("refused") && text.contains("--offline-max"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&output);
}

#[test]
fn bodies_of_64_kib_fit_the_recipients_framer() {
    // The stored copy carries `from` and `<delay/>` on top of the sender's 64 KiB stanza.
    let server = Server::start_with(&["--max-stanza-bytes", "131072"]);
    let pid = server.pid().to_string();
    let args = [
        "drain",
        "--server",
        &server.addr,
        "--server-pid",
        &pid,
        "--senders",
        "2",
        "--messages",
        "40",
        "--body-bytes",
        "65536",
        "--settle",
        "200ms",
    ];
    let (summary, dir, _) = run_load("drain-64k", &args, 0);
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(
        summary["drain"]["tally"]["unique"], 40,
        "{}",
        summary["drain"]
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
