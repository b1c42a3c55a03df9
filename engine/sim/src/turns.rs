//! Running the real shard loops: one `Shard::turn` per `Ev::Turn`, then what the turn did, as
//! its simulated driver noted it, applied to the world in order: bytes written to conns (the
//! network pulls them out in pieces, see `pull`), the output cap's aborts (attributed in
//! `flow`), closes, hand-offs (the fd standing for a detached conn travels in the real
//! `ShardMail::Adopt` through the world's lanes), drains and closes the router was told of,
//! committed log writes (the ledger learns which chats are durable), and the mail the loop
//! flushed (into the world's lanes, see `mail`). Then the shard's next turn is scheduled:
//! when its driver has something ready, or after the wait the loop asked for.
//!
//! What it does not do: decide XMPP behaviour or judge deliveries (the clients and the
//! ledger do), except checker 3 on the server side: nothing is written to or closed on a conn
//! the router closed, handed off or was told is closed.
//!
//! Invariants: notes are applied in the order the loop made them; a shard whose loop
//! finished (a graceful stop) gets no more turns.

use rookery::shard::TurnEnd;
use rookery_io::ConnId;
use rookery_proto::element::Element;
use rookery_router::ConnKey;

use crate::driver::Note;
use crate::groups::GroupKey;
use crate::ledger::{MsgKey, Violation};
use crate::world::{Ev, KeyState, Step, World};

/// Bytes a fast reader's network takes per pull, at most.
const PULL_MAX_BYTES: u64 = 8 * 1024;
/// How often a slow reader's network pulls (its rate times this many ms per pull).
const SLOW_PULL_MS: u64 = 10;

fn key_of(conn: ConnId) -> ConnKey {
    ConnKey(conn.to_u64())
}

impl World {
    /// One turn of `shard`'s loop, then what it did.
    pub(crate) fn turn(&mut self, shard: u16) -> Step {
        let index = usize::from(shard);
        let Some(s) = self.shards.get_mut(index) else {
            return Ok(());
        };
        if s.turn_at_ms != Some(self.now_ms) || s.finished {
            return Ok(()); // superseded by an earlier turn
        }
        s.turn_at_ms = None;
        let fail = if self.quiet || self.setup || self.stopping_since_ms.is_some() {
            0
        } else {
            crate::commit::WRITE_FAIL_PER_MILLE
        };
        s.looped.driver_mut().write_fail_per_mille = fail;
        self.mix(b"turn");
        let end = self.shards[index]
            .looped
            .turn()
            .map_err(|e| Violation::new("driver", format!("shard {shard} turn failed: {e}")))?;
        let notes = std::mem::take(&mut self.shards[index].looped.driver_mut().notes);
        for note in notes {
            self.apply_note(shard, note)?;
        }
        let posted = std::mem::take(&mut self.shards[index].post.borrow_mut().posted);
        // The loop names its node's shards by local index, and the bridge (in a cluster)
        // by the index after them; the world's lanes by global index (see `nodes`).
        let shards = self.cfg.shards;
        let node = shard / shards;
        for (dst, mail) in posted {
            if dst >= shards {
                self.post_to_bridge(node, mail)?;
            } else {
                self.push_mail(shard, node * shards + dst, mail)?;
            }
        }
        if end == TurnEnd::Finished {
            self.shard_finished(shard)?;
            return Ok(());
        }
        let s = &self.shards[index];
        let driver = s.looped.driver();
        let waited = driver.wait.map_or(0, |w| w.as_millis() as u64);
        let mut at = self.now_ms + waited;
        if let Some(ready) = driver.next_ready_at_ms() {
            at = at.min(ready);
        }
        if !s.post.borrow().inbox.is_empty() {
            at = self.now_ms;
        }
        self.wake_shard_at(shard, at);
        Ok(())
    }

