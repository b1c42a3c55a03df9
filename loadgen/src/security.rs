//! TLS and SASL of a run (`--tls`, `--tls-ca`, `--tls-insecure`, `--tls-resume`, `--sasl`):
//! the rustls config each worker thread builds, the TLS session of each of its conns, and an
//! [`Ops`] wrapper through which the worker's sends are encrypted.
//!
//! How it fits the worker: the worker sends with `io.send(conn, bytes)` wherever it is; the
//! worker's `io` is a [`TlsOps`] over the driver's ops, so a conn with a session has its bytes
//! encrypted on the way and one without is untouched (plaintext runs pay one table lookup).
//! Received bytes are decrypted before the client sees them (`worker::events`). Direct TLS
//! makes the session when the conn is made (`connect`); STARTTLS when the server says
//! `<proceed/>` ([`TlsConns::install`], then the client restarts its stream through it).
//!
//! Memory: rustls' buffered `ClientConnection` per TLS conn, boxed, on top of the plaintext
//! client's budget (its size is measured by the run's RSS probe, see the results README).
//!
//! What it does not do: client certificates, SCRAM-*-PLUS, kTLS, TLS for `drain` (its own
//! blocking conns) or `demo`.
//!
//! Invariants: a conn's session lives from its connect (direct) or `<proceed/>` (STARTTLS)
//! until its close or `Closed`; an entry whose generation is not the conn's is stale and
//! never used; every byte rustls produces for a conn is sent on that conn in order.

use std::sync::Arc;

use rookery_client::layer::Layer;
use rookery_client::tls::{self, Config as ClientConfig, Negotiated, TlsLayer, Trust};
use rookery_client::Mechanisms;
use rookery_io::{ConnId, FileId, FileSync, Linger, Ops, SendError};

use crate::cli::{RunConfig, SaslArg, TlsArg};

/// Checks the run's TLS settings once, before anything connects (a bad CA file is an error
/// naming it); warns loudly when certificates will not be verified.
pub fn check(cfg: &RunConfig) -> anyhow::Result<()> {
    if base_config(cfg)?.is_some() && cfg.security.tls_insecure {
        eprintln!(
            "WARNING: --tls-insecure: server certificates are NOT verified (anyone in the \
             middle is believed); use it for benchmarks on a test host only"
        );
    }
    Ok(())
}

/// The run's rustls config, or `None` without `--tls`.
pub fn base_config(cfg: &RunConfig) -> anyhow::Result<Option<Arc<ClientConfig>>> {
    let s = &cfg.security;
    let trust = match (&s.tls_ca, s.tls_insecure) {
        _ if s.tls == TlsArg::None => return Ok(None),
        (Some(path), _) => Trust::Roots(path),
        (None, _) => Trust::Insecure,
    };
    let config = tls::client_config(&trust, s.tls == TlsArg::Direct, s.tls_resume)
        .map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?;
    Ok(Some(config))
}

/// The SASL mechanisms `--sasl` allows.
pub fn mechanisms(sasl: SaslArg) -> Mechanisms {
    match sasl {
        SaslArg::Plain => Mechanisms::PLAIN,
        SaslArg::ScramSha1 => Mechanisms::SCRAM_SHA_1,
        SaslArg::ScramSha256 => Mechanisms::SCRAM_SHA_256,
    }
}

/// The SASL name of `--sasl`.
pub fn mechanism_name(sasl: SaslArg) -> &'static str {
    match sasl {
        SaslArg::Plain => "PLAIN",
        SaslArg::ScramSha1 => "SCRAM-SHA-1",
        SaslArg::ScramSha256 => "SCRAM-SHA-256",
    }
}

/// TLS handshakes a worker completed, and what the last one negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCounters {
    pub full: u64,
    pub resumed: u64,
    /// Conns ended by a TLS error (bad certificate, alert, bad record).
    pub failed: u64,
    /// IANA codes of the last handshake's version and cipher suite (0: none yet); names
    /// from [`TlsCounters::version_name`] and [`TlsCounters::cipher_name`].
    pub version: u64,
    pub cipher: u64,
}

