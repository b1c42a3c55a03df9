//! The on-disk format of a shard log: file header, record framing, record bodies.
//!
//! A log is a header followed by records, nothing else, all integers little-endian:
//!
//! ```text
//! file header, 16 bytes, at offset 0:
//!   0..8    magic    "RKLOG\0\0\x01"
//!   8..12   version  u32 = 1
//!   12..16  flags    u32 = 0 (reserved; a reader refuses non-zero)
//!
//! record, 8 + len bytes:
//!   0..4    len      u32: bytes of kind + payload (1 ..= MAX_BODY_LEN)
//!   4..8    crc      u32: CRC32C (Castagnoli) of kind + payload
//!   8       kind     u8
//!   9..     payload  len - 1 bytes, by kind:
//!
//!   kind 1, Put (a message stored in an offline queue):
//!     id        u64     message id, unique per shard across restarts
//!     stamp_ms  u64     time the server received it (ms since the Unix epoch)
//!     owner_len u16,  owner  UTF-8, the recipient's bare JID (queue key)
//!     from_len  u16,  from   UTF-8, the sender's full JID
//!     stanza    the rest of the payload, the stanza bytes as routed
//!   kind 2, Ack (the recipient acknowledged message `id`; it is deleted):
//!     id        u64
//!   kind 3, NextId (ids below `next_id` are used; written first by compaction, which may drop
//!   the highest ids):
//!     next_id   u64
//!   kind 4, Set (a keyed table entry: roster item, group, affiliation; replaces the old value):
//!     table     u8      table number (the caller's; the store does not interpret it)
//!     key_len u16,  key  UTF-8
//!     value     the rest of the payload
//!   kind 5, Delete (the keyed entry is removed):
//!     table     u8
//!     key_len u16,  key  UTF-8 (nothing may follow)
//!   kinds 0 and 6..=255: reserved. Kind 0 is never used, so a zero-filled tail fails the
//!   length check (len 0) rather than parsing.
//! ```
//!
//! What it does not do: I/O. It encodes records onto the end of a `Vec<u8>` and decodes a
//! record body that the caller has read and CRC-checked (see `check_frame`).
//!
//! Invariants: the CRC covers kind and payload, not the length; a damaged length makes the
//! reader take the wrong span, which then fails the CRC (or the length bound). Encoding never
//! allocates beyond growing the caller's buffer.

use crate::crc;

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"RKLOG\0\0\x01";
/// Format version written and accepted.
pub const VERSION: u32 = 1;
/// Bytes of the file header.
pub const HEADER_LEN: usize = 16;
/// Bytes of the record frame (len + crc) before the body.
pub const FRAME_LEN: usize = 8;
/// Upper bound of a record body (kind + payload). A length above it is damage, not data.
pub const MAX_BODY_LEN: u32 = 16 << 20;

/// Record kind bytes.
pub const KIND_PUT: u8 = 1;
/// See [`KIND_PUT`].
pub const KIND_ACK: u8 = 2;
/// See [`KIND_PUT`].
pub const KIND_NEXT_ID: u8 = 3;
/// See [`KIND_PUT`].
pub const KIND_SET: u8 = 4;
/// See [`KIND_PUT`].
pub const KIND_DELETE: u8 = 5;

/// Fixed bytes of a Put payload: id, stamp, two length prefixes.
const PUT_FIXED_LEN: usize = 8 + 8 + 2 + 2;

/// One decoded record, borrowing from the body it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A message stored in `owner`'s offline queue.
    Put(PutRecord<'a>),
    /// Message `id` was acknowledged and deleted.
    Ack {
        /// The deleted message.
        id: u64,
    },
    /// Ids below `next_id` have been handed out.
    NextId {
        /// The lowest id not yet used.
        next_id: u64,
    },
    /// Keyed entry `key` of `table` now holds `value`.
    Set {
        /// Table number.
        table: u8,
        /// Entry key.
        key: &'a str,
        /// Entry value.
        value: &'a [u8],
    },
    /// Keyed entry `key` of `table` was removed.
    Delete {
        /// Table number.
        table: u8,
        /// Entry key.
        key: &'a str,
    },
}

/// The fields of a Put record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecord<'a> {
    /// Message id.
    pub id: u64,
    /// Receive time, ms since the Unix epoch.
    pub stamp_ms: u64,
    /// Recipient's bare JID.
    pub owner: &'a str,
    /// Sender's full JID.
    pub from: &'a str,
    /// Stanza bytes.
    pub stanza: &'a [u8],
}

