//! XEP-0198 resumption ids (`<enabled id>`, `<resume previd>`), derived rather than stored:
//! the id is the session's token (slot index and generation in `SmTable`) followed by a MAC
//! of the token and the user's bare JID under a per-shard secret key. So a session keeps no
//! id string, and `<resume/>` finds its session without an index: parse, verify, look up.
//!
//! Why this is as good as a stored random id (XEP-0198 3: unique and unguessable): the token
//! is unique among the live sessions of the shard (a slot's generation moves on when its
//! session ends), and the MAC (HMAC-SHA256, 128 bits kept) cannot be forged without the key,
//! which the server draws from the OS (`Router::set_random_key`). Binding the bare JID into
//! the MAC means an id only ever names a session of the user who presents it (the lookup
//! also checks the session's JID). An id of an ended session resolves to nothing (stale
//! generation); one from another shard or process fails the MAC.
//!
//! What it does not do: decide whether the session may be resumed (see `resume`), or keep
//! ids valid across restarts (sessions do not survive them).
//!
//! Invariants: `format` and `parse` are inverse for the same key and bare JID; an id is
//! `ID_CHARS` lowercase hex digits; the MAC comparison is constant-time (`hmac`'s verify).

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::home::sm::SessionRef;
use crate::random::KEY_BYTES;

/// Bytes of the MAC kept in an id.
const MAC_BYTES: usize = 16;
/// Hex digits of an id: the 64-bit token, then the MAC.
pub const ID_CHARS: usize = 16 + 2 * MAC_BYTES;
/// Domain separation from every other use of the key.
const LABEL: &[u8] = b"rookery xep-0198 resume id v1";

/// The keyed MAC that makes and checks resume ids.
#[derive(Clone)]
pub(crate) struct ResumeIds {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for ResumeIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeIds").finish_non_exhaustive()
    }
}

impl ResumeIds {
    pub fn new(key: &[u8; KEY_BYTES]) -> ResumeIds {
        ResumeIds {
            // Infallible: HMAC takes keys of any length.
            keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    fn mac(&self, token: SessionRef, bare: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(LABEL);
        mac.update(&token.0.to_be_bytes());
        mac.update(bare.as_bytes());
        mac
    }

    /// The id of session `token` of user `bare`.
    pub fn format(&self, token: SessionRef, bare: &str) -> String {
        let tag = self.mac(token, bare).finalize().into_bytes();
        let mut id = String::with_capacity(ID_CHARS);
        // Infallible: writing to a String.
        let _ = write!(id, "{:016x}", token.0);
        for byte in &tag[..MAC_BYTES] {
            let _ = write!(id, "{byte:02x}");
        }
        id
    }

    /// The token an id names, if it was made by `format` under this key for user `bare`.
    pub fn parse(&self, id: &str, bare: &str) -> Option<SessionRef> {
        let valid =
            id.len() == ID_CHARS && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return None;
        }
        let token = SessionRef(u64::from_str_radix(&id[..16], 16).ok()?);
        let mut tag = [0u8; MAC_BYTES];
        for (at, byte) in tag.iter_mut().enumerate() {
            let digits = &id[16 + 2 * at..18 + 2 * at];
            *byte = u8::from_str_radix(digits, 16).ok()?;
        }
        self.mac(token, bare).verify_truncated_left(&tag).ok()?;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: u8) -> ResumeIds {
        ResumeIds::new(&[key; KEY_BYTES])
    }

    #[test]
    fn an_id_resolves_only_for_its_session_and_user() {
        let ids = keyed(7);
        let token = SessionRef::new(12, 3);
        let id = ids.format(token, "a@example.com");
        assert_eq!(id.len(), ID_CHARS);
        assert_eq!(ids.parse(&id, "a@example.com"), Some(token));
        assert_eq!(ids.parse(&id, "b@example.com"), None, "another user");
        let other = ids.format(SessionRef::new(12, 4), "a@example.com");
        assert_ne!(other, id, "a new generation of the slot gets another id");
        assert_eq!(
            ids.parse(&other, "a@example.com"),
            Some(SessionRef::new(12, 4))
        );
    }

    #[test]
    fn forged_or_foreign_ids_are_refused() {
        let ids = keyed(7);
        let id = ids.format(SessionRef::new(1, 0), "a@example.com");
        // The token of another session with the MAC of this one.
        let forged = format!("{:016x}{}", SessionRef::new(2, 0).0, &id[16..]);
        assert_eq!(ids.parse(&forged, "a@example.com"), None);
        let mut flipped = id.clone().into_bytes();
        flipped[ID_CHARS - 1] = if flipped[ID_CHARS - 1] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let flipped = String::from_utf8(flipped).expect("hex is ASCII");
        assert_eq!(
            ids.parse(&flipped, "a@example.com"),
            None,
            "one MAC digit changed"
        );
        assert_eq!(keyed(8).parse(&id, "a@example.com"), None, "another key");
        for bad in [
            "",
            "x",
            &id[..ID_CHARS - 1],
            &id.to_uppercase(),
            &format!("{id}0"),
        ] {
            assert_eq!(ids.parse(bad, "a@example.com"), None, "{bad:?}");
        }
    }
}
