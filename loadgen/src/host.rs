//! Host budgets checked before a run starts: source addresses and ports, file descriptors.
//!
//! One source address can hold about as many conns to one server address as the ephemeral
//! port range is wide (`net.ipv4.ip_local_port_range`, 28,232 by default), and connect()
//! slows down well before that (see [`fast_ports`]). Beyond that, conns must come from
//! several source addresses: `--source-ips` (a list of addresses and `A-B` ranges), or,
//! when the server is on IPv4 loopback, addresses picked automatically from 127.0.0.0/8
//! (every one of them is local). Each conn also needs a file descriptor,
//! so the target must fit under RLIMIT_NOFILE.
//!
//! What it does not do: bind anything (the worker passes the chosen source to the driver's
//! connect), or raise limits (rookery_io::raise_nofile_limit does, before the check).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most source addresses a run takes (a guard against `0.0.0.0-255.255.255.255`).
pub const MAX_SOURCE_IPS: usize = 65_536;
/// Share of the ephemeral port range a run plans to use per source address: the rest is
/// headroom for sockets in TIME_WAIT from an earlier run and for other programs.
const PORT_USE_PERCENT: u64 = 90;
/// Descriptors kept for everything that is not a client conn: stdio, rings or epoll fds,
/// eventfds, output files.
const FD_RESERVE: u64 = 64;
const PORT_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Linux's default range, used when the file cannot be read (non-Linux hosts).
const DEFAULT_PORT_RANGE: (u16, u16) = (32_768, 60_999);

/// What stops a run before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    BadSourceSpec(String),
    TooManySourceIps(usize),
    FamilyMismatch {
        source: IpAddr,
        target: SocketAddr,
    },
    NotEnoughPorts {
        clients: u64,
        sources: u64,
        ports_per_source: u64,
        needed: u64,
    },
    NotEnoughFds {
        clients: u64,
        needed: u64,
        soft: u64,
        hard: u64,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::BadSourceSpec(item) => write!(
                f,
                "--source-ips: cannot read {item:?}; expected a comma-separated list of \
                 addresses and ranges, e.g. 10.0.0.2,10.0.0.10-10.0.0.20"
            ),
            HostError::TooManySourceIps(n) => write!(
                f,
                "--source-ips names {n} addresses; at most {MAX_SOURCE_IPS} are supported"
            ),
            HostError::FamilyMismatch { source, target } => write!(
                f,
                "--source-ips: {source} cannot reach {target} (IPv4 and IPv6 mixed)"
            ),
            HostError::NotEnoughPorts {
                clients,
                sources,
                ports_per_source,
                needed,
            } => write!(
                f,
                "{clients} clients need {needed} source addresses ({ports_per_source} usable \
                 ephemeral ports each, from {PORT_RANGE_FILE}) but only {sources} are available: \
                 pass --source-ips with at least {needed} local addresses (or widen \
                 net.ipv4.ip_local_port_range, or lower --clients)"
            ),
            HostError::NotEnoughFds {
                clients,
                needed,
                soft,
                hard,
            } => write!(
                f,
                "{clients} clients need about {needed} file descriptors but RLIMIT_NOFILE is \
                 {soft} (hard limit {hard}): raise the hard limit (ulimit -Hn as root, \
                 limits.conf nofile, systemd LimitNOFILE=, sysctl fs.nr_open), pass a larger \
                 --processes (each worker process has its own limit), or lower --clients"
            ),
        }
    }
}

impl std::error::Error for HostError {}

/// Parses `--source-ips`: comma-separated addresses and inclusive `A-B` ranges.
pub fn parse_source_ips(spec: &str) -> Result<Vec<IpAddr>, HostError> {
    let mut ips = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || HostError::BadSourceSpec(item.to_string());
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_ip(a).ok_or_else(bad)?, parse_ip(b).ok_or_else(bad)?),
            None => {
                let ip = parse_ip(item).ok_or_else(bad)?;
                (ip, ip)
            }
        };
        let (lo, hi) = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(bad()),
        };
        if hi < lo {
            return Err(bad());
        }
        if hi - lo >= (MAX_SOURCE_IPS - ips.len()) as u128 {
            return Err(HostError::TooManySourceIps(
                (hi - lo + 1).min(u128::from(u64::MAX)) as usize,
            ));
        }
        for n in lo..=hi {
            ips.push(match first {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
            });
        }
    }
    if ips.is_empty() {
        return Err(HostError::BadSourceSpec(spec.to_string()));
    }
    Ok(ips)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// Reads the ephemeral port range; the Linux default when it cannot be read.
