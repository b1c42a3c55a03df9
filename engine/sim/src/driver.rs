//! The simulated `rookery_io::Driver` one real shard loop (`rookery::shard::Shard`) runs on:
//! in-memory conns and the shard's log file, completions when the world says time has come.
//!
//! What it does: hands a conn's input to the shard in one to three reads cut at seeded
//! points (partial reads); keeps each conn's output queue (the driver's cap: a send past
//! `max_output_bytes` into a non-empty queue is `QueueFull`, as in the real driver), hands
//! its bytes out in pieces when the world's network pulls them (partial writes of seeded
//! sizes), reports `Drained` when a queue empties, finishes `close(Flush)` and `detach` once
//! the queue is out, and hands detached conns back as a real fd (`/dev/null`) standing for
//! the in-memory conn. Log writes and reads complete after a seeded delay (writes in order,
//! in one to three pieces; a write may fail with ENOSPC while the world allows it), on the
//! real file the store registered. Every call the shard makes that the world must know of is
//! written down as a [`Note`], which the world takes after each turn.
//!
//! What it does not do: block (`turn` delivers what is ready now; the wait the shard asked
//! for is kept in `wait` for the world to schedule the next turn), linger timeouts (readers
//! always read in the end), connect, sync to disk (the sim's kill -9 keeps what was written).
//!
//! Invariants: exactly one `Closed` or `Detached` per conn, after which it is gone and its id
//! never reused (ids come from one counter per run, so a `ConnKey` names one conn in the
//! whole run); events are delivered in the order they became ready.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rookery_io::{
    BackendKind, CloseReason, ConnId, Driver, Event, FileId, Handler, ListenerId, TurnStats, Wake,
    WakeHandle,
};

use crate::rng::Rng;

mod ops;

pub use ops::SimOps;

const EBADF: i32 = 9;
const EIO: i32 = 5;
const ENOSPC: i32 = 28;
/// Events delivered per turn, as the real drivers bound them.
const MAX_EVENTS_PER_TURN: usize = 4096;

/// The virtual clock the world advances and the shard reads (`rookery::seams::Clock`).
#[derive(Clone, Debug, Default)]
pub struct SimClock(pub Rc<Cell<u64>>);

impl rookery::seams::Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// A conn's state as the driver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    Open,
    /// `close(Flush)`: ends once its queue is out.
    Closing,
    /// `close(Abort)` (the shard does that on `QueueFull`): `Closed` is on its way.
    Aborted,
    /// `detach`: handed back once its queue is out.
    Detaching,
    /// The network lost it: `Closed` is on its way.
    PeerGone,
    /// Closed by the shard and its queue written out: `Closed` is on its way (the network
    /// losing it now is not reported again; a send is still late, as while `Closing`).
    Flushed,
}

