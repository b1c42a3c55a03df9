//! The reliable link between this node and every other: sans-IO, over a bus that may drop,
//! duplicate, delay and reorder messages (NATS core: at-most-once, drops for slow consumers).
//!
//! Each message on the bus is a *frame*: a header and an opaque payload (a batch of mail the
//! server encoded). Per peer, outbound payloads get increasing sequence numbers and stay
//! pending until the peer acknowledges them (a cumulative ack carried by every frame it sends,
//! or a pure-ack frame after [`LinkConfig::ack_delay_ms`]); a pending frame is sent again
//! when its retry timeout passes. Inbound frames are delivered exactly once and in
//! order: duplicates (seq below the next expected) are dropped, early frames are held (at most
//! [`LinkConfig::max_held`]) until the gap fills.
//!
//! Budgets: a peer's pending bytes are bounded ([`LinkConfig::max_pending_bytes`]: a payload
//! past it is refused) and so is their age ([`LinkConfig::retry_timeout_ms`]: older ones are
//! given up). A frame's header carries the sender's oldest pending seq (`base`), so a receiver
//! waiting for a seq that was given up moves past it instead of waiting forever. Giving up
//! loses no acknowledged message: the router acknowledges a stanza to its sender only when the
//! recipient's node committed it (a `Committed` mail back), and answers one whose
//! acknowledgement never came with an error after its own timeout.
//!
//! Retry timeouts (RFC 6298's, per peer): the smoothed round trip from a first send to the ack
//! that clears it (frames sent again give no sample: Karn's rule) plus four times its
//! variation, at least [`LinkConfig::min_retry_ms`]; each further send of the same frame
//! doubles its wait, up to [`LinkConfig::max_retry_ms`]. Why: a fixed interval turns an
//! overloaded box into a retransmission storm (at a million sessions, acks later than a fixed
//! 250 ms made 1.96M retransmissions, every one a duplicate at its receiver, which is more load
//! on the box that was already late); a timeout that follows the measured round trip and backs
//! off sends a frame again only when it is likely lost.
//!
//! Restarts: every incarnation of a node has an `epoch` that grows from one start to the next
//! (the start time in microseconds); a frame from a newer epoch of a peer resets what this
//! side expects from it (to the frame's `base`), a late frame of an older one is ignored, and
//! acks carry the epoch they acknowledge, so an old incarnation's ack never clears a new one's
//! pending frames.
//!
//! What it does not do: I/O, clocks (times are passed in), or look inside payloads.
//!
//! Frame layout (little-endian): magic `RKB1` (4), source node u16, epoch u64, seq u64 (0: a
//! pure ack, no payload), base u64, ack_epoch u64 (the epoch of ours the ack is for), ack u64
//! (every seq up to it received), sent_us u64 (sender's wall clock when first sent), payload.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::NodeId;

const MAGIC: [u8; 4] = *b"RKB1";
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 4 + 2 + 8 * 6;

/// Tunables of every link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// The least wait before a pending frame is sent again (the retry timeout follows the
    /// measured round trip above it).
    pub min_retry_ms: u64,
    /// The most: a frame sent again waits twice as long each time, up to this.
    pub max_retry_ms: u64,
    /// A pending frame older than this is given up (counted).
    pub retry_timeout_ms: u64,
    /// Most payload bytes pending toward one peer; a payload past it is refused.
    pub max_pending_bytes: usize,
    /// Most early frames held per peer while a gap fills; more are dropped (the sender sends
    /// them again).
    pub max_held: usize,
    /// A received frame is acknowledged within this long (at once when data goes back).
    pub ack_delay_ms: u64,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            min_retry_ms: 300,
            max_retry_ms: 2_000,
            retry_timeout_ms: 20_000,
            max_pending_bytes: 64 << 20,
            max_held: 4096,
            // Long enough for an ack to ride on a frame going back (a reply, a commit notice)
            // rather than a NATS message of its own; well under `min_retry_ms`.
            ack_delay_ms: 100,
        }
    }
}

/// The decoded header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub source: NodeId,
    pub epoch: u64,
    pub seq: u64,
    pub base: u64,
    pub ack_epoch: u64,
    pub ack: u64,
    pub sent_us: u64,
}

/// A frame that is not one.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    TooShort(usize),
    BadMagic,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort(len) => write!(f, "frame of {len} bytes, shorter than a header"),
            FrameError::BadMagic => f.write_str("not a rookery cluster frame (bad magic)"),
        }
    }
}

/// Why a payload was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendRefused {
    /// The peer's pending bytes would pass `max_pending_bytes` (the peer is down or slow).
    Budget { pending_bytes: usize },
    /// The destination is this node.
    ToSelf,
}

