//! The check's judgement: from `HostFacts` and a target, one `Finding` per limit, with the
//! connection ceiling it implies and the exact fix.
//!
//! Not here: reading the host (see `facts`) or ordering and printing (see `check`).
//!
//! Every constant names its source: /work/shared/notes/kernel-tuning.md ("notes") or DESIGN.md.

use crate::check::facts::HostFacts;
use crate::check::{closes, fds, CheckInput, Finding, Status};
use crate::knobs::{Os, Scope};
use crate::util::{human_bytes, thousands};

/// Kernel bytes per socket on Linux: half of 9,860 B, the slab growth per connection pair
/// (both ends on one host) measured by `rookery-tune compare` at 19,000 held connections,
/// io_uring on both sides (tuning/README.md "Measured here";
/// results/20261128-205310-tune-hold-c19000: 9,808-9,860 B over three profiles; TCP sock,
/// sock_inode, filp, dentry, io_kiocb, bind buckets, kmalloc). The notes' planning figure was
/// 4,650 B (4.5 KB idle socket + 150 B poll entry).
pub const LINUX_KERNEL_BYTES_PER_SOCKET: u64 = 4_930;
/// Idle RSS of one rookery process before any session (7.2-9.0 MB measured in
/// results/20261207-202542-tls-idle, rounded up): counted once per server process.
pub const SERVER_PROCESS_BYTES: u64 = 9 * 1024 * 1024;
/// Kernel bytes per socket on FreeBSD: WhatsApp 2012, 18 GB wired / 2.28M connections
/// ~ 8 KB all-in (notes §2, derived): an upper bound, not measured here.
pub const FREEBSD_KERNEL_BYTES_PER_SOCKET: u64 = 8_192;
/// tcp_mem pages charged to a socket holding any queued data, even 64 bytes (notes §0.3).
pub const TCP_MEM_PAGES_PER_BUSY_CONN: u64 = 1;
/// Seconds of arrivals an accept queue must absorb at the connect rate.
pub const BACKLOG_WINDOW_S: u64 = 1;
/// Practical ceiling for listen backlogs (u16 range, what the profiles use).
pub const MAX_BACKLOG: u64 = 65_535;
/// Ports in the widest usable ephemeral range, 1024-65535.
pub const WIDE_PORT_RANGE: u64 = 64_512;

/// All findings for `input` on a host described by `f`, unordered.
pub fn evaluate(f: &HostFacts, input: &CheckInput) -> Vec<Finding> {
    let mut out = Vec::new();
    fds::nofile(f, input, &mut out);
    fds::nr_open(f, input, &mut out);
    fds::file_max(f, input, &mut out);
    fds::max_sockets(f, input, &mut out);
    ports(f, input, &mut out);
    somaxconn(f, input, &mut out);
    syn_backlog(f, input, &mut out);
    tcp_mem(f, input, &mut out);
    conntrack(f, input, &mut out);
    closes::orphans(f, input, &mut out);
    closes::time_wait(f, input, &mut out);
    memory(f, input, &mut out);
    for (what, err) in &f.unreadable {
        out.push(Finding {
            knob: what.clone(),
            current: format!("unreadable: {err}"),
            needed: "readable".to_string(),
            ceiling: None,
            fix: "run as root on the host (or in the namespace) that will hold the connections"
                .to_string(),
            scope: Scope::Unknown,
            status: Status::Warn,
            note: "not checked, so it may still cap the target".to_string(),
        });
    }
    out
}

fn status_for(ceiling: u64, target: u64) -> Status {
    if ceiling < target {
        Status::Caps
    } else {
        Status::Ok
    }
}

/// A finding whose ceiling is a connection count.
fn cap(knob: String, current: String, needed: String, ceiling: u64, target: u64) -> Finding {
    Finding {
        knob,
        current,
        needed,
        ceiling: Some(ceiling),
        fix: String::new(),
        scope: Scope::HostWide,
        status: status_for(ceiling, target),
        note: String::new(),
    }
}

