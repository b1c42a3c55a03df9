//! The portable poll backend (mio: epoll on Linux, kqueue on FreeBSD/macOS).
//!
//! It performs the I/O when the socket is ready and reports it as the same completion events
//! as io_uring: reads go into one per-driver scratch buffer (`Limits::recv_buffer_bytes`) and
//! are delivered as `Received` (so an idle conn holds no read buffer here either); writes
//! drain the same two-buffer `OutQueue`, at the end of the turn that queued them and on every
//! writable edge; `mio::Waker` serves `WakeHandle`.
//!
//! Files ([`files`]): `write_file` writes and syncs synchronously; the completion is reported
//! at the start of the next turn, which then does not block.
//!
//! One turn: file completions; linger timeouts; work left from the last turn (conns at their
//! read cap, listeners at their accept cap or due for an EMFILE retry, queued writes); one
//! `poll` (with zero timeout if work is pending); readiness events; queued writes again;
//! deferred events.
//!
//! What it does not do: use io_uring-only limits (`recv_buffers`, `ring_entries`).

mod files;
mod state;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use self::state::{PCore, ReadOutcome, CONNECTING, WRITABLE};
use crate::files::deliver_pending;
use crate::forward::{driver_items, forward_ops};
use crate::key::{OpKey, OpKind};
use crate::lifecycle::{wait_for, Lifecycle, Phase};
use crate::wake::{Coalesced, RawWake};
use crate::{BackendKind, ConnId, Driver, Event, Handler, Limits, ListenerId, TurnStats};

// Tokens carry 64-bit keys (kind, generation, index).
const _: () = assert!(usize::BITS >= 64, "the poll backend needs 64-bit tokens");

/// Accepts per listener per turn before conns get their turn.
const ACCEPTS_PER_TURN: usize = 64;
/// Rounds of "write queued output, deliver Drained" at the end of a turn (handlers may queue
/// more from `Drained`; the rest waits for the next turn).
const FLUSH_ROUNDS: usize = 2;

/// The `mio::Waker` behind a [`WakeHandle`].
pub(crate) struct MioWake(Waker);

