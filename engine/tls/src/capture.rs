//! Per-handshake facts rustls' unbuffered API does not expose, caught as rustls reports them.
//!
//! What it does: rustls 0.23's `UnbufferedServerConnection` has no `server_name()` and no
//! `export_keying_material()` (the buffered `ServerConnection` has both). It does call two
//! hooks of the shared `ServerConfig` synchronously while it processes a ClientHello or a key
//! exchange: the certificate resolver (with the ClientHello, so the SNI) and the key log (with
//! the TLS 1.3 exporter secret, or the TLS 1.2 master secret). [`CapturingResolver`] and
//! [`SecretCapture`] put what they see into a thread-local slot that
//! [`crate::TlsSession::read`] arms before it feeds rustls and empties right after, on the
//! same thread, so what was caught belongs to that session.
//!
//! What it does not do: keep anything when no session armed the slot (a hook called
//! otherwise records nothing), or log secrets anywhere: the key log hands out only to the
//! session that is running, which turns the secret into its RFC 9266 value at once and wipes
//! the copy (see `binding.rs`).
//!
//! Invariant: between `arm` and `disarm` this thread runs rustls for one session only; the
//! session calls both around its own processing and nothing in between can re-enter another
//! session (rustls calls no user code but these hooks).

use std::cell::RefCell;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::KeyLog;

/// The largest secret caught: the TLS 1.3 exporter secret of a SHA-384 suite, or a TLS 1.2
/// master secret (48 bytes).
pub(crate) const MAX_SECRET_BYTES: usize = 48;

/// Which secret the key log handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretKind {
    /// TLS 1.3 `exporter_master_secret` (RFC 8446 section 7.1).
    Tls13Exporter,
    /// TLS 1.2 `master_secret`; rustls requires extended master secret (see `config.rs`).
    Tls12Master,
}

/// A secret caught from the key log, wiped on drop.
pub(crate) struct CaughtSecret {
    pub kind: SecretKind,
    pub client_random: [u8; 32],
    bytes: [u8; MAX_SECRET_BYTES],
    len: usize,
}

impl CaughtSecret {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for CaughtSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

/// What one `arm`..`disarm` window caught.
#[derive(Default)]
pub(crate) struct Caught {
    pub server_name: Option<Box<str>>,
    pub secret: Option<CaughtSecret>,
}

thread_local! {
    static SLOT: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// Starts catching for the session about to run on this thread.
pub(crate) fn arm() {
    SLOT.with(|slot| *slot.borrow_mut() = Some(Caught::default()));
}

/// Stops catching and returns what was caught since `arm`.
pub(crate) fn disarm() -> Caught {
    SLOT.with(|slot| slot.borrow_mut().take())
        .unwrap_or_default()
}

fn with_armed(f: impl FnOnce(&mut Caught)) {
    // try_with: a hook running during thread teardown simply records nothing.
    let _ = SLOT.try_with(|slot| {
        if let Some(caught) = slot.borrow_mut().as_mut() {
            f(caught);
        }
    });
}

/// The certificate resolver of every `ServerConfig` we build: one certificate for all
/// names (the server is one XMPP domain per config), and it notes the SNI.
#[derive(Debug)]
pub(crate) struct CapturingResolver {
    pub key: Arc<CertifiedKey>,
}

impl ResolvesServerCert for CapturingResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = client_hello.server_name() {
            with_armed(|caught| caught.server_name = Some(name.into()));
        }
        Some(Arc::clone(&self.key))
    }
}

/// The key log of every `ServerConfig` we build: takes only the secret the RFC 9266
/// exporter needs, only into an armed slot.
#[derive(Debug)]
pub(crate) struct SecretCapture;

const TLS13_EXPORTER_LABEL: &str = "EXPORTER_SECRET";
const TLS12_MASTER_LABEL: &str = "CLIENT_RANDOM";

impl KeyLog for SecretCapture {
    fn will_log(&self, label: &str) -> bool {
        label == TLS13_EXPORTER_LABEL || label == TLS12_MASTER_LABEL
    }

    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let kind = match label {
            TLS13_EXPORTER_LABEL => SecretKind::Tls13Exporter,
            TLS12_MASTER_LABEL => SecretKind::Tls12Master,
            _ => return,
        };
        let (Ok(client_random), true) = (
            <[u8; 32]>::try_from(client_random),
            secret.len() <= MAX_SECRET_BYTES,
        ) else {
            return;
        };
        with_armed(|caught| {
            let mut bytes = [0u8; MAX_SECRET_BYTES];
            bytes[..secret.len()].copy_from_slice(secret);
            caught.secret = Some(CaughtSecret {
                kind,
                client_random,
                bytes,
                len: secret.len(),
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_unless_armed() {
        SecretCapture.log(TLS13_EXPORTER_LABEL, &[1; 32], &[2; 32]);
        assert!(disarm().secret.is_none());

        arm();
        SecretCapture.log("CLIENT_TRAFFIC_SECRET_0", &[1; 32], &[2; 32]);
        SecretCapture.log(TLS12_MASTER_LABEL, &[1; 32], &[3; 48]);
        let caught = disarm().secret.expect("armed slot keeps the master secret");
        assert_eq!(caught.kind, SecretKind::Tls12Master);
        assert_eq!(caught.bytes(), &[3; 48]);
        assert_eq!(caught.client_random, [1; 32]);
        assert!(disarm().secret.is_none(), "disarm empties the slot");
    }

    #[test]
    fn oversized_secret_or_odd_random_is_ignored() {
        arm();
        SecretCapture.log(TLS13_EXPORTER_LABEL, &[1; 32], &[2; 64]);
        SecretCapture.log(TLS13_EXPORTER_LABEL, &[1; 31], &[2; 32]);
        assert!(disarm().secret.is_none());
    }
}
