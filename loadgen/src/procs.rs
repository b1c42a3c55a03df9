//! Worker processes: a run whose clients need more file descriptors than one process may hold
//! (RLIMIT_NOFILE, after raising the soft limit to the hard one) is spread over several
//! processes of this same binary. The parent (`parent`) spawns `rookery-load worker --index I
//! --of P`, hands each its spec on stdin, steers the phases (common ramp start, common steady
//! start, both absolute CLOCK_MONOTONIC instants, which every process of the host shares) and
//! merges what they report on stdout (`protocol`): per-second counters and interval
//! histograms, then every histogram and the exact delivery ledgers. The child side is `child`.
//!
//! Process `I` runs the clients whose index is `I` modulo `P`; all of them talk to the
//! server, so a message from a client of process A to one of process B crosses the server
//! like any other and is accounted when the parent merges the ledgers.
//!
//! What it does not do: spread over several hosts, or track which clients of *other*
//! processes are online after the steady start (each process learns it once, then).

use crate::host::{self, HostError};

pub mod child;
pub mod parent;
pub mod protocol;

/// Most worker processes a run spawns.
pub const MAX_PROCESSES: u32 = 1024;

/// How a run is spread over processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub processes: u32,
    pub threads_per_process: usize,
}

/// Chooses the processes for `clients` clients on `threads` threads, given the RLIMIT_NOFILE
/// each process gets (`soft`, already raised to `hard` where allowed); `forced` is
/// `--processes`. The threads are shared out so the run uses as many as asked, not P times.
pub fn plan(
    clients: u64,
    threads: usize,
    forced: Option<u32>,
    soft: u64,
    hard: u64,
) -> Result<Plan, HostError> {
    let fits = |processes: u32| {
        let threads_per_process = threads.div_ceil(processes as usize).max(1);
        let share = clients.div_ceil(u64::from(processes));
        host::check_fds(share, threads_per_process, soft, hard)
            .ok()
            .map(|()| Plan {
                processes,
                threads_per_process,
            })
    };
    if let Some(processes) = forced {
        return fits(processes).ok_or(HostError::NotEnoughFds {
            clients: clients.div_ceil(u64::from(processes)),
            needed: host::fds_needed(clients.div_ceil(u64::from(processes)), 1),
            soft,
            hard,
        });
    }
    (1..=MAX_PROCESSES)
        .find_map(fits)
        .ok_or(HostError::NotEnoughFds {
            clients,
            needed: host::fds_needed(clients, threads),
            soft,
            hard,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_clients_only_when_the_fds_require_it() {
        assert_eq!(
            plan(19_000, 2, None, 20_000, 20_000),
            Ok(Plan {
                processes: 1,
                threads_per_process: 2
            })
        );
        assert_eq!(
            plan(50_000, 2, None, 20_000, 20_000),
            Ok(Plan {
                processes: 3,
                threads_per_process: 1
            })
        );
        assert_eq!(
            plan(100, 2, Some(2), 20_000, 20_000),
            Ok(Plan {
                processes: 2,
                threads_per_process: 1
            })
        );
        assert_eq!(
            plan(100, 8, Some(3), 1024, 1024).map(|p| p.threads_per_process),
            Ok(3)
        );
        assert!(matches!(
            plan(60_000, 2, Some(2), 20_000, 20_000),
            Err(HostError::NotEnoughFds { .. })
        ));
        assert!(plan(u64::from(u32::MAX), 2, None, 1024, 1024).is_err());
    }
}
