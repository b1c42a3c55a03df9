//! The operations the shard's loop calls on the simulated driver (`rookery_io::Ops`): sends
//! into the conn's queue under the cap, closes, detaches, adopts, and log writes and reads
//! that complete after a seeded delay. What the world must know of is noted (`Note`).
//!
//! What it does not do: complete anything (the driver's `turn` does, and the world's
//! network pulls the queues).
//!
//! Invariants: see the parent module; a write never completes before one submitted ahead
//! of it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use rookery_io::CloseReason;
use rookery_io::{ConnId, FileId, FileSync, Linger, Ops, SendError};

use super::{ConnState, Note, PendingRead, PendingWrite, Ready, SimDriver};

/// The shard's operations on the simulated driver.
pub struct SimOps<'a> {
    pub(super) d: &'a mut SimDriver,
}

impl SimOps<'_> {
    /// A send or close the router made on a conn it closed or handed off: noted for the
    /// world's checker 3. Conns the driver aborted or the peer closed take it silently (the
    /// router has not heard yet).
    fn late(&mut self, conn: ConnId, bytes: &[u8]) -> bool {
        let state = self.d.conns.get(&conn.index).map(|c| c.state);
        match state {
            Some(ConnState::Open) => false,
            Some(ConnState::Aborted | ConnState::PeerGone) => true,
            _ => {
                let bytes = bytes.to_vec();
                self.d.notes.push(Note::Late { conn, state, bytes });
                true
            }
        }
    }
}

impl Ops for SimOps<'_> {
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        if self.late(conn, bytes) {
            return Err(SendError::Stale);
        }
        let cap = self.d.cap;
        let Some(c) = self.d.conns.get_mut(&conn.index) else {
            return Err(SendError::Stale);
        };
        let queued = c.queue.len();
        if queued > 0 && queued + bytes.len() > cap {
            let bytes = bytes.to_vec();
            self.d.notes.push(Note::Overflow {
                conn,
                bytes,
                queued,
            });
            return Err(SendError::QueueFull);
        }
        c.queue.extend(bytes);
        if queued == 0 {
            self.d.notes.push(Note::Writable(conn));
        }
        let bytes = bytes.to_vec();
        self.d.notes.push(Note::Sent { conn, bytes });
        if self.d.drain_on_send {
            self.d.ready.push_back(Ready::Drained(conn, true));
        }
        Ok(())
    }

    fn close(&mut self, conn: ConnId, linger: Linger) {
        if self.late(conn, b"") {
            return;
        }
        let Some(c) = self.d.conns.get_mut(&conn.index) else {
            return;
        };
        match linger {
            Linger::Flush => {
                c.state = ConnState::Closing;
                self.d.notes.push(Note::Closing(conn));
                if c.queue.is_empty() {
                    self.d
                        .ready
                        .push_back(Ready::Closed(conn, CloseReason::Local));
                }
            }
            Linger::Abort => {
                c.state = ConnState::Aborted;
                c.queue.clear();
                self.d.notes.push(Note::Aborted(conn));
                self.d
                    .ready
                    .push_back(Ready::Closed(conn, CloseReason::Local));
            }
        }
    }

    fn detach(&mut self, conn: ConnId) {
        if self.late(conn, b"") {
            return;
        }
        let Some(c) = self.d.conns.get_mut(&conn.index) else {
            return;
        };
        c.state = ConnState::Detaching;
        self.d.notes.push(Note::Detaching(conn));
        if c.queue.is_empty() {
            self.d.ready.push_back(Ready::Detached(conn));
        }
    }

    fn adopt(&mut self, socket: OwnedFd) -> io::Result<ConnId> {
        let fd = socket.as_raw_fd();
        let conn = self.d.fresh_conn();
        self.d.notes.push(Note::Adopted { conn, fd });
        // The fd only stood for the conn on its way here.
        drop(socket);
        Ok(conn)
    }

    fn connect(&mut self, _peer: SocketAddr, _source: Option<SocketAddr>) -> io::Result<ConnId> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the simulated driver makes no outgoing conns",
        ))
    }

    fn queued_bytes(&self, conn: ConnId) -> usize {
        self.d.queued(conn)
    }

    fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, _sync: FileSync) -> u64 {
        self.d.next_token += 1;
        let token = self.d.next_token;
        // Writes to the file complete in submission order: never before the one ahead.
        let after = self.d.writes.back().map_or(0, |w| w.ready_at_ms);
        let (lo, hi) = self.d.write_ms;
        let ready_at_ms = (self.d.now_ms() + self.d.rng.range(lo, hi)).max(after);
        self.d.writes.push_back(PendingWrite {
            file,
            token,
            offset,
            bytes,
            ready_at_ms,
        });
        token
    }

    fn read_file(&mut self, file: FileId, offset: u64, len: usize, mut buffer: Vec<u8>) -> u64 {
        self.d.next_token += 1;
        let token = self.d.next_token;
        buffer.clear();
        buffer.resize(len, 0);
        let ready_at_ms = self.d.now_ms() + self.d.rng.range(0, 4);
        self.d.reads.push(PendingRead {
            file,
            token,
            offset,
            buffer,
            ready_at_ms,
        });
        token
    }
}
