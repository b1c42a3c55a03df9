//! The host check for a loopback test (`Role::Both`: server and generator on one host) and for
//! a server spread over processes (`server_processes`, `rookery cluster up --nodes K`), on the
//! fake /proc trees of tests/fixtures and through the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use rookery_tune::{
    check_tree, server_processes_needed, CheckInput, CheckReport, Finding, NofileLimits, Role,
    Status,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every finding whose knob starts with `knob`.
fn findings<'a>(report: &'a CheckReport, knob: &str) -> Vec<&'a Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.knob.starts_with(knob))
        .collect()
}

fn one<'a>(report: &'a CheckReport, knob: &str) -> &'a Finding {
    let all = findings(report, knob);
    assert_eq!(all.len(), 1, "{knob}: {report}");
    all[0]
}

const HARD_20K: NofileLimits = NofileLimits {
    soft: 20_000,
    hard: 20_000,
};
const HARD_2M: NofileLimits = NofileLimits {
    soft: 2_097_152,
    hard: 2_097_152,
};
/// roomy: MemAvailable 64 GiB; file-max 4,194,304 with 2,000 open.
const ROOMY_AVAIL: u64 = 64 << 30;
const SERVER_PROCESS: u64 = 9 << 20;

#[test]
fn both_ends_count_twice_for_files_and_kernel_memory() {
    // 2,097,000 pairs: one server process fits under 2,097,152 fds, but 2 files per pair do
    // not fit in file-max: (4,194,304 - 2,000) / 2 = 2,096,152.
    let mut input = CheckInput::new(Role::Both, 2_097_000);
    input.source_addresses = 33;
    let report = check_tree(&fixture("roomy"), &input, HARD_2M);
    let caps: Vec<&str> = report
        .with_status(Status::Caps)
        .map(|f| f.knob.as_str())
        .collect();
    assert_eq!(caps, ["fs.file-max"], "{report}");
    assert_eq!(one(&report, "fs.file-max").ceiling, Some(2_096_152));
    let line = report.verdict_line();
    assert!(
        line.starts_with(
            "host check (server + load generator on one host): 2,096,152 of 2,097,000 \
             connections reachable; first cap: fs.file-max (fix: sysctl -w fs.file-max="
        ),
        "{line}"
    );
    // Kernel 2 x 4,930 B + user 1,380 + 512 B per pair, one idle server process.
    let mem = one(&report, "memory");
    assert_eq!(
        mem.ceiling,
        Some((ROOMY_AVAIL - SERVER_PROCESS) / (2 * 4_930 + 1_380 + 512))
    );
    // Both sides' fd findings, the generator's never a cap; ports are judged (generator side)
    // and so is the accept queue (server side), each once.
    assert_eq!(findings(&report, "RLIMIT_NOFILE hard").len(), 2, "{report}");
    let lg = one(&report, "RLIMIT_NOFILE hard 2,097,152 (load generator)");
    assert_eq!((lg.status, lg.ceiling), (Status::Ok, None));
    assert_eq!(
        one(&report, "ephemeral ports").ceiling,
        Some(33 * 64_512),
        "{report}"
    );
    one(&report, "net.core.somaxconn");

    // The same target for the server alone: one file and one socket per connection.
    let server = check_tree(
        &fixture("roomy"),
        &CheckInput::new(Role::Server, 2_097_000),
        HARD_2M,
    );
    assert!(server.reachable(), "{server}");
    assert_eq!(one(&server, "fs.file-max").ceiling, Some(4_192_304));
    assert_eq!(
        one(&server, "memory").ceiling,
        Some((ROOMY_AVAIL - SERVER_PROCESS) / (4_930 + 1_380))
    );
    assert!(findings(&server, "ephemeral ports").is_empty());
}

#[test]
fn a_server_over_processes_needs_enough_of_them_under_the_hard_limit() {
    assert_eq!(server_processes_needed(1_000_000, 20_000), Some(52));
    let root = fixture("roomy");
    // One process: capped at hard - 64, and the advice names the cluster size.
    let single = check_tree(&root, &CheckInput::new(Role::Server, 1_000_000), HARD_20K);
    let fd = one(&single, "RLIMIT_NOFILE hard");
    assert_eq!((fd.status, fd.ceiling), (Status::Caps, Some(19_936)));
    assert!(
        fd.fix.contains("rookery cluster up --nodes 52"),
        "{}",
        fd.fix
    );
    assert!(fd.note.contains(">= 52 server process(es)"), "{}", fd.note);
    // 51 processes: the even share (19,608) fits, the busiest node's (hash placement) does not.
    let mut input = CheckInput::new(Role::Server, 1_000_000);
    input.server_processes = 51;
    let short = check_tree(&root, &input, HARD_20K);
    let fd = one(&short, "RLIMIT_NOFILE hard 20,000 (server, 51 processes)");
    assert_eq!(fd.status, Status::Caps, "{short}");
    assert!(fd.ceiling.unwrap() < 1_000_000);
    assert!(!short.reachable());
    // 52: every process fits; the accept queue is judged per listener.
    input.server_processes = 52;
    let enough = check_tree(&root, &input, HARD_20K);
    assert!(enough.reachable(), "{enough}");
    let fd = one(&enough, "RLIMIT_NOFILE hard 20,000 (server, 52 processes)");
    assert_eq!(fd.status, Status::Ok);
    assert!(fd.ceiling.unwrap() >= 1_000_000);
    assert_eq!(one(&enough, "net.core.somaxconn").needed, "321");
    assert!(enough
        .verdict_line()
        .starts_with("host check: 1,000,000 connections reachable"));
}

