//! Stored SCRAM credentials (RFC 5802 section 3: salt, iteration count, StoredKey,
//! ServerKey; never the password), their byte format for the user's shard log, and the
//! PLAIN check against them.
//!
//! What it does not do: choose salts or iteration counts (callers pass them in: 16 random
//! bytes and at least 4096 iterations, RFC 7677 section 4; this crate enforces no floor, so a
//! deployment that wants one checks `params().iterations()` when it stores or loads
//! credentials), or store anything.
//!
//! Invariants: every `ScramCredentials` has a salt of 1..=`MAX_SALT_BYTES` bytes, an
//! iteration count of 1..=`MAX_ITERATIONS`, and keys of the hash's output length; a
//! `Credentials` holds SHA-1 credentials in `sha1` and SHA-256 ones in `sha256`. Decoding
//! checks all of that, so an exchange never meets a malformed value.

use std::fmt;

use crate::crypto::{self, check_iterations, check_salt, ct_eq, hmac, salted_password};
use crate::crypto::{SaltedPassword, ScramHash, ScramParams};
use crate::error::{CredentialsError, DecodeError};

/// The first byte of [`Credentials::encode`]; bump it when the layout changes.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// What a server stores for one user and one SCRAM hash.
#[derive(Clone)]
pub struct ScramCredentials {
    params: ScramParams,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives the stored form of `password` (SASLprep'd first).
    pub fn derive(
        hash: ScramHash,
        password: &str,
        iterations: u32,
        salt: &[u8],
    ) -> Result<ScramCredentials, CredentialsError> {
        Ok(ScramCredentials::from_salted(&salted_password(
            hash, password, salt, iterations,
        )?))
    }

    /// The stored form of an already salted password.
    pub fn from_salted(salted: &SaltedPassword) -> ScramCredentials {
        let params = salted.params().clone();
        ScramCredentials {
            stored_key: crypto::hash(params.hash, &salted.client_key()),
            server_key: salted.server_key(),
            params,
        }
    }

    /// Imports credentials computed elsewhere (another server's SCRAM store), checking sizes.
    pub fn from_parts(
        hash: ScramHash,
        salt: Vec<u8>,
        iterations: u32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    ) -> Result<ScramCredentials, CredentialsError> {
        check_salt(&salt)?;
        check_iterations(iterations)?;
        for key in [&stored_key, &server_key] {
            if key.len() != hash.output_len() {
                return Err(CredentialsError::KeyLength {
                    expected: hash.output_len(),
                    found: key.len(),
                });
            }
        }
        Ok(ScramCredentials {
            params: ScramParams {
                hash,
                salt,
                iterations,
            },
            stored_key,
            server_key,
        })
    }

    /// The hash, salt and iteration count the keys were derived with.
    pub fn params(&self) -> &ScramParams {
        &self.params
    }

    /// `StoredKey = H(ClientKey)`.
    pub fn stored_key(&self) -> &[u8] {
        &self.stored_key
    }

    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub fn server_key(&self) -> &[u8] {
        &self.server_key
    }
}

/// Constant time over the keys, so a careless comparison of secrets cannot leak.
impl PartialEq for ScramCredentials {
    fn eq(&self, other: &ScramCredentials) -> bool {
        self.params == other.params
            && ct_eq(&self.stored_key, &other.stored_key)
            && ct_eq(&self.server_key, &other.server_key)
    }
}

impl Eq for ScramCredentials {}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A user's credentials for both SCRAM hashes; PLAIN is checked against the SHA-256 ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    sha1: ScramCredentials,
    sha256: ScramCredentials,
}

impl Credentials {
    /// Derives both hashes' credentials from `password` (two PBKDF2 runs of `iterations`).
    /// The salts should be distinct random values (16 bytes).
    pub fn derive(
        password: &str,
        iterations: u32,
        salt_sha1: &[u8],
        salt_sha256: &[u8],
    ) -> Result<Credentials, CredentialsError> {
        Ok(Credentials {
            sha1: ScramCredentials::derive(ScramHash::Sha1, password, iterations, salt_sha1)?,
            sha256: ScramCredentials::derive(ScramHash::Sha256, password, iterations, salt_sha256)?,
        })
    }

