//! The poll driver's state and conn state machine (readiness in, completions out).
//!
//! mio is edge-triggered, so readiness is remembered: `WRITABLE` stays set until a write hits
//! WouldBlock; a conn that hit the per-turn read cap (`READS_PER_TURN`, for fairness) is kept
//! in `read_again` and read on the next turn without waiting for a new edge; a listener that
//! hit its accept cap or must retry after EMFILE is kept likewise.
//!
//! Unlike io_uring nothing is in flight here, so closing is synchronous: `teardown` deregisters,
//! closes and queues `Closed` at once. The transitions both backends share (`close`,
//! `begin_flush`, linger expiry, `send`'s checks) are in `lifecycle`.
//!
//! What it does not do: wait or deliver events (see `PollDriver::turn`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::MioWake;
use crate::conn_table::OutQueue;
use crate::files::Files;
use crate::key::{OpKey, OpKind};
use crate::lifecycle::{
    slot_state, Conns, Deferred, DeferredQueue, Lifecycle, PackedReason, Phase, SlotState,
    ACCEPT_BACKOFF,
};
use crate::wake::Coalesced;
use crate::{CloseReason, ConnId, Limits, ListenerId, SendError};

/// `PConn::flags` bits.
pub(super) const WRITABLE: u8 = 1;
pub(super) const CONNECTING: u8 = 2;
const READ_AGAIN: u8 = 4;
const DIRTY: u8 = 8;

/// Reads per conn per turn before other conns get their turn.
pub(super) const READS_PER_TURN: usize = 8;

pub(super) struct PConn {
    pub stream: TcpStream,
    pub phase: Phase,
    pub flags: u8,
    pub reason: PackedReason,
    pub out: Option<Box<OutQueue>>,
    /// Its `ConnTable` slot's generation (see `conn_table::Slotted`).
    generation: u32,
}

slot_state!(PConn);

pub(super) struct PListener {
    pub socket: Option<TcpListener>,
    pub retry_at: Option<Instant>,
    /// Hit the per-turn accept cap: accept again next turn without a new edge.
    pub ready_again: bool,
}

/// Result of one read attempt on a conn.
pub(super) enum ReadOutcome {
    Data(usize),
    /// WouldBlock, or the conn no longer reads.
    Idle,
    /// The conn was closed or failed; nothing more to read.
    Gone,
}

pub(super) struct PCore {
    pub poll: Poll,
    pub conns: Conns<PConn>,
    pub listeners: Vec<PListener>,
    /// Registered files; nothing of theirs is ever in flight in the kernel here.
    pub files: Files<()>,
    pub deferred: DeferredQueue,
    pub dirty: Vec<ConnId>,
    pub read_again: Vec<ConnId>,
    pub waker: std::sync::Arc<Coalesced<MioWake>>,
}

pub(super) fn conn_token(id: ConnId) -> Token {
    Token(OpKey::for_conn(OpKind::Recv, id).encode() as usize)
}

