//! The io_uring backend (Linux >= 6.0).
//!
//! One ring per shard, set up with `SINGLE_ISSUER` + `DEFER_TASKRUN` (completions are posted
//! only when this thread enters the kernel, so nothing runs behind our back between turns),
//! falling back to `COOP_TASKRUN`, then to no flags, if the kernel refuses; CQ = 4 x SQ.
//!
//! - Accept: one multishot accept per listener, re-armed when a CQE comes without
//!   `IORING_CQE_F_MORE`; after an error (EMFILE, ...) it is re-armed `ACCEPT_BACKOFF` later.
//! - Recv: one multishot recv per conn on the shared provided-buffer ring ([`bufring`]); the
//!   buffer is returned right after the handler saw it. ENOBUFS ends the multishot; starved
//!   conns are re-armed on the following turns, oldest first, at most one per ring buffer per
//!   turn (re-arming all at once mostly buys another round of ENOBUFS).
//! - Send: one `Send` in flight per conn, from `OutQueue::flight` (see `state` for why its memory
//!   cannot move); partial sends resubmit the rest.
//! - Close: cancel the conn's ops (`AsyncCancel` by user_data), wait for every one of them to
//!   complete, then `close(2)` (dropping the `OwnedFd`; synchronous and cheap for a socket, so
//!   no `IORING_OP_CLOSE` round trip), then `Closed`. Detach is the same without the close.
//! - Files ([`files`]): per registered file one chain in flight, `Write` (continued on short
//!   writes) then `Fsync(DATASYNC)` if asked, then `FileWritten`; later writes queue behind.
//! - Wake: an eventfd read kept armed in the ring. An eventfd and not `IORING_OP_MSG_RING`
//!   because the mailbox layer is backend-agnostic (a `WakeHandle` must not know whether the
//!   target shard runs a ring) and the poll backend needs an fd waker anyway; MSG_RING would
//!   also need the sender to own a ring, which non-shard threads do not.
//! - Waiting: one `io_uring_enter` per turn submits and waits, with the timeout passed as an
//!   EXT_ARG timespec (no timeout SQE to allocate or cancel).
//! - Shutdown (`Drop`): cancel every op, reap until none is in flight, then free memory. If the
//!   kernel does not give everything back in time, the memory is leaked, never freed under it.
//!   A file write in flight is reaped like a socket op (it usually completes rather than
//!   cancels); writes queued behind it are dropped unwritten; no `FileWritten` is delivered.
//!
//! `UringDriver` is `!Send`: the ring is single-issuer and must be used by the thread that
//! created it.

mod bufring;
mod complete;
mod files;
mod reads;
mod sockets;
mod state;
mod submit;

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::CancelBuilder;
use io_uring::{opcode, IoUring, Probe};

use self::bufring::{BufRing, BGID};
use self::complete::{dispatch, is_terminal, Cqe};
use self::state::Core;
use crate::files::deliver_pending;
use crate::forward::{driver_items, forward_ops};
use crate::key::{OpKey, OpKind};
use crate::lifecycle::wait_for;
use crate::sys::EventFd;
use crate::wake::{Coalesced, RawWake};
use crate::{BackendKind, Driver, Handler, Limits, TurnStats};

/// How long `Drop` waits for the kernel to finish cancelled operations.
const SHUTDOWN_REAP: Duration = Duration::from_secs(5);

/// The eventfd behind a [`WakeHandle`].
pub(crate) struct EventWake(pub EventFd);

impl RawWake for EventWake {
    fn raw_wake(&self) -> io::Result<()> {
        self.0.add_one()
    }
}

/// The io_uring driver of one shard.
pub struct UringDriver {
    core: Core,
    /// After `core` (which owns the ring): dropped last.
    bufs: BufRing,
    cqes: Vec<Cqe>,
    /// `!Send`: a single-issuer ring belongs to its creating thread.
    _not_send: PhantomData<*const ()>,
}

