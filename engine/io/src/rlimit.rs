//! Raising RLIMIT_NOFILE at start: every conn is an fd, so the soft limit (often 1024) caps a
//! shard long before memory does. The engine raises the soft limit to the hard one and logs how
//! many conns that allows.
//!
//! What it does not do: raise the hard limit (that needs privileges and is a tuning-profile
//! decision: `ulimit -Hn`, systemd `LimitNOFILE=`, `fs.nr_open`).

use std::io;

use crate::sys;

/// RLIMIT_NOFILE before and after [`raise_nofile_limit`]. `u64::MAX` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Sets the soft RLIMIT_NOFILE to the hard limit. When the hard limit is "unlimited" and the OS
/// refuses that as a soft value (macOS), the soft limit is left as it was.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let (soft_before, hard) = sys::nofile_limit()?;
    if soft_before >= hard {
        return Ok(NofileLimit {
            soft_before,
            soft: soft_before,
            hard,
        });
    }
    match sys::set_nofile_soft(hard, hard) {
        Ok(()) => {}
        Err(err) if hard == u64::MAX && err.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(NofileLimit {
                soft_before,
                soft: soft_before,
                hard,
            });
        }
        Err(err) => return Err(err),
    }
    let (soft, hard) = sys::nofile_limit()?;
    Ok(NofileLimit {
        soft_before,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_soft_to_hard() {
        let lim = raise_nofile_limit().unwrap();
        assert!(lim.soft >= lim.soft_before);
        assert!(lim.soft <= lim.hard);
        // Raising twice is a no-op.
        let again = raise_nofile_limit().unwrap();
        assert_eq!(again.soft_before, again.soft);
        assert_eq!(again.soft, lim.soft);
    }
}
