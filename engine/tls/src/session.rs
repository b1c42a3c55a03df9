//! One conn's TLS, sans-IO: ciphertext in, plaintext and ciphertext-to-send out.
//!
//! What it does: drives a rustls `UnbufferedServerConnection` with caller-owned buffers.
//! [`TlsSession::read`] takes what the socket delivered, appends decrypted application data
//! to the caller's plaintext vector and everything for the peer (handshake, alerts, session
//! tickets) to the caller's output vector. [`TlsSession::write`] encrypts into that output
//! vector. The only buffer the session owns is `incoming`: ciphertext rustls could not use
//! yet (a record split across reads); it is freed whenever it empties, so an idle session
//! holds no read buffer. Once a TLS 1.3 handshake completes, rustls' connection is traded
//! for its traffic keys (`Engine::Records`, see `records.rs`): an idle session then keeps
//! about 1 KB instead of 3.4 KB. TLS 1.2 sessions stay on rustls' record layer.
//!
//! What it does not do: sockets, timers, XMPP. It never blocks and never calls back.
//!
//! Invariants:
//! - After `read` returns, `incoming` holds no complete record (everything rustls could
//!   process was processed), so `write` and `close` only see states that produce output.
//! - rustls decrypts in place in `incoming` and the bytes it reports as `discard` are removed
//!   from its front before the next `process_tls_records` call (rustls' contract).
//! - Once a call fails the session is `Failed`: it appended its fatal alert (if rustls had
//!   one) and every later call returns [`TlsError::Unusable`].

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{Error as RustlsError, ProtocolVersion};

use crate::binding::{self, CHANNEL_BINDING_BYTES};
use crate::capture::{self, Caught};
use crate::context::TlsContext;
use crate::error::TlsError;
use crate::output::{encode_record, encrypt_app_data, encrypt_close_notify};
use crate::records::{RecordError, Tls13Records};

/// Ciphertext copied into `incoming` per step: one full record and its header, so a large
/// read never makes the buffer much bigger than a record.
const READ_STEP_BYTES: usize = 16 * 1024 + 512;

/// What happened during one [`TlsSession::read`]; several can happen in one call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The handshake completed in this call (reported once per session): `write` may be
    /// used from now on, and ALPN, SNI, version and channel binding are known.
    pub handshake_completed: bool,
    /// The peer sent close_notify in this call (reported once): no more plaintext will come.
    /// The stream layer answers with [`TlsSession::close`] when it is done writing.
    pub peer_closed: bool,
}

/// The negotiated TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Handshaking,
    Open,
    /// We sent close_notify: no more writes; reads go on until the peer's close_notify.
    Closed,
    Failed,
}

/// The channel binding, and during a TLS 1.2 handshake the server random it needs.
#[derive(Clone, Copy)]
enum Binding {
    Unknown,
    ServerRandom([u8; 32]),
    Exporter([u8; CHANNEL_BINDING_BYTES]),
}

/// Who protects the records.
enum Engine {
    /// rustls: the handshake, and a TLS 1.2 session throughout.
    Rustls(Box<UnbufferedServerConnection>),
    /// An established TLS 1.3 session: our record layer on the keys rustls handed over
    /// (`records.rs`), rustls' connection freed.
    Records(Box<Tls13Records>),
    /// After a failure, or for the instant of the hand-over.
    Gone,
}

/// The session's negotiated parameters, recorded when the handshake completes.
#[derive(Default)]
struct Facts {
    version: Option<TlsVersion>,
    suite: Option<rustls::CipherSuite>,
    alpn: Option<Box<[u8]>>,
}

/// The TLS state of one conn (server side). See the module docs for the call protocol.
pub struct TlsSession {
    engine: Engine,
    /// What is known after the handshake (kept when rustls' connection is gone).
    facts: Facts,
    /// Ciphertext not yet consumed by rustls: a partial record (or partial handshake
    /// message). Empty means no allocation.
    incoming: Vec<u8>,
    stage: Stage,
    /// The peer's close_notify arrived: rustls reads nothing after it, so neither do we
    /// (RFC 8446 section 6.1: data after a closure alert is ignored), lest it pile up.
    peer_closed: bool,
    binding: Binding,
    server_name: Option<Box<str>>,
}

