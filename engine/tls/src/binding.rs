//! RFC 9266 `tls-exporter` channel binding, computed from the secret `capture.rs` caught.
//!
//! What it does: the TLS exporter (RFC 8446 section 7.5 for TLS 1.3, RFC 5705 for TLS 1.2)
//! with label `EXPORTER-Channel-Binding`, no context and 32 bytes of output, using the
//! negotiated suite's own HKDF / PRF from rustls' crypto provider (ring), so no crypto of ours
//! beyond the RFC's framing of labels. It is what rustls' `export_keying_material` computes
//! on a buffered connection; the integration tests compare the two byte for byte.
//!
//! What it does not do: other labels or lengths (SCRAM-*-PLUS needs only this one), or
//! TLS 1.2 without extended master secret (RFC 9266 forbids it; our `ServerConfig` requires
//! EMS, so such a handshake never completes).
//!
//! "No context": RFC 9266 says "empty context value"; for TLS 1.3 both readings give the same
//! bytes, for TLS 1.2 we use the no-context form of RFC 5705, as OpenSSL-based servers
//! (`SSL_export_keying_material(.., use_context=0)`) and Go's `ExportKeyingMaterial(.., nil, ..)`
//! do, so clients built on either interoperate.

use rustls::crypto::tls13::{HkdfExpander, OkmBlock};
use rustls::{SupportedCipherSuite, Tls12CipherSuite, Tls13CipherSuite};

use crate::capture::{CaughtSecret, SecretKind};

/// The RFC 9266 exporter label.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Length of the tls-exporter channel binding (RFC 9266 section 2).
pub const CHANNEL_BINDING_BYTES: usize = 32;

/// Computes the tls-exporter value, or `None` when the secret does not fit the suite (which
/// a correct rustls never produces) or the TLS 1.2 server random is missing.
pub(crate) fn channel_binding(
    suite: SupportedCipherSuite,
    secret: &CaughtSecret,
    server_random: Option<&[u8; 32]>,
) -> Option<[u8; CHANNEL_BINDING_BYTES]> {
    match (suite, secret.kind) {
        (SupportedCipherSuite::Tls13(suite), SecretKind::Tls13Exporter) => {
            tls13(suite, secret.bytes())
        }
        (SupportedCipherSuite::Tls12(suite), SecretKind::Tls12Master) => {
            let mut seed = [0u8; 64];
            seed[..32].copy_from_slice(&secret.client_random);
            seed[32..].copy_from_slice(server_random?);
            Some(tls12(suite, secret.bytes(), &seed))
        }
        _ => None,
    }
}

/// RFC 8446 7.5: HKDF-Expand-Label(Derive-Secret(S, label, ""), "exporter", Hash(""), 32).
fn tls13(suite: &Tls13CipherSuite, exporter_secret: &[u8]) -> Option<[u8; 32]> {
    let hash = suite.common.hash_provider;
    if exporter_secret.len() != hash.output_len() {
        return None;
    }
    let empty_hash = hash.hash(&[]);
    let expander = suite
        .hkdf_provider
        .expander_for_okm(&OkmBlock::new(exporter_secret));
    let mut derived = [0u8; 64];
    let derived = &mut derived[..hash.output_len()];
    expand_label(
        &*expander,
        CHANNEL_BINDING_LABEL,
        empty_hash.as_ref(),
        derived,
    )?;
    let expander = suite
        .hkdf_provider
        .expander_for_okm(&OkmBlock::new(derived));
    zeroize::Zeroize::zeroize(derived);
    let mut out = [0u8; CHANNEL_BINDING_BYTES];
    expand_label(&*expander, b"exporter", empty_hash.as_ref(), &mut out)?;
    Some(out)
}

/// HKDF-Expand-Label (RFC 8446 section 7.1): info = length || "tls13 " label || context.
fn expand_label(
    expander: &dyn HkdfExpander,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let out_len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(PREFIX.len() + label.len()).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    let info: [&[u8]; 6] = [&out_len, &label_len, PREFIX, label, &context_len, context];
    expander.expand_slice(&info, out).ok()
}

/// RFC 5705 without context: PRF(master_secret, label, client_random + server_random).
fn tls12(suite: &Tls12CipherSuite, master_secret: &[u8], randoms: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; CHANNEL_BINDING_BYTES];
    suite
        .prf_provider
        .for_secret(&mut out, master_secret, CHANNEL_BINDING_LABEL, randoms);
    out
}
