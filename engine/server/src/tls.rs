//! The server's TLS settings: loading the certificate at start (`--tls-cert`, `--tls-key`),
//! re-reading it on SIGHUP, and the router's TLS policy (`--require-tls`).
//!
//! What it does not do: TLS itself (rookery-tls sessions, run by the shards' transport
//! layer, `rookery::transport`), or the HTTP side's TLS (rookery-http reads the same files).
//!
//! Invariants: a certificate that does not load stops the start with an error naming the
//! file; a reload that fails changes nothing (the old certificate stays in use) and says so.

use anyhow::Context;
use rookery_router::{TlsPolicy, TlsRequired};
use rookery_tls::{TlsConfig, TlsContext};
use tracing::{error, info, warn};

use crate::config::{Config, RequireTls};

/// The shared TLS context, when a certificate was given.
pub fn load(config: &Config) -> anyhow::Result<Option<TlsContext>> {
    let (Some(cert), Some(key)) = (&config.args.tls_cert, &config.args.tls_key) else {
        return Ok(None);
    };
    let loaded = TlsConfig::load(cert, key).context("--tls-cert/--tls-key")?;
    for warning in loaded.warnings() {
        warn!("TLS certificate: {warning}");
    }
    info!(
        "TLS: certificate {} (key {}), STARTTLS on the client port; SIGHUP re-reads both",
        cert.display(),
        key.display()
    );
    Ok(Some(TlsContext::new(loaded)))
}

/// SIGHUP: new conns get the re-read certificate, open sessions keep theirs.
pub fn reload(context: Option<&TlsContext>) {
    let Some(context) = context else {
        info!("SIGHUP: no TLS certificate configured, nothing to reload");
        return;
    };
    match context.reload() {
        Ok(warnings) => {
            for warning in warnings {
                warn!("TLS certificate: {warning}");
            }
            info!("SIGHUP: TLS certificate and key re-read; new conns use them");
        }
        Err(err) => error!("SIGHUP: TLS reload failed, the previous certificate stays: {err}"),
    }
}

/// What the router offers and requires: STARTTLS with a certificate, TLS before SASL for
/// remote peers by default (`--require-tls remote|all|off`).
pub fn policy(config: &Config) -> TlsPolicy {
    let args = &config.args;
    if args.tls_cert.is_none() {
        return TlsPolicy::OFF;
    }
    let required = match args.require_tls.unwrap_or(RequireTls::Remote) {
        RequireTls::Off => TlsRequired::Never,
        RequireTls::Remote => TlsRequired::OffLoopback,
        RequireTls::All => TlsRequired::Always,
    };
    TlsPolicy {
        starttls: true,
        required,
    }
}
