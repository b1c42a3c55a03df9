//! The shipped profiles: every file parses, every setting and limit has its comment block (why,
//! effect), every knob is known, and the files on disk are the ones embedded in the binary.

use std::path::Path;

use rookery_tune::knobs::{knob, Os};
use rookery_tune::{Profile, Scope, Section};

const NAMES: [&str; 4] = ["baseline", "c1m-lean", "c1m-throughput", "low-latency"];

fn all() -> Vec<Profile> {
    let mut out = Vec::new();
    for os in [Os::Linux, Os::FreeBsd] {
        assert_eq!(Profile::builtin_names(os), NAMES, "{os:?}");
        for name in NAMES {
            out.push(Profile::builtin(os, name).unwrap().unwrap());
        }
    }
    out
}

#[test]
fn every_shipped_profile_parses_and_is_commented() {
    for p in all() {
        assert!(!p.about.is_empty(), "{}", p.name);
        assert!(p.settings.len() >= 2, "{}", p.name);
        for s in &p.settings {
            for (mark, lack) in [("Why:", "no why"), ("Effect:", "no effect")] {
                assert!(
                    s.comment.contains(mark),
                    "{:?} {} {}: {lack}",
                    p.os,
                    p.name,
                    s.key
                );
            }
        }
        for l in &p.limits {
            assert!(
                l.comment.contains("Why:"),
                "{:?} {}: limit without why",
                p.os,
                p.name
            );
        }
        assert_eq!(p.nofile(), Some(2_097_152), "{:?} {}", p.os, p.name);
    }
}

#[test]
fn every_knob_is_known_with_a_scope() {
    for p in all() {
        for s in &p.settings {
            let k = knob(p.os, &s.key);
            assert!(k.is_some(), "{:?} {}: unknown knob {}", p.os, p.name, s.key);
            assert_ne!(p.scope(s), Scope::Unknown);
            if s.section == Section::Loader {
                assert_eq!(p.os, Os::FreeBsd);
            }
        }
    }
}

#[test]
fn files_on_disk_are_the_embedded_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    for os in ["linux", "freebsd"] {
        for name in NAMES {
            let path = dir.join(os).join(format!("{name}.conf"));
            let from_file = Profile::resolve(path.to_str().unwrap()).unwrap();
            let embedded = Profile::resolve(&format!("{os}/{name}")).unwrap();
            assert_eq!(from_file.os, embedded.os, "{}", path.display());
            assert_eq!(from_file.settings.len(), embedded.settings.len());
        }
    }
}

#[test]
fn profiles_differ_on_one_axis_each() {
    let get = |name: &str| Profile::builtin(Os::Linux, name).unwrap().unwrap();
    let (base, lean, thr, low) = (
        get("baseline"),
        get("c1m-lean"),
        get("c1m-throughput"),
        get("low-latency"),
    );
    // baseline is stock networking: no backlog, buffer or tcp_mem settings.
    for key in [
        "net.core.somaxconn",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
    ] {
        assert_eq!(base.value(key), None, "{key}");
    }
    // The c1m common block is the same in all three c1m-style profiles.
    for key in [
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_mem",
        "fs.file-max",
    ] {
        assert_eq!(lean.value(key), thr.value(key), "{key}");
        assert_eq!(lean.value(key), low.value(key), "{key}");
    }
    assert_eq!(lean.value("net.ipv4.tcp_rmem"), Some("4096 16384 1048576"));
    assert_eq!(thr.value("net.ipv4.tcp_rmem"), Some("4096 131072 16777216"));
    assert_eq!(
        low.value("net.ipv4.tcp_rmem"),
        lean.value("net.ipv4.tcp_rmem")
    );
    assert_eq!(low.requires, ["real-nic"]);
    assert_eq!(thr.value("net.ipv4.tcp_congestion_control"), Some("bbr"));
}
