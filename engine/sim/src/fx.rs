//! Router effects in the world: every router call goes through `World::call`, which records
//! the effects in order and applies them afterwards (a router must not be re-entered): bytes
//! to clients after a random delay (per-conn FIFO; paced for slow readers, see `flow`) into
//! each conn's output queue, which the router reads through `queued_bytes` and which drains
//! as the client reads (`on_drained`), the driver's output cap (a send past it into a
//! non-empty queue aborts the conn, decided at the send like the driver's `QueueFull`), mail
//! into lanes (see `mail`), hand-offs (the conn's unread bytes travel as the leftover), closes
//! (the client sees EOF after the bytes before it, then the router gets `on_closed`).
//!
//! What it does not do: judge deliveries (the clients report to the ledger), except checker 3
//! on the router side (nothing written to or closed on a conn that is not open) and noting
//! refusals the checkers must know of (bounced chats; store refusals, see `groups`).
//!
//! Invariants: effects are applied in the order the router asked for them; a conn key is
//! never reused.

use std::collections::{BTreeMap, BTreeSet};

use rookery_proto::element::Element;
use rookery_router::{Cause, ConnKey, Effects, Handoff, Location, Mail, Router, ShardId};
use rookery_store::LogSpan;

use crate::groups::GroupKey;
use crate::ledger::{MsgKey, Violation};
use crate::world::{Ev, KeyInfo, KeyState, Step, World};

/// Effects recorded in order, applied after the router call returns; `queued` is each conn's
/// output queue as the network sees it (bytes sent and not yet delivered), plus what this
/// call sent. The driver's output cap is decided here, at the send, as the driver does: a
/// send past `cap` into a non-empty queue aborts the conn (`Fx::Abort`), and the conn takes
/// nothing more and reports an empty queue from then on.
pub(crate) struct SimFx<'a> {
    pub effects: Vec<Fx>,
    queued: &'a BTreeMap<u64, usize>,
    added: BTreeMap<u64, usize>,
    cap: usize,
    aborted: BTreeSet<u64>,
}

pub(crate) enum Fx {
    Send(ConnKey, Vec<u8>),
    /// The send that passed the cap (its bytes, and what the queue held): the conn is aborted.
    Abort(ConnKey, Vec<u8>, usize),
    Close(ConnKey),
    Mail(u16, Mail),
    HandOff(ConnKey, u16, Handoff),
    ReadLog(u64, LogSpan),
}

impl Effects for SimFx<'_> {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        if self.aborted.contains(&conn.0) {
            return; // the driver refuses sends to a conn it aborted
        }
        let queued = self.queued_bytes(conn);
        if queued > 0 && queued + bytes.len() > self.cap {
            self.aborted.insert(conn.0);
            self.effects.push(Fx::Abort(conn, bytes.to_vec(), queued));
            return;
        }
        *self.added.entry(conn.0).or_default() += bytes.len();
        self.effects.push(Fx::Send(conn, bytes.to_vec()));
    }
    fn queued_bytes(&self, conn: ConnKey) -> usize {
        if self.aborted.contains(&conn.0) {
            return 0; // an aborted conn's queue was dropped
        }
        let before = self.queued.get(&conn.0).copied().unwrap_or(0);
        before + self.added.get(&conn.0).copied().unwrap_or(0)
    }
    fn read_log(&mut self, tag: u64, span: LogSpan) {
        self.effects.push(Fx::ReadLog(tag, span));
    }
    fn close(&mut self, conn: ConnKey, _cause: Cause) {
        self.effects.push(Fx::Close(conn));
    }
    fn mail(&mut self, dest: Location, mail: Mail) {
        // One node: a location is its shard's lane.
        self.effects.push(Fx::Mail(dest.shard.0, mail));
    }
    fn hand_off(&mut self, conn: ConnKey, dest: ShardId, handoff: Handoff) {
        self.effects.push(Fx::HandOff(conn, dest.0, handoff));
    }
}

