//! Profiles: parsing the sysctl.d-style files under `profiles/`, and finding one by name.
//!
//! Format (documented in tuning/README.md): `key = value` lines (sysctl.d; FreeBSD loader.conf
//! `key="value"` too), `#` or `;` comment lines, and directive comments that sysctl ignores but
//! this parser reads: `# about: TEXT`, `# limit: nofile N`, `# section: loader.conf|sysctl.conf`,
//! `# requires: WHAT`. Every setting and every `# limit:` must have a comment block directly
//! above it (no blank line between): the profiles promise a why for every line.
//!
//! Not here: whether a value is sensible (the check does that) or known (`knobs`; unknown keys
//! parse, so users can add their own; the shipped profiles are tested to use known ones only).
//!
//! Invariant: values are stored whitespace-normalised (single spaces), as `/proc/sys` is
//! compared against them.

use std::path::Path;

use serde::Serialize;

use crate::knobs::{self, Os, Scope};
use crate::TuneError;

/// Which file a setting belongs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Section {
    /// A run-time sysctl (Linux sysctl.d, FreeBSD /etc/sysctl.conf).
    Sysctl,
    /// A FreeBSD boot-time tunable (/boot/loader.conf).
    Loader,
}

/// One `key = value` line.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// The comment block right above it, joined with newlines, without the `#`.
    pub comment: String,
    pub section: Section,
    /// 1-based line number in the profile file.
    pub line: usize,
}

/// One `# limit: RESOURCE VALUE` line (only `nofile` is known).
#[derive(Clone, Debug, Serialize)]
pub struct Limit {
    pub resource: String,
    pub value: u64,
    pub comment: String,
    pub line: usize,
}

/// A parsed profile.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub name: String,
    pub os: Os,
    /// The `# about:` line: one sentence on what the profile is for.
    pub about: String,
    pub settings: Vec<Setting>,
    pub limits: Vec<Limit>,
    /// `# requires:` items, e.g. `real-nic`.
    pub requires: Vec<String>,
}

/// The shipped profiles, embedded so the binary works from any directory.
static BUILTIN: &[(Os, &str, &str)] = &[
    (
        Os::Linux,
        "baseline",
        include_str!("../profiles/linux/baseline.conf"),
    ),
    (
        Os::Linux,
        "c1m-lean",
        include_str!("../profiles/linux/c1m-lean.conf"),
    ),
    (
        Os::Linux,
        "c1m-loopback",
        include_str!("../profiles/linux/c1m-loopback.conf"),
    ),
    (
        Os::Linux,
        "c1m-throughput",
        include_str!("../profiles/linux/c1m-throughput.conf"),
    ),
    (
        Os::Linux,
        "low-latency",
        include_str!("../profiles/linux/low-latency.conf"),
    ),
    (
        Os::FreeBsd,
        "baseline",
        include_str!("../profiles/freebsd/baseline.conf"),
    ),
    (
        Os::FreeBsd,
        "c1m-lean",
        include_str!("../profiles/freebsd/c1m-lean.conf"),
    ),
    (
        Os::FreeBsd,
        "c1m-throughput",
        include_str!("../profiles/freebsd/c1m-throughput.conf"),
    ),
    (
        Os::FreeBsd,
        "low-latency",
        include_str!("../profiles/freebsd/low-latency.conf"),
    ),
];