impl PCore {
    pub fn new(poll: Poll, limits: &Limits, waker: std::sync::Arc<Coalesced<MioWake>>) -> PCore {
        PCore {
            poll,
            conns: Conns::new(limits),
            listeners: Vec::new(),
            files: Files::new(),
            deferred: DeferredQueue::new(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            waker,
        }
    }

    fn register(&mut self, stream: TcpStream, flags: u8) -> io::Result<ConnId> {
        let conn = PConn {
            stream,
            phase: Phase::Open,
            flags,
            reason: PackedReason::new(CloseReason::Local),
            out: None,
            generation: 0,
        };
        let id = self.conns.table.insert(conn);
        let registry = self.poll.registry();
        let Some(c) = self.conns.table.get_mut(id) else {
            unreachable!("just inserted")
        };
        if let Err(err) = registry.register(
            &mut c.stream,
            conn_token(id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.conns.table.remove(id);
            return Err(err);
        }
        Ok(id)
    }

    pub fn adopt(&mut self, fd: OwnedFd) -> io::Result<ConnId> {
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?; // mio needs it; a socket from the uring backend is blocking
                                    // A Unix stream socket (the HTTP server's relay of a WebSocket over TLS) has no Nagle.
        crate::nodelay_for_adopt(&std)?;
        self.register(TcpStream::from_std(std), 0)
    }

    pub fn accepted(&mut self, stream: TcpStream) -> io::Result<ConnId> {
        stream.set_nodelay(true)?;
        self.register(stream, 0)
    }

    pub fn connect(&mut self, peer: SocketAddr, source: Option<SocketAddr>) -> io::Result<ConnId> {
        let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        if let Some(source) = source {
            #[cfg(target_os = "linux")]
            if source.port() == 0 {
                crate::sys::set_bind_address_no_port(&socket)?;
            }
            socket.bind(&source.into())?;
        }
        socket.set_nodelay(true)?;
        match socket.connect(&peer.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let std: std::net::TcpStream = socket.into();
        self.register(TcpStream::from_std(std), CONNECTING)
    }

    pub fn listen(&mut self, listener: std::net::TcpListener) -> io::Result<ListenerId> {
        listener.set_nonblocking(true)?;
        let index = u32::try_from(self.listeners.len()).map_err(io::Error::other)?;
        let mut socket = TcpListener::from_std(listener);
        let token = Token(OpKey::new(OpKind::Accept, index, 0).encode() as usize);
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        // A conn may already wait in the backlog: try once without waiting for an edge.
        self.listeners.push(PListener {
            socket: Some(socket),
            retry_at: None,
            ready_again: true,
        });
        Ok(ListenerId(index))
    }

    pub fn stop_listening(&mut self) {
        for l in &mut self.listeners {
            if let Some(mut socket) = l.socket.take() {
                let _ = self.poll.registry().deregister(&mut socket);
            }
            l.ready_again = false;
            l.retry_at = None;
        }
    }

    /// Queues the bytes; they are written at the end of the turn (`dirty`).
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let Some(c) = self.conns.enqueue(id, bytes)? else {
            return Ok(());
        };
        if c.flags & DIRTY == 0 {
            c.flags |= DIRTY;
            self.dirty.push(id);
        }
        Ok(())
    }

    pub fn detach(&mut self, id: ConnId) {
        // Reading stops now: bytes not read yet stay in the socket for the adopter.
        let Some(c) = self.conns.begin_detach(id) else {
            return;
        };
        // Nothing is in flight here (unlike io_uring): an idle conn hands over at once.
        if c.queue_empty() && c.flags & CONNECTING == 0 {
            self.finish_detach(id);
            return;
        }
        self.conns.linger(id);
    }

    fn finish_detach(&mut self, id: ConnId) {
        let Some(stream) = self.release(id) else {
            return;
        };
        self.deferred.push_back(Deferred::Detached {
            conn: id,
            socket: OwnedFd::from(stream),
            leftover: Vec::new(),
        });
    }

    /// Frees `id`'s slot and queue and deregisters its socket, which is returned (still open).
    fn release(&mut self, id: ConnId) -> Option<TcpStream> {
        let mut c = self.conns.table.remove(id)?;
        let _ = self.poll.registry().deregister(&mut c.stream);
        if let Some(q) = c.out.take() {
            self.conns.pool.give(q);
        }
        Some(c.stream)
    }

    /// One read into `scratch` for a conn that reads (open, or flushing and discarding).
    pub fn read_once(&mut self, id: ConnId, scratch: &mut [u8]) -> ReadOutcome {
        let Some(c) = self.conns.table.get_mut(id) else {
            return ReadOutcome::Gone;
        };
        if !matches!(c.phase, Phase::Open | Phase::Flushing) || c.flags & CONNECTING != 0 {
            return ReadOutcome::Idle;
        }
        let res = loop {
            match c.stream.read(scratch) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                res => break res,
            }
        };
        match res {
            Ok(0) if c.phase == Phase::Open => {
                self.begin_flush(id, CloseReason::PeerClosed);
                ReadOutcome::Gone
            }
            Ok(0) => ReadOutcome::Idle, // flushing: the peer half-closed; keep writing
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::Idle,
            Err(e) => {
                self.teardown(id, CloseReason::Error(errno_of(&e)));
                ReadOutcome::Gone
            }
        }
    }

    /// The conn hit the read cap: read it next turn without waiting for an edge.
    // Shaped like uring's `queue_rearm`, but a different list for a different cause (fairness).
    pub fn queue_read_again(&mut self, id: ConnId) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        if c.flags & READ_AGAIN == 0 {
            c.flags |= READ_AGAIN;
            self.read_again.push(id);
        }
    }

