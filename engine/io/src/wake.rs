//! Wake-up coalescing shared by both backends.
//!
//! A [`Coalesced`] waker remembers that a wake is pending, so a burst of wakes from other shards
//! costs one syscall (an eventfd write) until the driver consumes the wake. The driver calls
//! [`Coalesced::take`] when its wake source fires and then delivers `Event::Woken`.
//!
//! Ordering: a waker publishes its mail *before* calling `wake`; `wake` does
//! `pending.swap(true, AcqRel)`; the driver's `take` does `pending.swap(false, AcqRel)`. If a
//! wake skipped its syscall because `pending` was already true, that swap is ordered before
//! the driver's `take` (which reads `true` and acquires it), so the mail written before it is
//! visible once `Woken` is delivered. If the wake came after `take`, it sees `false` and makes
//! the syscall, which fires the wake source again. No wake is lost.
//!
//! What it does not do: decide *when* to wake (the mailbox layer wakes only sleeping shards).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Wake;

/// The backend's raw, always-syscalling wake.
pub(crate) trait RawWake: Send + Sync {
    fn raw_wake(&self) -> io::Result<()>;
}

pub(crate) struct Coalesced<W> {
    pending: AtomicBool,
    inner: W,
}

impl<W: RawWake> Coalesced<W> {
    pub fn new(inner: W) -> Coalesced<W> {
        Coalesced {
            pending: AtomicBool::new(false),
            inner,
        }
    }

    /// Clears the pending flag; true if a wake was pending. Pairs with the swap in `wake`.
    pub fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// The raw wake: the io_uring backend reads its eventfd (mio's waker needs no access).
    #[cfg(any(target_os = "linux", test))]
    pub fn inner(&self) -> &W {
        &self.inner
    }
}

impl<W: RawWake> Wake for Coalesced<W> {
    fn wake(&self) {
        // AcqRel pairs with the swap in `take` (see the module doc).
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(err) = self.inner.raw_wake() {
            // Let the next wake retry the syscall instead of believing one is pending.
            self.pending.store(false, Ordering::Release);
            tracing::warn!(%err, "wake-up syscall failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counter(AtomicUsize);

    impl RawWake for Counter {
        fn raw_wake(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn burst_costs_one_syscall_until_taken() {
        let w = Coalesced::new(Counter(AtomicUsize::new(0)));
        w.wake();
        w.wake();
        w.wake();
        assert_eq!(w.inner().0.load(Ordering::Relaxed), 1);
        assert!(w.take());
        assert!(!w.take());
        w.wake();
        assert_eq!(w.inner().0.load(Ordering::Relaxed), 2);
    }
}
