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
#[derive(Clone, Copy, Debug)]
pub struct Knob {
    pub key: &'static str,
    pub os: Os,
    pub scope: Scope,
    /// How to see whether it is in the way (a command or counter).
    pub check: &'static str,
}

/// The knobs of one OS and scope, each as its key and how to see its effect.
type Group = (Os, Scope, &'static [(&'static str, &'static str)]);

/// Every knob a shipped profile may use, by OS and scope.
static KNOBS: &[Group] = &[
    (
        Os::Linux,
        Scope::HostWide,
        &[
            (
                "fs.file-max",
                "cat /proc/sys/fs/file-nr (allocated, 0, max)",
            ),
            (
                "fs.nr_open",
                "ulimit -Hn; grep 'open files' /proc/PID/limits",
            ),
            (
                "net.core.netdev_max_backlog",
                "column 2 (drops) of /proc/net/softnet_stat",
            ),
            (
                "net.ipv4.tcp_mem",
                "grep TCP /proc/net/sockstat (mem, pages); nstat -az TcpExtTCPMemoryPressures",
            ),
            (
                "net.ipv4.tcp_max_orphans",
                "grep TCP /proc/net/sockstat (orphan); dmesg 'too many orphaned sockets'",
            ),
            (
                "net.core.rmem_max",
                "sysctl net.core.rmem_max (caps SO_RCVBUF)",
            ),
            (
                "net.core.wmem_max",
                "sysctl net.core.wmem_max (caps SO_SNDBUF)",
            ),
            ("net.core.default_qdisc", "tc qdisc show"),
            (
                "net.core.busy_poll",
                "needs a NIC queue with a NAPI ID; perf top (napi_busy_loop)",
            ),
            (
                "net.core.busy_read",
                "needs a NIC queue with a NAPI ID; perf top (napi_busy_loop)",
            ),
            (
                "net.netfilter.nf_conntrack_max",
                "cat /proc/sys/net/netfilter/nf_conntrack_count; dmesg 'table full'",
            ),
        ],
    ),
    (
        Os::Linux,
        Scope::PerNamespace,
        &[
            (
                "net.ipv4.ip_local_port_range",
                "ss -tan state established | wc -l per source IP; EADDRNOTAVAIL on connect",
            ),
            (
                "net.ipv4.ip_local_reserved_ports",
                "sysctl net.ipv4.ip_local_reserved_ports; rookery bind errors after restart",
            ),
            (
                "net.core.somaxconn",
                "nstat -az TcpExtListenOverflows TcpExtListenDrops; ss -ltn (Send-Q = backlog)",
            ),
            (
                "net.ipv4.tcp_max_syn_backlog",
                "nstat -az TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies",
            ),
            ("net.ipv4.tcp_syncookies", "nstat -az TcpExtSyncookiesSent"),
            (
                "net.ipv4.tcp_max_tw_buckets",
                "grep TCP /proc/net/sockstat (tw); nstat -az TcpExtTCPTimeWaitOverflow",
            ),
            (
                "net.ipv4.tcp_fin_timeout",
                "ss -tan state fin-wait-2 | wc -l",
            ),
            ("net.ipv4.tcp_keepalive_time", "ss -tno (timer:keepalive)"),
            ("net.ipv4.tcp_keepalive_intvl", "ss -tno (timer:keepalive)"),
            (
                "net.ipv4.tcp_keepalive_probes",
                "nstat -az TcpExtTCPKeepAlive",
            ),
            (
                "net.ipv4.tcp_tw_reuse",
                "grep TCP /proc/net/sockstat (tw) on the generator; EADDRNOTAVAIL",
            ),
            (
                "net.ipv4.tcp_rmem",
                "ss -tm (rb); grep TCP /proc/net/sockstat (mem)",
            ),
            (
                "net.ipv4.tcp_wmem",
                "ss -tm (tb); grep TCP /proc/net/sockstat (mem)",
            ),
            ("net.ipv4.tcp_notsent_lowat", "ss -ti (notsent)"),
            (
                "net.ipv4.tcp_congestion_control",
                "ss -ti (cc name); sysctl net.ipv4.tcp_allowed_congestion_control",
            ),
            (
                "net.ipv4.tcp_slow_start_after_idle",
                "ss -ti (cwnd after idle)",
            ),
            ("net.ipv4.tcp_autocorking", "nstat -az TcpExtTCPAutoCorking"),
        ],
    ),
    (
        Os::FreeBsd,
        Scope::Boot,
        &[
            ("kern.maxfiles", "sysctl kern.openfiles kern.maxfiles"),
            ("kern.maxfilesperproc", "limits -n; procstat -f PID | wc -l"),
            (
                "kern.ipc.maxsockets",
                "sysctl kern.ipc.numopensockets; vmstat -z | grep socket",
            ),
            (
                "net.inet.tcp.tcbhashsize",
                "sysctl net.inet.tcp.tcbhashsize (boot only)",
            ),
            (
                "net.inet.tcp.syncache.hashsize",
                "netstat -s -p tcp (syncache overflows)",
            ),
            (
                "net.inet.tcp.syncache.bucketlimit",
                "netstat -s -p tcp (bucket overflows)",
            ),
            (
                "net.inet.tcp.hostcache.hashsize",
                "sysctl net.inet.tcp.hostcache.count",
            ),
            (
                "net.inet.tcp.hostcache.cachelimit",
                "sysctl net.inet.tcp.hostcache.count",
            ),
            (
                "net.inet.tcp.hostcache.bucketlimit",
                "sysctl net.inet.tcp.hostcache.count",
            ),
        ],
    ),
    (
        Os::FreeBsd,
        Scope::HostWide,
        &[
            (
                "kern.ipc.soacceptqueue",
                "netstat -Lan (qlen/incqlen/maxqlen); netstat -s -p tcp (listen queue overflows)",
            ),
            (
                "net.inet.tcp.fast_finwait2_recycle",
                "netstat -an | grep -c FIN_WAIT_2",
            ),
            (
                "net.inet.tcp.finwait2_timeout",
                "netstat -an | grep -c FIN_WAIT_2",
            ),
            (
                "net.inet.tcp.keepidle",
                "netstat -s -p tcp (keepalive probes sent)",
            ),
            (
                "net.inet.tcp.keepintvl",
                "netstat -s -p tcp (keepalive timeouts)",
            ),
            (
                "net.inet.tcp.keepcnt",
                "netstat -s -p tcp (keepalive timeouts)",
            ),
            (
                "net.inet.ip.portrange.first",
                "sockstat -4c | wc -l per source IP; EADDRNOTAVAIL",
            ),
            (
                "net.inet.ip.portrange.last",
                "sockstat -4c | wc -l per source IP; EADDRNOTAVAIL",
            ),
            ("net.inet.tcp.msl", "netstat -an | grep -c TIME_WAIT"),
            (
                "net.inet.tcp.sendspace",
                "netstat -m (mbuf clusters in use)",
            ),
            (
                "net.inet.tcp.recvspace",
                "netstat -m (mbuf clusters in use)",
            ),
            ("net.inet.tcp.sendbuf_max", "netstat -m; sockstat"),
            ("net.inet.tcp.recvbuf_max", "netstat -m; sockstat"),
            ("kern.ipc.maxsockbuf", "sysctl kern.ipc.maxsockbuf"),
        ],
    ),
];

/// Every knob in the table.
pub fn all() -> impl Iterator<Item = Knob> {
    KNOBS.iter().flat_map(|&(os, scope, knobs)| {
        knobs.iter().map(move |&(key, check)| Knob {
            key,
            os,
            scope,
            check,
        })
    })
}

/// The table entry for `key` on `os`, if known.
pub fn knob(os: Os, key: &str) -> Option<Knob> {
    all().find(|kn| kn.os == os && kn.key == key)
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
        let knobs: Vec<Knob> = all().collect();
        for (i, a) in knobs.iter().enumerate() {
            for b in &knobs[i + 1..] {
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
