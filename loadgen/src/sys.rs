//! The only place in rookery-load that calls libc directly (the crate denies `unsafe`
//! everywhere else).
//!
//! - [`monotonic_ns`]: CLOCK_MONOTONIC in nanoseconds. Message bodies carry their intended
//!   send time in this clock, so every process on one host (future worker processes, the
//!   recipient's thread) reads the same timeline; `std::time::Instant` hides the raw value.
//! - [`terminate`]: SIGTERM to a child we started (the demo's server), so it can stop cleanly;
//!   std only offers SIGKILL.
//!
//! What it does not do: anything with file descriptors (the io crate owns sockets and the
//! RLIMIT_NOFILE raise).

#![allow(unsafe_code)]

use std::io;

/// Nanoseconds of CLOCK_MONOTONIC (time since boot, never jumps, shared by all processes).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec on our stack for the duration of the call,
    // and CLOCK_MONOTONIC is always supported on the platforms we build for.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // clock_gettime(CLOCK_MONOTONIC) can only fail with EINVAL/EFAULT, both impossible here.
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sends SIGTERM to the process `pid` (a child this process spawned and has not reaped).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The caller passes
    // the pid of a child it has not yet waited for, so the pid cannot have been recycled.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 2_000_000, "{a} -> {b}");
    }
}
