//! Loading errors name the file and the fault; reloads swap the config for new sessions only.

mod common;

use common::*;
use rookery_tls::{ConfigError, ConfigWarning, TlsConfig, TlsSession};
use rustls::version::TLS13;

fn load_err(chain: &std::path::Path, key: &std::path::Path) -> ConfigError {
    TlsConfig::load(chain, key).expect_err("load must fail")
}

#[test]
fn a_missing_file_is_named() {
    let dir = TempDir::new();
    let cert = TestCa::new().issue();
    let key = dir.write("key.pem", &cert.key_pem);
    let chain = dir.path().join("nope.pem");
    let err = load_err(&chain, &key);
    assert!(
        matches!(&err, ConfigError::Read { path, .. } if path == &chain),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("nope.pem") && text.contains("No such file"),
        "{text}"
    );

    let chain = dir.write("chain.pem", &cert.chain_pem);
    let missing_key = dir.path().join("missing-key.pem");
    let err = load_err(&chain, &missing_key);
    assert!(err.to_string().contains("missing-key.pem"), "{err}");
}

#[test]
fn pem_without_a_certificate_is_named() {
    let dir = TempDir::new();
    let cert = TestCa::new().issue();
    let key = dir.write("key.pem", &cert.key_pem);
    // The key file given as the chain: valid PEM, but no CERTIFICATE section.
    let err = load_err(&key, &key);
    assert!(
        matches!(&err, ConfigError::NoCertificate { path } if path == &key),
        "{err:?}"
    );
    assert!(err.to_string().contains("key.pem"));
    assert!(err.to_string().contains("no certificate"));

    let empty = dir.write("empty.pem", "");
    assert!(matches!(
        load_err(&empty, &key),
        ConfigError::NoCertificate { .. }
    ));
}

#[test]
fn pem_without_a_key_is_named() {
    let dir = TempDir::new();
    let cert = TestCa::new().issue();
    let chain = dir.write("chain.pem", &cert.chain_pem);
    let err = load_err(&chain, &chain);
    assert!(
        matches!(&err, ConfigError::NoPrivateKey { path } if path == &chain),
        "{err:?}"
    );
    assert!(err.to_string().contains("chain.pem") && err.to_string().contains("no private key"));
}

#[test]
fn broken_pem_is_named() {
    let dir = TempDir::new();
    let cert = TestCa::new().issue();
    let key = dir.write("key.pem", &cert.key_pem);
    let torn = &cert.chain_pem[..cert.chain_pem.len() / 3];
    let chain = dir.write("torn.pem", torn);
    let err = load_err(&chain, &key);
    assert!(
        matches!(&err, ConfigError::Pem { path, .. } if path == &chain),
        "{err:?}"
    );
    assert!(err.to_string().contains("torn.pem"));
}

#[test]
fn a_key_that_does_not_match_the_certificate_names_both_files() {
    let dir = TempDir::new();
    let ca = TestCa::new();
    let (one, other) = (ca.issue(), ca.issue());
    let chain = dir.write("chain.pem", &one.chain_pem);
    let key = dir.write("other-key.pem", &other.key_pem);
    let err = load_err(&chain, &key);
    assert!(matches!(err, ConfigError::KeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("chain.pem") && text.contains("other-key.pem"),
        "{text}"
    );
    assert!(text.contains("does not belong"), "{text}");
}

#[test]
fn expired_and_future_certificates_load_with_a_warning() {
    let dir = TempDir::new();
    let ca = TestCa::new();
    let expired = ca.issue_with(|p| {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 2);
    });
    let chain = dir.write("expired.pem", &expired.chain_pem);
    let key = dir.write("expired-key.pem", &expired.key_pem);
    let config = TlsConfig::load(&chain, &key).expect("expired still loads");
    assert!(matches!(config.warnings(), [ConfigWarning::Expired { .. }]));
    let text = config.warnings()[0].to_string();
    assert!(
        text.contains("expired.pem") && text.contains("2020-01-02T00:00:00Z"),
        "{text}"
    );
    assert_eq!(config.not_after_unix_s(), Some(1_577_923_200));

    let future = ca.issue_with(|p| {
        p.not_before = rcgen::date_time_ymd(2999, 1, 1);
        p.not_after = rcgen::date_time_ymd(3000, 1, 1);
    });
    let chain = dir.write("future.pem", &future.chain_pem);
    let key = dir.write("future-key.pem", &future.key_pem);
    let config = TlsConfig::load(&chain, &key).expect("future still loads");
    assert!(matches!(
        config.warnings(),
        [ConfigWarning::NotYetValid { .. }]
    ));

    let current = ca.issue();
    let chain = dir.write("current.pem", &current.chain_pem);
    let key = dir.write("current-key.pem", &current.key_pem);
    assert!(TlsConfig::load(&chain, &key)
        .expect("loads")
        .warnings()
        .is_empty());
}

#[test]
fn a_reload_serves_new_sessions_the_new_certificate_and_keeps_old_sessions() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[]);
    let (mut old_client, mut old_session, _) = handshake(&fx.context, &config);
    assert_eq!(
        old_client.peer_certificates().expect("cert")[0],
        fx.cert.der
    );

    // The operator replaces the files and sends SIGHUP.
    let renewed = fx.ca.issue();
    fx.dir.write("chain.pem", &renewed.chain_pem);
    fx.dir.write("key.pem", &renewed.key_pem);
    let warnings = fx.context.reload().expect("reload");
    assert!(warnings.is_empty());

    let (new_client, _new_session, _) = handshake(&fx.context, &config);
    assert_eq!(
        new_client.peer_certificates().expect("cert")[0],
        renewed.der
    );
    assert_ne!(renewed.der, fx.cert.der);

    // The session made before the reload goes on with its own keys.
    exchange(&mut old_client, &mut old_session, b"<r/>", b"<a h='1'/>");
}

#[test]
fn a_failed_reload_keeps_the_old_config_and_says_why() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[]);
    let other = fx.ca.issue();
    fx.dir.write("key.pem", &other.key_pem); // half-finished renewal: new key, old cert
    let err = fx.context.reload().expect_err("mismatched key");
    assert!(matches!(err, ConfigError::KeyMismatch { .. }), "{err:?}");

    let (client, _session, _) = handshake(&fx.context, &config);
    assert_eq!(client.peer_certificates().expect("cert")[0], fx.cert.der);
    assert_eq!(
        fx.context.current().key_path(),
        fx.dir.path().join("key.pem")
    );
}

#[test]
fn a_session_made_before_a_reload_finishes_its_handshake_with_the_old_config() {
    let fx = Fixture::new();
    let config = fx.client_config(&TLS13, &[]);
    let mut client = client(&config);
    let mut server = TlsSession::new(&fx.context); // accepted before the reload
    let renewed = fx.ca.issue();
    fx.dir.write("chain.pem", &renewed.chain_pem);
    fx.dir.write("key.pem", &renewed.key_pem);
    fx.context.reload().expect("reload");
    let mut observed = Observed::default();
    pump(&mut client, &mut server, &mut observed).expect("handshake");
    assert_eq!(observed.handshake_completed, 1);
    assert_eq!(client.peer_certificates().expect("cert")[0], fx.cert.der);
}
