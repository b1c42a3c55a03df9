//! Signed slot URLs: minted by the router, verified by the HTTP side with no shared state.
//!
//! URLs (`{public}` is `--http-public-url` without a trailing `/`):
//!
//! ```text
//! PUT {public}/upload/{token}/{signed}/{filename}
//! GET {public}/download/{token}/{filename}
//! ```
//!
//! - `token`: 32 hex digits, 128 random bits; names the file on disk and makes the GET URL
//!   unguessable (the GET URL is a capability: whoever has it may read, per XEP-0363).
//! - `filename`: the sanitized name, percent-encoded (the ending stays, for clients and
//!   browsers that look at it).
//! - `signed`: base64url (no padding) of `claims || mac`, where `claims` is the binary record
//!   of `claims.rs` (version, expiry, exact size, content type, owner's bare JID) and `mac` is
//!   HMAC-SHA256 (32 bytes) keyed by the server secret over
//!   `"rookery-upload put v1\0" || token (16 bytes) || claims || filename (UTF-8, decoded)`.
//!   The token and name are covered although they sit in their own segments; the name is
//!   covered in decoded form, so a client that re-encodes the URL still verifies.
//!
//! Why this shape: everything the HTTP side must check travels in the URL, signed, so a PUT
//! can be verified by any thread or process holding the secret, and clients that drop
//! `<header>`s still work. The segments use only `[0-9a-f]`, `[A-Za-z0-9_-]` and
//! percent-encoding: no `/` or `%2F` that a reverse proxy might rewrite. The expiry is a Unix
//! time because it is checked against another clock than the one that minted it.
//!
//! What it does not do: check policy (see `issue`) or know whether a slot was already used
//! (the HTTP side's file index does).
//!
//! Invariants: a PUT path verifies only if this secret signed exactly these token, claims and
//! name; the MAC is compared in constant time and checked before the expiry, so a forged URL
//! learns nothing from the answer.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rookery_proto::Jid;
use sha2::Sha256;

use crate::claims::Claims;
use crate::percent;
use crate::token::SlotToken;

/// The path under the public URL where PUTs go.
pub const UPLOAD_PATH: &str = "/upload/";
/// The path under the public URL where GETs go.
pub const DOWNLOAD_PATH: &str = "/download/";
/// Shortest server secret accepted: HMAC-SHA256's full strength needs a 256-bit key.
pub const MIN_SECRET_BYTES: usize = 32;

const MAC_BYTES: usize = 32;
/// Domain separation: this key signs nothing else, but a future format must not be confused
/// with this one.
const MAC_CONTEXT: &[u8] = b"rookery-upload put v1\0";

/// What a verified PUT may store, and what a minted slot promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutGrant {
    pub token: SlotToken,
    /// The requester's bare JID: the file counts against their quota.
    pub owner: Jid,
    /// Sanitized (see `filename::sanitize`), not encoded.
    pub filename: String,
    /// The exact Content-Length the PUT must carry.
    pub size_bytes: u64,
    /// The Content-Type the PUT must carry (compared by essence) and the download gets.
    pub content_type: String,
    pub expires_unix_s: u64,
}

/// One HTTP header the client must send with its PUT (XEP-0363 `<header>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotHeader {
    /// `Authorization`, `Cookie` or `Expires`: the only names XEP-0363 lets clients send.
    pub name: &'static str,
    pub value: String,
}

/// A slot: the URLs to hand to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub put_url: String,
    pub get_url: String,
    /// Headers for the `<put>` element. Empty with this signer: everything the HTTP side
    /// checks is in the URL, so clients that ignore headers work too. Render whatever is here
    /// so a signer that adds some needs no change in the router.
    pub headers: Vec<SlotHeader>,
    pub token: SlotToken,
    pub expires_unix_s: u64,
}

/// Why the signer could not be built (configuration errors, named for the operator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerError {
    SecretTooShort { bytes: usize },
    PublicUrl { url: String, reason: &'static str },
}

/// Why a PUT URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutError {
    /// Not a PUT path of ours (wrong shape or encoding).
    Malformed,
    /// Not signed by this secret, or altered.
    BadSignature,
    /// Signed, but its time is over.
    Expired { expires_unix_s: u64 },
}

/// A GET path, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadPath {
    pub token: SlotToken,
    /// The file name segment, percent-decoded.
    pub filename: Vec<u8>,
}

/// Signs and verifies slot URLs with the server secret.
#[derive(Clone)]
pub struct SlotSigner {
    mac: Hmac<Sha256>,
    public_url: String,
    /// Byte offset in `public_url` where its path starts (`public_url.len()` if none).
    path_start: usize,
}

