//! End to end over loopback: `rookery-load demo` starts the real `rookery` server, runs a
//! small chat load (50 clients, 1 msg/s, 5 s) and writes its results; every message must
//! arrive. Once per backend (io_uring skipped, visibly, where the kernel refuses it).
//!
//! The server binary is looked for next to rookery-load (target/<profile>/), where the demo
//! expects it; when missing, the test builds it with cargo (same profile, same target dir).
//! Bounded: the load lasts about 10 s and the child is killed after `common::RUN_TIMEOUT`.

#[allow(dead_code)] // this test uses only the server build and the bounded run
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_bounded, server_binary, single_run};
use rookery_io::{select_backend, BackendChoice, Limits};
use serde_json::Value;

/// Runs the demo with `backend`; returns the parsed summary.json and the results folder.
fn run_demo(backend: &str, output: &Path) -> (Value, PathBuf) {
    server_binary();
    // The child's output goes to a file next to the results, shown if the run fails.
    let (status, log) = run_bounded(
        &[
            "demo",
            "--clients",
            "50",
            "--rate",
            "1",
            "--duration",
            "5s",
            "--quiet",
            "--connect-rate",
            "500",
            "--backend",
            backend,
        ],
        output,
    );
    assert!(
        status.success(),
        "rookery-load demo failed: {status}; its output:\n{log}"
    );
    single_run(output)
}

fn check_backend(backend: &str) {
    let output =
        std::env::temp_dir().join(format!("rookery-load-e2e-{backend}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&output);
    let (summary, run_dir) = run_demo(backend, &output);

    let counts = &summary["counts"];
    let messages = &counts["messages"];
    assert_eq!(counts["logins"], 50, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    assert_eq!(messages["lost"], 0, "{messages}");
    assert_eq!(messages["duplicated"], 0, "{messages}");
    assert_eq!(messages["unexpected"], 0, "{messages}");
    let sent = messages["sent"].as_u64().expect("sent count");
    // 50 clients x 1 msg/s x 5 s, give or take the random phases at the edges.
    assert!((200..=300).contains(&sent), "sent {sent}");
    assert_eq!(messages["delivered"].as_u64(), Some(sent));
    assert_eq!(summary["backend"]["kind"], backend);
    assert_eq!(
        summary["latency_us"]["e2e_corrected"]["count"].as_u64(),
        Some(sent)
    );
    for metric in [
        "connect",
        "login",
        "e2e_corrected",
        "e2e_uncorrected",
        "send_lag",
    ] {
        let hgrm =
            std::fs::read_to_string(run_dir.join(format!("{metric}.hgrm"))).expect("hgrm written");
        assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    }
    assert!(run_dir.join("server.log").is_file());

    let report = Command::new(env!("CARGO_BIN_EXE_rookery-load"))
        .arg("report")
        .arg(&output)
        .output()
        .expect("running report");
    assert!(report.status.success());
    let table = String::from_utf8(report.stdout).expect("utf-8 report");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lost") && l.trim_end().ends_with(" 0")),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&output);
}

#[test]
fn demo_chat_loses_nothing_poll() {
    check_backend("poll");
}

#[test]
fn demo_chat_loses_nothing_uring() {
    if let Err(err) = select_backend(BackendChoice::Uring, &Limits::default()) {
        eprintln!("SKIPPED demo_chat_loses_nothing_uring: io_uring unavailable here: {err}");
        return;
    }
    check_backend("uring");
}
