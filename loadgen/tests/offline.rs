//! End to end over loopback against the real `rookery` server: the offline scenario (20
//! clients: 10 senders x 10 messages to 10 offline recipients) loses no acknowledged message,
//! and every stored message arrives with its XEP-0203 `<delay/>`; once in one process, once
//! over two worker processes. Then `chat --verify` judges a live chat by the server's acks.
//!
//! Bounded: each run is a few seconds, killed after `common::RUN_TIMEOUT`; each server runs on
//! a random 127.0.0.1 port with its own temporary data folder (see `common::Server`).

mod common;

use serde_json::Value;

use common::{load_args, run_load, Server};

fn check_offline(summary: &Value) {
    let counts = &summary["counts"];
    let (messages, acks) = (&counts["messages"], &counts["acks"]);
    assert_eq!(counts["logins"], 20, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    assert_eq!(messages["sent"], 100, "{messages}");
    assert_eq!(acks["acknowledged"], 100, "every message acked: {acks}");
    assert_eq!(acks["acked_lost"], 0, "{acks}");
    assert_eq!(acks["acked_delivered"], 100, "{acks}");
    assert_eq!(messages["duplicated"], 0, "{messages}");
    assert_eq!(messages["unexpected"], 0, "{messages}");
    let offline = &summary["offline"];
    assert_eq!(offline["delay_missing"], 0, "{offline}");
    assert_eq!(offline["recipients"], 10, "{offline}");
    assert_eq!(offline["drain"]["delivered"], 100, "{offline}");
    assert!(offline["drain"]["rate_mean_per_s"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(offline["drain"]["rate_peak_per_s"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        summary["latency_us"]["offline_delivery"]["count"], 100,
        "one delivery latency per stored message"
    );
    assert!(
        summary["latency_us"]["sm_ack"]["count"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}

fn offline_run(name: &str, extra: &[&str]) {
    let server = Server::start();
    let offline = ["--messages", "10", "--drain-ms", "1000"];
    let mut args = load_args("offline", &server.addr, "20", "200", &offline);
    args.extend_from_slice(extra);
    let (summary, dir, text) = run_load(name, &args, 0);
    check_offline(&summary);
    assert!(dir.join("offline_delivery.hgrm").is_file());
    assert!(text.contains("offline drain: 100 delivered"), "{text}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}

#[test]
fn offline_loses_no_acknowledged_message() {
    offline_run("offline-1p", &[]);
}

#[test]
fn offline_over_two_processes() {
    offline_run("offline-2p", &["--processes", "2"]);
}

#[test]
fn chat_verify_counts_acknowledged_messages() {
    let server = Server::start();
    let chat = ["--rate", "2", "--duration", "2s", "--verify"];
    let args = load_args("chat", &server.addr, "10", "200", &chat);
    let (summary, dir, _) = run_load("verify", &args, 0);
    let (messages, acks) = (&summary["counts"]["messages"], &summary["counts"]["acks"]);
    let sent = messages["sent"].as_u64().expect("sent");
    assert!(sent >= 20, "{messages}");
    assert_eq!(acks["acknowledged"].as_u64(), Some(sent), "{acks}");
    assert_eq!(acks["acked_lost"], 0, "{acks}");
    assert!(summary["offline"].is_null());
    drop(server);
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