/// Counters of all links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub frames_sent: u64,
    pub retransmits: u64,
    pub acks_sent: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub held_dropped: u64,
    pub given_up: u64,
    pub refused: u64,
    pub peer_restarts: u64,
    /// Frames of a peer's earlier incarnation, ignored.
    pub stale: u64,
    pub pending_bytes: u64,
    /// The largest retry timeout of any peer now, ms (0 before any round trip was measured).
    pub retry_ms: u64,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    payload: Vec<u8>,
    first_ms: u64,
    first_us: u64,
    /// When it is sent again (unless acknowledged first).
    due_ms: u64,
    /// Times it was sent again.
    retries: u32,
}

/// A peer's round-trip estimate (RFC 6298), in microseconds for precision at loopback speed.
#[derive(Debug, Default, Clone, Copy)]
struct RoundTrip {
    /// Smoothed round trip; 0 before the first sample.
    srtt_us: u64,
    rttvar_us: u64,
}

impl RoundTrip {
    fn sample(&mut self, rtt_us: u64) {
        if self.srtt_us == 0 {
            self.srtt_us = rtt_us.max(1);
            self.rttvar_us = rtt_us / 2;
        } else {
            // rttvar = 3/4 rttvar + 1/4 |srtt - rtt|; srtt = 7/8 srtt + 1/8 rtt.
            self.rttvar_us = (3 * self.rttvar_us + self.srtt_us.abs_diff(rtt_us)) / 4;
            self.srtt_us = (7 * self.srtt_us + rtt_us) / 8;
        }
    }

    /// The first retry timeout of a frame, ms, within [min, max].
    fn timeout_ms(&self, min_ms: u64, max_ms: u64) -> u64 {
        let us = self.srtt_us + 4 * self.rttvar_us;
        us.div_ceil(1000).clamp(min_ms, max_ms)
    }
}

#[derive(Debug)]
struct Peer {
    next_seq: u64,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    /// The peer's incarnation we track inbound (None: never heard from it).
    peer_epoch: Option<u64>,
    /// Next inbound seq to deliver.
    expected: u64,
    held: BTreeMap<u64, (Vec<u8>, u64)>,
    /// We owe the peer an ack by this time.
    ack_due_ms: Option<u64>,
    round_trip: RoundTrip,
    /// Doublings of the retry timeout in force (RFC 6298 5.5, 5.7): raised when a frame is
    /// sent again, kept for new frames until one is acknowledged without being sent again.
    backoff: u32,
}

impl Default for Peer {
    /// Sequence numbers start at 1 both ways (0 marks a pure ack).
    fn default() -> Peer {
        Peer {
            next_seq: 1,
            pending: VecDeque::new(),
            pending_bytes: 0,
            peer_epoch: None,
            expected: 1,
            held: BTreeMap::new(),
            ack_due_ms: None,
            round_trip: RoundTrip::default(),
            backoff: 0,
        }
    }
}

impl Peer {
    fn base(&self) -> u64 {
        self.pending.front().map_or(self.next_seq, |p| p.seq)
    }
}

/// A payload delivered in order from a peer, with the sender's first-send time.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivered {
    pub payload: Vec<u8>,
    pub sent_us: u64,
}

/// This node's links to every peer.
#[derive(Debug)]
pub struct Links {
    me: NodeId,
    epoch: u64,
    config: LinkConfig,
    peers: BTreeMap<NodeId, Peer>,
    stats: LinkStats,
    /// No peer has anything due before this (a retry, a give-up, an ack owed), so `poll`
    /// returns at once before it: a bridge turns far more often than frames fall due.
    next_due_ms: u64,
}

impl Links {
    /// The links of node `me` in its incarnation `epoch` (unique per start: e.g. the start
    /// time in microseconds).
    pub fn new(me: NodeId, epoch: u64, config: LinkConfig) -> Links {
        Links {
            me,
            epoch,
            config,
            peers: BTreeMap::new(),
            stats: LinkStats::default(),
            next_due_ms: u64::MAX,
        }
    }

    pub fn stats(&self) -> LinkStats {
        let pending = self.peers.values().map(|p| p.pending_bytes).sum::<usize>();
        let retry_ms = self
            .peers
            .values()
            .filter(|p| p.round_trip.srtt_us > 0)
            .map(|p| self.first_retry_ms(p))
            .max()
            .unwrap_or(0);
        LinkStats {
            pending_bytes: pending as u64,
            retry_ms,
            ..self.stats
        }
    }

    /// The retry timeout of a new frame toward `peer`: the measured one, backed off.
    fn first_retry_ms(&self, peer: &Peer) -> u64 {
        self.measured_retry_ms(peer)
            .saturating_mul(1 << peer.backoff)
            .min(self.config.max_retry_ms)
    }