/// Why a body with a good CRC did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Empty body (no kind byte).
    Empty,
    /// A kind this version does not know.
    UnknownKind(u8),
    /// The payload is too short, too long, or a string is not UTF-8.
    Malformed(u8),
}

/// Result of checking a frame header read from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCheck {
    /// Plausible: the body of `len` bytes with CRC `crc` follows.
    Body {
        /// Body length.
        len: u32,
        /// Stored CRC of the body.
        crc: u32,
    },
    /// The length is 0 or above [`MAX_BODY_LEN`].
    BadLength(u32),
}

/// The 16-byte file header.
pub fn header() -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    bytes
}

/// Total record bytes (frame included) of a Put, or `None` if a field exceeds the format's
/// limits (a JID over 65535 bytes, or a body over [`MAX_BODY_LEN`]).
pub fn put_len(owner_len: usize, from_len: usize, stanza_len: usize) -> Option<u32> {
    if owner_len > usize::from(u16::MAX) || from_len > usize::from(u16::MAX) {
        return None;
    }
    let body = 1 + PUT_FIXED_LEN + owner_len + from_len;
    let body = body.checked_add(stanza_len)?;
    let body = u32::try_from(body)
        .ok()
        .filter(|&len| len <= MAX_BODY_LEN)?;
    Some(body + FRAME_LEN as u32)
}

/// Total record bytes of an Ack or NextId record.
pub const ID_RECORD_LEN: u32 = (FRAME_LEN + 1 + 8) as u32;

/// Appends a Put record. The caller has checked the lengths with [`put_len`]; a field over
/// the limit is a broken invariant and panics rather than writing an unreadable record.
pub fn encode_put(buf: &mut Vec<u8>, put: &PutRecord<'_>) {
    let owner_len = u16::try_from(put.owner.len()).expect("owner length checked by put_len");
    let from_len = u16::try_from(put.from.len()).expect("from length checked by put_len");
    let start = begin(buf, KIND_PUT);
    buf.extend_from_slice(&put.id.to_le_bytes());
    buf.extend_from_slice(&put.stamp_ms.to_le_bytes());
    buf.extend_from_slice(&owner_len.to_le_bytes());
    buf.extend_from_slice(put.owner.as_bytes());
    buf.extend_from_slice(&from_len.to_le_bytes());
    buf.extend_from_slice(put.from.as_bytes());
    buf.extend_from_slice(put.stanza);
    seal(buf, start);
}

/// Total record bytes of a Set with a `value_len`-byte value; `None` if the key is over
/// 65535 bytes or the body over [`MAX_BODY_LEN`].
pub fn set_len(key_len: usize, value_len: usize) -> Option<u32> {
    if key_len > usize::from(u16::MAX) {
        return None;
    }
    let body = (1 + 1 + 2 + key_len).checked_add(value_len)?;
    let body = u32::try_from(body)
        .ok()
        .filter(|&len| len <= MAX_BODY_LEN)?;
    Some(body + FRAME_LEN as u32)
}

/// Total record bytes of a Delete, `None` if the key is over 65535 bytes.
pub fn delete_len(key_len: usize) -> Option<u32> {
    set_len(key_len, 0)
}

/// Appends a Set record; the caller has checked the lengths with [`set_len`].
pub fn encode_set(buf: &mut Vec<u8>, table: u8, key: &str, value: &[u8]) {
    let key_len = u16::try_from(key.len()).expect("key length checked by set_len");
    let start = begin(buf, KIND_SET);
    buf.push(table);
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(value);
    seal(buf, start);
}

/// Appends a Delete record; the caller has checked the length with [`delete_len`].
pub fn encode_delete(buf: &mut Vec<u8>, table: u8, key: &str) {
    let key_len = u16::try_from(key.len()).expect("key length checked by delete_len");
    let start = begin(buf, KIND_DELETE);
    buf.push(table);
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    seal(buf, start);
}

/// Appends an Ack record.
pub fn encode_ack(buf: &mut Vec<u8>, id: u64) {
    let start = begin(buf, KIND_ACK);
    buf.extend_from_slice(&id.to_le_bytes());
    seal(buf, start);
}

/// Appends a NextId record.
pub fn encode_next_id(buf: &mut Vec<u8>, next_id: u64) {
    let start = begin(buf, KIND_NEXT_ID);
    buf.extend_from_slice(&next_id.to_le_bytes());
    seal(buf, start);
}

