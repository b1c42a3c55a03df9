//! HTTPS: the XMPP listener's certificate and key, served through tokio-rustls.
//!
//! What it does: [`acceptor`] reads the same PEM files as the XMPP side (`--tls-cert`,
//! `--tls-key`) into a rustls `ServerConfig` on the ring provider (as rookery-tls), TLS 1.3
//! and 1.2, ALPN `http/1.1`, and wraps it in a `TlsAcceptor`. Errors name the file and the
//! fix.
//!
//! Why not rookery-tls: it is sans-IO with caller-owned buffers, built for the shards'
//! completion loops, and its config announces ALPN `xmpp-client`, which a browser offering
//! only `http/1.1` would fail to negotiate. Here hyper wants an `AsyncRead + AsyncWrite`
//! stream, which is what tokio-rustls gives; both use the workspace's rustls.
//!
//! What it does not do: reload on SIGHUP (a restart of the HTTP server picks up new files),
//! client certificates, HTTP/2.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the certificate or key could not be used.
#[derive(Debug)]
pub enum TlsLoadError {
    Certificates { path: PathBuf, detail: String },
    NoCertificate { path: PathBuf },
    Key { path: PathBuf, detail: String },
    Rustls { detail: String },
}

/// A TLS acceptor for the HTTP server.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsLoadError> {
    let chain = certificates(&files.cert_chain_pem)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_pem).map_err(|e| TlsLoadError::Key {
        path: files.key_pem.clone(),
        detail: e.to_string(),
    })?;
    let rustls_error = |e: rustls::Error| TlsLoadError::Rustls {
        detail: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn provider() -> CryptoProvider {
    // Deprecated in rustls 0.23.48 only because ring has no post-quantum key exchange; the
    // workspace uses ring everywhere (see rookery-tls's config.rs for why).
    #[allow(deprecated)]
    ring::default_provider()
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsLoadError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsLoadError::Certificates {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsLoadError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

impl fmt::Display for TlsLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsLoadError::Certificates { path, detail } => write!(
                f,
                "reading the certificate chain {}: {detail} (check the path and that it is PEM)",
                path.display()
            ),
            TlsLoadError::NoCertificate { path } => write!(
                f,
                "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            TlsLoadError::Key { path, detail } => write!(
                f,
                "reading the private key {}: {detail} (expected a PEM PKCS#8, PKCS#1 or SEC1 key)",
                path.display()
            ),
            TlsLoadError::Rustls { detail } => write!(
                f,
                "the certificate and key were refused by rustls: {detail} (does the key match \
                 the first certificate?)"
            ),
        }
    }
}

impl std::error::Error for TlsLoadError {}