    fn apply_note(&mut self, shard: u16, note: Note) -> Step {
        match note {
            Note::Sent { conn, bytes } => self.sent(shard, key_of(conn), bytes),
            Note::Late { conn, state, bytes } => {
                let text = String::from_utf8_lossy(&bytes);
                let detail = format!(
                    "router wrote to or closed {:?} in driver state {state:?}: {text}",
                    key_of(conn)
                );
                Err(Violation::new("closed-session", detail))
            }
            Note::Overflow {
                conn,
                bytes,
                queued,
            } => self.overflow(key_of(conn), &bytes, queued),
            Note::Writable(conn) => {
                self.schedule_pull(key_of(conn), 0);
                Ok(())
            }
            Note::Closing(conn) => self.closing(shard, key_of(conn)),
            Note::Aborted(conn) => self.aborted(key_of(conn)),
            Note::Detaching(conn) => self.detaching(key_of(conn)),
            Note::Detached { conn, fd } => {
                let info = self.key_info(key_of(conn))?;
                self.in_transit.insert(fd, info.net);
                Ok(())
            }
            Note::Adopted { conn, fd } => self.adopted(shard, key_of(conn), fd),
            Note::DrainedTold(conn) => {
                self.drained_told(key_of(conn));
                Ok(())
            }
            Note::ClosedTold(conn) => {
                self.mix(b"on-closed");
                if let Some(info) = self.keys.get_mut(&conn.to_u64()) {
                    if info.state != KeyState::HandedOff {
                        info.state = KeyState::Gone;
                    }
                }
                Ok(())
            }
            Note::Committed(bytes) => {
                self.mix(b"commit-ok");
                // Durable now: a chat stored here is owed to its recipient (checker 1).
                let chats = crate::tamper::stored_chats(&bytes);
                self.commits += 1;
                self.most_chats_per_commit = self.most_chats_per_commit.max(chats.len());
                for key in chats {
                    self.ledger.on_committed(key);
                }
                Ok(())
            }
            Note::WriteFailed => {
                self.mix(b"commit-err");
                self.commit_failures += 1;
                Ok(())
            }
            Note::StoppedListening => Ok(()),
        }
    }

    fn sent(&mut self, shard: u16, key: ConnKey, bytes: Vec<u8>) -> Step {
        self.mix(&bytes);
        self.note(|| format!("{key:?}@{shard} <- {}", String::from_utf8_lossy(&bytes)));
        let info = self.key_info(key)?;
        if info.state != KeyState::Open {
            let text = String::from_utf8_lossy(&bytes);
            let detail = format!("router wrote to {key:?} in state {:?}: {text}", info.state);
            return Err(Violation::new("closed-session", detail));
        }
        self.note_refusal(&bytes);
        let queued = self.shards[usize::from(shard)]
            .looped
            .driver()
            .queued(ConnId::from_u64(key.0));
        self.peak_queued_bytes = self.peak_queued_bytes.max(queued);
        Ok(())
    }

    fn closing(&mut self, shard: u16, key: ConnKey) -> Step {
        self.mix(b"close");
        let info = self.key_info(key)?;
        if let Some(k) = self.keys.get_mut(&key.0) {
            k.state = KeyState::ClosedByRouter;
        }
        // Closed by a graceful stop (not at its client's own request): the goodbye is owed.
        let net = info.net;
        let client = self.nets[net].client;
        let asked = self.clients[client].phase == crate::client::Phase::Closing;
        if self.stopping_since_ms.is_some() && !asked && self.nets[net].key == key {
            self.nets[net].goodbye_owed = true;
        }
        let driver = self.shards[usize::from(shard)].looped.driver();
        if driver.queued(ConnId::from_u64(key.0)) == 0 {
            // Nothing left to write: the client sees the close now.
            let net = info.net;
            return self.server_closed(net, key);
        }
        Ok(())
    }

    fn detaching(&mut self, key: ConnKey) -> Step {
        self.mix(b"handoff");
        let info = self.key_info(key)?;
        if let Some(k) = self.keys.get_mut(&key.0) {
            k.state = KeyState::HandedOff;
        }
        self.handoffs += 1;
        if self.nets[info.net].key == key {
            self.nets[info.net].handing_off = true;
        }
        Ok(())
    }

    /// The conn's fd reached its home shard: the net is now served there. What the client
    /// sent meanwhile follows; a conn the network lost meanwhile is closed there.
    fn adopted(&mut self, shard: u16, key: ConnKey, fd: std::os::fd::RawFd) -> Step {
        self.mix(b"adopt");
        let Some(net) = self.in_transit.remove(&fd) else {
            let detail = format!("shard {shard} adopted fd {fd}, which no hand-off detached");
            return Err(Violation::new("handoff", detail));
        };
        self.note(|| format!("net{net} adopted by shard {shard} as {key:?}"));
        self.fresh_key(key, net, shard);
        let unread = std::mem::take(&mut self.nets[net].unread);
        let alive = self.nets[net].alive;
        let n = &mut self.nets[net];
        n.shard = shard;
        n.key = key;
        n.handing_off = false;
        let conn = ConnId::from_u64(key.0);
        let driver = self.shards[usize::from(shard)].looped.driver_mut();
        if !unread.is_empty() {
            // A conn adopted this turn is open: it takes the bytes.
            let _ = driver.receive(conn, unread);
        }
        if !alive {
            self.queue_on_closed(key);
        }
        Ok(())
    }

