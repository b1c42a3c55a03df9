//! The host check against fake /proc trees (tests/fixtures, see its README) and the real host.

use std::path::{Path, PathBuf};

use rookery_tune::{
    check_host, check_tree, CheckInput, CheckReport, Finding, NofileLimits, Role, Status,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The finding whose knob starts with `knob`.
fn finding<'a>(report: &'a CheckReport, knob: &str) -> &'a Finding {
    report
        .findings
        .iter()
        .find(|f| f.knob.starts_with(knob))
        .unwrap_or_else(|| panic!("no finding for {knob}: {report}"))
}

const TIGHT_LIMITS: NofileLimits = NofileLimits {
    soft: 1024,
    hard: 20_000,
};

#[test]
fn every_cap_is_found_and_ordered_tightest_first() {
    let input = CheckInput::new(Role::Server, 100_000);
    let report = check_tree(&fixture("tight"), &input, TIGHT_LIMITS);
    let caps: Vec<(String, u64)> = report
        .with_status(Status::Caps)
        .map(|f| (f.knob.clone(), f.ceiling.unwrap()))
        .collect();
    let names: Vec<&str> = caps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "RLIMIT_NOFILE hard 20,000",
            "net.ipv4.tcp_mem",
            "memory (MemAvailable)",
            "net.netfilter.nf_conntrack_max",
            "fs.file-max",
        ],
        "{report}"
    );
    // Ceilings: hard - 64 reserve; tcp_mem max pages; 200 MiB / (4,930 kernel + 1,380 user B)
    // less one idle server process (9 MiB); conntrack max - tracked; file-max - open.
    let ceilings: Vec<u64> = caps.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        ceilings,
        [
            19_936,
            30_000,
            (204_800 - 9 * 1024) * 1024 / 6_310,
            39_990,
            49_000
        ]
    );
    assert!(!report.reachable());
    assert_eq!(report.ceiling(), 19_936);
    // Warnings come after the caps: the accept queue is too short for 1,666 connects/s.
    let first_warn = report
        .findings
        .iter()
        .position(|f| f.status == Status::Warn)
        .unwrap();
    assert_eq!(first_warn, 5);
    assert_eq!(report.findings[first_warn].knob, "net.core.somaxconn");
    assert!(report.findings[first_warn]
        .fix
        .contains("net.core.somaxconn=1666"));
    // Every non-ok finding carries a fix.
    assert!(report
        .findings
        .iter()
        .filter(|f| f.status != Status::Ok)
        .all(|f| !f.fix.is_empty()));
}

#[test]
fn verdict_names_the_first_cap_and_its_fix() {
    let input = CheckInput::new(Role::Server, 100_000);
    let report = check_tree(&fixture("tight"), &input, TIGHT_LIMITS);
    let line = report.verdict_line();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with("host check: 19,936 of 100,000 connections reachable; first cap: RLIMIT_NOFILE hard 20,000 (fix: LimitNOFILE=100064"),
        "{line}"
    );
    let full = report.to_string();
    assert!(
        full.contains("[CAPS] net.ipv4.tcp_mem (host-wide)"),
        "{full}"
    );
    assert!(full.contains("fix: sysctl -w net.ipv4.tcp_mem="), "{full}");
}

#[test]
fn generator_is_capped_by_ports_not_by_its_fd_limit() {
    let mut input = CheckInput::new(Role::Loadgen, 100_000);
    let report = check_tree(&fixture("tight"), &input, TIGHT_LIMITS);
    let ports = finding(&report, "ephemeral ports");
    assert_eq!(ports.status, Status::Caps);
    assert_eq!(ports.ceiling, Some(28_232));
    assert!(ports.fix.contains("127.0.0.1-127.0.0.2"), "{}", ports.fix);
    let fd = finding(&report, "RLIMIT_NOFILE hard");
    assert_eq!(
        fd.status,
        Status::Ok,
        "rookery-load spreads over processes by itself"
    );
    assert_eq!(fd.ceiling, None);
    assert!(
        fd.note.starts_with("6 generator process(es)"),
        "{}",
        fd.note
    );
    // Four source addresses lift the port cap above the target.
    input.source_addresses = 4;
    let report = check_tree(&fixture("tight"), &input, TIGHT_LIMITS);
    let ports = finding(&report, "ephemeral ports");
    assert_eq!(ports.status, Status::Ok);
}

