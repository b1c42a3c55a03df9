//! What the check needs to know about a host, read once into `HostFacts`: from a `/proc` tree
//! (the live Linux host, or a fixture directory in tests) or, on FreeBSD, through sysctlbyname.
//!
//! Not here: any judgement (see `rules`). A value that cannot be read is `None` and its error
//! is kept in `unreadable`, so the report can say what it could not check instead of guessing.

use std::path::Path;

use crate::check::NofileLimits;
use crate::knobs::Os;
use crate::procfs::{read_number, read_numbers, read_sysctl};

/// Conntrack state, when the host has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conntrack {
    /// nf_conntrack_max (None if only the module list says it is there).
    pub max: Option<u64>,
    /// Flows tracked now; 0 means no stateful rule registered a hook.
    pub count: u64,
}

/// Everything `rules::evaluate` looks at.
#[derive(Clone, Debug)]
pub struct HostFacts {
    pub os: Os,
    pub nofile: NofileLimits,
    /// fs.nr_open (FreeBSD: kern.maxfilesperproc): the highest per-process fd limit.
    pub nr_open: Option<u64>,
    /// fs.file-max (FreeBSD: kern.maxfiles).
    pub file_max: Option<u64>,
    /// Files open now (fs.file-nr first field; FreeBSD kern.openfiles).
    pub files_in_use: Option<u64>,
    /// FreeBSD kern.ipc.maxsockets and kern.ipc.numopensockets.
    pub max_sockets: Option<(u64, u64)>,
    /// Ephemeral port range, inclusive.
    pub port_range: Option<(u64, u64)>,
    /// Ports of that range in net.ipv4.ip_local_reserved_ports (0 when unreadable or absent).
    pub reserved_in_range: u64,
    pub somaxconn: Option<u64>,
    /// tcp_max_syn_backlog (FreeBSD: net.inet.tcp.syncache.cachelimit).
    pub syn_backlog: Option<u64>,
    pub syncookies: Option<u64>,
    /// tcp_mem min/pressure/max in pages (Linux only).
    pub tcp_mem_pages: Option<[u64; 3]>,
    /// net.ipv4.tcp_max_orphans (Linux only; host-wide).
    pub max_orphans: Option<u64>,
    /// net.ipv4.tcp_max_tw_buckets (Linux only; per netns).
    pub max_tw_buckets: Option<u64>,
    pub conntrack: Option<Conntrack>,
    /// MemAvailable (FreeBSD: free + inactive pages).
    pub mem_available_bytes: Option<u64>,
    /// (what, error) for every value that could not be read.
    pub unreadable: Vec<(String, String)>,
}

impl HostFacts {
    fn empty(os: Os, nofile: NofileLimits) -> HostFacts {
        HostFacts {
            os,
            nofile,
            nr_open: None,
            file_max: None,
            files_in_use: None,
            max_sockets: None,
            port_range: None,
            reserved_in_range: 0,
            somaxconn: None,
            syn_backlog: None,
            syncookies: None,
            tcp_mem_pages: None,
            max_orphans: None,
            max_tw_buckets: None,
            conntrack: None,
            mem_available_bytes: None,
            unreadable: Vec::new(),
        }
    }

    /// Keeps `Ok` values and records errors.
    fn keep<T>(&mut self, what: &str, r: std::io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.unreadable.push((what.to_string(), e.to_string()));
                None
            }
        }
    }
}

