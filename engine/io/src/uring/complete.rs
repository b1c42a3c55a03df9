//! Turning CQEs into events: one function per operation kind.
//!
//! Each function first records the completion (`inflight` counts, flags), then delivers at
//! most one event to the handler, then lets the conn progress (`maybe_finish`, re-arm, next
//! send). A provided buffer named by a CQE is always recycled, exactly once, after the handler
//! returned and no slice into it is alive.
//!
//! What it does not do: wait, submit, or deliver deferred events (see `UringDriver::turn`).

use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::cqueue;

use super::bufring::BufRing;
use super::state::{Core, CONNECTING, RECV_ARMED, SEND_INFLIGHT};
use super::{UringDriver, UringOps};
use crate::key::{OpKey, OpKind};
use crate::lifecycle::{Lifecycle, Phase};
use crate::{CloseReason, ConnId, Event, FileId, Handler, ListenerId};

/// A copied CQE (the CQ is released before handlers run, so they can push SQEs).
#[derive(Clone, Copy, Debug)]
pub(super) struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

impl From<cqueue::Entry> for Cqe {
    fn from(e: cqueue::Entry) -> Cqe {
        Cqe {
            user_data: e.user_data(),
            res: e.result(),
            flags: e.flags(),
        }
    }
}

/// Delivers one event with the driver's ops.
fn emit<H: Handler<UringDriver>>(core: &mut Core, handler: &mut H, event: Event<'_>) {
    handler.on_event(&mut UringOps { core }, event);
}

/// True when this CQE ends its operation (multishot ops post many CQEs before the last).
pub(super) fn is_terminal(kind: OpKind, flags: u32) -> bool {
    !matches!(kind, OpKind::Accept | OpKind::Recv) || !cqueue::more(flags)
}

/// Handles one CQE; returns the number of events delivered.
pub(super) fn dispatch<H: Handler<UringDriver>>(
    core: &mut Core,
    bufs: &mut BufRing,
    handler: &mut H,
    cqe: Cqe,
) -> u32 {
    let Some(key) = OpKey::decode(cqe.user_data) else {
        tracing::error!(?cqe, "completion with an unknown user_data");
        return 0;
    };
    if is_terminal(key.kind, cqe.flags) {
        core.inflight_total -= 1;
    }
    match key.kind {
        OpKind::Recv => on_recv(core, bufs, handler, key, cqe),
        OpKind::Send => on_send(core, handler, key, cqe.res),
        OpKind::Accept => on_accept(core, handler, key.index, cqe),
        OpKind::Connect => on_connect(core, handler, key, cqe.res),
        OpKind::Wake => on_wake(core, handler, cqe.res),
        OpKind::Cancel => {
            if let Some(id) = core.conn_for(key) {
                core.op_done(id, 0);
                core.maybe_finish(id);
            }
            0
        }
        OpKind::File => on_file(core, handler, key, cqe.res),
        OpKind::FileRead => on_file_read(core, handler, key, cqe.res),
        OpKind::Control => 0,
    }
}

/// One step of a file's write chain finished; reports the write if it was the last.
fn on_file<H: Handler<UringDriver>>(core: &mut Core, handler: &mut H, key: OpKey, res: i32) -> u32 {
    let Some(done) = core.file_step_done(FileId(key.index), res) else {
        return 0;
    };
    let event = core.files.finish(done);
    emit(core, handler, event);
    1
}

/// One step of a file read finished; reports the read if it was the last.
fn on_file_read<H: Handler<UringDriver>>(
    core: &mut Core,
    handler: &mut H,
    key: OpKey,
    res: i32,
) -> u32 {
    let Some(done) = core.read_step_done(key.index, res) else {
        return 0;
    };
    let event = core.files.finish(done);
    emit(core, handler, event);
    1
}

fn on_recv<H: Handler<UringDriver>>(
    core: &mut Core,
    bufs: &mut BufRing,
    handler: &mut H,
    key: OpKey,
    cqe: Cqe,
) -> u32 {
    let more = cqueue::more(cqe.flags);
    let bid = cqueue::buffer_select(cqe.flags);
    let Some(id) = core.conn_for(key) else {
        if let Some(bid) = bid {
            bufs.recycle(bid);
        }
        return 0;
    };
    if !more {
        core.op_done(id, RECV_ARMED);
    }
    let phase = core
        .conns
        .table
        .get(id)
        .map_or(Phase::TearingDown, |c| c.phase);
    let mut events = 0;
    match (cqe.res, bid) {
        (n, Some(bid)) if n > 0 => {
            // SAFETY: this CQE lent us `bid`; it goes back to the ring only below, after the
            // handler returned and `data` is dead.
            let data = unsafe { bufs.lent(bid, n as usize) };
            match phase {
                Phase::Open => {
                    emit(core, handler, Event::Received { conn: id, data });
                    events = 1;
                }
                Phase::Detaching => {
                    if let Some(leftover) = core.leftover(id) {
                        leftover.extend_from_slice(data);
                    }
                }
                Phase::Flushing | Phase::TearingDown => {} // closing: input is discarded
            }
            bufs.recycle(bid);
            if !more {
                core.rearm_now(id);
            }
        }
        (n, None) if n > 0 => {
            tracing::error!(?cqe, "recv completed without a provided buffer");
            core.teardown(id, CloseReason::Error(libc::EIO));
        }
        (res, bid) => {
            if let Some(bid) = bid {
                bufs.recycle(bid);
            }
            recv_ended(core, id, phase, -res);
        }
    }
    core.maybe_finish(id);
    events
}

