//! The close-storm rules: what a mass disconnect leaves behind in the kernel (orphaned sockets,
//! TIME_WAIT sockets) against its limits. Neither caps how many connections are held, so both
//! are warnings at most.
//!
//! Not here: the accept side of a storm (somaxconn, SYN backlog: see `rules`).
//!
//! Kernel doc, Documentation/networking/ip-sysctl.rst:
//! - tcp_max_orphans: "Maximal number of TCP sockets not attached to any user file handle,
//!   held by system. If this number is exceeded orphaned connections are reset immediately and
//!   warning is printed. [...] you _must_ not rely on this or lower the limit artificially, but
//!   rather increase it [...] each orphan eats up to ~64K of unswappable memory."
//! - tcp_max_tw_buckets: "Maximal number of timewait sockets held by system simultaneously. If
//!   this number is exceeded time-wait socket is immediately destroyed and warning is printed.
//!   [...] you _must_ not lower the limit artificially, but rather increase it [...]"
//!
//! Judgement: a socket is an orphan from close() until its FIN exchange ends; FIN_WAIT2 moves
//! to a timewait mini-socket when tcp_fin_timeout <= 60 s (tcp_close, tcp_rcv_state_process).
//! On loopback the exchange takes microseconds, so orphans stay far below one second of closes;
//! one second of closes at the connect rate is the need. TIME_WAIT lasts 60 s
//! (TCP_TIMEWAIT_LEN, not tunable) on the side that closed first, so a storm in which everyone
//! reconnects within the window leaves up to min(N, rate x 60 s) of them. Overflowing either
//! only turns a FIN into a RST or ends a TIME_WAIT early (counted as TCPTimeWaitOverflow): the
//! test goes on, hence warnings.

use crate::check::facts::HostFacts;
use crate::check::{CheckInput, Finding, Status};
use crate::knobs::Scope;
use crate::util::thousands;

/// Seconds a TIME_WAIT socket lives on Linux (TCP_TIMEWAIT_LEN, include/net/tcp.h).
pub const TIME_WAIT_S: u64 = 60;
/// Seconds of closes at the connect rate that may be orphaned at once (see the module doc).
pub const ORPHAN_WINDOW_S: u64 = 1;

pub fn orphans(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(cur) = f.max_orphans else { return };
    let needed = input
        .connect_rate_per_s
        .saturating_mul(ORPHAN_WINDOW_S)
        .min(input.connections);
    out.push(Finding {
        knob: "net.ipv4.tcp_max_orphans".to_string(),
        current: thousands(cur),
        needed: thousands(needed),
        ceiling: None,
        fix: format!("sysctl -w net.ipv4.tcp_max_orphans={}", needed.max(262_144)),
        scope: Scope::HostWide,
        status: if cur < needed {
            Status::Warn
        } else {
            Status::Ok
        },
        note: format!(
            "a close storm at {}/s orphans each socket until its FIN is acked (microseconds on \
             loopback); past the limit closes become resets and dmesg says 'too many orphaned \
             sockets'; up to ~64 KB each with unsent data",
            thousands(input.connect_rate_per_s)
        ),
    });
}

pub fn time_wait(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(cur) = f.max_tw_buckets else { return };
    let needed = input
        .connect_rate_per_s
        .saturating_mul(TIME_WAIT_S)
        .min(input.connections);
    out.push(Finding {
        knob: "net.ipv4.tcp_max_tw_buckets".to_string(),
        current: thousands(cur),
        needed: thousands(needed),
        ceiling: None,
        fix: format!(
            "sysctl -w net.ipv4.tcp_max_tw_buckets={}",
            needed.saturating_mul(2)
        ),
        scope: Scope::PerNamespace,
        status: if cur < needed {
            Status::Warn
        } else {
            Status::Ok
        },
        note: format!(
            "every close leaves a 256 B TIME_WAIT socket for {TIME_WAIT_S} s on the side that \
             closed first: min(N, {}/s x {TIME_WAIT_S} s); past the limit they end early \
             (TcpExtTCPTimeWaitOverflow); a generator's TIME_WAIT port is reused by \
             tcp_tw_reuse (on loopback by default)",
            thousands(input.connect_rate_per_s)
        ),
    });
}
