//! rookery-io: the per-shard socket driver.
//!
//! One [`Driver`] runs inside one shard thread and owns every socket of that shard: listeners,
//! accepted conns, outgoing (load generator) conns; and the files registered with it (the
//! shard's durable log), written with `write_file`. It is *completion style*: callers ask for
//! work (`listen`, `send`, `close`, ...) and learn what happened through [`Event`]s delivered to a
//! [`Handler`] during [`Driver::turn`]. Two backends meet this one contract:
//!
//! - `uring` (Linux, kernel >= 6.0): multishot accept; multishot recv on a provided-buffer ring
//!   shared by all conns of the shard (an idle conn holds no read buffer); one send in flight
//!   per conn from its output queue; an eventfd read kept armed in the ring for wake-ups.
//! - `poll` (mio: epoll on Linux, kqueue on FreeBSD/macOS): readiness, then a non-blocking read
//!   into one per-shard scratch buffer, reported as the same completion events.
//!
//! The contract every backend meets (the conformance suite in `tests/` checks it for both):
//! 1. `Event::Received` data is valid only during the handler call; it is never empty.
//! 2. Bytes given to `send` are copied into the conn's output queue and written in order.
//!    The queue holds at most `Limits::max_output_bytes`; beyond it `send` fails with
//!    [`SendError::QueueFull`] and nothing is queued. One exception: an empty queue takes one
//!    `send` of any size (a single stanza larger than the cap must still go out), so a queue
//!    holds at most the cap or one write.
//! 3. Exactly one `Event::Closed` is delivered for every conn that was accepted, adopted or
//!    connected, after which its `ConnId` is stale: every call with a stale id is a no-op
//!    (returning `SendError::Stale` where a result exists).
//! 4. `close(conn, Linger::Flush)` writes what is queued first (bounded by
//!    `Limits::linger_ms`), then closes; `Linger::Abort` closes now.
//! 5. `detach` stops reading, writes out the output queue, then hands the socket back through
//!    `Event::Detached` (with any bytes that arrived in between) instead of `Event::Closed`.
//! 6. A [`WakeHandle`] may be used from any thread; a `wake` makes a `turn` blocked in wait
//!    return (or the next one not block) and delivers `Event::Woken`.
//! 7. `turn` waits at most `timeout`, then handles every ready completion (at most
//!    `Limits::max_events_per_turn`) before returning.
//! 8. Files (the shard's durable log): `write_file` writes all of its bytes at the given offset
//!    (short writes are continued inside the driver), then fdatasyncs with `FileSync::Data`,
//!    and reports exactly one `Event::FileWritten` carrying the buffer back, never from inside
//!    the `write_file` call. Writes to one file complete in submission order (io_uring keeps
//!    one write chain in flight per file, later ones queue behind it; poll writes
//!    synchronously in `write_file` and reports in the next `turn`, which then does not
//!    block). The result is `Ok` only if every byte was written (and synced if asked);
//!    otherwise it is the first errno, nothing is retried, and the caller decides (the store
//!    rewrites the whole batch at the same offset). A write to an unknown or unregistered
//!    `FileId` reports `Err(EBADF)`. A write is *in flight* from `write_file` until its
//!    `FileWritten` is delivered; `unregister_file` returns the file only when none is.
//!    File ids are never reused by a driver, so a stale id cannot reach a newer file.
//!    Register files opened without `O_APPEND` (Linux ignores the offset of an append write).
//!    Dropping the driver with writes in flight reports none of them; their bytes may or may
//!    not have reached the file (io_uring reaps the operations before freeing the buffers).
//! 9. `read_file` reads exactly `len` bytes at an offset (short reads are continued; the end of
//!    the file first is `Err(EIO)`) and reports exactly one `Event::FileRead` carrying the
//!    buffer, never from inside the call (poll reads synchronously and reports in the next
//!    `turn`). Reads are in flight like writes (`unregister_file` waits for them) but are not
//!    ordered with them or with each other: a reader reads only what a completed write put
//!    there.
//!
//! What this crate does *not* do: parse anything, own timers per conn (the shard keeps one
//! coarse timer wheel and passes the next deadline as the `turn` timeout), or know about shards.
//!
//! Testing: `cargo test -p rookery-io` runs the conformance suites (`tests/conformance.rs` for
//! sockets, `tests/files.rs` for file writes) against both backends;
//! `cargo test -p rookery-io --test conformance poll::` runs only the poll backend,
//! `... uring::` only io_uring (those tests print `SKIP` and pass when
//! `select_backend(BackendChoice::Uring)` fails, e.g. io_uring disabled by sysctl or seccomp).

#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

mod conn_table;
mod files;
mod forward;
mod key;
mod lifecycle;
mod poll;
mod probe;
mod rlimit;
mod sys;
#[cfg(target_os = "linux")]
mod uring;
mod wake;

pub use poll::{PollDriver, PollOps};
pub use probe::{select_backend, BackendChoice, BackendKind, ProbeError, Selected};
pub use rlimit::{raise_nofile_limit, NofileLimit};
#[cfg(target_os = "linux")]
pub use uring::{UringDriver, UringOps};