#[test]
fn a_tuned_host_reaches_a_million() {
    let limits = NofileLimits {
        soft: 2_097_152,
        hard: 2_097_152,
    };
    let report = check_tree(
        &fixture("roomy"),
        &CheckInput::new(Role::Server, 1_000_000),
        limits,
    );
    assert!(report.reachable(), "{report}");
    assert_eq!(report.with_status(Status::Caps).count(), 0);
    assert_eq!(report.ceiling(), 2_097_152 - 64);
    let ct = report
        .findings
        .iter()
        .find(|f| f.knob.contains("conntrack"))
        .unwrap();
    assert_eq!(
        ct.status,
        Status::Ok,
        "listed in /proc/modules but tracking nothing"
    );
    let line = report.verdict_line();
    assert!(
        line.starts_with("host check: 1,000,000 connections reachable (ceiling 2,097,088"),
        "{line}"
    );
    // Twice as much needs more than the fd limit and the 64 GiB.
    let report = check_tree(
        &fixture("roomy"),
        &CheckInput::new(Role::Server, 20_000_000),
        limits,
    );
    assert!(!report.reachable());
}

#[test]
fn syn_backlog_matters_only_without_syncookies() {
    let limits = NofileLimits {
        soft: 2_097_152,
        hard: 2_097_152,
    };
    let mut input = CheckInput::new(Role::Server, 100_000);
    input.connect_rate_per_s = 5_000;
    let report = check_tree(&fixture("nocookies"), &input, limits);
    let warns: Vec<&str> = report
        .with_status(Status::Warn)
        .map(|f| f.knob.as_str())
        .collect();
    assert_eq!(
        warns,
        ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"],
        "{report}"
    );
    assert!(
        report.reachable(),
        "backlogs slow a storm down but do not cap the count"
    );
    let roomy = check_tree(&fixture("roomy"), &input, limits);
    assert_eq!(roomy.with_status(Status::Warn).count(), 0, "{roomy}");
}

#[test]
fn unreadable_values_are_reported_not_guessed() {
    let empty = std::env::temp_dir().join(format!("rkt-empty-proc-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let report = check_tree(&empty, &CheckInput::new(Role::Server, 1000), TIGHT_LIMITS);
    let unreadable = report
        .findings
        .iter()
        .filter(|f| f.current.starts_with("unreadable"))
        .count();
    assert!(unreadable >= 7, "{report}");
    assert!(
        report.reachable(),
        "only the fd limit was read and it allows 1,000"
    );
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn the_real_host_runs_and_its_fd_limit_caps_a_million() {
    let limits = NofileLimits::current().unwrap();
    let report = check_host(&CheckInput::new(Role::Server, 1_000_000));
    println!("{report}");
    assert!(report.findings.len() >= 8, "{report}");
    if limits.hard < 1_000_000 {
        assert!(!report.reachable());
        let first = &report.findings[0];
        assert_eq!(first.status, Status::Caps);
        assert!(first.knob.starts_with("RLIMIT_NOFILE hard"), "{report}");
        assert_eq!(first.ceiling, Some(limits.hard - 64));
        assert!(report
            .verdict_line()
            .contains("first cap: RLIMIT_NOFILE hard"));
    }
    let small = check_host(&CheckInput::new(Role::Server, 1000));
    assert!(small.reachable(), "{small}");
    assert!(small
        .verdict_line()
        .starts_with("host check: 1,000 connections reachable"));
}
