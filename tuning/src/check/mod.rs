//! The host check: can this host hold N connections? Lists, tightest first, everything that
//! caps the target (fd limits, file table, ports, backlogs, tcp_mem, conntrack, memory), each
//! with its current value, the value needed, the connection ceiling it implies, the exact fix
//! and whether it is set per network namespace or for the whole host.
//!
//! Not here: changing anything (see `apply`). `rookery` and `rookery-load` call `check_host`
//! at start and print `verdict_line()`.
//!
//! Invariants: findings are ordered Caps (lowest ceiling first), then Warn, then Ok;
//! `reachable()` is true exactly when no finding has status Caps.

mod facts;
mod rules;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::knobs::{Os, Scope};
use crate::util::thousands;

pub use rules::{FD_RESERVE, LINUX_KERNEL_BYTES_PER_CONN};

/// Which side of the connections the checked process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Accepts the connections (rookery): one process holds them all.
    Server,
    /// Opens them (rookery-load): needs ports, may spread over processes.
    Loadgen,
}

/// What to check the host against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckInput {
    pub role: Role,
    /// Connections the process must hold at once.
    pub connections: u64,
    /// User-space bytes per session of the process (added to the kernel's per-socket bytes).
    pub per_session_bytes: u64,
    /// New connections per second the accept queue must absorb (reconnect storm).
    pub connect_rate_per_s: u64,
    /// Source addresses the generator connects from (ephemeral ports are per address).
    pub source_addresses: u32,
}

/// Per-session user-space budget of DESIGN.md (engine <= 1 KiB; the generator measured 544 B
/// per client in results/20261128-195714-hold-c19000, rounded up to the same budget).
pub const DEFAULT_PER_SESSION_BYTES: u64 = 1024;
/// Lowest default connect rate: rookery-load's default `--connect-rate`.
pub const MIN_DEFAULT_CONNECT_RATE_PER_S: u64 = 1000;
/// Default storm: every client reconnects within this many seconds after a restart.
pub const DEFAULT_RECONNECT_WINDOW_S: u64 = 60;

impl CheckInput {
    /// Defaults: 1 KiB per session, connect rate max(1000/s, everyone back within 60 s), one
    /// source address.
    pub fn new(role: Role, connections: u64) -> CheckInput {
        CheckInput {
            role,
            connections,
            per_session_bytes: DEFAULT_PER_SESSION_BYTES,
            connect_rate_per_s: (connections / DEFAULT_RECONNECT_WINDOW_S)
                .max(MIN_DEFAULT_CONNECT_RATE_PER_S),
            source_addresses: 1,
        }
    }
}

/// RLIMIT_NOFILE of the process that will hold the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NofileLimits {
    pub soft: u64,
    pub hard: u64,
}

impl NofileLimits {
    /// This process's limits (getrlimit).
    pub fn current() -> std::io::Result<NofileLimits> {
        let (soft, hard) = crate::sys::nofile_limits()?;
        Ok(NofileLimits { soft, hard })
    }
}

/// How a finding bears on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Status {
    /// Caps the connection count below the target.
    Caps,
    /// Does not cap the count, but hurts at the target (storms, pressure) or was not checked.
    Warn,
    /// Fine for the target.
    Ok,
}

/// One limit and what it means for the target.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub knob: String,
    pub current: String,
    pub needed: String,
    /// Connections this limit allows; None when it does not cap the count.
    pub ceiling: Option<u64>,
    /// The exact command or config line that fixes it.
    pub fix: String,
    pub scope: Scope,
    pub status: Status,
    /// Why it matters, with the arithmetic.
    pub note: String,
}

/// The result of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub os: Os,
    pub input: CheckInput,
    /// Ordered: see the module invariants.
    pub findings: Vec<Finding>,
}

