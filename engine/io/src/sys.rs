//! The few raw libc calls of this crate, walled off here so every `unsafe` libc use sits in one
//! small file a reviewer can read in one sitting.
//!
//! What it does: RLIMIT_NOFILE get/set, page size, and on Linux the `uname` release, an
//! eventfd and the `IP_BIND_ADDRESS_NO_PORT` socket option. Socket calls that `socket2`
//! already wraps safely (nodelay, nonblocking, peer address, bind, connect) are *not* here:
//! use `socket2`.
//!
//! Invariant: every function returns `io::Error::last_os_error()` on a failed call and never
//! leaves an fd open on an error path (fds are wrapped in `OwnedFd` right after creation).

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn limit(resource: Resource) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((rlim_to_u64(lim.rlim_cur), rlim_to_u64(lim.rlim_max)))
}

/// Soft and hard RLIMIT_NOFILE, as u64 (`RLIM_INFINITY` maps to `u64::MAX`).
pub(crate) fn nofile_limit() -> io::Result<(u64, u64)> {
    limit(libc::RLIMIT_NOFILE)
}

/// Soft and hard RLIMIT_MEMLOCK in bytes (io_uring rings count against it on older kernels).
#[cfg(target_os = "linux")]
pub(crate) fn memlock_limit() -> io::Result<(u64, u64)> {
    limit(libc::RLIMIT_MEMLOCK)
}

/// Sets the soft RLIMIT_NOFILE, keeping the hard one.
pub(crate) fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: u64_to_rlim(soft),
        rlim_max: u64_to_rlim(hard),
    };
    // SAFETY: `lim` is a valid rlimit read by the call; no pointer is kept.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // rlim_t differs per OS
fn rlim_to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // rlim_t differs per OS
fn u64_to_rlim(v: u64) -> libc::rlim_t {
    if v == u64::MAX {
        return libc::RLIM_INFINITY;
    }
    libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY)
}

/// The kernel release string (`uname -r`), e.g. "6.8.0-45-generic".
#[cfg(target_os = "linux")] // only the io_uring probe needs it
pub(crate) fn kernel_release() -> io::Result<String> {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname for the duration of the call.
    let rc = unsafe { libc::uname(&mut uts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The memory page size (buffer rings must be page aligned).
#[cfg(target_os = "linux")]
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// Linux `IP_BIND_ADDRESS_NO_PORT` (linux/in.h): bind picks the port only at connect time, so
/// many outgoing conns can share one source address without exhausting ephemeral ports early.
#[cfg(target_os = "linux")]
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// Sets `IP_BIND_ADDRESS_NO_PORT` on an IPv4 or IPv6 TCP socket (the option lives at IPPROTO_IP
/// for both families).
#[cfg(target_os = "linux")]
pub(crate) fn set_bind_address_no_port(fd: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int read during the call; the length matches its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A blocking, close-on-exec eventfd. Blocking on purpose: io_uring completes a READ on an
/// O_NONBLOCK file with -EAGAIN instead of waiting, while a blocking one is polled internally.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

#[cfg(target_os = "linux")]
impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is valid and owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn raw(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// Adds 1 to the counter. Never blocks in practice: the counter would have to reach
    /// 2^64 - 2 first, and every completed read resets it to 0.
    pub(crate) fn add_one(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64; the fd is alive while `self` is.
        let rc = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if rc != 8 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limit_reads_sane_values() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft > 0 && soft <= hard);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_release_is_not_empty() {
        let release = kernel_release().unwrap();
        assert!(
            release.chars().next().unwrap().is_ascii_digit(),
            "{release}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn eventfd_counts() {
        let fd = EventFd::new().unwrap();
        fd.add_one().unwrap();
        fd.add_one().unwrap();
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64.
        let rc = unsafe { libc::read(fd.raw(), (&mut v as *mut u64).cast(), 8) };
        assert_eq!(rc, 8);
        assert_eq!(v, 2);
    }
}
