//! Percent-encoding of one URL path segment (RFC 3986 section 2.1).
//!
//! What it does: [`encode_segment`] writes every byte outside the unreserved set
//! (`A-Z a-z 0-9 - . _ ~`) as `%XX` (upper-case hex), so the result is ASCII and means the
//! same to every client and proxy; XEP-0363 requires non-ASCII characters to be
//! percent-encoded. [`decode_segment`] is its strict inverse for what clients send back.
//!
//! What it does not do: form encoding (`+` for space), or whole URLs. A `/` is always
//! encoded, so an encoded segment never adds a path level.

/// Appends `raw` to `out` as one percent-encoded path segment.
pub fn encode_segment(raw: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in raw.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Decodes a percent-encoded path segment into bytes. `None` for a `%` not followed by two hex
/// digits, or for a raw `/` (a segment cannot contain one). Either hex case is accepted, and
/// so are characters a client left unencoded: clients re-encode URLs differently.
pub fn decode_segment(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = hex_value(*bytes.get(i + 1)?)?;
                let low = hex_value(*bytes.get(i + 2)?)?;
                out.push((high << 4) | low);
                i += 3;
            }
            b'/' => return None,
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(raw: &str) -> String {
        let mut out = String::new();
        encode_segment(raw, &mut out);
        out
    }

    #[test]
    fn encodes_like_the_xep_example() {
        // XEP-0363 example 5: 'très cool.jpg'.
        assert_eq!(encode("très cool.jpg"), "tr%C3%A8s%20cool.jpg");
        assert_eq!(encode("a/b?c#d%e"), "a%2Fb%3Fc%23d%25e");
        assert_eq!(encode("keep-._~AZaz09"), "keep-._~AZaz09");
    }

    #[test]
    fn decode_is_strict_about_escapes() {
        assert_eq!(
            decode_segment("tr%c3%A8s%20cool.jpg").unwrap(),
            "très cool.jpg".as_bytes()
        );
        assert_eq!(decode_segment("a%2"), None);
        assert_eq!(decode_segment("a%zz"), None);
        assert_eq!(decode_segment("a/b"), None);
        assert_eq!(decode_segment("plain(1).txt").unwrap(), b"plain(1).txt");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(raw in ".*") {
            let encoded = encode(&raw);
            prop_assert!(encoded.is_ascii());
            prop_assert!(!encoded.contains('/'));
            prop_assert_eq!(decode_segment(&encoded).unwrap(), raw.as_bytes());
        }
    }
}