/// A conn of one driver: slot index plus generation, so a stale id never reaches a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub index: u32,
    pub generation: u32,
}

impl ConnId {
    /// Packs the id into one word, for layers that keep conns as opaque keys.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub fn from_u64(word: u64) -> ConnId {
        ConnId {
            index: word as u32,
            generation: (word >> 32) as u32,
        }
    }
}

/// A listener registered with [`Driver::listen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u32);

/// A file registered with the driver (the shard's log), see [`Driver::register_file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u32);

/// What `write_file` does after the bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSync {
    /// Nothing: the bytes are in the page cache (they survive a process crash, not power loss).
    None,
    /// `fdatasync` the file: the bytes (and the size needed to read them) are on stable storage.
    Data,
}

/// How `close` treats bytes still queued for the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// Write the output queue first (at most `Limits::linger_ms`), then close.
    Flush,
    /// Close now; queued bytes are dropped.
    Abort,
}

/// Why a conn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// We asked for it with `close`.
    Local,
    /// The peer closed its side (read returned 0).
    PeerClosed,
    /// A socket error, as an errno.
    Error(i32),
    /// `Linger::Flush` did not finish within `Limits::linger_ms`.
    LingerTimeout,
    /// An outgoing connect failed (errno), see `Event::Connected`.
    ConnectFailed(i32),
}

/// What a `send` could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The conn is closed, closing, detaching or the id is stale.
    Stale,
    /// The output queue would exceed `Limits::max_output_bytes`; nothing was queued.
    QueueFull,
}

/// One completion, delivered to [`Handler::on_event`].
#[derive(Debug)]
pub enum Event<'a> {
    /// A listener accepted a conn; reads are already armed.
    Accepted {
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
    },
    /// An outgoing connect finished. On failure a `Closed` follows.
    Connected {
        conn: ConnId,
        result: Result<(), i32>,
    },
    /// Bytes from the peer; valid only during this call.
    Received { conn: ConnId, data: &'a [u8] },
    /// The output queue became empty after being non-empty (back-pressure relief).
    Drained { conn: ConnId },
    /// The conn is gone and its id stale.
    Closed { conn: ConnId, reason: CloseReason },
    /// `detach` finished: the socket is now the caller's, with bytes read but not yet delivered.
    Detached {
        conn: ConnId,
        socket: OwnedFd,
        leftover: Vec<u8>,
    },
    /// A listener failed to accept (EMFILE, ENFILE, ...): the conn was refused and counted.
    AcceptFailed { listener: ListenerId, errno: i32 },
    /// A `WakeHandle::wake` happened since the last turn.
    Woken,
    /// A `write_file` finished: `Ok(())` = every byte written (and synced if asked), or the
    /// first errno (ENOSPC, EIO, EBADF for an unknown file, ...). The buffer comes back (its
    /// contents unchanged) for reuse.
    FileWritten {
        file: FileId,
        token: u64,
        result: Result<(), i32>,
        buffer: Vec<u8>,
    },
    /// A `read_file` finished: `Ok(())` = the buffer holds exactly the bytes asked for, or the
    /// first errno (EIO when the file ended first, EBADF for an unknown file, ...).
    FileRead {
        file: FileId,
        token: u64,
        result: Result<(), i32>,
        buffer: Vec<u8>,
    },
}

/// Receives completions. The `io` argument is the same driver, so handlers can send and close
/// from inside the callback; it is a generic parameter so the hot loop has no dynamic dispatch.
pub trait Handler<D: Driver + ?Sized> {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>);
}

/// Operations available inside a handler call (and on the driver itself between turns).
pub trait Ops {
    /// Queues bytes for the peer (copied).
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError>;
    /// Closes the conn; a `Closed` event follows.
    fn close(&mut self, conn: ConnId, linger: Linger);
    /// Stops reading and hands the socket back through `Event::Detached`.
    fn detach(&mut self, conn: ConnId);
    /// Takes ownership of a connected socket (for example one detached by another shard): TCP,
    /// or a Unix stream socket (one end of a relay; `Accepted`-style peers are not known).
    fn adopt(&mut self, socket: OwnedFd) -> io::Result<ConnId>;
    /// Starts a non-blocking connect, optionally bound to a source address first.
    fn connect(&mut self, peer: SocketAddr, source: Option<SocketAddr>) -> io::Result<ConnId>;
    /// Bytes queued and not yet written for this conn (0 for a stale id).
    fn queued_bytes(&self, conn: ConnId) -> usize;
    /// Writes all of `bytes` at `offset` (short writes are continued internally), then, with
    /// `FileSync::Data`, fdatasync. The buffer is owned by the driver until the completion,
    /// `Event::FileWritten` with the returned token, which hands it back. Writes to one file
    /// complete in submission order. See point 8 of the crate contract.
    fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, sync: FileSync) -> u64;
    /// Reads exactly `len` bytes at `offset` into `buffer` (cleared and resized to `len`;
    /// pass a spare one to reuse its allocation), continuing short reads. The buffer is owned
    /// by the driver until `Event::FileRead` with the returned token hands it back. Reads are
    /// not ordered with writes: read only bytes whose `FileWritten` arrived. See point 9.
    fn read_file(&mut self, file: FileId, offset: u64, len: usize, buffer: Vec<u8>) -> u64;
}

