//! The worker's side of driver completions: connect results, bytes from the server (fed to
//! the client state machine, whose events become [`Note`]s), closes.
//!
//! What it does not do: decide when to connect or send (see the parent module's loop).

use std::cmp::Reverse;
use std::net::SocketAddr;

use rookery_io::{CloseReason, ConnId, Event, Linger, Ops};

use super::slot::{Note, SlotState};
use super::{new_client, RunPhase, TimerKind, Worker};
use crate::accounting::Delivery;
use crate::cli::Scenario;
use crate::live::Counter;
use crate::metrics::{ErrorKind, Metric};
use crate::security::TlsOps;
use crate::sys::monotonic_ns;
use crate::targets::MAX_REDIRECTS;
use crate::transport::LayeredEvents;
use crate::wire::{Probe, ReceiptId};

impl Worker<'_> {
    fn slot_of(&self, conn: ConnId) -> Option<usize> {
        let i = *self.conn_slots.get(conn.index as usize)? as usize;
        (self.slots.get(i)?.conn == Some(conn)).then_some(i)
    }

    fn on_connected<O: Ops>(&mut self, io: &mut O, i: usize, result: Result<(), i32>, now: u64) {
        if self.slots[i].state != SlotState::Connecting {
            return;
        }
        if let Err(errno) = result {
            return self.fail(io, i, connect_error_kind(Some(errno)));
        }
        let measured = self.measuring_logins();
        let slot = &mut self.slots[i];
        if measured {
            self.recent
                .record(Metric::Connect, (now - slot.started_ns) / 1000);
        }
        slot.state = SlotState::LoggingIn;
        self.out.clear();
        slot.client.start(&self.cfg.domain, &mut self.out);
        if let Some(conn) = slot.conn {
            let _ = io.send(conn, &self.out);
        }
        let due = now + self.cfg.login_timeout_ms * 1_000_000;
        let attempt = slot.attempt;
        self.timers
            .push(Reverse((due, i as u32, attempt, TimerKind::LoginTimeout)));
    }

    /// Whether connect and login latencies count now: always, except in a storm, where only
    /// the storm's own logins do (the initial ramp is the warm-up).
    fn measuring_logins(&self) -> bool {
        self.cfg.scenario != Scenario::Storm || self.storming
    }

    fn on_received<O: Ops>(&mut self, io: &mut O, i: usize, data: &[u8]) {
        let mut account = self.account(self.slots[i].index);
        let names = self.names();
        let profile = self.profile;
        let slot = &mut self.slots[i];
        let me = slot.index;
        self.out.clear();
        let notes = &mut self.notes;
        slot.client
            .on_data(data, &mut account, profile, &mut self.out, &mut |event| {
                notes.push(Note::from_event(event, &names, me))
            });
        if let (Some(conn), false) = (slot.conn, self.out.is_empty()) {
            let _ = io.send(conn, &self.out);
        }
        let now = monotonic_ns();
        self.note_acks(i);
        let mut notes = std::mem::take(&mut self.notes);
        for note in notes.drain(..) {
            self.on_note(io, i, note, now);
        }
        self.notes = notes;
    }

    fn on_note<O: Ops>(&mut self, io: &mut O, i: usize, note: Note, now: u64) {
        match note {
            Note::StartTls if self.slots[i].state == SlotState::LoggingIn => {
                self.starttls_ready.push(i);
            }
            Note::StartTls => self.fail(io, i, ErrorKind::Protocol),
            Note::Online => self.on_online(io, i, now),
            Note::Probe { probe, delayed } => self.on_probe(i, probe, delayed, now),
            Note::Receipt(receipt) => self.on_receipt(i, receipt, now),
            Note::SmEnabled => self.report.sm_enabled += 1,
            Note::SmFailed => {
                self.report.sm_failed += 1;
                self.require_sm(i);
            }
            Note::SmAcked(intended_ns) => {
                if self.accounting_open {
                    let rtt_us = now.saturating_sub(intended_ns) / 1000;
                    self.recent.record(Metric::SmAck, rtt_us);
                }
            }
            Note::Foreign => self.report.foreign += 1,
            Note::Bounced => self.report.bounced += 1,
            Note::Failed(kind) => self.fail(io, i, kind),
            Note::StreamClosed if self.slots[i].state == SlotState::Closing => {
                if let Some(conn) = self.slots[i].conn {
                    io.close(conn, Linger::Flush);
                }
            }
            Note::StreamClosed => self.fail(io, i, ErrorKind::Closed),
            Note::Redirect(to) => self.redirect(io, i, to, now),
            Note::Ignored => {}
            Note::RosterItem { .. }
            | Note::RosterLoaded
            | Note::Subscribe(_)
            | Note::Subscribed(_)
            | Note::Available { .. } => self.on_presence_note(io, i, note, now),
            Note::Joined { .. }
            | Note::JoinFailed { .. }
            | Note::GroupProbe { .. }
            | Note::RoomConfigured { .. } => self.on_group_note(io, i, note, now),
        }
    }

    pub(super) fn on_online<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        let measured = self.measuring_logins();
        let slot = &mut self.slots[i];
        if slot.state != SlotState::LoggingIn {
            return;
        }
        debug_assert!(slot.client.is_online());
        slot.state = SlotState::Online;
        slot.redirects = 0;
        // A chat storm's reconnect: timed apart from the ramp's logins, and the client
        // rejoins the message schedule below.
        let chat_storm_login = self.storming && self.cfg.scenario != Scenario::Storm;
        let metric = if chat_storm_login {
            Metric::StormLogin
        } else {
            Metric::Login
        };
        if measured {
            self.recent.record(metric, (now - slot.started_ns) / 1000);
        }
        self.shared.set_online(slot.index, true);
        self.online += 1;
        // Published now, not at the next interval: the memory probe pairs it with an RSS read.
        self.shared.threads[self.thread].publish(Counter::Online, self.online);
        self.report.logins += 1;
        self.report.peak_online = self.report.peak_online.max(self.online);
        self.require_sm(i);
        self.arm_keepalive(i, now, true);
        if chat_storm_login {
            self.report.storm_logins += 1;
            self.report.storm_last_login_ns = now;
        } else if self.storming {
            self.settled += 1;
            return self.storm_online(io, i, now);
        }
        if self.offline.is_some() {
            return self.offline_online(i, now);
        }
        match self.cfg.scenario {
            Scenario::Presence => return self.presence_online(io, i, now),
            Scenario::Group => return self.group_online(io, i, now),
            _ => {}
        }
        if !chat_storm_login {
            self.settled += 1;
        }
        let slot = &mut self.slots[i];
        // A client that comes online after the steady phase began joins the schedule now.
        if let (Some(schedule), RunPhase::Steady { stop_send_ns, .. }) = (self.schedule, self.phase)
        {
            slot.next_due_ns = schedule.first_due(now, &mut self.rng);
            if slot.next_due_ns < stop_send_ns {
                self.timers.push(Reverse((
                    slot.next_due_ns,
                    i as u32,
                    slot.attempt,
                    TimerKind::Send,
                )));
            }
        }
    }

    /// See-other-host while logging in: drop this conn and log in again at `to`, as a real
    /// client would (the login latency keeps counting from the first connect). More than
    /// [`MAX_REDIRECTS`] in one login, or an address we cannot use, fails the client.
    fn redirect<O: Ops>(&mut self, io: &mut O, i: usize, to: Option<SocketAddr>, now: u64) {
        if self.slots[i].state != SlotState::LoggingIn {
            tracing::debug!(state = ?self.slots[i].state, "see-other-host outside a login");
            return self.fail(io, i, ErrorKind::StreamError);
        }
        let target = to.and_then(|addr| self.targets.intern(addr));
        let (Some(target), true) = (target, self.slots[i].redirects < MAX_REDIRECTS) else {
            return self.fail(io, i, ErrorKind::RedirectLoop);
        };
        self.report.redirects += 1;
        let slot = &mut self.slots[i];
        if let Some(conn) = slot.conn.take() {
            self.conn_slots[conn.index as usize] = u32::MAX;
            io.close(conn, Linger::Abort);
        }
        slot.redirects += 1;
        slot.target = target;
        slot.client = new_client(self.sm_policy, self.login);
        let started_ns = slot.started_ns;
        self.connect(io, i, now);
        // Still the same login: its latency counts from the first connect.
        self.slots[i].started_ns = started_ns;
    }

    /// Whether a probe or receipt of run `run` is counted: only while accounting is open, and
    /// only this run's; one of an earlier run (stored by the server and delivered at this
    /// login) is counted as stale instead.
    pub(super) fn counts(&mut self, run: u32) -> bool {
        if !self.accounting_open {
            return false;
        }
        if run != self.run_id {
            self.report.stale += 1;
            return false;
        }
        true
    }

    /// A receipt for message `seq` of `receipt.sender`, which must be this slot's client.
    fn on_receipt(&mut self, i: usize, receipt: ReceiptId, now: u64) {
        if !self.counts(receipt.run) {
            return;
        }
        let me = self.slots[i].index;
        if receipt.sender != me {
            // A receipt for someone else's message reached us: misrouted.
            self.report.foreign += 1;
            return;
        }
        // Receipts from different peers may cross: their order means nothing.
        match self.report.receipts.record_unordered(me, receipt.seq) {
            Delivery::InOrder | Delivery::OutOfOrder => {
                let rtt_us = now.saturating_sub(receipt.intended_ns) / 1000;
                self.recent.record(Metric::ReceiptRtt, rtt_us);
            }
            Delivery::Duplicate | Delivery::Unexpected => {}
        }
    }

    fn on_probe(&mut self, i: usize, probe: Probe, delayed: bool, now: u64) {
        if !self.counts(probe.run) {
            return;
        }
        let recipient = self.slots[i].index;
        let delivery = self
            .report
            .ledger
            .record(probe.sender, recipient, probe.seq);
        if self.offline.is_some() {
            return self.on_stored_delivery(i, delivery, delayed, now);
        }
        match delivery {
            Delivery::InOrder | Delivery::OutOfOrder => {
                self.recent.record(
                    Metric::E2eCorrected,
                    now.saturating_sub(probe.intended_ns) / 1000,
                );
                self.recent.record(
                    Metric::E2eUncorrected,
                    now.saturating_sub(probe.actual_ns) / 1000,
                );
            }
            Delivery::Duplicate | Delivery::Unexpected => {}
        }
    }

    fn on_closed(&mut self, i: usize, conn: ConnId, reason: CloseReason) {
        self.conn_slots[conn.index as usize] = u32::MAX;
        let slot = &mut self.slots[i];
        slot.conn = None;
        let kind = match reason {
            CloseReason::ConnectFailed(errno) => connect_error_kind(Some(errno)),
            CloseReason::Error(libc::ECONNRESET) => ErrorKind::Reset,
            _ => ErrorKind::Closed,
        };
        if matches!(
            slot.state,
            SlotState::Connecting | SlotState::LoggingIn | SlotState::Online
        ) {
            // The conn is already gone (and `slot.conn` cleared), so nothing is left to close.
            let open = self.end_with_error(i, kind);
            debug_assert!(open.is_none(), "a closed conn is not closed twice");
        }
        // Release the framer's partial buffer, if any: this conn of the client is over.
        self.slots[i].client = new_client(self.sm_policy, self.login);
    }
}

