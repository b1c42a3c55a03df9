//! Loading a certificate chain and key into the rustls `ServerConfig` every session shares.
//!
//! What it does: [`TlsConfig::load`] reads two PEM files, checks that the key matches the
//! first certificate, and builds the one `ServerConfig` we use: TLS 1.3 and 1.2 on ring,
//! ALPN `xmpp-client` (XEP-0368), extended master secret required, stateless session tickets,
//! no server-side session cache. Errors name the file and what is wrong with it; an expired or
//! not yet valid certificate loads but with a [`ConfigWarning`].
//!
//! What it does not do: client certificates, several certificates chosen by SNI, OCSP
//! stapling, or watching the files (the server reloads on SIGHUP through `TlsContext`).
//!
//! Choices and why:
//! - ring, not aws-lc-rs: ring does everything needed here (AES-GCM, ChaCha20-Poly1305,
//!   X25519/P-256/P-384 key exchange, RSA/ECDSA/Ed25519 keys) and builds with no C toolchain
//!   surprises (aws-lc-rs needs cmake and, for some targets, nasm). What ring lacks is
//!   post-quantum hybrid key exchange (X25519MLKEM768), which is why rustls 0.23.48 deprecates
//!   its ring provider; switching is a provider change here, and costs a larger ClientHello
//!   and key share (about 1.2 KB each way) per handshake.
//! - Record protection is rustls' own for its ring provider, as shipped: no crypto glue of
//!   ours. It keeps ring's expanded key, 2 x 560 B per session whatever the suite; a record
//!   layer of ours keeping only the raw keys saved ~1 KiB per idle session (2,381 B instead of
//!   3,389 B for TLS 1.3) but was rejected: re-implemented record protection, the key rebuilt
//!   for every record, and still over the 2 KiB budget.
//! - `require_ems`: TLS 1.2 without extended master secret (RFC 7627) is open to the triple
//!   handshake attack, and RFC 9266 forbids `tls-exporter` on it; every TLS 1.2 client of the
//!   last decade sends EMS.
//! - Stateless tickets (one per TLS 1.3 handshake) and no session cache: resumption costs no
//!   server memory and takes no lock shared by the shards (rustls' cache is one `Mutex`).
//!   Tickets are keyed per `TlsConfig`, so a reload starts a new ticket key (clients fall back
//!   to a full handshake once).
//! - No early data (0-RTT): XMPP gains nothing from it and it is replayable.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::ring;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys, ServerConfig};

use crate::capture::{CapturingResolver, SecretCapture};
use crate::validity::{self, format_utc, Validity};

/// The ALPN protocol id of XMPP client-to-server direct TLS (XEP-0368).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// TLS 1.3 session tickets sent after each full handshake: one, for the next reconnect.
const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

/// A loaded certificate and key, and the rustls configuration built from them.
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    cert_chain_path: PathBuf,
    key_path: PathBuf,
    validity: Option<Validity>,
    warnings: Vec<ConfigWarning>,
}

impl TlsConfig {
    /// Reads a PEM certificate chain (end-entity certificate first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519) and builds the server configuration.
    pub fn load(cert_chain_pem: &Path, key_pem: &Path) -> Result<TlsConfig, ConfigError> {
        let chain = read_chain(cert_chain_pem)?;
        let key = read_key(key_pem)?;
        let validity = validity::validity(&chain[0]);
        let provider = Arc::new(provider());
        let certified = certified_key(chain, key, &provider, cert_chain_pem, key_pem)?;
        let server = Arc::new(server_config(provider, certified)?);
        // Proves once that connections can be made from this config (see TlsSession::new).
        UnbufferedServerConnection::new(Arc::clone(&server)).map_err(|e| ConfigError::Rustls {
            detail: e.to_string(),
        })?;
        let warnings = validity
            .map(|v| check_validity(v, cert_chain_pem, now_unix_s()))
            .unwrap_or_default();
        Ok(TlsConfig {
            server,
            cert_chain_path: cert_chain_pem.to_path_buf(),
            key_path: key_pem.to_path_buf(),
            validity,
            warnings,
        })
    }

    /// Problems that do not stop the server (expired or not yet valid certificate).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The end-entity certificate's notAfter in Unix seconds, for an expiry gauge; `None` if
    /// its DER could not be read (it was still accepted by rustls).
    pub fn not_after_unix_s(&self) -> Option<i64> {
        self.validity.map(|v| v.not_after_unix_s)
    }

    pub fn cert_chain_path(&self) -> &Path {
        &self.cert_chain_path
    }

    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The rustls configuration itself, for measurements that compare with rustls' own
    /// buffered `ServerConnection` (examples/idle_memory.rs). Sessions do not need it.
    #[doc(hidden)]
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_chain_path", &self.cert_chain_path)
            .field("key_path", &self.key_path)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem_bytes = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(ConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem_bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => ConfigError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => pem_error(path, e),
    })
}