impl TlsCounters {
    pub fn absorb(&mut self, other: &TlsCounters) {
        self.full += other.full;
        self.resumed += other.resumed;
        self.failed += other.failed;
        self.version = self.version.max(other.version);
        self.cipher = self.cipher.max(other.cipher);
    }

    pub fn handshakes(&self) -> u64 {
        self.full + self.resumed
    }

    pub fn version_name(&self) -> &'static str {
        tls::version_name(self.version as u16)
    }

    pub fn cipher_name(&self) -> &'static str {
        tls::cipher_name(self.cipher as u16)
    }

    /// The counters by name (for the worker processes' report).
    pub fn named(&mut self) -> [(&'static str, &mut u64); 5] {
        [
            ("tls_full", &mut self.full),
            ("tls_resumed", &mut self.resumed),
            ("tls_failed", &mut self.failed),
            ("tls_version", &mut self.version),
            ("tls_cipher", &mut self.cipher),
        ]
    }

    fn completed(&mut self, n: Negotiated) {
        if n.resumed {
            self.resumed += 1;
        } else {
            self.full += 1;
        }
        self.version = u64::from(n.version_code);
        self.cipher = u64::from(n.cipher_code);
    }
}

/// One worker's TLS: its config (a session cache of its own), every TLS conn's session, and
/// scratch buffers.
#[derive(Debug, Default)]
pub struct TlsConns {
    config: Option<Arc<ClientConfig>>,
    direct: bool,
    domain: String,
    /// By conn index: (generation, session).
    sessions: Vec<Option<(u32, Box<TlsLayer>)>>,
    /// Encrypted bytes on their way to the driver.
    wire: Vec<u8>,
    /// Decrypted bytes on their way to the client (taken out while the client reads them).
    pub plain: Vec<u8>,
    pub counters: TlsCounters,
    /// Sessions alive now (for the memory probe's per-session figure).
    pub live: usize,
}

/// Why received bytes could not be decrypted.
#[derive(Debug)]
pub struct TlsFailure(pub String);

impl TlsConns {
    /// A worker's TLS for `cfg` (empty without `--tls`), `base` with a session store of its
    /// own holding up to `clients` tickets (the worker's clients: one each).
    pub fn new(cfg: &RunConfig, base: Option<&Arc<ClientConfig>>, clients: usize) -> TlsConns {
        TlsConns {
            config: base.map(|b| tls::with_own_cache(b, cfg.security.tls_resume, clients)),
            direct: cfg.security.tls == TlsArg::Direct,
            domain: cfg.domain.clone(),
            ..TlsConns::default()
        }
    }

    /// Whether `conn` has a session.
    pub fn has(&self, conn: ConnId) -> bool {
        self.session(conn).is_some()
    }

    fn session(&self, conn: ConnId) -> Option<&TlsLayer> {
        match self.sessions.get(conn.index as usize)? {
            Some((generation, s)) if *generation == conn.generation => Some(s),
            _ => None,
        }
    }

    fn session_mut(&mut self, conn: ConnId) -> Option<&mut TlsLayer> {
        match self.sessions.get_mut(conn.index as usize)? {
            Some((generation, s)) if *generation == conn.generation => Some(s),
            _ => None,
        }
    }

