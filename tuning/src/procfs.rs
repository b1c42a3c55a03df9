//! Reading and writing Linux sysctls through `/proc/sys`, under a root directory so tests can
//! point it at a fixture tree, and comparing a value read back with the value written.
//!
//! Not here: which namespace the calling thread is in (see `netns`): `/proc/sys/net` shows the
//! namespace of the thread that opens it, so callers enter the netns first.
//!
//! Invariant: values are returned whitespace-normalised (the kernel separates with tabs).

use std::io;
use std::path::{Path, PathBuf};

use crate::profile::normalize;

/// `/proc/sys/...` path of a dotted sysctl key under `root` (`/` for the live host).
pub fn sysctl_path(root: &Path, key: &str) -> PathBuf {
    let mut path = root.join("proc/sys");
    for part in key.split('.') {
        path.push(part);
    }
    path
}

/// Reads a sysctl, whitespace-normalised.
pub fn read_sysctl(root: &Path, key: &str) -> io::Result<String> {
    Ok(normalize(&std::fs::read_to_string(sysctl_path(root, key))?))
}

/// Reads a sysctl holding whitespace-separated integers.
pub fn read_numbers(root: &Path, key: &str) -> io::Result<Vec<u64>> {
    let text = read_sysctl(root, key)?;
    text.split(' ')
        .map(|w| {
            w.parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{key}: {w:?} is not a number"),
                )
            })
        })
        .collect()
}

/// Reads a single-integer sysctl.
pub fn read_number(root: &Path, key: &str) -> io::Result<u64> {
    read_numbers(root, key)?
        .first()
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{key}: empty value")))
}

/// Writes a sysctl of the calling thread's namespace (live `/proc/sys` only).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(sysctl_path(Path::new("/"), key), format!("{value}\n"))
}

/// Whether the kernel holds what was written: equal after whitespace normalisation, equal as
/// numbers, or (port lists such as `ip_local_reserved_ports`, which the kernel prints as
/// ranges) the same set of ports.
pub fn values_match(wanted: &str, got: &str) -> bool {
    let (wanted, got) = (normalize(wanted), normalize(got));
    if wanted == got {
        return true;
    }
    match (port_set(&wanted), port_set(&got)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `"5222,5223,9090"` or `"5222-5223,9090"` as a sorted port list; None if not such a list.
fn port_set(value: &str) -> Option<Vec<u32>> {
    if !value.contains([',', '-']) {
        return None;
    }
    let mut ports = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b > 65_535 {
                    return None;
                }
                ports.extend(a..=b);
            }
            None => ports.push(item.parse().ok()?),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Some(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_follows_dots() {
        let p = sysctl_path(Path::new("/x"), "net.ipv4.tcp_mem");
        assert_eq!(p, PathBuf::from("/x/proc/sys/net/ipv4/tcp_mem"));
    }

    #[test]
    fn matching_is_whitespace_and_range_aware() {
        assert!(values_match("4096 16384 1048576", "4096\t16384\t1048576"));
        assert!(values_match("5222,5223,9090,9100", "5222-5223,9090,9100"));
        assert!(!values_match("65535", "4096"));
        assert!(!values_match("bbr", "cubic"));
        assert!(!values_match("5222,5223", "5222"));
    }

    #[test]
    fn reads_the_live_host() {
        let max = read_number(Path::new("/"), "fs.file-max").unwrap();
        assert!(max > 0);
        let mem = read_numbers(Path::new("/"), "net.ipv4.tcp_mem").unwrap();
        assert_eq!(mem.len(), 3);
    }
}