impl Profile {
    /// Names of the shipped profiles for `os`.
    pub fn builtin_names(os: Os) -> Vec<&'static str> {
        BUILTIN
            .iter()
            .filter(|(o, _, _)| *o == os)
            .map(|(_, n, _)| *n)
            .collect()
    }

    /// A shipped profile.
    pub fn builtin(os: Os, name: &str) -> Option<Result<Profile, TuneError>> {
        BUILTIN
            .iter()
            .find(|(o, n, _)| *o == os && *n == name)
            .map(|(o, n, text)| Profile::parse(n, *o, text))
    }

    /// Finds a profile by `spec`: an existing file path, `linux/NAME` or `freebsd/NAME`, or a
    /// shipped NAME for this OS. A file's OS is guessed from its parent directory name.
    pub fn resolve(spec: &str) -> Result<Profile, TuneError> {
        let path = Path::new(spec);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| TuneError::io(format!("reading profile {spec}"), e))?;
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or(spec);
            let in_freebsd_dir = path
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|d| d == "freebsd");
            let os = if in_freebsd_dir {
                Os::FreeBsd
            } else {
                Os::current()
            };
            return Profile::parse(name, os, &text);
        }
        let (os, name) = match spec.split_once('/') {
            Some(("linux", n)) => (Os::Linux, n),
            Some(("freebsd", n)) => (Os::FreeBsd, n),
            _ => (Os::current(), spec),
        };
        Profile::builtin(os, name).unwrap_or_else(|| {
            Err(TuneError::UnknownProfile {
                name: spec.to_string(),
                known: Profile::builtin_names(os)
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            })
        })
    }

    /// Parses profile text (see the module docs for the format).
    pub fn parse(name: &str, os: Os, text: &str) -> Result<Profile, TuneError> {
        let mut p = Parser::new(name, os);
        for (i, raw) in text.lines().enumerate() {
            p.line(i + 1, raw.trim())?;
        }
        p.finish()
    }

    /// The nofile limit the profile asks for, if any.
    pub fn nofile(&self) -> Option<u64> {
        self.limits
            .iter()
            .find(|l| l.resource == "nofile")
            .map(|l| l.value)
    }

    /// The value this profile gives `key`, if any.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// Where `setting` takes effect on this profile's OS.
    pub fn scope(&self, setting: &Setting) -> Scope {
        knobs::scope_of(self.os, &setting.key)
    }

    /// Sets (or adds) `key = value`, as `compare --set` does; the comment records the override.
    pub fn set_override(&mut self, key: &str, value: &str) {
        let value = normalize(value);
        if let Some(s) = self.settings.iter_mut().find(|s| s.key == key) {
            s.value = value;
            s.comment = "override given on the command line (compare --set)".to_string();
            return;
        }
        self.settings.push(Setting {
            key: key.to_string(),
            value,
            comment: "override given on the command line (compare --set)".to_string(),
            section: Section::Sysctl,
            line: 0,
        });
    }
}

/// Collapses runs of whitespace to one space (how /proc/sys values are compared).
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Line-by-line parser state.
struct Parser {
    profile: Profile,
    /// Comment lines seen since the last blank line or setting.
    pending: Vec<String>,
    section: Section,
}

impl Parser {
    fn new(name: &str, os: Os) -> Parser {
        Parser {
            profile: Profile {
                name: name.to_string(),
                os,
                about: String::new(),
                settings: Vec::new(),
                limits: Vec::new(),
                requires: Vec::new(),
            },
            pending: Vec::new(),
            section: Section::Sysctl,
        }
    }

    fn err(&self, line: usize, reason: impl Into<String>) -> TuneError {
        TuneError::Parse {
            profile: self.profile.name.clone(),
            line,
            reason: reason.into(),
        }
    }

