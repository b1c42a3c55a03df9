//! Simulated accounts: user names, passwords and the SASL PLAIN initial response.
//!
//! Client number `n` (numbered from 1) logs in as `<user-prefix><n>@<domain>`. Two password
//! schemes, chosen with `--auth`:
//! - `token:SECRET`: password = lowercase hex HMAC-SHA256(SECRET, localpart), the scheme of
//!   rookery's `token` backend (stateless, so no registration step is needed);
//! - `plain:PREFIX`: password = PREFIX + n, for users pre-registered on ejabberd or Prosody.
//!
//! Nothing here is stored per client: credentials are derived from the client number when
//! the SASL step needs them (once per login), which keeps an idle client small.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How passwords are derived (`--auth`).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthSpec {
    Token { secret: String },
    Plain { prefix: String },
}

/// Why an `--auth` value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthSpecError {
    UnknownScheme,
    EmptySecret,
}

impl fmt::Display for AuthSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthSpecError::UnknownScheme => {
                f.write_str("expected token:SECRET (rookery's token backend) or plain:PREFIX")
            }
            AuthSpecError::EmptySecret => f.write_str("token:SECRET needs a non-empty secret"),
        }
    }
}

impl std::error::Error for AuthSpecError {}

impl FromStr for AuthSpec {
    type Err = AuthSpecError;

    fn from_str(s: &str) -> Result<AuthSpec, AuthSpecError> {
        if let Some(secret) = s.strip_prefix("token:") {
            if secret.is_empty() {
                return Err(AuthSpecError::EmptySecret);
            }
            return Ok(AuthSpec::Token {
                secret: secret.to_string(),
            });
        }
        if let Some(prefix) = s.strip_prefix("plain:") {
            return Ok(AuthSpec::Plain {
                prefix: prefix.to_string(),
            });
        }
        Err(AuthSpecError::UnknownScheme)
    }
}

/// Debug never prints the secret (the config is logged and written to summary.json).
impl fmt::Debug for AuthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

impl AuthSpec {
    /// The scheme without its secret, for logs and summary.json.
    pub fn redacted(&self) -> &'static str {
        match self {
            AuthSpec::Token { .. } => "token:<redacted>",
            AuthSpec::Plain { .. } => "plain:<redacted>",
        }
    }

    /// The `--auth` text this was parsed from, secret included: only for handing the spec to
    /// a worker process over its stdin (never argv, never a log).
    pub fn to_spec(&self) -> String {
        match self {
            AuthSpec::Token { secret } => format!("token:{secret}"),
            AuthSpec::Plain { prefix } => format!("plain:{prefix}"),
        }
    }

    /// The password of client `number` whose localpart is `localpart`.
    pub fn password(&self, localpart: &str, number: u64) -> String {
        match self {
            AuthSpec::Token { secret } => token_password(secret.as_bytes(), localpart),
            AuthSpec::Plain { prefix } => format!("{prefix}{number}"),
        }
    }
}

/// Lowercase hex HMAC-SHA256(secret, localpart): rookery's token scheme.
pub fn token_password(secret: &[u8], localpart: &str) -> String {
    // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(localpart.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// One simulated account, borrowed from the run's config: built on the stack when needed.
#[derive(Clone, Copy, Debug)]
pub struct Account<'a> {
    pub domain: &'a str,
    pub user_prefix: &'a str,
    /// Client number, from 1.
    pub number: u64,
    pub auth: &'a AuthSpec,
}

impl Account<'_> {
    /// `<user-prefix><number>`, lower-cased as servers fold local parts (RFC 7622).
    pub fn localpart(&self) -> String {
        format!("{}{}", self.user_prefix, self.number).to_lowercase()
    }

    /// Appends base64("" NUL localpart NUL password): the SASL PLAIN initial response
    /// (RFC 4616) with an empty authorization identity.
    pub fn write_sasl_plain(&self, out: &mut Vec<u8>) {
        let localpart = self.localpart();
        let password = self.auth.password(&localpart, self.number);
        let mut raw = Vec::with_capacity(localpart.len() + password.len() + 2);
        raw.push(0);
        raw.extend_from_slice(localpart.as_bytes());
        raw.push(0);
        raw.extend_from_slice(password.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        out.extend_from_slice(encoded.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        assert_eq!(
            token_password(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn parses_schemes_and_hides_secrets() {
        let token: AuthSpec = "token:s3cret".parse().unwrap();
        assert_eq!(
            token,
            AuthSpec::Token {
                secret: "s3cret".into()
            }
        );
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(token.to_spec().parse::<AuthSpec>(), Ok(token.clone()));
        let plain: AuthSpec = "plain:pw".parse().unwrap();
        assert_eq!(plain.to_spec(), "plain:pw");
        assert_eq!(plain.password("user7", 7), "pw7");
        assert_eq!(
            "token:".parse::<AuthSpec>(),
            Err(AuthSpecError::EmptySecret)
        );
        assert_eq!(
            "scram:x".parse::<AuthSpec>(),
            Err(AuthSpecError::UnknownScheme)
        );
    }

    #[test]
    fn sasl_plain_response_decodes_to_user_and_password() {
        let auth = AuthSpec::Plain {
            prefix: "pw".into(),
        };
        let account = Account {
            domain: "example.test",
            user_prefix: "User",
            number: 42,
            auth: &auth,
        };
        let mut out = Vec::new();
        account.write_sasl_plain(&mut out);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&out)
            .unwrap();
        assert_eq!(raw, b"\0user42\0pw42");
    }
}
