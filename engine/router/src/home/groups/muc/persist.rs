//! Rooms in the shard's store: the encodings of `tables::ROOMS` (configuration and subject,
//! key = room bare JID) and `tables::AFFILIATIONS` (key = `room \0 user-bare`), writing them,
//! and restoring this shard's rooms at start.
//!
//! Encodings (all integers little-endian; every value starts with a version byte):
//! - room, version 1: `01 flags:u8 broadcast:u8 max_users:u32 name subject subject_nick`,
//!   where flags bit 0 = members-only, `broadcast` = role bits (1 moderator, 2 participant,
//!   4 visitor) and each string is `len:u16` + UTF-8 bytes. Bytes after the last field are
//!   ignored (room for fields a later writer appends under the same version).
//! - affiliation, version 1: `01 affiliation:u8` (1 owner, 2 admin, 3 member, 4 outcast).
//!
//! What it does not do: persist occupants (sessions are live; they rejoin), or decide when
//! to write (the room modules write after each change they accept).
//!
//! Invariants: decoding never panics; a value that is truncated, of an unknown version or
//! not UTF-8 is skipped: a room keeps its default configuration (and its affiliations), a
//! bad affiliation is dropped. Only rooms homed on this shard and served by this service are
//! restored. An affiliation whose room has no (readable or written) room record still
//! restores the room, with the default configuration, so no member is lost.

use rookery_proto::Jid;
use rookery_store::{Store, StoreError};

use super::room::{Affiliation, RoleSet, Room, RoomConfig, Subject};
use super::RoomsConfig;
use crate::maps::Map;
use crate::tables::{self, AFFILIATIONS, ROOMS};

const VERSION: u8 = 1;
const MEMBERS_ONLY: u8 = 1;

/// The room record of `room`.
pub(crate) fn encode_room(room: &Room) -> Vec<u8> {
    let config = &room.config;
    let strings = config.name.len() + room.subject.text.len() + room.subject.nick.len();
    let mut out = Vec::with_capacity(7 + 6 + strings);
    out.push(VERSION);
    out.push(if config.members_only { MEMBERS_ONLY } else { 0 });
    out.push(config.broadcast.0);
    out.extend_from_slice(&config.max_users.to_le_bytes());
    for text in [&config.name, &room.subject.text, &room.subject.nick] {
        // Names, subjects and nicks are capped far below u16::MAX (room, MAX_*_BYTES; a nick
        // is a JID resource, at most 1023 bytes); a longer one is cut at a char boundary.
        let text = cut(text, usize::from(u16::MAX));
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

fn cut(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Reads a room record; `None` if it is not a valid version-1 record.
pub(crate) fn decode_room(bytes: &[u8]) -> Option<(RoomConfig, Subject)> {
    let mut reader = Reader { bytes };
    if reader.byte()? != VERSION {
        return None;
    }
    let flags = reader.byte()?;
    let broadcast = RoleSet(reader.byte()? & RoleSet::ALL.0);
    let max_users = u32::from_le_bytes(reader.array()?);
    let name = reader.string()?;
    let text = reader.string()?;
    let nick = reader.string()?;
    let config = RoomConfig {
        name,
        members_only: flags & MEMBERS_ONLY != 0,
        max_users,
        broadcast,
    };
    Some((config, Subject { text, nick }))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Option<&[u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn string(&mut self) -> Option<Box<str>> {
        let len = u16::from_le_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        std::str::from_utf8(bytes).ok().map(Into::into)
    }
}

pub(crate) fn encode_affiliation(affiliation: Affiliation) -> Option<[u8; 2]> {
    let code = match affiliation {
        Affiliation::Owner => 1,
        Affiliation::Admin => 2,
        Affiliation::Member => 3,
        Affiliation::Outcast => 4,
        Affiliation::None => return None,
    };
    Some([VERSION, code])
}

pub(crate) fn decode_affiliation(bytes: &[u8]) -> Option<Affiliation> {
    match bytes {
        [VERSION, 1, ..] => Some(Affiliation::Owner),
        [VERSION, 2, ..] => Some(Affiliation::Admin),
        [VERSION, 3, ..] => Some(Affiliation::Member),
        [VERSION, 4, ..] => Some(Affiliation::Outcast),
        _ => None,
    }
}

/// Writes `room`'s record (configuration and subject). Refused while the store is unavailable
/// (a failed log write): a room change is answered only once stored, so it is refused rather
/// than kept waiting behind a disk that may stay full.
pub(crate) fn save_room(store: &mut Store, room: &Room) -> Result<(), StoreError> {
    if !store.is_available() {
        return Err(StoreError::Unavailable);
    }
    store.kv_set(ROOMS, room.jid.as_str(), &encode_room(room))
}

/// Writes (or, for `None`, deletes) `user`'s affiliation with `room`.
pub(crate) fn save_affiliation(
    store: &mut Store,
    room: &Jid,
    user: &Jid,
    affiliation: Affiliation,
) -> Result<(), StoreError> {
    if !store.is_available() {
        return Err(StoreError::Unavailable);
    }
    let key = tables::key(room.as_str(), user.bare_str());
    match encode_affiliation(affiliation) {
        Some(value) => store.kv_set(AFFILIATIONS, &key, &value),
        None => {
            store.kv_delete(AFFILIATIONS, &key);
            Ok(())
        }
    }
}

/// Deletes `room`'s record and every affiliation with it (the room is destroyed). Refused
/// while the store is unavailable, like every room change.
pub(crate) fn delete_room(store: &mut Store, room: &Jid) -> Result<(), StoreError> {
    if !store.is_available() {
        return Err(StoreError::Unavailable);
    }
    let prefix = tables::prefix(room.as_str());
    let keys: Vec<String> = store
        .kv_scan(AFFILIATIONS, &prefix)
        .map(|(key, _)| key.to_owned())
        .collect();
    for key in keys {
        store.kv_delete(AFFILIATIONS, &key);
    }
    store.kv_delete(ROOMS, room.as_str());
    Ok(())
}

/// This shard's rooms, from the store.
pub(crate) fn load(config: &RoomsConfig, store: &Store) -> Map<Box<str>, Room> {
    let mut rooms: Map<Box<str>, Room> = config.hash.map();
    for (key, value) in store.kv_scan(ROOMS, "") {
        let Some(mut room) = restored_room(config, key) else {
            continue;
        };
        if let Some((room_config, subject)) = decode_room(value) {
            room.config = room_config;
            room.subject = subject;
        }
        rooms.insert(room.jid.as_str().into(), room);
    }
    for (key, value) in store.kv_scan(AFFILIATIONS, "") {
        let Some((room_key, user)) = key.split_once('\0') else {
            continue;
        };
        let (Some(affiliation), Ok(user)) = (decode_affiliation(value), Jid::parse(user)) else {
            continue;
        };
        if !rooms.contains_key(room_key) {
            let Some(room) = restored_room(config, room_key) else {
                continue;
            };
            rooms.insert(room_key.into(), room);
        }
        if let Some(room) = rooms.get_mut(room_key) {
            room.set_affiliation(&user, affiliation);
        }
    }
    rooms
}

/// An empty room for a stored key, if the key names a room of this service homed here.
fn restored_room(config: &RoomsConfig, key: &str) -> Option<Room> {
    let jid = Jid::parse(key).ok()?;
    let ours = jid.is_bare()
        && jid.local().is_some()
        && jid.domain() == config.service.domain()
        && config.placement.home(&jid) == config.location;
    ours.then(|| {
        Room::new(
            jid,
            RoomConfig::created(config.max_members, config.default_broadcast),
        )
    })
}
