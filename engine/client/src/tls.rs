//! A client TLS layer (feature `tls`): rustls' buffered `ClientConnection` behind the
//! [`Layer`] trait, for STARTTLS (installed on `<proceed/>`) and direct TLS (XEP-0368, from
//! the first byte, ALPN `xmpp-client`).
//!
//! What it does: [`client_config`] builds the rustls config a run shares (TLS 1.3 and 1.2,
//! ring, trust from a PEM file of roots or none at all for benchmarks, session resumption on
//! or off with a cache per config); [`TlsLayer`] is one conn's session, SNI = the XMPP domain,
//! and tells the caller when its handshake completed, whether it was resumed, and what was
//! negotiated.
//!
//! What it does not do: sockets, client certificates, channel binding (`-PLUS`), 0-RTT.
//!
//! Memory: the buffered connection keeps its own buffers (about 7 KB per idle session on the
//! server side of rustls; measured per client by the load generator's RSS probe). This is the
//! client side of a load generator, where that is acceptable; the server uses rookery-tls.
//!
//! Invariants: plaintext written before the handshake completes is queued by rustls and sent
//! once it does; every byte rustls wants to send after a call is in the caller's wire buffer
//! when the call returns (also on error: the fatal alert).

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme,
};

use crate::layer::{Layer, LayerError};

/// The rustls config type callers keep (shared per thread).
pub use rustls::ClientConfig as Config;

/// The ALPN protocol id of XMPP client-to-server direct TLS (XEP-0368).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// Most TLS 1.3 tickets a [`TicketPool`] keeps per server name.
pub const MAX_POOLED_TICKETS: usize = 1 << 20;

/// Which servers the client believes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust<'a> {
    /// Certificates chaining to the roots in this PEM file.
    Roots(&'a Path),
    /// Any certificate (signatures on the handshake are still checked). Benchmarks only.
    Insecure,
}

/// Why a config could not be built.
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

/// The rustls client config: `trust`, ALPN `xmpp-client` when `direct`, and a session cache
/// of its own when `resume` (share the returned config among the conns that should resume
/// each other's sessions; build one per thread to keep the cache's lock thread-local).
pub fn client_config(
    trust: &Trust<'_>,
    direct: bool,
    resume: bool,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("TLS versions: {e}")))?;
    let mut config = match trust {
        Trust::Roots(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = read_roots(path)?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError(format!(
                    "{}: no usable CA certificate in it (expected PEM 'BEGIN CERTIFICATE' blocks)",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    };
    if direct {
        config.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    }
    Ok(with_own_cache(&config, resume, 8))
}

/// ring's provider (the workspace's choice, see rookery-tls `config`) with X25519 as the first
/// key share, as OpenSSL, BoringSSL and NSS clients send it: rustls 0.23.48's ring default puts
/// P-384 first, whose ring implementation costs several times more per handshake on both ends
/// (a load generator would then measure a key exchange no real client asks for).
fn provider() -> CryptoProvider {
    // Deprecated in rustls 0.23.48 only because ring has no post-quantum key exchange.
    #[allow(deprecated)]
    let ring = ring::default_provider();
    CryptoProvider {
        kx_groups: vec![
            ring::kx_group::X25519,
            ring::kx_group::SECP256R1,
            ring::kx_group::SECP384R1,
        ],
        ..ring
    }
}

/// Every certificate of a PEM file.
fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TlsSetupError(format!("{}: cannot read the CA file: {e}", path.display())))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError(format!("{}: not a PEM CA file: {e}", path.display())))
}

/// The same config with a fresh session store of its own (or none): one per thread, so
/// resumption is measured per thread and the store's lock is never shared. The store is a
/// [`TicketPool`] of up to `tickets` TLS 1.3 tickets (use the number of clients that share
/// it: each reconnect takes one, each handshake brings the server's new ones).
pub fn with_own_cache(config: &ClientConfig, resume: bool, tickets: usize) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.resumption = if resume {
        Resumption::store(Arc::new(TicketPool::new(tickets)))
    } else {
        Resumption::disabled()
    };
    Arc::new(config)
}

/// A session store for many clients of one server: rustls' own in-memory cache keeps at most
/// 8 TLS 1.3 tickets per server name (one client's worth), so a thousand simulated clients
/// reconnecting together would mostly do full handshakes. This pool keeps up to `capacity`
/// tickets per name, oldest first out, each handed out once (as rustls requires); TLS 1.2
/// keeps the latest session per name, as rustls' cache does.
#[derive(Debug)]
pub struct TicketPool {
    capacity: usize,
    names: std::sync::Mutex<Vec<(ServerName<'static>, Pooled)>>,
}

#[derive(Debug, Default)]
struct Pooled {
    kx_hint: Option<rustls::NamedGroup>,
    tls12: Option<rustls::client::Tls12ClientSessionValue>,
    tls13: std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>,
}

/// Server names a pool keeps (a load run talks to one).
const MAX_POOLED_NAMES: usize = 16;

impl TicketPool {
    pub fn new(capacity: usize) -> TicketPool {
        TicketPool {
            capacity: capacity.clamp(1, MAX_POOLED_TICKETS),
            names: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Tickets held now (all names).
    pub fn tickets(&self) -> usize {
        self.with(|names| names.iter().map(|(_, p)| p.tls13.len()).sum())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<(ServerName<'static>, Pooled)>) -> R) -> R {
        // A panic while holding it leaves at worst a ticket too many or too few.
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut names)
    }

    fn entry<R>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Pooled) -> R) -> Option<R> {
        self.with(|names| names.iter_mut().find(|(n, _)| n == name).map(|(_, p)| f(p)))
    }