fn ports(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    if !input.role.runs_loadgen() {
        return;
    }
    let Some((lo, hi)) = f.port_range else { return };
    let n = input.connections;
    let per_addr = (hi.saturating_sub(lo) + 1).saturating_sub(f.reserved_in_range);
    let addrs = u64::from(input.source_addresses.max(1));
    let addrs_needed = n
        .div_ceil(WIDE_PORT_RANGE.saturating_sub(f.reserved_in_range).max(1))
        .max(1);
    let mut x = cap(
        "ephemeral ports x source addresses".into(),
        format!(
            "{lo}-{hi} less {} reserved = {} ports x {addrs} address(es)",
            f.reserved_in_range,
            thousands(per_addr)
        ),
        thousands(n),
        per_addr.saturating_mul(addrs),
        n,
    );
    x.scope = if f.os == Os::Linux {
        Scope::PerNamespace
    } else {
        Scope::HostWide
    };
    let widen = match f.os {
        Os::Linux => "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"",
        Os::FreeBsd => "sysctl net.inet.ip.portrange.first=1024",
    };
    // 127.0.0.1-127.0.0.254 is the easy loopback range; beyond it, any /8 addresses do.
    let example = if addrs_needed <= 254 {
        format!("127.0.0.1-127.0.0.{addrs_needed}")
    } else {
        format!("{addrs_needed} addresses from 127.0.0.0/8")
    };
    x.fix = format!(
        "{widen} and connect from {addrs_needed} source address(es) \
         (rookery-load --source-ips {example} on loopback)"
    );
    x.note = "one local port per (source IP, destination IP, destination port): distinct \
              destinations (cluster nodes) could share ports, but the kernel's search slows as \
              the range fills, so the check counts on ports x addresses alone"
        .to_string();
    out.push(x);
}

/// Connects per second one server process's listener takes: the rate split over the
/// processes (clients dial their home node).
fn rate_per_listener(input: &CheckInput) -> u64 {
    input
        .connect_rate_per_s
        .div_ceil(input.server_processes.max(1))
}

/// Accept-queue depth that absorbs `BACKLOG_WINDOW_S` of one listener's arrivals.
fn backlog_needed(input: &CheckInput) -> u64 {
    rate_per_listener(input)
        .saturating_mul(BACKLOG_WINDOW_S)
        .clamp(128, MAX_BACKLOG)
}

fn somaxconn(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let (true, Some(cur)) = (input.role.runs_server(), f.somaxconn) else {
        return;
    };
    let needed = backlog_needed(input);
    let (name, fix, scope) = match f.os {
        Os::Linux => (
            "net.core.somaxconn",
            format!("sysctl -w net.core.somaxconn={needed}"),
            Scope::PerNamespace,
        ),
        Os::FreeBsd => (
            "kern.ipc.soacceptqueue",
            format!("sysctl kern.ipc.soacceptqueue={needed}"),
            Scope::HostWide,
        ),
    };
    out.push(Finding {
        knob: name.to_string(),
        current: thousands(cur),
        needed: thousands(needed),
        ceiling: None,
        fix,
        scope,
        status: if cur < needed {
            Status::Warn
        } else {
            Status::Ok
        },
        note: format!(
            "accept queue for {BACKLOG_WINDOW_S} s of arrivals at {}/s per listener ({}/s \
             over {} server process(es)); overflow means ListenOverflows and 1 s/3 s/7 s SYN \
             retransmits; the app's listen() backlog caps it too (rookery --listen-backlog)",
            thousands(rate_per_listener(input)),
            thousands(input.connect_rate_per_s),
            input.server_processes.max(1)
        ),
    });
}

fn syn_backlog(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let (true, Some(cur)) = (input.role.runs_server(), f.syn_backlog) else {
        return;
    };
    let needed = backlog_needed(input);
    let cookies = f.syncookies.unwrap_or(1) != 0;
    let (name, fix, scope) = match f.os {
        Os::Linux => (
            "net.ipv4.tcp_max_syn_backlog",
            format!("sysctl -w net.ipv4.tcp_max_syn_backlog={needed}"),
            Scope::PerNamespace,
        ),
        Os::FreeBsd => (
            "net.inet.tcp.syncache.cachelimit",
            "net.inet.tcp.syncache.hashsize=\"65536\" and bucketlimit=\"100\" in /boot/loader.conf"
                .to_string(),
            Scope::Boot,
        ),
    };
    let (status, note) = if cookies {
        (
            Status::Ok,
            "syncookies on: a full SYN queue answers with cookies instead of dropping",
        )
    } else if cur < needed {
        (
            Status::Warn,
            "syncookies off: SYNs past this are dropped and retried after 1 s, 3 s, 7 s",
        )
    } else {
        (
            Status::Ok,
            "syncookies off, but the queue covers the connect rate",
        )
    };
    out.push(Finding {
        knob: name.to_string(),
        current: format!(
            "{} (syncookies {})",
            thousands(cur),
            if cookies { "on" } else { "off" }
        ),
        needed: thousands(needed),
        ceiling: None,
        fix,
        scope,
        status,
        note: note.to_string(),
    });
}

