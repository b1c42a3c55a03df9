//! The server's TLS as an operator meets it: a missing or broken certificate stops the start
//! with an error naming the file; SIGHUP re-reads the certificate for new conns while a
//! session opened before it goes on; the metrics count handshakes. Clients here are the
//! `openssl s_client` command (direct TLS, XEP-0368), so what is checked is what any TLS
//! client sees. Both backends.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rookery_testkit::nats::free_port;
use support::certs::TestCa;
use support::{backends, Server, DOMAIN};

/// The rookery binary with these flags exits with an error; returns its stderr.
fn start_fails(flags: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "off",
            "--domain",
            DOMAIN,
        ])
        .args([
            "--auth",
            "token",
            "--token-secret",
            "s",
            "--durability",
            "memory",
        ])
        .args(flags)
        .output()
        .expect("rookery runs");
    assert!(!output.status.success(), "started with {flags:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_or_broken_certificate_is_an_error_naming_the_file() {
    let ca = TestCa::new("Rookery Test CA", DOMAIN);
    let key = ca.arg("server.key");
    let missing = ca.arg("no-such-cert.pem");
    let error = start_fails(&["--tls-cert", &missing, "--tls-key", &key]);
    assert!(
        error.contains(&missing) && error.contains("cannot read"),
        "{error}"
    );
    // A key given as the certificate: a PEM file without a certificate in it.
    let error = start_fails(&["--tls-cert", &key, "--tls-key", &key]);
    assert!(
        error.contains(&key) && error.contains("no certificate"),
        "{error}"
    );
    // The certificate of one key with another key.
    ca.issue("other", DOMAIN);
    let (cert, other_key) = (ca.arg("server.pem"), ca.arg("other.key"));
    let error = start_fails(&["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(error.contains("--tls-cert/--tls-key"), "{error}");
    let error = start_fails(&["--require-tls", "all"]);
    assert!(error.contains("--tls-cert"), "{error}");
}

/// An `openssl s_client` on direct TLS: its stdin, and its stdout lines through a channel.
struct TlsClient {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// Output received and not yet matched.
    seen: String,
}

impl TlsClient {
    fn connect(port: &str, ca: &str) -> TlsClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", DOMAIN, "-CAfile", ca, "-verify_return_error"])
            .args(["-alpn", "xmpp-client", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client runs");
        let mut stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        // Chunks, not lines: XMPP output has no line ends.
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                if tx
                    .send(String::from_utf8_lossy(&chunk[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        TlsClient {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits (at most 10 s) until the output since the last match contains `needle`.
    fn expect(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(at) = self.seen.find(needle) {
                self.seen.drain(..at + needle.len());
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&chunk),
                Err(_) => panic!("no {needle:?} from s_client; it printed:\n{}", self.seen),
            }
        }
    }

    fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped");
        stdin.write_all(text.as_bytes()).expect("s_client stdin");
        stdin.flush().expect("flushed");
    }
}

impl Drop for TlsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='example.test' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\n";

#[test]
fn sighup_swaps_the_certificate_for_new_conns_and_open_sessions_go_on() {
    let first = TestCa::new("First CA", DOMAIN);
    let second = TestCa::new("Second CA", DOMAIN);
    for backend in backends() {
        // The server reads the files the operator replaces (renewal) before the SIGHUP.
        let live = TestCa::new("Live files", DOMAIN);
        for file in ["server.pem", "server.key"] {
            std::fs::copy(first.path(file), live.path(file)).expect("copy cert");
        }
        let port = free_port().to_string();
        let tls_addr = format!("127.0.0.1:{port}");
        let tls = live.server_flags();
        let mut flags: Vec<&str> = tls.iter().map(String::as_str).collect();
        flags.extend(["--listen-tls", &tls_addr]);
        let server = Server::start(backend, 2, &flags);

        let mut before = TlsClient::connect(&port, &first.arg("ca.pem"));
        before.expect("Verification: OK");
        before.send(HEADER);
        before.expect("<mechanism>PLAIN</mechanism>");

        for file in ["server.pem", "server.key"] {
            std::fs::copy(second.path(file), live.path(file)).expect("replace cert");
        }
        server.signal("HUP");
        // New conns get the new certificate (the old CA no longer verifies it)...
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let output = Command::new("openssl")
                .args(["s_client", "-connect", &tls_addr, "-servername", DOMAIN])
                .args(["-CAfile", &second.arg("ca.pem"), "-verify_return_error"])
                .stdin(Stdio::null())
                .output()
                .expect("openssl s_client runs");
            let text = String::from_utf8_lossy(&output.stdout);
            if text.contains("Verification: OK") && text.contains("Second CA") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend}: still the old certificate after SIGHUP:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // ...and the session opened before goes on under its own keys.
        before.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>\n");
        before.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
        assert!(
            server.metric("rookery_tls_handshakes_total") >= 2,
            "{backend}"
        );
    }
}