impl TlsSession {
    /// Starts the server side of a handshake with the context's current config.
    pub fn new(context: &TlsContext) -> TlsSession {
        let conn = UnbufferedServerConnection::new(context.server_config())
            // Invariant: this fails only for an invalid max_fragment_size; config.rs never
            // sets one, and TlsConfig::load made one connection from the config to prove it.
            .expect("TlsConfig::load checked that connections can be made");
        TlsSession {
            engine: Engine::Rustls(Box::new(conn)),
            facts: Facts::default(),
            incoming: Vec::new(),
            stage: Stage::Handshaking,
            peer_closed: false,
            binding: Binding::Unknown,
            server_name: None,
        }
    }

    /// Feeds ciphertext from the peer. All of `ciphertext` is consumed (a partial record is
    /// kept inside until the rest arrives). Decrypted application data is appended to
    /// `plaintext`; bytes for the peer (handshake flights, session tickets, alerts) to
    /// `to_peer`, which the caller must send even when this returns an error (it then holds
    /// the fatal alert).
    pub fn read(
        &mut self,
        ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
        to_peer: &mut Vec<u8>,
    ) -> Result<ReadOutcome, TlsError> {
        if self.stage == Stage::Failed {
            return Err(TlsError::Unusable);
        }
        if matches!(self.engine, Engine::Records(_)) {
            return self.read_records(ciphertext, plaintext, to_peer);
        }
        let handshaking = self.stage == Stage::Handshaking;
        if handshaking {
            capture::arm();
        }
        let mut outcome = ReadOutcome::default();
        let mut rest = if self.peer_closed {
            &[][..]
        } else {
            ciphertext
        };
        let result = loop {
            let (step, after) = rest.split_at(rest.len().min(READ_STEP_BYTES));
            rest = after;
            self.incoming.extend_from_slice(step);
            let result = self.process(plaintext, to_peer, &mut outcome);
            if result.is_err() || rest.is_empty() {
                break result;
            }
        };
        if handshaking {
            self.absorb(capture::disarm());
        }
        let result = match result {
            Ok(()) if outcome.handshake_completed => self.hand_over_records(),
            other => other,
        };
        self.trim_incoming();
        match result {
            Ok(()) => Ok(outcome),
            Err(e) => {
                self.fail(to_peer);
                Err(e)
            }
        }
    }

    /// `read` of an established TLS 1.3 session: our record layer.
    fn read_records(
        &mut self,
        ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
        to_peer: &mut Vec<u8>,
    ) -> Result<ReadOutcome, TlsError> {
        let Engine::Records(records) = &mut self.engine else {
            return Err(TlsError::Unusable);
        };
        if self.peer_closed {
            return Ok(ReadOutcome::default());
        }
        // Whole records are opened straight from the caller's bytes; only a record split
        // across reads is copied into `incoming` until its rest arrives.
        let result = if self.incoming.is_empty() {
            let result = records.open(ciphertext, plaintext, to_peer);
            if let Ok(opened) = &result {
                self.incoming
                    .extend_from_slice(&ciphertext[opened.consumed..]);
            }
            result
        } else {
            self.incoming.extend_from_slice(ciphertext);
            let result = records.open(&self.incoming, plaintext, to_peer);
            if let Ok(opened) = &result {
                self.incoming.drain(..opened.consumed);
            }
            result
        };
        match result {
            Ok(opened) => {
                self.peer_closed = opened.peer_closed;
                self.trim_incoming();
                Ok(ReadOutcome {
                    handshake_completed: false,
                    peer_closed: opened.peer_closed,
                })
            }
            Err(error) => {
                if error.alert != rustls::AlertDescription::CloseNotify {
                    records.alert(error.alert, to_peer);
                }
                self.stage = Stage::Failed;
                self.engine = Engine::Gone;
                self.incoming = Vec::new();
                Err(record_error(error))
            }
        }
    }

