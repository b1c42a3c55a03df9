//! The outcome of a failed server-side exchange: one RFC 6120 section 6.5 condition.
//!
//! What it does not do: build the `<failure/>` element (the stream layer writes
//! `condition()` and `text()` into it) or say *why* in detail: that is
//! [`ServerExchange::failure_detail`](crate::ServerExchange::failure_detail), which is for
//! server logs only, because telling the peer more (for example "unknown user") would leak.

use std::fmt;

/// A SASL failure condition (RFC 6120 section 6.5).
///
/// The crate itself produces `IncorrectEncoding`, `InvalidAuthzid`, `InvalidMechanism`,
/// `MalformedRequest`, `NotAuthorized` and `TemporaryAuthFailure`; the others exist so the
/// stream layer has one type for every condition (`Aborted` for `<abort/>`,
/// `EncryptionRequired` for PLAIN without TLS, `AccountDisabled` after a lookup, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    Aborted,
    AccountDisabled,
    CredentialsExpired,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    TemporaryAuthFailure,
}

impl Failure {
    /// Every condition, in RFC 6120 order.
    pub const ALL: [Failure; 11] = [
        Failure::Aborted,
        Failure::AccountDisabled,
        Failure::CredentialsExpired,
        Failure::EncryptionRequired,
        Failure::IncorrectEncoding,
        Failure::InvalidAuthzid,
        Failure::InvalidMechanism,
        Failure::MalformedRequest,
        Failure::MechanismTooWeak,
        Failure::NotAuthorized,
        Failure::TemporaryAuthFailure,
    ];

    /// The element name inside `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>`.
    pub fn condition(self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::AccountDisabled => "account-disabled",
            Failure::CredentialsExpired => "credentials-expired",
            Failure::EncryptionRequired => "encryption-required",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::MechanismTooWeak => "mechanism-too-weak",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }

    /// A short human text for the optional `<text/>` child; safe to send to the peer.
    pub fn text(self) -> &'static str {
        match self {
            Failure::Aborted => "Authentication aborted by the client.",
            Failure::AccountDisabled => "This account is disabled.",
            Failure::CredentialsExpired => "The credentials have expired.",
            Failure::EncryptionRequired => "This mechanism needs an encrypted stream (TLS).",
            Failure::IncorrectEncoding => "The base64 data is not correctly encoded.",
            Failure::InvalidAuthzid => "Authorizing as another identity is not supported.",
            Failure::InvalidMechanism => "This mechanism is not offered here.",
            Failure::MalformedRequest => "The SASL message is malformed.",
            Failure::MechanismTooWeak => "This mechanism is too weak for this account.",
            Failure::NotAuthorized => "Wrong username or password.",
            Failure::TemporaryAuthFailure => {
                "Authentication failed on the server; try again later."
            }
        }
    }
}

/// A refusal inside the crate: the condition for the peer and the cause for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reject {
    pub failure: Failure,
    pub detail: &'static str,
}

pub(crate) fn reject(failure: Failure, detail: &'static str) -> Reject {
    Reject { failure, detail }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.condition())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_the_rfc_6120_names_and_distinct() {
        let names: Vec<&str> = Failure::ALL.iter().map(|f| f.condition()).collect();
        assert_eq!(
            names,
            [
                "aborted",
                "account-disabled",
                "credentials-expired",
                "encryption-required",
                "incorrect-encoding",
                "invalid-authzid",
                "invalid-mechanism",
                "malformed-request",
                "mechanism-too-weak",
                "not-authorized",
                "temporary-auth-failure",
            ]
        );
        for failure in Failure::ALL {
            assert!(!failure.text().is_empty());
            assert_eq!(failure.to_string(), failure.condition());
        }
    }
}
