//! The worker's side of the offline scenario, and of XEP-0198 ack accounting in general.
//!
//! Phase 1 is the worker's ramp: only the sender slots connect; a sender starts its
//! open-loop schedule as soon as it is online, sends `--messages`, then *settles* once the
//! server acknowledged all of them, or `--drain-ms` after its last send ([`TimerKind::AckWait`]),
//! or when it fails. Recipient slots count as settled from the start, so the coordinator's
//! steady start (every client settled) is the moment every sender is done everywhere.
//! Phase 2 is the steady phase: the recipients connect on a fresh ramp at this thread's share
//! of `--connect-rate`; each delivery is timed from the recipient's connect start
//! ([`Metric::OfflineDelivery`]) and checked for its `<delay/>`; the phase ends `--drain-ms`
//! after the last recipient of this thread settled.
//!
//! Ack accounting (here for every scenario): after each read the slot takes the client's
//! count of acknowledged messages; under `--verify` or offline a stream that comes online
//! without stream management aborts the run (the caller then fails with a clear error).
//!
//! What it does not do: choose recipients (see `crate::offline`) or send (see `send`).
//! Invariant: a slot settles at most once (`Slot::settled`); `recipients_left` counts the
//! recipient slots that have not.

use std::cmp::Reverse;

use super::slot::SlotState;
use super::{RunPhase, TimerKind, Worker};
use crate::accounting::Delivery;
use crate::metrics::Metric;
use crate::schedule::Ramp;

