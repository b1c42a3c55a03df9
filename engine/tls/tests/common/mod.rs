//! Test support: a throwaway CA and server certificates (rcgen), PEM files in a temporary
//! directory, a rustls client as the peer, and a pump that moves bytes between the two.
#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rookery_tls::{ReadOutcome, TlsConfig, TlsContext, TlsError, TlsSession};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion,
};

pub const DOMAIN: &str = "xmpp.example.test";

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rookery-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA that issues server certificates for [`DOMAIN`].
pub struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
}

/// A server certificate (PEM) and its key (PEM), plus the DER the client will see.
pub struct ServerCert {
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        TestCa::named("Rookery test CA")
    }

    pub fn named(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("CA cert");
        TestCa { key, cert }
    }

    pub fn issue(&self) -> ServerCert {
        self.issue_with(|_| {})
    }

    pub fn issue_with(&self, edit: impl FnOnce(&mut CertificateParams)) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec![DOMAIN.to_string()]).expect("params");
        edit(&mut params);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server cert");
        ServerCert {
            chain_pem: format!("{}{}", cert.pem(), self.cert.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("add CA root");
        roots
    }
}

/// Writes a certificate's files and loads them into a context.
pub fn context_for(dir: &TempDir, cert: &ServerCert) -> TlsContext {
    let chain = dir.write("chain.pem", &cert.chain_pem);
    let key = dir.write("key.pem", &cert.key_pem);
    TlsContext::new(TlsConfig::load(&chain, &key).expect("load test cert"))
}

/// Everything a test needs for one server: CA, certificate files, context.
pub struct Fixture {
    pub ca: TestCa,
    pub cert: ServerCert,
    pub dir: TempDir,
    pub context: TlsContext,
}

impl Fixture {
    pub fn new() -> Fixture {
        let ca = TestCa::new();
        let cert = ca.issue();
        let dir = TempDir::new();
        let context = context_for(&dir, &cert);
        Fixture {
            ca,
            cert,
            dir,
            context,
        }
    }

    pub fn client_config(
        &self,
        version: &'static SupportedProtocolVersion,
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        client_config(&self.ca, version, alpn)
    }
}

#[allow(deprecated)] // ring's provider; see rookery-tls config.rs
pub fn client_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub fn client_config(
    ca: &TestCa,
    version: &'static SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    client_config_with(ca, version, alpn, client_provider())
}

pub fn client_config_with(
    ca: &TestCa,
    version: &'static SupportedProtocolVersion,
    alpn: &[&[u8]],
    provider: rustls::crypto::CryptoProvider,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("client versions")
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub fn client(config: &Arc<ClientConfig>) -> ClientConnection {
    let name = ServerName::try_from(DOMAIN).expect("server name");
    ClientConnection::new(Arc::clone(config), name).expect("client connection")
}

/// The client's pending ciphertext.
pub fn client_output(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).expect("write_tls to a Vec");
    }
    out
}

/// Hands the server's bytes to the client and processes them.
pub fn client_input(client: &mut ClientConnection, bytes: &[u8]) -> Result<(), rustls::Error> {
    let mut rest = bytes;
    while !rest.is_empty() {
        client.read_tls(&mut rest).expect("read_tls from a slice");
        client.process_new_packets()?;
    }
    Ok(())
}

/// Hands the server's bytes to the client and returns the plaintext, read as it comes (the
/// client buffers at most 16 KiB of it).
pub fn client_receive(client: &mut ClientConnection, bytes: &[u8]) -> Vec<u8> {
    let mut plaintext = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        client.read_tls(&mut rest).expect("read_tls from a slice");
        client
            .process_new_packets()
            .expect("client accepts the server's bytes");
        plaintext.extend(client_plaintext(client));
    }
    plaintext
}

/// Plaintext the client has received so far.
pub fn client_plaintext(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    match client.reader().read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("client read: {e}"),
    }
    out
}