impl SlotSigner {
    /// `secret`: at least [`MIN_SECRET_BYTES`] random bytes, the same in the router and the
    /// HTTP server. `public_url`: `https://host[:port][/path]`, as clients will reach the HTTP
    /// server (`http://` is accepted for tests and for TLS ended by a proxy on the same host).
    pub fn new(secret: &[u8], public_url: &str) -> Result<SlotSigner, SignerError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SignerError::SecretTooShort {
                bytes: secret.len(),
            });
        }
        let (public_url, path_start) = check_public_url(public_url)?;
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| {
            // HMAC takes keys of any length; kept as an error rather than a panic.
            SignerError::SecretTooShort {
                bytes: secret.len(),
            }
        })?;
        Ok(SlotSigner {
            mac,
            public_url,
            path_start,
        })
    }

    /// The public URL, without a trailing `/`.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The public URL's path (`""` or `/prefix`): requests arrive under it, unless a proxy
    /// strips it.
    pub fn base_path(&self) -> &str {
        &self.public_url[self.path_start..]
    }

    /// The slot for a grant (policy already checked).
    pub fn sign(&self, grant: &PutGrant) -> Slot {
        let claims = Claims {
            expires_unix_s: grant.expires_unix_s,
            size_bytes: grant.size_bytes,
            content_type: grant.content_type.clone(),
            owner: grant.owner.bare_str().to_owned(),
        };
        let mut signed = Vec::with_capacity(64 + claims.owner.len());
        claims.encode(&mut signed);
        let mac = self.mac_of(&grant.token, &signed, grant.filename.as_bytes());
        signed.extend_from_slice(&mac);
        let mut name = String::with_capacity(grant.filename.len() * 3);
        percent::encode_segment(&grant.filename, &mut name);
        let token = grant.token;
        let signed = URL_SAFE_NO_PAD.encode(signed);
        let base = &self.public_url;
        Slot {
            put_url: format!("{base}{UPLOAD_PATH}{token}/{signed}/{name}"),
            get_url: format!("{base}{DOWNLOAD_PATH}{token}/{name}"),
            headers: Vec::new(),
            token,
            expires_unix_s: grant.expires_unix_s,
        }
    }

    /// Verifies a PUT request path (the part after [`SlotSigner::base_path`], starting with
    /// [`UPLOAD_PATH`], still percent-encoded) at `now_unix_s`.
    pub fn verify_put(&self, path: &str, now_unix_s: u64) -> Result<PutGrant, PutError> {
        let rest = path.strip_prefix(UPLOAD_PATH).ok_or(PutError::Malformed)?;
        let mut segments = rest.split('/');
        let (Some(token), Some(signed), Some(name), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(PutError::Malformed);
        };
        let token = SlotToken::parse(token).ok_or(PutError::Malformed)?;
        let signed = URL_SAFE_NO_PAD
            .decode(signed)
            .map_err(|_| PutError::Malformed)?;
        let filename = percent::decode_segment(name).ok_or(PutError::Malformed)?;
        let Some(claims_len) = signed.len().checked_sub(MAC_BYTES) else {
            return Err(PutError::Malformed);
        };
        let (claims, mac) = signed.split_at(claims_len);
        let mut check = self.mac.clone();
        feed(&mut check, &token, claims, &filename);
        check
            .verify_slice(mac)
            .map_err(|_| PutError::BadSignature)?;
        // Signed by us from here on: a decoding failure means a format change, not an attack.
        let claims = Claims::decode(claims).ok_or(PutError::Malformed)?;
        if now_unix_s >= claims.expires_unix_s {
            return Err(PutError::Expired {
                expires_unix_s: claims.expires_unix_s,
            });
        }
        Ok(PutGrant {
            token,
            owner: Jid::parse(&claims.owner).map_err(|_| PutError::Malformed)?,
            filename: String::from_utf8(filename).map_err(|_| PutError::Malformed)?,
            size_bytes: claims.size_bytes,
            content_type: claims.content_type,
            expires_unix_s: claims.expires_unix_s,
        })
    }

    fn mac_of(&self, token: &SlotToken, claims: &[u8], filename: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac = self.mac.clone();
        feed(&mut mac, token, claims, filename);
        mac.finalize().into_bytes().into()
    }
}

fn feed(mac: &mut Hmac<Sha256>, token: &SlotToken, claims: &[u8], filename: &[u8]) {
    mac.update(MAC_CONTEXT);
    mac.update(token.as_bytes());
    mac.update(claims);
    mac.update(filename);
}

/// Parses a GET request path (after the base path, starting with [`DOWNLOAD_PATH`]).
pub fn parse_download_path(path: &str) -> Option<DownloadPath> {
    let rest = path.strip_prefix(DOWNLOAD_PATH)?;
    let (token, name) = rest.split_once('/')?;
    Some(DownloadPath {
        token: SlotToken::parse(token)?,
        filename: percent::decode_segment(name)?,
    })
}

fn check_public_url(url: &str) -> Result<(String, usize), SignerError> {
    let fail = |reason| SignerError::PublicUrl {
        url: url.to_owned(),
        reason,
    };
    let url = url.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| fail("it must start with https:// (or http:// behind a TLS proxy)"))?;
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail(
            "it must be ASCII without spaces (percent-encode the rest)",
        ));
    }
    if url.contains(['?', '#']) {
        return Err(fail("it must not have a query or a fragment"));
    }
    let authority_len = rest.find('/').unwrap_or(rest.len());
    if authority_len == 0 {
        return Err(fail("it has no host"));
    }
    let path_start = url.len() - rest.len() + authority_len;
    Ok((url.to_owned(), path_start))
}

impl fmt::Display for SignerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerError::SecretTooShort { bytes } => write!(
                f,
                "the upload secret is {bytes} bytes; it must be at least {MIN_SECRET_BYTES} \
                 random bytes (let the server create <data-dir>/upload/secret)"
            ),
            SignerError::PublicUrl { url, reason } => write!(
                f,
                "--http-public-url {url:?} is not usable: {reason} \
                 (example: https://upload.example.org:5443)"
            ),
        }
    }
}

impl std::error::Error for SignerError {}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Malformed => f.write_str("not an upload URL of this server"),
            PutError::BadSignature => {
                f.write_str("the upload URL's signature does not match (altered or foreign)")
            }
            PutError::Expired { expires_unix_s } => write!(
                f,
                "the upload slot expired at {expires_unix_s} (Unix time); request a new one"
            ),
        }
    }
}

impl std::error::Error for PutError {}

#[cfg(test)]
mod tests;
