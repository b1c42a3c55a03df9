//! The knobs rookery-tune knows: for each sysctl, which OS it belongs to, whether it is set per
//! network namespace or for the whole host, and how to see its effect.
//!
//! Linux scopes were measured (kernel-tuning.md section 1.1: written in a fresh netns, root value
//! read again); `ip_local_reserved_ports` was checked the same way for this crate. FreeBSD
//! scopes are from loader.conf/sysctl.conf placement and are untested here.
//!
//! Not here: values (those live in the profiles) and the reasoning (the profiles' comments).

use serde::Serialize;

/// The operating system a profile or a knob belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Os {
    Linux,
    FreeBsd,
}

impl Os {
    /// The OS this binary was built for (FreeBSD when built there, Linux otherwise).
    pub fn current() -> Os {
        if cfg!(target_os = "freebsd") {
            Os::FreeBsd
        } else {
            Os::Linux
        }
    }

    /// Directory name under `profiles/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::FreeBsd => "freebsd",
        }
    }
}

/// Where a setting takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// Each network namespace has its own value (writable inside a child netns).
    PerNamespace,
    /// One value for the whole host (absent or read-only in a child netns, or not a net knob).
    HostWide,
    /// A per-process resource limit (RLIMIT_*).
    PerProcess,
    /// Read at boot only (FreeBSD loader.conf tunables that size tables).
    Boot,
    /// Not in the table; `apply` treats it as per-namespace when the netns shows it.
    Unknown,
}

impl Scope {
    /// Short label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Scope::PerNamespace => "per-netns",
            Scope::HostWide => "host-wide",
            Scope::PerProcess => "per-process",
            Scope::Boot => "boot (host-wide)",
            Scope::Unknown => "unknown",
        }
    }
}

/// One known knob.
#[derive(Debug)]
pub struct Knob {
    pub key: &'static str,
    pub os: Os,
    pub scope: Scope,
    /// How to see whether it is in the way (a command or counter).
    pub check: &'static str,
}

const fn k(key: &'static str, os: Os, scope: Scope, check: &'static str) -> Knob {
    Knob {
        key,
        os,
        scope,
        check,
    }
}

use Os::{FreeBsd as F, Linux as L};
use Scope::{Boot as B, HostWide as H, PerNamespace as N};

