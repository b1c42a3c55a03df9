//! SASL PLAIN (RFC 4616) decoding and the account check for the `token` and `open` backends.
//!
//! What it does not do: keep any state between steps (the conn keeps the phase and the failure
//! count), build the `<success/>`/`<failure/>` bytes (see `replies`), or SCRAM (a later issue).
//!
//! Invariants: passwords are compared in constant time for equal lengths (a token is always
//! 64 hex characters, so its length is no secret); the returned JID is bare, with the local
//! part case-folded by `Jid::new`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_proto::Jid;

use crate::config::AuthBackend;

/// Why a SASL exchange failed; each maps to one RFC 6120 6.5 condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslFailure {
    Aborted,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    NotAuthorized,
}

impl SaslFailure {
    /// The element name inside `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`.
    pub fn condition(self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::NotAuthorized => "not-authorized",
        }
    }
}

/// The three fields of a PLAIN message: `authzid NUL authcid NUL passwd`.
#[derive(Debug, PartialEq, Eq)]
struct PlainMessage<'a> {
    authzid: &'a str,
    authcid: &'a str,
    password: &'a str,
}

/// The password of a local part under the `token` backend (one function for the server and
/// its clients, in rookery-sasl).
pub use rookery_sasl::token_password;

/// Constant-time equality for equal lengths: the time does not depend on where bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks one PLAIN response (the base64 text of `<auth>` or `<response>`; `=` means empty).
/// Returns the authenticated bare JID.
pub fn check_plain(backend: &AuthBackend, domain: &str, text: &str) -> Result<Jid, SaslFailure> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let raw = if text == "=" {
        Vec::new()
    } else {
        STANDARD
            .decode(text)
            .map_err(|_| SaslFailure::IncorrectEncoding)?
    };
    let message = split_plain(&raw)?;
    let jid =
        Jid::new(Some(message.authcid), domain, None).map_err(|_| SaslFailure::NotAuthorized)?;
    if !message.authzid.is_empty() && !authzid_matches(message.authzid, &jid) {
        return Err(SaslFailure::InvalidAuthzid);
    }
    if !password_ok(backend, &jid, message.password) {
        return Err(SaslFailure::NotAuthorized);
    }
    Ok(jid)
}

fn split_plain(raw: &[u8]) -> Result<PlainMessage<'_>, SaslFailure> {
    let text = std::str::from_utf8(raw).map_err(|_| SaslFailure::MalformedRequest)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::MalformedRequest);
    };
    // RFC 4616: authcid and passwd are 1*SAFE.
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok(PlainMessage {
        authzid,
        authcid,
        password,
    })
}

fn authzid_matches(authzid: &str, jid: &Jid) -> bool {
    Jid::parse(authzid).is_ok_and(|requested| requested == *jid)
}

fn password_ok(backend: &AuthBackend, jid: &Jid, password: &str) -> bool {
    match backend {
        AuthBackend::Open => true,
        AuthBackend::Token { secret } => {
            let local = jid.local().unwrap_or_default();
            let expected = token_password(secret, local);
            constant_time_eq(expected.as_bytes(), password.as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(raw: &str) -> String {
        STANDARD.encode(raw)
    }

    fn token() -> AuthBackend {
        AuthBackend::Token {
            secret: b"s3cret".to_vec(),
        }
    }

    #[test]
    fn token_backend_accepts_the_right_password_only() {
        let pw = token_password(b"s3cret", "alice");
        let jid = check_plain(&token(), "example.com", &b64(&format!("\0alice\0{pw}")));
        assert_eq!(
            jid.map(|j| j.to_string()),
            Ok("alice@example.com".to_owned())
        );
        let bad = check_plain(&token(), "example.com", &b64("\0alice\0nope"));
        assert_eq!(bad, Err(SaslFailure::NotAuthorized));
    }

    #[test]
    fn local_part_is_case_folded_before_the_token_check() {
        let pw = token_password(b"s3cret", "alice");
        let jid = check_plain(&token(), "example.com", &b64(&format!("\0Alice\0{pw}")));
        assert_eq!(
            jid.map(|j| j.to_string()),
            Ok("alice@example.com".to_owned())
        );
    }

    #[test]
    fn open_backend_accepts_any_password() {
        let jid = check_plain(&AuthBackend::Open, "example.com", &b64("\0bob\0x"));
        assert_eq!(jid.map(|j| j.to_string()), Ok("bob@example.com".to_owned()));
    }

    #[test]
    fn authzid_must_name_the_same_account() {
        let open = AuthBackend::Open;
        assert!(check_plain(&open, "example.com", &b64("bob@example.com\0bob\0x")).is_ok());
        assert_eq!(
            check_plain(&open, "example.com", &b64("eve@example.com\0bob\0x")),
            Err(SaslFailure::InvalidAuthzid)
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let open = AuthBackend::Open;
        assert_eq!(
            check_plain(&open, "e.com", "!!!"),
            Err(SaslFailure::IncorrectEncoding)
        );
        assert_eq!(
            check_plain(&open, "e.com", "="),
            Err(SaslFailure::MalformedRequest)
        );
        assert_eq!(
            check_plain(&open, "e.com", &b64("bob\0x")),
            Err(SaslFailure::MalformedRequest)
        );
        assert_eq!(
            check_plain(&open, "e.com", &b64("\0\0x")),
            Err(SaslFailure::MalformedRequest)
        );
        assert_eq!(
            check_plain(&open, "e.com", &b64("\0bob\0")),
            Err(SaslFailure::MalformedRequest)
        );
        assert_eq!(
            check_plain(&open, "e.com", &b64("\0a\0b\0c")),
            Err(SaslFailure::MalformedRequest)
        );
        assert_eq!(
            check_plain(&open, "e.com", &b64("\0b@d\0x")),
            Err(SaslFailure::NotAuthorized)
        );
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
