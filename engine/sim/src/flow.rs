//! Output queues under pressure: slow readers, the driver's output cap, send completions
//! (`Router::on_drained`) as the ledger sees them, and the `delete-on-queue` canary.
//!
//! What it does:
//! - a conn may read slowly (drawn at connect, `SimConfig::slow_reader_per_mille`): while
//!   clients chat (the active phase and the quiet period's first quarter, never in setup) the
//!   bytes sent to it arrive at its read rate, one after the other, so its output queue
//!   (`World::out_queued`) builds up and the router's backlogs are flow-controlled; when the
//!   clients stop chatting, every slow reader catches up at once;
//! - the cap itself is decided in `fx` at the send, as the driver decides it; here the abort
//!   it causes is applied (the client sees the conn die, the router gets `on_closed`, queued
//!   bytes are lost) and attributed: the overflowing send was a stored message (a XEP-0203
//!   `<delay/>` stamp, or a chat of the ledger) or live traffic that is not stored (presence,
//!   iq, groupchat copies, bounces). The router promises that its own stored-message traffic
//!   never fills the cap (`rookery_router::delivery`): an abort caused by it is a
//!   `backlog-overflow` violation; the others are counted;
//! - the chats a session without XEP-0198 received on a conn are remembered until the router
//!   is told that conn drained, then reported to the ledger (`Ledger::on_confirmed`); a conn
//!   that dies first forgets them (the router could not know they were read);
//! - `delete-on-queue`: the router hears `on_drained` right after bytes are queued for a
//!   conn, as well as when the queue really empties.
//!
//! What it does not do: judge deliveries (see `ledger`), or model partial writes or the
//! kernel's buffers: a byte is "handed to the kernel" when its client read it.
//!
//! Invariants: a groupchat copy without a delay stamp counts as live traffic (an occupant's
//! copy is not stored; a member's copy written at once is, but nothing on the wire tells them
//! apart); the canary's extra `on_drained` calls never nest.

use rookery_proto::element::Element;
use rookery_router::ConnKey;

use crate::ledger::{Ledger, MsgKey, Violation};
use crate::world::{Ev, KeyState, Step, World};
use crate::InjectBug;

impl World {
    /// When bytes sent to `net` now reach its client: after a random delay and after what
    /// was sent to it before (per-conn FIFO), and for a slow reader after `len` more bytes at
    /// its read rate.
    pub(crate) fn down_slot(&mut self, net: usize, len: usize) -> u64 {
        let mut at = (self.now_ms + self.rng.range(0, 5)).max(self.nets[net].down_ms);
        let slow_now = !self.setup && self.now_ms < self.chat_until_ms;
        if let Some(rate) = self.nets[net].read_bytes_per_ms.filter(|_| slow_now) {
            at += (len as u64).div_ceil(rate);
        }
        self.nets[net].down_ms = at;
        at
    }

    /// The clients stopped chatting: slow readers catch up. Every byte still on its way to
    /// one arrives now, in the order sent (a reader that lags seconds behind would otherwise
    /// still be reading when the quiet period ends, and owe nothing to the checks).
    pub(crate) fn catch_up_readers(&mut self) {
        self.readers_caught_up = true;
        self.mix(b"catch-up");
        let slow = |net: usize| self.nets[net].read_bytes_per_ms.is_some();
        let pending: Vec<(u64, u64)> = self
            .queue
            .iter()
            .filter(|(_, ev)| match ev {
                Ev::Down { net, .. } | Ev::DownClose { net } => slow(*net),
                _ => false,
            })
            .map(|(at, _)| *at)
            .collect();
        let at_ms = self.now_ms + 1;
        for at in pending {
            if let Some(ev) = self.queue.remove(&at) {
                self.schedule_at(at_ms, ev);
            }
        }
        // Only slow readers had everything moved; a fast conn keeps its FIFO tail.
        for net in self
            .nets
            .iter_mut()
            .filter(|n| n.read_bytes_per_ms.is_some())
        {
            net.down_ms = net.down_ms.min(at_ms);
        }
    }

    /// The read rate of a new conn: `None` for most, bytes per ms for a slow reader.
    pub(crate) fn draw_read_rate(&mut self) -> Option<u64> {
        if !self.rng.chance(self.cfg.slow_reader_per_mille) {
            return None;
        }
        self.slow_conns += 1;
        let (lo, hi) = self.cfg.slow_read_bytes_per_ms;
        Some(self.rng.range(lo.max(1), hi.max(lo).max(1)))
    }