fn pem_error(path: &Path, e: pem::Error) -> ConfigError {
    ConfigError::Pem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, ConfigError> {
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| ConfigError::BadPrivateKey {
                path: key_path.to_path_buf(),
                detail: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key type cannot give its public key; rustls accepts that too.
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(ConfigError::KeyMismatch {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
            })
        }
        Err(e) => Err(ConfigError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// ring's provider as rustls ships it (its cipher suites and record layers), with X25519
/// preferred for key exchange: rustls 0.23.48's ring list starts with P-384, which ring
/// computes about 4x slower, and a rustls client agreeing with it cost a full TLS login 4x
/// the CPU (rookery-load storm: 223 -> 992 logins/s with X25519). OpenSSL, BoringSSL and NSS
/// clients send an X25519 key share first anyway.
fn provider() -> CryptoProvider {
    // Deprecated in rustls 0.23.48 only because ring has no post-quantum key exchange
    // (X25519MLKEM768; aws-lc-rs has it); see the module docs for why ring all the same.
    #[allow(deprecated)]
    let mut provider = ring::default_provider();
    provider.kx_groups = vec![
        ring::kx_group::X25519,
        ring::kx_group::SECP256R1,
        ring::kx_group::SECP384R1,
    ];
    provider
}

fn server_config(
    provider: Arc<CryptoProvider>,
    certified: CertifiedKey,
) -> Result<ServerConfig, ConfigError> {
    let rustls_error = |e: RustlsError| ConfigError::Rustls {
        detail: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CapturingResolver {
            key: Arc::new(certified),
        }));
    config.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    config.key_log = Arc::new(SecretCapture);
    config.require_ems = true;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer = ring::Ticketer::new().map_err(rustls_error)?;
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.max_early_data_size = 0;
    // TLS 1.3 sessions move to our record layer after the handshake (records.rs).
    config.enable_secret_extraction = true;
    Ok(config)
}

fn now_unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn check_validity(v: Validity, path: &Path, now_unix_s: i64) -> Vec<ConfigWarning> {
    let path = path.to_path_buf();
    if now_unix_s > v.not_after_unix_s {
        vec![ConfigWarning::Expired {
            path,
            not_after_unix_s: v.not_after_unix_s,
        }]
    } else if now_unix_s < v.not_before_unix_s {
        vec![ConfigWarning::NotYetValid {
            path,
            not_before_unix_s: v.not_before_unix_s,
        }]
    } else {
        Vec::new()
    }
}

/// A problem with a certificate that still loads; clients will likely refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    Expired {
        path: PathBuf,
        not_after_unix_s: i64,
    },
    NotYetValid {
        path: PathBuf,
        not_before_unix_s: i64,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::Expired {
                path,
                not_after_unix_s,
            } => write!(
                f,
                "TLS certificate in {} expired at {}: clients will refuse it; renew it and \
                 reload (SIGHUP)",
                path.display(),
                format_utc(*not_after_unix_s)
            ),
            ConfigWarning::NotYetValid {
                path,
                not_before_unix_s,
            } => write!(
                f,
                "TLS certificate in {} is not valid before {}: check the clock of this host \
                 or of the CA",
                path.display(),
                format_utc(*not_before_unix_s)
            ),
        }
    }
}

/// Why a certificate chain and key could not be loaded. Every variant names the file.
#[derive(Debug)]
pub enum ConfigError {
    /// The file is missing or unreadable.
    Read { path: PathBuf, source: io::Error },
    /// The file is not well-formed PEM.
    Pem { path: PathBuf, detail: String },
    /// The chain file holds no `CERTIFICATE` section.
    NoCertificate { path: PathBuf },
    /// The key file holds no private key section.
    NoPrivateKey { path: PathBuf },
    /// The end-entity certificate does not parse as X.509.
    BadCertificate { path: PathBuf, detail: String },
    /// The private key is of a type or encoding ring cannot use.
    BadPrivateKey { path: PathBuf, detail: String },
    /// The private key is not the one of the end-entity certificate.
    KeyMismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    /// rustls refused the configuration (not expected with the fixed settings above).
    Rustls { detail: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(
                f,
                "cannot read {}: {source}; check the path and that the server's user may \
                 read it",
                path.display()
            ),
            ConfigError::Pem { path, detail } => write!(
                f,
                "{} is not valid PEM ({detail}); it must hold -----BEGIN ...----- sections",
                path.display()
            ),
            ConfigError::NoCertificate { path } => write!(
                f,
                "{} holds no certificate (no -----BEGIN CERTIFICATE----- section); give the \
                 certificate chain file, end-entity certificate first",
                path.display()
            ),
            ConfigError::NoPrivateKey { path } => write!(
                f,
                "{} holds no private key (no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or \
                 EC PRIVATE KEY section); give the key file, unencrypted",
                path.display()
            ),
            ConfigError::BadCertificate { path, detail } => write!(
                f,
                "the first certificate in {} cannot be used ({detail}); it must be the \
                 server's end-entity certificate",
                path.display()
            ),
            ConfigError::BadPrivateKey { path, detail } => write!(
                f,
                "the private key in {} cannot be used ({detail}); use an RSA (2048+ bits), \
                 ECDSA P-256/P-384 or Ed25519 key",
                path.display()
            ),
            ConfigError::KeyMismatch {
                cert_path,
                key_path,
            } => write!(
                f,
                "the private key in {} does not belong to the first certificate in {}; give \
                 the key the certificate was issued for (or put the end-entity certificate \
                 first in the chain)",
                key_path.display(),
                cert_path.display()
            ),
            ConfigError::Rustls { detail } => {
                write!(f, "rustls refused the TLS configuration: {detail}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_warnings_follow_the_clock() {
        let v = Validity {
            not_before_unix_s: 100,
            not_after_unix_s: 200,
        };
        let path = Path::new("/etc/cert.pem");
        assert!(check_validity(v, path, 150).is_empty());
        let expired = check_validity(v, path, 201);
        assert!(matches!(
            expired[..],
            [ConfigWarning::Expired {
                not_after_unix_s: 200,
                ..
            }]
        ));
        assert!(expired[0].to_string().contains("/etc/cert.pem"));
        let early = check_validity(v, path, 99);
        assert!(matches!(early[..], [ConfigWarning::NotYetValid { .. }]));
    }
}
