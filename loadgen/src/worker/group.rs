//! The group scenario's part of a worker: joins, the groups' message schedules, receipts.
//!
//! Joins: a client that comes online joins every group it is a member of (see `fanout`),
//! asking for no history. Its own presence in the room (status 110) ends a join; with status
//! 201 it created the room and submits the instant-room form (XEP-0045 10.1.2) at once. A
//! room that is still locked (or not yet there) answers `item-not-found`: the join is retried
//! every [`JOIN_RETRY_NS`] until `--setup-ms` after the client came online; other errors end
//! the join and are counted by condition. A client settles when every join ended (or the
//! setup time passed: the joins still pending count as `timeout`).
//!
//! Messages: each group's open-loop schedule (`--rate` per group) runs in the worker that
//! runs the group's first member; message `seq` goes out from the next of the group's
//! members this worker runs that is online and joined (rotating). Every member, the sender
//! included (a room reflects), should receive it: receipt `seq * S + member` of row `group`.
//!
//! What it does not do: configure rooms beyond the instant form, or rejoin after a failure.
//! Invariants: `GroupSlot::joined` holds each group at most once; `pending` counts the joins
//! neither done nor failed; retries are queued in due order (constant delay).

use std::cmp::Reverse;
use std::collections::VecDeque;

use rookery_io::Ops;

use super::slot::{Note, SlotState};
use super::{RunPhase, TimerKind, Worker, SEND_RETRY_NS};
use crate::fanout::{Groups, JoinError};
use crate::metrics::Metric;
use crate::schedule::MessageSchedule;
use crate::sys::monotonic_ns;
use crate::wire::Probe;

/// Wait before joining a locked room again.
pub const JOIN_RETRY_NS: u64 = 200_000_000;

#[derive(Debug, Default)]
pub(super) struct GroupSlot {
    joined: Vec<u32>,
    pending: u32,
    /// Joins refused as `item-not-found` are retried until then.
    deadline_ns: u64,
}

/// A group whose schedule this worker runs.
#[derive(Debug)]
pub(super) struct OwnedGroup {
    group: u32,
    /// This worker's slots that are members of the group.
    members: Box<[u32]>,
    cursor: usize,
    seq: u32,
    next_due_ns: u64,
}

/// The group scenario's state in one worker.
#[derive(Debug)]
pub(super) struct GroupState {
    groups: Groups,
    setup_ns: u64,
    schedule: MessageSchedule,
    slots: Vec<GroupSlot>,
    owned: Vec<OwnedGroup>,
    /// (due ns, slot, its connect attempt, group) of joins to try again.
    retries: VecDeque<(u64, u32, u16, u32)>,
}

impl GroupState {
    /// `local(client)` is the slot of a client this worker runs.
    pub(super) fn new(
        groups: Groups,
        setup_ms: u64,
        schedule: MessageSchedule,
        slots: usize,
        local: impl Fn(u32) -> Option<usize>,
    ) -> Self {
        let owned = (0..groups.groups)
            .filter(|&g| local(groups.member(g, 0)).is_some())
            .map(|g| OwnedGroup {
                group: g,
                members: (0..groups.members)
                    .filter_map(|m| local(groups.member(g, m)).map(|s| s as u32))
                    .collect(),
                cursor: 0,
                seq: 0,
                next_due_ns: 0,
            })
            .collect();
        GroupState {
            groups,
            setup_ns: setup_ms * 1_000_000,
            schedule,
            slots: (0..slots).map(|_| GroupSlot::default()).collect(),
            owned,
            retries: VecDeque::new(),
        }
    }

    /// `(group, messages sent)` of every group this worker ran.
    pub(super) fn sent(&self) -> Vec<(u32, u32)> {
        self.owned.iter().map(|o| (o.group, o.seq)).collect()
    }

    /// The groups slot `i` joined (for leaving at the end).
    pub(super) fn joined(&self, i: usize) -> &[u32] {
        &self.slots[i].joined
    }
}

