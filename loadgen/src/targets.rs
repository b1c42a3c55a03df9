//! Where each simulated client connects: `--server`, or with `--cluster FILE` its home node's
//! client address, and the addresses servers redirect clients to (RFC 6120 see-other-host).
//!
//! With a cluster file the home of client `n` is the node owning the vshard of its bare JID
//! (`PREFIX<n+1>@DOMAIN`, lowercased as the server normalises it), computed with
//! rookery-cluster's [`Placement`], the same table every node builds from the same file.
//!
//! Addresses are interned: a slot keeps a one-byte index into [`Targets::addrs`], not a
//! `SocketAddr` (slots must stay small). Index 0 is `--server`; a cluster's nodes follow in
//! file order; redirect targets not seen before are appended, up to [`MAX_TARGETS`].
//!
//! What it does not do: resolve names in a redirect other than IP literals and `localhost`
//! (a worker thread must not block on DNS), or check that a redirect stays in the cluster.
//!
//! A home is computed when asked (one FNV hash of the JID, about 100 ns), not stored per
//! client: every worker thread of every process would otherwise hold one byte per client of
//! the whole run (1 MB per thread at a million clients, 100 MB over a 52-process run).
//!
//! Invariants: `addrs` is never empty and never longer than [`MAX_TARGETS`]; `homes`, when
//! present, maps every vshard to a valid index.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use anyhow::Context;
use rookery_cluster::{ClusterFile, Placement};

/// Most distinct addresses a worker connects to (a slot's target is one byte).
pub const MAX_TARGETS: usize = 255;
/// Port of a see-other-host value without one (RFC 6120: the default c2s port).
pub const DEFAULT_PORT: u16 = 5222;
/// Most redirects one login follows; one more is a redirect loop.
pub const MAX_REDIRECTS: u8 = 3;

/// The addresses a worker's clients use.
#[derive(Debug)]
pub struct Targets {
    addrs: Vec<SocketAddr>,
    /// With `--cluster`: how to find each client's home.
    homes: Option<Homes>,
}

/// The cluster's placement, and the target index of each vshard's owner.
#[derive(Debug)]
struct Homes {
    placement: Placement,
    vshard_target: Vec<u8>,
    /// `--user-prefix`, lowercased as the server normalises it.
    prefix: String,
    domain: String,
    clients: u32,
}

impl Homes {
    fn of(&self, index: u32) -> Option<u8> {
        if index >= self.clients {
            return None;
        }
        use std::io::Write;
        let mut buf = [0u8; 320];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let number = u64::from(index) + 1;
        let vshard = match write!(cursor, "{}{number}@{}", self.prefix, self.domain) {
            Ok(()) => {
                let used = cursor.position() as usize;
                let jid = std::str::from_utf8(&buf[..used]).ok()?;
                self.placement.vshard(jid)
            }
            // A prefix and domain longer than the stack buffer: rare, so allocate.
            Err(_) => self
                .placement
                .vshard(&format!("{}{number}@{}", self.prefix, self.domain)),
        };
        self.vshard_target.get(vshard as usize).copied()
    }
}

impl Targets {
    /// `server` alone, or (with `cluster`, the file's text) every client at its home node.
    pub fn new(
        server: SocketAddr,
        cluster: Option<&str>,
        user_prefix: &str,
        domain: &str,
        clients: u32,
    ) -> anyhow::Result<Targets> {
        let mut targets = Targets {
            addrs: vec![server],
            homes: None,
        };
        let Some(text) = cluster else {
            return Ok(targets);
        };
        let file = ClusterFile::parse(text).map_err(|e| anyhow::anyhow!("--cluster: {e:?}"))?;
        let nodes = node_addrs(&file)?;
        if nodes.len() + 1 > MAX_TARGETS {
            anyhow::bail!("--cluster: at most {} nodes", MAX_TARGETS - 1);
        }
        let first = targets.addrs.len();
        targets.addrs.extend(nodes.iter().map(|(_, a)| *a));
        let placement = Placement::of(&file);
        let vshard_target = placement
            .owners()
            .iter()
            .map(|(node, _)| {
                let at = nodes.iter().position(|(id, _)| *id == node.0).unwrap_or(0);
                (first + at) as u8
            })
            .collect();
        targets.homes = Some(Homes {
            placement,
            vshard_target,
            prefix: user_prefix.to_ascii_lowercase(),
            domain: domain.to_string(),
            clients,
        });
        Ok(targets)
    }

