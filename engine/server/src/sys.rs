//! The few libc calls the server binary needs: pinning a thread to a core and waiting for
//! termination signals. Everything else OS-specific lives in rookery-io.
//!
//! Signals: the main thread blocks SIGINT and SIGTERM *before* spawning any thread (threads
//! inherit the mask), then one thread waits for them with `sigwait`. No async-signal-safety
//! puzzles, no handler running on a random shard's stack.

use std::io;

/// Pins the calling thread to one CPU. Linux only; elsewhere it reports that it did nothing.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "core index beyond CPU_SETSIZE",
        ));
    }
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` < CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 means the calling thread; `set` is a valid cpu_set_t of the size we pass.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_core: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "thread pinning is implemented for Linux only",
    ))
}

/// The CPUs this process may run on, in order (Linux: sched_getaffinity; elsewhere 0..n).
#[cfg(target_os = "linux")]
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: all-zero is a valid empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the buffer we pass.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return fallback_cores();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `core` < CPU_SETSIZE, so CPU_ISSET reads inside `set`.
        .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
        .collect()
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cores() -> Vec<usize> {
    fallback_cores()
}

fn fallback_cores() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread spawned after).
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// A signal the server acts on.
pub enum Signal {
    /// SIGINT or SIGTERM (its name): stop.
    Stop(&'static str),
    /// SIGHUP: re-read the TLS certificate.
    Hangup,
}

/// Waits until SIGINT, SIGTERM or SIGHUP arrives (they must be blocked first).
pub fn wait_for_signal() -> io::Result<Signal> {
    let set = termination_set();
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is initialised and `signal` is a valid out-pointer for the call's duration.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(match signal {
        libc::SIGHUP => Signal::Hangup,
        libc::SIGINT => Signal::Stop("SIGINT"),
        _ => Signal::Stop("SIGTERM"),
    })
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset fully initialises the set before sigaddset reads it; both only touch
    // the local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cores_is_not_empty() {
        assert!(!allowed_cores().is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_to_an_allowed_core_works() {
        let core = allowed_cores()[0];
        std::thread::spawn(move || pin_current_thread(core).unwrap())
            .join()
            .unwrap();
    }
}
