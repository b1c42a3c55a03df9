//! The shipped profiles: every file parses, every setting and limit has its comment block (why,
//! effect), every knob is known, and the files on disk are the ones embedded in the binary.

use std::path::Path;

use rookery_tune::knobs::{knob, Os};
use rookery_tune::{Profile, Scope, Section};

const NAMES: [&str; 4] = ["baseline", "c1m-lean", "c1m-throughput", "low-latency"];
/// Linux only: the million-session loopback run on this box (issue 13).
const LINUX_ONLY: [&str; 1] = ["c1m-loopback"];

/// The shipped names of `os`, sorted as `builtin_names` gives them.
fn names(os: Os) -> Vec<&'static str> {
    let mut out = NAMES.to_vec();
    if os == Os::Linux {
        out.extend(LINUX_ONLY);
    }
    out.sort_unstable();
    out
}

fn all() -> Vec<Profile> {
    let mut out = Vec::new();
    for os in [Os::Linux, Os::FreeBsd] {
        assert_eq!(Profile::builtin_names(os), names(os), "{os:?}");
        for name in names(os) {
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
        // c1m-loopback's processes each hold a share under this box's 20,000-fd hard limit.
        let nofile = if p.name == "c1m-loopback" {
            20_000
        } else {
            2_097_152
        };
        assert_eq!(p.nofile(), Some(nofile), "{:?} {}", p.os, p.name);
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
    for (os, os_name) in [(Os::Linux, "linux"), (Os::FreeBsd, "freebsd")] {
        for name in names(os) {
            let path = dir.join(os_name).join(format!("{name}.conf"));
            let from_file = Profile::resolve(path.to_str().unwrap()).unwrap();
            let embedded = Profile::resolve(&format!("{os_name}/{name}")).unwrap();
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

#[test]
fn c1m_loopback_is_c1m_lean_sized_for_this_box() {
    let get = |name: &str| Profile::builtin(Os::Linux, name).unwrap().unwrap();
    let (lean, lo) = (get("c1m-lean"), get("c1m-loopback"));
    let keys = |p: &Profile| p.settings.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&lean), keys(&lo));
    let changed: Vec<&str> = lean
        .settings
        .iter()
        .filter(|s| lo.value(&s.key) != Some(s.value.as_str()))
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(
        changed,
        ["net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_mem"]
    );
    // tcp_mem: 12.5 / 18.75 / 25 % of 24 GiB in pages; pressure above a million sockets.
    assert_eq!(lo.value("net.ipv4.tcp_mem"), Some("786432 1179648 1572864"));
    assert_eq!(
        lo.value("net.ipv4.ip_local_reserved_ports"),
        Some("4222,5222-5733,9090,9100")
    );
    assert_eq!((lo.limits.len(), lo.limits[0].value), (1, 20_000));
}
