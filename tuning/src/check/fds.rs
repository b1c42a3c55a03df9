//! The descriptor rules: RLIMIT_NOFILE per process (and how many processes the hard limit
//! needs), fs.nr_open, fs.file-max and FreeBSD's socket zone. A connection is one fd in the
//! process holding it, so these count processes and sockets, not bytes.
//!
//! Not here: memory, ports, queues (see `rules`).
//!
//! Invariants: a server spread over K processes is judged on its busiest process (hash
//! placement: mean + 3 standard deviations, see `busiest_share`); the generator splits its
//! clients evenly (rookery-load `--processes`, whose default picks the count), so its
//! RLIMIT_NOFILE finding never caps.

use crate::check::facts::HostFacts;
use crate::check::{CheckInput, Finding, Role, Status};
use crate::knobs::{Os, Scope};
use crate::util::thousands;

/// fds rookery keeps below RLIMIT_NOFILE for listeners, logs and accept-and-refuse
/// (`rookery --fd-reserve` default; rookery-load keeps the same 64, loadgen/src/host.rs).
pub const FD_RESERVE: u64 = 64;
/// Processes tried above the even split before `server_processes_needed` gives up (the hash
/// margin is a few percent, so a handful more always suffices when any count does).
const MAX_EXTRA_PROCESSES: u64 = 1_000;

/// Connections the busiest of `processes` rookery nodes holds when `n` clients are placed by
/// hashing their JIDs (rookery-cluster's Placement: FNV-1a over 4,096 vshards). A node's count
/// is binomial around n/K with a standard deviation <= sqrt(n/K); mean + 3 sd covers the
/// busiest of a few hundred nodes (the vshard rounding, 79 vs 78.8 at 52 nodes, is inside it).
/// One process holds all `n`.
pub fn busiest_share(n: u64, processes: u64) -> u64 {
    let k = processes.max(1);
    if k == 1 {
        return n;
    }
    with_margin(n.div_ceil(k))
}

/// An even share plus 3 standard deviations of a hash-placed count.
fn with_margin(mean: u64) -> u64 {
    mean + 3 * (mean as f64).sqrt().ceil() as u64
}

/// The fewest rookery processes whose busiest one stays under `hard` fds (with the reserve);
/// None when even `n` + 1,000 processes do not fit (a hard limit at or below the reserve).
pub fn server_processes_needed(n: u64, hard: u64) -> Option<u64> {
    let per_process = hard.checked_sub(FD_RESERVE).filter(|&p| p > 0)?;
    let first = n.div_ceil(per_process).max(1);
    (first..=first + MAX_EXTRA_PROCESSES).find(|&k| busiest_share(n, k) <= per_process)
}

/// Connections `processes` rookery nodes of `per_process` fds (after the reserve) hold: the
/// largest even share m with m + 3 sd <= per_process, times the processes.
fn server_ceiling(processes: u64, per_process: u64) -> u64 {
    let k = processes.max(1);
    if k == 1 {
        return per_process;
    }
    let fits = |m: u64| with_margin(m) <= per_process;
    let mut m = per_process.saturating_sub(3 * (per_process as f64).sqrt().ceil() as u64 + 1);
    // sqrt moves by < 1 per step here, so this ends within a few steps; bounded anyway.
    for _ in 0..MAX_EXTRA_PROCESSES {
        if !fits(m + 1) {
            break;
        }
        m += 1;
    }
    m.saturating_mul(k)
}

/// Generator processes of `hard` fds each for `n` clients, split evenly (rookery-load's rule).
fn loadgen_processes_needed(n: u64, hard: u64) -> u64 {
    n.div_ceil(hard.saturating_sub(FD_RESERVE).max(1)).max(1)
}

/// The RLIMIT_NOFILE fix line for `needed` fds per process.
fn nofile_fix(os: Os, needed: u64) -> String {
    match os {
        Os::Linux => format!(
            "LimitNOFILE={needed} in the systemd unit, or `* - nofile {needed}` in \
             /etc/security/limits.conf (raising the hard limit needs root/CAP_SYS_RESOURCE)"
        ),
        Os::FreeBsd => format!(
            "`:openfiles={needed}:` in /etc/login.conf for the service's class, or \
             `ulimit -n {needed}` in its rc script"
        ),
    }
}

