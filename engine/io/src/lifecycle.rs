//! The conn life cycle both backends share: phases, events made outside a completion, and
//! linger deadlines.
//!
//! ```text
//!            close(Flush) / peer EOF, queue not empty
//!   Open ──────────────────────────────────────────────> Flushing ──┐ drained, error,
//!    │  \                                                           │ Abort or linger_ms
//!    │   \ detach                                                   v
//!    │    └──> Detaching ── drained, ops done ──> Detached    TearingDown ── ops done ──> Closed
//!    └── close(Abort), error, or close(Flush) with an empty queue ──^
//! ```
//!
//! `TearingDown` exists on io_uring only (poll tears down synchronously, straight to `Closed`).
//!
//! Invariants: a conn leaves the table only from `TearingDown` (as `Closed`) or `Detaching`
//! (as `Detached`), and only once no operation of it is in flight; `send` succeeds only in
//! `Open`; every accepted/adopted/connected conn ends with exactly one of the two events.
//!
//! The transitions that are the same on both backends live here, once: [`Conns`] (the conn
//! table with the queue pool and linger deadlines: `send`'s checks, `queued_bytes`, entering
//! `Detaching`) and the provided methods of [`Lifecycle`] (`close`, `begin_flush`, linger
//! expiry), which call the one step that truly differs, the backend's `teardown` (synchronous
//! on poll; cancel, then wait for in-flight operations, on io_uring).
//!
//! What it does not do: any I/O. The backends drive the transitions.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::conn_table::{enqueue, ConnTable, OutQueue, QueuePool, Slotted};
use crate::{CloseReason, ConnId, Event, Limits, Linger, SendError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Open,
    /// Writing out the queue before closing (`Linger::Flush` or peer EOF); reads are discarded.
    Flushing,
    /// Writing out the queue before handing the socket back; reads go to `leftover`.
    Detaching,
    /// Waiting for in-flight operations to finish, then the fd is closed. io_uring only: poll's
    /// `teardown` closes the fd at once (nothing is in flight in the kernel), so on a target
    /// without io_uring the phase does not exist.
    #[cfg(target_os = "linux")]
    TearingDown,
}

/// An event produced while no completion was being handled (for example inside an `Ops` call),
/// delivered by the next `turn`.
#[derive(Debug)]
pub(crate) enum Deferred {
    Closed {
        conn: ConnId,
        reason: CloseReason,
    },
    Detached {
        conn: ConnId,
        socket: OwnedFd,
        leftover: Vec<u8>,
    },
}

impl Deferred {
    pub fn into_event(self) -> Event<'static> {
        match self {
            Deferred::Closed { conn, reason } => Event::Closed { conn, reason },
            Deferred::Detached {
                conn,
                socket,
                leftover,
            } => Event::Detached {
                conn,
                socket,
                leftover,
            },
        }
    }
}

pub(crate) type DeferredQueue = VecDeque<Deferred>;

/// Deadlines of conns in `Flushing` or `Detaching`. Few conns linger at once, so a Vec scanned
/// once per turn is cheaper than a timer structure. Entries are not removed when a conn
/// finishes early; `expired` just returns them and the backend ignores conns no longer waiting.
#[derive(Default)]
pub(crate) struct Lingering {
    entries: Vec<(Instant, ConnId)>,
}

impl Lingering {
    pub fn add(&mut self, now: Instant, linger_ms: u64, conn: ConnId) {
        self.entries
            .push((now + Duration::from_millis(linger_ms), conn));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.0).min()
    }

    /// Removes and returns the conns whose deadline passed.
    pub fn expired(&mut self, now: Instant, out: &mut Vec<ConnId>) {
        self.entries.retain(|&(deadline, conn)| {
            if deadline <= now {
                out.push(conn);
                return false;
            }
            true
        });
    }
}

/// The fields of a conn slot the shared transitions read and write. Both backends' slots have
/// them under the same names and implement this with [`slot_state!`].
pub(crate) trait SlotState: Slotted {
    fn phase(&self) -> Phase;
    fn set_phase(&mut self, phase: Phase);
    /// Why the conn will close (reported by `Closed` once it is torn down).
    fn set_reason(&mut self, reason: CloseReason);
    fn out(&self) -> Option<&OutQueue>;
    fn out_mut(&mut self) -> &mut Option<Box<OutQueue>>;

    fn queue_empty(&self) -> bool {
        self.out().map_or(true, OutQueue::is_empty)
    }
}

