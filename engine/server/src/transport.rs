//! The layers below each conn's XML stream: TLS, on the shard's own thread.
//!
//! What it does: keeps, for the conns that have one, the conn's layers ([`ConnLayers`]: a
//! rookery-tls session), turns the bytes the driver received into stream bytes for the
//! router ([`Transports::open`]), the router's output into wire bytes ([`Transports::seal`]),
//! and says goodbye properly ([`Transports::close`]: TLS close_notify). TLS starts at accept
//! on the direct-TLS listener (XEP-0368, `--listen-tls`) or when the router negotiated
//! STARTTLS (`Effects::start_tls`). A conn's layers travel with its socket when it is handed
//! to another shard (`ShardMail::Adopt`).
//!
//! Why here and not in the router: the router is the XML stream; these layers are bytes to
//! bytes, need the certificate (a process resource, reloaded on SIGHUP) and must see every
//! byte the router writes (every `Effects::send`) without the router knowing. The router
//! only asks what they are (`Effects::transport`: security and framing).
//!
//! Memory: a plaintext conn has no entry (one hash lookup per send and receive, skipped
//! while no conn of the shard has a layer). A TLS conn holds one boxed `ConnLayers`
//! (rustls' unbuffered connection and its keys: about 3.4 KB idle, see rookery-tls); the
//! plaintext and wire vectors are per shard, reused by every conn, and capped: a scratch
//! vector that grew past `SCRATCH_KEEP_BYTES` for one big stanza is freed after use.
//!
//! What it does not do: decide anything about XMPP (STARTTLS policy, PLAIN, -PLUS: the
//! router's `stream::tls`), sockets (the driver), or certificates (rookery-tls loads them).
//!
//! Invariants: bytes for the peer that a layer produced while reading (handshake flights,
//! alerts, close_notify) are sent raw, before anything sealed after them; a layer that
//! failed sends its alert and the conn is closed, the router hears of it as `Closed` like
//! any other close.

use std::collections::HashMap;

use rookery_io::{ConnId, Linger, Ops, SendError};
use rookery_router::{ConnKey, Framing, Security, Transport};
use rookery_tls::{ErrorCause, TlsContext, TlsSession};

/// A scratch vector past this capacity is freed after the call that grew it.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

/// The layers of one conn.
pub struct ConnLayers {
    tls: TlsSession,
    /// The handshake completion was counted.
    handshake_counted: bool,
}

impl std::fmt::Debug for ConnLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLayers")
            .field("tls", &self.tls)
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
}

/// The layers of every conn of one shard that has some.
pub struct Transports {
    by_conn: HashMap<ConnKey, Box<ConnLayers>>,
    /// The certificate new TLS sessions use (`None`: the server has none).
    tls: Option<TlsContext>,
    /// Bytes a STARTTLS client sent after its `<starttls/>`, for its new TLS layer: opened
    /// right after the router call that started TLS returns.
    early: Vec<(ConnKey, Vec<u8>)>,
    /// Wire bytes produced by one call, sent then cleared.
    wire: Vec<u8>,
    stats: TransportStats,
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
    pub fn new(tls: Option<TlsContext>) -> Transports {
        Transports {
            by_conn: HashMap::new(),
            tls,
            early: Vec::new(),
            wire: Vec::new(),
            stats: TransportStats::default(),
        }
    }

    /// What the router sees of `key`'s layers.
    pub fn transport(&self, key: ConnKey) -> Transport {
        match self.by_conn.get(&key) {
            None => Transport::PLAIN,
            Some(layers) => Transport {
                security: Security::Tls {
                    exporter: layers.tls.channel_binding_exporter(),
                },
                framing: Framing::Stream,
            },
        }
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
        let layers = ConnLayers {
            tls: TlsSession::new(context),
            handshake_counted: false,
        };
        self.by_conn.insert(key, Box::new(layers));
        self.stats.tls_sessions = self.by_conn.len() as u64;
        if !early.is_empty() {
            self.early.push((key, early.to_vec()));
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
        self.wire.clear();
        let result = layers.tls.read(wire, stream, &mut self.wire);
        let first_completion = matches!(&result, Ok(o) if o.handshake_completed)
            && !std::mem::replace(&mut layers.handshake_counted, true);
        let id = ConnId::from_u64(key.0);
        if !self.wire.is_empty() {
            // Raw: these records are already protected (or are the handshake).
            let _ = io.send(id, &self.wire);
        }
        self.trim_wire();
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
                match layers.tls.write(bytes, &mut self.wire) {
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
        layers.tls.close(&mut self.wire);
        if !self.wire.is_empty() {
            let _ = io.send(ConnId::from_u64(key.0), &self.wire);
        }
    }

    /// The conn is gone (closed, or detached to another shard: then its layers go along).
    pub fn remove(&mut self, key: ConnKey) -> Option<Box<ConnLayers>> {
        let layers = self.by_conn.remove(&key);
        self.stats.tls_sessions = self.by_conn.len() as u64;
        layers
    }

    /// A handed-off conn's layers, under its new key on this shard.
    pub fn insert(&mut self, key: ConnKey, layers: Box<ConnLayers>) {
        self.by_conn.insert(key, layers);
        self.stats.tls_sessions = self.by_conn.len() as u64;
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
            .map(|l| std::mem::size_of::<ConnLayers>() + l.tls.heap_bytes())
            .sum();
        let map = self.by_conn.capacity() * (std::mem::size_of::<(ConnKey, Box<ConnLayers>)>() + 1);
        boxes + map + self.wire.capacity()
    }

    fn trim_wire(&mut self) {
        if self.wire.capacity() > SCRATCH_KEEP_BYTES {
            self.wire = Vec::new();
        }
    }
}