    fn entry_or_new(&self, name: ServerName<'static>, f: impl FnOnce(&mut Pooled)) {
        self.with(|names| {
            if let Some((_, p)) = names.iter_mut().find(|(n, _)| *n == name) {
                return f(p);
            }
            if names.len() >= MAX_POOLED_NAMES {
                names.remove(0);
            }
            let mut pooled = Pooled::default();
            f(&mut pooled);
            names.push((name, pooled));
        })
    }
}

impl rustls::client::ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.entry_or_new(server_name, |p| p.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.entry(server_name, |p| p.kx_hint).flatten()
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.entry_or_new(server_name, |p| p.tls12 = Some(value));
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.entry(server_name, |p| p.tls12.clone()).flatten()
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.entry(server_name, |p| p.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let capacity = self.capacity;
        self.entry_or_new(server_name, |p| {
            if p.tls13.len() >= capacity {
                p.tls13.pop_front();
            }
            p.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        // Newest first: the least likely to have expired.
        self.entry(server_name, |p| p.tls13.pop_back()).flatten()
    }
}

/// What a completed handshake negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// e.g. `TLSv1_3` (see [`version_name`] for the code).
    pub version: &'static str,
    /// e.g. `TLS13_AES_256_GCM_SHA384` (see [`cipher_name`] for the code).
    pub cipher: &'static str,
    /// The IANA codes of both, for callers that carry numbers (0x0304, 0x1302).
    pub version_code: u16,
    pub cipher_code: u16,
    /// An abbreviated handshake (session resumption).
    pub resumed: bool,
}

/// rustls' name of a TLS version code (`TLSv1_3`), `unknown` for others.
pub fn version_name(code: u16) -> &'static str {
    rustls::ProtocolVersion::from(code)
        .as_str()
        .unwrap_or("unknown")
}

/// rustls' name of a cipher suite code (`TLS13_AES_256_GCM_SHA384`), `unknown` for others.
pub fn cipher_name(code: u16) -> &'static str {
    rustls::CipherSuite::from(code)
        .as_str()
        .unwrap_or("unknown")
}

/// One conn's client TLS session.
pub struct TlsLayer {
    conn: ClientConnection,
    /// The handshake's completion was already reported by [`TlsLayer::take_completed`].
    reported: bool,
}

impl std::fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLayer")
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl TlsLayer {
    /// A session to `domain` (the SNI and the name the certificate must carry). The
    /// ClientHello is produced by the first [`Layer::encode`] (an empty one will do).
    pub fn new(config: Arc<ClientConfig>, domain: &str) -> Result<TlsLayer, LayerError> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| LayerError {
            detail: format!("{domain:?} is not a server name: {e}"),
        })?;
        let conn = ClientConnection::new(config, name).map_err(|e| LayerError {
            detail: format!("starting TLS: {e}"),
        })?;
        Ok(TlsLayer {
            conn,
            reported: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Once, after the handshake completed: what it negotiated.
    pub fn take_completed(&mut self) -> Option<Negotiated> {
        if self.reported || self.conn.is_handshaking() {
            return None;
        }
        self.reported = true;
        let version_code = self.conn.protocol_version().map_or(0, u16::from);
        let cipher_code = self
            .conn
            .negotiated_cipher_suite()
            .map_or(0, |s| u16::from(s.suite()));
        Some(Negotiated {
            version: version_name(version_code),
            cipher: cipher_name(cipher_code),
            version_code,
            cipher_code,
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
        })
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Queues a close_notify alert into `wire` (after the caller's last stanza).
    pub fn close(&mut self, wire: &mut Vec<u8>) {
        self.conn.send_close_notify();
        self.flush(wire);
    }

    fn flush(&mut self, wire: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(wire).is_err() {
                break;
            }
        }
    }
}

impl Layer for TlsLayer {
    fn decode(
        &mut self,
        wire: &[u8],
        stream: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), LayerError> {
        let mut input = wire;
        while !input.is_empty() {
            let before = input.len();
            if let Err(e) = self.conn.read_tls(&mut input) {
                return Err(LayerError {
                    detail: format!("reading TLS records: {e}"),
                });
            }
            let processed = self.conn.process_new_packets();
            // Handshake replies, or the fatal alert if processing failed.
            self.flush(reply);
            let state = processed.map_err(|e| LayerError {
                detail: e.to_string(),
            })?;
            let available = state.plaintext_bytes_to_read();
            if available > 0 {
                let start = stream.len();
                stream.resize(start + available, 0);
                self.conn
                    .reader()
                    .read_exact(&mut stream[start..])
                    .map_err(|e| LayerError {
                        detail: format!("reading decrypted bytes: {e}"),
                    })?;
            }
            if input.len() == before {
                // rustls took nothing and has nothing to give: its buffer is full of a
                // record it cannot finish, which a sane peer never sends.
                return Err(LayerError {
                    detail: "TLS record larger than rustls accepts".into(),
                });
            }
        }
        Ok(())
    }

    fn encode(&mut self, stream: &[u8], wire: &mut Vec<u8>) -> Result<(), LayerError> {
        if !stream.is_empty() {
            self.conn
                .writer()
                .write_all(stream)
                .map_err(|e| LayerError {
                    detail: format!("queueing plaintext: {e}"),
                })?;
        }
        self.flush(wire);
        Ok(())
    }
}

/// `--tls-insecure`: accepts any certificate, still checks the handshake signatures (so the
/// crypto cost stays that of a real client).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
