//! The million-session run, scaled down to what CI affords: `benches/scripts/million.sh
//! 100000 6`, i.e. 100,000 authenticated sessions (XEP-0198 on) across 6 local rookery nodes
//! over a real nats-server, held, then chatting across nodes with `--verify`, with a
//! reconnect storm of 10% of the clients in the middle of the chat.
//!
//! It runs the script itself (the one the recorded million run uses) and judges what it
//! recorded: every client online at once and the nodes agreeing (their `rookery_sessions`
//! summed by the sampler), no client error, no acknowledged message lost, nothing lost but
//! what the storm dropped before the server acknowledged it, every dropped client back, and
//! the report written.
//!
//! As root (CI) it runs in a network namespace of its own with the kernel profile applied
//! to that namespace only (c1m-loopback; no host-wide knob is written); otherwise in the host's namespace
//! with the host's knobs (NETNS=none PROFILE=none). Needs nats-server, curl, python3 and the
//! release binaries rookery, rookery-load and rookery-tune side by side (scripts/test.sh
//! builds them). The script bounds its own run and stops everything it started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENTS: u64 = 100_000;
const NODES: u32 = 6;
/// The script's own bound is ramp + hold + chat + 10 min; this only catches a hung script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadgen/ sits in the repository")
        .to_path_buf()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The one results folder the script made under `out`.
fn results_dir(out: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the script made its output folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one results folder: {dirs:?}");
    dirs.pop().unwrap()
}

fn summary_in(dir: &Path) -> Value {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path().join("summary.json");
        if path.exists() {
            return serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        }
    }
    panic!("no rookery-load summary.json under {}", dir.display());
}

/// The most sessions the sampler saw summed over the nodes.
fn peak_sessions(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_hundred_thousand_sessions_on_six_nodes_hold_chat_and_ride_a_storm_losing_nothing() {
    let out = std::env::temp_dir().join(format!("rookery-million-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_rookery-load"))
        .parent()
        .unwrap()
        .to_path_buf();
    for needed in ["rookery", "rookery-tune"] {
        assert!(
            bin.join(needed).exists(),
            "{needed} must be built next to rookery-load in {} \
             (cargo build --release --bin rookery --bin rookery-tune)",
            bin.display()
        );
    }
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("benches/scripts/million.sh"))
        .args([CLIENTS.to_string(), NODES.to_string()])
        .env("BIN", &bin)
        .env("OUT", &out)
        .env("LOGIN_RATE", "5000")
        .env("HOLD", "15s")
        .env("CHAT", "20s")
        .env("CHAT_RATE", "0.02")
        .env("STORM_FRACTION", "0.1")
        .env("STORM_AT", "6s")
        .env("RECONNECT_RATE", "5000")
        .env("ALLOW_HOST", "0");
    if is_root() {
        let netns = format!("rookery-million-it-{}", std::process::id());
        command.env("NETNS", netns).env("PROFILE", "c1m-loopback");
    } else {
        command.env("NETNS", "none").env("PROFILE", "none");
    }
    // The script's own output (its report) goes to a file, shown if the test fails.
    let log_path = out.join("script.log");
    let log = std::fs::File::create(&log_path).unwrap();
    command.stdout(log.try_clone().unwrap()).stderr(log);
    let started = Instant::now();
    let mut child = command.spawn().expect("bash runs the script");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            panic!("million.sh still running after {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let script_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success(),
        "million.sh failed ({status}):\n{script_log}"
    );
    let dir = results_dir(&out);
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    let progress = std::fs::read_to_string(dir.join("progress.log")).unwrap_or_default();
    assert!(!progress.is_empty(), "rookery-load printed its progress");

    let summary = summary_in(&dir);
    let c = &summary["counts"];
    assert_eq!(c["peak_online"], CLIENTS, "{report}");
    assert_eq!(c["errors_total"], 0, "{report}");
    assert_eq!(
        peak_sessions(&dir),
        CLIENTS,
        "the nodes held every session at once"
    );

    let m = &c["messages"];
    let a = &c["acks"];
    let sent = m["sent"].as_u64().unwrap();
    assert!(
        sent > 20_000,
        "the chat ran (0.02 msg/s x 100,000 x 20 s): {m}"
    );
    assert_eq!(a["acked_lost"], 0, "no acknowledged message lost: {a}");
    assert_eq!(
        m["lost"], a["unacked_lost"],
        "only what a dropped stream left unacknowledged may be missing: {m} {a}"
    );
    assert_eq!(m["unexpected"], 0, "{m}");

    let storm = &summary["chat_storm"];
    let dropped = storm["dropped"].as_u64().unwrap();
    assert!(
        (9_000..=10_000).contains(&dropped),
        "10% of the clients dropped: {storm}"
    );
    assert!(
        storm["logins"].as_u64().unwrap() >= dropped,
        "every dropped client logged in again: {storm}"
    );

    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("sessions held at once")
            && readme.contains("kernel slab per connection pair"),
        "{readme}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