// Through `transport::LayeredHandler`, so a WebSocket run's bytes are framed below the worker.
impl LayeredEvents for Worker<'_> {
    fn on_layered_event<O: Ops>(&mut self, io: &mut O, event: Event<'_>) {
        // The worker's TLS sits between it and the driver's ops while it handles the event.
        let mut tls = std::mem::take(&mut self.tls);
        let mut ops = TlsOps {
            inner: io,
            tls: &mut tls,
        };
        self.handle(&mut ops, event);
        // Sessions of STARTTLS conns start after the client that asked is done reading.
        for i in std::mem::take(&mut self.starttls_ready) {
            self.start_tls(&mut ops, i);
        }
        self.tls = tls;
    }
}

impl Worker<'_> {
    fn handle<O: Ops>(&mut self, io: &mut TlsOps<'_, O>, event: Event<'_>) {
        match event {
            Event::Connected { conn, result } => {
                if let Some(i) = self.slot_of(conn) {
                    self.on_connected(io, i, result, monotonic_ns());
                }
            }
            Event::Received { conn, data } if io.tls.has(conn) => {
                let Some(i) = self.slot_of(conn) else { return };
                match io.tls.decode(io.inner, conn, data) {
                    Ok(()) => {
                        let plain = std::mem::take(&mut io.tls.plain);
                        if !plain.is_empty() {
                            self.on_received(io, i, &plain);
                        }
                        io.tls.plain = plain;
                        io.tls.plain.clear();
                    }
                    Err(failure) => {
                        tracing::debug!(detail = failure.0, "TLS failed");
                        self.fail(io, i, ErrorKind::Tls);
                    }
                }
            }
            Event::Received { conn, data } => {
                if let Some(i) = self.slot_of(conn) {
                    self.on_received(io, i, data);
                }
            }
            Event::Closed { conn, reason } => {
                io.tls.remove(conn);
                if let Some(i) = self.slot_of(conn) {
                    self.on_closed(i, conn, reason);
                }
            }
            Event::Drained { .. }
            | Event::Accepted { .. }
            | Event::Detached { .. }
            | Event::AcceptFailed { .. }
            | Event::FileWritten { .. }
            | Event::FileRead { .. }
            | Event::Woken => {}
        }
    }

    /// STARTTLS: the server said `<proceed/>` to slot `i`; its conn's TLS session starts and
    /// the client's new stream header goes through it (after the ClientHello).
    fn start_tls<O: Ops>(&mut self, io: &mut TlsOps<'_, O>, i: usize) {
        let Some(conn) = self.slots[i].conn else {
            return;
        };
        if self.slots[i].state != SlotState::LoggingIn || !io.tls.install(conn) {
            return self.fail(io, i, ErrorKind::Tls);
        }
        self.out.clear();
        if self.slots[i]
            .client
            .tls_started(&self.cfg.domain, &mut self.out)
        {
            let _ = io.send(conn, &self.out);
        }
    }
}

