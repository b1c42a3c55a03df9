//! The layers below each conn's XML stream: TLS and WebSocket, on the shard's own thread.
//!
//! What it does: keeps, for the conns that have one, the conn's layers ([`ConnLayers`]: a
//! rookery-tls session, a rookery-ws WebSocket layer, or both), turns the bytes the driver received into stream bytes for the
//! router ([`Transports::open`]), the router's output into wire bytes ([`Transports::seal`]),
//! and says goodbye properly ([`Transports::close`]: a WebSocket close frame, then TLS
//! close_notify). TLS starts at accept on the direct-TLS listener (XEP-0368, `--listen-tls`)
//! or when the router negotiated STARTTLS (`Effects::start_tls`); WebSocket when the shard
//! adopts a conn the HTTP server upgraded ([`Transports::start_websocket`], see `websocket`).
//! Inbound the order is TLS then WebSocket, outbound WebSocket then TLS. A conn's layers
//! travel with its socket when it is handed to another shard (`ShardMail::Adopt`).
//! With `--ws-ping-interval`, quiet WebSocket conns get a ping and are closed (1001) when it
//! goes unanswered for `--ws-ping-timeout` ([`Transports::keep_alive`], checked once a
//! second from the shard's turn).
//!
//! Why here and not in the router: the router is the XML stream; these layers are bytes to
//! bytes, need the certificate (a process resource, reloaded on SIGHUP) and must see every
//! byte the router writes (every `Effects::send`) without the router knowing. The router
//! only asks what they are (`Effects::transport`: security and framing).
//!
//! Memory: a plaintext conn has no entry (one hash lookup per send and receive, skipped
//! while no conn of the shard has a layer). A conn with layers has a 24-byte map entry
//! and a box per layer: a TLS session (rustls' unbuffered connection and its keys: about
//! 3.4 KB idle, see rookery-tls), a WebSocket layer (192 B with its keepalive timers, no
//! heap of its own when idle; a WebSocket conn never pays for the TLS session's room:
//! measured 1,032 B per idle WebSocket session against 927 B over TCP, server RSS slope from
//! 2,000 to 4,000 sessions, results/20261207-1951*-idle-sessions-uring*, when the layer was
//! 160 B); the
//! plaintext and wire vectors are per shard, reused by every conn, and capped: a scratch
//! vector that grew past `SCRATCH_KEEP_BYTES` for one big stanza is freed after use.
//!
//! What it does not do: decide anything about XMPP (STARTTLS policy, PLAIN, -PLUS: the
//! router's `stream::tls`), sockets (the driver), or certificates (rookery-tls loads them).
//!
//! Invariants: bytes for the peer that a layer produced while reading (handshake flights,
//! alerts, close_notify; WebSocket pongs and close frames, through TLS if any) are sent
//! before anything sealed after them; a layer that failed sends its alert (or close frame:
//! 1002, 1003, 1009) and the conn is closed, the router hears of it as `Closed` like any
//! other close (a XEP-0198 session stays resumable, as on a dropped TCP conn).

use std::collections::HashMap;

use rookery_io::{ConnId, Linger, Ops, SendError};
use rookery_router::{ConnKey, Framing, Security, Transport};
use rookery_tls::{ErrorCause, TlsContext, TlsSession};
use rookery_ws::{Due, KeepalivePolicy, ServerLayer, Status};

/// A scratch vector past this capacity is freed after the call that grew it.
pub const SCRATCH_KEEP_BYTES: usize = 64 * 1024;
/// How often the WebSocket conns' keepalive timers are checked (their precision).
pub const KEEPALIVE_CHECK_MS: u64 = 1000;

/// The layers of one conn: at least one of the two, each boxed, so a conn pays only for the
/// layers it has (a TLS session is 1,168 B inline, a WebSocket layer 192 B).
pub struct ConnLayers {
    tls: Option<Box<TlsSession>>,
    /// The handshake completion was counted.
    handshake_counted: bool,
    ws: Option<Box<ServerLayer>>,
    /// The HTTP server ended TLS and relays the plaintext to us (an HTTPS WebSocket).
    tls_relayed: bool,
}