/// Reads a Linux `/proc` tree rooted at `root` (`/` for the live host; net.* values are those
/// of the calling thread's network namespace).
pub fn linux_from_tree(root: &Path, nofile: NofileLimits) -> HostFacts {
    let mut f = HostFacts::empty(Os::Linux, nofile);
    f.nr_open = f.keep("fs.nr_open", read_number(root, "fs.nr_open"));
    f.file_max = f.keep("fs.file-max", read_number(root, "fs.file-max"));
    f.files_in_use = f.keep("fs.file-nr", read_number(root, "fs.file-nr"));
    let range = read_numbers(root, "net.ipv4.ip_local_port_range").and_then(pair);
    f.port_range = f.keep("net.ipv4.ip_local_port_range", range);
    if let (Some((lo, hi)), Ok(list)) = (
        f.port_range,
        read_sysctl(root, "net.ipv4.ip_local_reserved_ports"),
    ) {
        f.reserved_in_range = reserved_within(&list, lo, hi);
    }
    f.somaxconn = f.keep(
        "net.core.somaxconn",
        read_number(root, "net.core.somaxconn"),
    );
    let syn = read_number(root, "net.ipv4.tcp_max_syn_backlog");
    f.syn_backlog = f.keep("net.ipv4.tcp_max_syn_backlog", syn);
    f.syncookies = f.keep(
        "net.ipv4.tcp_syncookies",
        read_number(root, "net.ipv4.tcp_syncookies"),
    );
    let mem = host_wide(root, || read_numbers(root, "net.ipv4.tcp_mem")).and_then(triple);
    f.tcp_mem_pages = f.keep("net.ipv4.tcp_mem", mem);
    let orphans = host_wide(root, || read_number(root, "net.ipv4.tcp_max_orphans"));
    f.max_orphans = f.keep("net.ipv4.tcp_max_orphans", orphans);
    let tw = read_number(root, "net.ipv4.tcp_max_tw_buckets");
    f.max_tw_buckets = f.keep("net.ipv4.tcp_max_tw_buckets", tw);
    f.conntrack = linux_conntrack(root);
    let avail = meminfo_kib(root, "MemAvailable").map(|kib| kib * 1024);
    f.mem_available_bytes = f.keep("/proc/meminfo MemAvailable", avail);
    f
}

/// Reads a host-wide net sysctl. A child network namespace has no /proc/sys entry for these
/// (tcp_mem, tcp_max_orphans), so on the live host (`root` = `/`) a missing one is read again
/// on a thread that entered an outer namespace: that of the nearest ancestor process in
/// another netns (the shell that ran `ip netns exec`), else pid 1's. Needs root. A fixture
/// tree is read as is.
fn host_wide<T: Send>(
    root: &Path,
    read: impl Fn() -> std::io::Result<T> + Send + Sync,
) -> std::io::Result<T> {
    match read() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && root == Path::new("/") => {
            in_outer_netns(&read).map_err(|why| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("host-wide and absent in this netns; {why}"),
                )
            })
        }
        other => other,
    }
}

/// Ancestors looked at for an outer namespace (process trees are shallow).
#[cfg(target_os = "linux")]
const MAX_ANCESTORS: usize = 64;

#[cfg(target_os = "linux")]
fn in_outer_netns<T: Send>(
    read: &(impl Fn() -> std::io::Result<T> + Send + Sync),
) -> Result<T, String> {
    let ours = std::fs::read_link("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
    let mut candidates = Vec::new();
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..MAX_ANCESTORS {
        if pid <= 1 {
            break;
        }
        candidates.push(pid);
        pid = match parent_of(pid) {
            Some(p) => p,
            None => break,
        };
    }
    candidates.push(1);
    let mut last = "no process in another network namespace".to_string();
    for pid in candidates {
        let path = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
        match std::fs::read_link(&path) {
            Ok(ns) if ns == ours => continue,
            Ok(_) => {}
            Err(e) => {
                last = format!("{}: {e}", path.display());
                continue;
            }
        }
        match crate::netns::in_netns_at("outer", &path, read) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => last = format!("read in {}: {e}", path.display()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("no outer namespace readable ({last})"))
}

/// The parent pid from /proc/PID/stat (the field after the parenthesised command).
#[cfg(target_os = "linux")]
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn in_outer_netns<T: Send>(
    _read: &(impl Fn() -> std::io::Result<T> + Send + Sync),
) -> Result<T, String> {
    Err("network namespaces are Linux only".to_string())
}

/// Conntrack is there when its sysctls exist (built in or loaded) or /proc/modules lists it.
fn linux_conntrack(root: &Path) -> Option<Conntrack> {
    let max = read_number(root, "net.netfilter.nf_conntrack_max").ok();
    let count = read_number(root, "net.netfilter.nf_conntrack_count").unwrap_or(0);
    let listed = std::fs::read_to_string(root.join("proc/modules"))
        .map(|m| m.lines().any(|l| l.starts_with("nf_conntrack ")))
        .unwrap_or(false);
    (max.is_some() || listed).then_some(Conntrack { max, count })
}

/// One `/proc/meminfo` field in KiB.
fn meminfo_kib(root: &Path, field: &str) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo"))?;
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no {field} line"))
        })
}