/// A [`CloseReason`] in 4 bytes, not 8, for the conn slots (with the slot's generation it
/// fills what would be padding: see `conn_table`). Errnos are non-negative, so the unit
/// variants are negative and `ConnectFailed` sets bit 30; an errno at or past 2^30 (none is)
/// would read back as 2^30 - 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedReason(i32);

impl PackedReason {
    const LOCAL: i32 = -1;
    const PEER_CLOSED: i32 = -2;
    const LINGER_TIMEOUT: i32 = -3;
    const CONNECT: i32 = 1 << 30;

    pub fn new(reason: CloseReason) -> PackedReason {
        let errno = |e: i32| e.clamp(0, Self::CONNECT - 1);
        PackedReason(match reason {
            CloseReason::Local => Self::LOCAL,
            CloseReason::PeerClosed => Self::PEER_CLOSED,
            CloseReason::LingerTimeout => Self::LINGER_TIMEOUT,
            CloseReason::Error(e) => errno(e),
            CloseReason::ConnectFailed(e) => errno(e) | Self::CONNECT,
        })
    }

    pub fn get(self) -> CloseReason {
        match self.0 {
            Self::LOCAL => CloseReason::Local,
            Self::PEER_CLOSED => CloseReason::PeerClosed,
            Self::LINGER_TIMEOUT => CloseReason::LingerTimeout,
            n if n & Self::CONNECT != 0 => CloseReason::ConnectFailed(n & !Self::CONNECT),
            n => CloseReason::Error(n),
        }
    }
}

/// Implements [`SlotState`] and [`Slotted`] for a slot struct with `phase`, `reason` (a
/// [`PackedReason`]), `out` and `generation` fields. A macro
/// rather than one embedded struct: nesting the three fields would add padding and grow the
/// io_uring slot past its size budget (see `conn_table`).
macro_rules! slot_state {
    ($slot:ty) => {
        impl $crate::lifecycle::SlotState for $slot {
            fn phase(&self) -> $crate::lifecycle::Phase {
                self.phase
            }

            fn set_phase(&mut self, phase: $crate::lifecycle::Phase) {
                self.phase = phase;
            }

            fn set_reason(&mut self, reason: $crate::CloseReason) {
                self.reason = $crate::lifecycle::PackedReason::new(reason);
            }

            fn out(&self) -> Option<&$crate::conn_table::OutQueue> {
                self.out.as_deref()
            }

            fn out_mut(&mut self) -> &mut Option<Box<$crate::conn_table::OutQueue>> {
                &mut self.out
            }
        }

        impl $crate::conn_table::Slotted for $slot {
            fn generation(&self) -> u32 {
                self.generation
            }

            fn set_generation(&mut self, generation: u32) {
                self.generation = generation;
            }
        }
    };
}
pub(crate) use slot_state;

/// The conns of one driver with the per-driver state their shared transitions use.
pub(crate) struct Conns<S> {
    pub table: ConnTable<S>,
    pub pool: QueuePool,
    lingering: Lingering,
    /// Spare list for [`Lifecycle::expire_lingering`], kept so a turn does not allocate.
    expired: Vec<ConnId>,
    max_output_bytes: usize,
    linger_ms: u64,
}

impl<S: SlotState> Conns<S> {
    pub fn new(limits: &Limits) -> Conns<S> {
        Conns {
            table: ConnTable::new(),
            pool: QueuePool::default(),
            lingering: Lingering::default(),
            expired: Vec::new(),
            max_output_bytes: limits.max_output_bytes,
            linger_ms: limits.linger_ms,
        }
    }

