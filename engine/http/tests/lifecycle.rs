//! Retention, restarts and TLS: what outlives one request.

mod common;

use std::sync::Arc;

use common::{full, Harness, Pattern};
use hyper::{Method, StatusCode};
use rookery_http::{CleanupReport, HttpConfig, HttpServer, Refusal, StartError, TlsFiles};
use rookery_proto::Jid;
use rookery_upload::{SlotPolicy, UsageEvent};
use tokio_rustls::rustls;

#[test]
fn cleanup_removes_files_past_retention() {
    let mut h = Harness::start(SlotPolicy::default(), |config| {
        config.file_ttl_s = Some(1_000)
    });
    let old = h.slot("romeo@montague.tld", "old.txt", 3, Some("text/plain"));
    assert_eq!(
        h.put(&old.put_url, Some("text/plain"), b"old").status,
        StatusCode::CREATED
    );
    h.advance(600);
    let new = h.slot("romeo@montague.tld", "new.txt", 3, Some("text/plain"));
    assert_eq!(
        h.put(&new.put_url, Some("text/plain"), b"new").status,
        StatusCode::CREATED
    );
    h.advance(400);
    // Past its retention a file is no longer served, even before cleanup removes it.
    assert_eq!(h.get(&old.get_url, &[]).status, StatusCode::NOT_FOUND);
    let files = h.upload_dir().join("upload/files");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 4);
    let report = h.handle().run_cleanup();
    assert_eq!(
        report,
        CleanupReport {
            files_expired: 1,
            temps_removed: 0
        }
    );
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 2);
    assert_eq!(h.get(&new.get_url, &[]).body, b"new");
    let metrics = h.handle().metrics();
    assert_eq!(
        (
            metrics.files,
            metrics.stored_bytes,
            metrics.files_expired_total
        ),
        (1, 3, 1)
    );
    let removed = UsageEvent::Removed {
        owner: Jid::parse("romeo@montague.tld").unwrap(),
        token: old.token,
        size_bytes: 3,
    };
    assert_eq!(h.events().last(), Some(&removed));
    h.advance(600);
    assert_eq!(h.handle().run_cleanup().files_expired, 1);
    assert!(h.handle().usage_by_owner().is_empty());
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 0);
}

#[test]
fn a_restart_rebuilds_usage_from_sidecars() {
    let mut h = Harness::start(SlotPolicy::default(), |_| {});
    let mut slots = Vec::new();
    for (owner, size) in [
        ("alice@example.test", 1_000),
        ("alice@example.test", 2_000),
        ("bob@example.test", 500),
    ] {
        let slot = h.slot(owner, "f.bin", size, None);
        let data = Pattern::bytes(size, size as usize);
        assert_eq!(
            h.put(&slot.put_url, None, &data).status,
            StatusCode::CREATED
        );
        slots.push((slot, data));
    }
    let before = h.handle().usage_by_owner();
    // A temp file as a crash mid-upload would leave.
    let tmp = h.upload_dir().join("upload/tmp");
    std::fs::write(tmp.join(format!("{}.part", "ab".repeat(16))), b"partial").unwrap();
    h.restart();
    let after = h.handle().usage_by_owner();
    assert_eq!(after, before);
    let summary: Vec<_> = after
        .iter()
        .map(|u| (u.owner.as_str(), u.files, u.bytes))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice@example.test", 2, 3_000),
            ("bob@example.test", 1, 500)
        ]
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    let metrics = h.handle().metrics();
    assert_eq!((metrics.files, metrics.stored_bytes), (3, 3_500));
    for (slot, data) in &slots {
        assert!(h.get(&slot.get_url, &[]).body == *data);
        // The slot stays used across the restart.
        let again = h.put(&slot.put_url, None, data);
        assert_eq!(again.status, StatusCode::CONFLICT);
    }
}

/// A TLS client trusting only `cert`.
fn trusting(cert: &rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    #[allow(deprecated)] // ring, as the workspace (see rookery-tls).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(client))
}

#[test]
fn https_with_the_xmpp_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = common::TempDir::new("tls");
    std::fs::create_dir_all(&dir.0).unwrap();
    let cert_path = dir.0.join("cert.pem");
    let key_path = dir.0.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let files = TlsFiles {
        cert_chain_pem: cert_path.clone(),
        key_pem: key_path.clone(),
    };
    let mut h = Harness::start(SlotPolicy::default(), move |config| {
        config.tls = Some(files.clone())
    });
    let slot = h.slot("romeo@montague.tld", "secret.txt", 6, Some("text/plain"));
    let connector = trusting(certified.cert.der());
    let addr = h.addr();
    let exchange = |method: Method, url: &str, body: &'static [u8]| {
        let headers = [("content-type", "text/plain")];
        let request = common::build(method, url, &headers, full(body));
        let connector = connector.clone();
        h.rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let io = hyper_util::rt::TokioIo::new(tls);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let response = sender.send_request(request).await.unwrap();
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
            (status, body.to_bytes().to_vec())
        })
    };
    assert_eq!(
        exchange(Method::PUT, &slot.put_url, b"sealed").0,
        StatusCode::CREATED
    );
    assert_eq!(
        exchange(Method::GET, &slot.get_url, b""),
        (StatusCode::OK, b"sealed".to_vec())
    );
    // Plain HTTP to the TLS port is not served.
    let plain = h.rt.block_on(common::send(
        addr,
        common::build(Method::GET, &slot.get_url, &[], full(b"")),
    ));
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");
    h.wait_until("the failed handshake is counted", |h| {
        h.handle().metrics().refusals_of(Refusal::TlsHandshake) == 1
    });
}

#[test]
fn a_key_that_does_not_match_is_refused_at_start() {
    let dir = common::TempDir::new("tls-mismatch");
    std::fs::create_dir_all(&dir.0).unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let files = TlsFiles {
        cert_chain_pem: dir.0.join("cert.pem"),
        key_pem: dir.0.join("key.pem"),
    };
    std::fs::write(&files.cert_chain_pem, one.cert.pem()).unwrap();
    std::fs::write(&files.key_pem, other.key_pair.serialize_pem()).unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let secret = common::SECRET.to_vec();
    let mut config = HttpConfig::new(listen, "https://localhost", dir.0.clone(), secret);
    config.tls = Some(files.clone());
    let error = HttpServer::start(config.clone()).err().unwrap();
    assert!(matches!(error, StartError::Tls(_)), "{error}");
    assert!(error.to_string().contains("does the key match"), "{error}");
    std::fs::write(&files.key_pem, b"not a key").unwrap();
    let error = HttpServer::start(config).err().unwrap();
    assert!(error.to_string().contains("key.pem"), "{error}");
}