/// Ports of `lo..=hi` in a reserved-ports list such as `4222,5222-5733` (the kernel prints
/// ranges; unparsable items are ignored: they cannot reserve anything the kernel accepted).
fn reserved_within(list: &str, lo: u64, hi: u64) -> u64 {
    list.split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            let (a, b) = (a.max(lo), b.min(hi));
            (a <= b).then(|| b - a + 1)
        })
        .sum()
}

fn pair(v: Vec<u64>) -> std::io::Result<(u64, u64)> {
    match v.as_slice() {
        [a, b] => Ok((*a, *b)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "expected 2 numbers",
        )),
    }
}

fn triple(v: Vec<u64>) -> std::io::Result<[u64; 3]> {
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "expected 3 numbers",
        )),
    }
}

/// Reads the live FreeBSD host through sysctlbyname. Untested here (no FreeBSD host).
#[cfg(target_os = "freebsd")]
pub fn freebsd_live(nofile: NofileLimits) -> HostFacts {
    use crate::sys::sysctl_number;
    let num = |name: &str| -> std::io::Result<u64> {
        let v = sysctl_number(name)?;
        u64::try_from(v).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{name} = {v} < 0"))
        })
    };
    let mut f = HostFacts::empty(Os::FreeBsd, nofile);
    f.nr_open = f.keep("kern.maxfilesperproc", num("kern.maxfilesperproc"));
    f.file_max = f.keep("kern.maxfiles", num("kern.maxfiles"));
    f.files_in_use = f.keep("kern.openfiles", num("kern.openfiles"));
    let socks = num("kern.ipc.maxsockets").and_then(|m| Ok((m, num("kern.ipc.numopensockets")?)));
    f.max_sockets = f.keep("kern.ipc.maxsockets", socks);
    let range = num("net.inet.ip.portrange.first")
        .and_then(|a| Ok((a, num("net.inet.ip.portrange.last")?)));
    f.port_range = f.keep("net.inet.ip.portrange.first/last", range);
    f.somaxconn = f.keep("kern.ipc.soacceptqueue", num("kern.ipc.soacceptqueue"));
    let syn = num("net.inet.tcp.syncache.cachelimit");
    f.syn_backlog = f.keep("net.inet.tcp.syncache.cachelimit", syn);
    f.syncookies = f.keep("net.inet.tcp.syncookies", num("net.inet.tcp.syncookies"));
    let avail = num("hw.pagesize").and_then(|page| {
        Ok(page * (num("vm.stats.vm.v_free_count")? + num("vm.stats.vm.v_inactive_count")?))
    });
    f.mem_available_bytes = f.keep("vm.stats.vm free + inactive pages", avail);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_counted_inside_the_range_only() {
        assert_eq!(
            reserved_within("4222,5222-5733,9090,9100", 1024, 65535),
            515
        );
        assert_eq!(reserved_within("80,5222-5733", 5500, 60999), 234);
        assert_eq!(reserved_within("", 1024, 65535), 0);
    }
}
