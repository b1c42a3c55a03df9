//! The archive's byte layouts: a record in a segment file, an entry of a segment's index, and
//! the index file's header. All integers little-endian.
//!
//! Record: `len u32` (bytes after the CRC), `crc u32` (CRC32C of those bytes), then the body:
//! `id u64`, `stamp_ms u64`, `direction u8`, `owner_len u16`, `with_len u16`, owner, with,
//! stanza.
//!
//! Index entry (40 B): `owner_hash u64`, `with_hash u64` (of the bare part of `with`),
//! `id u64`, `stamp_ms u64`, `offset u32`, `len u32` (the whole record, header included).
//! An index file is a header (`MAGIC`, count, first/last id, first/last stamp: 48 B) and the
//! entries sorted by (owner_hash, id), so one owner's entries are one contiguous run.
//!
//! What it does not do: I/O (see `segment`).

use crate::crc::crc32c;

/// Bytes before a record's body.
pub const RECORD_HEAD: usize = 8;
/// Bytes of the body before the owner.
const BODY_FIXED: usize = 8 + 8 + 1 + 2 + 2;
/// Bytes of one index entry.
pub const ENTRY_BYTES: usize = 40;
/// Bytes of an index file's header.
pub const INDEX_HEAD: usize = 48;
/// First bytes of every index file.
pub const MAGIC: [u8; 8] = *b"RKMAMIX1";

/// Who sent an archived message, seen from the archive's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The owner received it (or, for a room, the room broadcast it).
    Incoming,
    /// The owner sent it.
    Outgoing,
}

/// One archived message as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    pub id: u64,
    pub stamp_ms: u64,
    pub direction: Direction,
    pub owner: String,
    pub with: String,
    pub stanza: Vec<u8>,
}

/// One record's place in a segment and what queries filter on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub owner_hash: u64,
    pub with_hash: u64,
    pub id: u64,
    pub stamp_ms: u64,
    pub offset: u32,
    pub len: u32,
}

/// FNV-1a 64: stable across runs and builds (it is written to disk).
pub fn hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The bare part of a JID string (before any '/').
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

/// Appends the record of a message to `out`; None when owner or with exceed 64 KiB.
pub fn encode_record(
    out: &mut Vec<u8>,
    (id, stamp_ms, direction): (u64, u64, Direction),
    owner: &str,
    with: &str,
    stanza: &[u8],
) -> Option<()> {
    let owner_len = u16::try_from(owner.len()).ok()?;
    let with_len = u16::try_from(with.len()).ok()?;
    let body_len = BODY_FIXED + owner.len() + with.len() + stanza.len();
    let body_len32 = u32::try_from(body_len).ok()?;
    let start = out.len();
    out.extend_from_slice(&body_len32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&stamp_ms.to_le_bytes());
    out.push(match direction {
        Direction::Incoming => 0,
        Direction::Outgoing => 1,
    });
    out.extend_from_slice(&owner_len.to_le_bytes());
    out.extend_from_slice(&with_len.to_le_bytes());
    out.extend_from_slice(owner.as_bytes());
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(stanza);
    let crc = crc32c(&out[start + RECORD_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Some(())
}

/// The body length a record head announces.
pub fn body_len(head: &[u8; RECORD_HEAD]) -> usize {
    u32_at(head, 0) as usize
}

/// Decodes one whole record (head included); None when torn or corrupt.
pub fn decode_record(record: &[u8]) -> Option<ArchivedMessage> {
    let head: &[u8; RECORD_HEAD] = record.get(..RECORD_HEAD)?.try_into().ok()?;
    let body = record.get(RECORD_HEAD..RECORD_HEAD + body_len(head))?;
    if crc32c(body) != u32_at(head, 4) || body.len() < BODY_FIXED {
        return None;
    }
    let direction = match body[16] {
        0 => Direction::Incoming,
        1 => Direction::Outgoing,
        _ => return None,
    };
    let owner_len = usize::from(u16::from_le_bytes([body[17], body[18]]));
    let with_len = usize::from(u16::from_le_bytes([body[19], body[20]]));
    let owner = body.get(BODY_FIXED..BODY_FIXED + owner_len)?;
    let with = body.get(BODY_FIXED + owner_len..BODY_FIXED + owner_len + with_len)?;
    Some(ArchivedMessage {
        id: u64_at(body, 0),
        stamp_ms: u64_at(body, 8),
        direction,
        owner: String::from_utf8(owner.to_vec()).ok()?,
        with: String::from_utf8(with.to_vec()).ok()?,
        stanza: body[BODY_FIXED + owner_len + with_len..].to_vec(),
    })
}

/// The index entry of a decoded record at `offset` of `len` bytes.
pub fn entry_of(message: &ArchivedMessage, offset: u32, len: u32) -> Entry {
    Entry {
        owner_hash: hash(&message.owner),
        with_hash: hash(bare(&message.with)),
        id: message.id,
        stamp_ms: message.stamp_ms,
        offset,
        len,
    }
}

pub fn encode_entry(out: &mut Vec<u8>, entry: &Entry) {
    out.extend_from_slice(&entry.owner_hash.to_le_bytes());
    out.extend_from_slice(&entry.with_hash.to_le_bytes());
    out.extend_from_slice(&entry.id.to_le_bytes());
    out.extend_from_slice(&entry.stamp_ms.to_le_bytes());
    out.extend_from_slice(&entry.offset.to_le_bytes());
    out.extend_from_slice(&entry.len.to_le_bytes());
}

/// `bytes` holds at least `ENTRY_BYTES`.
pub fn decode_entry(bytes: &[u8]) -> Entry {
    Entry {
        owner_hash: u64_at(bytes, 0),
        with_hash: u64_at(bytes, 8),
        id: u64_at(bytes, 16),
        stamp_ms: u64_at(bytes, 24),
        offset: u32_at(bytes, 32),
        len: u32_at(bytes, 36),
    }
}

/// What a segment holds: its record count, first and last id, earliest and latest stamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub count: u64,
    pub first_id: u64,
    pub last_id: u64,
    pub first_stamp_ms: u64,
    pub last_stamp_ms: u64,
}

impl Span {
    pub fn add(&mut self, id: u64, stamp_ms: u64) {
        if self.count == 0 {
            self.first_id = id;
            self.first_stamp_ms = stamp_ms;
        }
        self.count += 1;
        self.last_id = id;
        self.first_stamp_ms = self.first_stamp_ms.min(stamp_ms);
        self.last_stamp_ms = self.last_stamp_ms.max(stamp_ms);
    }
}

pub fn encode_index_head(out: &mut Vec<u8>, span: &Span) {
    out.extend_from_slice(&MAGIC);
    for value in [
        span.count,
        span.first_id,
        span.last_id,
        span.first_stamp_ms,
        span.last_stamp_ms,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

pub fn decode_index_head(bytes: &[u8]) -> Option<Span> {
    if bytes.len() < INDEX_HEAD || bytes[..8] != MAGIC {
        return None;
    }
    Some(Span {
        count: u64_at(bytes, 8),
        first_id: u64_at(bytes, 16),
        last_id: u64_at(bytes, 24),
        first_stamp_ms: u64_at(bytes, 32),
        last_stamp_ms: u64_at(bytes, 40),
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}