/// Reserves the frame and writes the kind; returns the record's start.
fn begin(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_LEN]);
    buf.push(kind);
    start
}

/// Fills in the frame of the record that starts at `start` and runs to the end of `buf`.
fn seal(buf: &mut [u8], start: usize) {
    let body = &buf[start + FRAME_LEN..];
    // Bounded by MAX_BODY_LEN through put_len / set_len, or fixed (Ack, NextId).
    let len = u32::try_from(body.len()).expect("record body bounded by MAX_BODY_LEN");
    let crc = crc::crc32c(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Checks the 8-byte frame header of a record.
pub fn check_frame(frame: [u8; FRAME_LEN]) -> FrameCheck {
    let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if len == 0 || len > MAX_BODY_LEN {
        return FrameCheck::BadLength(len);
    }
    FrameCheck::Body { len, crc }
}

/// Decodes a record body (kind + payload) whose CRC the caller has verified.
pub fn decode_body(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    let (&kind, payload) = body.split_first().ok_or(DecodeError::Empty)?;
    match kind {
        KIND_PUT => decode_put(payload)
            .map(Record::Put)
            .ok_or(DecodeError::Malformed(kind)),
        KIND_ACK => decode_id(payload)
            .map(|id| Record::Ack { id })
            .ok_or(DecodeError::Malformed(kind)),
        KIND_NEXT_ID => decode_id(payload)
            .map(|next_id| Record::NextId { next_id })
            .ok_or(DecodeError::Malformed(kind)),
        KIND_SET => decode_keyed(payload)
            .map(|(table, key, value)| Record::Set { table, key, value })
            .ok_or(DecodeError::Malformed(kind)),
        KIND_DELETE => decode_keyed(payload)
            .filter(|(_, _, rest)| rest.is_empty())
            .map(|(table, key, _)| Record::Delete { table, key })
            .ok_or(DecodeError::Malformed(kind)),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// An Ack or NextId payload: exactly one u64.
fn decode_id(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A Set or Delete payload: table, key, and the rest (the value of a Set).
fn decode_keyed(payload: &[u8]) -> Option<(u8, &str, &[u8])> {
    let mut rest = payload;
    let table = *take(&mut rest, 1)?.first()?;
    let key = take_str(&mut rest)?;
    Some((table, key, rest))
}

fn decode_put(payload: &[u8]) -> Option<PutRecord<'_>> {
    let mut rest = payload;
    let id = u64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let stamp_ms = u64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let owner = take_str(&mut rest)?;
    let from = take_str(&mut rest)?;
    Some(PutRecord {
        id,
        stamp_ms,
        owner,
        from,
        stanza: rest,
    })
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

/// A u16-length-prefixed UTF-8 string.
fn take_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let len = u16::from_le_bytes(take(rest, 2)?.try_into().ok()?);
    std::str::from_utf8(take(rest, usize::from(len))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PutRecord<'static> {
        PutRecord {
            id: 0x0102_0304_0506_0708,
            stamp_ms: 1_700_000_000_123,
            owner: "bob@example.com",
            from: "alice@example.com/phone",
            stanza: b"<message to='bob@example.com'><body>hi</body></message>",
        }
    }

    #[test]
    fn header_bytes_are_as_documented() {
        let h = header();
        assert_eq!(&h[..8], b"RKLOG\0\0\x01");
        assert_eq!(&h[8..], &[1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn put_round_trips_and_layout_is_as_documented() {
        let put = sample();
        let mut buf = vec![0xAA]; // records append after existing bytes
        encode_put(&mut buf, &put);
        let record = &buf[1..];
        let expected_len = put_len(put.owner.len(), put.from.len(), put.stanza.len());
        assert_eq!(Some(record.len() as u32), expected_len);
        let FrameCheck::Body { len, crc } = check_frame(record[..8].try_into().unwrap()) else {
            panic!("bad frame")
        };
        assert_eq!(len as usize, record.len() - FRAME_LEN);
        assert_eq!(crc, crc::crc32c(&record[8..]));
        assert_eq!(record[8], KIND_PUT);
        assert_eq!(&record[9..17], &put.id.to_le_bytes());
        assert_eq!(&record[17..25], &put.stamp_ms.to_le_bytes());
        assert_eq!(&record[25..27], &(put.owner.len() as u16).to_le_bytes());
        assert_eq!(decode_body(&record[8..]), Ok(Record::Put(put)));
    }

    #[test]
    fn ack_and_next_id_round_trip() {
        let mut buf = Vec::new();
        encode_ack(&mut buf, 42);
        encode_next_id(&mut buf, 7);
        assert_eq!(buf.len(), 2 * ID_RECORD_LEN as usize);
        let (ack, next) = buf.split_at(ID_RECORD_LEN as usize);
        assert_eq!(decode_body(&ack[8..]), Ok(Record::Ack { id: 42 }));
        assert_eq!(decode_body(&next[8..]), Ok(Record::NextId { next_id: 7 }));
    }

    #[test]
    fn empty_strings_and_stanza_round_trip() {
        let put = PutRecord {
            id: 1,
            stamp_ms: 0,
            owner: "",
            from: "",
            stanza: b"",
        };
        let mut buf = Vec::new();
        encode_put(&mut buf, &put);
        assert_eq!(decode_body(&buf[8..]), Ok(Record::Put(put)));
    }

    #[test]
    fn bad_frames_and_bodies_are_rejected() {
        assert_eq!(check_frame([0; 8]), FrameCheck::BadLength(0));
        let mut frame = [0u8; 8];
        frame[..4].copy_from_slice(&(MAX_BODY_LEN + 1).to_le_bytes());
        assert_eq!(check_frame(frame), FrameCheck::BadLength(MAX_BODY_LEN + 1));
        assert_eq!(decode_body(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_body(&[9, 1, 2]), Err(DecodeError::UnknownKind(9)));
        assert_eq!(decode_body(&[6]), Err(DecodeError::UnknownKind(6)));
        assert_eq!(decode_body(&[0]), Err(DecodeError::UnknownKind(0)));
        assert_eq!(
            decode_body(&[KIND_ACK, 1, 2, 3]),
            Err(DecodeError::Malformed(KIND_ACK))
        );
        assert_eq!(
            decode_body(&[KIND_ACK; 10]),
            Err(DecodeError::Malformed(KIND_ACK))
        );
        let mut buf = Vec::new();
        encode_put(&mut buf, &sample());
        // Cut inside the owner string: the length prefix promises more than remains.
        assert_eq!(
            decode_body(&buf[8..30]),
            Err(DecodeError::Malformed(KIND_PUT))
        );
        // Owner bytes that are not UTF-8.
        let mut body = buf[8..].to_vec();
        body[27] = 0xff;
        assert_eq!(decode_body(&body), Err(DecodeError::Malformed(KIND_PUT)));
    }

    #[test]
    fn set_and_delete_round_trip_and_are_checked() {
        let mut buf = Vec::new();
        encode_set(&mut buf, 3, "alice@x\0bob@x", b"\x03value");
        let set_end = buf.len();
        assert_eq!(Some(set_end as u32), set_len(13, 6));
        encode_delete(&mut buf, 3, "alice@x\0bob@x");
        assert_eq!(Some((buf.len() - set_end) as u32), delete_len(13));
        assert_eq!(
            decode_body(&buf[8..set_end]),
            Ok(Record::Set {
                table: 3,
                key: "alice@x\0bob@x",
                value: b"\x03value"
            })
        );
        let delete_body = &buf[set_end + 8..];
        assert_eq!(
            decode_body(delete_body),
            Ok(Record::Delete {
                table: 3,
                key: "alice@x\0bob@x"
            })
        );
        let mut trailing = delete_body.to_vec();
        trailing.push(0);
        assert_eq!(
            decode_body(&trailing),
            Err(DecodeError::Malformed(KIND_DELETE))
        );
        assert_eq!(
            decode_body(&[KIND_SET, 1]),
            Err(DecodeError::Malformed(KIND_SET))
        );
        assert_eq!(set_len(65_536, 0), None);
        assert_eq!(set_len(0, MAX_BODY_LEN as usize), None);
    }

    #[test]
    fn put_len_enforces_limits() {
        assert_eq!(
            put_len(0, 0, 0),
            Some((FRAME_LEN + 1 + PUT_FIXED_LEN) as u32)
        );
        assert_eq!(put_len(65_536, 0, 0), None);
        assert_eq!(put_len(0, 65_536, 0), None);
        assert_eq!(put_len(0, 0, MAX_BODY_LEN as usize), None);
        let max_stanza = MAX_BODY_LEN as usize - 1 - PUT_FIXED_LEN;
        assert_eq!(
            put_len(0, 0, max_stanza),
            Some(MAX_BODY_LEN + FRAME_LEN as u32)
        );
        assert_eq!(put_len(0, 0, usize::MAX), None);
    }
}
