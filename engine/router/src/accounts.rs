//! The account backends, behind one trait: what a SASL exchange checks a login against.
//!
//! The stream layer (`stream::sasl`) drives rookery-sasl's server exchange for the mechanism
//! the client chose and asks the backend, through [`Accounts`], which mechanisms it can serve
//! and how a user's proof is checked ([`Check`]). Three backends: `token` (the password of
//! user `u` is the hex HMAC-SHA256(secret, "u"), computed on demand: the load-test backend)
//! and `open` (any password; loopback unless the server allows it) check PLAIN passwords
//! themselves; `file` keeps SCRAM credentials (salt, iteration count, StoredKey, ServerKey per
//! hash, never the password) in each user's home-shard store, table `ACCOUNTS`, and offers
//! SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN (checked against the stored keys). The stream layer
//! reads them on the user's home shard: a login that starts elsewhere is handed there first.
//! The functions at the bottom (`set_credentials`, `credentials`, ...) are the one place that
//! knows the table's layout; `rookery accounts` uses them on a stopped server's stores.
//!
//! What it does not do: parse SASL messages (rookery-sasl), count failures or close streams
//! (the stream layer), or derive credentials from passwords (the caller, with
//! `Credentials::derive`).
//!
//! Invariants: passwords are compared in constant time for equal lengths (a token is always
//! 64 hex characters, so its length is no secret); `user` is a bare JID whose local part was
//! SASLprep'd by rookery-sasl and case-folded by `Jid::new`.

use std::fmt::Debug;

use rookery_proto::Jid;
use rookery_sasl::{token_password, Credentials, Mechanism};
use rookery_store::{Store, StoreError};

use crate::config::AuthBackend;
use crate::tables::ACCOUNTS;

/// How a backend checks a user's proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// It checks a PLAIN password itself (`check_password`).
    Password,
    /// Against the credentials stored in the user's home-shard store (`credentials`).
    Stored,
}

/// An account backend.
pub(crate) trait Accounts: Debug + Send {
    /// The SASL mechanisms it can check, strongest first (the pre-auth features list them).
    /// `exposed`: the conn comes from a non-loopback address without TLS, where a password
    /// sent in the clear could be read on the way. `binding`: the conn is under TLS with a
    /// tls-exporter value, so SCRAM's `-PLUS` variants can bind to it (RFC 9266).
    fn mechanisms(&self, exposed: bool, binding: bool) -> &'static [Mechanism];
    /// How a proof is checked.
    fn check(&self) -> Check {
        Check::Password
    }
    /// Whether `password` is `user`'s (PLAIN; backends of `Check::Password`).
    fn check_password(&self, user: &Jid, password: &str) -> bool;
}

/// The backend `--auth` chose.
pub(crate) fn for_backend(backend: &AuthBackend) -> Box<dyn Accounts> {
    match backend {
        AuthBackend::Token { secret } => Box::new(TokenAccounts {
            secret: secret.clone(),
        }),
        AuthBackend::Open => Box::new(OpenAccounts),
        AuthBackend::File => Box::new(FileAccounts),
    }
}

const PLAIN_ONLY: &[Mechanism] = &[Mechanism::Plain];

/// `--auth token`: every local part has one password, derived from the server's secret.
struct TokenAccounts {
    secret: Vec<u8>,
}

// The secret stays out of logs.
impl Debug for TokenAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAccounts").finish_non_exhaustive()
    }
}

impl Accounts for TokenAccounts {
    /// PLAIN everywhere: the load-test backend's passwords are derived tokens, and it has no
    /// other mechanism.
    fn mechanisms(&self, _exposed: bool, _binding: bool) -> &'static [Mechanism] {
        PLAIN_ONLY
    }

    fn check_password(&self, user: &Jid, password: &str) -> bool {
        let expected = token_password(&self.secret, user.local().unwrap_or_default());
        constant_time_eq(expected.as_bytes(), password.as_bytes())
    }
}

