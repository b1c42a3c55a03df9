//! The account backends, behind one trait: what a SASL exchange checks a login against.
//!
//! The stream layer (`stream::sasl`) drives rookery-sasl's server exchange for the mechanism
//! the client chose and asks the backend, through [`Accounts`], which mechanisms it can serve
//! and whether a password is right. Two backends today, both stateless: `token` (the password
//! of user `u` is the hex HMAC-SHA256(secret, "u"), computed on demand: the load-test
//! backend) and `open` (any password; loopback unless the server allows it). Neither keeps
//! SCRAM credentials, so both offer PLAIN only.
//!
//! What it does not do: parse SASL messages (rookery-sasl), count failures or close streams
//! (the stream layer), or store accounts. A backend with stored credentials (salt, iteration
//! count, StoredKey, ServerKey in the user's home-shard store, the TLS and accounts issue)
//! adds a lookup to this trait for SCRAM; a lookup on another shard answers later, by mail.
//!
//! Invariants: passwords are compared in constant time for equal lengths (a token is always
//! 64 hex characters, so its length is no secret); `user` is a bare JID whose local part was
//! SASLprep'd by rookery-sasl and case-folded by `Jid::new`.

use std::fmt::Debug;

use rookery_proto::Jid;
use rookery_sasl::{token_password, Mechanism};

use crate::config::AuthBackend;

/// An account backend.
pub(crate) trait Accounts: Debug + Send {
    /// The SASL mechanisms it can check, strongest first (the pre-auth features list them).
    fn mechanisms(&self) -> &'static [Mechanism];
    /// Whether `password` is `user`'s (PLAIN).
    fn check_password(&self, user: &Jid, password: &str) -> bool;
}

/// The backend `--auth` chose.
pub(crate) fn for_backend(backend: &AuthBackend) -> Box<dyn Accounts> {
    match backend {
        AuthBackend::Token { secret } => Box::new(TokenAccounts {
            secret: secret.clone(),
        }),
        AuthBackend::Open => Box::new(OpenAccounts),
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
    fn mechanisms(&self) -> &'static [Mechanism] {
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
    fn mechanisms(&self) -> &'static [Mechanism] {
        PLAIN_ONLY
    }

    fn check_password(&self, _user: &Jid, _password: &str) -> bool {
        true
    }
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
        assert_eq!(token.mechanisms(), &[Mechanism::Plain]);
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn open_backend_accepts_any_password() {
        let open = for_backend(&AuthBackend::Open);
        assert!(open.check_password(&jid("bob"), "x"));
        assert_eq!(open.mechanisms(), &[Mechanism::Plain]);
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
