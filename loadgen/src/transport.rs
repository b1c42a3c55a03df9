//! `--transport websocket`: every conn of a worker speaks XMPP over WebSocket (RFC 7395)
//! through rookery-ws's client layer, below the scenarios, which never know.
//!
//! How: the worker's I/O goes through [`LayeredOps`] (an `Ops` wrapper: a conn's sends are
//! encoded into frames, its connect creates its layer) and the driver's events through
//! [`LayeredHandler`] (received bytes decoded before the worker sees them). The upgrade
//! request leaves with the stream's first bytes, without waiting for the 101.
//!
//! What it does not do: TLS (`wss://`), or anything on plain TCP runs (`Ws::off()`: every call
//! goes straight through, no lookup).
//!
//! Memory: a WebSocket client holds a boxed `ClientLayer` (its decoder, key, partial
//! message), a few hundred bytes, besides the client itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rookery_io::{ConnId, Driver, Event, FileId, FileSync, Handler, Linger, Ops, SendError};
use rookery_ws::ClientLayer;

/// The WebSocket layers of one worker's conns (none on a TCP run).
#[derive(Debug)]
pub struct Ws {
    /// `Some((host, path))` when the run is over WebSocket.
    target: Option<(String, String)>,
    max_message_bytes: usize,
    by_conn: HashMap<ConnId, Box<ClientLayer>>,
    next_seed: u64,
    wire: Vec<u8>,
    stream: Vec<u8>,
}

impl Ws {
    pub fn off() -> Ws {
        Ws::new(None, 0, 0)
    }

    /// Layers upgrading `path` on `host`, seeded from `seed`.
    pub fn new(target: Option<(String, String)>, max_message_bytes: usize, seed: u64) -> Ws {
        Ws {
            target,
            max_message_bytes,
            by_conn: HashMap::new(),
            next_seed: seed | 1,
            wire: Vec::new(),
            stream: Vec::new(),
        }
    }

    /// `io` with this worker's layers below it.
    pub fn ops<'a, O: Ops>(&'a mut self, io: &'a mut O) -> LayeredOps<'a, O> {
        LayeredOps { io, ws: self }
    }

    fn on(&self) -> bool {
        self.target.is_some()
    }
}

/// `Ops` that frame each conn's bytes.
pub struct LayeredOps<'a, O: Ops> {
    io: &'a mut O,
    ws: &'a mut Ws,
}

impl<O: Ops> Ops for LayeredOps<'_, O> {
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        if !self.ws.on() {
            return self.io.send(conn, bytes);
        }
        let Some(layer) = self.ws.by_conn.get_mut(&conn) else {
            return Err(SendError::Stale);
        };
        self.ws.wire.clear();
        if layer.encode(bytes, &mut self.ws.wire).is_err() {
            return Err(SendError::Stale);
        }
        self.io.send(conn, &self.ws.wire)
    }

    fn close(&mut self, conn: ConnId, linger: Linger) {
        if let (Some(layer), Linger::Flush) = (self.ws.by_conn.get_mut(&conn), linger) {
            self.ws.wire.clear();
            layer.close(&mut self.ws.wire);
            let _ = self.io.send(conn, &self.ws.wire);
        }
        self.io.close(conn, linger);
    }

    fn detach(&mut self, conn: ConnId) {
        self.io.detach(conn);
    }

    fn adopt(&mut self, socket: OwnedFd) -> std::io::Result<ConnId> {
        self.io.adopt(socket)
    }

    fn connect(&mut self, peer: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<ConnId> {
        let conn = self.io.connect(peer, source)?;
        if let Some((host, path)) = &self.ws.target {
            self.ws.next_seed = self.ws.next_seed.wrapping_mul(6364136223846793005) | 1;
            let layer = ClientLayer::new(host, path, self.ws.next_seed, self.ws.max_message_bytes);
            self.ws.by_conn.insert(conn, Box::new(layer));
        }
        Ok(conn)
    }

    fn queued_bytes(&self, conn: ConnId) -> usize {
        self.io.queued_bytes(conn)
    }

    fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, sync: FileSync) -> u64 {
        self.io.write_file(file, offset, bytes, sync)
    }

    fn read_file(&mut self, file: FileId, offset: u64, len: usize, buffer: Vec<u8>) -> u64 {
        self.io.read_file(file, offset, len, buffer)
    }
}

/// What the worker handles, given `Ops` of any kind.
pub trait LayeredEvents {
    fn on_layered_event<O: Ops>(&mut self, io: &mut O, event: Event<'_>);
}

/// The driver's events, decoded through the layers, for `inner`.
pub struct LayeredHandler<'a, H> {
    pub inner: &'a mut H,
    pub ws: &'a mut Ws,
}

impl<D: Driver, H: LayeredEvents> Handler<D> for LayeredHandler<'_, H> {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>) {
        if !self.ws.on() {
            return self.inner.on_layered_event(io, event);
        }
        match event {
            Event::Received { conn, data } => {
                let Some(layer) = self.ws.by_conn.get_mut(&conn) else {
                    return;
                };
                let mut stream = std::mem::take(&mut self.ws.stream);
                stream.clear();
                self.ws.wire.clear();
                let decoded = layer.decode(data, &mut stream, &mut self.ws.wire);
                if !self.ws.wire.is_empty() {
                    let _ = io.send(conn, &self.ws.wire);
                }
                if !stream.is_empty() {
                    let event = Event::Received {
                        conn,
                        data: &stream,
                    };
                    self.inner.on_layered_event(&mut self.ws.ops(io), event);
                }
                if let Err(error) = decoded {
                    tracing::debug!("WebSocket conn ended: {error}");
                    io.close(conn, Linger::Flush);
                }
                self.ws.stream = stream;
            }
            Event::Closed { conn, reason } => {
                self.ws.by_conn.remove(&conn);
                let event = Event::Closed { conn, reason };
                self.inner.on_layered_event(&mut self.ws.ops(io), event);
            }
            other => self.inner.on_layered_event(&mut self.ws.ops(io), other),
        }
    }
}

/// A worker's layers for `cfg`: WebSocket ones when the run asks for them. The Host header is
/// `--server` as given (host:port).
pub fn worker_layers(cfg: &crate::cli::RunConfig, thread: usize) -> Ws {
    if cfg.transport != crate::cli::TransportArg::Websocket {
        return Ws::off();
    }
    let host = cfg.server.to_string();
    let seed = cfg.seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Ws::new(Some((host, cfg.ws_path.clone())), MAX_MESSAGE_BYTES, seed)
}

/// The longest message a WebSocket client takes (the server's stanza limit is 64 KiB by
/// default; stored backlogs come a stanza per message).
const MAX_MESSAGE_BYTES: usize = 1 << 20;