    /// The driver aborted `key`: a send of `bytes` would have passed the cap with `queued`
    /// bytes waiting. Fails if the router's stored-message traffic caused it.
    pub(crate) fn abort(&mut self, key: ConnKey, bytes: &[u8], queued: usize) -> Step {
        self.mix(b"abort");
        let info = self.key_info(key)?;
        let client = self.nets[info.net].client;
        self.note(|| {
            let text = String::from_utf8_lossy(bytes);
            format!("ABORT {key:?} of c{client}: {queued} bytes queued, then {text}")
        });
        if let Some(what) = stored_traffic(&self.ledger, bytes) {
            let detail = format!(
                "{key:?} of client {client} aborted by the output cap ({} bytes): {queued} bytes \
                 were queued and the router wrote {what} of {} bytes: {}",
                self.cfg.max_output_bytes,
                bytes.len(),
                String::from_utf8_lossy(bytes)
            );
            return Err(Violation::new("backlog-overflow", detail));
        }
        self.aborts += 1;
        self.out_queued.remove(&key.0);
        let net = info.net;
        if self.nets[net].alive && self.nets[net].key == key {
            self.kill_net(net);
        } else {
            self.queue_on_closed(key);
        }
        Ok(())
    }

    /// After bytes for `key` reached the client of `net`: the chats its session without
    /// XEP-0198 got from them wait for the conn to drain.
    pub(crate) fn after_down(&mut self, net: usize, key: ConnKey) {
        let client = self.nets[net].client;
        let fresh = std::mem::take(&mut self.clients[client].fresh_deliveries);
        if !fresh.is_empty() {
            self.undrained.entry(key.0).or_default().extend(fresh);
        }
    }

    /// The router is about to hear that `key` (on `net`) drained: it deletes what its session
    /// without XEP-0198 received, and the ledger knows it.
    pub(crate) fn confirm_drained(&mut self, net: usize, key: ConnKey) {
        if let Some(keys) = self.undrained.remove(&key.0) {
            let client = self.nets[net].client;
            self.ledger.on_confirmed(client, &keys, self.now_ms);
        }
    }

    /// `delete-on-queue`: after a router call that sent to these conns, tells the router
    /// they drained although their bytes are still queued.
    pub(crate) fn drain_on_queue(&mut self, mut sent: Vec<ConnKey>) -> Step {
        if self.cfg.inject != Some(InjectBug::DeleteOnQueue) || self.fake_draining {
            return Ok(());
        }
        sent.sort_unstable_by_key(|k| k.0);
        sent.dedup();
        for key in sent {
            let Some(info) = self.keys.get(&key.0).copied() else {
                continue;
            };
            let net = &self.nets[info.net];
            if info.state != KeyState::Open || !net.alive || net.key != key {
                continue;
            }
            self.bug_done = true;
            self.fake_draining = true;
            let result = self.call(info.shard, |router, now_ms, fx| {
                router.on_drained(key, now_ms, fx)
            });
            self.fake_draining = false;
            result?;
        }
        Ok(())
    }
}

/// What a send that passed the cap was, if it was a stored message: one with a XEP-0203 delay
/// stamp (a backlog), or a chat of the ledger that is not a bounce (stored, written live).
fn stored_traffic(ledger: &Ledger, bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"<message") {
        return None;
    }
    let el = Element::parse(bytes).ok()?;
    if el.children().any(|c| c.local_name() == "delay") {
        return Some("a stored message (delay stamp)".to_owned());
    }
    let id = el.attr("id")?;
    let key = MsgKey::parse(id)?;
    let chat = !matches!(el.attr("type"), Some("error" | "groupchat"));
    (chat && ledger.sent(key).is_some()).then(|| format!("stored chat {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_sends_are_attributed() {
        let mut ledger = Ledger::default();
        ledger.on_sent(MsgKey { sender: 1, n: 2 }, 0);
        let chat = b"<message type='chat' id='m1-2' to='u0@example.com'><body>2</body></message>";
        assert!(stored_traffic(&ledger, chat).is_some());
        let unknown = b"<message type='chat' id='m1-3'><body>3</body></message>";
        assert!(stored_traffic(&ledger, unknown).is_none());
        let bounce = b"<message type='error' id='m1-2'><error type='wait'/></message>";
        assert!(stored_traffic(&ledger, bounce).is_none());
        let backlog = b"<message type='groupchat' id='q1-1'><body>1</body>\
                        <delay xmlns='urn:xmpp:delay' stamp='x'/></message>";
        assert!(stored_traffic(&ledger, backlog).is_some());
        let live = b"<message type='groupchat' id='q1-1'><body>1</body></message>";
        assert!(stored_traffic(&ledger, live).is_none());
        assert!(stored_traffic(&ledger, b"<presence/>").is_none());
    }
}
