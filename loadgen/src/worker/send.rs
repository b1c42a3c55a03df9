//! The open-loop message schedule of a worker's clients: the first message of each client at
//! a random phase after the steady start, then one per schedule step, each with its intended
//! send time in the probe, whatever the loop's own delays.
//!
//! The presence scenario's status changes follow the same open-loop schedule per client
//! (`send_status_due`).
//!
//! What it does not do: receive or account (see `events`).

use std::cmp::Reverse;

use rookery_io::{ConnId, Ops};

use super::slot::SlotState;
use super::{RunPhase, TimerKind, Worker, PEER_TRIES, SEND_RETRY_NS};
use crate::client::BIND_RESOURCE;
use crate::fanout::wire::write_status;
use crate::metrics::Metric;
use crate::schedule::MessageSchedule;
use crate::wire::{write_message, Probe, Recipient};

impl Worker<'_> {
    /// Chat: every online client starts its schedule at the steady start.
    pub(super) fn schedule_first_messages(&mut self, start: u64) {
        let Some(schedule) = self.schedule else {
            return;
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state == SlotState::Online {
                slot.next_due_ns = schedule.first_due(start, &mut self.rng);
                self.timers.push(Reverse((
                    slot.next_due_ns,
                    i as u32,
                    slot.attempt,
                    TimerKind::Send,
                )));
            }
        }
    }

    /// Sends every message of slot `i` that is due (catching up if the loop fell behind: the
    /// latency then still counts from each message's intended time), then re-arms its timer.
    pub(super) fn send_due<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let Some(schedule) = self.schedule else {
            return;
        };
        // Chat sends in the steady phase until its end; offline in phase 1 (the ramp), a
        // fixed number of messages.
        let (stop_send_ns, quota) = match (self.offline, self.phase) {
            (None, RunPhase::Steady { stop_send_ns, .. }) => (stop_send_ns, u32::MAX),
            (Some(plan), RunPhase::Ramp) => (u64::MAX, plan.messages),
            _ => return,
        };
        let Some(conn) = self.slots[i].conn else {
            return;
        };
        let resource = if self.offline.is_some() {
            "" // the bare JID: the recipient has no session to address
        } else {
            BIND_RESOURCE
        };
        while self.slots[i].next_due_ns <= now
            && self.slots[i].next_due_ns < stop_send_ns
            && self.slots[i].seq < quota
        {
            let Some(peer) = self.pick_recipient(i) else {
                self.report.skipped_no_peer += 1;
                let slot = &mut self.slots[i];
                slot.next_due_ns = schedule.next_due(slot.next_due_ns, &mut self.rng);
                continue;
            };
            let probe = self.slots[i].due_probe(self.run_id);
            let to = Recipient {
                user_prefix: &self.cfg.user_prefix,
                number: u64::from(peer) + 1,
                domain: &self.cfg.domain,
                resource,
            };
            self.out.clear();
            write_message(&mut self.out, &to, &probe, self.receipt);
            if !self.send_and_advance(io, conn, i, &probe, now, schedule) {
                return;
            }
        }
        let (due, attempt) = (self.slots[i].next_due_ns, self.slots[i].attempt);
        if self.slots[i].seq >= quota {
            return self.await_acks(i, now);
        }
        if due < stop_send_ns {
            self.timers
                .push(Reverse((due, i as u32, attempt, TimerKind::Send)));
        }
    }

    /// Sends slot `i`'s due message (the stanza in `self.out`, carrying `probe`) as
    /// [`Self::send_probe`] does, a retry after [`SEND_RETRY_NS`] armed; once it went, the
    /// slot moves on to its next message. False when it could not go.
    fn send_and_advance<O: Ops>(
        &mut self,
        io: &mut O,
        conn: ConnId,
        i: usize,
        probe: &Probe,
        now: u64,
        schedule: MessageSchedule,
    ) -> bool {
        let retry = (
            now + SEND_RETRY_NS,
            i as u32,
            self.slots[i].attempt,
            TimerKind::Send,
        );
        if !self.send_probe(io, conn, i, probe, retry) {
            return false;
        }
        let slot = &mut self.slots[i];
        slot.seq += 1;
        slot.next_due_ns = schedule.next_due(slot.next_due_ns, &mut self.rng);
        true
    }

    /// Sends the stanza in `self.out`, carrying `probe`, from slot `i` on `conn`, then what
    /// stream management asks after it (an `<r/>`), and records the send lag. A full output
    /// queue (or a conn going away, then Closed follows) arms `retry` and returns false: the
    /// message stays due with its intended time, so the wait is measured.
    pub(super) fn send_probe<O: Ops>(
        &mut self,
        io: &mut O,
        conn: ConnId,
        i: usize,
        probe: &Probe,
        retry: (u64, u32, u16, TimerKind),
    ) -> bool {
        if io.send(conn, &self.out).is_err() {
            self.report.send_retries += 1;
            self.timers.push(Reverse(retry));
            return false;
        }
        // Only once the stanza is queued, so stream management counts what was sent. A
        // refused `<r/>` (queue full) only delays the ack to the next request.
        self.out.clear();
        self.slots[i]
            .client
            .on_message_sent(probe.intended_ns, &mut self.out);
        if !self.out.is_empty() {
            let _ = io.send(conn, &self.out);
        }
        let lag_us = probe.actual_ns.saturating_sub(probe.intended_ns) / 1000;
        self.recent.record(Metric::SendLag, lag_us);
        self.sent += 1;
        true
    }

    /// Offline: the plan's recipient of slot `i`'s next message; chat: a random online peer.
    fn pick_recipient(&mut self, i: usize) -> Option<u32> {
        let slot = &self.slots[i];
        match self.offline {
            Some(plan) => Some(plan.recipient(slot.index, slot.seq)),
            None => self.pick_peer(slot.index),
        }
    }

    /// A random online client other than `me` (with `--cross-node`, homed on another node).
    fn pick_peer(&mut self, me: u32) -> Option<u32> {
        let clients = u64::from(self.cfg.clients);
        let cross = self.cfg.cross_node;
        let mine = self.targets.home(me);
        let tries = if cross { PEER_TRIES * 4 } else { PEER_TRIES };
        (0..tries)
            .map(|_| self.rng.below(clients) as u32)
            .find(|&p| {
                p != me && self.shared.is_online(p) && !(cross && self.targets.home(p) == mine)
            })
    }

    /// Sends every status change of slot `i` that is due, then re-arms its timer.
    pub(super) fn send_status_due<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let (Some(schedule), RunPhase::Steady { stop_send_ns, .. }) = (self.schedule, self.phase)
        else {
            return;
        };
        let Some(conn) = self.slots[i].conn else {
            return;
        };
        while self.slots[i].next_due_ns <= now && self.slots[i].next_due_ns < stop_send_ns {
            let probe = self.slots[i].due_probe(self.run_id);
            self.out.clear();
            write_status(&mut self.out, &probe);
            if !self.send_and_advance(io, conn, i, &probe, now, schedule) {
                return;
            }
        }
        let slot = &self.slots[i];
        if slot.next_due_ns < stop_send_ns {
            let timer = (slot.next_due_ns, i as u32, slot.attempt, TimerKind::Send);
            self.timers.push(Reverse(timer));
        }
    }
}