/// `--auth open`: anyone, with any password.
#[derive(Debug)]
struct OpenAccounts;

impl Accounts for OpenAccounts {
    fn mechanisms(&self, _exposed: bool, _binding: bool) -> &'static [Mechanism] {
        PLAIN_ONLY
    }

    fn check_password(&self, _user: &Jid, _password: &str) -> bool {
        true
    }
}

/// `--auth file`: stored credentials only.
#[derive(Debug)]
struct FileAccounts;

impl Accounts for FileAccounts {
    /// SCRAM (with `-PLUS` under TLS), and PLAIN only where the password cannot be read on
    /// the way (under TLS, or on loopback).
    fn mechanisms(&self, exposed: bool, binding: bool) -> &'static [Mechanism] {
        match (exposed, binding) {
            (true, _) => &[Mechanism::ScramSha256, Mechanism::ScramSha1],
            (false, true) => &[
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha1Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
            ],
            (false, false) => &[
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
            ],
        }
    }

    fn check(&self) -> Check {
        Check::Stored
    }

    /// Never asked (`Check::Stored`); refuses, so a wiring mistake cannot let anyone in.
    fn check_password(&self, _user: &Jid, _password: &str) -> bool {
        false
    }
}

/// The stored credentials of `user` (a bare JID) in its home shard's `store`. A record that
/// does not decode counts as no account (and is left for an operator to replace).
pub fn credentials(store: &Store, user: &Jid) -> Option<Credentials> {
    let bytes = store.kv_get(ACCOUNTS, user.bare_str())?;
    Credentials::decode(bytes).ok()
}

/// Stores `user`'s credentials (creating or replacing the account); durable at the store's
/// next commit.
pub fn set_credentials(
    store: &mut Store,
    user: &Jid,
    credentials: &Credentials,
) -> Result<(), StoreError> {
    store.kv_set(ACCOUNTS, user.bare_str(), &credentials.encode())
}

/// Deletes `user`'s account; whether there was one.
pub fn delete_credentials(store: &mut Store, user: &Jid) -> bool {
    store.kv_delete(ACCOUNTS, user.bare_str())
}

/// The bare JIDs with an account in `store`, in order.
pub fn account_names(store: &Store) -> impl Iterator<Item = &str> {
    store.kv_scan(ACCOUNTS, "").map(|(key, _)| key)
}

/// Constant-time equality for equal lengths: the time does not depend on where bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(local: &str) -> Jid {
        Jid::new(Some(local), "example.com", None).unwrap()
    }

    #[test]
    fn token_backend_accepts_the_right_password_only() {
        let token = for_backend(&AuthBackend::Token {
            secret: b"s3cret".to_vec(),
        });
        let pw = token_password(b"s3cret", "alice");
        assert!(token.check_password(&jid("alice"), &pw));
        assert!(
            token.check_password(&jid("Alice"), &pw),
            "local part case-folded"
        );
        assert!(!token.check_password(&jid("alice"), "nope"));
        assert!(!token.check_password(&jid("bob"), &pw));
        assert_eq!(token.mechanisms(true, false), &[Mechanism::Plain]);
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn open_backend_accepts_any_password() {
        let open = for_backend(&AuthBackend::Open);
        assert!(open.check_password(&jid("bob"), "x"));
        assert_eq!(open.mechanisms(false, true), &[Mechanism::Plain]);
        let file = for_backend(&AuthBackend::File);
        assert!(file.mechanisms(false, false).contains(&Mechanism::Plain));
        assert!(
            !file.mechanisms(true, false).contains(&Mechanism::Plain),
            "no PLAIN in the clear"
        );
        assert_eq!(
            file.mechanisms(false, true)[..2],
            [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus],
            "-PLUS first when the channel can be bound"
        );
        assert!(!file
            .mechanisms(false, false)
            .contains(&Mechanism::ScramSha256Plus));
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