pub fn nofile(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    if input.role.runs_server() {
        out.push(server_nofile(f, input));
    }
    if input.role.runs_loadgen() {
        out.push(loadgen_nofile(f, input));
    }
    let needed = per_process_fds(input);
    let soft_ok = f.nofile.soft >= needed.min(f.nofile.hard);
    out.push(Finding {
        knob: format!("RLIMIT_NOFILE soft {}", thousands(f.nofile.soft)),
        current: thousands(f.nofile.soft),
        needed: thousands(needed.min(f.nofile.hard)),
        ceiling: None,
        fix: "none needed: rookery and rookery-load raise the soft limit to the hard limit"
            .to_string(),
        scope: Scope::PerProcess,
        status: Status::Ok,
        note: if soft_ok {
            "soft limit already enough"
        } else {
            "raised at start"
        }
        .to_string(),
    });
}

/// The most fds any one process of the target needs (the busiest server node, or a generator
/// process when there is no server here).
fn per_process_fds(input: &CheckInput) -> u64 {
    let n = input.connections;
    let share = if input.role.runs_server() {
        busiest_share(n, input.server_processes)
    } else {
        n
    };
    share.saturating_add(FD_RESERVE)
}

fn server_nofile(f: &HostFacts, input: &CheckInput) -> Finding {
    let n = input.connections;
    let k = input.server_processes.max(1);
    let hard = f.nofile.hard;
    let per_process = hard.saturating_sub(FD_RESERVE);
    let busiest = busiest_share(n, k);
    let needed = busiest.saturating_add(FD_RESERVE);
    let ceiling = server_ceiling(k, per_process);
    let required = server_processes_needed(n, hard);
    let spread = match required {
        Some(r) => format!(
            "or spread it over {r} processes of the current hard limit: rookery cluster up \
             --nodes {r}"
        ),
        None => "the hard limit is below the fd reserve: raise it".to_string(),
    };
    let knob = if k == 1 {
        format!("RLIMIT_NOFILE hard {}", thousands(hard))
    } else {
        format!(
            "RLIMIT_NOFILE hard {} (server, {k} processes)",
            thousands(hard)
        )
    };
    let mut x = Finding {
        knob,
        current: thousands(hard),
        needed: format!("{} per process", thousands(needed)),
        ceiling: Some(ceiling),
        fix: format!("{}; {spread}", nofile_fix(f.os, needed)),
        scope: Scope::PerProcess,
        status: if busiest <= per_process {
            Status::Ok
        } else {
            Status::Caps
        },
        note: String::new(),
    };
    x.note = if k == 1 {
        format!("one process holds every connection plus {FD_RESERVE} reserved fds")
    } else {
        format!(
            "{k} processes, the busiest holding {} (mean {} + 3 sd of hash placement) plus \
             {FD_RESERVE} reserved fds",
            thousands(busiest),
            thousands(n.div_ceil(k))
        )
    };
    if let Some(r) = required {
        x.note.push_str(&format!(
            "; this hard limit needs >= {r} server process(es) (rookery cluster up --nodes {r})"
        ));
    }
    x
}

fn loadgen_nofile(f: &HostFacts, input: &CheckInput) -> Finding {
    let n = input.connections;
    let hard = f.nofile.hard;
    let processes = loadgen_processes_needed(n, hard);
    let per_process = n.div_ceil(processes).saturating_add(FD_RESERVE);
    let knob = if input.role == Role::Both {
        format!("RLIMIT_NOFILE hard {} (load generator)", thousands(hard))
    } else {
        format!("RLIMIT_NOFILE hard {}", thousands(hard))
    };
    Finding {
        knob,
        current: thousands(hard),
        needed: format!("{} per process", thousands(per_process)),
        ceiling: None,
        fix: format!(
            "none needed: rookery-load starts {processes} worker process(es) by itself; \
             fewer with {}",
            nofile_fix(f.os, n.saturating_add(FD_RESERVE))
        ),
        scope: Scope::PerProcess,
        status: Status::Ok,
        note: format!(
            "{processes} generator process(es) of <= {} fds each (rookery-load --processes; \
             its default picks this)",
            thousands(per_process)
        ),
    }
}

