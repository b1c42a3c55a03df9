//! Rookery's `token` password scheme: the password of a local part is the lowercase hex
//! HMAC-SHA256 of it under a server secret. The server's router checks logins with it; the
//! load generator, the simulator and the tests compute the same value to log in, so there is
//! no registration step. One function, here because both sides already depend on this crate.
//!
//! What it does not do: compare passwords (the caller does, in constant time), case folding
//! (pass the local part as the server stores it).

use hmac::{Hmac, Mac};
use sha2::Sha256;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex HMAC-SHA256(secret, localpart): 64 characters.
pub fn token_password(secret: &[u8], localpart: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length (long keys are hashed)"),
    };
    mac.update(localpart.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc4231_test_case_2() {
        assert_eq!(
            token_password(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