fn tcp_mem(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some([min, pressure, max]) = f.tcp_mem_pages else {
        return;
    };
    let n = input.connections;
    let want_pressure = n.saturating_mul(TCP_MEM_PAGES_PER_BUSY_CONN).max(pressure);
    let want_max = (want_pressure.saturating_mul(4) / 3).max(max);
    let want_min = (want_pressure / 2).max(min);
    let mut x = cap(
        "net.ipv4.tcp_mem".into(),
        format!("{min} {pressure} {max} pages"),
        format!(
            "max >= {} pages",
            thousands(n.saturating_mul(TCP_MEM_PAGES_PER_BUSY_CONN))
        ),
        max / TCP_MEM_PAGES_PER_BUSY_CONN,
        n,
    );
    x.fix = format!("sysctl -w net.ipv4.tcp_mem=\"{want_min} {want_pressure} {want_max}\"");
    x.note = format!(
        "a socket with any queued data is charged >= 1 page (measured: 64 B -> 4 KiB), so a \
         message to every connection needs {} of tcp_mem; past `max` TCP drops",
        human_bytes(n.saturating_mul(4096))
    );
    if x.status == Status::Ok && pressure < n {
        x.status = Status::Warn;
        x.note.push_str(&format!(
            "; past `pressure` ({}) TCP shrinks buffers",
            thousands(pressure)
        ));
    }
    out.push(x);
}

fn conntrack(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(ct) = f.conntrack else { return };
    let n = input.connections;
    let needed = n.saturating_mul(6).div_ceil(5);
    let current = ct
        .max
        .map_or("present (max unreadable)".to_string(), thousands);
    let mut x = Finding {
        knob: "net.netfilter.nf_conntrack_max".to_string(),
        current: format!("{current}, {} tracked now", thousands(ct.count)),
        needed: thousands(needed),
        ceiling: None,
        fix: format!(
            "keep stateful rules off the message path (or `notrack` in the raw table); if \
             conntrack must stay: sysctl -w net.netfilter.nf_conntrack_max={needed}"
        ),
        scope: Scope::HostWide,
        status: Status::Ok,
        note: "256 B per tracked flow; a full table drops new connections".to_string(),
    };
    if ct.count == 0 {
        x.note = "present but tracking nothing (no stateful rule registered a hook): no cap now; \
                  a firewall, NAT or Docker rule would make it one"
            .to_string();
    } else if let Some(max) = ct.max {
        let ceiling = max.saturating_sub(ct.count);
        x.ceiling = Some(ceiling);
        x.status = status_for(ceiling, n);
    }
    out.push(x);
}

fn memory(f: &HostFacts, input: &CheckInput, out: &mut Vec<Finding>) {
    let Some(avail) = f.mem_available_bytes else {
        return;
    };
    let n = input.connections;
    let per_socket = match f.os {
        Os::Linux => LINUX_KERNEL_BYTES_PER_SOCKET,
        Os::FreeBsd => FREEBSD_KERNEL_BYTES_PER_SOCKET,
    };
    let sockets = input.role.sockets_per_conn();
    let kernel = per_socket * sockets;
    let per_conn = kernel + input.per_session_bytes;
    let processes = if input.role.runs_server() {
        input.server_processes.max(1)
    } else {
        0
    };
    let fixed = processes.saturating_mul(SERVER_PROCESS_BYTES);
    let needed = n.saturating_mul(per_conn).saturating_add(fixed);
    let mut x = cap(
        "memory (MemAvailable)".into(),
        human_bytes(avail),
        human_bytes(needed),
        avail.saturating_sub(fixed) / per_conn.max(1),
        n,
    );
    x.fix = format!(
        "{} more RAM, or fewer connections per host, or fewer user-space bytes per session",
        human_bytes(needed.saturating_sub(avail))
    );
    let pair = if sockets == 2 {
        "both ends on this host: 2 sockets"
    } else {
        "1 socket; a loopback test pays it twice (use --role both)"
    };
    x.note = format!(
        "{kernel} B kernel per connection ({per_socket} B per socket, {pair}) + {} B user \
         space per connection",
        input.per_session_bytes
    );
    if processes > 0 {
        x.note.push_str(&format!(
            " + {} idle RSS for each of {processes} server process(es)",
            human_bytes(SERVER_PROCESS_BYTES)
        ));
    }
    out.push(x);
}
