//! Text rules shared by both sides: SASLprep (RFC 4013) of usernames and passwords, the
//! `saslname` escaping of RFC 5802 (`,` as `=2C`, `=` as `=3D`), and nonce syntax.
//!
//! What it does not do: case-fold or nodeprep usernames into JID local parts (the server
//! maps an authcid to an account; XMPP's rules are not SASL's).
//!
//! Invariants: a prepared string is never empty; a nonce this crate emits is RFC 5802
//! `printable` (0x21..=0x7E except `,`).

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

use crate::error::CredentialsError;

/// SASLprep of a username; `None` if it has prohibited characters or prepares to nothing.
pub(crate) fn username(raw: &str) -> Option<String> {
    match stringprep::saslprep(raw) {
        Ok(prepared) if !prepared.is_empty() => Some(prepared.into_owned()),
        _ => None,
    }
}

/// SASLprep of a password (RFC 4616 and 5802 both prepare it before use).
pub(crate) fn password(raw: &str) -> Result<String, CredentialsError> {
    let prepared = stringprep::saslprep(raw).map_err(|_| CredentialsError::InvalidPassword)?;
    if prepared.is_empty() {
        return Err(CredentialsError::EmptyPassword);
    }
    Ok(prepared.into_owned())
}

/// Decodes an RFC 5802 `saslname`: `=2C` and `=3D` are the only escapes; a bare `=`, a `,`
/// or an empty name is invalid.
pub(crate) fn decode_saslname(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find(['=', ',']) {
        out.push_str(&rest[..at]);
        let escaped = rest.get(at..at + 3)?;
        match escaped {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a name as an RFC 5802 `saslname`.
pub(crate) fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Whether `nonce` is an RFC 5802 `c-nonce`/`s-nonce`: non-empty, printable ASCII, no `,`.
pub(crate) fn is_printable_nonce(nonce: &[u8]) -> bool {
    !nonce.is_empty()
        && nonce
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Turns random bytes (from any generator, seeded or not) into a SCRAM nonce: unpadded
/// base64, so 18 bytes give 24 printable characters. Deterministic callers (tests, the
/// simulator) use this with their own seeded bytes.
pub fn nonce_from_random(random: &[u8]) -> Vec<u8> {
    STANDARD_NO_PAD.encode(random).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes_round_trip() {
        for name in ["user", "a,b", "a=b", "=,=,", "ü=2C"] {
            assert_eq!(
                decode_saslname(&encode_saslname(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
    }

    #[test]
    fn saslname_rejects_bad_escapes() {
        for bad in ["", "a=", "a=2", "a=2c", "a=3d", "a=41", "a,b", "=", "a==3D"] {
            assert_eq!(decode_saslname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn saslprep_maps_and_refuses() {
        // RFC 4013 section 3 examples: SOFT HYPHEN maps to nothing, NBSP-like to space,
        // ROMAN NUMERAL NINE is NFKC-normalized, a control character is prohibited.
        assert_eq!(username("I\u{AD}X").as_deref(), Some("IX"));
        assert_eq!(username("\u{2168}").as_deref(), Some("IX"));
        assert_eq!(username("a\u{7}"), None);
        assert_eq!(username("\u{AD}"), None);
        assert!(matches!(
            password("\u{AD}"),
            Err(CredentialsError::EmptyPassword)
        ));
        assert!(matches!(
            password("\u{627}1"),
            Err(CredentialsError::InvalidPassword)
        ));
        assert_eq!(password("pencil").unwrap(), "pencil");
    }

    #[test]
    fn nonces_are_printable() {
        assert!(is_printable_nonce(b"fyko+d2lbbFgONRv9qkxdawL"));
        assert!(is_printable_nonce(b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
        assert!(!is_printable_nonce(b""));
        assert!(!is_printable_nonce(b"a,b"));
        assert!(!is_printable_nonce(b"a b"));
        assert!(!is_printable_nonce(b"a\x7fb"));
        let nonce = nonce_from_random(&[0xff; 18]);
        assert_eq!(nonce.len(), 24);
        assert!(is_printable_nonce(&nonce));
    }
}