    fn line(&mut self, n: usize, line: &str) -> Result<(), TuneError> {
        if line.is_empty() {
            self.pending.clear();
            return Ok(());
        }
        if let Some(body) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
            return self.comment(n, body.trim());
        }
        self.setting(n, line)
    }

    fn comment(&mut self, n: usize, body: &str) -> Result<(), TuneError> {
        let Some((word, rest)) = body.split_once(':') else {
            self.pending.push(body.to_string());
            return Ok(());
        };
        let rest = rest.trim();
        match word {
            "about" => self.profile.about = rest.to_string(),
            "requires" => self.profile.requires.push(rest.to_string()),
            "section" => {
                self.section = match rest {
                    "loader.conf" => Section::Loader,
                    "sysctl.conf" | "sysctl.d" => Section::Sysctl,
                    other => return Err(self.err(n, format!("unknown section {other:?}"))),
                };
                self.pending.clear();
            }
            "limit" => self.limit(n, rest)?,
            _ => self.pending.push(body.to_string()),
        }
        Ok(())
    }

    fn limit(&mut self, n: usize, rest: &str) -> Result<(), TuneError> {
        let mut parts = rest.split_whitespace();
        let (Some(resource), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(self.err(
                n,
                "limit needs `RESOURCE VALUE`, e.g. `# limit: nofile 2097152`",
            ));
        };
        if resource != "nofile" {
            return Err(self.err(n, format!("unknown limit {resource:?} (known: nofile)")));
        }
        let value: u64 = value
            .parse()
            .map_err(|_| self.err(n, "limit value is not a number"))?;
        if self.pending.is_empty() {
            return Err(self.err(n, "limit without a comment block above it"));
        }
        let comment = self.pending.join("\n");
        self.profile.limits.push(Limit {
            resource: resource.to_string(),
            value,
            comment,
            line: n,
        });
        Ok(())
    }

    fn setting(&mut self, n: usize, line: &str) -> Result<(), TuneError> {
        // sysctl.d: a leading '-' means "ignore failure"; the key is the same.
        let line = line.strip_prefix('-').unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(self.err(n, "expected `key = value`"));
        };
        let key = key.trim();
        let mut value = value.trim();
        if self.section == Section::Loader {
            value = value.trim_matches('"');
        }
        if key.is_empty() || value.is_empty() || key.contains(char::is_whitespace) {
            return Err(self.err(n, "expected `key = value` with a non-empty key and value"));
        }
        if self.pending.is_empty() {
            return Err(self.err(
                n,
                format!("{key} has no comment block above it (why, effect)"),
            ));
        }
        let section = self.section;
        if self
            .profile
            .settings
            .iter()
            .any(|s| s.key == key && s.section == section)
        {
            return Err(self.err(n, format!("{key} is set twice")));
        }
        self.profile.settings.push(Setting {
            key: key.to_string(),
            value: normalize(value),
            comment: self.pending.join("\n"),
            section,
            line: n,
        });
        self.pending.clear();
        Ok(())
    }

    fn finish(self) -> Result<Profile, TuneError> {
        if self.profile.about.is_empty() {
            return Err(self.err(1, "missing `# about: ...` line"));
        }
        Ok(self.profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "# about: test\n\n# why: because\nnet.core.somaxconn = 1024\n\
                         # why: fds\n# limit: nofile 5000\n";

    #[test]
    fn parses_settings_limits_and_comments() {
        let p = Profile::parse("t", Os::Linux, SMALL).unwrap();
        assert_eq!(p.about, "test");
        assert_eq!(p.settings.len(), 1);
        assert_eq!(p.settings[0].key, "net.core.somaxconn");
        assert_eq!(p.settings[0].value, "1024");
        assert_eq!(p.settings[0].comment, "why: because");
        assert_eq!(p.settings[0].line, 4);
        assert_eq!(p.nofile(), Some(5000));
    }

    #[test]
    fn setting_without_comment_is_rejected() {
        let text = "# about: t\n# why\n\nnet.core.somaxconn = 1\n";
        let err = Profile::parse("t", Os::Linux, text).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }

    #[test]
    fn limit_without_comment_and_bad_limits_are_rejected() {
        for text in [
            "# about: t\n\n# limit: nofile 10\n",
            "# about: t\n# x\n# limit: nofile ten\n",
            "# about: t\n# x\n# limit: memlock 10\n",
        ] {
            assert!(Profile::parse("t", Os::Linux, text).is_err(), "{text}");
        }
    }

    #[test]
    fn loader_values_lose_quotes_and_whitespace_is_normalised() {
        let text = "# about: t\n# section: loader.conf\n# w\nkern.maxfiles=\"42\"\n\
                    # section: sysctl.conf\n# w\nnet.x = 1 \t 2   3\n";
        let p = Profile::parse("t", Os::FreeBsd, text).unwrap();
        assert_eq!(p.settings[0].value, "42");
        assert_eq!(p.settings[0].section, Section::Loader);
        assert_eq!(p.settings[1].value, "1 2 3");
        assert_eq!(p.settings[1].section, Section::Sysctl);
    }

    #[test]
    fn duplicates_and_missing_about_are_rejected() {
        let dup = "# about: t\n# a\nx.y = 1\n# b\nx.y = 2\n";
        assert!(Profile::parse("t", Os::Linux, dup).is_err());
        assert!(Profile::parse("t", Os::Linux, "# a\nx.y = 1\n").is_err());
    }

    #[test]
    fn resolve_finds_builtin_and_qualified_names() {
        assert_eq!(Profile::resolve("linux/c1m-lean").unwrap().os, Os::Linux);
        assert_eq!(
            Profile::resolve("freebsd/c1m-lean").unwrap().os,
            Os::FreeBsd
        );
        let err = Profile::resolve("no-such-profile").unwrap_err();
        assert!(err.to_string().contains("baseline"), "{err}");
    }

    #[test]
    fn override_replaces_or_adds() {
        let mut p = Profile::parse("t", Os::Linux, SMALL).unwrap();
        p.set_override("net.core.somaxconn", "128");
        p.set_override("net.ipv4.tcp_fin_timeout", "15");
        assert_eq!(p.value("net.core.somaxconn"), Some("128"));
        assert_eq!(p.value("net.ipv4.tcp_fin_timeout"), Some("15"));
    }
}