impl std::fmt::Debug for ConnLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLayers")
            .field("tls", &self.tls)
            .field("ws", &self.ws)
            .finish_non_exhaustive()
    }
}

/// Counters of one shard's layers (published with the loop's stats).
#[derive(Clone, Copy, Debug, Default)]
pub struct TransportStats {
    pub tls_handshakes: u64,
    pub tls_failures_peer: u64,
    pub tls_failures_local: u64,
    /// Conns with a TLS layer now.
    pub tls_sessions: u64,
    /// Conns speaking WebSocket now.
    pub ws_sessions: u64,
    /// WebSocket conns closed for a bad frame (unmasked, binary, too big, malformed).
    pub ws_frame_errors: u64,
    /// Keepalive pings sent to quiet WebSocket conns.
    pub ws_keepalive_pings: u64,
    /// WebSocket conns closed because a keepalive ping went unanswered.
    pub ws_keepalive_timeouts: u64,
}

/// The layers of every conn of one shard that has some.
pub struct Transports {
    by_conn: HashMap<ConnKey, ConnLayers>,
    /// The certificate new TLS sessions use (`None`: the server has none).
    tls: Option<TlsContext>,
    /// Bytes a STARTTLS client sent after its `<starttls/>`, for its new TLS layer: opened
    /// right after the router call that started TLS returns.
    early: Vec<(ConnKey, Vec<u8>)>,
    /// Wire bytes produced by one call, sent then cleared.
    wire: Vec<u8>,
    /// Between the two layers of a WebSocket-over-TLS conn (TLS plaintext = WebSocket wire).
    middle: Vec<u8>,
    stats: TransportStats,
    /// When quiet WebSocket conns get a ping and when they are given up (`--ws-ping-*`).
    keepalive: Option<KeepalivePolicy>,
    /// The last keepalive check (every [`KEEPALIVE_CHECK_MS`]).
    keepalive_checked_ms: u64,
}

/// What a conn's received bytes became.
pub enum Opened {
    /// No layer: the bytes are the stream.
    Bare,
    /// Stream bytes (possibly none: a handshake step) were appended to the caller's vector.
    Decoded,
    /// The layer failed: its alert was sent and the conn is closing.
    Failed,
}

impl Transports {
    pub fn new(tls: Option<TlsContext>, keepalive: Option<KeepalivePolicy>) -> Transports {
        Transports {
            keepalive,
            keepalive_checked_ms: 0,
            by_conn: HashMap::new(),
            tls,
            early: Vec::new(),
            wire: Vec::new(),
            middle: Vec::new(),
            stats: TransportStats::default(),
        }
    }

    /// What the router sees of `key`'s layers.
    pub fn transport(&self, key: ConnKey) -> Transport {
        let Some(layers) = self.by_conn.get(&key) else {
            return Transport::PLAIN;
        };
        let security = match (&layers.tls, layers.tls_relayed) {
            (Some(tls), _) => Security::Tls {
                exporter: tls.channel_binding_exporter(),
            },
            // The HTTP server holds the TLS session: nothing to bind SCRAM-PLUS to here.
            (None, true) => Security::Tls { exporter: None },
            (None, false) => Security::Clear,
        };
        let framing = match layers.ws {
            Some(_) => Framing::WebSocket,
            None => Framing::Stream,
        };
        Transport { security, framing }
    }

    /// Whether new conns can get TLS (a certificate is loaded).
    pub fn has_certificate(&self) -> bool {
        self.tls.is_some()
    }

    /// Starts TLS on `key` (direct TLS at accept, or STARTTLS after `<proceed/>`); `early`
    /// ciphertext waits for [`Transports::take_early`]. Without a certificate the conn is
    /// closed: the router offers STARTTLS only with one, so this is a wiring bug.
    pub fn start_tls(&mut self, io: &mut impl Ops, key: ConnKey, early: &[u8]) {
        let Some(context) = &self.tls else {
            debug_assert!(false, "TLS started without a certificate");
            io.close(ConnId::from_u64(key.0), Linger::Abort);
            return;
        };
        let session = Box::new(TlsSession::new(context));
        // An existing entry is a WebSocket conn: never from the router (no STARTTLS over
        // WebSocket, RFC 7395 3.1), kept general all the same.
        let mut layers = self.remove_layers(key).unwrap_or(ConnLayers {
            tls: None,
            handshake_counted: false,
            ws: None,
            tls_relayed: false,
        });
        layers.tls = Some(session);
        self.put(key, layers);
        if !early.is_empty() {
            self.early.push((key, early.to_vec()));
        }
    }

