//! Backend selection: `--backend auto|uring|poll`.
//!
//! `Auto` on Linux builds a real (small) ring, checks with `io_uring::Probe` that every opcode
//! the driver submits is supported, registers a small provided-buffer ring, and checks the
//! kernel is >= 6.0 (multishot recv). Any failure falls back to `Poll`, with a reason naming
//! the cause and the fix; an explicit `Uring` that fails is an error with the same text.
//!
//! What it does not do: log (the caller logs `Selected::reason`), or keep the probe ring.

use std::fmt;
use std::str::FromStr;

use crate::Limits;

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Uring,
    Poll,
}

impl FromStr for BackendChoice {
    type Err = ProbeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "poll" | "mio" => Ok(BackendChoice::Poll),
            _ => Err(ProbeError::UnknownChoice(s.to_owned())),
        }
    }
}

/// The backend that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Uring,
    Poll,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Uring => "uring",
            BackendKind::Poll => "poll",
        })
    }
}

/// The outcome of [`select_backend`]: which backend, and why (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub kind: BackendKind,
    pub reason: String,
}

/// Why a backend choice cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// `--backend` was neither `auto`, `uring` nor `poll`.
    UnknownChoice(String),
    /// `uring` was asked for explicitly and cannot run here; the text names cause and fix.
    UringUnavailable(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::UnknownChoice(s) => {
                write!(f, "unknown backend {s:?}: expected auto, uring or poll")
            }
            ProbeError::UringUnavailable(why) => write!(f, "io_uring backend unavailable: {why}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Picks the backend for `choice`, probing io_uring with these limits when needed.
pub fn select_backend(choice: BackendChoice, limits: &Limits) -> Result<Selected, ProbeError> {
    if choice == BackendChoice::Poll {
        let reason = "poll backend requested (--backend poll)".to_owned();
        return Ok(Selected {
            kind: BackendKind::Poll,
            reason,
        });
    }
    match probe_uring(limits) {
        Ok(detail) => Ok(Selected {
            kind: BackendKind::Uring,
            reason: detail,
        }),
        Err(why) if choice == BackendChoice::Auto => Ok(Selected {
            kind: BackendKind::Poll,
            reason: format!("io_uring unusable: {why}"),
        }),
        Err(why) => Err(ProbeError::UringUnavailable(why)),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_uring(_limits: &Limits) -> Result<String, String> {
    Err("io_uring is Linux-only; using the poll backend (kqueue/epoll via mio)".to_owned())
}

#[cfg(target_os = "linux")]
fn probe_uring(limits: &Limits) -> Result<String, String> {
    let release = crate::sys::kernel_release().map_err(|e| format!("uname failed: {e}"))?;
    match parse_kernel_version(&release) {
        Some(v) if v >= (6, 0) => {}
        Some(_) => {
            return Err(format!(
                "kernel {release} is older than 6.0 (needed for multishot recv); \
                 upgrade the kernel or run with --backend poll"
            ))
        }
        None => return Err(format!("cannot parse kernel release {release:?}")),
    }
    crate::uring::probe_support(limits).map_err(|f| explain(&f))?;
    Ok(format!(
        "io_uring available (kernel {release}, all opcodes and buffer rings supported)"
    ))
}

/// "6.8.0-45-generic" -> (6, 8). Tested everywhere; only the io_uring probe calls it.
#[cfg(any(target_os = "linux", test))]
pub(crate) fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(target_os = "linux")]
fn explain(failure: &crate::uring::ProbeFailure) -> String {
    use crate::uring::ProbeFailure;
    match failure {
        ProbeFailure::Setup(err) => explain_setup(err),
        ProbeFailure::Opcode(name) => format!(
            "the kernel's io_uring lacks opcode {name} (needs Linux 6.0+); \
             upgrade the kernel or run with --backend poll"
        ),
        ProbeFailure::BufRing(err) => format!(
            "registering a provided-buffer ring failed ({err}); it needs Linux 5.19+ and \
             enough locked memory ({}); raise the limit or run with --backend poll",
            memlock_text()
        ),
        ProbeFailure::Other(err) => format!("io_uring probe failed: {err}"),
    }
}

/// Names the likely cause and fix of an `io_uring_setup` failure.
#[cfg(target_os = "linux")]
pub(crate) fn explain_setup(err: &std::io::Error) -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "absent".to_owned());
    match err.raw_os_error() {
        Some(libc::EPERM) if sysctl != "0" && sysctl != "absent" => format!(
            "io_uring_setup: EPERM because sysctl kernel.io_uring_disabled={sysctl}; \
             set it to 0 (or to 1 and add this user to kernel.io_uring_group), \
             or run with --backend poll"
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring_setup: {err}: blocked by a seccomp profile or security module \
             (container runtimes often block io_uring); allow io_uring_setup, io_uring_enter \
             and io_uring_register, or run with --backend poll"
        ),
        Some(libc::ENOSYS) => format!(
            "io_uring_setup: {err}: kernel built without CONFIG_IO_URING, or a seccomp filter \
             answers ENOSYS; run with --backend poll"
        ),
        Some(libc::ENOMEM) => format!(
            "io_uring_setup: {err}: not enough locked memory ({}); raise `ulimit -l` \
             (systemd: LimitMEMLOCK=), lower ring_entries, or run with --backend poll",
            memlock_text()
        ),
        _ => format!("io_uring_setup: {err}; run with --backend poll"),
    }
}

#[cfg(target_os = "linux")]
fn memlock_text() -> String {
    match crate::sys::memlock_limit() {
        Ok((soft, _)) if soft == u64::MAX => "RLIMIT_MEMLOCK unlimited".to_owned(),
        Ok((soft, _)) => format!("RLIMIT_MEMLOCK {} KiB", soft / 1024),
        Err(_) => "RLIMIT_MEMLOCK unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("auto".parse::<BackendChoice>(), Ok(BackendChoice::Auto));
        assert_eq!(" URING ".parse::<BackendChoice>(), Ok(BackendChoice::Uring));
        assert_eq!("poll".parse::<BackendChoice>(), Ok(BackendChoice::Poll));
        let err = "epoll2".parse::<BackendChoice>().unwrap_err();
        assert!(err.to_string().contains("auto, uring or poll"));
    }

    #[test]
    fn displays_kinds() {
        assert_eq!(BackendKind::Uring.to_string(), "uring");
        assert_eq!(BackendKind::Poll.to_string(), "poll");
    }

    #[test]
    fn parses_kernel_versions() {
        assert_eq!(parse_kernel_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(
            parse_kernel_version("5.15.167.4-microsoft-standard-WSL2"),
            Some((5, 15))
        );
        assert_eq!(parse_kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_kernel_version("6"), None);
        assert_eq!(parse_kernel_version("linux"), None);
        assert!((5, 19) < (6, 0) && (6, 0) <= (6, 1) && (10, 0) > (6, 18));
    }

    #[test]
    fn poll_is_always_selectable() {
        let s = select_backend(BackendChoice::Poll, &Limits::default()).unwrap();
        assert_eq!(s.kind, BackendKind::Poll);
    }

    #[test]
    fn auto_always_selects_something_with_a_reason() {
        let s = select_backend(BackendChoice::Auto, &Limits::default()).unwrap();
        assert!(!s.reason.is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn setup_errors_name_a_fix() {
        for errno in [libc::EPERM, libc::ENOSYS, libc::ENOMEM, libc::EINVAL] {
            let text = explain_setup(&std::io::Error::from_raw_os_error(errno));
            assert!(text.contains("--backend poll"), "{text}");
        }
    }
}
