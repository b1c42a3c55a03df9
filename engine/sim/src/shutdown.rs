//! Graceful stops through the real loop: the world sets every shard's stop flag (what the
//! server's signal watcher does), each loop stops listening, writes `system-shutdown` to its
//! streams, flushes and commits, and returns `Finished`; then the server starts again on the
//! same logs.
//!
//! What it checks (`shutdown` violations): every conn the router closed during the stop got
//! its goodbye before the close (`turns::server_closed`); every loop finished drained (no
//! conn open, no log write in flight, nothing appended and unwritten), not by running out of
//! its grace; the stop as a whole ends within `STOP_LIMIT_MS`. That nothing acknowledged was
//! lost is the ledger's end check, as after any restart.
//!
//! What it does not do: faults during a stop (none are injected while it runs), or slow
//! readers (they read at full speed while the server stops, so the goodbyes can go out).
//!
//! Invariants: a stop runs only in the active phase; clients that connect meanwhile are
//! refused (the listener is closed) and retry.

use rookery_io::Driver;

use crate::ledger::Violation;
use crate::world::{Step, World};

/// Longest a graceful stop may take, in virtual time: below the loop's own 3 s grace, so a
/// loop that only ended because its grace ran out is caught by the drained check anyway.
const STOP_LIMIT_MS: u64 = 2_500;

impl World {
    /// Sets every shard's stop flag and turns them now.
    pub(crate) fn begin_stop(&mut self) {
        self.stopping_since_ms = Some(self.now_ms);
        self.shutdowns += 1;
        for shard in 0..self.shards.len() {
            self.shards[shard].shared.request_stop();
            self.wake_shard_at(shard as u16, self.now_ms);
        }
    }

    /// Called after every event while a stop runs: restarts the server once every loop
    /// finished.
    pub(crate) fn advance_shutdown(&mut self) -> Step {
        let Some(since_ms) = self.stopping_since_ms else {
            return Ok(());
        };
        if self.shards.iter().all(|s| s.finished) {
            self.note(|| "GRACEFUL STOP DONE".to_owned());
            self.stopping_since_ms = None;
            self.backlogs_started += self.backlogs_in_incarnation();
            self.compactions += self.compactions_in_incarnation();
            return self.reincarnate();
        }
        if self.now_ms.saturating_sub(since_ms) > STOP_LIMIT_MS {
            let running: Vec<usize> = (0..self.shards.len())
                .filter(|&s| !self.shards[s].finished)
                .collect();
            let detail = format!("shards {running:?} still running {STOP_LIMIT_MS}ms after stop");
            return Err(Violation::new("shutdown", detail));
        }
        Ok(())
    }

    /// A loop returned `Finished`: it must have drained, not run out of its grace.
    pub(crate) fn shard_finished(&mut self, shard: u16) -> Step {
        self.mix(b"finished");
        let s = &mut self.shards[usize::from(shard)];
        s.finished = true;
        let conns = s.looped.driver().open_conns();
        let writing = s.looped.committing();
        let pending = s.router().store().stats().pending_bytes;
        if self.stopping_since_ms.is_none() || conns > 0 || writing || pending > 0 {
            let detail = format!(
                "shard {shard} finished with {conns} conns open, a write in flight: {writing}, \
                 {pending} bytes unwritten (stop requested: {})",
                self.stopping_since_ms.is_some()
            );
            return Err(Violation::new("shutdown", detail));
        }
        Ok(())
    }
}
