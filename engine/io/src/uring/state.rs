//! The io_uring driver's state (everything except the buffer ring) and the conn state machine.
//!
//! Buffer-lifetime rules of this backend (enforced here, in `submit` and in `sockets`):
//! - Every SQE goes through [`Core::push`], an `unsafe fn` whose callers state why the memory
//!   the entry names outlives the operation. `push` never drops an entry: when the SQ is full it
//!   submits, and if that is not enough it keeps the entry in `backlog` for the next enter.
//! - A send reads `OutQueue::flight`, which stays unmoved and unwritten while the queue is
//!   `writing` (set when the SQE is pushed, cleared when its CQE is reaped).
//! - A connect reads the `SockAddr` boxed in the slot's `Extra` until its CQE is reaped.
//! - A conn's slot (and with it its fd, queue and `Extra`) is freed only when `inflight`, the
//!   count of its operations not yet terminally completed (cancels included), is zero. So the fd
//!   is never closed while an SQE naming it is unsubmitted, and a CQE's slot index always names
//!   the conn that issued it.
//! - A file write reads its buffer and names the file's fd until its CQE (see `files`).
//! - `inflight_total` counts every pushed entry not yet terminally completed, so `Drop` knows
//!   when the kernel is done with all of our memory.
//!
//! The transitions both backends share (`close`, `begin_flush`, linger expiry, `send`'s checks)
//! are in `lifecycle`; this file keeps what io_uring does differently (cancel, then wait for
//! in-flight operations before a conn leaves the table).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use io_uring::types::Fd;
use io_uring::{opcode, squeue, IoUring};
use socket2::SockAddr;

use super::bufring::BGID;
use super::files::Chain;
use super::reads::Reads;
use super::sockets::Listener;
use super::submit::WakeBuf;
use super::EventWake;
use crate::conn_table::{ConnTable, OutQueue};
use crate::files::Files;
use crate::key::{OpKey, OpKind};
use crate::lifecycle::{
    slot_state, Conns, Deferred, DeferredQueue, Lifecycle, PackedReason, Phase, SlotState,
};
use crate::wake::Coalesced;
use crate::{CloseReason, ConnId, Limits, SendError};

/// `UConn::flags` bits.
pub(super) const RECV_ARMED: u8 = 1;
pub(super) const SEND_INFLIGHT: u8 = 2;
pub(super) const CONNECTING: u8 = 4;
pub(super) const REARM_QUEUED: u8 = 8;
/// The conn is on `Core::sends_due`: its send starts at the end of the turn.
pub(super) const SEND_DUE: u8 = 16;

/// One conn slot. Kept small (see the size test): the queue and `Extra` are boxed and exist
/// only while needed.
pub(super) struct UConn {
    pub fd: OwnedFd,
    pub phase: Phase,
    pub flags: u8,
    /// Operations of this conn pushed and not yet terminally completed (at most 6: recv,
    /// send, connect and one cancel each).
    pub inflight: u8,
    pub reason: PackedReason,
    pub out: Option<Box<OutQueue>>,
    pub extra: Option<Box<Extra>>,
    /// Its `ConnTable` slot's generation (see `conn_table::Slotted`).
    generation: u32,
}

/// Rarely needed per-conn state.
#[derive(Default)]
pub(super) struct Extra {
    /// Bytes received while detaching, handed over with `Detached`.
    pub leftover: Vec<u8>,
    /// Target of an in-flight connect (the kernel reads it until the CQE).
    pub peer: Option<SockAddr>,
}

impl UConn {
    pub(super) fn new(fd: OwnedFd) -> UConn {
        UConn {
            fd,
            phase: Phase::Open,
            flags: 0,
            inflight: 0,
            reason: PackedReason::new(CloseReason::Local),
            out: None,
            extra: None,
            generation: 0,
        }
    }
}

slot_state!(UConn);

