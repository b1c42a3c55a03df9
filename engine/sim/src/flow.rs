//! Output queues under pressure: slow readers, the driver's output cap, send completions
//! (`Drained`) as the ledger sees them, and the `delete-on-queue` canary.
//!
//! What it does:
//! - a conn may read slowly (drawn at connect, `SimConfig::slow_reader_per_mille`): while
//!   clients chat (the active phase and the quiet period's first quarter, never in setup or
//!   a graceful stop) the network pulls its output queue (in the simulated driver) at its read
//!   rate, so the queue builds up and the router's backlogs are flow-controlled; when the
//!   clients stop chatting, every slow reader reads at full speed;
//! - the cap itself is the driver's (`QueueFull` past `max_output_bytes`) and the real
//!   loop's answer to it (abort the conn); here the overflow is attributed: the send that did
//!   not fit was a stored message (a XEP-0203 `<delay/>` stamp, or a chat of the ledger) or
//!   live traffic that is not stored (presence, iq, groupchat copies, bounces). The router
//!   promises that its own stored-message traffic never fills the cap
//!   (`rookery_router::delivery`): an abort caused by it is a `backlog-overflow` violation;
//!   the others are counted;
//! - the chats a session without XEP-0198 received on a conn are remembered until the router
//!   is told that conn drained (the driver's `Drained`, delivered by the real loop), then
//!   reported to the ledger (`Ledger::on_confirmed`); a conn that dies first forgets them;
//! - `delete-on-queue`: the driver reports `Drained` right after every send (see `driver`).
//!
//! What it does not do: judge deliveries (see `ledger`), or model the kernel's buffers: a
//! byte is "handed to the kernel" when the network pulled it from the driver's queue.
//!
//! Invariants: a groupchat copy without a delay stamp counts as live traffic (an occupant's
//! copy is not stored; a member's copy written at once is, but nothing on the wire tells them
//! apart).

use rookery_proto::element::Element;
use rookery_router::ConnKey;

use crate::ledger::{Ledger, MsgKey, Violation};
use crate::world::{KeyState, Step, World};
use crate::InjectBug;

impl World {
    /// A slow reader's rate while clients chat; `None` when `net` reads at full speed.
    pub(crate) fn slow_rate(&self, net: usize) -> Option<u64> {
        let slow_now =
            !self.setup && self.now_ms < self.chat_until_ms && self.stopping_since_ms.is_none();
        self.nets[net].read_bytes_per_ms.filter(|_| slow_now)
    }

    /// The clients stopped chatting: from now on slow readers read at full speed (see
    /// `slow_rate`), so they catch up before the quiet period ends.
    pub(crate) fn catch_up_readers(&mut self) {
        self.readers_caught_up = true;
        self.mix(b"catch-up");
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

    /// A send of `bytes` did not fit `key`'s queue (`queued` bytes waiting): the loop aborts
    /// the conn. Fails if the router's stored-message traffic caused it.
    pub(crate) fn overflow(&mut self, key: ConnKey, bytes: &[u8], queued: usize) -> Step {
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
        Ok(())
    }

    /// The loop aborted `key` (its queue is dropped): the client sees the conn die now.
    pub(crate) fn aborted(&mut self, key: ConnKey) -> Step {
        let info = self.key_info(key)?;
        let net = info.net;
        if self.nets[net].alive && self.nets[net].key == key {
            self.kill_net(net);
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

    /// The router was told `key` drained: it deleted what its session without XEP-0198
    /// received, and the ledger knows it. A conn that is gone never drains.
    pub(crate) fn drained_told(&mut self, key: ConnKey) {
        self.mix(b"drained");
        if self.cfg.inject == Some(InjectBug::DeleteOnQueue) {
            self.bug_done = true;
        }
        let Some(info) = self.keys.get(&key.0).copied() else {
            return;
        };
        let net = info.net;
        let open = info.state == KeyState::Open && self.nets[net].alive;
        if !open || self.nets[net].key != key {
            return;
        }
        if let Some(keys) = self.undrained.remove(&key.0) {
            let client = self.nets[net].client;
            self.ledger.on_confirmed(client, &keys, self.now_ms);
        }
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