impl RawWake for MioWake {
    fn raw_wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// Delivers one event with the driver's ops (a free function so `Received` can borrow the
/// scratch buffer while the handler holds the ops).
fn emit<H: Handler<PollDriver>>(core: &mut PCore, handler: &mut H, event: Event<'_>) {
    handler.on_event(&mut PollOps { core }, event);
}

/// The poll driver of one shard.
pub struct PollDriver {
    core: PCore,
    events: Events,
    scratch: Vec<u8>,
    /// Spare work list (see `take_batch`).
    batch: Vec<ConnId>,
}

impl PollDriver {
    pub fn new(limits: Limits) -> io::Result<PollDriver> {
        if limits.recv_buffer_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "recv_buffer_bytes is 0",
            ));
        }
        let poll = Poll::new()?;
        let token = Token(OpKey::new(OpKind::Wake, 0, 0).encode() as usize);
        let waker = Arc::new(Coalesced::new(MioWake(Waker::new(poll.registry(), token)?)));
        let events = Events::with_capacity(limits.max_events_per_turn.clamp(1, 1024));
        let scratch = vec![0; limits.recv_buffer_bytes];
        Ok(PollDriver {
            core: PCore::new(poll, &limits, waker),
            events,
            scratch,
            batch: Vec::new(),
        })
    }

    fn deliver_deferred<H: Handler<Self>>(&mut self, handler: &mut H) -> u32 {
        let mut n = 0;
        while let Some(d) = self.core.deferred.pop_front() {
            emit(&mut self.core, handler, d.into_event());
            n += 1;
        }
        n
    }

    /// Reads a ready conn up to the per-turn cap.
    fn read_conn<H: Handler<Self>>(&mut self, handler: &mut H, id: ConnId) -> u32 {
        let mut events = 0;
        for _ in 0..state::READS_PER_TURN {
            let n = match self.core.read_once(id, &mut self.scratch) {
                ReadOutcome::Data(n) => n,
                ReadOutcome::Idle | ReadOutcome::Gone => return events,
            };
            let open = self
                .core
                .conns
                .table
                .get(id)
                .is_some_and(|c| c.phase == Phase::Open);
            if open {
                let event = Event::Received {
                    conn: id,
                    data: &self.scratch[..n],
                };
                emit(&mut self.core, handler, event);
                events += 1;
            }
        }
        self.core.queue_read_again(id);
        events
    }

    fn write_conn<H: Handler<Self>>(&mut self, handler: &mut H, id: ConnId) -> u32 {
        if !self.core.write_out(id) {
            return 0;
        }
        emit(&mut self.core, handler, Event::Drained { conn: id });
        1
    }

    fn accept<H: Handler<Self>>(&mut self, handler: &mut H, index: usize) -> u32 {
        let listener = ListenerId(index as u32);
        let mut events = 0;
        self.core.listeners[index].ready_again = false;
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(socket) = self.core.listeners[index].socket.as_ref() else {
                return events;
            };
            let event = match socket.accept() {
                Ok((stream, peer)) => match self.core.accepted(stream) {
                    Ok(conn) => Event::Accepted {
                        listener,
                        conn,
                        peer,
                    },
                    Err(e) => Event::AcceptFailed {
                        listener,
                        errno: state::errno_of(&e),
                    },
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return events,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let errno = state::errno_of(&e);
                    self.core.accept_failed(index, errno);
                    emit(
                        &mut self.core,
                        handler,
                        Event::AcceptFailed { listener, errno },
                    );
                    events += 1;
                    if self.core.listeners[index].retry_at.is_some() {
                        return events;
                    }
                    continue;
                }
            };
            emit(&mut self.core, handler, event);
            events += 1;
        }
        self.core.listeners[index].ready_again = true;
        events
    }

    /// Swaps a work list with the (empty) spare one, so lists keep their capacity across turns
    /// instead of being reallocated.
    fn take_batch(&mut self, which: Which) -> Vec<ConnId> {
        let list = match which {
            Which::ReadAgain => &mut self.core.read_again,
            Which::Dirty => &mut self.core.dirty,
        };
        std::mem::replace(list, std::mem::take(&mut self.batch))
    }

    /// Work that needs no new readiness edge: read caps, accept caps and retries.
    fn run_leftovers<H: Handler<Self>>(&mut self, handler: &mut H, now: Instant) -> u32 {
        let mut events = 0;
        let mut batch = self.take_batch(Which::ReadAgain);
        for &id in &batch {
            self.core.clear_read_again(id);
            events += self.read_conn(handler, id);
        }
        batch.clear();
        self.batch = batch;
        for index in 0..self.core.listeners.len() {
            let l = &mut self.core.listeners[index];
            let retry = l.retry_at.is_some_and(|t| t <= now);
            if retry {
                l.retry_at = None;
            }
            if retry || (l.ready_again && l.retry_at.is_none()) {
                events += self.accept(handler, index);
            }
        }
        events
    }

    /// Writes the output queued since the last flush.
    fn flush<H: Handler<Self>>(&mut self, handler: &mut H) -> u32 {
        let mut events = 0;
        for _ in 0..FLUSH_ROUNDS {
            let mut batch = self.take_batch(Which::Dirty);
            for &id in &batch {
                self.core.clear_dirty(id);
                events += self.write_conn(handler, id);
            }
            let done = batch.is_empty();
            batch.clear();
            self.batch = batch;
            if done {
                break;
            }
        }
        events
    }

    fn on_ready<H: Handler<Self>>(&mut self, handler: &mut H, token: Token, ev: ReadyBits) -> u32 {
        let Some(key) = OpKey::decode(token.0 as u64) else {
            return 0;
        };
        match key.kind {
            OpKind::Wake => {
                self.core.waker.take();
                emit(&mut self.core, handler, Event::Woken);
                1
            }
            OpKind::Accept => {
                let index = key.index as usize;
                let paused = self
                    .core
                    .listeners
                    .get(index)
                    .map_or(true, |l| l.retry_at.is_some());
                if paused {
                    return 0;
                }
                self.accept(handler, index)
            }
            _ => {
                // A stale token (conn closed earlier in this batch) resolves to nothing.
                let Some(id) = self
                    .core
                    .conns
                    .table
                    .id_at(key.index)
                    .filter(|&id| key.is_for(id))
                else {
                    return 0;
                };
                self.on_conn_ready(handler, id, ev)
            }
        }
    }

    fn on_conn_ready<H: Handler<Self>>(
        &mut self,
        handler: &mut H,
        id: ConnId,
        ev: ReadyBits,
    ) -> u32 {
        let mut events = 0;
        let Some(c) = self.core.conns.table.get_mut(id) else {
            return 0;
        };
        if ev.writable {
            c.flags |= WRITABLE;
        }
        if c.flags & CONNECTING != 0 {
            let Some(result) = self.core.finish_connect(id) else {
                return 0;
            };
            let event = Event::Connected { conn: id, result };
            emit(&mut self.core, handler, event);
            events += 1;
            if result.is_err() {
                return events;
            }
        }
        events += self.write_conn(handler, id);
        if ev.readable {
            events += self.read_conn(handler, id);
        }
        events
    }
}

