//! The presence scenario's part of a worker: the setup of the contact ring, the initial
//! presence, and the status changes with their accounting.
//!
//! One client, in order (see [`Step`]):
//! 1. Online without initial presence: asks for its roster (RFC 6121 2.1.3) and notes which
//!    contacts it lists as `to` / `from` / `both`.
//! 2. Setup, when `--setup` wants it (`always`; `auto` when a contact is not `both`): sends
//!    `subscribe` to every contact, then `<presence/>` (servers deliver subscription requests
//!    to available resources only, RFC 6121 3.1.3), and answers every `subscribe` from a
//!    contact with `subscribed`, now and for the rest of the run. A contact is done once it is
//!    both `to` (a `subscribed`, or a roster push) and `from` (a roster push). When all K are,
//!    or `--setup-ms` passed, the client goes `unavailable` again and settles; the contacts it
//!    missed are counted (`setup_incomplete_links`, at each end of a pair).
//! 3. At the steady start (every client settled, in every process) every client sends
//!    `<presence/>`, its initial presence: the server probes its contacts and sends back
//!    those available, and broadcasts it to them. For `--probe-ms` the client counts the
//!    contacts it sees available (`initial_presences`, expected K each).
//! 4. Then it changes status on its open-loop schedule; each change is accounted at every
//!    contact as receipt `seq * K + position` of its sender (see `fanout`), timed from its
//!    intended send time, and its last receipt is timed through `last_receipts`. Changes of
//!    users outside the ring (subscribed by an earlier run of another shape) are counted
//!    apart (`outside_ring`), as are our own, which the server reflects to us.
//!
//! What it does not do: remove subscriptions (the ring persists for the next run), or react
//! to `unavailable` (closing is the end of the run). Invariant: a slot's `bits` hold the
//! setup's `to` and `from` bitmaps (2 x words) during steps Roster and Subscribing, the seen
//! bitmap (words) during Available until the measurement starts, nothing otherwise.

use std::cmp::Reverse;

use rookery_io::Ops;

use super::slot::{Note, SlotState};
use super::{TimerKind, Worker};
use crate::fanout::wire::{AVAILABLE, UNAVAILABLE};
use crate::fanout::{Ring, SetupMode};
use crate::metrics::Metric;
use crate::wire::Probe;

/// Where one client is in the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Not online yet.
    Idle,
    /// Waiting for the roster.
    Roster,
    /// Subscriptions sent, waiting for every contact to be mutual.
    Subscribing,
    /// Setup over; unavailable until the steady start.
    Ready,
    /// Initial presence sent.
    Available,
}

/// Where the whole worker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Setup,
    /// The steady phase is announced: initial presences at `start_ns`, changes from
    /// `measure_ns`.
    Announced {
        start_ns: u64,
        measure_ns: u64,
    },
    Probing {
        measure_ns: u64,
    },
    Measuring,
}

#[derive(Debug)]
pub(super) struct PresenceSlot {
    step: Step,
    bits: Box<[u64]>,
}

/// The presence scenario's state in one worker.
#[derive(Debug)]
pub(super) struct PresenceState {
    ring: Ring,
    setup: SetupMode,
    setup_ns: u64,
    probe_ns: u64,
    /// u64 words of one K-bit bitmap.
    words: usize,
    stage: Stage,
    slots: Vec<PresenceSlot>,
}

impl PresenceState {
    pub(super) fn new(
        ring: Ring,
        setup: SetupMode,
        (setup_ms, probe_ms): (u64, u64),
        slots: usize,
    ) -> Self {
        PresenceState {
            ring,
            setup,
            setup_ns: setup_ms * 1_000_000,
            probe_ns: probe_ms * 1_000_000,
            words: (ring.contacts as usize).div_ceil(64),
            stage: Stage::Setup,
            slots: (0..slots)
                .map(|_| PresenceSlot {
                    step: Step::Idle,
                    bits: Box::default(),
                })
                .collect(),
        }
    }