impl World {
    /// Calls into one router and applies what it asked for.
    pub fn call(&mut self, shard: u16, f: impl FnOnce(&mut Router, u64, &mut SimFx)) -> Step {
        let mut fx = SimFx {
            effects: Vec::new(),
            queued: &self.out_queued,
            added: BTreeMap::new(),
            cap: self.cfg.max_output_bytes,
            aborted: BTreeSet::new(),
        };
        let now_ms = self.now_ms;
        let router = &mut self.shards[usize::from(shard)].router;
        let refusals = router.stats().store_refusals;
        f(router, now_ms, &mut fx);
        if router.stats().store_refusals > refusals {
            // See `groups`: a refused member copy is dropped without telling anyone.
            self.ledger.groups.on_refusal(shard, now_ms);
        }
        let mut sent = Vec::new();
        for effect in fx.effects {
            if let Fx::Send(key, _) = &effect {
                sent.push(*key);
            }
            self.apply(shard, effect)?;
        }
        self.drain_on_queue(sent)
    }

    fn apply(&mut self, shard: u16, effect: Fx) -> Step {
        match effect {
            Fx::Send(key, bytes) => self.send_down(key, bytes),
            Fx::Abort(key, bytes, queued) => self.abort(key, &bytes, queued),
            Fx::Close(key) => self.router_close(key),
            Fx::Mail(dest, mail) => self.push_mail(shard, dest, mail),
            Fx::ReadLog(tag, span) => {
                self.mix(b"read-log");
                let (delay, epoch) = (self.rng.range(0, 4), self.epoch);
                self.schedule(
                    delay,
                    Ev::LogRead {
                        shard,
                        tag,
                        span,
                        epoch,
                    },
                );
                Ok(())
            }
            Fx::HandOff(key, dest, handoff) => {
                self.mix(b"handoff");
                let info = self.key_info(key)?;
                if let Some(k) = self.keys.get_mut(&key.0) {
                    k.state = KeyState::HandedOff;
                }
                self.nets[info.net].handing_off = true;
                let (net, epoch) = (info.net, self.epoch);
                let delay = self.rng.range(0, 5);
                self.schedule(
                    delay,
                    Ev::Adopt {
                        net,
                        dest,
                        handoff,
                        epoch,
                    },
                );
                Ok(())
            }
        }
    }

    pub fn key_info(&self, key: ConnKey) -> Result<KeyInfo, Violation> {
        self.keys.get(&key.0).copied().ok_or_else(|| {
            Violation::new("closed-session", format!("effect for unknown conn {key:?}"))
        })
    }

    fn send_down(&mut self, key: ConnKey, bytes: Vec<u8>) -> Step {
        self.mix(&bytes);
        self.note(|| format!("{key:?} <- {}", String::from_utf8_lossy(&bytes)));
        let info = self.key_info(key)?;
        if info.state != KeyState::Open {
            let text = String::from_utf8_lossy(&bytes);
            let detail = format!("router wrote to {key:?} in state {:?}: {text}", info.state);
            return Err(Violation::new("closed-session", detail));
        }
        self.note_refusal(&bytes);
        let net = &self.nets[info.net];
        if !net.alive || net.key != key {
            return Ok(()); // lost on a dead conn, as a real socket would lose it
        }
        let at = self.down_slot(info.net, bytes.len());
        let queued = self.out_queued.entry(key.0).or_default();
        *queued += bytes.len();
        self.peak_queued_bytes = self.peak_queued_bytes.max(*queued);
        self.schedule_at(
            at,
            Ev::Down {
                net: info.net,
                key,
                bytes,
            },
        );
        Ok(())
    }

    /// Bytes for `key` reached its client (or were lost with its conn): they leave its
    /// output queue, and when none are left the router hears that the conn drained (and the
    /// ledger that the router now deletes what that conn's session got without XEP-0198).
    pub(crate) fn delivered_down(&mut self, key: ConnKey, len: usize) -> Step {
        let Some(queued) = self.out_queued.get_mut(&key.0) else {
            return Ok(());
        };
        *queued = queued.saturating_sub(len);
        if *queued > 0 {
            return Ok(());
        }
        self.out_queued.remove(&key.0);
        let info = self.key_info(key)?;
        let open = info.state == KeyState::Open && self.nets[info.net].alive;
        if !open || self.nets[info.net].key != key {
            return Ok(()); // a conn that is gone never drains
        }
        self.confirm_drained(info.net, key);
        self.call(info.shard, |router, now_ms, fx| {
            router.on_drained(key, now_ms, fx)
        })
    }

