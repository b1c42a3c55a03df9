//! Network namespaces: create a throwaway one (`ip netns add`, loopback up) that is deleted when
//! its guard drops, and run a closure on a thread that has entered a namespace (setns), so that
//! its `/proc/sys/net` reads and writes and its sockets belong to that namespace.
//!
//! Not here: anything host-wide. A thread that entered a namespace ends with the closure, so no
//! other code of this process ever runs in the wrong namespace.
//!
//! Invariant: names are restricted to `[A-Za-z0-9_.-]`, at most 64 bytes, so they are safe as
//! a path component under /run/netns and as an `ip` argument.

use std::path::PathBuf;
use std::process::Command;

use crate::TuneError;

/// Longest namespace name accepted.
const MAX_NAME_BYTES: usize = 64;

/// A namespace created by this process; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Checks a namespace name (see the module invariant).
pub fn validate_name(name: &str) -> Result<(), TuneError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(TuneError::Netns {
            name: name.to_string(),
            reason: format!("invalid name: use [A-Za-z0-9_.-], at most {MAX_NAME_BYTES} bytes"),
        })
    }
}

/// Where iproute2 keeps the namespace handle.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Whether `ip netns` knows a namespace of that name.
pub fn exists(name: &str) -> bool {
    validate_name(name).is_ok() && netns_path(name).exists()
}

impl Netns {
    /// `ip netns add NAME` and `ip -n NAME link set lo up`. Fails if the name exists, so a
    /// namespace someone else made is never adopted (and then deleted).
    pub fn create(name: &str) -> Result<Netns, TuneError> {
        validate_name(name)?;
        if exists(name) {
            return Err(TuneError::Netns {
                name: name.to_string(),
                reason: "already exists; pick another name or `ip netns del` it".to_string(),
            });
        }
        run_command("ip", &["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        // On failure `ns` drops here and deletes the namespace again.
        run_command("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_command("ip", &["netns", "del", &self.name]) {
            eprintln!(
                "rookery-tune: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Runs `f` on a new thread that first enters namespace `name`; returns what `f` returns.
#[cfg(target_os = "linux")]
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T, TuneError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    validate_name(name)?;
    in_netns_at(name, &netns_path(name), f)
}

/// Runs `f` on a new thread that first enters the network namespace at `path` (a netns handle
/// such as /run/netns/NAME or /proc/1/ns/net); `name` labels errors.
#[cfg(target_os = "linux")]
pub fn in_netns_at<T, F>(name: &str, path: &std::path::Path, f: F) -> Result<T, TuneError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let handle = std::fs::File::open(path).map_err(|e| TuneError::Netns {
        name: name.to_string(),
        reason: format!("cannot open {}: {e}", path.display()),
    })?;
    std::thread::scope(|s| {
        let worker = s.spawn(move || crate::sys::enter_netns(&handle).map(|()| f()));
        match worker.join() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(TuneError::Netns {
                name: name.to_string(),
                reason: format!("setns failed: {e}"),
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Network namespaces are Linux-only here.
#[cfg(not(target_os = "linux"))]
pub fn in_netns<T, F>(name: &str, _f: F) -> Result<T, TuneError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    Err(TuneError::Unsupported(format!(
        "network namespace {name}: Linux only"
    )))
}

/// Runs a command to completion; an error carries its stderr.
pub(crate) fn run_command(program: &str, args: &[&str]) -> Result<(), TuneError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| TuneError::Command {
            command: shown.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(TuneError::Command {
        command: shown,
        reason: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("rkt-c1m-lean-1234").is_ok());
        for bad in ["", "../x", "a b", ".hidden", "a/b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespace_is_created_entered_and_deleted() {
        let name = format!("rkt-unit-{}", std::process::id());
        {
            let ns = Netns::create(&name).unwrap();
            assert!(exists(ns.name()));
            // Inside, only lo exists and it is up: the namespace is really another one.
            let ifaces = in_netns(ns.name(), || {
                std::fs::read_to_string("/proc/thread-self/net/dev").unwrap()
            })
            .unwrap();
            assert_eq!(ifaces.lines().count(), 3, "{ifaces}");
            assert!(ifaces.contains("lo:"));
            assert!(
                Netns::create(&name).is_err(),
                "an existing name must not be adopted"
            );
        }
        assert!(!exists(&name), "dropped guard deletes the namespace");
    }
}