/// Every knob a shipped profile may use.
pub static KNOBS: &[Knob] = &[
    k(
        "fs.file-max",
        L,
        H,
        "cat /proc/sys/fs/file-nr (allocated, 0, max)",
    ),
    k(
        "fs.nr_open",
        L,
        H,
        "ulimit -Hn; grep 'open files' /proc/PID/limits",
    ),
    k(
        "net.ipv4.ip_local_port_range",
        L,
        N,
        "ss -tan state established | wc -l per source IP; EADDRNOTAVAIL on connect",
    ),
    k(
        "net.ipv4.ip_local_reserved_ports",
        L,
        N,
        "sysctl net.ipv4.ip_local_reserved_ports; rookery bind errors after restart",
    ),
    k(
        "net.core.somaxconn",
        L,
        N,
        "nstat -az TcpExtListenOverflows TcpExtListenDrops; ss -ltn (Send-Q = backlog)",
    ),
    k(
        "net.ipv4.tcp_max_syn_backlog",
        L,
        N,
        "nstat -az TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies",
    ),
    k(
        "net.ipv4.tcp_syncookies",
        L,
        N,
        "nstat -az TcpExtSyncookiesSent",
    ),
    k(
        "net.core.netdev_max_backlog",
        L,
        H,
        "column 2 (drops) of /proc/net/softnet_stat",
    ),
    k(
        "net.ipv4.tcp_mem",
        L,
        H,
        "grep TCP /proc/net/sockstat (mem, pages); nstat -az TcpExtTCPMemoryPressures",
    ),
    k(
        "net.ipv4.tcp_max_orphans",
        L,
        H,
        "grep TCP /proc/net/sockstat (orphan); dmesg 'too many orphaned sockets'",
    ),
    k(
        "net.ipv4.tcp_max_tw_buckets",
        L,
        N,
        "grep TCP /proc/net/sockstat (tw); nstat -az TcpExtTCPTimeWaitOverflow",
    ),
    k(
        "net.ipv4.tcp_fin_timeout",
        L,
        N,
        "ss -tan state fin-wait-2 | wc -l",
    ),
    k(
        "net.ipv4.tcp_keepalive_time",
        L,
        N,
        "ss -tno (timer:keepalive)",
    ),
    k(
        "net.ipv4.tcp_keepalive_intvl",
        L,
        N,
        "ss -tno (timer:keepalive)",
    ),
    k(
        "net.ipv4.tcp_keepalive_probes",
        L,
        N,
        "nstat -az TcpExtTCPKeepAlive",
    ),
    k(
        "net.ipv4.tcp_tw_reuse",
        L,
        N,
        "grep TCP /proc/net/sockstat (tw) on the generator; EADDRNOTAVAIL",
    ),
    k(
        "net.ipv4.tcp_rmem",
        L,
        N,
        "ss -tm (rb); grep TCP /proc/net/sockstat (mem)",
    ),
    k(
        "net.ipv4.tcp_wmem",
        L,
        N,
        "ss -tm (tb); grep TCP /proc/net/sockstat (mem)",
    ),
    k("net.ipv4.tcp_notsent_lowat", L, N, "ss -ti (notsent)"),
    k(
        "net.core.rmem_max",
        L,
        H,
        "sysctl net.core.rmem_max (caps SO_RCVBUF)",
    ),
    k(
        "net.core.wmem_max",
        L,
        H,
        "sysctl net.core.wmem_max (caps SO_SNDBUF)",
    ),
    k("net.core.default_qdisc", L, H, "tc qdisc show"),
    k(
        "net.ipv4.tcp_congestion_control",
        L,
        N,
        "ss -ti (cc name); sysctl net.ipv4.tcp_allowed_congestion_control",
    ),
    k(
        "net.ipv4.tcp_slow_start_after_idle",
        L,
        N,
        "ss -ti (cwnd after idle)",
    ),
    k(
        "net.core.busy_poll",
        L,
        H,
        "needs a NIC queue with a NAPI ID; perf top (napi_busy_loop)",
    ),
    k(
        "net.core.busy_read",
        L,
        H,
        "needs a NIC queue with a NAPI ID; perf top (napi_busy_loop)",
    ),
    k(
        "net.ipv4.tcp_autocorking",
        L,
        N,
        "nstat -az TcpExtTCPAutoCorking",
    ),
    k(
        "net.netfilter.nf_conntrack_max",
        L,
        H,
        "cat /proc/sys/net/netfilter/nf_conntrack_count; dmesg 'table full'",
    ),
    k("kern.maxfiles", F, B, "sysctl kern.openfiles kern.maxfiles"),
    k(
        "kern.maxfilesperproc",
        F,
        B,
        "limits -n; procstat -f PID | wc -l",
    ),
    k(
        "kern.ipc.maxsockets",
        F,
        B,
        "sysctl kern.ipc.numopensockets; vmstat -z | grep socket",
    ),
    k(
        "net.inet.tcp.tcbhashsize",
        F,
        B,
        "sysctl net.inet.tcp.tcbhashsize (boot only)",
    ),
    k(
        "net.inet.tcp.syncache.hashsize",
        F,
        B,
        "netstat -s -p tcp (syncache overflows)",
    ),
    k(
        "net.inet.tcp.syncache.bucketlimit",
        F,
        B,
        "netstat -s -p tcp (bucket overflows)",
    ),
    k(
        "net.inet.tcp.hostcache.hashsize",
        F,
        B,
        "sysctl net.inet.tcp.hostcache.count",
    ),
    k(
        "net.inet.tcp.hostcache.cachelimit",
        F,
        B,
        "sysctl net.inet.tcp.hostcache.count",
    ),
    k(
        "net.inet.tcp.hostcache.bucketlimit",
        F,
        B,
        "sysctl net.inet.tcp.hostcache.count",
    ),
    k(
        "kern.ipc.soacceptqueue",
        F,
        H,
        "netstat -Lan (qlen/incqlen/maxqlen); netstat -s -p tcp (listen queue overflows)",
    ),
    k(
        "net.inet.tcp.fast_finwait2_recycle",
        F,
        H,
        "netstat -an | grep -c FIN_WAIT_2",
    ),
    k(
        "net.inet.tcp.finwait2_timeout",
        F,
        H,
        "netstat -an | grep -c FIN_WAIT_2",
    ),
    k(
        "net.inet.tcp.keepidle",
        F,
        H,
        "netstat -s -p tcp (keepalive probes sent)",
    ),
    k(
        "net.inet.tcp.keepintvl",
        F,
        H,
        "netstat -s -p tcp (keepalive timeouts)",
    ),
    k(
        "net.inet.tcp.keepcnt",
        F,
        H,
        "netstat -s -p tcp (keepalive timeouts)",
    ),
    k(
        "net.inet.ip.portrange.first",
        F,
        H,
        "sockstat -4c | wc -l per source IP; EADDRNOTAVAIL",
    ),
    k(
        "net.inet.ip.portrange.last",
        F,
        H,
        "sockstat -4c | wc -l per source IP; EADDRNOTAVAIL",
    ),
    k("net.inet.tcp.msl", F, H, "netstat -an | grep -c TIME_WAIT"),
    k(
        "net.inet.tcp.sendspace",
        F,
        H,
        "netstat -m (mbuf clusters in use)",
    ),
    k(
        "net.inet.tcp.recvspace",
        F,
        H,
        "netstat -m (mbuf clusters in use)",
    ),
    k("net.inet.tcp.sendbuf_max", F, H, "netstat -m; sockstat"),
    k("net.inet.tcp.recvbuf_max", F, H, "netstat -m; sockstat"),
    k("kern.ipc.maxsockbuf", F, H, "sysctl kern.ipc.maxsockbuf"),
];

/// The table entry for `key` on `os`, if known.
pub fn knob(os: Os, key: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|kn| kn.os == os && kn.key == key)
}

/// Where `key` takes effect on `os` (Unknown when not in the table).
pub fn scope_of(os: Os, key: &str) -> Scope {
    knob(os, key).map_or(Scope::Unknown, |kn| kn.scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_per_os() {
        for (i, a) in KNOBS.iter().enumerate() {
            for b in &KNOBS[i + 1..] {
                assert!(
                    !(a.os == b.os && a.key == b.key),
                    "duplicate knob {}",
                    a.key
                );
            }
        }
    }

    #[test]
    fn measured_scopes_are_recorded() {
        assert_eq!(
            scope_of(Os::Linux, "net.core.somaxconn"),
            Scope::PerNamespace
        );
        assert_eq!(scope_of(Os::Linux, "net.ipv4.tcp_mem"), Scope::HostWide);
        assert_eq!(scope_of(Os::Linux, "net.core.rmem_max"), Scope::HostWide);
        assert_eq!(scope_of(Os::Linux, "no.such.knob"), Scope::Unknown);
        assert_eq!(
            scope_of(Os::FreeBsd, "net.inet.tcp.tcbhashsize"),
            Scope::Boot
        );
    }
}