    /// A log read the router asked for returns (read from the shard's log file now).
    pub(crate) fn log_read(&mut self, shard: u16, tag: u64, span: LogSpan) -> Step {
        use std::os::unix::fs::FileExt;
        self.mix(b"log-read");
        let router = &self.shards[usize::from(shard)].router;
        let mut buf = vec![0; span.len as usize];
        let result = match router.store().log_file() {
            Some(file) => file
                .read_exact_at(&mut buf, span.offset)
                .map_err(|e| e.raw_os_error().unwrap_or(5)),
            None => Err(9),
        };
        let result = result.map(|()| buf);
        self.call(shard, |router, now_ms, fx| {
            router.on_log_read(tag, result.as_deref().map_err(|&e| e), now_ms, fx)
        })
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

    fn router_close(&mut self, key: ConnKey) -> Step {
        self.mix(b"close");
        let info = self.key_info(key)?;
        if info.state != KeyState::Open {
            let detail = format!("router closed {key:?} twice (state {:?})", info.state);
            return Err(Violation::new("closed-session", detail));
        }
        let alive = self.nets[info.net].alive && self.nets[info.net].key == key;
        let mut after = self.now_ms;
        if alive {
            after = self.down_slot(info.net, 0);
            self.schedule_at(after, Ev::DownClose { net: info.net });
        }
        let queued = info.on_closed_queued;
        if let Some(info) = self.keys.get_mut(&key.0) {
            info.state = KeyState::ClosedByRouter;
            info.on_closed_queued = true;
        }
        if !queued {
            let at = after + self.rng.range(0, 3);
            let epoch = self.epoch;
            self.schedule_at(at, Ev::RouterClosed { key, epoch });
        }
        Ok(())
    }

    pub(crate) fn router_closed(&mut self, key: ConnKey) -> Step {
        self.mix(b"on-closed");
        self.note(|| format!("on_closed {key:?}"));
        let info = self.key_info(key)?;
        if matches!(info.state, KeyState::Gone | KeyState::HandedOff) {
            return Ok(());
        }
        if let Some(info) = self.keys.get_mut(&key.0) {
            info.state = KeyState::Gone;
        }
        self.call(info.shard, |router, now_ms, fx| {
            router.on_closed(key, now_ms, fx)
        })
    }

    pub(crate) fn adopt(&mut self, net: usize, dest: u16, handoff: Handoff) -> Step {
        self.mix(b"adopt");
        self.note(|| format!("net{net} adopted by shard {dest}"));
        let key = self.fresh_key(net, dest);
        let leftover = std::mem::take(&mut self.nets[net].unread);
        let alive = self.nets[net].alive;
        {
            let n = &mut self.nets[net];
            n.shard = dest;
            n.key = key;
            n.handing_off = false;
        }
        self.call(dest, |router, now_ms, fx| {
            router.on_adopted(key, handoff, &leftover, now_ms, fx)
        })?;
        if !alive {
            self.queue_on_closed(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(queued: &BTreeMap<u64, usize>) -> SimFx<'_> {
        SimFx {
            effects: Vec::new(),
            queued,
            added: BTreeMap::new(),
            cap: 100,
            aborted: BTreeSet::new(),
        }
    }

    #[test]
    fn the_cap_aborts_like_the_driver() {
        let queued = BTreeMap::from([(1, 60)]);
        let mut fx = fx(&queued);
        let (one, two) = (ConnKey(1), ConnKey(2));
        fx.send(one, &[0; 40]);
        assert_eq!(fx.queued_bytes(one), 100);
        // One byte past the cap with bytes queued: the conn is aborted, its queue dropped.
        fx.send(one, &[0; 1]);
        assert_eq!(fx.queued_bytes(one), 0);
        fx.send(one, &[0; 1]);
        // An empty queue takes one write of any size, then nothing more.
        fx.send(two, &[0; 150]);
        fx.send(two, &[0; 1]);
        let kinds: Vec<(u64, usize, bool)> = fx
            .effects
            .iter()
            .map(|e| match e {
                Fx::Send(key, bytes) => (key.0, bytes.len(), false),
                Fx::Abort(key, bytes, queued) => (key.0, bytes.len() + queued, true),
                _ => (0, 0, false),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, 40, false),
                (1, 101, true),
                (2, 150, false),
                (2, 151, true)
            ]
        );
    }
}
