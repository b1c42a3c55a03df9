//! Errors of a TLS session, tagged by which side caused them.
//!
//! What it does: wraps rustls' error with the one decision a stream layer needs: whose fault
//! (a peer that broke the protocol or refused us, versus our own side), for metrics labels and
//! logs. Every error ends the session: the stream layer sends what the failing call appended
//! to `to_peer` (usually a fatal alert), then closes the conn.
//!
//! What it does not do: XMPP stream errors; after a TLS failure nothing more can be said to
//! the peer inside the stream.

use std::fmt;

use rustls::{AlertDescription, Error as RustlsError};

/// Which side caused a [`TlsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCause {
    /// The peer: malformed records, failed handshake, a fatal alert, bad MAC.
    Peer,
    /// Our side: the crypto provider, the configuration, or a misuse of the session API.
    Local,
}

/// Why a [`crate::TlsSession`] call failed. The session is unusable afterwards.
#[derive(Debug, Clone)]
pub enum TlsError {
    /// The peer broke TLS, refused the handshake or sent a fatal alert.
    Peer(RustlsError),
    /// rustls failed on our side (crypto provider, random numbers, key exhaustion).
    Local(RustlsError),
    /// [`crate::TlsSession::write`] before the handshake completed: application data cannot
    /// be protected yet. A stream layer must not send before `handshake_completed`.
    HandshakeNotDone,
    /// The session failed earlier, or was closed with [`crate::TlsSession::close`] and then
    /// written to.
    Unusable,
}

impl TlsError {
    pub(crate) fn from_rustls(e: RustlsError) -> TlsError {
        match e {
            RustlsError::InappropriateMessage { .. }
            | RustlsError::InappropriateHandshakeMessage { .. }
            | RustlsError::InvalidEncryptedClientHello(_)
            | RustlsError::InvalidMessage(_)
            | RustlsError::NoCertificatesPresented
            | RustlsError::UnsupportedNameType
            | RustlsError::DecryptError
            | RustlsError::PeerIncompatible(_)
            | RustlsError::PeerMisbehaved(_)
            | RustlsError::AlertReceived(_)
            | RustlsError::InvalidCertificate(_)
            | RustlsError::PeerSentOversizedRecord
            | RustlsError::NoApplicationProtocol => TlsError::Peer(e),
            e => TlsError::Local(e),
        }
    }

    pub fn cause(&self) -> ErrorCause {
        match self {
            TlsError::Peer(_) => ErrorCause::Peer,
            TlsError::Local(_) | TlsError::HandshakeNotDone | TlsError::Unusable => {
                ErrorCause::Local
            }
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Peer(RustlsError::AlertReceived(
                alert @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired),
            )) => write!(
                f,
                "TLS: the client refused our certificate (alert {alert:?}); check that the \
                 chain file is complete, current and issued for the XMPP domain"
            ),
            TlsError::Peer(RustlsError::NoApplicationProtocol) => f.write_str(
                "TLS: the client offered ALPN protocols but not xmpp-client; it is not an \
                 XMPP client (or is misconfigured)",
            ),
            TlsError::Peer(e) => write!(f, "TLS: the peer broke the protocol: {e}"),
            TlsError::Local(e) => write!(f, "TLS: failure on our side: {e}"),
            TlsError::HandshakeNotDone => f.write_str(
                "TLS: write before the handshake completed (stream layer bug: wait for \
                 ReadOutcome::handshake_completed)",
            ),
            TlsError::Unusable => f.write_str(
                "TLS: session used after it failed or was closed (stream layer bug: close the \
                 conn after an error or close())",
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Peer(e) | TlsError::Local(e) => Some(e),
            TlsError::HandshakeNotDone | TlsError::Unusable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_tagged() {
        assert_eq!(
            TlsError::from_rustls(RustlsError::DecryptError).cause(),
            ErrorCause::Peer
        );
        let alert = TlsError::from_rustls(RustlsError::AlertReceived(AlertDescription::UnknownCA));
        assert_eq!(alert.cause(), ErrorCause::Peer);
        assert!(alert.to_string().contains("refused our certificate"));
        let ours = TlsError::from_rustls(RustlsError::FailedToGetRandomBytes);
        assert_eq!(ours.cause(), ErrorCause::Local);
        assert_eq!(TlsError::HandshakeNotDone.cause(), ErrorCause::Local);
    }
}
