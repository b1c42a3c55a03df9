//! The libc calls rookery-tune needs, each behind a safe wrapper: getrlimit(RLIMIT_NOFILE),
//! setns(CLONE_NEWNET) (Linux), kill, and sysctlbyname (FreeBSD). This is the only module with
//! `unsafe` code.
//!
//! Not here: deciding what to do with the results, or which process to signal (callers only
//! pass pids of children they started themselves).

use std::io;

/// RLIMIT_NOFILE of this process as (soft, hard); `u64::MAX` for RLIM_INFINITY.
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit struct that outlives the call; RLIMIT_NOFILE is
    // a valid resource number on every unix libc supports.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((rlim_to_u64(rl.rlim_cur), rlim_to_u64(rl.rlim_max)))
}

// rlim_t is u64 on Linux and i64 on FreeBSD, so the cast is a no-op on one of them.
#[allow(clippy::unnecessary_cast)]
fn rlim_to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY || v < 0 as libc::rlim_t {
        u64::MAX
    } else {
        v as u64
    }
}

/// Moves the calling *thread* into the network namespace open as `ns`.
/// Callers run this on a dedicated thread that ends afterwards, so no other code runs in the
/// wrong namespace.
#[cfg(target_os = "linux")]
pub fn enter_netns(ns: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is owned by `ns`, which is borrowed for the whole call, so it is open;
    // CLONE_NEWNET makes the kernel check that it refers to a network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Signals to send a child.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `sig` to `pid`, which must be a child this process started and has not reaped yet
/// (so the pid cannot have been reused by an unrelated process).
pub fn signal(pid: u32, sig: Signal) -> io::Result<()> {
    let sig = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pid out of range",
        ));
    };
    // SAFETY: kill has no memory-safety preconditions; the pid is positive (from
    // std::process::Child::id), so it never addresses a process group.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads a numeric sysctl by name (FreeBSD): ints, longs and their unsigned forms.
#[cfg(target_os = "freebsd")]
pub fn sysctl_number(name: &str) -> io::Result<i64> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in sysctl name"))?;
    let mut buf = [0u8; 8];
    let mut len: libc::size_t = buf.len();
    // SAFETY: `cname` is NUL-terminated and outlives the call; `buf` is writable for `len`
    // bytes and `len` tells the kernel so; newp is null with newlen 0 (read only).
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    match len {
        4 => Ok(i64::from(i32::from_ne_bytes([
            buf[0], buf[1], buf[2], buf[3],
        ]))),
        8 => Ok(i64::from_ne_bytes(buf)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sysctl {name}: unexpected size {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limits_are_ordered() {
        let (soft, hard) = nofile_limits().unwrap();
        assert!(soft <= hard);
        assert!(soft > 0);
    }

    #[test]
    fn signal_kills_our_own_child() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        signal(child.id(), Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
