//! The client TLS layer against a rustls server in memory (a test CA and certificate made
//! with rcgen): handshake, bytes both ways, ALPN, resumption, a wrong CA refused; and the
//! client's STARTTLS steps (`<starttls/>`, `<proceed/>`, the new stream over the layer).

#![cfg(feature = "tls")]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rookery_client::layer::Layer;
use rookery_client::tls::{client_config, TlsLayer, Trust, ALPN_XMPP_CLIENT};
use rookery_client::{Client, Login, Options, Phase};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

const DOMAIN: &str = "example.test";

/// A CA and a server certificate for `DOMAIN` it signed; the CA's PEM written to a file.
struct Pki {
    ca_file: PathBuf,
    server: Arc<ServerConfig>,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pki(tag: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rookery test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![DOMAIN.to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let dir = std::env::temp_dir().join(format!("rookery-client-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    #[allow(deprecated)] // ring lacks post-quantum key exchange; the workspace uses it all the same
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    server.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    Pki {
        ca_file,
        server: Arc::new(server),
        _dir: TempDir(dir),
    }
}

/// Moves bytes between a client layer and a server connection until neither has anything
/// to say (bounded); returns what the server read as plaintext. Client plaintext arrives in
/// `client_plain`.
fn pump(
    client: &mut TlsLayer,
    server: &mut ServerConnection,
    mut to_server: Vec<u8>,
    client_plain: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut server_plain = Vec::new();
    for _ in 0..32 {
        let mut input = &to_server[..];
        while !input.is_empty() {
            server.read_tls(&mut input).map_err(|e| e.to_string())?;
            let state = server.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = vec![0; state.plaintext_bytes_to_read()];
            server.reader().read_exact(&mut buf).unwrap();
            server_plain.extend_from_slice(&buf);
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        to_server = Vec::new();
        if to_client.is_empty() {
            return Ok(server_plain);
        }
        client
            .decode(&to_client, client_plain, &mut to_server)
            .map_err(|e| e.detail)?;
    }
    panic!("the handshake did not settle in 32 round trips");
}

#[test]
fn handshake_then_bytes_both_ways_then_resumption() {
    let pki = pki("resume");
    let config = client_config(&Trust::Roots(&pki.ca_file), true, true).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut client = TlsLayer::new(Arc::clone(&config), DOMAIN).unwrap();
        let mut server = ServerConnection::new(Arc::clone(&pki.server)).unwrap();
        // Plaintext before the handshake: queued, sent once it completes.
        let mut wire = Vec::new();
        client.encode(b"<stream:stream>", &mut wire).unwrap();
        assert!(client.is_handshaking());
        let mut client_plain = Vec::new();
        let got = pump(&mut client, &mut server, wire, &mut client_plain).unwrap();
        assert!(!client.is_handshaking());
        let negotiated = client.take_completed().expect("completed once");
        assert_eq!(client.take_completed(), None, "reported once only");
        assert_eq!(client.alpn(), Some(ALPN_XMPP_CLIENT));
        assert_eq!(server.server_name(), Some(DOMAIN), "SNI is the XMPP domain");
        // The queued plaintext went out after the handshake (TLS 1.3: with the Finished).
        let mut got = got;
        if got.is_empty() {
            got = pump(&mut client, &mut server, Vec::new(), &mut client_plain).unwrap();
        }
        assert_eq!(got, b"<stream:stream>");
        server.writer().write_all(b"<features/>").unwrap();
        let got = pump(&mut client, &mut server, Vec::new(), &mut client_plain).unwrap();
        assert!(got.is_empty());
        assert_eq!(client_plain, b"<features/>");
        seen.push(negotiated);
    }
    assert_eq!(seen[0].version, "TLSv1_3");
    assert!(seen[0].cipher.starts_with("TLS13_"), "{:?}", seen[0]);
    assert!(!seen[0].resumed, "the first handshake is a full one");
    assert!(seen[1].resumed, "the second resumes the first's session");
}

#[test]
fn without_resumption_every_handshake_is_full() {
    let pki = pki("full");
    let config = client_config(&Trust::Roots(&pki.ca_file), false, false).unwrap();
    for _ in 0..2 {
        let mut client = TlsLayer::new(Arc::clone(&config), DOMAIN).unwrap();
        let mut server = ServerConnection::new(Arc::clone(&pki.server)).unwrap();
        let mut wire = Vec::new();
        client.encode(b"", &mut wire).unwrap();
        pump(&mut client, &mut server, wire, &mut Vec::new()).unwrap();
        let negotiated = client.take_completed().unwrap();
        assert!(!negotiated.resumed);
        assert_eq!(client.alpn(), None, "no ALPN for STARTTLS");
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused_unless_insecure() {
    let ours = pki("ours");
    let theirs = pki("theirs");
    let config = client_config(&Trust::Roots(&ours.ca_file), false, false).unwrap();
    let mut client = TlsLayer::new(Arc::clone(&config), DOMAIN).unwrap();
    let mut server = ServerConnection::new(Arc::clone(&theirs.server)).unwrap();
    let mut wire = Vec::new();
    client.encode(b"", &mut wire).unwrap();
    let err = pump(&mut client, &mut server, wire, &mut Vec::new()).unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    let config = client_config(&Trust::Insecure, false, false).unwrap();
    let mut client = TlsLayer::new(config, DOMAIN).unwrap();
    let mut server = ServerConnection::new(Arc::clone(&theirs.server)).unwrap();
    let mut wire = Vec::new();
    client.encode(b"", &mut wire).unwrap();
    pump(&mut client, &mut server, wire, &mut Vec::new()).unwrap();
    assert!(!client.is_handshaking());
}

#[test]
fn a_missing_or_empty_ca_file_is_a_clear_error() {
    let missing = std::path::Path::new("/nonexistent/ca.pem");
    let err = client_config(&Trust::Roots(missing), false, true).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let pki = pki("empty");
    let empty = pki.ca_file.with_file_name("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let err = client_config(&Trust::Roots(&empty), false, true).unwrap_err();
    assert!(err.to_string().contains("no usable CA"), "{err}");
}

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' version='1.0'>";

/// Feeds `bytes`, returning the client's output and its events' names.
fn feed(client: &mut Client, bytes: &[u8]) -> (String, Vec<String>) {
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut login = Login::new(DOMAIN, "alice", "secret").with_nonce_seed(1);
    client.feed(bytes, &mut login, &mut out, |event, _, _| {
        events.push(format!("{event:?}"))
    });
    (String::from_utf8(out).unwrap(), events)
}

#[test]
fn starttls_then_a_new_stream_then_sasl() {
    let mut client: Client = Client::new(Options::default());
    client.stream_mut().set_starttls(true);
    let mut out = Vec::new();
    client.start(DOMAIN, &mut out);
    let features = b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
        <required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    let (out, events) = feed(&mut client, &[HEADER, features].concat());
    assert_eq!(out, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(client.phase(), Phase::AwaitProceed);
    // Bytes after <proceed/> are TLS: not read as XML.
    let (out, events) = feed(
        &mut client,
        b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x03garbage",
    );
    assert_eq!(out, "");
    assert_eq!(events, ["StartTls"]);
    assert_eq!(client.phase(), Phase::AwaitTls);
    let mut header = Vec::new();
    assert!(client.tls_started(DOMAIN, &mut header));
    assert!(String::from_utf8(header).unwrap().starts_with("<?xml"));
    assert!(!client.tls_started(DOMAIN, &mut Vec::new()), "only once");
    // The new stream offers no STARTTLS (we are secured): SASL goes on.
    let features = b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
        </stream:features>";
    let (out, events) = feed(&mut client, &[HEADER, features].concat());
    assert!(
        out.starts_with("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"),
        "{out}"
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_server_without_starttls_ends_the_stream() {
    let mut client: Client = Client::new(Options::default());
    client.stream_mut().set_starttls(true);
    client.start(DOMAIN, &mut Vec::new());
    let features = b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    let (out, events) = feed(&mut client, &[HEADER, features].concat());
    assert_eq!(out, "", "no PLAIN in the clear");
    assert_eq!(
        events,
        [r#"ProtocolError { detail: "the server does not offer STARTTLS" }"#]
    );
    // A refusal ends it too.
    let mut client: Client = Client::new(Options::default());
    client.stream_mut().set_starttls(true);
    client.start(DOMAIN, &mut Vec::new());
    let features = b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
        </stream:features>";
    feed(&mut client, &[HEADER, features].concat());
    let (_, events) = feed(
        &mut client,
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    assert_eq!(
        events,
        [r#"ProtocolError { detail: "the server refused STARTTLS" }"#]
    );
}

#[test]
fn a_ticket_pool_lets_many_clients_resume_at_once() {
    let pki = pki("pool");
    let base = client_config(&Trust::Roots(&pki.ca_file), true, true).unwrap();
    let config = rookery_client::tls::with_own_cache(&base, true, 40);
    // `n` clients start together (each ClientHello is made, and a ticket taken, before any
    // handshake completes), then every handshake runs; how many resumed.
    let together = |n: usize| {
        let mut started: Vec<(TlsLayer, Vec<u8>)> = (0..n)
            .map(|_| {
                let mut client = TlsLayer::new(Arc::clone(&config), DOMAIN).unwrap();
                let mut wire = Vec::new();
                client.encode(b"", &mut wire).unwrap();
                (client, wire)
            })
            .collect();
        let mut resumed = 0;
        for (client, wire) in &mut started {
            let mut server = ServerConnection::new(Arc::clone(&pki.server)).unwrap();
            pump(client, &mut server, std::mem::take(wire), &mut Vec::new()).unwrap();
            // The tickets come after the handshake.
            pump(client, &mut server, Vec::new(), &mut Vec::new()).unwrap();
            resumed += usize::from(client.take_completed().unwrap().resumed);
        }
        resumed
    };
    assert_eq!(together(20), 0, "nothing to resume yet");
    // rustls' own cache keeps 8 tickets per server: 8 of 20 would resume.
    assert_eq!(together(20), 20, "every client found a ticket");
}
