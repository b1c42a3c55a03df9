//! The slot token: 128 random bits naming one upload, its GET URL and its file on disk.
//!
//! What it does: holds the bytes the caller drew from its random source and renders them as
//! 32 lowercase hex digits, the form used in URLs and file names; parses that form back.
//!
//! What it does not do: draw randomness. The caller passes it in, so this crate stays
//! deterministic (a simulator replays a seed; tests pick their tokens).
//!
//! Invariants: the text form is exactly [`SlotToken::TEXT_LEN`] characters of `[0-9a-f]`, so it
//! is safe as a URL path segment and as a file name on any file system, case-insensitive ones
//! included (which is why it is hex and not base64).

use std::fmt;

/// Random bytes in a token: 128 bits make a GET URL unguessable (XEP-0363 section 10).
pub const TOKEN_BYTES: usize = 16;

/// One slot's name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotToken([u8; TOKEN_BYTES]);

impl SlotToken {
    /// Length of the hex form.
    pub const TEXT_LEN: usize = 2 * TOKEN_BYTES;

    /// A token from random bytes drawn by the caller (e.g. `getrandom`, or a seeded generator
    /// in a simulation).
    pub fn from_random(bytes: [u8; TOKEN_BYTES]) -> SlotToken {
        SlotToken(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; TOKEN_BYTES] {
        &self.0
    }

    /// Parses the 32-hex-digit form; upper case is refused so one token has one spelling.
    pub fn parse(text: &str) -> Option<SlotToken> {
        let text = text.as_bytes();
        if text.len() != SlotToken::TEXT_LEN {
            return None;
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(SlotToken(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for SlotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SlotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotToken({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_form_round_trips() {
        let token = SlotToken::from_random([0xab; TOKEN_BYTES]);
        let text = token.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(SlotToken::parse(&text), Some(token));
        let mixed = SlotToken::from_random(
            *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xfc\xfd\xfe\xff",
        );
        assert_eq!(SlotToken::parse(&mixed.to_string()), Some(mixed));
    }

    #[test]
    fn parse_refuses_other_spellings() {
        assert_eq!(SlotToken::parse(&"AB".repeat(16)), None);
        assert_eq!(SlotToken::parse(&"ab".repeat(15)), None);
        assert_eq!(SlotToken::parse(&"ab".repeat(17)), None);
        assert_eq!(SlotToken::parse(&format!("{}g0", "ab".repeat(15))), None);
        assert_eq!(SlotToken::parse("../../etc/passwd"), None);
    }
}