/// Maps a connect errno to an error kind.
pub(super) fn connect_error_kind(errno: Option<i32>) -> ErrorKind {
    match errno {
        Some(libc::ECONNREFUSED) => ErrorKind::Refused,
        Some(libc::ETIMEDOUT) => ErrorKind::ConnectTimeout,
        Some(libc::ECONNRESET) => ErrorKind::Reset,
        _ => ErrorKind::ConnectFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RunConfig;
    use crate::live::Shared;
    use crate::run::Part;
    use crate::worker::storm::tests::FakeOps;
    use crate::worker::testing::parsed_config;

    /// One client, one thread, `hold`.
    fn one_client() -> RunConfig {
        parsed_config("hold", "1", &["--threads", "1"], "127.0.0.1:5222", "d")
    }

    /// A worker whose one client connected on `io` (started at 100 ns) and is logging in.
    fn logging_in<'a>(cfg: &'a RunConfig, shared: &'a Shared, io: &mut FakeOps) -> Worker<'a> {
        let mut w = Worker::new(cfg, shared, (Part::WHOLE, 0), &[], 0);
        w.connect(io, 0, 100);
        w.on_connected(io, 0, Ok(()), 200);
        assert_eq!(w.slots[0].state, SlotState::LoggingIn);
        w
    }

    /// A login is sent to three nodes in turn and follows each (a new conn to the named
    /// address, latency kept from the first connect); a fourth redirect is a loop: the client
    /// fails with `redirect_loop`. Every dropped conn is closed.
    #[test]
    fn a_login_follows_up_to_three_redirects_then_fails_as_a_loop() {
        let cfg = one_client();
        let shared = Shared::new(1, 1);
        let mut io = FakeOps::default();
        let mut w = logging_in(&cfg, &shared, &mut io);
        for hop in 1..=3u16 {
            let to = SocketAddr::from(([127, 0, 0, 1], 6000 + hop));
            let before = w.slots[0].conn.unwrap();
            w.on_note(&mut io, 0, Note::Redirect(Some(to)), 1_000 * u64::from(hop));
            assert_eq!(io.closed.last(), Some(&before), "hop {hop}");
            assert_eq!(io.addrs.last(), Some(&to), "hop {hop}");
            assert_eq!(w.slots[0].state, SlotState::Connecting);
            assert_eq!(
                w.slots[0].started_ns, 100,
                "the login's clock keeps running"
            );
            assert!(
                w.slot_of(before).is_none(),
                "the old conn no longer maps to the slot"
            );
            w.on_connected(&mut io, 0, Ok(()), 1_000 * u64::from(hop) + 1);
        }
        assert_eq!(w.report.redirects, 3);
        assert_eq!(io.addrs[0], cfg.server);
        let to = SocketAddr::from(([127, 0, 0, 1], 6001));
        w.on_note(&mut io, 0, Note::Redirect(Some(to)), 9_000);
        assert_eq!(w.slots[0].state, SlotState::Failed);
        assert_eq!(w.report.errors.get(ErrorKind::RedirectLoop), 1);
        assert_eq!(io.connects, 4, "no fifth conn");

        // A value we cannot connect to fails at once, as a loop would.
        let mut w = logging_in(&cfg, &shared, &mut io);
        w.on_note(&mut io, 0, Note::Redirect(None), 300);
        assert_eq!(w.report.errors.get(ErrorKind::RedirectLoop), 1);
        assert_eq!(w.report.redirects, 0);
    }

    /// After a login that was redirected, the client's next login (a storm reconnect) goes
    /// straight to the node it was sent to.
    #[test]
    fn the_redirect_target_is_remembered_for_the_next_login() {
        let cfg = one_client();
        let shared = Shared::new(1, 1);
        let mut io = FakeOps::default();
        let mut w = logging_in(&cfg, &shared, &mut io);
        let home = SocketAddr::from(([127, 0, 0, 2], 5300));
        w.on_note(&mut io, 0, Note::Redirect(Some(home)), 300);
        w.on_connected(&mut io, 0, Ok(()), 400);
        w.connect(&mut io, 0, 600);
        assert_eq!(io.addrs.last(), Some(&home));
    }

    #[test]
    fn an_online_client_sends_a_whitespace_keepalive_every_interval() {
        let cfg = parsed_config(
            "hold",
            "1",
            &["--threads", "1", "--keepalive", "10s"],
            "127.0.0.1:5222",
            "d",
        );
        let shared = Shared::new(1, 1);
        let (mut w, mut io) = crate::worker::testing::all_online(&cfg, &shared);
        w.slots[0].state = SlotState::LoggingIn;
        w.on_online(&mut io, 0, 0);
        io.take(1);
        // The first within the interval, then one every 10 s.
        w.fire_timers(&mut io, 10_000_000_000);
        assert_eq!(io.take(1), " ");
        w.fire_timers(&mut io, 19_999_999_999);
        assert_eq!(io.take(1), "", "not before the next interval");
        w.fire_timers(&mut io, 20_000_000_000);
        assert_eq!(io.take(1), " ");
        assert_eq!(w.report.keepalives, 2);
        // A client that is gone sends none: the timer of its old conn is stale.
        w.slots[0].attempt += 1;
        w.fire_timers(&mut io, 40_000_000_000);
        assert_eq!(io.take(1), "");
    }

    #[test]
    fn connect_errors_are_classified() {
        assert_eq!(
            connect_error_kind(Some(libc::ECONNREFUSED)),
            ErrorKind::Refused
        );
        assert_eq!(
            connect_error_kind(Some(libc::ETIMEDOUT)),
            ErrorKind::ConnectTimeout
        );
        assert_eq!(
            connect_error_kind(Some(libc::EADDRNOTAVAIL)),
            ErrorKind::ConnectFailed
        );
        assert_eq!(connect_error_kind(None), ErrorKind::ConnectFailed);
    }
}