    pub fn clear_read_again(&mut self, id: ConnId) {
        if let Some(c) = self.conns.table.get_mut(id) {
            c.flags &= !READ_AGAIN;
        }
    }

    pub fn clear_dirty(&mut self, id: ConnId) {
        if let Some(c) = self.conns.table.get_mut(id) {
            c.flags &= !DIRTY;
        }
    }

    /// Writes until the queue is empty or the socket would block. Returns true when an open
    /// conn's non-empty queue drained (the caller delivers `Drained`).
    pub fn write_out(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.table.get_mut(id) else {
            return false;
        };
        if c.flags & WRITABLE == 0 || c.flags & CONNECTING != 0 {
            return false;
        }
        let Some(q) = c.out.as_mut() else {
            return false;
        };
        let mut failed = None;
        while let Some(chunk) = q.begin_write() {
            match c.stream.write(chunk) {
                Ok(n) if n > 0 => q.end_write(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => q.end_write(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    q.end_write(0);
                    c.flags &= !WRITABLE;
                    return false;
                }
                // A stream write of a non-empty buffer returns 0 only on a dead socket.
                Ok(_) => {
                    q.end_write(0);
                    failed = Some(libc::EPIPE);
                    break;
                }
                Err(e) => {
                    q.end_write(0);
                    failed = Some(errno_of(&e));
                    break;
                }
            }
        }
        if let Some(errno) = failed {
            self.teardown(id, CloseReason::Error(errno));
            return false;
        }
        let (phase, reason) = (c.phase, c.reason.get());
        if let Some(q) = c.out.take() {
            self.conns.pool.give(q);
        }
        match phase {
            Phase::Open => true,
            Phase::Flushing => {
                self.teardown(id, reason);
                false
            }
            Phase::Detaching => {
                self.finish_detach(id);
                false
            }
            #[cfg(target_os = "linux")]
            Phase::TearingDown => false, // the io_uring backend's phase; poll never enters it
        }
    }

    /// Checks a connecting conn after an event. `None`: still connecting.
    pub fn finish_connect(&mut self, id: ConnId) -> Option<Result<(), i32>> {
        let c = self.conns.table.get_mut(id)?;
        let result = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(errno_of(&e)),
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return None,
                Err(e) => Err(errno_of(&e)),
            },
        };
        c.flags &= !CONNECTING;
        let detached_idle = c.phase == Phase::Detaching && c.queue_empty();
        if let Err(errno) = result {
            self.teardown(id, CloseReason::ConnectFailed(errno));
        } else if detached_idle {
            self.finish_detach(id);
        }
        Some(result)
    }

    /// The earliest linger deadline or accept retry.
    pub fn next_deadline(&self) -> Option<Instant> {
        let accept = self.listeners.iter().filter_map(|l| l.retry_at).min();
        self.conns.next_deadline(accept)
    }

    /// Records an accept error; resource errors pause the listener for `ACCEPT_BACKOFF`.
    pub fn accept_failed(&mut self, index: usize, errno: i32) {
        if crate::lifecycle::is_resource_errno(errno) {
            self.listeners[index].retry_at = Some(Instant::now() + ACCEPT_BACKOFF);
            self.listeners[index].ready_again = false;
        }
    }
}

impl Lifecycle for PCore {
    type Slot = PConn;

    fn conns_mut(&mut self) -> &mut Conns<PConn> {
        &mut self.conns
    }

    /// Closes now and queues `Closed` (nothing is ever in flight on this backend).
    fn teardown(&mut self, id: ConnId, reason: CloseReason) {
        let Some(stream) = self.release(id) else {
            return;
        };
        drop(stream);
        self.deferred
            .push_back(Deferred::Closed { conn: id, reason });
    }
}

pub(super) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