/// What the server side observed while pumping.
#[derive(Default, Debug)]
pub struct Observed {
    pub plaintext: Vec<u8>,
    pub handshake_completed: usize,
    pub peer_closed: usize,
}

impl Observed {
    pub fn add(&mut self, outcome: ReadOutcome) {
        self.handshake_completed += usize::from(outcome.handshake_completed);
        self.peer_closed += usize::from(outcome.peer_closed);
    }
}

/// Moves bytes both ways until neither side has anything to send. `step` bounds how many
/// ciphertext bytes the server is given per `read` (1 = every byte boundary).
pub fn pump_with_step(
    client: &mut ClientConnection,
    server: &mut TlsSession,
    step: usize,
    observed: &mut Observed,
) -> Result<(), TlsError> {
    for _ in 0..64 {
        let from_client = client_output(client);
        let mut to_client = Vec::new();
        for piece in from_client.chunks(step.max(1)) {
            let outcome = server.read(piece, &mut observed.plaintext, &mut to_client)?;
            client_input(client, &to_client).expect("client accepts the server's bytes");
            to_client.clear();
            observed.add(outcome);
        }
        if from_client.is_empty() {
            return Ok(());
        }
    }
    panic!("pump did not settle in 64 rounds");
}

pub fn pump(
    client: &mut ClientConnection,
    server: &mut TlsSession,
    observed: &mut Observed,
) -> Result<(), TlsError> {
    pump_with_step(client, server, usize::MAX, observed)
}

/// A completed handshake between a fresh client and a fresh session.
pub fn handshake(
    context: &TlsContext,
    config: &Arc<ClientConfig>,
) -> (ClientConnection, TlsSession, Observed) {
    let mut client = client(config);
    let mut server = TlsSession::new(context);
    let mut observed = Observed::default();
    pump(&mut client, &mut server, &mut observed).expect("handshake");
    assert!(!client.is_handshaking(), "client finished its handshake");
    assert!(server.is_handshake_done(), "server finished its handshake");
    assert_eq!(observed.handshake_completed, 1);
    (client, server, observed)
}

/// Client writes `data`; the server reads it; returns what the server decrypted.
pub fn client_sends(
    client: &mut ClientConnection,
    server: &mut TlsSession,
    data: &[u8],
) -> Vec<u8> {
    let mut observed = Observed::default();
    // The client buffers at most 64 KiB of plaintext: hand it over in pieces.
    for piece in data.chunks(32 * 1024) {
        client.writer().write_all(piece).expect("client write");
        pump(client, server, &mut observed).expect("server reads client data");
    }
    observed.plaintext
}

/// Server writes `data`; the client reads it; returns what the client decrypted.
pub fn server_sends(
    client: &mut ClientConnection,
    server: &mut TlsSession,
    data: &[u8],
) -> Vec<u8> {
    let mut to_client = Vec::new();
    server.write(data, &mut to_client).expect("server write");
    client_input(client, &to_client).expect("client accepts server data");
    client_plaintext(client)
}

/// Client sends `up`, then the server sends `down`; each must arrive as it was written.
pub fn exchange(client: &mut ClientConnection, server: &mut TlsSession, up: &[u8], down: &[u8]) {
    assert_eq!(client_sends(client, server, up), up, "client to server");
    assert_eq!(server_sends(client, server, down), down, "server to client");
}

/// Every suite rookery-tls offers: TLS 1.3's three and TLS 1.2's three ECDHE-ECDSA AEADs.
pub const ALL_SUITES: [CipherSuite; 6] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// A client config that offers `suite` only (with its protocol version).
pub fn suite_config(ca: &TestCa, suite: CipherSuite) -> Arc<ClientConfig> {
    let mut provider = client_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    let version = if format!("{suite:?}").starts_with("TLS13") {
        &rustls::version::TLS13
    } else {
        &rustls::version::TLS12
    };
    client_config_with(ca, version, &[], provider)
}

/// The client's RFC 9266 exporter value.
pub fn client_exporter(client: &ClientConnection) -> [u8; 32] {
    client
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .expect("client exporter")
}