impl UringDriver {
    /// Builds the ring, the shared buffer ring and the wake eventfd. Errors name the likely
    /// cause and fix (sysctl, seccomp, RLIMIT_MEMLOCK).
    pub fn new(limits: Limits) -> io::Result<UringDriver> {
        let ring = build_ring(limits.ring_entries.max(8))
            .map_err(|e| io::Error::new(e.kind(), crate::probe::explain_setup(&e)))?;
        let waker = Arc::new(Coalesced::new(EventWake(EventFd::new()?)));
        let bufs = BufRing::new(limits.recv_buffers, limits.recv_buffer_bytes)?;
        // SAFETY: `bufs` is dropped after the ring (field order) and `Drop` reaps every op
        // before either is dropped.
        unsafe { bufs.register(&ring) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "registering the provided-buffer ring failed: {e}; needs Linux 5.19+ and \
                     locked memory for {} x {} bytes; lower recv_buffers or use --backend poll",
                    limits.recv_buffers, limits.recv_buffer_bytes
                ),
            )
        })?;
        let cqes = Vec::with_capacity(limits.max_events_per_turn.clamp(1, 4096));
        let mut core = Core::new(ring, limits, waker);
        core.arm_wake();
        Ok(UringDriver {
            core,
            bufs,
            cqes,
            _not_send: PhantomData,
        })
    }

    /// The batching window sleeping turns use (`Limits::batch_wait_us`), or 0 when the kernel
    /// lacks the min-timeout wait and every turn wakes on its first completion.
    pub fn batch_wait_us(&self) -> u32 {
        self.core.limits.batch_wait_us
    }

    /// Send ops pushed to the ring so far: one per conn per turn however many `send`s it was
    /// given (plus one per continuation of a partial send).
    pub fn send_ops(&self) -> u64 {
        self.core.send_ops
    }

    /// Copies up to `max` CQEs out of the CQ (so handlers may push SQEs while we process them).
    fn reap(&mut self, max: usize) -> usize {
        self.cqes.clear();
        self.cqes
            .extend(self.core.ring.completion().take(max).map(Cqe::from));
        self.cqes.len()
    }

    fn deliver_deferred<H: Handler<Self>>(&mut self, handler: &mut H, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(d) = self.core.deferred.pop_front() else {
                break;
            };
            handler.on_event(
                &mut UringOps {
                    core: &mut self.core,
                },
                d.into_event(),
            );
            n += 1;
        }
        n
    }

    /// Cancels every op and reaps until none is in flight; false if the kernel did not finish
    /// in time (the caller must then leak the memory ops may name).
    fn shutdown(&mut self) -> bool {
        let core = &mut self.core;
        core.shutting_down = true;
        core.discard_backlog();
        let key = OpKey::new(OpKind::Control, u32::MAX, 0).encode();
        let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(key);
        // SAFETY: a cancel names no memory or fd of ours.
        unsafe { core.push(entry) };
        let deadline = Instant::now() + SHUTDOWN_REAP;
        while core.inflight_total > 0 && Instant::now() < deadline {
            if let Err(err) = core.enter(Some(Duration::from_millis(50))) {
                tracing::error!(%err, "io_uring_enter failed while draining the ring");
                break;
            }
            for e in core.ring.completion() {
                let done =
                    OpKey::decode(e.user_data()).is_some_and(|k| is_terminal(k.kind, e.flags()));
                core.inflight_total -= usize::from(done);
            }
        }
        if core.inflight_total > 0 || core.backlog_len() > 0 {
            tracing::error!(
                inflight = core.inflight_total,
                "io_uring ops still in flight at shutdown; leaking their memory"
            );
            return false;
        }
        let _ = core.ring.submitter().unregister_buf_ring(BGID);
        true
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        if !self.shutdown() {
            self.core.leak_kernel_memory();
            self.bufs.leak();
        }
    }
}

impl Driver for UringDriver {
    type Ops<'a> = UringOps<'a>;

    // `turn` is the one `Driver` item that differs per backend; `driver_items!` writes the rest.
    fn turn<H: Handler<Self>>(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut H,
    ) -> io::Result<TurnStats> {
        self.core.submit_calls = 0;
        let now = Instant::now();
        self.core.expire(now);
        // File completions made outside a CQE (unknown file) are due at the start of the turn,
        // before the enter, so writes their handler makes are submitted by this turn.
        let early = deliver_pending(
            &mut self.core,
            |c| &mut c.files,
            |core, event| handler.on_event(&mut UringOps { core }, event),
        );
        self.core.start_due_sends();
        let busy = early > 0
            || !self.core.deferred.is_empty()
            || self.core.rearm_pending()
            || !self.core.ring.completion().is_empty();
        let wait = if busy {
            Some(Duration::ZERO)
        } else {
            wait_for(timeout, self.core.next_deadline(), now)
        };
        self.core.enter(wait)?;
        let budget = self.core.limits.max_events_per_turn.max(1);
        let (mut work, mut events) = (early as usize, early);
        while work < budget {
            let n = self.reap(budget - work);
            let UringDriver {
                core, bufs, cqes, ..
            } = self;
            for &cqe in cqes.iter() {
                events += dispatch(core, bufs, handler, cqe);
            }
            let delivered = self.deliver_deferred(handler, budget - work - n);
            events += delivered as u32;
            work += n + delivered;
            if n == 0 && delivered == 0 {
                break;
            }
        }
        Ok(TurnStats {
            events,
            submit_calls: self.core.submit_calls,
        })
    }

