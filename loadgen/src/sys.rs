//! The only place in rookery-load that calls libc directly (the crate denies `unsafe`
//! everywhere else).
//!
//! - [`monotonic_ns`]: CLOCK_MONOTONIC in nanoseconds. Message bodies carry their intended
//!   send time in this clock, so every process on one host (future worker processes, the
//!   recipient's thread) reads the same timeline; `std::time::Instant` hides the raw value.
//! - [`terminate`]: SIGTERM to a child we started (the demo's server), so it can stop cleanly;
//!   std only offers SIGKILL.
//! - [`die_with_parent`]: a worker process asks the kernel for SIGKILL when its parent dies
//!   (Linux `PR_SET_PDEATHSIG`), so no worker outlives a parent killed with SIGKILL.
//! - [`catch_interrupts`] / [`interrupted`]: the parent of worker processes turns SIGINT and
//!   SIGTERM into a flag, so it can kill its children by pid before it exits.
//! - [`fix_mmap_threshold`]: big blocks (latency histograms, ~377 KB each) always come from
//!   their own mapping, so a fresh one costs RSS only for the pages written and a freed one
//!   gives its pages back (glibc's default raises the threshold after the first free, and
//!   then calloc clears recycled heap memory, touching every page).
//!
//! What it does not do: anything with file descriptors (the io crate owns sockets and the
//! RLIMIT_NOFILE raise).

#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the SIGINT/SIGTERM handler installed by [`catch_interrupts`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes every allocation of at least `bytes` a mapping of its own (glibc `M_MMAP_THRESHOLD`,
/// which also turns off its dynamic raise). Best effort: other C libraries ignore it.
pub fn fix_mmap_threshold(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tunable of the allocator; any value is accepted or
        // refused (return 0), never undefined.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) };
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

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

/// Asks the kernel to SIGKILL this process when the thread that spawned it (the parent's main
/// thread) ends. Linux only; elsewhere the parent's own kill on error and the bounded run
/// length are the guards.
pub fn die_with_parent() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_PDEATHSIG, sig) takes integers only and touches no memory of
        // ours; the unused arguments are passed as 0 as the man page asks.
        let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_interrupt(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// From now on SIGINT and SIGTERM set [`interrupted`] instead of ending the process.
pub fn catch_interrupts() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler is an `extern "C"` function that only does an atomic store,
        // which is async-signal-safe; signal(2) touches no memory of ours.
        let previous = unsafe { libc::signal(signal, handler) };
        if previous == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`]. Relaxed: a flag polled by
/// one thread, ordering nothing else.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
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

    #[test]
    fn death_signal_can_be_requested() {
        // Harmless in the test process: the test harness outlives this thread's process.
        die_with_parent().unwrap();
        assert!(!interrupted());
    }
}
