//! The network and client side of the event loop: conns opening (each draws its read rate and
//! whether its login enables XEP-0198), bytes moving in both directions (per-conn FIFO), the
//! network losing conns, clients waking up to act, and the active phase's fault dice (drops,
//! half of them aimed at conns with bytes still queued; restarts).
//!
//! What it does not do: XMPP (see `client`), router effects (see `world`), commits (see
//! `commit`).
//!
//! Invariants: a client has at most one live conn; bytes for a dead conn are dropped, as a
//! socket would drop them; the router hears of a lost conn (`on_closed`) exactly once, after
//! the client did.

use rookery_io::ConnId;
use rookery_router::ConnKey;

use crate::client::Phase;
use crate::world::{Ev, KeyInfo, KeyState, Net, Step, World};

impl World {
    /// Records a conn the driver of `shard` just opened for `net`.
    pub(crate) fn fresh_key(&mut self, key: ConnKey, net: usize, shard: u16) {
        let info = KeyInfo {
            net,
            shard,
            state: KeyState::Open,
            on_closed_queued: false,
        };
        self.keys.insert(key.0, info);
    }

    /// Schedules `on_closed` for a key whose conn the network lost, unless already queued.
    pub(crate) fn queue_on_closed(&mut self, key: ConnKey) {
        let Some(info) = self.keys.get_mut(&key.0) else {
            return;
        };
        // A conn the router is closing still waits for its queue to go out: its driver must
        // learn the peer is gone too, or it never closes.
        let open = matches!(info.state, KeyState::Open | KeyState::ClosedByRouter);
        if info.on_closed_queued || !open {
            return;
        }
        info.on_closed_queued = true;
        let epoch = self.epoch;
        let delay = self.rng.range(0, 20);
        self.schedule(delay, Ev::PeerClosed { key, epoch });
    }

    /// The network loses the conn: the client sees it at once, the router a bit later.
    pub(crate) fn kill_net(&mut self, net: usize) {
        if !self.nets[net].alive {
            return;
        }
        self.note(|| format!("net{net} of c{} dies", self.nets[net].client));
        self.nets[net].alive = false;
        // What its session got without XEP-0198 since the last drain was never confirmed.
        self.undrained.remove(&self.nets[net].key.0);
        let client = self.nets[net].client;
        self.clients[client].on_closed();
        self.clients[client].reconnect_at_ms = self.now_ms + self.rng.range(1, 500);
        if !self.nets[net].handing_off {
            let key = self.nets[net].key;
            self.queue_on_closed(key);
        }
    }

    pub(crate) fn client_wake(&mut self, client: usize) -> Step {
        self.mix(b"wake");
        self.clients[client].now_ms = self.now_ms;
        let phase = self.clients[client].phase;
        match phase {
            Phase::Offline if self.now_ms >= self.clients[client].reconnect_at_ms => {
                self.connect(client)?;
            }
            Phase::Online => self.client_act(client),
            _ => {}
        }
        self.flush_client(client);
        let delay = self.rng.range(2, 40);
        self.schedule(delay, Ev::ClientWake(client));
        Ok(())
    }

    pub(crate) fn client_act(&mut self, client: usize) {
        let others = self.clients.len().saturating_sub(1);
        let c = &mut self.clients[client];
        if self.setup || (self.quiet && self.now_ms >= self.chat_until_ms) {
            if c.unacked_len() > 0 {
                c.request_ack();
            }
            return;
        }
        let roll = self.rng.below(1000);
        let social = !c.social.contacts.is_empty();
        if roll < 600 && others > 0 && c.unacked_len() < 64 {
            // Any other client: pick among `others` and skip over ourselves.
            let mut to = self.rng.index(others);
            if to >= client {
                to += 1;
            }
            c.send_chat(to, &mut self.ledger);
            if self.rng.chance(300) {
                c.request_ack();
            }
        } else if roll < 850 {
            c.request_ack();
        } else if roll < 858 && !self.quiet {
            c.close();
        } else if roll < 900 && social && c.unacked_len() < 64 {
            c.send_presence(&mut self.ledger);
        } else if roll < 950 && c.unacked_len() < 64 {
            let joined = c.rooms.joined();
            if !joined.is_empty() {
                let room = joined[self.rng.index(joined.len())];
                c.send_groupchat(room, &mut self.ledger);
            }
        }
    }

    /// The client connects to a random shard (its listener; the real loop hands the conn
    /// off to the user's home shard at bind). A stopped listener refuses: retry later.
    pub(crate) fn connect(&mut self, client: usize) -> Step {
        self.mix(b"connect");
        self.note(|| format!("c{client} connects"));
        let shard = self.pick_shard(client);
        let accepted = self
            .shards
            .get_mut(usize::from(shard))
            .and_then(|s| s.looped.driver_mut().accept());
        let Some(conn) = accepted else {
            self.clients[client].reconnect_at_ms = self.now_ms + self.rng.range(1, 500);
            return Ok(());
        };
        let key = ConnKey(conn.to_u64());
        let net = self.nets.len();
        self.fresh_key(key, net, shard);
        let read_bytes_per_ms = self.draw_read_rate();
        self.clients[client].want_sm = !self.rng.chance(self.cfg.no_sm_per_mille);
        self.nets.push(Net {
            client,
            shard,
            key,
            alive: true,
            handing_off: false,
            unread: Vec::new(),
            up_ms: self.now_ms,
            read_bytes_per_ms,
            saw_goodbye: false,
            goodbye_owed: false,
            tail: Vec::new(),
        });
        self.client_net[client] = Some(net);
        self.clients[client].connect();
        self.wake_shard_at(shard, self.now_ms);
        Ok(())
    }