pub fn port_range() -> (u16, u16) {
    std::fs::read_to_string(PORT_RANGE_FILE)
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_PORT_RANGE)
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (lo <= hi).then_some((lo, hi))
}

/// Ports a run may use per source address, for the given port range.
pub fn usable_ports(range: (u16, u16)) -> u64 {
    range_size(range) * PORT_USE_PERCENT / 100
}

/// Ports per source address that connect() finds quickly. Since Linux 4.6 connect() takes
/// ephemeral ports of one parity first and searches the other half only when that is used
/// up, and that search is slow: measured here, 19,000 conns at 5,000/s from one address had
/// a TCP connect p90 of 1.5 s; from two addresses, 0.06 ms.
pub fn fast_ports(range: (u16, u16)) -> u64 {
    range_size(range) / 2
}

fn range_size(range: (u16, u16)) -> u64 {
    u64::from(range.1.saturating_sub(range.0)) + 1
}

/// Chooses the source addresses for `clients` conns to `target`, given the ephemeral port
/// `range`. An empty list means "let the kernel choose" (one address is enough). On IPv4
/// loopback, addresses are added as soon as one would go beyond [`fast_ports`]; elsewhere
/// only `--source-ips` adds any, and the target must fit in [`usable_ports`] of each.
pub fn plan_sources(
    target: SocketAddr,
    clients: u64,
    explicit: Option<Vec<IpAddr>>,
    range: (u16, u16),
) -> Result<Vec<IpAddr>, HostError> {
    let ports_per_source = usable_ports(range).max(1);
    let needed = clients.div_ceil(ports_per_source).max(1);
    if let Some(ips) = explicit {
        if let Some(&source) = ips.iter().find(|ip| ip.is_ipv4() != target.is_ipv4()) {
            return Err(HostError::FamilyMismatch { source, target });
        }
        let sources = ips.len() as u64;
        if sources < needed {
            return Err(HostError::NotEnoughPorts {
                clients,
                sources,
                ports_per_source,
                needed,
            });
        }
        return Ok(ips);
    }
    let needed_fast = clients.div_ceil(fast_ports(range).max(1)).max(1);
    match target.ip() {
        IpAddr::V4(_) | IpAddr::V6(_) if needed_fast == 1 => Ok(Vec::new()),
        // 127.0.0.0/8 holds 2^24 - 2 usable addresses; the guard keeps the list bounded.
        IpAddr::V4(v4) if v4.is_loopback() && needed_fast <= MAX_SOURCE_IPS as u64 => {
            let base = u32::from(Ipv4Addr::new(127, 0, 0, 1));
            Ok((0..needed_fast as u32)
                .map(|k| IpAddr::V4(Ipv4Addr::from(base + k)))
                .collect())
        }
        _ if needed == 1 => Ok(Vec::new()),
        _ => Err(HostError::NotEnoughPorts {
            clients,
            sources: 1,
            ports_per_source,
            needed,
        }),
    }
}

/// Descriptors one process needs for `clients` conns on `threads` threads.
pub fn fds_needed(clients: u64, threads: usize) -> u64 {
    clients + FD_RESERVE + 4 * threads as u64
}

/// How long a closed conn keeps its port on the closing side (Linux TIME_WAIT: 60 s).
const TIME_WAIT_S: f64 = 60.0;
/// Reconnects per second a storm without `--reconnect-rate` is assumed to reach, for port
/// planning only (several times what one 2-core host reaches against rookery).
const STORM_ASSUMED_RATE: f64 = 20_000.0;
/// Most ports a storm plans for: the loopback source list stays bounded.
const STORM_MAX_PORTS: u64 = 4_000_000;

/// Ports a storm may hold at once: its clients, or every reconnect of the last TIME_WAIT
/// period (we close first, so our side keeps the port), whichever is more.
pub fn storm_ports(clients: u64, reconnect_rate: Option<f64>, duration_ms: u64) -> u64 {
    let rate = reconnect_rate.unwrap_or(STORM_ASSUMED_RATE);
    let window_s = (duration_ms as f64 / 1000.0).min(TIME_WAIT_S);
    let connects = (rate * window_s).min(STORM_MAX_PORTS as f64) as u64;
    clients.max(connects)
}