/// A recv CQE without data: EOF (errno 0), ring empty, cancelled, or an error.
fn recv_ended(core: &mut Core, id: ConnId, phase: Phase, errno: i32) {
    match errno {
        0 if phase == Phase::Open => core.begin_flush(id, CloseReason::PeerClosed),
        0 => {} // detaching: the new owner reads the EOF; closing: already on its way
        libc::ENOBUFS => core.queue_rearm(id),
        libc::ECANCELED => {}
        errno if phase != Phase::TearingDown => core.teardown(id, CloseReason::Error(errno)),
        _ => {}
    }
}

fn on_send<H: Handler<UringDriver>>(core: &mut Core, handler: &mut H, key: OpKey, res: i32) -> u32 {
    let Some(id) = core.conn_for(key) else {
        return 0;
    };
    core.op_done(id, SEND_INFLIGHT);
    let written = usize::try_from(res).unwrap_or(0);
    if let Some(q) = core.conns.table.get_mut(id).and_then(|c| c.out.as_mut()) {
        q.end_write(written);
    }
    match res {
        n if n > 0 => {}
        // A stream send of a non-empty buffer never returns 0 unless the socket is dead.
        0 => core.teardown(id, CloseReason::Error(libc::EPIPE)),
        e if e == -libc::ECANCELED => {}
        e => core.teardown(id, CloseReason::Error(-e)),
    }
    if !core.after_write(id) {
        return 0;
    }
    emit(core, handler, Event::Drained { conn: id });
    1
}

fn on_connect<H: Handler<UringDriver>>(
    core: &mut Core,
    handler: &mut H,
    key: OpKey,
    res: i32,
) -> u32 {
    let Some(id) = core.conn_for(key) else {
        return 0;
    };
    core.op_done(id, CONNECTING);
    let Some(c) = core.conns.table.get_mut(id) else {
        return 0;
    };
    // The kernel is done reading the peer address. Free the whole box unless it holds
    // leftover bytes: an outgoing conn would otherwise keep ~176 bytes of heap for its life
    // (a load generator holds a million of them); `leftover` re-creates it when needed.
    if c.extra.as_ref().is_some_and(|e| e.leftover.is_empty()) {
        c.extra = None;
    } else if let Some(extra) = c.extra.as_mut() {
        extra.peer = None;
    }
    if c.phase == Phase::TearingDown {
        core.maybe_finish(id); // closed before it connected: no `Connected`
        return 0;
    }
    if res < 0 {
        // Tear down first, so the reason is ConnectFailed even if the handler calls close.
        core.teardown(id, CloseReason::ConnectFailed(-res));
        let event = Event::Connected {
            conn: id,
            result: Err(-res),
        };
        emit(core, handler, event);
        return 1;
    }
    emit(
        core,
        handler,
        Event::Connected {
            conn: id,
            result: Ok(()),
        },
    );
    core.rearm_now(id);
    core.start_send(id);
    core.maybe_finish(id);
    1
}

fn on_accept<H: Handler<UringDriver>>(
    core: &mut Core,
    handler: &mut H,
    index: u32,
    cqe: Cqe,
) -> u32 {
    let more = cqueue::more(cqe.flags);
    let errno = (cqe.res < 0).then_some(-cqe.res);
    let stopping = core.accept_done(index, more, errno);
    let listener = ListenerId(index);
    let event = match errno {
        Some(libc::ECANCELED) => return 0,
        Some(errno) => Event::AcceptFailed { listener, errno },
        None => {
            // SAFETY: a successful accept CQE carries a new fd installed for us; nothing else
            // owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(cqe.res) };
            if stopping {
                return 0; // raced with stop_listening: refuse by closing
            }
            match core.accepted(fd) {
                Ok((conn, peer)) => Event::Accepted {
                    listener,
                    conn,
                    peer,
                },
                Err(err) => {
                    let errno = err.raw_os_error().unwrap_or(libc::EIO);
                    Event::AcceptFailed { listener, errno }
                }
            }
        }
    };
    emit(core, handler, event);
    1
}

fn on_wake<H: Handler<UringDriver>>(core: &mut Core, handler: &mut H, res: i32) -> u32 {
    if core.shutting_down {
        return 0;
    }
    if res < 0 && res != -libc::ECANCELED {
        tracing::warn!(errno = -res, "eventfd read failed; re-armed");
    }
    core.arm_wake();
    core.waker.take();
    emit(core, handler, Event::Woken);
    1
}
