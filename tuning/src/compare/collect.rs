//! What `compare` measures, as plain parsers over /proc text and Prometheus text: slab caches
//! (bytes per socket-related cache), /proc/net/netstat and snmp counters, VmRSS, meminfo, and
//! rookery's /metrics (fetched over loopback by the caller's thread, in the run's netns).
//!
//! Not here: deciding when to sample (see `run`). The slab caches are host-wide: other
//! processes on the host add noise, which the report states.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Slab caches a TCP connection allocates from (kernel-tuning.md section 4), plus every
/// `kmalloc-*` cache; summed as active_objs x objsize.
pub const SOCKET_CACHES: &[&str] = &[
    "TCP",
    "TCPv6",
    "sock_inode_cache",
    "dentry",
    "filp",
    "eventpoll_epi",
    "eventpoll_pwq",
    "ep_head",
    "request_sock_TCP",
    "tw_sock_TCP",
    "tcp_bind_bucket",
    "tcp_bind2_bucket",
    "skbuff_head_cache",
    "skbuff_small_head",
    "skbuff_fclone_cache",
    "io_kiocb",
    "lsm_file_cache",
    "lsm_inode_cache",
];

/// active_objs x objsize per cache, from /proc/slabinfo text.
pub fn parse_slabinfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(active), Some(_num), Some(size)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(active), Ok(size)) = (active.parse::<u64>(), size.parse::<u64>()) {
            out.insert(name.to_string(), active * size);
        }
    }
    out
}

/// Whether a cache counts towards the per-connection kernel bytes.
pub fn is_socket_cache(name: &str) -> bool {
    SOCKET_CACHES.contains(&name) || name.starts_with("kmalloc-")
}

/// Per-cache growth (after - before) of the socket caches, signed.
pub fn slab_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (name, &bytes) in after {
        if !is_socket_cache(name) {
            continue;
        }
        let was = before.get(name).copied().unwrap_or(0);
        let d = bytes as i64 - was as i64;
        if d != 0 {
            out.insert(name.clone(), d);
        }
    }
    out
}

/// `/proc/net/netstat` or `/proc/net/snmp` as `Section.Name -> value` (header/value line pairs).
pub fn parse_counters(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((section, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(format!("{section}.{n}"), v);
            }
        }
    }
    out
}

/// One `Key: N kB` field of /proc/meminfo or /proc/PID/status, in bytes.
pub fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    })
}

/// VmRSS of a process in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS",
    )
}

/// Prometheus text summed per metric name over all label sets (one value per shard here).
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

/// GET /metrics from `addr` with a short timeout (HTTP/1.0, body until close).
pub fn fetch_metrics(
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<BTreeMap<String, f64>> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.take(4 << 20).read_to_string(&mut body)?;
    let Some((head, text)) = body.split_once("\r\n\r\n") else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no HTTP header end",
        ));
    };
    if !head.starts_with("HTTP/1.") || !head.contains(" 200") {
        let first = head.lines().next().unwrap_or("");
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("metrics: {first}"),
        ));
    }
    Ok(parse_metrics(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slabinfo_is_summed_per_cache() {
        let text = "slabinfo - version: 2.1\n# name <active_objs> ...\n\
                    TCP 52 65 2368 13 8 : tunables 0 0 0 : slabdata 5 5 0\n\
                    kmalloc-256 1187 1216 256 16 1 : tunables 0 0 0 : slabdata 76 76 0\n\
                    ext4_inode_cache 10 10 1000 1 1 : tunables 0 0 0 : slabdata 1 1 0\n";
        let before = parse_slabinfo(text);
        assert_eq!(before["TCP"], 52 * 2368);
        let after_text = text
            .replace("TCP 52", "TCP 152")
            .replace("ext4_inode_cache 10", "ext4_inode_cache 99");
        let d = slab_delta(&before, &parse_slabinfo(&after_text));
        assert_eq!(d.get("TCP"), Some(&(100 * 2368)));
        assert!(!d.contains_key("ext4_inode_cache"), "not a socket cache");
        assert!(!d.contains_key("kmalloc-256"), "unchanged");
    }

    #[test]
    fn counters_pair_headers_with_values() {
        let text = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 3 17\n\
                    IpExt: InOctets\nIpExt: 99\n";
        let c = parse_counters(text);
        assert_eq!(c["TcpExt.ListenOverflows"], 17);
        assert_eq!(c["TcpExt.SyncookiesSent"], 3);
        assert_eq!(c["IpExt.InOctets"], 99);
    }

    #[test]
    fn metrics_sum_over_shards() {
        let text = "# HELP rookery_sessions Bound sessions\n# TYPE rookery_sessions gauge\n\
                    rookery_sessions{shard=\"0\"} 7\nrookery_sessions{shard=\"1\"} 5\nplain 2.5\n";
        let m = parse_metrics(text);
        assert_eq!(m["rookery_sessions"], 12.0);
        assert_eq!(m["plain"], 2.5);
    }

    #[test]
    fn kib_fields_are_bytes() {
        assert_eq!(kib_field("VmRSS:\t  2048 kB\n", "VmRSS"), Some(2 << 20));
        assert_eq!(kib_field("MemAvailable: 10 kB\n", "MemFree"), None);
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
