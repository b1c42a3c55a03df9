//! Error types for the caller-facing operations that can fail on the caller's side: deriving
//! and decoding credentials, the client exchange, and drawing random bytes.
//!
//! What it does not do: describe server-side failures of an exchange; those are
//! [`Failure`](crate::Failure) conditions sent to the peer.

use std::fmt;

/// Deriving or importing credentials failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// SASLprep (RFC 4013) refused the password (control, private-use or unassigned
    /// characters, or mixed-direction text).
    InvalidPassword,
    /// The password is empty after SASLprep.
    EmptyPassword,
    /// The iteration count is 0 or above [`MAX_ITERATIONS`](crate::MAX_ITERATIONS).
    IterationsOutOfRange { iterations: u32 },
    /// The salt is empty or longer than [`MAX_SALT_BYTES`](crate::MAX_SALT_BYTES).
    SaltLength { len: usize },
    /// A key does not have the hash's output length.
    KeyLength { expected: usize, found: usize },
    /// A `ScramCredentials` of one hash was given where the other was expected.
    WrongHash,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsError::InvalidPassword => f.write_str(
                "password refused by SASLprep (RFC 4013): it has control, private-use, \
                 unassigned or mixed-direction characters; choose another password",
            ),
            CredentialsError::EmptyPassword => {
                f.write_str("password is empty after SASLprep; choose a non-empty password")
            }
            CredentialsError::IterationsOutOfRange { iterations } => write!(
                f,
                "iteration count {iterations} is out of range 1..={}; use 4096 or more",
                crate::MAX_ITERATIONS
            ),
            CredentialsError::SaltLength { len } => write!(
                f,
                "salt of {len} bytes is out of range 1..={}; use 16 random bytes",
                crate::MAX_SALT_BYTES
            ),
            CredentialsError::KeyLength { expected, found } => write!(
                f,
                "key of {found} bytes where the hash gives {expected}; the stored credentials \
                 were made for another hash or are truncated"
            ),
            CredentialsError::WrongHash => f.write_str(
                "credentials of one SCRAM hash were given for the other; pass SHA-1 \
                 credentials as sha1 and SHA-256 ones as sha256",
            ),
        }
    }
}

impl std::error::Error for CredentialsError {}

/// Stored credentials bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The format version byte is not one this build reads.
    UnknownVersion { version: u8 },
    /// The bytes end before the record does.
    Truncated,
    /// Bytes follow the end of the record.
    TrailingBytes { extra: usize },
    /// A field decoded but is out of range.
    Invalid(CredentialsError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownVersion { version } => write!(
                f,
                "stored credentials have format version {version}, this build reads version \
                 {}; the log was written by another version of rookery",
                crate::credentials::FORMAT_VERSION
            ),
            DecodeError::Truncated => f.write_str(
                "stored credentials are truncated; the record is corrupt, reset the password",
            ),
            DecodeError::TrailingBytes { extra } => write!(
                f,
                "stored credentials have {extra} unexpected trailing bytes; the record is \
                 corrupt, reset the password"
            ),
            DecodeError::Invalid(cause) => write!(f, "stored credentials are invalid: {cause}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The client side of an exchange failed; the caller should give up this login (and send
/// `<abort/>` if the server is still waiting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// SASLprep refused the username or it was empty.
    InvalidUsername,
    /// SASLprep refused the password or it was empty.
    InvalidPassword(CredentialsError),
    /// The client nonce is not printable ASCII without `,` or shorter than
    /// [`MIN_NONCE_BYTES`](crate::MIN_NONCE_BYTES).
    InvalidNonce,
    /// A `-PLUS` mechanism was chosen without a tls-exporter value.
    ChannelBindingMissing,
    /// A server message does not follow RFC 5802 syntax.
    MalformedServerMessage { detail: &'static str },
    /// The server nonce does not extend the client's nonce.
    ServerNonceMismatch,
    /// The server's iteration count or salt is out of this crate's range.
    ServerParameters(CredentialsError),
    /// The server ended the exchange with `e=`.
    ServerError { message: String },
    /// The server's signature is wrong: it does not know the credentials (or a
    /// man-in-the-middle answered). Treat the stream as untrusted.
    ServerSignatureMismatch,
    /// The call does not fit the exchange's state (for example `finish` before `step`).
    OutOfOrder { detail: &'static str },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUsername => f.write_str(
                "username refused by SASLprep (RFC 4013) or empty; check the configured user",
            ),
            ClientError::InvalidPassword(cause) => write!(f, "password unusable: {cause}"),
            ClientError::InvalidNonce => write!(
                f,
                "client nonce must be at least {} printable ASCII bytes without ','; build it \
                 with nonce_from_random or fresh_nonce",
                crate::MIN_NONCE_BYTES
            ),
            ClientError::ChannelBindingMissing => f.write_str(
                "a -PLUS mechanism needs the TLS exporter value; pass ChannelBinding::TlsExporter \
                 or choose a mechanism without -PLUS",
            ),
            ClientError::MalformedServerMessage { detail } => {
                write!(f, "server sent a malformed SCRAM message: {detail}")
            }
            ClientError::ServerNonceMismatch => f.write_str(
                "server nonce does not extend the client nonce; the server is broken or not the \
                 one we started with",
            ),
            ClientError::ServerParameters(cause) => {
                write!(f, "server's SCRAM parameters are unusable: {cause}")
            }
            ClientError::ServerError { message } => {
                write!(f, "server ended the SCRAM exchange with e={message}")
            }
            ClientError::ServerSignatureMismatch => f.write_str(
                "server signature is wrong: the server does not hold these credentials or the \
                 stream is intercepted; do not trust this stream",
            ),
            ClientError::OutOfOrder { detail } => write!(f, "SASL call out of order: {detail}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The operating system's random generator failed (only with the `os-rng` feature).
#[cfg(feature = "os-rng")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomError(pub getrandom::Error);

#[cfg(feature = "os-rng")]
impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the OS random generator failed ({}); check that getrandom(2) or /dev/urandom is \
             available (seccomp, chroot)",
            self.0
        )
    }
}

#[cfg(feature = "os-rng")]
impl std::error::Error for RandomError {}