    /// A conn the HTTP server upgraded to WebSocket (RFC 7395): its stanzas are at most
    /// `max_stanza_bytes`; `tls_relayed` when the client's bytes came over HTTPS.
    pub fn start_websocket(&mut self, key: ConnKey, max_stanza_bytes: usize, tls_relayed: bool) {
        let layers = ConnLayers {
            tls: None,
            handshake_counted: false,
            ws: Some(Box::new(ServerLayer::new(max_stanza_bytes))),
            tls_relayed,
        };
        self.put(key, layers);
    }

    /// Stores `layers` for `key`, counting its sessions (and uncounting any it replaces).
    fn put(&mut self, key: ConnKey, layers: ConnLayers) {
        self.tally(&layers, true);
        if let Some(old) = self.by_conn.insert(key, layers) {
            self.tally(&old, false);
        }
    }

    fn remove_layers(&mut self, key: ConnKey) -> Option<ConnLayers> {
        let layers = self.by_conn.remove(&key)?;
        self.tally(&layers, false);
        Some(layers)
    }

    fn tally(&mut self, layers: &ConnLayers, added: bool) {
        let stats = &mut self.stats;
        for (count, has) in [
            (&mut stats.tls_sessions, layers.tls.is_some()),
            (&mut stats.ws_sessions, layers.ws.is_some()),
        ] {
            match (has, added) {
                (false, _) => {}
                (true, true) => *count += 1,
                (true, false) => *count = count.saturating_sub(1),
            }
        }
    }

    /// Early bytes of a STARTTLS conn, if any are waiting: open them like received bytes.
    pub fn take_early(&mut self) -> Option<(ConnKey, Vec<u8>)> {
        self.early.pop()
    }

    /// Received `wire` bytes of `key`: decoded stream bytes are appended to `stream`; bytes
    /// the layer must send back (handshake, alerts) are sent here.
    pub fn open(
        &mut self,
        io: &mut impl Ops,
        key: ConnKey,
        wire: &[u8],
        stream: &mut Vec<u8>,
    ) -> Opened {
        let Some(layers) = self.by_conn.get_mut(&key) else {
            return Opened::Bare;
        };
        let id = ConnId::from_u64(key.0);
        let Some(tls) = &mut layers.tls else {
            // WebSocket alone: its frames are the wire.
            return Self::open_websocket(
                layers,
                io,
                id,
                wire,
                stream,
                &mut self.wire,
                &mut self.stats,
            );
        };
        self.wire.clear();
        // With a WebSocket layer above, TLS plaintext is WebSocket wire: decode it in between.
        let plain = if layers.ws.is_some() {
            &mut self.middle
        } else {
            &mut *stream
        };
        if layers.ws.is_some() {
            plain.clear();
        }
        let result = tls.read(wire, plain, &mut self.wire);
        let first_completion = matches!(&result, Ok(o) if o.handshake_completed)
            && !std::mem::replace(&mut layers.handshake_counted, true);
        if !self.wire.is_empty() {
            // Raw: these records are already protected (or are the handshake).
            let _ = io.send(id, &self.wire);
        }
        Self::trim(&mut self.wire);
        if result.is_ok() && layers.ws.is_some() {
            let middle = std::mem::take(&mut self.middle);
            let opened = Self::open_websocket(
                layers,
                io,
                id,
                &middle,
                stream,
                &mut self.wire,
                &mut self.stats,
            );
            self.middle = middle;
            Self::trim(&mut self.middle);
            if let Opened::Failed = opened {
                return opened;
            }
        }
        match result {
            Ok(_) => {
                if first_completion {
                    self.stats.tls_handshakes += 1;
                }
                // A close_notify (`outcome.peer_closed`) needs nothing here: the stream's own
                // `</stream:stream>` (decoded with it) or the TCP close ends the conn, and the
                // session reads nothing after it.
                Opened::Decoded
            }
            Err(error) => {
                match error.cause() {
                    ErrorCause::Peer => self.stats.tls_failures_peer += 1,
                    ErrorCause::Local => self.stats.tls_failures_local += 1,
                }
                tracing::debug!(conn = key.0, "TLS failed: {error}");
                io.close(id, Linger::Flush);
                Opened::Failed
            }
        }
    }