    /// Starts a session on `conn` (STARTTLS after `<proceed/>`, or direct TLS at connect).
    /// False without `--tls` or if rustls refused (then the conn cannot go on).
    pub fn install(&mut self, conn: ConnId) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        let Ok(session) = TlsLayer::new(Arc::clone(config), &self.domain) else {
            return false;
        };
        let at = conn.index as usize;
        if self.sessions.len() <= at {
            self.sessions.resize_with(at + 1, || None);
        }
        if self.sessions[at].is_none() {
            self.live += 1;
        }
        self.sessions[at] = Some((conn.generation, Box::new(session)));
        true
    }

    /// Forgets `conn`'s session (closed), if any.
    pub fn remove(&mut self, conn: ConnId) {
        if let Some(entry) = self.sessions.get_mut(conn.index as usize) {
            if entry.take().is_some() {
                self.live -= 1;
            }
        }
    }

    /// Ciphertext from `conn`: plaintext appended to `self.plain`; rustls' answers (handshake,
    /// alerts) sent on `conn` through `io`. Counts a completed handshake.
    pub fn decode<O: Ops>(
        &mut self,
        io: &mut O,
        conn: ConnId,
        data: &[u8],
    ) -> Result<(), TlsFailure> {
        let mut plain = std::mem::take(&mut self.plain);
        let mut reply = std::mem::take(&mut self.wire);
        reply.clear();
        let result = match self.session_mut(conn) {
            Some(session) => {
                let result = session.decode(data, &mut plain, &mut reply);
                let done = session.take_completed();
                if let Some(n) = done {
                    self.counters.completed(n);
                }
                result.map_err(|e| TlsFailure(e.detail))
            }
            None => Ok(()),
        };
        if !reply.is_empty() {
            let _ = io.send(conn, &reply);
        }
        if result.is_err() {
            self.counters.failed += 1;
        }
        self.plain = plain;
        self.wire = reply;
        result
    }
}

/// The driver's ops with the worker's TLS in between.
pub struct TlsOps<'a, O> {
    pub inner: &'a mut O,
    pub tls: &'a mut TlsConns,
}