#[test]
fn a_million_pairs_on_a_tuned_host_with_52_nodes() {
    let mut input = CheckInput::new(Role::Both, 1_000_000);
    input.server_processes = 52;
    input.source_addresses = 16;
    let report = check_tree(&fixture("roomy"), &input, HARD_20K);
    assert!(report.reachable(), "{report}");
    assert_eq!(report.with_status(Status::Warn).count(), 0, "{report}");
    let lg = one(&report, "RLIMIT_NOFILE hard 20,000 (load generator)");
    assert!(
        lg.note.starts_with("51 generator process(es)"),
        "{}",
        lg.note
    );
    one(&report, "RLIMIT_NOFILE hard 20,000 (server, 52 processes)");
    // Close storms: a restart's 16,666 closes/s, TIME_WAIT for every one within 60 s.
    assert_eq!(one(&report, "net.ipv4.tcp_max_orphans").needed, "16,666");
    assert_eq!(
        one(&report, "net.ipv4.tcp_max_tw_buckets").needed,
        "999,960"
    );
    // 15 source addresses do not give a million ports.
    input.source_addresses = 15;
    let report = check_tree(&fixture("roomy"), &input, HARD_20K);
    let ports = one(&report, "ephemeral ports");
    assert_eq!(
        (ports.status, ports.ceiling),
        (Status::Caps, Some(15 * 64_512))
    );
    assert!(ports.fix.contains("127.0.0.1-127.0.0.16"), "{}", ports.fix);
}

#[test]
fn close_storm_limits_warn_but_do_not_cap() {
    // tight: tcp_max_orphans and tcp_max_tw_buckets 4,096.
    let mut input = CheckInput::new(Role::Both, 10_000);
    input.connect_rate_per_s = 5_000;
    let limits = NofileLimits {
        soft: 1024,
        hard: 20_000,
    };
    let report = check_tree(&fixture("tight"), &input, limits);
    let orphans = one(&report, "net.ipv4.tcp_max_orphans");
    assert_eq!((orphans.status, orphans.ceiling), (Status::Warn, None));
    assert!(orphans.fix.contains("tcp_max_orphans="), "{}", orphans.fix);
    let tw = one(&report, "net.ipv4.tcp_max_tw_buckets");
    assert_eq!((tw.status, tw.needed.as_str()), (Status::Warn, "10,000"));
}

#[test]
fn the_binary_takes_role_both_and_server_processes() {
    let tune = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rookery-tune"))
            .args(args)
            .output()
            .unwrap()
    };
    let roomy = fixture("roomy");
    let roomy = roomy.to_str().unwrap();
    let base = [
        "check",
        "--connections",
        "1000000",
        "--proc-root",
        roomy,
        "--nofile",
        "20000:20000",
    ];
    let ok = tune(
        &[
            &base[..],
            &[
                "--role",
                "both",
                "--server-processes",
                "52",
                "--source-addresses",
                "16",
            ],
        ]
        .concat(),
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("52 server process(es)"), "{text}");
    let few = tune(&[&base[..], &["--role", "both", "--server-processes", "51"]].concat());
    assert_eq!(few.status.code(), Some(2));
    let zero = tune(&[&base[..], &["--server-processes", "0"]].concat());
    assert_eq!(zero.status.code(), Some(1));
    let lg = tune(&[&base[..], &["--role", "loadgen", "--server-processes", "3"]].concat());
    assert_eq!(lg.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lg.stderr).contains("--role server or --role both"));
}

#[test]
fn inside_a_namespace_host_wide_values_are_read_from_outside() {
    use rookery_tune::netns::{in_netns, Netns};
    use rookery_tune::procfs::read_sysctl;
    // Needs root (CI runs as root), like the apply tests.
    let host_tcp_mem = read_sysctl(Path::new("/"), "net.ipv4.tcp_mem").unwrap();
    let ns = Netns::create(&format!("rkt-check-{}", std::process::id())).unwrap();
    let (absent, report) = in_netns(ns.name(), || {
        let absent = read_sysctl(Path::new("/"), "net.ipv4.tcp_mem").is_err();
        (
            absent,
            rookery_tune::check_host(&CheckInput::new(Role::Both, 1000)),
        )
    })
    .unwrap();
    assert!(absent, "tcp_mem is host-wide: no entry in a child netns");
    let mem = one(&report, "net.ipv4.tcp_mem");
    assert_eq!(mem.current, format!("{host_tcp_mem} pages"), "{report}");
    one(&report, "net.ipv4.tcp_max_orphans");
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.current.starts_with("unreadable")),
        "{report}"
    );
}
