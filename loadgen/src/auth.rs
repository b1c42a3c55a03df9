//! Simulated accounts: user names and passwords, handed to `rookery_client` at login.
//!
//! Client number `n` (numbered from 1) logs in as `<user-prefix><n>@<domain>`. Two password
//! schemes, chosen with `--auth`:
//! - `token:SECRET`: password = lowercase hex HMAC-SHA256(SECRET, localpart), the scheme of
//!   rookery's `token` backend (stateless, so no registration step is needed);
//! - `plain:PREFIX`: password = PREFIX + n, for users pre-registered on ejabberd or Prosody.
//!
//! Nothing here is stored per client: credentials are derived from the client number when
//! the SASL step needs them (once per login), which keeps an idle client small.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub use rookery_client::token_password;

use crate::client::BIND_RESOURCE;

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
}

impl rookery_client::Account for Account<'_> {
    fn domain(&self) -> &str {
        self.domain
    }

    fn username(&self) -> Cow<'_, str> {
        Cow::Owned(self.localpart())
    }

    fn password(&self) -> Cow<'_, str> {
        Cow::Owned(self.auth.password(&self.localpart(), self.number))
    }

    fn resource(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(BIND_RESOURCE))
    }

    /// Only asked for SCRAM, which the load generator does not choose (PLAIN only); an OS
    /// nonce when asked, the client number's if the OS generator fails.
    fn nonce(&mut self) -> Vec<u8> {
        rookery_sasl::fresh_nonce().unwrap_or_else(|_| {
            let mut random = [0u8; 18];
            random[..8].copy_from_slice(&self.number.to_le_bytes());
            rookery_sasl::nonce_from_random(&random)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn account_gives_the_client_its_credentials() {
        use rookery_client::Account as _;
        let auth = AuthSpec::Plain {
            prefix: "pw".into(),
        };
        let account = Account {
            domain: "example.test",
            user_prefix: "User",
            number: 42,
            auth: &auth,
        };
        assert_eq!(account.username(), "user42");
        assert_eq!(account.password(), "pw42");
        assert_eq!(account.resource().as_deref(), Some("load"));
        let token = AuthSpec::Token { secret: "s".into() };
        let account = Account {
            auth: &token,
            ..account
        };
        assert_eq!(account.password(), token_password(b"s", "user42"));
    }
}