impl Worker<'_> {
    /// A group client came online: it joins all its groups.
    pub(super) fn group_online<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let index = self.slots[i].index;
        let names = self.names();
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let (groups, setup_ns) = (g.groups, g.setup_ns);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let mut count = 0;
        for group in groups.groups_of(index) {
            names.write_join(&mut out, group, index);
            count += 1;
        }
        g.slots[i] = GroupSlot {
            joined: Vec::with_capacity(count as usize),
            pending: count,
            deadline_ns: now + setup_ns,
        };
        let slot = &mut self.slots[i];
        slot.client.wrote_stanzas(count);
        if let Some(conn) = slot.conn {
            let _ = io.send(conn, &out);
        }
        self.out = out;
        if count == 0 {
            return self.settle(i);
        }
        let timer = (
            now + setup_ns,
            i as u32,
            slot.attempt,
            TimerKind::SetupTimeout,
        );
        self.timers.push(Reverse(timer));
    }

    pub(super) fn on_group_note<O: Ops>(&mut self, io: &mut O, i: usize, note: Note, now: u64) {
        match note {
            Note::Joined { group, created } => self.on_joined(io, i, group, created),
            Note::JoinFailed { group, error } => self.on_join_failed(i, group, error, now),
            Note::RoomConfigured { ok: true } => self.report.fan.rooms_configured += 1,
            Note::RoomConfigured { ok: false } => self.report.fan.room_config_errors += 1,
            Note::GroupProbe { group, probe } => self.on_group_probe(i, group, probe, now),
            _ => {}
        }
    }

    fn on_joined<O: Ops>(&mut self, io: &mut O, i: usize, group: u32, created: bool) {
        let index = self.slots[i].index;
        let names = self.names();
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let slot = &mut g.slots[i];
        if g.groups.position(group, index).is_none() || slot.joined.contains(&group) {
            return; // not ours, or a presence update of a join already done
        }
        slot.joined.push(group);
        slot.pending = slot.pending.saturating_sub(1);
        let done = slot.pending == 0;
        self.report.fan.joins += 1;
        if created {
            self.report.fan.rooms_created += 1;
            self.out.clear();
            names.write_instant_room(&mut self.out, group);
            let slot = &mut self.slots[i];
            slot.client.wrote_stanzas(1);
            if let Some(conn) = slot.conn {
                let _ = io.send(conn, &self.out);
            }
        }
        if done {
            self.settle(i);
        }
    }

    fn on_join_failed(&mut self, i: usize, group: u32, error: JoinError, now: u64) {
        let (index, attempt) = (self.slots[i].index, self.slots[i].attempt);
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let slot = &mut g.slots[i];
        if g.groups.position(group, index).is_none() || slot.joined.contains(&group) {
            return;
        }
        if error == JoinError::ItemNotFound && now + JOIN_RETRY_NS < slot.deadline_ns {
            g.retries
                .push_back((now + JOIN_RETRY_NS, i as u32, attempt, group));
            self.report.fan.join_retries += 1;
            return;
        }
        if slot.pending == 0 {
            return; // already settled (timed out)
        }
        slot.pending -= 1;
        let done = slot.pending == 0;
        self.report.fan.join_errors[error as usize] += 1;
        if done {
            self.settle(i);
        }
    }

    /// `--setup-ms` passed for slot `i`: its pending joins count as timeouts.
    pub(super) fn group_setup_timeout(&mut self, i: usize) {
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let pending = std::mem::take(&mut g.slots[i].pending);
        if pending > 0 {
            self.report.fan.join_errors[JoinError::Timeout as usize] += u64::from(pending);
            self.settle(i);
        }
    }

    /// Retries the joins that are due; returns when the next one is.
    pub(super) fn group_turn<O: Ops>(&mut self, io: &mut O, now: u64) -> Option<u64> {
        let names = self.names();
        loop {
            let g = self.fan.group_mut()?;
            let &(due, i, attempt, group) = g.retries.front()?;
            if due > now {
                return Some(due);
            }
            g.retries.pop_front();
            let i = i as usize;
            let slot = &mut self.slots[i];
            if slot.attempt != attempt || slot.state != SlotState::Online {
                continue;
            }
            self.out.clear();
            names.write_join(&mut self.out, group, slot.index);
            slot.client.wrote_stanzas(1);
            if let Some(conn) = slot.conn {
                let _ = io.send(conn, &self.out);
            }
        }
    }

    /// The steady phase starts at `start_ns`: every group this worker runs gets its schedule.
    pub(super) fn group_steady(&mut self, start_ns: u64) {
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        for (k, o) in g.owned.iter_mut().enumerate() {
            o.next_due_ns = g.schedule.first_due(start_ns, &mut self.rng);
            self.timers
                .push(Reverse((o.next_due_ns, k as u32, 0, TimerKind::GroupSend)));
        }
    }

    /// Sends every message of owned group `k` that is due, then re-arms its timer.
    pub(super) fn send_group_due<O: Ops>(&mut self, io: &mut O, k: usize, now: u64) {
        let RunPhase::Steady { stop_send_ns, .. } = self.phase else {
            return;
        };
        let names = self.names();
        loop {
            let Some(g) = self.fan.group_mut() else {
                return;
            };
            let o = &mut g.owned[k];
            if o.next_due_ns > now || o.next_due_ns >= stop_send_ns {
                break;
            }
            let group = o.group;
            // The next member (rotating) that is online and joined.
            let sender = (0..o.members.len()).find_map(|_| {
                let j = o.members[o.cursor % o.members.len()] as usize;
                o.cursor = o.cursor.wrapping_add(1);
                let slot = &self.slots[j];
                let ok = slot.state == SlotState::Online && g.slots[j].joined.contains(&group);
                slot.conn.filter(|_| ok).map(|conn| (j, conn))
            });
            let Some((j, conn)) = sender else {
                self.report.skipped_no_peer += 1;
                o.next_due_ns = g.schedule.next_due(o.next_due_ns, &mut self.rng);
                continue;
            };
            let probe = Probe {
                run: self.run_id,
                sender: group,
                seq: o.seq,
                intended_ns: o.next_due_ns,
                actual_ns: monotonic_ns(),
            };
            self.out.clear();
            names.write_groupchat(&mut self.out, group, &probe);
            let retry = (now + SEND_RETRY_NS, k as u32, 0, TimerKind::GroupSend);
            if !self.send_probe(io, conn, j, &probe, retry) {
                return;
            }
            let Some(g) = self.fan.group_mut() else {
                return;
            };
            let o = &mut g.owned[k];
            o.seq += 1;
            o.next_due_ns = g.schedule.next_due(o.next_due_ns, &mut self.rng);
        }
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let due = g.owned[k].next_due_ns;
        if due < stop_send_ns {
            self.timers
                .push(Reverse((due, k as u32, 0, TimerKind::GroupSend)));
        }
    }

    /// A message of `group` reached slot `i`.
    fn on_group_probe(&mut self, i: usize, group: u32, probe: Probe, now: u64) {
        if !self.counts(probe.run) {
            return;
        }
        let me = self.slots[i].index;
        let Some(g) = self.fan.group_mut() else {
            return;
        };
        let s = g.groups.members;
        let receipt = match g.groups.position(probe.sender, me) {
            // The room's JID and the body must name the same group.
            Some(m) if probe.sender == group => {
                probe.seq.checked_mul(s).and_then(|q| q.checked_add(m))
            }
            _ => None,
        };
        self.record_fan_receipt(&probe, me, receipt, Metric::GroupDelivery, now);
    }
}

#[cfg(test)]
mod tests;