pub(super) struct Core {
    /// Declared first so it is dropped (ring closed) before any memory ops could name.
    pub ring: IoUring,
    pub(super) backlog: VecDeque<squeue::Entry>,
    pub conns: Conns<UConn>,
    pub listeners: Vec<Listener>,
    /// Registered files; their write buffers are read by the kernel (see `files`).
    pub files: Files<Chain>,
    /// Reads of registered files in flight; the kernel writes their buffers (see `reads`).
    pub(super) reads: Reads,
    pub limits: Limits,
    pub deferred: DeferredQueue,
    /// Conns whose recv ended with ENOBUFS, re-armed oldest first (see `expire`).
    rearm: VecDeque<ConnId>,
    /// Conns given bytes this turn with no send in flight: each gets one send, carrying
    /// everything queued by then, just before the turn's enter (`start_due_sends`).
    sends_due: Vec<ConnId>,
    /// Send ops pushed since the driver started (see `UringDriver::send_ops`).
    pub send_ops: u64,
    pub inflight_total: usize,
    pub submit_calls: u32,
    pub(super) wake_buf: WakeBuf,
    pub waker: Arc<Coalesced<EventWake>>,
    pub shutting_down: bool,
}

impl Core {
    pub fn new(ring: IoUring, mut limits: Limits, waker: Arc<Coalesced<EventWake>>) -> Core {
        if !ring.params().is_feature_min_timeout() {
            // An older kernel: every sleeping turn wakes on its first completion.
            limits.batch_wait_us = 0;
        }
        Core {
            ring,
            backlog: VecDeque::new(),
            conns: Conns::new(&limits),
            listeners: Vec::new(),
            files: Files::new(),
            reads: Reads::default(),
            limits,
            deferred: DeferredQueue::new(),
            rearm: VecDeque::new(),
            sends_due: Vec::new(),
            send_ops: 0,
            inflight_total: 0,
            submit_calls: 0,
            wake_buf: WakeBuf::new(),
            waker,
            shutting_down: false,
        }
    }

    /// Resolves a CQE key to its conn. A mismatch would mean a slot was freed with an op in
    /// flight, which the module invariants exclude; it is logged and the CQE ignored.
    pub fn conn_for(&self, key: OpKey) -> Option<ConnId> {
        let id = self
            .conns
            .table
            .id_at(key.index)
            .filter(|&id| key.is_for(id));
        if id.is_none() {
            tracing::error!(?key, "completion for a conn slot that is gone");
            debug_assert!(false, "completion for a conn slot that is gone: {key:?}");
        }
        id
    }

    /// Marks one terminal completion of `id`'s operations.
    pub fn op_done(&mut self, id: ConnId, flag: u8) {
        if let Some(c) = self.conns.table.get_mut(id) {
            c.flags &= !flag;
            debug_assert!(c.inflight > 0);
            c.inflight = c.inflight.saturating_sub(1);
        }
    }

    pub fn arm_wake(&mut self) {
        let fd = Fd(self.waker.inner().0.raw());
        let key = OpKey::new(OpKind::Wake, 0, 0).encode();
        let entry = opcode::Read::new(fd, self.wake_buf.0.as_ptr().cast(), 8)
            .build()
            .user_data(key);
        // SAFETY: the target is the heap u64 of `wake_buf`, freed only after every op is
        // reaped (Drop), never read by us; the eventfd lives in `waker`, held by Core.
        unsafe { self.push(entry) }
    }