    driver_items!(UringOps, BackendKind::Uring);
}

/// [`Ops`] of the io_uring driver: SQEs pushed here are submitted by the next `turn`.
pub struct UringOps<'a> {
    core: &'a mut Core,
}

forward_ops!(UringOps);

/// Builds a ring with the best flags the kernel accepts. Returns the last error if none works
/// (the flag-free attempt's error names the real cause: EPERM, ENOMEM, ENOSYS).
fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq_entries = entries.saturating_mul(4);
    let mut builder = IoUring::builder();
    builder
        .setup_clamp()
        .setup_cqsize(cq_entries)
        .setup_submit_all()
        .setup_single_issuer();
    let mut defer = builder.clone();
    defer.setup_defer_taskrun();
    let mut coop = builder.clone();
    coop.setup_coop_taskrun();
    let mut plain = IoUring::builder();
    plain.setup_clamp().setup_cqsize(cq_entries);
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for b in [defer, coop, plain] {
        match b.build(entries) {
            Ok(ring) => return Ok(ring),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// What made the io_uring probe fail (explained for operators by `probe::explain`).
#[derive(Debug)]
pub(crate) enum ProbeFailure {
    Setup(io::Error),
    Opcode(&'static str),
    BufRing(io::Error),
    Other(io::Error),
}

/// Checks on a small real ring that every opcode the driver submits is supported and that a
/// provided-buffer ring registers.
pub(crate) fn probe_support(limits: &Limits) -> Result<(), ProbeFailure> {
    let ring = build_ring(8).map_err(ProbeFailure::Setup)?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(ProbeFailure::Other)?;
    let used = [
        (opcode::AcceptMulti::CODE, "ACCEPT (multishot)"),
        (opcode::RecvMulti::CODE, "RECV (multishot)"),
        (opcode::Send::CODE, "SEND"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Connect::CODE, "CONNECT"),
        (opcode::Read::CODE, "READ"),
        (opcode::Write::CODE, "WRITE"),
        (opcode::Fsync::CODE, "FSYNC"),
    ];
    if let Some(&(_, name)) = used.iter().find(|(code, _)| !probe.is_supported(*code)) {
        return Err(ProbeFailure::Opcode(name));
    }
    let count = limits.recv_buffers.clamp(1, 8);
    let bufs = BufRing::new(count, limits.recv_buffer_bytes.clamp(1, 4096))
        .map_err(ProbeFailure::Other)?;
    // SAFETY: no op is ever submitted on this ring, so the kernel never touches `bufs`; the
    // ring is dropped before `bufs` below.
    unsafe { bufs.register(&ring) }.map_err(ProbeFailure::BufRing)?;
    let _ = ring.submitter().unregister_buf_ring(BGID);
    drop(ring);
    drop(bufs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_table::slot_bytes;
    use crate::Ops;

    #[test]
    fn slot_is_small() {
        // The per-conn budget: <= 64 bytes per slot (see conn_table's module doc).
        assert_eq!(std::mem::size_of::<state::UConn>(), 32);
        assert_eq!(
            slot_bytes::<state::UConn>(),
            32,
            "the generation is in the conn"
        );
    }

    /// Counts `Connected` events.
    struct Connects(usize);

    impl Handler<UringDriver> for Connects {
        fn on_event(&mut self, _: &mut <UringDriver as Driver>::Ops<'_>, event: crate::Event<'_>) {
            if let crate::Event::Connected { result, .. } = event {
                assert_eq!(result, Ok(()));
                self.0 += 1;
            }
        }
    }

    #[test]
    fn a_connected_conn_keeps_no_extra_box() {
        // A load generator holds a million outgoing conns: the boxed peer address they needed
        // while connecting (~176 bytes of heap) must not stay with them.
        let Ok(mut driver) = UringDriver::new(Limits::default()) else {
            return; // io_uring unavailable here (the conformance tests say why)
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conn = driver.ops().connect(addr, None).unwrap();
        assert!(driver.core.conns.table.get(conn).unwrap().extra.is_some());
        let mut handler = Connects(0);
        let start = Instant::now();
        while handler.0 == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "no Connected");
            driver
                .turn(Some(Duration::from_millis(10)), &mut handler)
                .unwrap();
        }
        assert!(driver.core.conns.table.get(conn).unwrap().extra.is_none());
    }
}
