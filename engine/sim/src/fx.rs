//! Router effects in the world: every router call goes through `World::call`, which records
//! the effects in order and applies them afterwards (a router must not be re-entered): bytes
//! to clients after a random delay (per-conn FIFO), mail into lanes (see `mail`), hand-offs
//! (the conn's unread bytes travel as the leftover), closes (the client sees EOF after the
//! bytes before it, then the router gets `on_closed`).
//!
//! What it does not do: judge deliveries (the clients report to the ledger), except checker 3
//! on the router side (nothing written to or closed on a conn that is not open) and noting
//! refusals the checkers must know of (bounced chats; store refusals, see `groups`).
//!
//! Invariants: effects are applied in the order the router asked for them; a conn key is
//! never reused.

use rookery_proto::element::Element;
use rookery_router::{ConnKey, Effects, Handoff, Mail, Router};
use rookery_store::LogSpan;

use crate::groups::GroupKey;
use crate::ledger::{MsgKey, Violation};
use crate::world::{Ev, KeyInfo, KeyState, Step, World};

/// Effects recorded in order, applied after the router call returns; `queued` is each conn's
/// output queue as the network sees it (bytes sent and not yet delivered), plus what this
/// call sent.
pub(crate) struct SimFx<'a> {
    pub effects: Vec<Fx>,
    queued: &'a std::collections::BTreeMap<u64, usize>,
    added: std::collections::BTreeMap<u64, usize>,
}

pub(crate) enum Fx {
    Send(ConnKey, Vec<u8>),
    Close(ConnKey),
    Mail(u16, Mail),
    HandOff(ConnKey, u16, Handoff),
    ReadLog(u64, LogSpan),
}

impl Effects for SimFx<'_> {
    fn send(&mut self, conn: ConnKey, bytes: &[u8]) {
        *self.added.entry(conn.0).or_default() += bytes.len();
        self.effects.push(Fx::Send(conn, bytes.to_vec()));
    }
    fn queued_bytes(&self, conn: ConnKey) -> usize {
        let before = self.queued.get(&conn.0).copied().unwrap_or(0);
        before + self.added.get(&conn.0).copied().unwrap_or(0)
    }
    fn read_log(&mut self, tag: u64, span: LogSpan) {
        self.effects.push(Fx::ReadLog(tag, span));
    }
    fn close(&mut self, conn: ConnKey) {
        self.effects.push(Fx::Close(conn));
    }
    fn mail(&mut self, dest: u16, mail: Mail) {
        self.effects.push(Fx::Mail(dest, mail));
    }
    fn hand_off(&mut self, conn: ConnKey, dest: u16, handoff: Handoff) {
        self.effects.push(Fx::HandOff(conn, dest, handoff));
    }
}

impl World {
    /// Calls into one router and applies what it asked for.
    pub fn call(&mut self, shard: u16, f: impl FnOnce(&mut Router, u64, &mut SimFx)) -> Step {
        let mut fx = SimFx {
            effects: Vec::new(),
            queued: &self.out_queued,
            added: std::collections::BTreeMap::new(),
        };
        let now_ms = self.now_ms;
        let router = &mut self.shards[usize::from(shard)].router;
        let refusals = router.stats().store_refusals;
        f(router, now_ms, &mut fx);
        if router.stats().store_refusals > refusals {
            // See `groups`: a refused member copy is dropped without telling anyone.
            self.ledger.groups.on_refusal(shard, now_ms);
        }
        for effect in fx.effects {
            self.apply(shard, effect)?;
        }
        Ok(())
    }

    fn apply(&mut self, shard: u16, effect: Fx) -> Step {
        match effect {
            Fx::Send(key, bytes) => self.send_down(key, bytes),
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
        let at = self.down_slot(info.net);
        *self.out_queued.entry(key.0).or_default() += bytes.len();
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
    /// output queue, and when none are left the router hears that the conn drained.
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

    pub(crate) fn down_slot(&mut self, net: usize) -> u64 {
        let at = (self.now_ms + self.rng.range(0, 5)).max(self.nets[net].down_ms);
        self.nets[net].down_ms = at;
        at
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
            after = self.down_slot(info.net);
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