    /// Pairs two imported halves, checking that each is of its slot's hash.
    pub fn new(
        sha1: ScramCredentials,
        sha256: ScramCredentials,
    ) -> Result<Credentials, CredentialsError> {
        if sha1.params.hash != ScramHash::Sha1 || sha256.params.hash != ScramHash::Sha256 {
            return Err(CredentialsError::WrongHash);
        }
        Ok(Credentials { sha1, sha256 })
    }

    /// Credentials for a user that does not exist, which no password matches: salts and keys
    /// are HMAC-SHA-256 of a server `secret` and the name, so a prober sees the same salt on
    /// every attempt, as for a real user (pass `iterations` equal to real users'). Answer
    /// [`NeedCredentials`](crate::Step::NeedCredentials) with these to hide unknown users
    /// across attempts; `credentials(None)` hides them within one attempt only.
    pub fn decoy(
        secret: &[u8],
        authcid: &str,
        iterations: u32,
    ) -> Result<Credentials, CredentialsError> {
        Credentials::new(
            decoy_half(ScramHash::Sha1, secret, authcid, iterations)?,
            decoy_half(ScramHash::Sha256, secret, authcid, iterations)?,
        )
    }

    pub fn sha1(&self) -> &ScramCredentials {
        &self.sha1
    }

    pub fn sha256(&self) -> &ScramCredentials {
        &self.sha256
    }

    /// The half for `hash`.
    pub fn for_hash(&self, hash: ScramHash) -> &ScramCredentials {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }

    /// The compact versioned byte form stored in the user's shard log:
    /// `version(1) || half(SHA-1) || half(SHA-256)`, each half being
    /// `iterations(u32 BE) || salt_len(u8) || salt || StoredKey || ServerKey` (keys of the
    /// hash's output length): 1 + 2 * 5 + salts + 104 bytes, 147 with 16-byte salts.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 2 * 5 + self.sha1.params.salt.len() + self.sha256.params.salt.len() + 104,
        );
        out.push(FORMAT_VERSION);
        for half in [&self.sha1, &self.sha256] {
            out.extend_from_slice(&half.params.iterations.to_be_bytes());
            // Invariant: salts are at most MAX_SALT_BYTES (64), checked at construction.
            out.push(
                u8::try_from(half.params.salt.len()).expect("salt length checked at construction"),
            );
            out.extend_from_slice(&half.params.salt);
            out.extend_from_slice(&half.stored_key);
            out.extend_from_slice(&half.server_key);
        }
        out
    }

    /// Reads [`encode`](Credentials::encode)'s form back; any other bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Credentials, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.take(1)?[0];
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion { version });
        }
        let sha1 = read_half(&mut reader, ScramHash::Sha1)?;
        let sha256 = read_half(&mut reader, ScramHash::Sha256)?;
        if !reader.bytes.is_empty() {
            return Err(DecodeError::TrailingBytes {
                extra: reader.bytes.len(),
            });
        }
        Credentials::new(sha1, sha256).map_err(DecodeError::Invalid)
    }
}

fn decoy_half(
    hash: ScramHash,
    secret: &[u8],
    authcid: &str,
    iterations: u32,
) -> Result<ScramCredentials, CredentialsError> {
    let derive = |label: &str, len: usize| {
        let message = [label.as_bytes(), &[0], authcid.as_bytes()].concat();
        let mut out = hmac(ScramHash::Sha256, secret, &message);
        out.truncate(len);
        out
    };
    let tag = match hash {
        ScramHash::Sha1 => "sha1",
        ScramHash::Sha256 => "sha256",
    };
    ScramCredentials::from_parts(
        hash,
        derive(&format!("rookery-sasl decoy salt {tag}"), 16),
        iterations,
        derive(
            &format!("rookery-sasl decoy stored {tag}"),
            hash.output_len(),
        ),
        derive(
            &format!("rookery-sasl decoy server {tag}"),
            hash.output_len(),
        ),
    )
}

