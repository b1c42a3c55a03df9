//! The storm scenario's part of a worker: at the storm start every online client drops its
//! conn (closed at once, no `</stream:stream>`: the network blip) and every client, dropped or
//! failed, queues for a reconnect. Reconnects leave the queue in order, as fast as the
//! thread's share of `--reconnect-rate` allows (all at once when unlimited, bounded per loop
//! turn). A client that comes online holds for `--online-ms` (0: not at all) and drops again;
//! a client that fails is counted and queues again. It loops until `--duration` is over.
//!
//! State of one slot: Online -drop-> Pending (queued) -reconnect-> Connecting -> LoggingIn ->
//! Online; any failure -> Failed -> Pending (queued). Queued slots hold no conn and no
//! client buffer.
//!
//! What it does not do: reconnect outside the storm window, or back off after failures (a
//! storm is about how the server copes with the rush, so the rush is not softened).

use std::cmp::Reverse;

use rookery_io::{Linger, Ops};

use super::slot::SlotState;
use super::{new_client, TimerKind, Worker, MAX_CONNECTS_PER_TURN};
use crate::cli::ChatStorm;

impl Worker<'_> {
    /// The storm begins: drop everyone online, queue everyone not connecting.
    pub(super) fn start_storm<O: Ops>(&mut self, io: &mut O, now: u64) {
        self.storming = true;
        for i in 0..self.slots.len() {
            match self.slots[i].state {
                SlotState::Online => self.drop_conn(io, i),
                SlotState::Failed => self.requeue(i),
                // Pending here means never connected (an aborted ramp): it joins too.
                SlotState::Pending => self.requeue(i),
                SlotState::Connecting | SlotState::LoggingIn | SlotState::Closing => {}
            }
        }
        // Counted as due now, so the first reconnects go out on this very turn.
        self.start_due_reconnects(io, now);
    }

    /// Chat with `--storm-fraction`: the storm's clients drop at once (and queue for a
    /// reconnect at `--reconnect-rate`) while the others keep chatting; once back online
    /// they stay and rejoin the message schedule (see `on_online`).
    pub(super) fn start_chat_storm<O: Ops>(&mut self, io: &mut O, storm: ChatStorm, now: u64) {
        self.storming = true;
        self.report.storm_start_ns = now;
        for i in 0..self.slots.len() {
            if !storm.includes(self.slots[i].index) {
                continue;
            }
            match self.slots[i].state {
                SlotState::Online => {
                    self.report.storm_dropped += 1;
                    self.drop_conn(io, i);
                }
                SlotState::Failed => self.requeue(i),
                _ => {}
            }
        }
        self.start_due_reconnects(io, now);
    }

    /// Drops slot `i`'s conn abruptly and queues it for a reconnect.
    pub(super) fn drop_conn<O: Ops>(&mut self, io: &mut O, i: usize) {
        let slot = &mut self.slots[i];
        if let Some(conn) = slot.conn {
            io.close(conn, Linger::Abort);
        }
        if slot.state == SlotState::Online {
            self.shared.set_online(slot.index, false);
            self.online -= 1;
        }
        self.requeue(i);
    }

    /// Forgets slot `i`'s conn (the driver's `Closed` for it, if any, is then stale) and puts
    /// the slot at the back of the reconnect queue.
    pub(super) fn requeue(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        // What the dropped stream left unacknowledged stays so; the next stream's acks
        // count from its first message.
        if slot.seq > slot.acked {
            let range = (slot.index, slot.acked, slot.seq);
            self.report.unacked_at_drop.push(range);
        }
        slot.ack_base = slot.seq;
        slot.conn = None;
        slot.state = SlotState::Pending;
        slot.client = new_client(self.sm_policy, self.login);
        self.reconnects.push_back(i as u32);
    }

    /// Starts the reconnects the pacer allows now.
    pub(super) fn start_due_reconnects<O: Ops>(&mut self, io: &mut O, now: u64) {
        let mut started = 0;
        while self.storming && started < MAX_CONNECTS_PER_TURN {
            let Some(&i) = self.reconnects.front() else {
                return;
            };
            if !self.pacer.try_take(now) {
                return;
            }
            self.reconnects.pop_front();
            started += 1;
            self.connect(io, i as usize, now);
        }
    }

    /// A client came online during the storm: it holds for `--online-ms`, then drops.
    pub(super) fn storm_online<O: Ops>(&mut self, io: &mut O, i: usize, now: u64) {
        self.report.storm_logins += 1;
        if self.cfg.online_ms == 0 {
            return self.drop_conn(io, i);
        }
        let slot = &self.slots[i];
        let due = now + self.cfg.online_ms * 1_000_000;
        self.timers
            .push(Reverse((due, i as u32, slot.attempt, TimerKind::Drop)));
    }
}

