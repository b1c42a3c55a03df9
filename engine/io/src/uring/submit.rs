//! Getting SQEs to the kernel without ever dropping one, and waiting for completions.
//!
//! `push` is the single door for SQEs (an `unsafe fn`: its callers vouch for the memory the
//! entry names). When the SQ is full it submits and retries; if the kernel still takes
//! nothing, the entry waits in `backlog` (in order) for the next enter. `enter` does the one
//! `io_uring_enter` of a turn: submit everything, then wait with an EXT_ARG timeout.
//!
//! What it does not do: build entries or handle completions.

use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use io_uring::squeue;
use io_uring::types::{SubmitArgs, Timespec};

use super::state::Core;

/// The 8-byte target of the eventfd read, heap-allocated so the kernel can write it while the
/// driver moves; reached only through a raw pointer.
pub(super) struct WakeBuf(pub NonNull<u64>);

impl WakeBuf {
    pub fn new() -> WakeBuf {
        WakeBuf(NonNull::from(Box::leak(Box::new(0u64))))
    }
}

impl Drop for WakeBuf {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::leak and is freed once; the driver frees it only
        // after reaping the read (or leaks it with mem::forget).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Completions that end a batching window early (see [`Core::enter`]): a burst this large is
/// worth a turn now.
const BATCH_COMPLETIONS: usize = 64;
/// The timeout of an otherwise unbounded batching wait (the kernel's min-timeout wait needs
/// one).
const BATCH_IDLE_CAP: Duration = Duration::from_secs(1);

/// Timeout, signal, CQ overflow backlog, transient kernel memory: not errors of a turn.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

impl Core {
    /// Queues one SQE; never drops it.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid, and the memory it names must stay unmoved (and
    /// unwritten by us if the kernel reads it, unread by us if the kernel writes it) until the
    /// terminal CQE carrying the entry's `user_data` is reaped. An fd it names must stay open
    /// until then.
    pub unsafe fn push(&mut self, entry: squeue::Entry) {
        self.inflight_total += 1;
        if self.backlog.is_empty() {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // SQ full: hand the kernel what is queued, then retry once.
            self.submit_calls += 1;
            // SAFETY: as above.
            if self.ring.submit().is_ok() && unsafe { self.ring.submission().push(&entry) }.is_ok()
            {
                return;
            }
        }
        self.backlog.push_back(entry);
    }

    /// Moves backlogged entries into the SQ, submitting as needed.
    fn drain_backlog(&mut self) -> io::Result<()> {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: the entry was accepted by `push`, whose caller vouched for it.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.backlog.pop_front();
                continue;
            }
            self.submit_calls += 1;
            match self.ring.submit() {
                Ok(n) if n > 0 => {}
                // The kernel takes nothing now (CQ overflow backlog, memory): next turn.
                Ok(_) => return Ok(()),
                Err(e) if is_transient(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Submits everything and waits up to `wait` (none: until one completion) in one
    /// `io_uring_enter` (EXT_ARG timeout, no timeout SQE).
    ///
    /// With `Limits::batch_wait_us` set, a wait longer than that window asks the kernel for
    /// [`BATCH_COMPLETIONS`] completions with a minimum timeout of the window: completions
    /// that arrive inside it are gathered into one wake-up (with DEFER_TASKRUN the task is not
    /// even woken per completion), and once it has passed with none, the first one wakes the
    /// turn as usual. The kernel needs a finite timeout for that: an unbounded wait becomes
    /// [`BATCH_IDLE_CAP`] (an empty turn then, harmless).
    pub fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        self.drain_backlog()?;
        self.submit_calls += 1;
        let batch = self.limits.batch_wait_us;
        let batched = batch > 0 && wait.map_or(true, |w| w > Duration::from_micros(batch.into()));
        let res = match wait {
            _ if batched => {
                let ts = Timespec::from(wait.unwrap_or(BATCH_IDLE_CAP));
                let args = SubmitArgs::new().timespec(&ts).min_wait_usec(batch);
                self.ring
                    .submitter()
                    .submit_with_args(BATCH_COMPLETIONS, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
            Some(wait) => {
                let ts = Timespec::from(wait);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match res {
            Ok(_) => Ok(()),
            // Timeout, signal, CQ overflow backlog, transient kernel memory: not errors of the
            // turn; completions (if any) are reaped next.
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits queued entries now (used by `stop_listening` so listeners close promptly).
    pub fn submit(&mut self) -> io::Result<()> {
        self.drain_backlog()?;
        self.submit_calls += 1;
        self.ring.submit().map(drop)
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Forgets entries the kernel never saw (shutdown only).
    pub fn discard_backlog(&mut self) {
        self.inflight_total -= self.backlog.len();
        self.backlog.clear();
    }
}