/// What the shard did that the world must learn of.
#[derive(Debug)]
pub enum Note {
    Sent {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// A send or close to a conn the router closed or handed off (`None`: already gone).
    Late {
        conn: ConnId,
        state: Option<ConnState>,
        bytes: Vec<u8>,
    },
    /// A send past the cap (`QueueFull`), with what the queue held.
    Overflow {
        conn: ConnId,
        bytes: Vec<u8>,
        queued: usize,
    },
    /// The conn's queue went from empty to not empty.
    Writable(ConnId),
    Closing(ConnId),
    Aborted(ConnId),
    Detaching(ConnId),
    Detached {
        conn: ConnId,
        fd: RawFd,
    },
    Adopted {
        conn: ConnId,
        fd: RawFd,
    },
    /// The handler was given `Drained` / `Closed` for this conn.
    DrainedTold(ConnId),
    ClosedTold(ConnId),
    /// A log write succeeded: its bytes (a commit batch).
    Committed(Vec<u8>),
    WriteFailed,
    /// The shard stopped accepting (shutdown).
    StoppedListening,
}

struct SimConn {
    state: ConnState,
    queue: VecDeque<u8>,
    leftover: Vec<u8>,
}

/// An event owned until delivered.
enum Ready {
    Accepted(ConnId),
    Received(ConnId, Vec<u8>),
    /// The queue emptied; `forced`: the `delete-on-queue` canary's, told whatever it holds.
    Drained(ConnId, bool),
    Closed(ConnId, CloseReason),
    Detached(ConnId),
    Written(FileId, u64, Result<(), i32>, Vec<u8>),
    Read(FileId, u64, Result<(), i32>, Vec<u8>),
}

struct PendingWrite {
    file: FileId,
    token: u64,
    offset: u64,
    bytes: Vec<u8>,
    ready_at_ms: u64,
}

struct PendingRead {
    file: FileId,
    token: u64,
    offset: u64,
    buffer: Vec<u8>,
    ready_at_ms: u64,
}

/// One shard's simulated driver.
pub struct SimDriver {
    clock: SimClock,
    rng: Rng,
    conns: BTreeMap<u32, SimConn>,
    /// Shared by every driver of a run: conn indexes are never reused.
    next_conn: Rc<Cell<u32>>,
    ready: VecDeque<Ready>,
    files: BTreeMap<u32, File>,
    next_file: u32,
    next_token: u64,
    writes: VecDeque<PendingWrite>,
    reads: Vec<PendingRead>,
    cap: usize,
    listening: bool,
    /// The wait the shard asked for in its last turn.
    pub wait: Option<Duration>,
    pub notes: Vec<Note>,
    /// Chance (per mille) that a finished write fails with ENOSPC; the world sets it.
    pub write_fail_per_mille: u64,
    /// The `delete-on-queue` canary: `Drained` right after every send.
    pub drain_on_send: bool,
    /// How long a log write takes (virtual ms, drawn per write in this range).
    pub write_ms: (u64, u64),
    /// Files registered after the first: the loop re-registers its log after compaction.
    pub reregistered: u64,
}

struct NoWake;

impl Wake for NoWake {
    // The world schedules a shard's turn when it gives it mail; nothing blocks to be woken.
    fn wake(&self) {}
}

impl SimDriver {
    pub fn new(clock: SimClock, seed: u64, next_conn: Rc<Cell<u32>>, cap: usize) -> SimDriver {
        SimDriver {
            clock,
            rng: Rng::new(seed),
            conns: BTreeMap::new(),
            next_conn,
            ready: VecDeque::new(),
            files: BTreeMap::new(),
            next_file: 0,
            next_token: 0,
            writes: VecDeque::new(),
            reads: Vec::new(),
            cap,
            listening: true,
            wait: None,
            notes: Vec::new(),
            write_fail_per_mille: 0,
            drain_on_send: false,
            write_ms: (0, 8),
            reregistered: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.0.get()
    }

    fn fresh_conn(&mut self) -> ConnId {
        let index = self.next_conn.get() + 1;
        self.next_conn.set(index);
        let conn = ConnId {
            index,
            generation: 1,
        };
        let state = ConnState::Open;
        let (queue, leftover) = (VecDeque::new(), Vec::new());
        let entry = SimConn {
            state,
            queue,
            leftover,
        };
        self.conns.insert(index, entry);
        conn
    }

    /// A client connects to this shard's listener; `None` once it stopped listening.
    pub fn accept(&mut self) -> Option<ConnId> {
        if !self.listening {
            return None;
        }
        let conn = self.fresh_conn();
        self.ready.push_back(Ready::Accepted(conn));
        Some(conn)
    }

    /// Bytes from the peer: read if the conn reads, kept for the adopter while it detaches.
    /// Handed back when the conn no longer takes bytes.
    pub fn receive(&mut self, conn: ConnId, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let Some(c) = self.conns.get_mut(&conn.index) else {
            return Err(bytes);
        };
        match c.state {
            ConnState::Open | ConnState::Closing => {
                self.read_in_pieces(conn, bytes);
                Ok(())
            }
            ConnState::Detaching => {
                c.leftover.extend_from_slice(&bytes);
                Ok(())
            }
            ConnState::Aborted | ConnState::PeerGone | ConnState::Flushed => Err(bytes),
        }
    }

    /// Partial reads: one time in three the bytes arrive as two or three reads split at
    /// seeded points (stanzas cut anywhere, as a socket may cut them).
    fn read_in_pieces(&mut self, conn: ConnId, mut bytes: Vec<u8>) {
        let pieces = if bytes.len() > 1 && self.rng.chance(333) {
            self.rng.range(2, 3)
        } else {
            1
        };
        for _ in 1..pieces {
            if bytes.len() < 2 {
                break;
            }
            let cut = self.rng.range(1, bytes.len() as u64 - 1) as usize;
            let rest = bytes.split_off(cut);
            self.ready.push_back(Ready::Received(conn, bytes));
            bytes = rest;
        }
        self.ready.push_back(Ready::Received(conn, bytes));
    }

    /// The network lost the conn: its queue is dropped and `Closed` follows. False if the
    /// conn is detaching or gone (the world tells the adopter).
    pub fn peer_closed(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn.index) else {
            return false;
        };
        match c.state {
            ConnState::Open | ConnState::Closing => {
                c.state = ConnState::PeerGone;
                c.queue.clear();
                self.ready
                    .push_back(Ready::Closed(conn, CloseReason::PeerClosed));
                true
            }
            _ => false,
        }
    }