    /// The retry timeout from `peer`'s round trips alone, within the configured bounds.
    fn measured_retry_ms(&self, peer: &Peer) -> u64 {
        let LinkConfig {
            min_retry_ms,
            max_retry_ms,
            ..
        } = self.config;
        peer.round_trip.timeout_ms(min_retry_ms, max_retry_ms)
    }

    /// Queues `payload` for `to` and returns the frame to publish now.
    pub fn send(
        &mut self,
        to: NodeId,
        payload: Vec<u8>,
        now_ms: u64,
        now_us: u64,
    ) -> Result<Vec<u8>, SendRefused> {
        if to == self.me {
            return Err(SendRefused::ToSelf);
        }
        let max = self.config.max_pending_bytes;
        let retry_ms = self
            .peers
            .get(&to)
            .map_or(self.config.min_retry_ms, |p| self.first_retry_ms(p));
        let peer = self.peers.entry(to).or_default();
        if peer.pending_bytes + payload.len() > max && !peer.pending.is_empty() {
            self.stats.refused += 1;
            return Err(SendRefused::Budget {
                pending_bytes: peer.pending_bytes,
            });
        }
        let seq = peer.next_seq;
        peer.next_seq += 1;
        peer.pending_bytes += payload.len();
        peer.pending.push_back(Pending {
            seq,
            payload,
            first_ms: now_ms,
            first_us: now_us,
            due_ms: now_ms + retry_ms,
            retries: 0,
        });
        self.next_due_ms = self.next_due_ms.min(now_ms + retry_ms);
        // The frame carries our ack to the peer: nothing more is owed.
        peer.ack_due_ms = None;
        self.stats.frames_sent += 1;
        let pending = peer.pending.back().map(|p| (p.seq, p.first_us));
        let (seq, first_us) = pending.unwrap_or((seq, now_us));
        Ok(self.frame(to, seq, first_us))
    }

    /// Takes a frame from the bus: delivers, in order and once, every payload it makes
    /// deliverable (from `Received::from`), and applies the ack it carries.
    /// `now_us` is the clock the frames' `sent_us` come from (the round trip is timed with it).
    pub fn receive(
        &mut self,
        frame: &[u8],
        now_ms: u64,
        now_us: u64,
    ) -> Result<Received, FrameError> {
        let (header, payload) = decode(frame)?;
        let mut received = Received {
            from: header.source,
            delivered: Vec::new(),
        };
        if header.source == self.me {
            return Ok(received); // our own frame echoed back (a misconfigured subject)
        }
        let ack_delay = self.config.ack_delay_ms;
        let max_held = self.config.max_held;
        let epoch = self.epoch;
        let peer = self.peers.entry(header.source).or_default();
        if peer.peer_epoch.is_some_and(|known| header.epoch < known) {
            // A late frame of an incarnation that has restarted since: nothing of it counts.
            self.stats.stale += 1;
            return Ok(received);
        }
        if header.ack_epoch == epoch {
            // Karn's rule: only a frame sent once times the round trip; the newest cleared
            // one is the freshest sample.
            let mut sample_us = None;
            while peer.pending.front().is_some_and(|p| p.seq <= header.ack) {
                if let Some(done) = peer.pending.pop_front() {
                    peer.pending_bytes -= done.payload.len();
                    sample_us = (done.retries == 0)
                        .then(|| now_us.saturating_sub(done.first_us))
                        .or(sample_us);
                }
            }
            if let Some(rtt_us) = sample_us {
                peer.round_trip.sample(rtt_us);
                peer.backoff = 0;
            }
        }
        if peer.peer_epoch != Some(header.epoch) {
            if peer.peer_epoch.is_some() {
                self.stats.peer_restarts += 1;
            }
            peer.peer_epoch = Some(header.epoch);
            peer.expected = header.base.max(1);
            peer.held.clear();
        }
        if header.base > peer.expected {
            // The sender gave up what we still wait for: move past it.
            peer.expected = header.base;
            let stale: Vec<u64> = peer.held.range(..header.base).map(|(&s, _)| s).collect();
            for seq in stale {
                peer.held.remove(&seq);
            }
        }
        if header.seq != 0 {
            if peer.ack_due_ms.is_none() {
                peer.ack_due_ms = Some(now_ms + ack_delay);
                self.next_due_ms = self.next_due_ms.min(now_ms + ack_delay);
            }
            if header.seq < peer.expected || peer.held.contains_key(&header.seq) {
                self.stats.duplicates += 1;
            } else if peer.held.len() >= max_held && header.seq != peer.expected {
                self.stats.held_dropped += 1;
            } else {
                peer.held
                    .insert(header.seq, (payload.to_vec(), header.sent_us));
            }
        }
        while let Some((payload, sent_us)) = peer.held.remove(&peer.expected) {
            peer.expected += 1;
            received.delivered.push(Delivered { payload, sent_us });
        }
        self.stats.delivered += received.delivered.len() as u64;
        Ok(received)
    }

