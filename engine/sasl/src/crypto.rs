//! The SCRAM key schedule (RFC 5802 section 3) over RustCrypto primitives, dispatched on
//! [`ScramHash`], and the salted password a client may cache.
//!
//! What it does not do: implement any primitive (SHA-1, SHA-256, HMAC and PBKDF2 come from
//! `sha1`, `sha2`, `hmac`, `pbkdf2`; constant-time comparison from `subtle`) or parse
//! messages.
//!
//! Invariants: every secret comparison goes through [`ct_eq`]; the salted password never
//! leaves this module in a `Debug` output.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::CredentialsError;
use crate::prep;
use crate::{MAX_ITERATIONS, MAX_SALT_BYTES};

/// The hash function of a SCRAM family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// Output length in bytes: the length of StoredKey, ServerKey, proofs and signatures.
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }
}

/// `HMAC(key, message)` for the family's hash.
pub(crate) fn hmac(hash: ScramHash, key: &[u8], message: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => hmac_with::<Hmac<Sha1>>(key, message),
        ScramHash::Sha256 => hmac_with::<Hmac<Sha256>>(key, message),
    }
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // Invariant: HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `H(data)` for the family's hash.
pub(crate) fn hash(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// `Hi(password, salt, i)` of RFC 5802: PBKDF2 with HMAC of the family's hash.
fn hi(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.output_len()];
    match hash {
        ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
    }
    out
}

/// Constant-time equality; the time depends on the lengths only, which are public here
/// (they follow from the hash).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// `a XOR b` of two equal-length strings (callers check the lengths).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Checks an iteration count against the crate's ceiling (a floor is the caller's policy).
pub(crate) fn check_iterations(iterations: u32) -> Result<(), CredentialsError> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(CredentialsError::IterationsOutOfRange { iterations });
    }
    Ok(())
}

/// Checks a salt length: not empty, at most [`MAX_SALT_BYTES`].
pub(crate) fn check_salt(salt: &[u8]) -> Result<(), CredentialsError> {
    if salt.is_empty() || salt.len() > MAX_SALT_BYTES {
        return Err(CredentialsError::SaltLength { len: salt.len() });
    }
    Ok(())
}

/// The parameters one SCRAM login runs with, the same on both sides (RFC 5802 section 3): the
/// hash, the salt and the iteration count. A [`SaltedPassword`] is derived for one set, and
/// the [`ScramCredentials`](crate::ScramCredentials) stored from it keep the same.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramParams {
    pub(crate) hash: ScramHash,
    pub(crate) salt: Vec<u8>,
    pub(crate) iterations: u32,
}

impl ScramParams {
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

/// The salt's length only: it is not secret, but nothing reads it from a log either.
impl fmt::Debug for ScramParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramParams")
            .field("hash", &self.hash)
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// `SaltedPassword = Hi(SASLprep(password), salt, i)`: the expensive part of a SCRAM login,
/// which a client may compute once per user and reuse while the server's salt and iteration
/// count stay the same (see [`ClientExchange::use_salted_password`](crate::ClientExchange::use_salted_password)).
#[derive(Clone)]
pub struct SaltedPassword {
    params: ScramParams,
    bytes: Vec<u8>,
}

impl SaltedPassword {
    /// The hash, salt and iteration count it was derived with.
    pub fn params(&self) -> &ScramParams {
        &self.params
    }

    /// Whether this value answers a server-first message with these parameters.
    pub fn matches(&self, hash: ScramHash, salt: &[u8], iterations: u32) -> bool {
        let params = &self.params;
        params.hash == hash && params.salt == salt && params.iterations == iterations
    }

    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`.
    pub(crate) fn client_key(&self) -> Vec<u8> {
        hmac(self.params.hash, &self.bytes, b"Client Key")
    }

    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub(crate) fn server_key(&self) -> Vec<u8> {
        hmac(self.params.hash, &self.bytes, b"Server Key")
    }
}

impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltedPassword")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Computes `Hi(SASLprep(password), salt, iterations)`: PBKDF2, the only slow step of SCRAM.
pub fn salted_password(
    hash: ScramHash,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<SaltedPassword, CredentialsError> {
    check_iterations(iterations)?;
    check_salt(salt)?;
    let password = prep::password(password)?;
    Ok(SaltedPassword {
        params: ScramParams {
            hash,
            salt: salt.to_vec(),
            iterations,
        },
        bytes: hi(hash, password.as_bytes(), salt, iterations),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6070 test vector 2 (PBKDF2-HMAC-SHA1, "password"/"salt", 2 iterations): checks the
    /// dispatch, not the primitive.
    #[test]
    fn hi_sha1_matches_rfc_6070() {
        let out = hi(ScramHash::Sha1, b"password", b"salt", 2);
        assert_eq!(
            out,
            [
                0xea, 0x6c, 0x01, 0x4d, 0xc7, 0x2d, 0x6f, 0x8c, 0xcd, 0x1e, 0xd9, 0x2a, 0xce, 0x1d,
                0x41, 0xf0, 0xd8, 0xde, 0x89, 0x57
            ]
        );
    }

    #[test]
    fn lengths_follow_the_hash() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            assert_eq!(super::hash(hash, b"x").len(), hash.output_len());
            assert_eq!(hmac(hash, b"k", b"m").len(), hash.output_len());
        }
        assert_ne!(
            hmac(ScramHash::Sha1, b"k", b"m"),
            hmac(ScramHash::Sha1, b"k", b"n")
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn salted_password_checks_its_inputs() {
        assert!(matches!(
            salted_password(ScramHash::Sha256, "pw", b"salt", 0),
            Err(CredentialsError::IterationsOutOfRange { iterations: 0 })
        ));
        assert!(matches!(
            salted_password(ScramHash::Sha256, "pw", b"", 1),
            Err(CredentialsError::SaltLength { len: 0 })
        ));
        assert!(matches!(
            salted_password(ScramHash::Sha256, "a\u{7}b", b"salt", 1),
            Err(CredentialsError::InvalidPassword)
        ));
        let salted = salted_password(ScramHash::Sha1, "pw", b"salt", 3).unwrap();
        assert!(salted.matches(ScramHash::Sha1, b"salt", 3));
        assert!(!salted.matches(ScramHash::Sha1, b"salt", 4));
        assert!(!format!("{salted:?}").contains("bytes"));
    }
}