    /// Bytes queued for the conn.
    pub fn queued(&self, conn: ConnId) -> usize {
        self.conns.get(&conn.index).map_or(0, |c| c.queue.len())
    }

    /// The network writes up to `max` bytes of the conn's queue (a partial write). When the
    /// queue empties: `Drained` (open), `Closed` (closing: the returned flag says the conn
    /// ends after these bytes) or `Detached`.
    pub fn write_out(&mut self, conn: ConnId, max: usize) -> (Vec<u8>, bool) {
        let Some(c) = self.conns.get_mut(&conn.index) else {
            return (Vec::new(), false);
        };
        let take = max.min(c.queue.len());
        let bytes: Vec<u8> = c.queue.drain(..take).collect();
        if !c.queue.is_empty() || take == 0 {
            return (bytes, false);
        }
        match c.state {
            ConnState::Open => self.ready.push_back(Ready::Drained(conn, false)),
            ConnState::Closing => {
                // `Closed` is on its way: the network losing the conn now (the world's
                // `peer_closed` after the client saw the close) must not report it twice.
                c.state = ConnState::Flushed;
                self.ready
                    .push_back(Ready::Closed(conn, CloseReason::Local));
                return (bytes, true);
            }
            ConnState::Detaching => self.ready.push_back(Ready::Detached(conn)),
            ConnState::Aborted | ConnState::PeerGone | ConnState::Flushed => {}
        }
        (bytes, false)
    }

    /// When the next write or read completes (`now` if events wait), for the world's next
    /// turn of this shard.
    pub fn next_ready_at_ms(&self) -> Option<u64> {
        if !self.ready.is_empty() {
            return Some(self.now_ms());
        }
        let write = self.writes.front().map(|w| w.ready_at_ms);
        let read = self.reads.iter().map(|r| r.ready_at_ms).min();
        write.into_iter().chain(read).min()
    }

    /// Log writes in flight (offset, bytes), for a kill -9 that tears one.
    pub fn writes_in_flight(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.writes.iter().map(|w| (w.offset, w.bytes.as_slice()))
    }

    /// Moves the log operations due by now into the ready events.
    fn complete_due(&mut self) {
        let now_ms = self.now_ms();
        while self.writes.front().is_some_and(|w| w.ready_at_ms <= now_ms) {
            let Some(write) = self.writes.pop_front() else {
                break;
            };
            let result = self.write_now(&write);
            let PendingWrite {
                file, token, bytes, ..
            } = write;
            match result {
                Ok(()) => self.notes.push(Note::Committed(bytes.clone())),
                Err(_) => self.notes.push(Note::WriteFailed),
            }
            self.ready
                .push_back(Ready::Written(file, token, result, bytes));
        }
        let mut due: Vec<PendingRead> = Vec::new();
        let mut at = 0;
        while at < self.reads.len() {
            if self.reads[at].ready_at_ms <= now_ms {
                due.push(self.reads.remove(at));
            } else {
                at += 1;
            }
        }
        due.sort_by_key(|r| r.token);
        for mut read in due {
            let result = match self.files.get(&read.file.0) {
                Some(file) => file
                    .read_exact_at(&mut read.buffer, read.offset)
                    .map_err(|_| EIO),
                None => Err(EBADF),
            };
            self.ready
                .push_back(Ready::Read(read.file, read.token, result, read.buffer));
        }
    }

    /// A write reaches the file in one to three pieces (short writes continued), or fails.
    fn write_now(&mut self, write: &PendingWrite) -> Result<(), i32> {
        if self.rng.chance(self.write_fail_per_mille) {
            return Err(ENOSPC);
        }
        let Some(file) = self.files.get(&write.file.0) else {
            return Err(EBADF);
        };
        let len = write.bytes.len();
        let mut done = 0;
        while done < len {
            let piece = if self.rng.chance(300) {
                self.rng.range(1, (len - done) as u64) as usize
            } else {
                len - done
            };
            file.write_all_at(&write.bytes[done..done + piece], write.offset + done as u64)
                .map_err(|e| e.raw_os_error().unwrap_or(EIO))?;
            done += piece;
        }
        Ok(())
    }

