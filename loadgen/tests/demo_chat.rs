//! End to end over loopback: `rookery-load demo` starts the real `rookery` server, runs a
//! small chat load (50 clients, 1 msg/s, 5 s) and writes its results; every message must
//! arrive. Once per backend (io_uring skipped, visibly, where the kernel refuses it).
//!
//! The server binary is looked for next to rookery-load (target/<profile>/), where the demo
//! expects it; when missing, the test builds it with cargo (same profile, same target dir).
//! Bounded: the load lasts about 10 s and the child is killed after RUN_TIMEOUT.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rookery_io::{select_backend, BackendChoice, Limits};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Serializes the server build between the tests of this file.
static BUILD: Mutex<()> = Mutex::new(());

/// target/<profile>/ (this test runs from target/<profile>/deps/).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The server binary, built with cargo if it is not there yet.
fn server_binary() -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = profile_dir();
    let binary = dir.join(format!("rookery{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        return binary;
    }
    let target_dir = dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "rookery", "--bin", "rookery", "--target-dir"])
        .arg(target_dir);
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    eprintln!("building the server: {build:?}");
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo build -p rookery failed");
    assert!(
        binary.is_file(),
        "{} still missing after the build",
        binary.display()
    );
    binary
}

/// Runs the demo with `backend`; returns the parsed summary.json and the results folder.
fn run_demo(backend: &str, output: &Path) -> (Value, PathBuf) {
    server_binary();
    // The child's output goes to a file next to the results, shown if the run fails.
    let log_path = output.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("creating the log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery-load"))
        .args([
            "demo",
            "--clients",
            "50",
            "--rate",
            "1",
            "--duration",
            "5s",
            "--quiet",
        ])
        .args(["--connect-rate", "500", "--backend", backend, "--output"])
        .arg(output)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file handle"))
        .stderr(log)
        .spawn()
        .expect("starting rookery-load");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for rookery-load") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("rookery-load demo did not finish within {RUN_TIMEOUT:?}; its output:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        status.success(),
        "rookery-load demo failed: {status}; its output:\n{log}"
    );
    let runs: Vec<PathBuf> = std::fs::read_dir(output)
        .expect("the output folder exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "one run folder: {runs:?}");
    let text = std::fs::read_to_string(runs[0].join("summary.json")).expect("summary.json written");
    (
        serde_json::from_str(&text).expect("summary.json is JSON"),
        runs[0].clone(),
    )
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
