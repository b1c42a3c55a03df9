//! The binary form of what a PUT URL allows, before it is signed.
//!
//! Layout (version 1, all integers big-endian):
//!
//! ```text
//! version         u8      1
//! expires_unix_s  u64     the PUT is refused from this second on
//! size_bytes      u64     the exact Content-Length the PUT must carry
//! type_len        u8      then that many bytes: the content type (checked, ASCII)
//! owner_len       u16     then that many bytes: the owner's bare JID (UTF-8)
//! ```
//!
//! What it does not hold: the token and the file name, which travel in their own path
//! segments and are covered by the MAC beside these claims (see `signer`).
//!
//! Invariants: `decode(encode(c)) == c`; `decode` refuses anything else: another version,
//! short or trailing bytes, non-UTF-8 text.

/// The version this code writes and the only one it reads.
const VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    pub expires_unix_s: u64,
    pub size_bytes: u64,
    pub content_type: String,
    pub owner: String,
}

impl Claims {
    /// Appends the encoded claims.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Invariant: content types are checked to at most 255 bytes (content_type::check) and
        // a bare JID is at most 2,047 bytes (two parts of 1,023 and the `@`), so these fit.
        let type_len = u8::try_from(self.content_type.len()).expect("content type over 255 B");
        let owner_len = u16::try_from(self.owner.len()).expect("bare JID over 65,535 B");
        out.push(VERSION);
        out.extend_from_slice(&self.expires_unix_s.to_be_bytes());
        out.extend_from_slice(&self.size_bytes.to_be_bytes());
        out.push(type_len);
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(&owner_len.to_be_bytes());
        out.extend_from_slice(self.owner.as_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Option<Claims> {
        let mut reader = Reader(bytes);
        if reader.take(1)? != [VERSION] {
            return None;
        }
        let expires_unix_s = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
        let size_bytes = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
        let type_len = usize::from(reader.take(1)?[0]);
        let content_type = String::from_utf8(reader.take(type_len)?.to_vec()).ok()?;
        let owner_len = usize::from(u16::from_be_bytes(reader.take(2)?.try_into().ok()?));
        let owner = String::from_utf8(reader.take(owner_len)?.to_vec()).ok()?;
        reader.0.is_empty().then_some(Claims {
            expires_unix_s,
            size_bytes,
            content_type,
            owner,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Claims {
        Claims {
            expires_unix_s: 1_765_000_300,
            size_bytes: 23_456,
            content_type: "image/jpeg".into(),
            owner: "romeo@montague.tld".into(),
        }
    }

    #[test]
    fn round_trips() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        assert_eq!(bytes.len(), 1 + 8 + 8 + 1 + 10 + 2 + 18);
        assert_eq!(Claims::decode(&bytes), Some(sample()));
    }

    #[test]
    fn refuses_other_versions_and_stray_bytes() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(Claims::decode(&other_version), None);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Claims::decode(&trailing), None);
        assert_eq!(Claims::decode(&bytes[..bytes.len() - 1]), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Claims::decode(&bytes);
        }
    }
}