    fn deliver<H: Handler<SimDriver>>(&mut self, ready: Ready, handler: &mut H) -> io::Result<()> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 5222));
        let mut ops = SimOps { d: self };
        match ready {
            Ready::Accepted(conn) => {
                let listener = ListenerId(0);
                let event = Event::Accepted {
                    listener,
                    conn,
                    peer,
                };
                handler.on_event(&mut ops, event);
            }
            Ready::Received(conn, data) => {
                handler.on_event(&mut ops, Event::Received { conn, data: &data })
            }
            Ready::Drained(conn, forced) => {
                // A real driver reports a drain in the turn the queue emptied, before the
                // shard can send again; here it waits for the turn, so a send that came in
                // between (mail drained at the top of the turn) makes it stale: drop it, the
                // next emptying reports again. Telling it would let the router delete what
                // the send queued (found by the sim: a lost chat without XEP-0198).
                if !forced && ops.d.queued(conn) > 0 {
                    return Ok(());
                }
                ops.d.notes.push(Note::DrainedTold(conn));
                handler.on_event(&mut ops, Event::Drained { conn });
            }
            Ready::Closed(conn, reason) => {
                ops.d.conns.remove(&conn.index);
                ops.d.notes.push(Note::ClosedTold(conn));
                handler.on_event(&mut ops, Event::Closed { conn, reason });
            }
            Ready::Detached(conn) => {
                let Some(c) = ops.d.conns.remove(&conn.index) else {
                    return Ok(());
                };
                // A real fd stands for the in-memory conn while it travels to its adopter.
                let socket = OwnedFd::from(File::open("/dev/null")?);
                let fd = socket.as_raw_fd();
                ops.d.notes.push(Note::Detached { conn, fd });
                let leftover = c.leftover;
                let event = Event::Detached {
                    conn,
                    socket,
                    leftover,
                };
                handler.on_event(&mut ops, event);
            }
            Ready::Written(file, token, result, buffer) => {
                let event = Event::FileWritten {
                    file,
                    token,
                    result,
                    buffer,
                };
                handler.on_event(&mut ops, event);
            }
            Ready::Read(file, token, result, buffer) => {
                let event = Event::FileRead {
                    file,
                    token,
                    result,
                    buffer,
                };
                handler.on_event(&mut ops, event);
            }
        }
        Ok(())
    }
}

impl Driver for SimDriver {
    type Ops<'a> = SimOps<'a>;

    fn listen(&mut self, _listener: TcpListener) -> io::Result<ListenerId> {
        // The world connects clients with `accept`; no socket is listened on.
        Ok(ListenerId(0))
    }

    fn stop_listening(&mut self) {
        self.listening = false;
        self.notes.push(Note::StoppedListening);
    }

    fn turn<H: Handler<Self>>(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut H,
    ) -> io::Result<TurnStats> {
        self.wait = timeout;
        self.complete_due();
        let mut events = 0;
        while events < MAX_EVENTS_PER_TURN as u32 {
            let Some(ready) = self.ready.pop_front() else {
                break;
            };
            self.deliver(ready, handler)?;
            events += 1;
        }
        Ok(TurnStats {
            events,
            submit_calls: 1,
        })
    }

    fn ops(&mut self) -> SimOps<'_> {
        SimOps { d: self }
    }

    fn wake_handle(&self) -> WakeHandle {
        WakeHandle::new(Arc::new(NoWake))
    }

    fn open_conns(&self) -> usize {
        self.conns.len()
    }

    fn kind(&self) -> BackendKind {
        // The loop never branches on the backend; poll is the closest in behaviour
        // (completions reported in the next turn).
        BackendKind::Poll
    }

    fn register_file(&mut self, file: File) -> io::Result<FileId> {
        if self.next_file > 0 {
            self.reregistered += 1;
        }
        self.next_file += 1;
        self.files.insert(self.next_file, file);
        Ok(FileId(self.next_file))
    }

    fn unregister_file(&mut self, file: FileId) -> Option<File> {
        let busy =
            self.writes.iter().any(|w| w.file == file) || self.reads.iter().any(|r| r.file == file);
        if busy {
            return None;
        }
        self.files.remove(&file.0)
    }
}

#[cfg(test)]
mod tests;