#[derive(Clone, Copy)]
enum Which {
    ReadAgain,
    Dirty,
}

#[derive(Clone, Copy)]
struct ReadyBits {
    readable: bool,
    writable: bool,
}

impl Driver for PollDriver {
    type Ops<'a> = PollOps<'a>;

    // `turn` is the one `Driver` item that differs per backend; `driver_items!` writes the rest.
    fn turn<H: Handler<Self>>(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut H,
    ) -> io::Result<TurnStats> {
        let now = Instant::now();
        // File writes done in `write_file` since the last turn are reported first; if any are,
        // `pending` below keeps this turn from blocking.
        let mut events = deliver_pending(
            &mut self.core,
            |c| &mut c.files,
            |core, event| emit(core, handler, event),
        );
        self.core.expire_lingering(now);
        events += self.run_leftovers(handler, now);
        events += self.flush(handler);
        events += self.deliver_deferred(handler);
        let pending = events > 0 || !self.core.read_again.is_empty() || !self.core.dirty.is_empty();
        let wait = if pending {
            Some(Duration::ZERO)
        } else {
            wait_for(timeout, self.core.next_deadline(), now)
        };
        match self.core.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Taken out so handlers can run while we iterate; `with_capacity(0)` does not allocate.
        let ready = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for e in ready.iter() {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            let writable = e.is_writable() || e.is_write_closed() || e.is_error();
            events += self.on_ready(handler, e.token(), ReadyBits { readable, writable });
        }
        self.events = ready;
        events += self.flush(handler);
        events += self.deliver_deferred(handler);
        Ok(TurnStats {
            events,
            submit_calls: 1,
        })
    }

    driver_items!(PollOps, BackendKind::Poll);
}

/// [`Ops`] of the poll driver: sends are written at the end of the current (or next) turn.
pub struct PollOps<'a> {
    core: &'a mut PCore,
}

forward_ops!(PollOps);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_table::slot_bytes;
    use state::conn_token;

    #[test]
    fn slot_is_small() {
        // 24 bytes in release builds; mio adds a selector id to each socket in debug builds.
        let expected = if cfg!(debug_assertions) { 40 } else { 24 };
        assert!(slot_bytes::<state::PConn>() <= expected);
    }

    #[test]
    fn conn_tokens_differ_from_listener_and_waker_tokens() {
        let conn = ConnId {
            index: 0,
            generation: 0,
        };
        let wake = Token(OpKey::new(OpKind::Wake, 0, 0).encode() as usize);
        let accept = Token(OpKey::new(OpKind::Accept, 0, 0).encode() as usize);
        assert_ne!(conn_token(conn), wake);
        assert_ne!(conn_token(conn), accept);
    }
}