impl Worker<'_> {
    /// Counts slot `i` as settled for the phase that waits on it (once, in offline, presence
    /// and group, where a client settles after its own work, then may still fail).
    pub(super) fn settle(&mut self, i: usize) {
        let once = self.offline.is_some() || self.fan.is_some();
        let slot = &mut self.slots[i];
        if once && slot.settled {
            return;
        }
        slot.settled = true;
        let Some(plan) = self.offline else {
            self.settled += 1;
            return;
        };
        if plan.is_sender(slot.index) {
            self.settled += 1;
        } else {
            self.recipients_left -= 1;
        }
    }

    /// Phase 2 starts at `start`: the recipients ramp in; the phase's end is set once they
    /// have all settled (see [`Worker::maybe_end_drain`]).
    pub(super) fn start_recipients(&mut self, start: u64) {
        self.phase = RunPhase::Steady {
            start_ns: start,
            stop_send_ns: start,
            finish_ns: u64::MAX,
        };
        let share = self.cfg.connect_rate / self.cfg.threads as f64;
        self.ramp = Ramp::new(start, share);
        self.ramp_first = self.connect_end;
        self.next_connect = self.next_connect.max(self.connect_end);
        self.connect_end = self.slots.len();
    }

    /// Ends phase 2 `--drain-ms` after every recipient of this thread settled.
    pub(super) fn maybe_end_drain(&mut self, now: u64) {
        if self.recipients_left > 0 || self.next_connect < self.connect_end {
            return;
        }
        if let RunPhase::Steady { finish_ns, .. } = &mut self.phase {
            *finish_ns = now + self.cfg.drain_ms * 1_000_000;
        }
    }

    /// An offline client came online: a sender starts sending now, a recipient has settled.
    pub(super) fn offline_online(&mut self, i: usize, now: u64) {
        let Some(plan) = self.offline else { return };
        let index = self.slots[i].index;
        if !plan.is_sender(index) {
            return self.settle(i);
        }
        let (Some(schedule), RunPhase::Ramp) = (self.schedule, self.phase) else {
            // Phase 1 is over (the ramp bound passed): a late sender sends nothing.
            return self.settle(i);
        };
        let slot = &mut self.slots[i];
        slot.next_due_ns = schedule.first_due(now, &mut self.rng);
        let timer = (slot.next_due_ns, i as u32, slot.attempt, TimerKind::Send);
        self.timers.push(Reverse(timer));
    }

    /// Sender `i` sent its last message: it settles when all are acked, or after the wait.
    pub(super) fn await_acks(&mut self, i: usize, now: u64) {
        let slot = &self.slots[i];
        let due = now + self.cfg.drain_ms * 1_000_000;
        let timer = (due, i as u32, slot.attempt, TimerKind::AckWait);
        self.timers.push(Reverse(timer));
        self.note_acks(i);
    }

    /// Takes in the client's count of acknowledged messages; an offline sender whose every
    /// message is acknowledged settles.
    pub(super) fn note_acks(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.acked = slot.acked.max(slot.ack_base + slot.client.messages_acked());
        let Some(plan) = self.offline else { return };
        let done = slot.seq >= plan.messages && slot.acked >= slot.seq;
        if done && slot.state == SlotState::Online && plan.is_sender(slot.index) {
            self.settle(i);
        }
    }

    /// Under `--verify` (or offline) the run is judged by XEP-0198 acks: a stream without
    /// stream management makes that impossible, so the run stops (see `main`).
    pub(super) fn require_sm(&mut self, i: usize) {
        if self.cfg.counts_acks() && !self.slots[i].client.sm_active() {
            self.report.sm_unavailable += 1;
            self.shared.abort();
        }
    }

    /// A recipient got one of the stored messages (already recorded in the ledger).
    pub(super) fn on_stored_delivery(
        &mut self,
        i: usize,
        delivery: Delivery,
        delayed: bool,
        now: u64,
    ) {
        if delivery == Delivery::Unexpected {
            return;
        }
        self.report.offline_deliveries += 1;
        self.report.last_delivery_ns = self.report.last_delivery_ns.max(now);
        if delivery == Delivery::Duplicate {
            return;
        }
        if !delayed {
            self.report.delay_missing += 1;
        }
        let since_login_us = now.saturating_sub(self.slots[i].started_ns) / 1000;
        self.recent.record(Metric::OfflineDelivery, since_login_us);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::cli::RunConfig;
    use crate::live::Shared;
    use crate::metrics::ErrorKind;
    use crate::run::Part;
    use crate::worker::storm::tests::FakeOps;
    use crate::worker::testing::parsed_config;

    const S_NS: u64 = 1_000_000_000;

    fn config() -> RunConfig {
        let flags = ["--threads", "1", "--messages", "2", "--drain-ms", "1000"];
        parsed_config("offline", "4", &flags, "127.0.0.1:1", "d")
    }

    #[test]
    fn senders_settle_on_acks_then_recipients_ramp_and_drain() {
        let cfg = config();
        let shared = Shared::new(4, 1);
        let mut w = Worker::new(&cfg, &shared, (Part::WHOLE, 0), &[], 0);
        let mut io = FakeOps::default();
        assert_eq!(
            (w.settled, w.recipients_left),
            (2, 2),
            "recipients wait for phase 2"
        );
        w.start_due_connects(&mut io, 10 * S_NS);
        assert_eq!(io.connects, 2, "phase 1 connects the senders only");

        // Sender 0 online: it sends its 2 messages, then waits for acks.
        w.slots[0].state = SlotState::Online;
        w.offline_online(0, 0);
        w.fire_timers(&mut io, S_NS);
        assert_eq!((w.slots[0].seq, w.sent, w.settled), (2, 2, 2));
        w.slots[0].acked = 1;
        w.note_acks(0);
        assert_eq!(w.settled, 2, "one message still unacknowledged");
        w.slots[0].acked = 2;
        w.note_acks(0);
        assert_eq!(w.settled, 3, "every message acknowledged: settled");
        // Sender 1 fails: settled too; the ack wait of sender 0 firing counts nothing again.
        w.slots[1].state = SlotState::Online;
        w.online = 2;
        w.fail(&mut io, 1, ErrorKind::Reset);
        w.fire_timers(&mut io, 5 * S_NS);
        assert_eq!(w.settled, 4);

        // Phase 2: the recipients ramp in from the steady start.
        shared.start_steady(6 * S_NS);
        w.advance_phase(&mut io, 6 * S_NS);
        assert_eq!(w.connect_end, 4);
        w.start_due_connects(&mut io, 6 * S_NS);
        assert_eq!(io.connects, 3, "1000/s: the second recipient is 1 ms later");
        w.start_due_connects(&mut io, 6 * S_NS + 1_000_000);
        assert_eq!(io.connects, 4);
        w.slots[2].state = SlotState::Online;
        w.online += 1;
        w.offline_online(2, 6 * S_NS);
        w.advance_phase(&mut io, 6 * S_NS + 2);
        assert!(
            matches!(
                w.phase,
                RunPhase::Steady {
                    finish_ns: u64::MAX,
                    ..
                }
            ),
            "a recipient is still logging in"
        );
        w.fail(&mut io, 3, ErrorKind::LoginTimeout);
        assert_eq!(w.recipients_left, 0);
        w.advance_phase(&mut io, 7 * S_NS);
        w.advance_phase(&mut io, 8 * S_NS - 1);
        assert!(matches!(w.phase, RunPhase::Steady { .. }), "draining");
        w.advance_phase(&mut io, 8 * S_NS);
        assert!(matches!(w.phase, RunPhase::Closing { .. }), "drained");
        assert_eq!(w.settled, 4, "recipients never count in phase 1's settled");
    }

    #[test]
    fn stored_deliveries_are_timed_from_login_and_checked_for_delay() {
        let cfg = config();
        let shared = Shared::new(4, 1);
        let mut w = Worker::new(&cfg, &shared, (Part::WHOLE, 0), &[], 0);
        w.slots[2].started_ns = S_NS;
        w.on_stored_delivery(2, Delivery::InOrder, true, 3 * S_NS);
        w.on_stored_delivery(2, Delivery::OutOfOrder, false, 4 * S_NS);
        w.on_stored_delivery(2, Delivery::Duplicate, true, 5 * S_NS);
        w.on_stored_delivery(2, Delivery::Unexpected, false, 9 * S_NS);
        assert_eq!(w.report.offline_deliveries, 3);
        assert_eq!(w.report.delay_missing, 1);
        assert_eq!(w.report.last_delivery_ns, 5 * S_NS);
        let h = w.recent.get(Metric::OfflineDelivery);
        assert_eq!(h.len(), 2, "first deliveries only");
        // 2 s and 3 s after the login started, within the histogram's 0.1%.
        assert!(h.equivalent(h.min(), 2_000_000) && h.equivalent(h.max(), 3_000_000));
    }
}