    pub fn arm_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        if c.flags & (RECV_ARMED | CONNECTING) != 0 || c.phase == Phase::TearingDown {
            return;
        }
        c.flags |= RECV_ARMED;
        c.inflight += 1;
        let key = OpKey::for_conn(OpKind::Recv, id).encode();
        let entry = opcode::RecvMulti::new(Fd(c.fd.as_raw_fd()), BGID)
            .build()
            .user_data(key);
        // SAFETY: a multishot recv writes only into buffers of group BGID, owned by the
        // driver's BufRing, which outlives every op (Drop reaps first). The fd stays open until
        // the slot is freed, which waits for this op's terminal CQE (inflight).
        unsafe { self.push(entry) }
    }

    /// Re-arms a recv that ended while the conn still reads (multishot stopped early).
    pub fn rearm_now(&mut self, id: ConnId) {
        if matches!(
            self.conns.table.get(id).map(|c| c.phase),
            Some(Phase::Open | Phase::Flushing)
        ) {
            self.arm_recv(id);
        }
    }

    /// The buffer ring ran dry for this conn (ENOBUFS): re-arm on the next turn, when the
    /// handler has returned the buffers it was given.
    // Shaped like poll's `queue_read_again`, but a different list for a different cause (ENOBUFS).
    pub fn queue_rearm(&mut self, id: ConnId) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        if c.flags & REARM_QUEUED == 0 {
            c.flags |= REARM_QUEUED;
            self.rearm.push_back(id);
        }
    }

    /// Pushes the next send of `id` if none is in flight and bytes are queued.
    pub fn start_send(&mut self, id: ConnId) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        if c.flags & (SEND_INFLIGHT | CONNECTING) != 0 || c.phase == Phase::TearingDown {
            return;
        }
        let fd = Fd(c.fd.as_raw_fd());
        let Some(chunk) = c.out.as_mut().and_then(|q| q.begin_write()) else {
            return;
        };
        // Larger chunks go out as partial sends; the completion resubmits the rest.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let ptr = chunk.as_ptr();
        c.flags |= SEND_INFLIGHT;
        c.inflight += 1;
        self.send_ops += 1;
        let key = OpKey::for_conn(OpKind::Send, id).encode();
        let entry = opcode::Send::new(fd, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(key);
        // SAFETY: `ptr..ptr+len` lies in the queue's `flight` buffer, which OutQueue keeps
        // unmoved and unwritten while `writing` is set, i.e. until `end_write` runs on this
        // send's CQE; the boxed queue and the fd are freed only after inflight drops to 0.
        unsafe { self.push(entry) }
    }

    fn cancel(&mut self, id: ConnId, target: OpKind) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        c.inflight += 1;
        let target = OpKey::for_conn(target, id).encode();
        let key = OpKey::for_conn(OpKind::Cancel, id).encode();
        let entry = opcode::AsyncCancel::new(target).build().user_data(key);
        // SAFETY: a cancel names no memory or fd of ours.
        unsafe { self.push(entry) }
    }

    /// Queues the bytes; the conn's send starts at the end of the turn (one send per conn
    /// per turn, however many stanzas it was given), unless one is in flight already (its
    /// completion sends the rest).
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        if let Some(c) = self.conns.enqueue(id, bytes)? {
            if c.flags & (SEND_INFLIGHT | SEND_DUE) == 0 {
                c.flags |= SEND_DUE;
                self.sends_due.push(id);
            }
        }
        Ok(())
    }

    /// Starts the sends `send` put off (called right before the turn's enter).
    pub fn start_due_sends(&mut self) {
        let mut due = std::mem::take(&mut self.sends_due);
        for id in due.drain(..) {
            if let Some(c) = self.conns.table.get_mut(id) {
                c.flags &= !SEND_DUE;
                self.start_send(id);
            }
        }
        self.sends_due = due;
    }

    pub fn detach(&mut self, id: ConnId) {
        let Some(c) = self.conns.begin_detach(id) else {
            return;
        };
        c.extra.get_or_insert_with(Box::default);
        let recv_armed = c.flags & RECV_ARMED != 0;
        // Unlike poll, even an idle conn waits here (for its recv cancel), so the clock always runs.
        self.conns.linger(id);
        if recv_armed {
            self.cancel(id, OpKind::Recv);
        }
        self.start_send(id);
        self.maybe_finish(id);
    }

    /// Frees the slot and queues `Closed`/`Detached` once the conn is done and idle.
    pub fn maybe_finish(&mut self, id: ConnId) {
        let Some(c) = self.conns.table.get(id) else {
            return;
        };
        let done = c.inflight == 0
            && match c.phase {
                Phase::TearingDown => true,
                Phase::Detaching => c.queue_empty(),
                Phase::Open | Phase::Flushing => false,
            };
        if !done {
            return;
        }
        let Some(c) = self.conns.table.remove(id) else {
            return;
        };
        if let Some(q) = c.out {
            self.conns.pool.give(q); // not writing: inflight is 0
        }
        let event = match c.phase {
            Phase::Detaching => {
                let leftover = c.extra.map(|e| e.leftover).unwrap_or_default();
                Deferred::Detached {
                    conn: id,
                    socket: c.fd,
                    leftover,
                }
            }
            _ => {
                drop(c.fd);
                Deferred::Closed {
                    conn: id,
                    reason: c.reason.get(),
                }
            }
        };
        self.deferred.push_back(event);
    }

    /// After a completed write: continue, or report/act on an empty queue. Returns true when
    /// the queue drained on an open conn (the caller delivers `Drained`).
    pub fn after_write(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.table.get_mut(id) else {
            return false;
        };
        if c.phase == Phase::TearingDown {
            self.maybe_finish(id);
            return false;
        }
        if !c.queue_empty() {
            self.start_send(id);
            return false;
        }
        if let Some(q) = c.out.take() {
            self.conns.pool.give(q);
        }
        match c.phase {
            Phase::Open => true,
            Phase::Flushing => {
                let reason = c.reason.get();
                self.teardown(id, reason);
                false
            }
            _ => {
                self.maybe_finish(id);
                false
            }
        }
    }

    pub fn leftover(&mut self, id: ConnId) -> Option<&mut Vec<u8>> {
        Some(
            &mut self
                .conns
                .table
                .get_mut(id)?
                .extra
                .get_or_insert_with(Box::default)
                .leftover,
        )
    }

    /// Linger timeouts, accept retries and ENOBUFS re-arms due at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.expire_lingering(now);
        for index in 0..self.listeners.len() {
            if self.listeners[index].retry_at.is_some_and(|t| t <= now) {
                self.listeners[index].retry_at = None;
                self.arm_accept(index as u32);
            }
        }
        // At most one conn per ring buffer per turn: re-arming every starved conn at once
        // would mostly produce another round of ENOBUFS (a storm of SQEs and CQEs per turn).
        for _ in 0..usize::from(self.limits.recv_buffers) {
            let Some(id) = self.rearm.pop_front() else {
                break;
            };
            if let Some(c) = self.conns.table.get_mut(id) {
                c.flags &= !REARM_QUEUED;
                self.rearm_now(id);
            }
        }
    }

    /// True when `expire` has re-arms left for the next turn (which must then not block).
    pub fn rearm_pending(&self) -> bool {
        !self.rearm.is_empty()
    }

    /// The earliest linger deadline or accept retry.
    pub fn next_deadline(&self) -> Option<Instant> {
        let accept = self.listeners.iter().filter_map(|l| l.retry_at).min();
        self.conns.next_deadline(accept)
    }

    /// Keeps memory the kernel may still touch allocated forever (failed shutdown only).
    pub fn leak_kernel_memory(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.conns.table, ConnTable::new()));
        std::mem::forget(std::mem::replace(&mut self.wake_buf, WakeBuf::new()));
        std::mem::forget(std::mem::replace(&mut self.files, Files::new()));
        std::mem::forget(std::mem::take(&mut self.reads));
    }
}

impl Lifecycle for Core {
    type Slot = UConn;

    fn conns_mut(&mut self) -> &mut Conns<UConn> {
        &mut self.conns
    }

    /// Stops everything of `id` and closes it once no op is in flight.
    fn teardown(&mut self, id: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.table.get_mut(id) else {
            return;
        };
        if c.phase == Phase::TearingDown {
            return;
        }
        c.phase = Phase::TearingDown;
        c.reason = PackedReason::new(reason);
        if let Some(q) = c.out.as_mut() {
            q.drop_unsent();
        }
        let flags = c.flags;
        for (bit, kind) in [
            (RECV_ARMED, OpKind::Recv),
            (SEND_INFLIGHT, OpKind::Send),
            (CONNECTING, OpKind::Connect),
        ] {
            if flags & bit != 0 {
                self.cancel(id, kind);
            }
        }
        self.maybe_finish(id);
    }
}