/// The driver of one shard. Not `Send` in spirit: create it inside the shard's thread.
pub trait Driver {
    type Ops<'a>: Ops
    where
        Self: 'a;

    /// Starts accepting on this listener (already bound and listening).
    fn listen(&mut self, listener: TcpListener) -> io::Result<ListenerId>;
    /// Stops accepting on every listener (shutdown); their sockets are closed.
    fn stop_listening(&mut self);
    /// Submits queued work, waits for completions up to `timeout` (none: block until one), and
    /// delivers them to the handler.
    fn turn<H: Handler<Self>>(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut H,
    ) -> io::Result<TurnStats>;
    /// Operations outside a turn.
    fn ops(&mut self) -> Self::Ops<'_>;
    /// A handle other threads use to wake this driver.
    fn wake_handle(&self) -> WakeHandle;
    /// Conns currently open (accepted, adopted or connected, not yet `Closed`/`Detached`).
    fn open_conns(&self) -> usize;
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Takes the file; the driver keeps it open until `unregister_file` or drop. Fails only
    /// when the driver ran out of file ids (ids are never reused).
    fn register_file(&mut self, file: std::fs::File) -> io::Result<FileId>;
    /// Gives the file back once no write on it is in flight, i.e. every `write_file` on it has
    /// had its `FileWritten` delivered (`None` while one has not, or for an unknown id).
    fn unregister_file(&mut self, file: FileId) -> Option<std::fs::File>;
}

/// Counters from one `turn`, for the shard's metrics and stall detection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurnStats {
    pub events: u32,
    /// Submission batches sent to the kernel in this turn (io_uring: `io_uring_enter` calls).
    pub submit_calls: u32,
}

/// Sizes and bounds of one driver. Every limit has an overflow behaviour, stated per field.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most bytes queued for one peer; `send` past it fails with `QueueFull` (an empty queue
    /// takes one write of any size).
    pub max_output_bytes: usize,
    /// Most events handled per turn; the rest wait for the next turn.
    pub max_events_per_turn: usize,
    /// Longest a `Linger::Flush` close waits for the peer to read; then it aborts.
    pub linger_ms: u64,
    /// io_uring: size of each provided receive buffer, and how many the shard's ring holds.
    /// When every buffer is in use, reads pause (and re-arm) instead of failing.
    pub recv_buffer_bytes: usize,
    pub recv_buffers: u16,
    /// io_uring: submission queue entries (completion queue is 4x).
    pub ring_entries: u32,
    /// io_uring: how long a sleeping turn gathers completions before it wakes (microseconds;
    /// 0: it wakes on the first one). Under load this turns one wake-up per completion into
    /// one per window; an idle ring still wakes on its first completion once the window has
    /// passed, so a quiet shard adds no latency. Needs the kernel's min-timeout wait (Linux
    /// 6.12+, `IORING_FEAT_MIN_TIMEOUT`); without it, and on the poll backend, it is ignored.
    pub batch_wait_us: u32,
    /// io_uring: a `write_file` without a sync, on a file with no ring write in flight, is a
    /// `pwrite` on the shard's thread (into the page cache, microseconds) instead of a ring
    /// op, which the kernel hands to an io-wq worker thread for buffered ext4 files (a thread
    /// wake-up per write). The price: a write that must wait for the page cache (dirty
    /// throttling) stalls the shard meanwhile, as on the poll backend. Writes with a sync
    /// always go through the ring.
    pub inline_file_writes: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output_bytes: 1 << 20,
            max_events_per_turn: 4096,
            linger_ms: 2_000,
            recv_buffer_bytes: 4096,
            recv_buffers: 1024,
            ring_entries: 4096,
            batch_wait_us: 0,
            inline_file_writes: false,
        }
    }
}

/// Wakes one driver from any thread. Cheap to clone.
#[derive(Clone)]
pub struct WakeHandle(Arc<dyn Wake>);

/// What a backend does to interrupt its own wait.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

impl WakeHandle {
    pub fn new(inner: Arc<dyn Wake>) -> WakeHandle {
        WakeHandle(inner)
    }

    pub fn wake(&self) {
        self.0.wake()
    }
}

impl std::fmt::Debug for WakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakeHandle")
    }
}

/// Turns Nagle off on a socket being adopted. A Unix stream socket (one end of the HTTP
/// server's relay, which `adopt` accepts) has no Nagle: `EOPNOTSUPP` is fine for it; any
/// other socket that refuses (a datagram socket, not a socket at all) is an error.
pub(crate) fn nodelay_for_adopt(fd: &impl std::os::fd::AsFd) -> io::Result<()> {
    let sock = socket2::SockRef::from(fd);
    match sock.set_nodelay(true) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            if sock.r#type()? == socket2::Type::STREAM {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other,
    }
}
