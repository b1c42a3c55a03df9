//! `rookery-tune show`: a profile printed ready to paste (sysctl.d for Linux; the loader.conf
//! and sysctl.conf parts for FreeBSD), each setting with its comment, scope and how to check it.
//!
//! Not here: parsing (the library's `profile` module).

use std::fmt::Write as _;

use rookery_tune::knobs::{knob, Os};
use rookery_tune::{Profile, Section};

/// The profile as text.
pub fn render(p: &Profile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# profile {} ({}): {}",
        p.name,
        p.os.dir_name(),
        p.about
    );
    for r in &p.requires {
        let _ = writeln!(out, "# requires: {r}");
    }
    for l in &p.limits {
        let _ = writeln!(
            out,
            "# limit {} {}: systemd LimitNOFILE={}; /etc/security/limits.conf `* - nofile {}`; \
             FreeBSD login.conf `:openfiles={}:`",
            l.resource, l.value, l.value, l.value, l.value
        );
    }
    let parts: &[(Section, &str)] = match p.os {
        Os::Linux => &[(Section::Sysctl, "/etc/sysctl.d/90-rookery.conf")],
        Os::FreeBsd => &[
            (Section::Loader, "/boot/loader.conf"),
            (Section::Sysctl, "/etc/sysctl.conf"),
        ],
    };
    for (section, file) in parts {
        let _ = writeln!(out, "\n# ---- {file} ----");
        for s in p.settings.iter().filter(|s| s.section == *section) {
            let _ = writeln!(out);
            for line in s.comment.lines() {
                let _ = writeln!(out, "# {line}");
            }
            if let Some(k) = knob(p.os, &s.key) {
                let _ = writeln!(out, "# [{}] check: {}", k.scope.label(), k.check);
            }
            if *section == Section::Loader {
                let _ = writeln!(out, "{}=\"{}\"", s.key, s.value);
            } else if p.os == Os::FreeBsd {
                let _ = writeln!(out, "{}={}", s.key, s.value);
            } else {
                let _ = writeln!(out, "{} = {}", s.key, s.value);
            }
        }
    }
    out
}