    /// The handshake completed: record its facts and, for TLS 1.3, take the traffic keys
    /// from rustls and drop its connection (see `records.rs`).
    fn hand_over_records(&mut self) -> Result<(), TlsError> {
        let Engine::Rustls(conn) = &self.engine else {
            return Ok(());
        };
        self.facts = Facts {
            version: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
                Some(ProtocolVersion::TLSv1_2) => Some(TlsVersion::Tls12),
                _ => None,
            },
            suite: conn.negotiated_cipher_suite().map(|s| s.suite()),
            alpn: conn.alpn_protocol().map(Box::from),
        };
        if self.facts.version != Some(TlsVersion::Tls13) {
            return Ok(());
        }
        let Engine::Rustls(conn) = std::mem::replace(&mut self.engine, Engine::Gone) else {
            return Ok(());
        };
        let (secrets, kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(TlsError::Local)?;
        self.engine = Engine::Records(Box::new(Tls13Records::new(secrets, kernel)));
        Ok(())
    }

    /// Runs rustls over `incoming` until it needs more input.
    fn process(
        &mut self,
        plaintext: &mut Vec<u8>,
        to_peer: &mut Vec<u8>,
        outcome: &mut ReadOutcome,
    ) -> Result<(), TlsError> {
        loop {
            let Engine::Rustls(conn) = &mut self.engine else {
                return Err(TlsError::Unusable);
            };
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.incoming);
            let more = match state.map_err(TlsError::from_rustls)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(TlsError::from_rustls)?;
                        discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let start = encode_record(&mut encode, to_peer)?;
                    if let (Stage::Handshaking, Binding::Unknown) = (self.stage, self.binding) {
                        self.binding = server_random(&to_peer[start..]);
                    }
                    true
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    outcome.peer_closed = true;
                    self.peer_closed = true;
                    true
                }
                ConnectionState::WriteTraffic(_) => {
                    if self.stage == Stage::Handshaking {
                        self.stage = Stage::Open;
                        outcome.handshake_completed = true;
                    }
                    false
                }
                ConnectionState::BlockedHandshake | ConnectionState::Closed => false,
                other => return Err(unexpected(&other)),
            };
            self.incoming.drain(..discard);
            if !more {
                return Ok(());
            }
        }
    }

    /// Encrypts `plaintext` (any length; records of at most 16 KiB) and appends it to
    /// `to_peer`. Before the handshake completed this is [`TlsError::HandshakeNotDone`]
    /// and nothing is appended: the stream layer keeps its output until
    /// `handshake_completed`.
    pub fn write(&mut self, plaintext: &[u8], to_peer: &mut Vec<u8>) -> Result<(), TlsError> {
        match self.stage {
            Stage::Open => {}
            Stage::Handshaking => return Err(TlsError::HandshakeNotDone),
            Stage::Closed | Stage::Failed => return Err(TlsError::Unusable),
        }
        if plaintext.is_empty() {
            return Ok(());
        }
        if let Engine::Records(records) = &mut self.engine {
            return records.seal(plaintext, to_peer).map_err(|e| {
                self.stage = Stage::Failed;
                self.engine = Engine::Gone;
                record_error(e)
            });
        }
        let result = self.write_inner(plaintext, to_peer);
        if result.is_err() {
            self.fail(to_peer);
        }
        result
    }

    fn write_inner(&mut self, plaintext: &[u8], to_peer: &mut Vec<u8>) -> Result<(), TlsError> {
        let Engine::Rustls(conn) = &mut self.engine else {
            return Err(TlsError::Unusable);
        };
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
            let done = match state.map_err(TlsError::from_rustls)? {
                // Records rustls queued (a key update answer) go out before our data.
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_record(&mut encode, to_peer)?;
                    false
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    false
                }
                ConnectionState::WriteTraffic(mut traffic) => {
                    encrypt_app_data(&mut traffic, plaintext, to_peer)?;
                    true
                }
                other => return Err(unexpected(&other)),
            };
            self.incoming.drain(..discard);
            if done {
                return Ok(());
            }
        }
    }

    /// Appends a close_notify alert to `to_peer` and refuses further writes. Reads go on
    /// (the peer may still send data and its own close_notify). Before the handshake
    /// completed nothing is appended and the session is done (later calls are
    /// [`TlsError::Unusable`]): the stream layer just closes the socket.
    pub fn close(&mut self, to_peer: &mut Vec<u8>) {
        if self.stage != Stage::Open {
            if self.stage == Stage::Handshaking {
                self.stage = Stage::Failed;
                self.incoming = Vec::new();
            }
            return;
        }
        self.stage = Stage::Closed;
        if let Engine::Records(records) = &mut self.engine {
            records.alert(rustls::AlertDescription::CloseNotify, to_peer);
            return;
        }
        if self.close_inner(to_peer).is_err() {
            self.stage = Stage::Failed;
        }
    }

    fn close_inner(&mut self, to_peer: &mut Vec<u8>) -> Result<(), TlsError> {
        let Engine::Rustls(conn) = &mut self.engine else {
            return Err(TlsError::Unusable);
        };
        let mut queued = false;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
            match state.map_err(TlsError::from_rustls)? {
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_record(&mut encode, to_peer)?;
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(mut traffic) if !queued => {
                    encrypt_close_notify(&mut traffic, to_peer)?;
                    queued = true;
                }
                _ => return Ok(()),
            }
            self.incoming.drain(..discard);
        }
    }

    /// After an error: append the fatal alert rustls queued, if any, and drop the buffer.
    /// `process_tls_records` hands out queued records before it looks at the input again, so
    /// calling it only while rustls `wants_write` never re-reads the input that failed.
    fn fail(&mut self, to_peer: &mut Vec<u8>) {
        self.stage = Stage::Failed;
        let Engine::Rustls(conn) = &mut self.engine else {
            self.engine = Engine::Gone;
            self.incoming = Vec::new();
            return;
        };
        while conn.wants_write() {
            let status = conn.process_tls_records(&mut self.incoming);
            let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state else {
                break;
            };
            if encode_record(&mut encode, to_peer).is_err() {
                break;
            }
        }
        self.incoming = Vec::new();
    }

    /// Takes what the config's hooks caught during this read (see `capture.rs`).
    fn absorb(&mut self, caught: Caught) {
        if caught.server_name.is_some() {
            self.server_name = caught.server_name;
        }
        let Engine::Rustls(conn) = &self.engine else {
            return;
        };
        let (Some(secret), Some(suite)) = (caught.secret, conn.negotiated_cipher_suite()) else {
            return;
        };
        let server_random = match &self.binding {
            Binding::ServerRandom(random) => Some(random),
            _ => None,
        };
        self.binding = match binding::channel_binding(suite, &secret, server_random) {
            Some(value) => Binding::Exporter(value),
            None => Binding::Unknown,
        };
    }

    /// Frees the read buffer when empty (or when nothing more will be read), and shrinks it
    /// when a big read left a small tail.
    fn trim_incoming(&mut self) {
        if self.incoming.is_empty() || self.peer_closed {
            self.incoming = Vec::new();
        } else if self.incoming.capacity() > 2 * self.incoming.len() + 1024 {
            self.incoming.shrink_to_fit();
        }
    }

    /// True once the handshake completed (and stays true after close or failure).
    pub fn is_handshake_done(&self) -> bool {
        self.stage != Stage::Handshaking
            && !matches!(&self.engine, Engine::Rustls(conn) if conn.is_handshaking())
    }

    /// The ALPN protocol agreed (`b"xmpp-client"` for XEP-0368 direct TLS), `None` if the
    /// client offered none (STARTTLS clients usually do not).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.engine {
            Engine::Rustls(conn) if self.stage == Stage::Handshaking => conn.alpn_protocol(),
            _ => self.facts.alpn.as_deref(),
        }
    }

    /// The SNI host name the client sent, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The negotiated version, once the ServerHello is decided.
    pub fn protocol_version(&self) -> Option<TlsVersion> {
        let Engine::Rustls(conn) = &self.engine else {
            return self.facts.version;
        };
        match conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            _ => None,
        }
    }

    /// The negotiated cipher suite, for logs and metrics.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        match &self.engine {
            Engine::Rustls(conn) => conn.negotiated_cipher_suite().map(|s| s.suite()),
            _ => self.facts.suite,
        }
    }

    /// RFC 9266 `tls-exporter` channel binding (label `EXPORTER-Channel-Binding`, no context,
    /// 32 bytes) for SCRAM-*-PLUS; `None` before the handshake completed.
    pub fn channel_binding_exporter(&self) -> Option<[u8; CHANNEL_BINDING_BYTES]> {
        match (self.is_handshake_done(), self.binding) {
            (true, Binding::Exporter(value)) => Some(value),
            _ => None,
        }
    }

    /// An estimate of the heap this session holds, for metrics: our read buffer's capacity
    /// and SNI string exactly, plus rustls' own heap as measured per stage and version by
    /// `examples/idle_memory.rs` (record keys, key schedule, state machine, its deframer and
    /// queues; see `memory.rs`). Not counted: `size_of::<TlsSession>()` itself (120 bytes),
    /// the `ServerConfig` all sessions share, and the caller's plaintext and output vectors.
    pub fn heap_bytes(&self) -> usize {
        use crate::memory::*;
        let ours = self.incoming.capacity()
            + self.server_name.as_ref().map_or(0, |s| s.len())
            + self.facts.alpn.as_ref().map_or(0, |a| a.len());
        let rustls = match (self.stage, self.protocol_version()) {
            _ if matches!(self.engine, Engine::Records(_)) => {
                std::mem::size_of::<Tls13Records>() + TLS13_RECORDS_HEAP_BYTES
            }
            _ if matches!(self.engine, Engine::Gone) => 0,
            (_, None) => FRESH_HEAP_BYTES,
            (Stage::Handshaking, Some(TlsVersion::Tls13)) => TLS13_HANDSHAKING_HEAP_BYTES,
            (Stage::Handshaking, Some(TlsVersion::Tls12)) => TLS12_HANDSHAKING_HEAP_BYTES,
            (_, Some(TlsVersion::Tls13)) => TLS13_ESTABLISHED_HEAP_BYTES,
            (_, Some(TlsVersion::Tls12)) => TLS12_ESTABLISHED_HEAP_BYTES,
        };
        // rustls' connection is boxed (so a TLS 1.3 session can drop it after the handshake).
        let boxed = match self.engine {
            Engine::Rustls(_) => std::mem::size_of::<UnbufferedServerConnection>(),
            _ => 0,
        };
        ours + rustls + boxed
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("stage", &self.stage)
            .field("incoming_len", &self.incoming.len())
            .field("version", &self.protocol_version())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The ServerHello's random from the first record we send: byte 0 content type 22
/// (handshake), 5 handshake type 2 (ServerHello), 6..9 length, 9..11 legacy version,
/// 11..43 random. Needed only for the TLS 1.2 exporter; anything else is `Unknown`.
fn server_random(record: &[u8]) -> Binding {
    const HANDSHAKE: u8 = 22;
    const SERVER_HELLO: u8 = 2;
    match record.get(11..43) {
        Some(random) if record[0] == HANDSHAKE && record[5] == SERVER_HELLO => {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(random);
            Binding::ServerRandom(bytes)
        }
        _ => Binding::Unknown,
    }
}

/// A record-layer failure as the session's error: whose fault, and what rustls would call it.
fn record_error(error: RecordError) -> TlsError {
    let cause = match error.alert {
        rustls::AlertDescription::BadRecordMac => RustlsError::DecryptError,
        rustls::AlertDescription::CloseNotify => {
            RustlsError::General(format!("TLS 1.3 records: {}", error.detail))
        }
        alert => RustlsError::General(format!("TLS 1.3 records: {} ({alert:?})", error.detail)),
    };
    if error.peer {
        TlsError::Peer(cause)
    } else {
        TlsError::Local(cause)
    }
}

fn unexpected<D>(state: &ConnectionState<'_, '_, D>) -> TlsError {
    TlsError::Local(RustlsError::General(format!(
        "unexpected rustls state {state:?}"
    )))
}
