//! Listening sockets: one per shard on the same address, with SO_REUSEPORT so the kernel
//! spreads incoming conns across shards (no shared accept queue, no thundering herd).

use std::net::{SocketAddr, TcpListener};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

/// Opens `count` listeners on `addr`, each asking for an accept queue of `backlog` (the kernel
/// caps it at net.core.somaxconn, so the host's tuning decides). With port 0 the first picks a
/// port and the rest share it.
pub fn reuseport_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let listener = bind_one(addr, backlog).with_context(|| {
            format!("cannot listen on {addr} (port in use? another rookery? try --listen with another port)")
        })?;
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_listeners_share_one_port() {
        let listeners = reuseport_listeners("127.0.0.1:0".parse().unwrap(), 3, 128).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert!(listeners
            .iter()
            .all(|l| l.local_addr().unwrap().port() == port));
    }
}