    /// Sends the router's `bytes` for `key` through its layers (or as they are). A queue
    /// past its cap aborts the conn, as for a plaintext one; returns false then.
    pub fn seal_and_send(&mut self, io: &mut impl Ops, key: ConnKey, bytes: &[u8]) -> bool {
        let id = ConnId::from_u64(key.0);
        let sent = match self.by_conn.get_mut(&key) {
            None => io.send(id, bytes),
            Some(layers) => {
                self.wire.clear();
                let mut bytes = bytes;
                if let Some(ws) = &mut layers.ws {
                    self.middle.clear();
                    if let Err(error) = ws.seal(bytes, &mut self.middle) {
                        tracing::debug!(conn = key.0, "WebSocket write refused: {error}");
                        io.close(id, Linger::Abort);
                        return true;
                    }
                    let Some(_) = &layers.tls else {
                        let sent = io.send(id, &self.middle);
                        Self::trim(&mut self.middle);
                        return !matches!(sent, Err(SendError::QueueFull));
                    };
                    bytes = &self.middle;
                }
                let Some(tls) = &mut layers.tls else {
                    return true; // a conn has at least one layer
                };
                match tls.write(bytes, &mut self.wire) {
                    Ok(()) => {
                        let sent = io.send(id, &self.wire);
                        self.trim_wire();
                        sent
                    }
                    Err(error) => {
                        // Before the handshake completed (a timeout, a refusal at connect)
                        // nothing can be said inside TLS: the conn just closes.
                        tracing::debug!(conn = key.0, "TLS write refused: {error}");
                        io.close(id, Linger::Abort);
                        return true;
                    }
                }
            }
        };
        !matches!(sent, Err(SendError::QueueFull))
    }

    /// Before a close the router asked for: TLS close_notify goes after everything queued.
    pub fn close(&mut self, io: &mut impl Ops, key: ConnKey) {
        let Some(layers) = self.by_conn.get_mut(&key) else {
            return;
        };
        self.wire.clear();
        if let Some(ws) = &mut layers.ws {
            // RFC 7395 3.6: after the router's `<close/>`, the WebSocket close.
            self.middle.clear();
            ws.close(&mut self.middle);
            match &mut layers.tls {
                Some(tls) => {
                    let _ = tls.write(&self.middle, &mut self.wire);
                }
                None => self.wire.extend_from_slice(&self.middle),
            }
        }
        if let Some(tls) = &mut layers.tls {
            tls.close(&mut self.wire);
        }
        if !self.wire.is_empty() {
            let _ = io.send(ConnId::from_u64(key.0), &self.wire);
        }
    }

    /// WebSocket frames of `id` in, stream bytes out (see rookery-ws's `ServerLayer`): pongs
    /// and close frames are sent at once (through TLS if any); a bad frame, or the peer's
    /// close, closes the conn after them.
    fn open_websocket(
        layers: &mut ConnLayers,
        io: &mut impl Ops,
        id: ConnId,
        frames: &[u8],
        stream: &mut Vec<u8>,
        wire: &mut Vec<u8>,
        stats: &mut TransportStats,
    ) -> Opened {
        let Some(ws) = &mut layers.ws else {
            return Opened::Bare;
        };
        let mut reply = Vec::new();
        let result = ws.open(frames, stream, &mut reply);
        if !reply.is_empty() {
            send_control(layers.tls.as_deref_mut(), io, id, &reply, wire);
        }
        match result {
            Ok(Status::Open | Status::Closed) => Opened::Decoded,
            Ok(Status::PeerClosed) => {
                // Our close frame answered theirs: nothing more may be sent; what they wrote
                // before it still reaches the router (a `<close/>` ends the stream cleanly).
                io.close(id, Linger::Flush);
                Opened::Decoded
            }
            Err(error) => {
                stats.ws_frame_errors += 1;
                tracing::debug!(conn = id.to_u64(), "WebSocket frame refused: {error}");
                io.close(id, Linger::Flush);
                Opened::Failed
            }
        }
    }