impl<O: Ops> Ops for TlsOps<'_, O> {
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let tls = &mut *self.tls;
        if !tls.has(conn) {
            return self.inner.send(conn, bytes);
        }
        let mut wire = std::mem::take(&mut tls.wire);
        wire.clear();
        let result = match tls.session_mut(conn).map(|s| s.encode(bytes, &mut wire)) {
            Some(Ok(())) if !wire.is_empty() => self.inner.send(conn, &wire),
            Some(Ok(())) | None => Ok(()),
            // rustls' plaintext queue is full (a handshake that never ends): as a full
            // output queue.
            Some(Err(_)) => Err(SendError::QueueFull),
        };
        tls.wire = wire;
        result
    }

    fn close(&mut self, conn: ConnId, linger: Linger) {
        if linger == Linger::Flush {
            let mut wire = std::mem::take(&mut self.tls.wire);
            wire.clear();
            if let Some(session) = self.tls.session_mut(conn) {
                session.close(&mut wire);
                let _ = self.inner.send(conn, &wire);
            }
            self.tls.wire = wire;
        }
        self.tls.remove(conn);
        self.inner.close(conn, linger);
    }

    fn detach(&mut self, conn: ConnId) {
        self.tls.remove(conn);
        self.inner.detach(conn);
    }

    fn adopt(&mut self, socket: std::os::fd::OwnedFd) -> std::io::Result<ConnId> {
        self.inner.adopt(socket)
    }

    /// Direct TLS: the session starts with the conn (its ClientHello goes with the first
    /// send, the stream header).
    fn connect(
        &mut self,
        peer: std::net::SocketAddr,
        source: Option<std::net::SocketAddr>,
    ) -> std::io::Result<ConnId> {
        let conn = self.inner.connect(peer, source)?;
        if self.tls.direct && !self.tls.install(conn) {
            self.inner.close(conn, Linger::Abort);
            return Err(std::io::Error::other("rustls refused to start a session"));
        }
        Ok(conn)
    }

    fn queued_bytes(&self, conn: ConnId) -> usize {
        self.inner.queued_bytes(conn)
    }

    fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, sync: FileSync) -> u64 {
        self.inner.write_file(file, offset, bytes, sync)
    }

    fn read_file(&mut self, file: FileId, offset: u64, len: usize, buffer: Vec<u8>) -> u64 {
        self.inner.read_file(file, offset, len, buffer)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use super::*;
    use crate::cli::Security;
    use crate::worker::testing::parsed_config;

    /// Ops that hand out conn ids and keep what was sent on each.
    #[derive(Default)]
    struct Recording {
        next: u32,
        sent: BTreeMap<u32, Vec<u8>>,
        closed: Vec<ConnId>,
    }

    impl Ops for Recording {
        fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
            self.sent
                .entry(conn.index)
                .or_default()
                .extend_from_slice(bytes);
            Ok(())
        }
        fn close(&mut self, conn: ConnId, _: Linger) {
            self.closed.push(conn);
        }
        fn detach(&mut self, _: ConnId) {}
        fn adopt(&mut self, _: std::os::fd::OwnedFd) -> std::io::Result<ConnId> {
            Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
        }
        fn connect(&mut self, _: SocketAddr, _: Option<SocketAddr>) -> std::io::Result<ConnId> {
            self.next += 1;
            Ok(ConnId {
                index: self.next,
                generation: 7,
            })
        }
        fn queued_bytes(&self, _: ConnId) -> usize {
            0
        }
        fn write_file(&mut self, _: FileId, _: u64, _: Vec<u8>, _: FileSync) -> u64 {
            0
        }
        fn read_file(&mut self, _: FileId, _: u64, _: usize, _: Vec<u8>) -> u64 {
            0
        }
    }

    fn conns(tls: TlsArg) -> TlsConns {
        let mut cfg = parsed_config("hold", "1", &[], "127.0.0.1:5222", "example.test");
        cfg.security = Security {
            tls,
            tls_insecure: true,
            tls_resume: true,
            ..Security::default()
        };
        let base = base_config(&cfg).unwrap();
        TlsConns::new(&cfg, base.as_ref(), 1)
    }

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    #[test]
    fn direct_tls_encrypts_from_the_first_byte_and_forgets_closed_conns() {
        let mut tls = conns(TlsArg::Direct);
        let mut inner = Recording::default();
        let mut io = TlsOps {
            inner: &mut inner,
            tls: &mut tls,
        };
        let conn = io.connect(PEER, None).unwrap();
        assert!(io.tls.has(conn));
        assert_eq!(io.tls.live, 1);
        io.send(
            conn,
            b"<?xml version='1.0'?><stream:stream to='example.test'>",
        )
        .unwrap();
        let sent = &io.inner.sent[&conn.index];
        // A TLS handshake record (ClientHello), not the header in the clear.
        assert_eq!(&sent[..2], &[0x16, 0x03]);
        assert!(!sent.windows(6).any(|w| w == b"stream"));
        // A stale id (another generation) has no session: its bytes pass untouched.
        let stale = ConnId {
            generation: conn.generation + 1,
            ..conn
        };
        assert!(!io.tls.has(stale));
        io.close(conn, Linger::Abort);
        assert!(!io.tls.has(conn));
        assert_eq!(io.tls.live, 0);
        assert_eq!(io.inner.closed, [conn]);
    }

    #[test]
    fn starttls_conns_are_plaintext_until_installed_and_garbage_is_a_tls_failure() {
        let mut tls = conns(TlsArg::Starttls);
        let mut inner = Recording::default();
        let mut io = TlsOps {
            inner: &mut inner,
            tls: &mut tls,
        };
        let conn = io.connect(PEER, None).unwrap();
        assert!(!io.tls.has(conn), "no session before <proceed/>");
        io.send(conn, b"<starttls/>").unwrap();
        assert_eq!(io.inner.sent[&conn.index], b"<starttls/>");
        assert!(io.tls.install(conn));
        io.send(conn, b"<stream:stream>").unwrap();
        assert_eq!(io.inner.sent[&conn.index][11..13], [0x16, 0x03]);
        // Not TLS from the server: a failure, counted; the alert goes back on the conn.
        let before = io.inner.sent[&conn.index].len();
        let err = io.tls.decode(io.inner, conn, b"<proceed/>HTTP/1.1 400\r\n");
        assert!(err.is_err());
        assert_eq!(io.tls.counters.failed, 1);
        assert!(
            io.inner.sent[&conn.index].len() > before,
            "an alert was sent"
        );
        // Without --tls nothing is ever installed.
        let mut none = conns(TlsArg::None);
        assert!(!none.install(conn));
    }
}
