//! Sockets entering and leaving the io_uring driver: listeners (multishot accept, backoff,
//! stop), accepted and adopted conns, and outgoing connects.
//!
//! Same rules as `state`: every SQE goes through `Core::push` with a `SAFETY` note naming why
//! its memory outlives it; a listener fd is closed only after its accept's terminal CQE.
//!
//! What it does not do: the conn state machine (see `state`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use io_uring::opcode;
use io_uring::types::Fd;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::state::{Core, Extra, UConn, CONNECTING};
use crate::key::{OpKey, OpKind};
use crate::lifecycle::ACCEPT_BACKOFF;
use crate::{ConnId, ListenerId};

pub(super) struct Listener {
    pub socket: Option<TcpListener>,
    pub armed: bool,
    pub stopping: bool,
    pub retry_at: Option<Instant>,
}

impl Core {
    pub fn adopt(&mut self, fd: OwnedFd) -> io::Result<ConnId> {
        let sock = SockRef::from(&fd);
        // io_uring does the waiting; a blocking socket also keeps reads portable between backends.
        sock.set_nonblocking(false)?;
        // Rejects fds that are not stream sockets; a Unix stream socket (the HTTP server's
        // relay of a WebSocket over TLS) has no Nagle to turn off.
        crate::nodelay_for_adopt(&fd)?;
        let id = self.conns.table.insert(UConn::new(fd));
        self.arm_recv(id);
        Ok(id)
    }

    /// Registers an accepted fd; returns its id and peer.
    pub fn accepted(&mut self, fd: OwnedFd) -> io::Result<(ConnId, SocketAddr)> {
        let sock = SockRef::from(&fd);
        let peer = sock.peer_addr()?.as_socket();
        let peer = peer.ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))?;
        sock.set_nodelay(true)?;
        let id = self.conns.table.insert(UConn::new(fd));
        self.arm_recv(id);
        Ok((id, peer))
    }

    pub fn connect(&mut self, peer: SocketAddr, source: Option<SocketAddr>) -> io::Result<ConnId> {
        let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(source) = source {
            if source.port() == 0 {
                crate::sys::set_bind_address_no_port(&socket)?;
            }
            socket.bind(&source.into())?;
        }
        socket.set_nodelay(true)?;
        let mut conn = UConn::new(socket.into());
        let extra = conn.extra.insert(Box::new(Extra {
            leftover: Vec::new(),
            peer: Some(peer.into()),
        }));
        let (addr, addr_len) = match &extra.peer {
            Some(a) => (a.as_ptr(), a.len()),
            None => unreachable!("peer was just set"),
        };
        let fd = Fd(conn.fd.as_raw_fd());
        conn.flags = CONNECTING;
        conn.inflight = 1;
        let id = self.conns.table.insert(conn);
        let key = OpKey::for_conn(OpKind::Connect, id).encode();
        let entry = opcode::Connect::new(fd, addr.cast(), addr_len)
            .build()
            .user_data(key);
        // SAFETY: `addr` points into the boxed `Extra` of the slot; moving the slot moves the
        // Box pointer, not its contents. `peer` is cleared only after this CQE is reaped and the
        // Box is freed only with the slot (inflight 0). The fd stays open just as long.
        unsafe { self.push(entry) };
        Ok(id)
    }

    pub fn listen(&mut self, socket: TcpListener) -> io::Result<ListenerId> {
        let index = u32::try_from(self.listeners.len()).map_err(io::Error::other)?;
        self.listeners.push(Listener {
            socket: Some(socket),
            armed: false,
            stopping: false,
            retry_at: None,
        });
        self.arm_accept(index);
        Ok(ListenerId(index))
    }

    pub fn arm_accept(&mut self, index: u32) {
        let Some(l) = self.listeners.get_mut(index as usize) else {
            return;
        };
        let Some(socket) = l.socket.as_ref().filter(|_| !l.armed && !l.stopping) else {
            return;
        };
        l.armed = true;
        l.retry_at = None;
        let key = OpKey::new(OpKind::Accept, index, 0).encode();
        let entry = opcode::AcceptMulti::new(Fd(socket.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(key);
        // SAFETY: a multishot accept without an address buffer names no memory of ours; the
        // listener fd is closed only after the op's terminal CQE (`armed` false).
        unsafe { self.push(entry) }
    }

    /// Bookkeeping for one accept CQE (re-arm, backoff, close when stopped). Returns true when
    /// the listener is stopping: a conn accepted in that race is refused by closing it.
    pub fn accept_done(&mut self, index: u32, more: bool, errno: Option<i32>) -> bool {
        let Some(l) = self.listeners.get_mut(index as usize) else {
            return true;
        };
        if !more {
            l.armed = false;
        }
        if errno.is_some_and(|e| e != libc::ECANCELED) {
            // Any accept error ends the multishot; wait a little so a full fd table or a broken
            // listener does not spin the loop.
            l.retry_at = Some(Instant::now() + ACCEPT_BACKOFF);
        }
        if !more && l.stopping {
            l.socket = None;
        } else if !more && l.retry_at.is_none() {
            self.arm_accept(index);
        }
        self.listeners
            .get(index as usize)
            .map_or(true, |l| l.stopping)
    }

    pub fn stop_listening(&mut self) {
        for index in 0..self.listeners.len() {
            let l = &mut self.listeners[index];
            l.stopping = true;
            if !l.armed {
                l.socket = None;
                continue;
            }
            let target = OpKey::new(OpKind::Accept, index as u32, 0).encode();
            let key = OpKey::new(OpKind::Control, index as u32, 0).encode();
            let entry = opcode::AsyncCancel::new(target).build().user_data(key);
            // SAFETY: a cancel names no memory or fd of ours.
            unsafe { self.push(entry) }
        }
        if let Err(err) = self.submit() {
            tracing::warn!(%err, "submitting accept cancellations failed; retried next turn");
        }
    }
}