    /// Where client `index` connects first.
    pub fn first(&self, index: u32) -> u8 {
        self.home(index).unwrap_or(0)
    }

    /// The home target of client `index` when a cluster file was given.
    pub fn home(&self, index: u32) -> Option<u8> {
        self.homes.as_ref()?.of(index)
    }

    pub fn addr(&self, target: u8) -> SocketAddr {
        self.addrs
            .get(usize::from(target))
            .copied()
            .unwrap_or(self.addrs[0])
    }

    /// The index of `addr`, interned when new; `None` when the table is full.
    pub fn intern(&mut self, addr: SocketAddr) -> Option<u8> {
        if let Some(at) = self.addrs.iter().position(|a| *a == addr) {
            return Some(at as u8);
        }
        if self.addrs.len() >= MAX_TARGETS {
            return None;
        }
        self.addrs.push(addr);
        Some((self.addrs.len() - 1) as u8)
    }
}

/// Every node's (id, c2s address) of a cluster file, the addresses parsed.
pub fn node_addrs(file: &ClusterFile) -> anyhow::Result<Vec<(u16, SocketAddr)>> {
    file.nodes
        .iter()
        .map(|n| {
            let addr = n
                .c2s
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .with_context(|| {
                    format!("--cluster: node {} c2s {:?}: not host:port", n.id.0, n.c2s)
                })?;
            Ok((n.id.0, addr))
        })
        .collect()
}

/// The address a see-other-host value names: `ip`, `ip:port`, `[v6]:port` or `localhost`
/// with an optional port. `None` for anything else (names are not resolved here).
pub fn redirect_addr(value: &str) -> Option<SocketAddr> {
    let (host, port) = rookery_client::split_host_port(value)?;
    let port = port.unwrap_or(DEFAULT_PORT);
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) if host.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(_) => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "nats = \"nats://127.0.0.1:4222\"\nvshards = 64\n\
        [[node]]\nid = 1\nc2s = \"127.0.0.1:6001\"\nshards = 2\n\
        [[node]]\nid = 2\nc2s = \"127.0.0.1:6002\"\n\
        [[node]]\nid = 3\nc2s = \"127.0.0.1:6003\"\n";

    #[test]
    fn clients_go_to_their_home_node() {
        let server: SocketAddr = "127.0.0.1:5222".parse().unwrap();
        let t = Targets::new(server, Some(FILE), "User", "example.test", 300).unwrap();
        let file = ClusterFile::parse(FILE).unwrap();
        let placement = Placement::of(&file);
        let mut seen = [0; 3];
        for index in 0..300u32 {
            let (node, _) = placement.home(&format!("user{}@example.test", index + 1));
            let addr = t.addr(t.first(index));
            assert_eq!(addr.port(), 6000 + node.0, "client {index}");
            assert_eq!(t.home(index), Some(t.first(index)));
            seen[usize::from(node.0 - 1)] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 30),
            "every node homes clients: {seen:?}"
        );
        let plain = Targets::new(server, None, "user", "example.test", 3).unwrap();
        assert_eq!((plain.first(2), plain.home(2)), (0, None));
        assert_eq!(plain.addr(plain.first(2)), server);
    }

    #[test]
    fn redirect_values_parse_and_intern() {
        assert_eq!(
            redirect_addr("127.0.0.1:6002"),
            Some("127.0.0.1:6002".parse().unwrap())
        );
        assert_eq!(redirect_addr("[::1]:7"), Some("[::1]:7".parse().unwrap()));
        assert_eq!(
            redirect_addr("localhost"),
            Some("127.0.0.1:5222".parse().unwrap())
        );
        assert_eq!(redirect_addr("b.example:5222"), None);
        assert_eq!(redirect_addr("127.0.0.1:x"), None);
        let mut t = Targets::new("127.0.0.1:1".parse().unwrap(), None, "u", "d", 1).unwrap();
        let a = t.intern("127.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(t.intern("127.0.0.1:2".parse().unwrap()), Some(a));
        assert_eq!(t.intern("127.0.0.1:1".parse().unwrap()), Some(0));
        for port in 3..300 {
            let _ = t.intern(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        assert_eq!(t.addrs.len(), MAX_TARGETS);
        assert_eq!(t.intern("127.0.0.1:999".parse().unwrap()), None);
    }

    #[test]
    fn a_bad_cluster_file_is_refused() {
        let server = "127.0.0.1:1".parse().unwrap();
        assert!(Targets::new(server, Some("nats = 1"), "u", "d", 1).is_err());
    }
}