pub fn nr_open(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(nr_open) = f.nr_open else { return };
    let needed = per_process_fds(input);
    let (name, fix) = match f.os {
        Os::Linux => ("fs.nr_open", format!("sysctl -w fs.nr_open={needed}")),
        Os::FreeBsd => (
            "kern.maxfilesperproc",
            format!("kern.maxfilesperproc=\"{needed}\" in /boot/loader.conf"),
        ),
    };
    let fits = nr_open >= needed;
    let (ceiling, status) = if input.role.runs_server() {
        let per_process = nr_open.saturating_sub(FD_RESERVE);
        let ceiling = server_ceiling(input.server_processes, per_process);
        (Some(ceiling), if fits { Status::Ok } else { Status::Caps })
    } else {
        (None, Status::Ok)
    };
    let mut note = "the highest RLIMIT_NOFILE any process can be given".to_string();
    if input.role.runs_server() && input.server_processes > 1 {
        note.push_str("; judged on the busiest server process");
    } else if !input.role.runs_server() {
        note.push_str("; the generator spreads over processes, so it is per process");
    }
    out.push(Finding {
        knob: name.into(),
        current: thousands(nr_open),
        needed: thousands(needed),
        ceiling,
        fix,
        scope: Scope::HostWide,
        status,
        note,
    });
}

pub fn file_max(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(max) = f.file_max else { return };
    let n = input.connections;
    let per_conn = input.role.sockets_per_conn();
    let in_use = f.files_in_use.unwrap_or(0);
    let needed = in_use.saturating_add(n.saturating_mul(per_conn));
    let (name, fix) = match f.os {
        Os::Linux => (
            "fs.file-max",
            format!("sysctl -w fs.file-max={}", needed.saturating_mul(2)),
        ),
        Os::FreeBsd => (
            "kern.maxfiles",
            format!(
                "kern.maxfiles=\"{}\" in /boot/loader.conf",
                needed.saturating_mul(2)
            ),
        ),
    };
    let ceiling = max.saturating_sub(in_use) / per_conn;
    let both = if per_conn == 2 {
        "both ends are on this host: 2 open files per connection"
    } else {
        "a loopback test needs 2 per connection (use --role both)"
    };
    out.push(Finding {
        knob: name.into(),
        current: thousands(max),
        needed: thousands(needed),
        ceiling: Some(ceiling),
        fix,
        scope: Scope::HostWide,
        status: if ceiling < n {
            Status::Caps
        } else {
            Status::Ok
        },
        note: format!(
            "{} files open now; {both}; the fix leaves 2x headroom; root (CAP_SYS_ADMIN) \
             processes are exempt on Linux",
            thousands(in_use)
        ),
    });
}

pub fn max_sockets(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some((max, in_use)) = f.max_sockets else {
        return;
    };
    let per_conn = input.role.sockets_per_conn();
    let needed = in_use.saturating_add(input.connections.saturating_mul(per_conn));
    let ceiling = max.saturating_sub(in_use) / per_conn;
    out.push(Finding {
        knob: "kern.ipc.maxsockets".into(),
        current: thousands(max),
        needed: thousands(needed),
        ceiling: Some(ceiling),
        fix: format!(
            "kern.ipc.maxsockets=\"{}\" in /boot/loader.conf",
            needed.saturating_mul(2)
        ),
        scope: Scope::Boot,
        status: if ceiling < input.connections {
            Status::Caps
        } else {
            Status::Ok
        },
        note: "socket zone limit; can be raised at run time but not lowered".to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_needs_52_nodes_under_20000_fds() {
        assert_eq!(busiest_share(1_000_000, 1), 1_000_000);
        assert_eq!(busiest_share(1_000_000, 52), 19_231 + 3 * 139);
        assert_eq!(server_processes_needed(1_000_000, 20_000), Some(52));
        assert_eq!(server_processes_needed(19_936, 20_000), Some(1));
        assert_eq!(server_processes_needed(1_000, 64), None);
        assert_eq!(loadgen_processes_needed(1_000_000, 20_000), 51);
        // 52 nodes of 19,936 fds: an even share of m with m + 3 sqrt(m) <= 19,936.
        let c = server_ceiling(52, 19_936);
        assert!(busiest_share(c, 52) <= 19_936 && busiest_share(c + 52, 52) > 19_936);
        assert_eq!(server_ceiling(1, 19_936), 19_936);
    }
}