/// Checks the live host (Linux: /proc of the calling thread's network namespace, getrlimit;
/// FreeBSD: sysctlbyname).
pub fn check_host(input: &CheckInput) -> CheckReport {
    // getrlimit(RLIMIT_NOFILE) cannot fail with a valid pointer; 0/0 would then show as the cap.
    let limits = NofileLimits::current().unwrap_or(NofileLimits { soft: 0, hard: 0 });
    #[cfg(target_os = "freebsd")]
    let f = facts::freebsd_live(limits);
    #[cfg(not(target_os = "freebsd"))]
    let f = facts::linux_from_tree(Path::new("/"), limits);
    report(f, input)
}

/// Checks a Linux `/proc` tree under `root` (a fixture in tests) with the given fd limits.
pub fn check_tree(root: &Path, input: &CheckInput, limits: NofileLimits) -> CheckReport {
    report(facts::linux_from_tree(root, limits), input)
}

fn report(f: facts::HostFacts, input: &CheckInput) -> CheckReport {
    let mut findings = rules::evaluate(&f, input);
    findings.sort_by_key(|x| (x.status, x.ceiling.unwrap_or(u64::MAX)));
    CheckReport {
        os: f.os,
        input: input.clone(),
        findings,
    }
}

impl CheckReport {
    /// True when nothing caps the target.
    pub fn reachable(&self) -> bool {
        !self.findings.iter().any(|f| f.status == Status::Caps)
    }

    /// The lowest connection ceiling of all findings (`u64::MAX` when none has one).
    pub fn ceiling(&self) -> u64 {
        self.findings
            .iter()
            .filter_map(|f| f.ceiling)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Findings with the given status, in report order.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.status == status)
    }

    /// One line: reachable or not, the ceiling, the first cap (or warning) and its fix.
    pub fn verdict_line(&self) -> String {
        let target = thousands(self.input.connections);
        if let Some(first) = self.with_status(Status::Caps).next() {
            return format!(
                "host check: {} of {target} connections reachable; first cap: {} (fix: {})",
                thousands(self.ceiling().min(self.input.connections)),
                first.knob,
                first.fix
            );
        }
        let tightest = self
            .findings
            .iter()
            .filter(|f| f.ceiling.is_some())
            .min_by_key(|f| f.ceiling)
            .map_or(String::new(), |f| {
                format!(" (ceiling {}: {})", thousands(self.ceiling()), f.knob)
            });
        let mut line = format!("host check: {target} connections reachable{tightest}");
        let warnings: Vec<&Finding> = self.with_status(Status::Warn).collect();
        if let Some(w) = warnings.first() {
            line.push_str(&format!(
                "; {} warning(s), first: {} {} < {} (fix: {})",
                warnings.len(),
                w.knob,
                w.current,
                w.needed,
                w.fix
            ));
        }
        line
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.input.role {
            Role::Server => "server",
            Role::Loadgen => "load generator",
        };
        writeln!(f, "{}", self.verdict_line())?;
        writeln!(
            f,
            "target: {} connections as {role}, {} B user space per session, {}/s connect rate, \
             {} source address(es)",
            thousands(self.input.connections),
            self.input.per_session_bytes,
            thousands(self.input.connect_rate_per_s),
            self.input.source_addresses
        )?;
        for (i, x) in self.findings.iter().enumerate() {
            let tag = match x.status {
                Status::Caps => "CAPS",
                Status::Warn => "WARN",
                Status::Ok => "ok",
            };
            let ceiling = x.ceiling.map_or("no count cap".to_string(), |c| {
                format!("ceiling {}", thousands(c))
            });
            writeln!(f, "{:>2}. [{tag}] {} ({})", i + 1, x.knob, x.scope.label())?;
            writeln!(f, "    now {}; needs {}; {ceiling}", x.current, x.needed)?;
            if x.status != Status::Ok {
                writeln!(f, "    fix: {}", x.fix)?;
            }
            writeln!(f, "    why: {}", x.note)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_scale_the_connect_rate() {
        let small = CheckInput::new(Role::Server, 1000);
        assert_eq!(small.connect_rate_per_s, 1000);
        let big = CheckInput::new(Role::Loadgen, 1_200_000);
        assert_eq!(big.connect_rate_per_s, 20_000);
        assert_eq!(big.source_addresses, 1);
        assert_eq!(big.per_session_bytes, DEFAULT_PER_SESSION_BYTES);
    }
}