#[cfg(test)]
pub(in crate::worker) mod tests {
    use std::net::SocketAddr;

    use rookery_io::{ConnId, SendError};

    use super::*;
    use crate::cli::RunConfig;
    use crate::live::Shared;
    use crate::metrics::ErrorKind;
    use crate::worker::testing::{all_online, parsed_config};
    use crate::worker::{RunPhase, TimerKind};

    /// Ops that hand out conn ids and remember what was asked.
    #[derive(Default)]
    pub(in crate::worker) struct FakeOps {
        next: u32,
        pub(in crate::worker) closed: Vec<ConnId>,
        pub(in crate::worker) connects: usize,
        /// The address of every connect, in order.
        pub(in crate::worker) addrs: Vec<SocketAddr>,
        /// Everything sent, per conn index (the n-th conn has index n).
        pub(in crate::worker) sent: std::collections::BTreeMap<u32, String>,
    }

    impl FakeOps {
        /// What was sent on conn `index` since the last take.
        pub(in crate::worker) fn take(&mut self, index: u32) -> String {
            self.sent.remove(&index).unwrap_or_default()
        }
    }

    impl Ops for FakeOps {
        fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
            let text = String::from_utf8_lossy(bytes);
            self.sent.entry(conn.index).or_default().push_str(&text);
            Ok(())
        }
        fn close(&mut self, conn: ConnId, _: Linger) {
            self.closed.push(conn);
        }
        fn detach(&mut self, _: ConnId) {}
        fn adopt(&mut self, _: std::os::fd::OwnedFd) -> std::io::Result<ConnId> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
        fn connect(&mut self, to: SocketAddr, _: Option<SocketAddr>) -> std::io::Result<ConnId> {
            self.next += 1;
            self.connects += 1;
            self.addrs.push(to);
            Ok(ConnId {
                index: self.next,
                generation: 1,
            })
        }
        fn queued_bytes(&self, _: ConnId) -> usize {
            0
        }
        fn write_file(
            &mut self,
            _: rookery_io::FileId,
            _: u64,
            _: Vec<u8>,
            _: rookery_io::FileSync,
        ) -> u64 {
            0
        }
        fn read_file(&mut self, _: rookery_io::FileId, _: u64, _: usize, _: Vec<u8>) -> u64 {
            0
        }
    }

    fn config(extra: &[&str]) -> RunConfig {
        let mut flags = vec!["--threads", "1"];
        flags.extend_from_slice(extra);
        parsed_config("storm", "4", &flags, "127.0.0.1:5222", "d")
    }

    const STOP_NS: u64 = 10_000_000_000;

    const START_NS: u64 = 1_000_000_000;

    /// A worker whose 4 clients connected at 0 and are online, in the steady phase starting
    /// at START_NS.
    fn online_worker<'a>(cfg: &'a RunConfig, shared: &'a Shared) -> (Worker<'a>, FakeOps) {
        let (mut w, io) = all_online(cfg, shared);
        for slot in &w.slots {
            shared.set_online(slot.index, true);
        }
        w.phase = RunPhase::Steady {
            start_ns: START_NS,
            stop_send_ns: STOP_NS,
            finish_ns: STOP_NS,
        };
        (w, io)
    }

    /// What `on_online` does for a storm login (the fake conn has no real client to log in).
    fn log_in(w: &mut Worker<'_>, io: &mut FakeOps, i: usize, now: u64) {
        w.slots[i].state = SlotState::Online;
        w.online += 1;
        w.storm_online(io, i, now);
    }

    #[test]
    fn everyone_drops_and_reconnects_and_stale_timers_are_ignored() {
        let cfg = config(&[]);
        let shared = Shared::new(4, 1);
        let (mut w, mut io) = online_worker(&cfg, &shared);
        w.advance_phase(&mut io, START_NS - 1);
        assert!(!w.storming, "not before the common start instant");
        w.advance_phase(&mut io, START_NS);
        assert!(w.storming);
        assert_eq!(io.closed.len(), 4, "every online conn dropped");
        assert_eq!(io.connects, 8, "and reconnected at once (no rate limit)");
        assert_eq!(w.online, 0);
        assert!((0..4).all(|c| !shared.is_online(c)));
        assert!(w
            .slots
            .iter()
            .all(|s| s.state == SlotState::Connecting && s.attempt == 2));
        // The first conns' connect timeouts (due at 10 s) are stale: no error is counted.
        w.fire_timers(&mut io, 10_500_000_000);
        assert_eq!(w.report.errors.total(), 0);
        assert!(w.slots.iter().all(|s| s.state == SlotState::Connecting));

        // Client 0 logs in: counted as a storm login, dropped at once (--online-ms 0) and
        // queued; client 1 is refused: counted, queued too.
        log_in(&mut w, &mut io, 0, 1_000);
        w.fail(&mut io, 1, ErrorKind::Refused);
        assert_eq!(w.report.storm_logins, 1);
        assert_eq!(w.report.errors.get(ErrorKind::Refused), 1);
        assert_eq!(w.reconnects, [0, 1]);
        assert_eq!(w.slots[0].state, SlotState::Pending);
        assert!(w.slots[0].conn.is_none());
        w.start_due_reconnects(&mut io, 2_000);
        assert_eq!(io.connects, 10);
        assert_eq!((w.slots[0].attempt, w.slots[1].attempt), (3, 3));

        // The storm ends: nobody reconnects any more.
        w.advance_phase(&mut io, STOP_NS);
        assert!(!w.storming);
        w.fail(&mut io, 2, ErrorKind::LoginTimeout);
        w.start_due_reconnects(&mut io, STOP_NS);
        assert_eq!(io.connects, 10);
        assert!(w.reconnects.is_empty());
    }

    #[test]
    fn a_chat_storm_drops_only_its_fraction_and_keeps_unacked_messages_apart() {
        // 2 per mille: of clients 0..4, clients 0 and 1 drop; 2 and 3 keep chatting.
        let cfg = parsed_config(
            "chat",
            "4",
            &[
                "--threads",
                "1",
                "--storm-fraction",
                "0.002",
                "--storm-at",
                "1s",
            ],
            "127.0.0.1:5222",
            "d",
        );
        let shared = Shared::new(4, 1);
        let (mut w, mut io) = online_worker(&cfg, &shared);
        // As the ramp's end sets it: the storm is due 1 s after the first messages.
        w.chat_storm_due_ns = Some(START_NS + 1_000_000_000);
        // Client 0 sent 5 messages, the server acked 3 of them.
        (w.slots[0].seq, w.slots[0].acked) = (5, 3);
        w.advance_phase(&mut io, START_NS + 999_999_999);
        assert!(io.closed.is_empty(), "not before --storm-at");
        w.advance_phase(&mut io, START_NS + 1_000_000_000);
        assert!(w.storming);
        assert_eq!(w.report.storm_dropped, 2);
        assert_eq!(io.closed.len(), 2, "only the storm's clients dropped");
        assert_eq!(
            io.connects,
            4 + 2,
            "and reconnected at once (no rate limit)"
        );
        assert_eq!([w.slots[2].state, w.slots[3].state], [SlotState::Online; 2]);
        assert_eq!(w.report.unacked_at_drop, vec![(0, 3, 5)]);
        assert_eq!((w.slots[0].ack_base, w.slots[1].ack_base), (5, 0));

        // Client 0 is back: a storm login, it stays online and its messages are due again.
        w.slots[0].state = SlotState::LoggingIn;
        w.on_online(&mut io, 0, START_NS + 1_100_000_000);
        assert_eq!(w.slots[0].state, SlotState::Online);
        assert_eq!(w.report.storm_logins, 1);
        assert!(w.timers.iter().any(|Reverse((_, slot, attempt, kind))| {
            *slot == 0 && *attempt == w.slots[0].attempt && *kind == TimerKind::Send
        }));
        assert!(w.recent.get(crate::metrics::Metric::StormLogin).len() == 1);
    }

    #[test]
    fn reconnects_follow_the_rate_and_online_hold() {
        // 100/s over one thread: the 10 ms burst allows 2 at once, then one per 10 ms.
        let cfg = config(&["--reconnect-rate", "100", "--online-ms", "500"]);
        let shared = Shared::new(4, 1);
        let (mut w, mut io) = online_worker(&cfg, &shared);
        w.advance_phase(&mut io, START_NS);
        assert_eq!(io.connects, 4 + 2);
        assert_eq!(w.reconnects.len(), 2);
        assert!(w.next_wake_ns(1_000_000_000) <= 1_010_000_000);
        w.start_due_reconnects(&mut io, 1_005_000_000);
        assert_eq!(io.connects, 6, "not before the next slot");
        w.start_due_reconnects(&mut io, 1_010_000_000);
        assert_eq!(io.connects, 7);

        // With --online-ms a client that logs in stays until its drop timer fires.
        let i = 0;
        log_in(&mut w, &mut io, i, 2_000_000_000);
        assert_eq!(w.slots[i].state, SlotState::Online);
        w.fire_timers(&mut io, 2_400_000_000);
        assert_eq!(w.slots[i].state, SlotState::Online);
        w.fire_timers(&mut io, 2_500_000_000);
        assert_eq!(w.slots[i].state, SlotState::Pending, "dropped after 500 ms");
    }
}
