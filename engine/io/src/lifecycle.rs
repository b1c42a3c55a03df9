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
//! Invariants: a conn leaves the table only from `TearingDown` (as `Closed`) or `Detaching`
//! (as `Detached`), and only once no operation of it is in flight; `send` succeeds only in
//! `Open`; every accepted/adopted/connected conn ends with exactly one of the two events.
//!
//! What it does not do: any I/O. The backends drive the transitions.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::{CloseReason, ConnId, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Open,
    /// Writing out the queue before closing (`Linger::Flush` or peer EOF); reads are discarded.
    Flushing,
    /// Writing out the queue before handing the socket back; reads go to `leftover`.
    Detaching,
    /// Waiting for in-flight operations to finish, then the fd is closed.
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
}
