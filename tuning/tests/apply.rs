//! apply + revert inside a throwaway network namespace: values change in the namespace (read
//! back from /proc inside it), the root namespace stays as it was, revert restores everything,
//! and refused or missing values are reported. Needs root (CI runs as root).

use std::path::Path;

use rookery_tune::knobs::Os;
use rookery_tune::netns::{in_netns, Netns};
use rookery_tune::procfs::read_sysctl;
use rookery_tune::{apply, revert, ApplyOptions, Outcome, Profile};

const KEYS: [&str; 5] = [
    "net.core.somaxconn",
    "net.ipv4.tcp_rmem",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_fin_timeout",
];

fn read_all(ns: &str) -> Vec<String> {
    in_netns(ns, || {
        KEYS.map(|k| read_sysctl(Path::new("/"), k).unwrap())
            .to_vec()
    })
    .unwrap()
}

fn outcome<'a>(r: &'a rookery_tune::ApplyReport, key: &str) -> &'a Outcome {
    &r.settings.iter().find(|s| s.key == key).unwrap().outcome
}

#[test]
fn apply_then_revert_in_a_throwaway_namespace() {
    let ns = Netns::create(&format!("rkt-apply-{}", std::process::id())).unwrap();
    let state = std::env::temp_dir().join(format!("rkt-apply-state-{}", std::process::id()));
    let opts = ApplyOptions {
        netns: Some(ns.name().to_string()),
        allow_host: false,
        state_dir: state.clone(),
    };
    let root_before: Vec<String> = KEYS
        .map(|k| read_sysctl(Path::new("/"), k).unwrap())
        .to_vec();
    let ns_before = read_all(ns.name());

    let lean = Profile::builtin(Os::Linux, "c1m-lean").unwrap().unwrap();
    let report = apply(&lean, &opts).unwrap();
    println!("{report}");
    assert_eq!(report.problems(), 0, "{report}");
    assert_eq!(outcome(&report, "net.core.somaxconn"), &Outcome::Set);
    assert_eq!(
        outcome(&report, "net.ipv4.tcp_mem"),
        &Outcome::SkippedHostWide
    );
    assert_eq!(outcome(&report, "fs.file-max"), &Outcome::SkippedHostWide);
    assert!(report.to_string().contains("pass --allow-host"));
    assert!(report.notes[0].contains("LimitNOFILE=2097152"));
    let ns_after = read_all(ns.name());
    assert_eq!(ns_after[0], "65535");
    assert_eq!(ns_after[1], "4096 16384 1048576");
    assert_eq!(ns_after[2], "1024 65535");
    assert_eq!(ns_after[3], "5222-5223,9090,9100");
    assert_eq!(ns_after[4], "15");
    let root_now: Vec<String> = KEYS
        .map(|k| read_sysctl(Path::new("/"), k).unwrap())
        .to_vec();
    assert_eq!(root_now, root_before, "the root namespace must not change");

    // A second apply changes nothing and keeps the original values in the backup.
    let again = apply(&lean, &opts).unwrap();
    assert_eq!(outcome(&again, "net.core.somaxconn"), &Outcome::Unchanged);

    let back = revert(&opts).unwrap();
    println!("{back}");
    assert_eq!(back.problems(), 0, "{back}");
    assert_eq!(
        read_all(ns.name()),
        ns_before,
        "revert restores the namespace"
    );
    assert!(!opts
        .state_dir
        .join(format!("backup-{}.json", ns.name()))
        .exists());
    assert!(revert(&opts).is_err(), "nothing left to revert");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn refused_and_missing_values_are_reported() {
    let ns = Netns::create(&format!("rkt-refuse-{}", std::process::id())).unwrap();
    let state = std::env::temp_dir().join(format!("rkt-refuse-state-{}", std::process::id()));
    let opts = ApplyOptions {
        netns: Some(ns.name().to_string()),
        allow_host: false,
        state_dir: state.clone(),
    };
    let text = "# about: bad values\n\
                # Why: out of range (0-2)\nnet.ipv4.tcp_tw_reuse = 7\n# Why: two of three values: the kernel keeps its third\nnet.ipv4.tcp_rmem = 4096 16384\n\
                # Why: reversed range\nnet.ipv4.ip_local_port_range = 60000 1024\n\
                # Why: no such knob\nnet.ipv4.tcp_no_such_knob = 1\n\
                # Why: a good one\nnet.ipv4.tcp_fin_timeout = 20\n";
    let p = Profile::parse("bad", Os::Linux, text).unwrap();
    let report = apply(&p, &opts).unwrap();
    println!("{report}");
    assert!(matches!(
        outcome(&report, "net.ipv4.tcp_tw_reuse"),
        Outcome::Refused { .. }
    ));
    let Outcome::Clamped { got } = outcome(&report, "net.ipv4.tcp_rmem") else {
        panic!("tcp_rmem with two values must read back as three: {report}");
    };
    assert!(got.starts_with("4096 16384 "), "{got}");
    assert!(matches!(
        outcome(&report, "net.ipv4.ip_local_port_range"),
        Outcome::Refused { .. }
    ));
    assert_eq!(
        outcome(&report, "net.ipv4.tcp_no_such_knob"),
        &Outcome::Missing
    );
    assert_eq!(outcome(&report, "net.ipv4.tcp_fin_timeout"), &Outcome::Set);
    assert_eq!(report.problems(), 4);
    let now = in_netns(ns.name(), || {
        read_sysctl(Path::new("/"), "net.ipv4.tcp_tw_reuse").unwrap()
    })
    .unwrap();
    assert_eq!(
        now, "2",
        "a refused write leaves the old value (2 in a fresh netns)"
    );
    assert_eq!(revert(&opts).unwrap().problems(), 0);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn apply_to_a_missing_namespace_fails_cleanly() {
    let opts = ApplyOptions::new(Some("rkt-does-not-exist".to_string()));
    let lean = Profile::builtin(Os::Linux, "c1m-lean").unwrap().unwrap();
    let err = apply(&lean, &opts).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
