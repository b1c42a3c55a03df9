//! The rookery-tune binary: exit statuses and output shapes of check, show, diff and compare's
//! argument errors.

use std::process::{Command, Output};

fn tune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rookery-tune"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_exits_0_when_reachable_and_2_when_not() {
    let roomy = fixture("roomy");
    let ok = tune(&[
        "check",
        "--connections",
        "1000000",
        "--proc-root",
        &roomy,
        "--nofile",
        "2097152:2097152",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let tight = fixture("tight");
    let no = tune(&[
        "check",
        "--connections",
        "100000",
        "--proc-root",
        &tight,
        "--nofile",
        "1024:20000",
    ]);
    assert_eq!(no.status.code(), Some(2));
    let text = String::from_utf8_lossy(&no.stdout);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("first cap: RLIMIT_NOFILE hard 20,000"),
        "{text}"
    );
    // The live host: 1,000 is reachable here.
    assert_eq!(
        tune(&["check", "--connections", "1000"]).status.code(),
        Some(0)
    );
    let bad = tune(&[
        "check",
        "--connections",
        "10",
        "--proc-root",
        &tight,
        "--nofile",
        "x",
    ]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn check_json_is_machine_readable() {
    let out = tune(&[
        "check",
        "--connections",
        "100000",
        "--role",
        "loadgen",
        "--json",
        "--proc-root",
        &fixture("tight"),
        "--nofile",
        "1024:20000",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input"]["role"], "Loadgen");
    assert_eq!(
        v["findings"][0]["knob"],
        "ephemeral ports x source addresses"
    );
    assert_eq!(v["findings"][0]["scope"], "PerNamespace");
}

#[test]
fn show_prints_both_freebsd_parts_and_diff_runs() {
    let out = tune(&["show", "freebsd/c1m-lean"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let loader = text.find("---- /boot/loader.conf ----").unwrap();
    let sysctl = text.find("---- /etc/sysctl.conf ----").unwrap();
    assert!(loader < sysctl);
    assert!(text.contains("net.inet.tcp.tcbhashsize=\"2097152\""));
    assert!(text.contains("kern.ipc.soacceptqueue=65535"));
    let linux = String::from_utf8_lossy(&tune(&["show", "c1m-throughput"]).stdout).to_string();
    assert!(
        linux.contains("net.ipv4.tcp_congestion_control = bbr"),
        "{linux}"
    );
    assert!(linux.contains("[per-netns] check:"));
    let diff = tune(&["diff", "c1m-lean"]);
    assert_eq!(diff.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("net.ipv4.tcp_mem"));
    assert_eq!(tune(&["show", "no-such"]).status.code(), Some(1));
}

#[test]
fn compare_argument_errors_exit_1() {
    let missing = tune(&[
        "compare",
        "baseline",
        "--bin-dir",
        "/nonexistent",
        "--",
        "hold",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("rookery not found"), "{err}");
    let bad_set = tune(&["compare", "baseline", "--set", "c1m-lean:x=1", "--", "hold"]);
    assert_eq!(bad_set.status.code(), Some(1));
    assert_eq!(
        tune(&["compare", "baseline"]).status.code(),
        Some(2),
        "clap: missing -- ARGS"
    );
}
