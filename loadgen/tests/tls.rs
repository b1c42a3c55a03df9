//! rookery-load over TLS and SCRAM against the real server, on loopback: a short `chat` over
//! `--tls starttls` and over `--tls direct` (XEP-0368), trusting a test CA made here with
//! rcgen, and one with `--sasl scram-sha-256` against `--auth file` accounts made with
//! `rookery accounts add-many`. Every client must log in, no message may be lost.
//!
//! Bounded: each run lasts a few seconds; every child is killed after `common::RUN_TIMEOUT`
//! and every server on drop.

#[allow(dead_code)] // these tests use the server, accounts and bounded runs, not Target
mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{run_load, run_load_as, server_binary, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;

const CLIENTS: u64 = 20;

/// A test CA and a certificate for `example.test` it signed, as PEM files in a folder
/// removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("rookery-load-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PKI folder");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rookery-load test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["example.test".to_owned()]).expect("params");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A short chat of [`CLIENTS`] clients with `extra` options; asserts every client logged in
/// and every message arrived; returns summary.json.
fn chat(name: &str, server: &str, extra: &[&str], auth: Option<&str>) -> Value {
    let clients = CLIENTS.to_string();
    let mut args = vec![
        "chat",
        "--server",
        server,
        "--clients",
        &clients,
        "--rate",
        "2",
        "--duration",
        "3s",
        "--connect-rate",
        "200",
        "--drain-ms",
        "1000",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    let (summary, _, text) = match auth {
        Some(auth) => run_load_as(name, &args, auth, 0),
        None => run_load(name, &args, 0),
    };
    let counts = &summary["counts"];
    assert_eq!(counts["logins"], CLIENTS, "{counts}\n{text}");
    assert_eq!(counts["errors_total"], 0, "{counts}\n{text}");
    let messages = &counts["messages"];
    assert!(messages["sent"].as_u64().unwrap() > 0, "{messages}");
    assert_eq!(messages["lost"], 0, "{messages}");
    assert_eq!(messages["duplicated"], 0, "{messages}");
    assert_eq!(messages["delivered"], messages["sent"], "{messages}");
    assert!(text.contains("security: "), "{text}");
    summary
}

/// The checks of a TLS run's `security` section: one handshake per login, TLS 1.3, and a
/// first handshake per thread that was full.
fn check_tls(summary: &Value, mode: &str) {
    let s = &summary["security"];
    assert_eq!(s["tls"], mode, "{s}");
    assert_eq!(s["tls_verified"], true, "{s}");
    assert_eq!(s["tls_version"], "TLSv1_3", "{s}");
    assert!(
        s["tls_cipher"].as_str().unwrap().starts_with("TLS13_"),
        "{s}"
    );
    let full = s["handshakes_full"].as_u64().unwrap();
    let resumed = s["handshakes_resumed"].as_u64().unwrap();
    assert_eq!(full + resumed, CLIENTS, "{s}");
    assert!(
        full >= 1,
        "each thread's first handshake is a full one: {s}"
    );
    assert_eq!(s["tls_errors"], 0, "{s}");
}

#[test]
fn chat_over_starttls() {
    let pki = Pki::new("starttls");
    let server = Server::start_with(&[
        "--tls-cert",
        &pki.path("cert.pem"),
        "--tls-key",
        &pki.path("key.pem"),
    ]);
    let ca = pki.path("ca.pem");
    let summary = chat(
        "tls-starttls",
        &server.addr,
        &["--tls", "starttls", "--tls-ca", &ca],
        None,
    );
    check_tls(&summary, "starttls");
}

#[test]
fn chat_over_direct_tls_with_and_without_resumption() {
    let pki = Pki::new("direct");
    let port = rookery_testkit::nats::free_port();
    let direct = format!("127.0.0.1:{port}");
    let _server = Server::start_with(&[
        "--tls-cert",
        &pki.path("cert.pem"),
        "--tls-key",
        &pki.path("key.pem"),
        "--listen-tls",
        &direct,
    ]);
    let ca = pki.path("ca.pem");
    let summary = chat(
        "tls-direct",
        &direct,
        &["--tls", "direct", "--tls-ca", &ca],
        None,
    );
    check_tls(&summary, "direct");
    let summary = chat(
        "tls-direct-full",
        &direct,
        &["--tls", "direct", "--tls-ca", &ca, "--tls-resume", "off"],
        None,
    );
    check_tls(&summary, "direct");
    assert_eq!(summary["security"]["handshakes_resumed"], 0);
}

#[test]
fn a_certificate_from_another_ca_fails_every_login() {
    let pki = Pki::new("theirs");
    let ours = Pki::new("ours");
    let server = Server::start_with(&[
        "--tls-cert",
        &pki.path("cert.pem"),
        "--tls-key",
        &pki.path("key.pem"),
    ]);
    let ca = ours.path("ca.pem");
    // Exit 3: no client came online.
    let (summary, _, text) = run_load(
        "tls-wrong-ca",
        &[
            "hold",
            "--server",
            &server.addr,
            "--clients",
            "4",
            "--duration",
            "1s",
            "--threads",
            "1",
            "--tls",
            "starttls",
            "--tls-ca",
            &ca,
        ],
        3,
    );
    assert_eq!(summary["counts"]["logins"], 0, "{text}");
    assert_eq!(summary["counts"]["errors"]["tls"], 4, "{text}");
}

/// `rookery accounts add-many` on a new data dir, the password spec on stdin.
fn add_many(data_dir: &Path, count: u64, spec: &str) -> String {
    let mut child = Command::new(server_binary())
        .args(["accounts", "--data-dir"])
        .arg(data_dir)
        .args(["--domain", "example.test", "--shards", "2", "add-many"])
        .args(["--prefix", "user", "--count", &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting rookery accounts");
    writeln!(child.stdin.take().unwrap(), "{spec}").unwrap();
    let output = child.wait_with_output().expect("rookery accounts ran");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "add-many failed: {text}");
    text
}

#[test]
fn scram_sha_256_against_accounts_made_by_add_many() {
    let data_dir = Server::fresh_data_dir();
    let text = add_many(&data_dir, CLIENTS, "plain:pw-");
    assert!(
        text.contains(&format!("added {CLIENTS} accounts")),
        "{text}"
    );
    // Again: nothing new, every user counted as existing.
    let text = add_many(&data_dir, CLIENTS, "plain:pw-");
    assert!(text.contains("added 0 accounts"), "{text}");
    assert!(
        text.contains(&format!("skipped {CLIENTS} existing")),
        "{text}"
    );
    let server = Server::start_full(
        "127.0.0.1:0",
        &["--auth", "file", "--shards", "2"],
        Some(data_dir),
        &[],
    );
    let summary = chat(
        "scram-256",
        &server.addr,
        &["--sasl", "scram-sha-256"],
        Some("plain:pw-"),
    );
    assert_eq!(summary["security"]["sasl"], "SCRAM-SHA-256");
    assert_eq!(summary["security"]["tls"], "none");
    // A wrong password fails every login (the accounts are real).
    let (summary, _, _) = run_load_as(
        "scram-wrong",
        &[
            "hold",
            "--server",
            &server.addr,
            "--clients",
            "3",
            "--duration",
            "1s",
            "--threads",
            "1",
            "--sasl",
            "scram-sha-1",
        ],
        "plain:nope-",
        3,
    );
    assert_eq!(summary["counts"]["errors"]["auth_failure"], 3);
}