    pub(super) fn probe_ns(&self) -> u64 {
        self.probe_ns
    }

    /// Whether all `bits` (K of them, from bit 0 of `words[0]`) are set.
    fn all_set(&self, words: &[u64]) -> bool {
        count_ones(words) == u64::from(self.ring.contacts)
    }
}

fn count_ones(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

fn set_bit(words: &mut [u64], pos: u32) {
    if let Some(w) = words.get_mut(pos as usize / 64) {
        *w |= 1u64 << (pos % 64);
    }
}

impl Worker<'_> {
    /// Writes `bytes` (stanzas the client counts for stream management) to slot `i`'s conn.
    fn write_stanzas<O: Ops>(&mut self, io: &mut O, i: usize, bytes: &[u8], stanzas: u32) {
        let slot = &mut self.slots[i];
        let Some(conn) = slot.conn else { return };
        slot.client.wrote_stanzas(stanzas);
        // A full output queue drops this; the setup's bound then ends it (counted there).
        let _ = io.send(conn, bytes);
    }

    /// A presence client came online: ask for the roster; past the setup (the ramp bound
    /// passed before it logged in), skip it and join the others.
    pub(super) fn presence_online<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        match p.stage {
            Stage::Setup => {}
            Stage::Announced { .. } => {
                // Made available with everyone at the steady start.
                p.slots[i].step = Step::Ready;
                return self.settle(i);
            }
            Stage::Probing { .. } | Stage::Measuring => return self.become_available(io, i, now),
        }
        let (words, setup_ns) = (p.words, p.setup_ns);
        p.slots[i] = PresenceSlot {
            step: Step::Roster,
            bits: vec![0; 2 * words].into_boxed_slice(),
        };
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.slots[i].client.request_roster(&mut out);
        if let Some(conn) = self.slots[i].conn {
            let _ = io.send(conn, &out);
        }
        self.out = out;
        let timer = (
            now + setup_ns,
            i as u32,
            self.slots[i].attempt,
            TimerKind::SetupTimeout,
        );
        self.timers.push(Reverse(timer));
    }

    pub(super) fn on_presence_note<O: Ops>(&mut self, io: &mut O, i: usize, note: Note, now: u64) {
        match note {
            Note::RosterItem {
                contact,
                subscription,
            } => self.note_link(i, contact, subscription.to(), subscription.from()),
            Note::RosterLoaded => self.roster_loaded(io, i),
            Note::Subscribe(from) => self.answer_subscribe(io, i, from),
            Note::Subscribed(from) => self.note_link(i, from, true, false),
            Note::Available { from, probe: None } => self.saw_available(i, from, now),
            Note::Available {
                from,
                probe: Some(probe),
            } => self.on_status(i, from, probe, now),
            _ => return,
        }
        self.maybe_setup_done(io, i);
    }

    /// Contact `contact` of slot `i` is `to` and/or `from` (setup steps only).
    fn note_link(&mut self, i: usize, contact: u32, to: bool, from: bool) {
        let me = self.slots[i].index;
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let Some(pos) = p.ring.position(me, contact) else {
            return;
        };
        let words = p.words;
        let slot = &mut p.slots[i];
        if !matches!(slot.step, Step::Roster | Step::Subscribing) {
            return;
        }
        if to {
            set_bit(&mut slot.bits[..words], pos);
        }
        if from {
            set_bit(&mut slot.bits[words..], pos);
        }
    }

    fn roster_loaded<O: Ops>(&mut self, io: &mut O, i: usize) {
        let me = self.slots[i].index;
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let slot = &p.slots[i];
        if slot.step != Step::Roster {
            return;
        }
        let (to, from) = slot.bits.split_at(p.words);
        let complete = p.all_set(to) && p.all_set(from);
        let run_setup = match p.setup {
            SetupMode::Skip => false,
            SetupMode::Auto => !complete,
            SetupMode::Always => true,
        };
        if !run_setup {
            p.slots[i].step = Step::Ready;
            p.slots[i].bits = Box::default();
            self.report.fan.setup_skipped += 1;
            return self.settle(i);
        }
        p.slots[i].step = Step::Subscribing;
        let (ring, names) = (p.ring, self.names());
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        for pos in 0..ring.contacts {
            names.write_subscription(&mut out, ring.contact(me, pos), "subscribe");
        }
        out.extend_from_slice(AVAILABLE);
        self.write_stanzas(io, i, &out, ring.contacts + 1);
        self.out = out;
        self.report.fan.setup_runs += 1;
    }

    /// Every `subscribe` from a contact is approved, whatever the step.
    fn answer_subscribe<O: Ops>(&mut self, io: &mut O, i: usize, from: u32) {
        let me = self.slots[i].index;
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        if p.ring.position(me, from).is_none() {
            return;
        }
        let names = self.names();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        names.write_subscription(&mut out, from, "subscribed");
        self.write_stanzas(io, i, &out, 1);
        self.out = out;
        self.report.fan.subscribes_answered += 1;
    }

    /// Ends slot `i`'s setup once every contact is mutual.
    fn maybe_setup_done<O: Ops>(&mut self, io: &mut O, i: usize) {
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let slot = &p.slots[i];
        let (to, from) = slot.bits.split_at(slot.bits.len().min(p.words));
        if slot.step != Step::Subscribing || !p.all_set(to) || !p.all_set(from) {
            return;
        }
        self.end_setup(io, i);
    }

    /// Slot `i`'s setup is over (done, or out of time): back to unavailable, settled.
    fn end_setup<O: Ops>(&mut self, io: &mut O, i: usize) {
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let (words, contacts) = (p.words, u64::from(p.ring.contacts));
        let slot = &mut p.slots[i];
        let was = slot.step;
        if !matches!(was, Step::Roster | Step::Subscribing) {
            return;
        }
        let mutual: u64 = (0..words)
            .map(|w| u64::from((slot.bits[w] & slot.bits[words + w]).count_ones()))
            .sum();
        slot.step = Step::Ready;
        slot.bits = Box::default();
        self.report.fan.setup_incomplete_links += contacts - mutual;
        if was == Step::Subscribing {
            self.write_stanzas(io, i, UNAVAILABLE, 1);
        }
        self.settle(i);
    }

    /// `--setup-ms` passed for slot `i`: it goes on with the contacts it has.
    pub(super) fn presence_setup_timeout<O: Ops>(&mut self, io: &mut O, i: usize) {
        let step = self.fan.presence_mut().map(|p| p.slots[i].step);
        if matches!(step, Some(Step::Roster | Step::Subscribing)) {
            self.report.fan.setup_timeouts += 1;
            self.end_setup(io, i);
        }
    }

    /// The steady phase is announced: initial presences at `start_ns`, changes from
    /// `measure_ns`.
    pub(super) fn presence_steady(&mut self, start_ns: u64, measure_ns: u64) {
        if let Some(p) = self.fan.presence_mut() {
            p.stage = Stage::Announced {
                start_ns,
                measure_ns,
            };
        }
    }

    /// Moves the stages on at their instants; returns the next instant it needs a turn at.
    pub(super) fn presence_turn<O: Ops>(&mut self, io: &mut O, now: u64) -> Option<u64> {
        let stage = self.fan.presence_mut()?.stage;
        match stage {
            Stage::Setup | Stage::Measuring => None,
            Stage::Announced { start_ns, .. } if now < start_ns => Some(start_ns),
            Stage::Announced { measure_ns, .. } => {
                self.fan.presence_mut()?.stage = Stage::Probing { measure_ns };
                for i in 0..self.slots.len() {
                    if self.slots[i].state == SlotState::Online {
                        self.become_available(io, i, now);
                    }
                }
                Some(measure_ns)
            }
            Stage::Probing { measure_ns } if now < measure_ns => Some(measure_ns),
            Stage::Probing { .. } => {
                self.count_initial_presences();
                None
            }
        }
    }

    /// Sends slot `i`'s initial presence (once) and starts counting the contacts it sees.
    fn become_available<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        // Still in setup at the steady start (the ramp bound passed): cut short, counted.
        self.presence_setup_timeout(io, i);
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        if p.slots[i].step == Step::Available {
            return;
        }
        let (words, stage) = (p.words, p.stage);
        p.slots[i] = PresenceSlot {
            step: Step::Available,
            // Counting ends at the measurement start: a late client counts nothing.
            bits: match stage {
                Stage::Measuring => Box::default(),
                _ => vec![0; words].into_boxed_slice(),
            },
        };
        self.write_stanzas(io, i, AVAILABLE, 1);
        // A client late for the steady start: the announcement armed the others' changes.
        let first_ns = match stage {
            Stage::Probing { measure_ns } => measure_ns,
            Stage::Measuring => now,
            Stage::Setup | Stage::Announced { .. } => return,
        };
        let Some(schedule) = self.schedule else {
            return;
        };
        let slot = &mut self.slots[i];
        if slot.seq > 0 || slot.next_due_ns >= first_ns {
            return; // already on its schedule
        }
        slot.next_due_ns = schedule.first_due(first_ns, &mut self.rng);
        let timer = (slot.next_due_ns, i as u32, slot.attempt, TimerKind::Send);
        self.timers.push(Reverse(timer));
    }

    /// The measurement starts: count the contacts each client saw available.
    fn count_initial_presences(&mut self) {
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let contacts = u64::from(p.ring.contacts);
        let mut seen = 0;
        let mut expected = 0;
        for slot in &mut p.slots {
            if slot.step == Step::Available && !slot.bits.is_empty() {
                seen += count_ones(&slot.bits);
                expected += contacts;
                slot.bits = Box::default();
            }
        }
        p.stage = Stage::Measuring;
        self.report.fan.initial_presences += seen;
        self.report.fan.initial_expected += expected;
    }

    /// An available presence without a status of ours from client `from`.
    fn saw_available(&mut self, i: usize, from: u32, now: u64) {
        let me = self.slots[i].index;
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let Some(pos) = p.ring.position(me, from) else {
            return;
        };
        let measuring = p.stage == Stage::Measuring;
        let slot = &mut p.slots[i];
        if slot.step != Step::Available {
            return; // during the setup: not the initial presence's doing
        }
        if measuring {
            self.report.fan.initial_late += 1;
            return;
        }
        set_bit(&mut slot.bits, pos);
        let since = now.saturating_sub(self.shared.steady_start().unwrap_or(now));
        self.report.fan.initial_last_ms = self.report.fan.initial_last_ms.max(since / 1_000_000);
    }

    /// A status change of client `from` reached slot `i`.
    fn on_status(&mut self, i: usize, from: u32, probe: Probe, now: u64) {
        if !self.counts(probe.run) {
            return;
        }
        let me = self.slots[i].index;
        if from == me {
            return; // our own change, which the server reflects to all our resources
        }
        let Some(p) = self.fan.presence_mut() else {
            return;
        };
        let k = p.ring.contacts;
        let Some(pos) = p.ring.position(from, me) else {
            // Subscribed outside this run's ring (a roster left by a run of another shape):
            // delivered as it should be, but not this run's to account.
            self.report.fan.outside_ring += 1;
            return;
        };
        let receipt = match probe.sender == from {
            // The server stamps the sender: a body naming another is counted as unexpected.
            true => probe.seq.checked_mul(k).and_then(|q| q.checked_add(pos)),
            false => None,
        };
        self.record_fan_receipt(&probe, me, receipt, Metric::PresenceDelivery, now);
    }
}

#[cfg(test)]
mod tests;