    /// The shard whose listener a client connects to: any of a single node's; in a cluster,
    /// one of the node a `see-other-host` named, else of a random node (so most logins
    /// start away from home and are redirected).
    fn pick_shard(&mut self, client: usize) -> u16 {
        let shards = self.cfg.shards;
        let Some(cluster) = &self.cluster else {
            return self.rng.below(u64::from(shards)) as u16;
        };
        let redirect = self.clients[client].redirect.take();
        let named = redirect.as_deref().and_then(|a| cluster.node_of_address(a));
        let node = match named {
            Some(node) => node,
            None => self.rng.below(u64::from(self.cfg.nodes)) as u16,
        };
        node * shards + self.rng.below(u64::from(shards)) as u16
    }

    pub(crate) fn flush_client(&mut self, client: usize) {
        let bytes = std::mem::take(&mut self.clients[client].out);
        let Some(net) = self.client_net[client] else {
            return;
        };
        if bytes.is_empty() || !self.nets[net].alive {
            return;
        }
        let at = (self.now_ms + self.rng.range(0, 5)).max(self.nets[net].up_ms);
        self.nets[net].up_ms = at;
        self.schedule_at(at, Ev::Up { net, bytes });
    }

    pub(crate) fn up(&mut self, net: usize, bytes: Vec<u8>) -> Step {
        self.mix(&bytes);
        self.note(|| {
            let n = &self.nets[net];
            let text = String::from_utf8_lossy(&bytes);
            format!(
                "c{} net{net} {:?}@{} alive={} -> {text}",
                n.client, n.key, n.shard, n.alive
            )
        });
        let n = &self.nets[net];
        if !n.alive {
            return Ok(());
        }
        let (shard, key) = (n.shard, n.key);
        let conn = ConnId::from_u64(key.0);
        let refused = match self.shards.get_mut(usize::from(shard)) {
            Some(s) => s.looped.driver_mut().receive(conn, bytes).err(),
            None => Some(bytes),
        };
        if let Some(bytes) = refused.filter(|_| self.nets[net].handing_off) {
            // The fd is on its way to the home shard: the bytes wait in the socket.
            self.nets[net].unread.extend_from_slice(&bytes);
        }
        self.wake_shard_at(shard, self.now_ms);
        Ok(())
    }

    pub(crate) fn down(&mut self, net: usize, bytes: &[u8]) -> Step {
        if !self.nets[net].alive {
            return Ok(());
        }
        self.note(|| {
            let n = &self.nets[net];
            format!(
                "c{} net{net} got {}",
                n.client,
                String::from_utf8_lossy(bytes)
            )
        });
        let client = self.nets[net].client;
        self.watch_goodbye(net, bytes);
        self.clients[client].now_ms = self.now_ms;
        self.clients[client].on_bytes(bytes, &mut self.ledger)?;
        self.flush_client(client);
        Ok(())
    }

    pub(crate) fn inject_faults(&mut self) -> Step {
        if self.rng.chance(8) {
            let live: Vec<usize> = (0..self.nets.len())
                .filter(|&n| self.nets[n].alive)
                .collect();
            // Half the drops hit a conn with bytes still queued (a slow reader on a bad link,
            // mostly): what it was written and had not read yet dies with it.
            let busy: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&n| self.queued_for(n) > 0)
                .collect();
            let live = if !busy.is_empty() && self.rng.chance(500) {
                busy
            } else {
                live
            };
            if !live.is_empty() {
                let net = live[self.rng.index(live.len())];
                self.mix(b"drop");
                self.drops += 1;
                self.kill_net(net);
            }
        }
        if self.rng.chance(1) {
            self.mix(b"restart");
            self.note(|| "RESTART".to_owned());
            self.restart()?;
        } else if self.cfg.nodes > 1 && self.rng.chance(self.cfg.node_restart_per_mille) {
            let node = self.rng.below(u64::from(self.cfg.nodes)) as u16;
            self.mix(b"node-restart");
            self.note(|| format!("RESTART node {node}"));
            self.restart_node(node)?;
        } else if self.rng.chance(self.cfg.graceful_stop_per_mille) {
            self.mix(b"stop");
            self.note(|| "GRACEFUL STOP".to_owned());
            self.begin_stop();
        }
        Ok(())
    }

    /// Bytes waiting in the driver's queue of `net`'s current conn.
    pub(crate) fn queued_for(&self, net: usize) -> usize {
        let n = &self.nets[net];
        self.shards
            .get(usize::from(n.shard))
            .map_or(0, |s| s.looped.driver().queued(ConnId::from_u64(n.key.0)))
    }
}

impl World {
    /// Notes a `system-shutdown` stream error reaching the client of `net`, also when the
    /// network split it across two pieces (the end of the previous piece is kept).
    fn watch_goodbye(&mut self, net: usize, bytes: &[u8]) {
        const NEEDLE: &[u8] = b"system-shutdown";
        let n = &mut self.nets[net];
        let mut window = std::mem::take(&mut n.tail);
        window.extend_from_slice(bytes);
        if window.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
            n.saw_goodbye = true;
        }
        let keep = window.len().saturating_sub(NEEDLE.len() - 1);
        n.tail = window.split_off(keep);
    }
}