/// Checks that `clients` conns fit under the (already raised) RLIMIT_NOFILE.
pub fn check_fds(clients: u64, threads: usize, soft: u64, hard: u64) -> Result<(), HostError> {
    let needed = fds_needed(clients, threads);
    if needed > soft {
        return Err(HostError::NotEnoughFds {
            clients,
            needed,
            soft,
            hard,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_lists_and_ranges() {
        // Mixed families parse; plan_sources refuses the ones that cannot reach the target.
        assert_eq!(parse_source_ips("10.0.0.1,::1").unwrap().len(), 2);
        let ips = parse_source_ips("10.0.0.1, 10.0.0.254-10.0.1.1").unwrap();
        assert_eq!(
            ips,
            vec![
                v4("10.0.0.1"),
                v4("10.0.0.254"),
                v4("10.0.0.255"),
                v4("10.0.1.0"),
                v4("10.0.1.1")
            ]
        );
        let v6 = parse_source_ips("fd00::1-fd00::3").unwrap();
        assert_eq!(v6.len(), 3);
        assert!(parse_source_ips("10.0.0.5-10.0.0.1").is_err());
        assert!(parse_source_ips("10.0.0.1-fd00::1").is_err());
        assert!(parse_source_ips("banana").is_err());
        assert!(parse_source_ips(" , ").is_err());
        assert_eq!(
            parse_source_ips("10.0.0.0-10.255.255.255"),
            Err(HostError::TooManySourceIps(1 << 24))
        );
    }

    #[test]
    fn reads_port_ranges() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range(""), None);
        assert_eq!(usable_ports(RANGE), 25_408);
        assert_eq!(fast_ports(RANGE), 14_116);
    }

    const RANGE: (u16, u16) = (32_768, 60_999);

    #[test]
    fn loopback_gets_enough_addresses_automatically() {
        let target: SocketAddr = "127.0.0.1:5222".parse().unwrap();
        assert_eq!(plan_sources(target, 14_000, None, RANGE), Ok(vec![]));
        let ips = plan_sources(target, 19_000, None, RANGE).unwrap();
        assert_eq!(ips, vec![v4("127.0.0.1"), v4("127.0.0.2")]);
        let ips = plan_sources(target, 1_000_000, None, RANGE).unwrap();
        assert_eq!(ips.len(), 71);
        assert_eq!((ips[0], ips[70]), (v4("127.0.0.1"), v4("127.0.0.71")));
    }

    #[test]
    fn refuses_targets_the_ports_cannot_cover() {
        let remote: SocketAddr = "192.0.2.1:5222".parse().unwrap();
        assert_eq!(plan_sources(remote, 20_000, None, RANGE), Ok(vec![]));
        let err = plan_sources(remote, 60_000, None, RANGE).unwrap_err();
        assert_eq!(
            err,
            HostError::NotEnoughPorts {
                clients: 60_000,
                sources: 1,
                ports_per_source: 25_408,
                needed: 3
            }
        );
        assert!(err.to_string().contains("--source-ips"));
        let two = vec![v4("10.0.0.1"), v4("10.0.0.2")];
        assert!(plan_sources(remote, 60_000, Some(two.clone()), RANGE).is_err());
        assert_eq!(
            plan_sources(remote, 50_000, Some(two.clone()), RANGE),
            Ok(two)
        );
        let v6: SocketAddr = "[::1]:5222".parse().unwrap();
        assert!(matches!(
            plan_sources(v6, 10, Some(vec![v4("10.0.0.1")]), RANGE),
            Err(HostError::FamilyMismatch { .. })
        ));
        assert!(
            plan_sources(v6, 60_000, None, RANGE).is_err(),
            "IPv6 loopback is one address"
        );
    }

    #[test]
    fn storms_plan_for_their_reconnects() {
        assert_eq!(storm_ports(5_000, Some(100.0), 20_000), 5_000);
        assert_eq!(storm_ports(5_000, Some(1_000.0), 20_000), 20_000);
        assert_eq!(
            storm_ports(10, Some(1_000.0), 600_000),
            60_000,
            "60 s of TIME_WAIT"
        );
        assert_eq!(storm_ports(5_000, None, 20_000), 400_000);
        assert_eq!(storm_ports(1, Some(1e12), 60_000), STORM_MAX_PORTS);
    }

    #[test]
    fn fd_budget_names_the_fix() {
        assert!(check_fds(19_000, 2, 20_000, 20_000).is_ok());
        let err = check_fds(25_000, 2, 20_000, 20_000).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("RLIMIT_NOFILE") && text.contains("--processes"),
            "{text}"
        );
    }
}
