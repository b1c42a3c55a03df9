//! The host check: can this host hold N connections, as the server (over K processes), as the
//! load generator, or as both ends of a loopback test? Lists, tightest first, everything that
//! caps the target (fd limits, file table, ports, backlogs, tcp_mem, conntrack, close-storm
//! limits, memory), each with its current value, the value needed, the connection ceiling it
//! implies, the exact fix and whether it is set per network namespace or for the whole host.
//!
//! Not here: changing anything (see `apply`). `rookery` and `rookery-load` call `check_host`
//! at start and print `verdict_line()`.
//!
//! Invariants: findings are ordered Caps (lowest ceiling first), then Warn, then Ok;
//! `reachable()` is true exactly when no finding has status Caps.

mod closes;
mod facts;
mod fds;
mod rules;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::knobs::{Os, Scope};
use crate::util::thousands;

pub use fds::{server_processes_needed, FD_RESERVE};
pub use rules::LINUX_KERNEL_BYTES_PER_SOCKET;

/// Which side of the connections the checked host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Accepts the connections (rookery), in `CheckInput::server_processes` processes.
    Server,
    /// Opens them (rookery-load): needs ports, spreads over processes by itself.
    Loadgen,
    /// Both on one host (a loopback test): every connection is two sockets, two open files and
    /// two processes' user space on this host.
    Both,
}

impl Role {
    /// Whether rookery runs on the checked host.
    pub fn runs_server(self) -> bool {
        matches!(self, Role::Server | Role::Both)
    }

    /// Whether rookery-load runs on the checked host.
    pub fn runs_loadgen(self) -> bool {
        matches!(self, Role::Loadgen | Role::Both)
    }

    /// Sockets (and open files) on this host per connection.
    pub fn sockets_per_conn(self) -> u64 {
        if self == Role::Both {
            2
        } else {
            1
        }
    }

    /// User-space bytes per connection on this host when not given (see the constants).
    pub fn default_user_bytes(self) -> u64 {
        match self {
            Role::Server => SERVER_SESSION_BYTES,
            Role::Loadgen => LOADGEN_CLIENT_BYTES,
            Role::Both => SERVER_SESSION_BYTES + LOADGEN_CLIENT_BYTES,
        }
    }

    /// How reports name it.
    pub fn label(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Loadgen => "load generator",
            Role::Both => "server + load generator on one host",
        }
    }
}

/// What to check the host against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckInput {
    pub role: Role,
    /// Connections held at once.
    pub connections: u64,
    /// User-space bytes per connection on this host: per session (server), per client
    /// (loadgen), or both added (Both). Added to the kernel's bytes per socket.
    pub per_session_bytes: u64,
    /// New connections per second the accept queues must absorb (reconnect storm).
    pub connect_rate_per_s: u64,
    /// Source addresses the generator connects from (ephemeral ports are per address).
    pub source_addresses: u32,
    /// rookery processes the connections are spread over (`rookery cluster up --nodes K`);
    /// each holds its share under its own RLIMIT_NOFILE. 1 = one process holds them all.
    pub server_processes: u64,
}

/// Server user space per idle session: 1,380 B, the median RSS growth per session of one
/// rookery process holding 19,000 plain-TCP sessions (io_uring, default durability, token
/// auth; results/20261207-154821-before-after, 5 runs 1,379-1,382 B; the tune compare of
/// results/20261128-205310-tune-hold-c19000 measured 1,301-1,303 B). XEP-0198 off there:
/// its per-session state comes on top while messages are unacked.
pub const SERVER_SESSION_BYTES: u64 = 1_380;
/// Generator user space per simulated client: issue 13's budget of 512 B (measured 511-706 B
/// before that work, results/20261207-192611-tls: 351 B at 3,000 plain clients).
pub const LOADGEN_CLIENT_BYTES: u64 = 512;
/// Lowest default connect rate: rookery-load's default `--connect-rate`.
pub const MIN_DEFAULT_CONNECT_RATE_PER_S: u64 = 1000;
/// Default storm: every client reconnects within this many seconds after a restart.
pub const DEFAULT_RECONNECT_WINDOW_S: u64 = 60;

impl CheckInput {
    /// Defaults: the role's user bytes per connection, connect rate max(1000/s, everyone back
    /// within 60 s), one source address, one server process.
    pub fn new(role: Role, connections: u64) -> CheckInput {
        CheckInput {
            role,
            connections,
            per_session_bytes: role.default_user_bytes(),
            connect_rate_per_s: (connections / DEFAULT_RECONNECT_WINDOW_S)
                .max(MIN_DEFAULT_CONNECT_RATE_PER_S),
            source_addresses: 1,
            server_processes: 1,
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
        let head = match self.input.role {
            Role::Both => "host check (server + load generator on one host)",
            _ => "host check",
        };
        if let Some(first) = self.with_status(Status::Caps).next() {
            return format!(
                "{head}: {} of {target} connections reachable; first cap: {} (fix: {})",
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
        let mut line = format!("{head}: {target} connections reachable{tightest}");
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
        let input = &self.input;
        writeln!(f, "{}", self.verdict_line())?;
        let servers = if input.role.runs_server() {
            format!(", {} server process(es)", thousands(input.server_processes))
        } else {
            String::new()
        };
        writeln!(
            f,
            "target: {} connections as {}{servers}, {} B user space per connection, {}/s \
             connect rate, {} source address(es)",
            thousands(input.connections),
            input.role.label(),
            input.per_session_bytes,
            thousands(input.connect_rate_per_s),
            input.source_addresses
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
        assert_eq!(big.per_session_bytes, LOADGEN_CLIENT_BYTES);
        assert_eq!(small.per_session_bytes, SERVER_SESSION_BYTES);
        let both = CheckInput::new(Role::Both, 1_000_000);
        assert_eq!(both.per_session_bytes, 1_380 + 512);
        assert_eq!(both.server_processes, 1);
    }
}