    /// The network writes a piece of `key`'s output queue and carries it to the client.
    pub(crate) fn pull(&mut self, net: usize, key: ConnKey) -> Step {
        let n = &self.nets[net];
        let Some(info) = self.keys.get(&key.0).copied() else {
            return Ok(());
        };
        // A detaching conn's queue is written out even if the network lost it meanwhile (its
        // bytes are lost then): the hand-off completes, and the adopter learns of the loss.
        let detaching = info.state == KeyState::HandedOff;
        if !detaching && (!n.alive || n.key != key) {
            return Ok(()); // a lost conn's queue was dropped with it
        }
        let slow = self.slow_rate(net);
        let max = match slow {
            Some(rate) => rate * SLOW_PULL_MS,
            None => self.rng.range(1, PULL_MAX_BYTES),
        };
        let shard = usize::from(info.shard);
        let Some(s) = self.shards.get_mut(shard) else {
            return Ok(());
        };
        let conn = ConnId::from_u64(key.0);
        let (bytes, end) = s.looped.driver_mut().write_out(conn, max as usize);
        let more = s.looped.driver().queued(conn) > 0;
        // The client reads what the network took at once: bytes handed to the kernel are
        // read unless the conn dies first, and then they die with it before the router
        // could be told they drained (as in the model before the real loop).
        if !bytes.is_empty() {
            self.down(net, &bytes)?;
            self.after_down(net, key);
        }
        if end {
            self.server_closed(net, key)?;
        }
        if more {
            let delay = if slow.is_some() {
                SLOW_PULL_MS
            } else {
                self.rng.range(0, 3)
            };
            self.schedule_pull(key, delay);
        }
        self.wake_shard_at(info.shard, self.now_ms);
        Ok(())
    }

    pub(crate) fn schedule_pull(&mut self, key: ConnKey, delay_ms: u64) {
        let Some(info) = self.keys.get(&key.0) else {
            return;
        };
        let (net, epoch) = (info.net, self.epoch);
        let delay = delay_ms + self.rng.range(0, 3);
        self.schedule(delay, Ev::Pull { net, key, epoch });
    }

    /// The server's close reached the client (after everything written before it).
    pub(crate) fn server_closed(&mut self, net: usize, key: ConnKey) -> Step {
        self.mix(b"down-close");
        if !self.nets[net].alive || self.nets[net].key != key {
            return Ok(());
        }
        if self.nets[net].goodbye_owed {
            // A graceful stop: the goodbye must have been written out before the close.
            if !self.nets[net].saw_goodbye {
                let client = self.nets[net].client;
                let detail = format!(
                    "{key:?} of client {client} closed by a graceful stop without its \
                     system-shutdown goodbye"
                );
                return Err(Violation::new("shutdown", detail));
            }
            self.goodbyes += 1;
        }
        self.kill_net(net);
        Ok(())
    }

    /// The shard's driver learns that the network lost `key`.
    pub(crate) fn peer_closed(&mut self, key: ConnKey) -> Step {
        let Some(info) = self.keys.get(&key.0).copied() else {
            return Ok(());
        };
        if matches!(info.state, KeyState::Gone | KeyState::HandedOff) {
            return Ok(());
        }
        self.mix(b"peer-closed");
        self.note(|| format!("{key:?} lost by the network"));
        let Some(s) = self.shards.get_mut(usize::from(info.shard)) else {
            return Ok(());
        };
        s.looped.driver_mut().peer_closed(ConnId::from_u64(key.0));
        self.wake_shard_at(info.shard, self.now_ms);
        Ok(())
    }

    /// A chat the router bounced is owed to nobody, even if the bounce never reaches its
    /// sender (a drop or a restart may eat it after `<resumed h>` already counted the chat).
    fn note_refusal(&mut self, bytes: &[u8]) {
        if !bytes.starts_with(b"<message") {
            return;
        }
        let Ok(el) = Element::parse(bytes) else {
            return;
        };
        if el.attr("type") != Some("error") {
            return;
        }
        let id = el.attr("id").unwrap_or("");
        if let Some(key) = MsgKey::parse(id) {
            self.ledger.on_error(key);
        } else if let Some(key) = GroupKey::parse(id) {
            self.ledger.groups.on_error(key);
        }
    }

    pub fn key_info(&self, key: ConnKey) -> Result<crate::world::KeyInfo, Violation> {
        self.keys.get(&key.0).copied().ok_or_else(|| {
            Violation::new("closed-session", format!("effect for unknown conn {key:?}"))
        })
    }
}