    /// The keepalive of the WebSocket conns, at most every [`KEEPALIVE_CHECK_MS`]: a ping
    /// to each conn quiet for the policy's idle time (through TLS if any); a conn whose ping
    /// went unanswered gets a close frame (1001) and is closed, which the router hears as
    /// any close (a XEP-0198 session stays resumable). O(WebSocket conns) per check.
    pub fn keep_alive(&mut self, io: &mut impl Ops, now_ms: u64) {
        let Some(policy) = self.keepalive else {
            return;
        };
        if self.stats.ws_sessions == 0
            || now_ms.saturating_sub(self.keepalive_checked_ms) < KEEPALIVE_CHECK_MS
        {
            return;
        }
        self.keepalive_checked_ms = now_ms;
        let frames = &mut self.middle;
        for (key, layers) in &mut self.by_conn {
            let Some(ws) = &mut layers.ws else { continue };
            frames.clear();
            let due = ws.keepalive(now_ms, policy, frames);
            match due {
                Due::Nothing => continue,
                Due::Ping => self.stats.ws_keepalive_pings += 1,
                Due::TimedOut => self.stats.ws_keepalive_timeouts += 1,
            }
            let id = ConnId::from_u64(key.0);
            send_control(layers.tls.as_deref_mut(), io, id, frames, &mut self.wire);
            if due == Due::TimedOut {
                tracing::debug!(conn = key.0, "WebSocket keepalive ping unanswered: closed");
                io.close(id, Linger::Flush);
            }
        }
    }

    /// The conn is gone (closed, or detached to another shard: then its layers go along).
    pub fn remove(&mut self, key: ConnKey) -> Option<ConnLayers> {
        self.remove_layers(key)
    }

    /// A handed-off conn's layers, under its new key on this shard.
    pub fn insert(&mut self, key: ConnKey, layers: ConnLayers) {
        self.put(key, layers);
    }

    /// Whether no conn of this shard has a layer (the hot path skips the lookup).
    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }

    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// Heap held by the layers: each box (the session inline) and rustls' own heap as
    /// rookery-tls estimates it, plus the map. O(TLS conns): read it once a second.
    pub fn heap_bytes(&self) -> usize {
        let boxes: usize = self
            .by_conn
            .values()
            .map(|l| {
                let tls = l
                    .tls
                    .as_ref()
                    .map_or(0, |t| std::mem::size_of::<TlsSession>() + t.heap_bytes());
                let ws =
                    l.ws.as_ref()
                        .map_or(0, |w| std::mem::size_of::<ServerLayer>() + w.heap_bytes());
                tls + ws
            })
            .sum();
        let map = self.by_conn.capacity() * (std::mem::size_of::<(ConnKey, ConnLayers)>() + 1);
        boxes + map + self.wire.capacity() + self.middle.capacity()
    }

    fn trim_wire(&mut self) {
        Self::trim(&mut self.wire);
        Self::trim(&mut self.middle);
    }

    fn trim(scratch: &mut Vec<u8>) {
        if scratch.capacity() > SCRATCH_KEEP_BYTES {
            *scratch = Vec::new();
        }
    }
}

/// Sends WebSocket frames the layer made itself (a pong, a keepalive ping, a close frame) on
/// `id`, through its TLS session if it has one (`wire` is the scratch for the records).
fn send_control(
    tls: Option<&mut TlsSession>,
    io: &mut impl Ops,
    id: ConnId,
    frames: &[u8],
    wire: &mut Vec<u8>,
) {
    let bytes = match tls {
        Some(tls) => {
            wire.clear();
            let _ = tls.write(frames, wire);
            &wire[..]
        }
        None => frames,
    };
    let _ = io.send(id, bytes);
}