    /// Conns in the table (open, closing or detaching).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn queued_bytes(&self, id: ConnId) -> usize {
        self.table
            .get(id)
            .and_then(S::out)
            .map_or(0, OutQueue::queued)
    }

    /// `send` up to the write: only an open conn takes bytes, and only within
    /// `max_output_bytes` (nothing is queued on error). Returns the slot when bytes were
    /// queued, for the backend to start writing; `None` for an empty `bytes`.
    pub fn enqueue(&mut self, id: ConnId, bytes: &[u8]) -> Result<Option<&mut S>, SendError> {
        let Some(c) = self.table.get_mut(id) else {
            return Err(SendError::Stale);
        };
        if c.phase() != Phase::Open {
            return Err(SendError::Stale);
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        enqueue(c.out_mut(), &mut self.pool, bytes, self.max_output_bytes)?;
        Ok(Some(c))
    }

    /// `detach` of an open conn: enters `Detaching` and returns the slot for the backend to
    /// stop reading and flush; `None` (nothing done) for a stale id or a conn not open.
    pub fn begin_detach(&mut self, id: ConnId) -> Option<&mut S> {
        let c = self.table.get_mut(id)?;
        if c.phase() != Phase::Open {
            return None;
        }
        c.set_phase(Phase::Detaching);
        Some(c)
    }

    /// Starts `id`'s `linger_ms` clock (it is flushing or detaching).
    pub fn linger(&mut self, id: ConnId) {
        self.lingering.add(Instant::now(), self.linger_ms, id);
    }

    /// The earlier of the next linger deadline and `other` (the backend's own deadline).
    pub fn next_deadline(&self, other: Option<Instant>) -> Option<Instant> {
        match (other, self.lingering.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A backend's core as the shared transitions see it: its [`Conns`], and `teardown`.
pub(crate) trait Lifecycle {
    type Slot: SlotState;

    fn conns_mut(&mut self) -> &mut Conns<Self::Slot>;

    /// Ends the conn now (dropping unsent bytes); `Closed { reason }` follows, at once on poll,
    /// once its in-flight operations completed on io_uring. A no-op for a stale id.
    fn teardown(&mut self, id: ConnId, reason: CloseReason);

    fn close(&mut self, id: ConnId, linger: Linger) {
        let Some(c) = self.conns_mut().table.get(id) else {
            return;
        };
        match (c.phase(), linger) {
            #[cfg(target_os = "linux")]
            (Phase::TearingDown, _) => {}
            (Phase::Flushing, Linger::Flush) => {}
            (_, Linger::Abort) => self.teardown(id, CloseReason::Local),
            (Phase::Open | Phase::Detaching, Linger::Flush) => {
                self.begin_flush(id, CloseReason::Local)
            }
        }
    }

    /// Writes out the queue, then closes with `reason`; bounded by `linger_ms`.
    fn begin_flush(&mut self, id: ConnId, reason: CloseReason) {
        let Some(c) = self.conns_mut().table.get_mut(id) else {
            return;
        };
        if c.queue_empty() {
            self.teardown(id, reason);
            return;
        }
        c.set_phase(Phase::Flushing);
        c.set_reason(reason);
        self.conns_mut().linger(id);
    }

    /// Tears down the conns still flushing or detaching whose linger deadline passed.
    fn expire_lingering(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.conns_mut().expired);
        self.conns_mut().lingering.expired(now, &mut expired);
        for id in expired.drain(..) {
            let phase = self.conns_mut().table.get(id).map(|c| c.phase());
            if matches!(phase, Some(Phase::Flushing | Phase::Detaching)) {
                self.teardown(id, CloseReason::LingerTimeout);
            }
        }
        self.conns_mut().expired = expired;
    }
}

/// How long a listener waits before accepting again after EMFILE/ENFILE/ENOBUFS/ENOMEM, so a
/// full fd table does not spin the loop.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// True for accept errors that mean "out of resources": retry after [`ACCEPT_BACKOFF`].
pub(crate) fn is_resource_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

/// Shortest of the caller's timeout and an internal deadline.
pub(crate) fn wait_for(
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<Duration> {
    let internal = deadline.map(|d| d.saturating_duration_since(now));
    match (timeout, internal) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_reasons_read_back() {
        let reasons = [
            CloseReason::Local,
            CloseReason::PeerClosed,
            CloseReason::LingerTimeout,
            CloseReason::Error(0),
            CloseReason::Error(104),
            CloseReason::ConnectFailed(0),
            CloseReason::ConnectFailed(111),
        ];
        for reason in reasons {
            assert_eq!(PackedReason::new(reason).get(), reason);
        }
        let huge = PackedReason::new(CloseReason::Error(i32::MAX)).get();
        assert_eq!(huge, CloseReason::Error((1 << 30) - 1));
        assert_eq!(std::mem::size_of::<PackedReason>(), 4);
    }

    #[test]
    fn lingering_expires_in_deadline_order() {
        let now = Instant::now();
        let mut l = Lingering::default();
        let a = ConnId {
            index: 1,
            generation: 0,
        };
        let b = ConnId {
            index: 2,
            generation: 0,
        };
        l.add(now, 10, a);
        l.add(now, 50, b);
        assert_eq!(l.next_deadline(), Some(now + Duration::from_millis(10)));
        let mut out = Vec::new();
        l.expired(now + Duration::from_millis(20), &mut out);
        assert_eq!(out, vec![a]);
        assert_eq!(l.next_deadline(), Some(now + Duration::from_millis(50)));
    }

    #[test]
    fn wait_takes_the_shorter() {
        let now = Instant::now();
        let soon = Some(now + Duration::from_millis(5));
        let ms = Duration::from_millis;
        assert_eq!(wait_for(Some(ms(100)), soon, now), Some(ms(5)));
        assert_eq!(wait_for(None, soon, now), Some(ms(5)));
        assert_eq!(wait_for(Some(ms(1)), soon, now), Some(ms(1)));
        assert_eq!(wait_for(None, None, now), None);
        assert_eq!(wait_for(None, Some(now - ms(1)), now), Some(Duration::ZERO));
    }

    /// A backend without I/O: `teardown` only records the call (and frees the slot).
    struct FakeConn {
        phase: Phase,
        reason: PackedReason,
        out: Option<Box<OutQueue>>,
        generation: u32,
    }
    slot_state!(FakeConn);

    struct FakeCore {
        conns: Conns<FakeConn>,
        torn_down: Vec<(ConnId, CloseReason)>,
    }

    impl Lifecycle for FakeCore {
        type Slot = FakeConn;

        fn conns_mut(&mut self) -> &mut Conns<FakeConn> {
            &mut self.conns
        }

        fn teardown(&mut self, id: ConnId, reason: CloseReason) {
            if self.conns.table.remove(id).is_some() {
                self.torn_down.push((id, reason));
            }
        }
    }

    fn fake(linger_ms: u64) -> (FakeCore, ConnId) {
        let limits = Limits {
            max_output_bytes: 10,
            linger_ms,
            ..Limits::default()
        };
        let mut core = FakeCore {
            conns: Conns::new(&limits),
            torn_down: Vec::new(),
        };
        let id = core.conns.table.insert(FakeConn {
            phase: Phase::Open,
            reason: PackedReason::new(CloseReason::Local),
            out: None,
            generation: 0,
        });
        (core, id)
    }

    #[test]
    fn enqueue_takes_bytes_only_on_open_conns() {
        let (mut core, id) = fake(1_000);
        assert!(core.conns.enqueue(id, b"").unwrap().is_none());
        assert!(core.conns.enqueue(id, b"abc").unwrap().is_some());
        assert_eq!(core.conns.queued_bytes(id), 3);
        let full = core.conns.enqueue(id, &[0; 8]).map(|c| c.is_some());
        assert_eq!(full, Err(SendError::QueueFull));
        assert!(core.conns.begin_detach(id).is_some());
        assert!(core.conns.begin_detach(id).is_none(), "only from Open");
        let late = core.conns.enqueue(id, b"x").map(|c| c.is_some());
        assert_eq!(late, Err(SendError::Stale));
        core.teardown(id, CloseReason::Local);
        assert_eq!(core.conns.queued_bytes(id), 0);
        let stale = core.conns.enqueue(id, b"x").map(|c| c.is_some());
        assert_eq!(stale, Err(SendError::Stale));
    }

    #[test]
    fn close_flush_waits_for_the_queue_and_abort_does_not() {
        let (mut core, idle) = fake(1_000);
        core.close(idle, Linger::Flush);
        assert_eq!(core.torn_down, vec![(idle, CloseReason::Local)]);
        let (mut core, busy) = fake(1_000);
        core.conns.enqueue(busy, b"abc").unwrap();
        core.close(busy, Linger::Flush);
        assert!(core.torn_down.is_empty());
        assert_eq!(
            core.conns.table.get(busy).map(|c| c.phase),
            Some(Phase::Flushing)
        );
        assert!(
            core.conns.next_deadline(None).is_some(),
            "linger clock runs"
        );
        core.close(busy, Linger::Flush);
        assert!(core.torn_down.is_empty(), "a second Flush changes nothing");
        core.close(busy, Linger::Abort);
        assert_eq!(core.torn_down, vec![(busy, CloseReason::Local)]);
    }

    #[test]
    fn expired_linger_tears_down_flushing_conns_once() {
        let (mut core, id) = fake(0);
        core.conns.enqueue(id, b"abc").unwrap();
        core.begin_flush(id, CloseReason::PeerClosed);
        assert_eq!(
            core.conns.table.get(id).map(|c| c.reason.get()),
            Some(CloseReason::PeerClosed)
        );
        let now = Instant::now() + Duration::from_millis(1);
        core.expire_lingering(now);
        core.expire_lingering(now);
        assert_eq!(core.torn_down, vec![(id, CloseReason::LingerTimeout)]);
        assert_eq!(core.conns.next_deadline(None), None);
    }
}