    /// Frames due now: pending ones to send again (and those given up dropped), acks owed.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<(NodeId, Vec<u8>)>) {
        if now_ms < self.next_due_ms {
            return;
        }
        let nodes: Vec<NodeId> = self.peers.keys().copied().collect();
        for node in nodes {
            self.give_up_expired(node, now_ms);
            let max_retry = self.config.max_retry_ms;
            let Some(measured) = self.peers.get(&node).map(|p| self.measured_retry_ms(p)) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&node) else {
                continue;
            };
            let due: Vec<(u64, u64)> = peer
                .pending
                .iter_mut()
                .filter(|p| now_ms >= p.due_ms)
                .map(|p| {
                    p.retries += 1;
                    let wait = measured.saturating_mul(1 << p.retries.min(16));
                    p.due_ms = now_ms + wait.min(max_retry);
                    (p.seq, p.first_us)
                })
                .collect();
            if !due.is_empty() {
                peer.backoff = (peer.backoff + 1).min(16);
            }
            let owe_ack = peer.ack_due_ms.is_some_and(|at| now_ms >= at);
            if !due.is_empty() || owe_ack {
                peer.ack_due_ms = None;
            }
            if due.is_empty() && owe_ack {
                self.stats.acks_sent += 1;
                out.push((node, self.frame(node, 0, 0)));
            }
            for (seq, first_us) in due {
                self.stats.retransmits += 1;
                out.push((node, self.frame(node, seq, first_us)));
            }
        }
        self.next_due_ms = self.earliest_due_ms().unwrap_or(u64::MAX);
    }

    /// When `poll` next has something to do.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        (self.next_due_ms != u64::MAX).then_some(self.next_due_ms)
    }

    /// The earliest retry, give-up or ack owed of any peer (a full scan; `poll` keeps the
    /// result in `next_due_ms`, which `send` and `receive` only ever lower).
    fn earliest_due_ms(&self) -> Option<u64> {
        let timeout = self.config.retry_timeout_ms;
        self.peers
            .values()
            .flat_map(|p| {
                let retry = p.pending.iter().map(|q| q.due_ms).min();
                let give_up = p.pending.front().map(|q| q.first_ms + timeout);
                [retry, give_up, p.ack_due_ms]
            })
            .flatten()
            .min()
    }

    fn give_up_expired(&mut self, node: NodeId, now_ms: u64) {
        let timeout = self.config.retry_timeout_ms;
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        while peer
            .pending
            .front()
            .is_some_and(|p| now_ms >= p.first_ms + timeout)
        {
            if let Some(gone) = peer.pending.pop_front() {
                peer.pending_bytes -= gone.payload.len();
                self.stats.given_up += 1;
            }
        }
    }

    /// The frame of pending `seq` toward `to` (0: a pure ack), with the current acks.
    fn frame(&self, to: NodeId, seq: u64, sent_us: u64) -> Vec<u8> {
        let peer = self.peers.get(&to);
        let payload: &[u8] = peer
            .and_then(|p| p.pending.iter().find(|q| q.seq == seq))
            .map_or(&[], |q| &q.payload);
        let header = Header {
            source: self.me,
            epoch: self.epoch,
            seq,
            base: peer.map_or(1, Peer::base),
            ack_epoch: peer.and_then(|p| p.peer_epoch).unwrap_or(0),
            ack: peer.map_or(0, |p| p.expected - 1),
            sent_us,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        encode_header(&header, &mut out);
        out.extend_from_slice(payload);
        out
    }
}

/// What one received frame brought.
#[derive(Debug)]
pub struct Received {
    pub from: NodeId,
    pub delivered: Vec<Delivered>,
}

fn encode_header(h: &Header, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&h.source.0.to_le_bytes());
    for value in [h.epoch, h.seq, h.base, h.ack_epoch, h.ack, h.sent_us] {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Splits a frame into its header and payload.
pub fn decode(frame: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::TooShort(frame.len()));
    }
    if frame[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&frame[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let header = Header {
        source: NodeId(u16::from_le_bytes([frame[4], frame[5]])),
        epoch: u64_at(6),
        seq: u64_at(14),
        base: u64_at(22),
        ack_epoch: u64_at(30),
        ack: u64_at(38),
        sent_us: u64_at(46),
    };
    Ok((header, &frame[HEADER_LEN..]))
}

#[cfg(test)]
mod tests;
