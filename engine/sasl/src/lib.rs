//! rookery-sasl: sans-IO SASL for Rookery's server and clients: PLAIN (RFC 4616),
//! SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), each SCRAM also as `-PLUS` bound to
//! the TLS channel with `tls-exporter` (RFC 9266), failures as RFC 6120 section 6.5
//! conditions.
//!
//! The server drives a [`ServerExchange`] with the peer's decoded payloads and its own
//! credential lookup and gets [`Step`]s back; a client drives a [`ClientExchange`]. Servers
//! store [`Credentials`] (salt, iteration count, StoredKey, ServerKey per hash; never the
//! password) in the user's shard log with [`Credentials::encode`]; PLAIN logins are checked
//! against them with [`verify_plain`].
//!
//! Modules: `mechanism` (names), `failure` (RFC 6120 conditions), `channel` (gs2 flag and
//! channel binding rules), `message` (SCRAM syntax), `prep` (SASLprep, saslname, nonces),
//! `crypto` (key schedule over RustCrypto), `credentials` (stored form and its bytes),
//! `server` (the server state machine: `plain`, `scram`), `client`, `error`, `token` (Rookery's
//! `token` password scheme, shared by the server and its clients).
//!
//! What it does not do: I/O, XML, the base64 of XMPP's `<auth>`/`<response>` text, clocks,
//! or randomness of its own. Nonces come from the caller (deterministic in tests and in the
//! simulator, [`nonce_from_random`] turns any random bytes into one); [`fresh_nonce`] and
//! [`fresh_salt`] draw from the OS behind the default `os-rng` feature. It enforces no
//! iteration *floor* (that is deployment policy: store credentials with at least
//! [`DEFAULT_ITERATIONS`], the RFC 7677 minimum, and check `params().iterations()` where the policy
//! lives), only the [`MAX_ITERATIONS`] ceiling. Cryptographic primitives are RustCrypto's
//! (`sha1`, `sha2`, `hmac`, `pbkdf2`, `subtle`), SASLprep is the `stringprep` crate's.
//!
//! Invariants: no peer input makes it panic (property-tested at every step); secrets are
//! compared in constant time; user existence does not show in a server's replies.

#![forbid(unsafe_code)]

mod channel;
mod client;
mod credentials;
mod crypto;
mod error;
mod failure;
mod mechanism;
mod message;
mod prep;
mod server;
mod token;

pub use channel::{ChannelBinding, ChannelBindingOffer, TLS_EXPORTER_BYTES};
pub use client::ClientExchange;
pub use credentials::{verify_plain, Credentials, ScramCredentials};
pub use crypto::{salted_password, SaltedPassword, ScramHash, ScramParams};
#[cfg(feature = "os-rng")]
pub use error::RandomError;
pub use error::{ClientError, CredentialsError, DecodeError};
pub use failure::Failure;
pub use mechanism::Mechanism;
pub use prep::nonce_from_random;
pub use server::{ServerExchange, Step};
pub use token::token_password;

/// Largest SASL message (decoded) either side accepts; real ones are under 300 bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Shortest nonce this crate sends: 16 printable characters (96 bits as base64).
pub const MIN_NONCE_BYTES: usize = 16;

/// Iteration count of the decoys for unknown users and the RFC 7677 minimum for storing.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Highest iteration count accepted anywhere: bounds what a hostile server (or a corrupt
/// record) can make us compute; about 3 s of SHA-256 PBKDF2.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Longest salt accepted (stored salts are 16 bytes; the length is one byte on disk).
pub const MAX_SALT_BYTES: usize = 64;

/// Random bytes drawn by [`fresh_nonce`] (24 characters once encoded).
#[cfg(feature = "os-rng")]
const NONCE_RANDOM_BYTES: usize = 18;

/// A fresh nonce from the OS generator: 18 random bytes as 24 base64 characters.
#[cfg(feature = "os-rng")]
pub fn fresh_nonce() -> Result<Vec<u8>, RandomError> {
    let mut random = [0u8; NONCE_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(RandomError)?;
    Ok(nonce_from_random(&random))
}

/// A fresh 16-byte salt from the OS generator, for [`Credentials::derive`].
#[cfg(feature = "os-rng")]
pub fn fresh_salt() -> Result<[u8; 16], RandomError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(RandomError)?;
    Ok(salt)
}

#[cfg(all(test, feature = "os-rng"))]
mod tests {
    use super::*;

    #[test]
    fn fresh_values_are_valid_and_differ() {
        let a = fresh_nonce().unwrap();
        let b = fresh_nonce().unwrap();
        assert_eq!(a.len(), 24);
        assert!(prep::is_printable_nonce(&a));
        assert_ne!(a, b);
        assert_ne!(fresh_salt().unwrap(), fresh_salt().unwrap());
    }
}