/// A cursor over stored bytes that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }
}

fn read_half(reader: &mut Reader<'_>, hash: ScramHash) -> Result<ScramCredentials, DecodeError> {
    let mut iterations = [0u8; 4];
    iterations.copy_from_slice(reader.take(4)?);
    let salt_len = usize::from(reader.take(1)?[0]);
    let salt = reader.take(salt_len)?.to_vec();
    let stored_key = reader.take(hash.output_len())?.to_vec();
    let server_key = reader.take(hash.output_len())?.to_vec();
    ScramCredentials::from_parts(
        hash,
        salt,
        u32::from_be_bytes(iterations),
        stored_key,
        server_key,
    )
    .map_err(DecodeError::Invalid)
}

/// Checks a PLAIN password against stored credentials: derives ClientKey with the stored
/// SHA-256 salt and iteration count and compares `H(ClientKey)` with StoredKey in constant
/// time. A password SASLprep refuses never matches.
pub fn verify_plain(credentials: &Credentials, password: &str) -> bool {
    let half = &credentials.sha256;
    let ScramParams {
        hash,
        ref salt,
        iterations,
    } = half.params;
    let Ok(salted) = salted_password(hash, password, salt, iterations) else {
        return false;
    };
    ct_eq(&crypto::hash(hash, &salted.client_key()), &half.stored_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials::derive("pencil", 2, b"salt-one", b"salt-two-longer").unwrap()
    }

    #[test]
    fn verify_plain_accepts_only_the_password() {
        let credentials = sample();
        assert!(verify_plain(&credentials, "pencil"));
        assert!(!verify_plain(&credentials, "pencil "));
        assert!(!verify_plain(&credentials, "Pencil"));
        assert!(!verify_plain(&credentials, "\u{7}"));
        // SASLprep: a soft hyphen maps to nothing, so this is the same password.
        assert!(verify_plain(&credentials, "pen\u{AD}cil"));
    }

    #[test]
    fn encode_has_the_documented_size_and_round_trips() {
        let credentials = Credentials::derive("pencil", 4, &[7; 16], &[9; 16]).unwrap();
        let bytes = credentials.encode();
        assert_eq!(bytes.len(), 147);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(&bytes[1..5], &4u32.to_be_bytes());
        assert_eq!(Credentials::decode(&bytes).unwrap(), credentials);
    }

    #[test]
    fn decoys_are_stable_per_name_and_match_no_password() {
        let a = Credentials::decoy(b"secret", "alice", 4096).unwrap();
        assert_eq!(a, Credentials::decoy(b"secret", "alice", 4096).unwrap());
        assert_ne!(
            a.sha1().params().salt(),
            Credentials::decoy(b"secret", "bob", 4096)
                .unwrap()
                .sha1()
                .params()
                .salt()
        );
        assert_ne!(
            a.sha1().params().salt(),
            Credentials::decoy(b"other", "alice", 4096)
                .unwrap()
                .sha1()
                .params()
                .salt()
        );
        let cheap = Credentials::decoy(b"secret", "alice", 1).unwrap();
        assert!(!verify_plain(&cheap, "alice"));
        assert!(!verify_plain(&cheap, "secret"));
    }

    #[test]
    fn new_refuses_swapped_halves() {
        let credentials = sample();
        assert_eq!(
            Credentials::new(credentials.sha256().clone(), credentials.sha1().clone()),
            Err(CredentialsError::WrongHash)
        );
    }

    #[test]
    fn from_parts_checks_key_lengths() {
        assert_eq!(
            ScramCredentials::from_parts(ScramHash::Sha256, vec![1], 1, vec![0; 20], vec![0; 32]),
            Err(CredentialsError::KeyLength {
                expected: 32,
                found: 20
            })
        );
    }
}
