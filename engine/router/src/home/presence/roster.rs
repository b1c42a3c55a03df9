//! Roster items (RFC 6121 2) and their subscription states, kept in the home shard's store.
//!
//! What it does: the item model (subscription none/to/from/both, pending out "ask", pending
//! in request, name, groups), its byte encoding in the keyed table `tables::ROSTER`, reads
//! and writes of one user's items, and the XML of an item for roster results and pushes.
//!
//! What it does not do: decide state changes (see `subscription`) or answer iqs (see
//! `roster_iq`).
//!
//! Invariants: an item that is not `in_roster` exists only to remember an inbound request
//! not yet answered (RFC 6121 3.1.3: such a request adds nothing to the roster), and is never
//! shown; an item with no subscription, no request either way and not in the roster is
//! deleted rather than stored; a value that does not decode is treated as absent (logged by
//! nobody: the store's CRC already vouched for the bytes, so only a newer format could cause
//! it, and the version byte refuses those).

use rookery_proto::writer::{escape_attr, escape_text};
use rookery_store::Store;

use crate::tables;

/// Encoding version byte.
const VERSION: u8 = 1;

const TO: u8 = 1;
const FROM: u8 = 2;
const ASK_OUT: u8 = 4;
const PENDING_IN: u8 = 8;
const IN_ROSTER: u8 = 16;

/// One contact in a user's roster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RosterItem {
    /// The user receives the contact's presence.
    pub to: bool,
    /// The contact receives the user's presence.
    pub from: bool,
    /// The user asked to subscribe and waits for an answer (`ask='subscribe'`).
    pub ask_out: bool,
    /// The contact asked to subscribe to the user; not answered yet.
    pub pending_in: bool,
    /// Shown in the roster (set by the user, or by a subscription it approved or asked).
    pub in_roster: bool,
    pub name: Option<Box<str>>,
    pub groups: Vec<Box<str>>,
}

impl RosterItem {
    /// The `subscription` attribute value.
    pub fn subscription(&self) -> &'static str {
        match (self.to, self.from) {
            (true, true) => "both",
            (true, false) => "to",
            (false, true) => "from",
            (false, false) => "none",
        }
    }

    /// Whether a roster push would show the same thing for both (the pending request in is
    /// not part of the item a client sees).
    pub fn shows_same_as(&self, other: &RosterItem) -> bool {
        (
            self.to,
            self.from,
            self.ask_out,
            self.in_roster,
            &self.name,
            &self.groups,
        ) == (
            other.to,
            other.from,
            other.ask_out,
            other.in_roster,
            &other.name,
            &other.groups,
        )
    }

    /// Nothing worth keeping: no subscription either way, no request, not in the roster.
    pub fn is_void(&self) -> bool {
        !(self.to || self.from || self.ask_out || self.pending_in || self.in_roster)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let flags = [
            (self.to, TO),
            (self.from, FROM),
            (self.ask_out, ASK_OUT),
            (self.pending_in, PENDING_IN),
            (self.in_roster, IN_ROSTER),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .fold(0u8, |acc, (_, bit)| acc | bit);
        out.push(VERSION);
        out.push(flags);
        put_str(out, self.name.as_deref().unwrap_or(""));
        // Groups past 255 are dropped at `roster_iq` (it refuses such a set).
        out.push(self.groups.len().min(255) as u8);
        for group in self.groups.iter().take(255) {
            put_str(out, group);
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<RosterItem> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION {
            return None;
        }
        let (&flags, mut rest) = rest.split_first()?;
        let name = take_str(&mut rest)?;
        let (&count, mut rest) = rest.split_first()?;
        let mut groups = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            groups.push(take_str(&mut rest)?.into());
        }
        Some(RosterItem {
            to: flags & TO != 0,
            from: flags & FROM != 0,
            ask_out: flags & ASK_OUT != 0,
            pending_in: flags & PENDING_IN != 0,
            in_roster: flags & IN_ROSTER != 0,
            name: (!name.is_empty()).then(|| name.into()),
            groups,
        })
    }

    /// `<item jid=.. [name=..] subscription=.. [ask='subscribe']><group>..</group></item>`.
    pub fn write_xml(&self, contact: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<item jid='");
        escape_attr(contact, out);
        out.push(b'\'');
        if let Some(name) = &self.name {
            out.extend_from_slice(b" name='");
            escape_attr(name, out);
            out.push(b'\'');
        }
        out.extend_from_slice(b" subscription='");
        out.extend_from_slice(self.subscription().as_bytes());
        out.push(b'\'');
        if self.ask_out {
            out.extend_from_slice(b" ask='subscribe'");
        }
        if self.groups.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for group in &self.groups {
            out.extend_from_slice(b"<group>");
            escape_text(group, out);
            out.extend_from_slice(b"</group>");
        }
        out.extend_from_slice(b"</item>");
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names and groups are bounded by the stanza size limit (far below 64 KiB); clamp anyway.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    if rest.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let bytes = rest.get(2..2 + len)?;
    *rest = &rest[2 + len..];
    std::str::from_utf8(bytes).ok()
}

/// `owner`'s item for `contact` (bare JIDs).
pub(crate) fn get(store: &Store, owner: &str, contact: &str) -> Option<RosterItem> {
    let key = tables::key(owner, contact);
    store
        .kv_get(tables::ROSTER, &key)
        .and_then(RosterItem::decode)
}

/// Stores `item` (or deletes it when void). A key too large for the log cannot happen for
/// valid JIDs (each at most 3 x 1023 bytes); it is ignored rather than panicking.
pub(crate) fn put(store: &mut Store, owner: &str, contact: &str, item: &RosterItem) {
    let key = tables::key(owner, contact);
    if item.is_void() {
        store.kv_delete(tables::ROSTER, &key);
        return;
    }
    let mut value = Vec::with_capacity(32);
    item.encode(&mut value);
    let _ = store.kv_set(tables::ROSTER, &key, &value);
}

/// Every item of `owner` (shown or not), as (contact bare JID, item), in contact order.
pub(crate) fn items<'a>(
    store: &'a Store,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, RosterItem)> + 'a {
    store
        .kv_scan(tables::ROSTER, prefix)
        .filter_map(move |(key, value)| {
            let item = RosterItem::decode(value)?;
            Some((tables::item(key, prefix), item))
        })
}

/// The items under `prefix` whose key sorts after `after` (a full key), in contact order.
pub(crate) fn items_after<'a>(
    store: &'a Store,
    prefix: &'a str,
    after: &'a str,
) -> impl Iterator<Item = (&'a str, RosterItem)> + 'a {
    store
        .kv_scan_after(tables::ROSTER, prefix, after)
        .filter_map(move |(key, value)| {
            let item = RosterItem::decode(value)?;
            Some((tables::item(key, prefix), item))
        })
}

/// Items shown in `owner`'s roster (for the roster-max check).
pub(crate) fn shown_count(store: &Store, owner: &str) -> usize {
    let prefix = tables::prefix(owner);
    items(store, &prefix).filter(|(_, i)| i.in_roster).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_store::{Durability, StoreConfig};

    fn memory_store() -> Store {
        let config = StoreConfig::new("", 0).with_durability(Durability::Memory);
        Store::open(config).expect("memory store")
    }

    #[test]
    fn items_round_trip_through_the_encoding() {
        let item = RosterItem {
            to: true,
            from: false,
            ask_out: false,
            pending_in: true,
            in_roster: true,
            name: Some("Bob <the builder>".into()),
            groups: vec!["Friends".into(), "Work & play".into()],
        };
        let mut bytes = Vec::new();
        item.encode(&mut bytes);
        assert_eq!(RosterItem::decode(&bytes), Some(item.clone()));
        assert_eq!(RosterItem::decode(&bytes[..bytes.len() - 1]), None);
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(RosterItem::decode(&newer), None, "unknown version refused");
        let mut xml = Vec::new();
        item.write_xml("bob@x", &mut xml);
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            "<item jid='bob@x' name='Bob &lt;the builder&gt;' subscription='to'>\
             <group>Friends</group><group>Work &amp; play</group></item>"
        );
    }

    #[test]
    fn subscription_values_and_ask() {
        let mut item = RosterItem::default();
        assert_eq!(item.subscription(), "none");
        assert!(item.is_void());
        item.from = true;
        assert_eq!(item.subscription(), "from");
        item.to = true;
        assert_eq!(item.subscription(), "both");
        let mut xml = Vec::new();
        let asking = RosterItem {
            ask_out: true,
            in_roster: true,
            ..RosterItem::default()
        };
        asking.write_xml("c@x", &mut xml);
        assert_eq!(
            xml,
            b"<item jid='c@x' subscription='none' ask='subscribe'/>"
        );
    }

    #[test]
    fn store_access_reads_one_owner_and_deletes_void_items() {
        let mut store = memory_store();
        let shown = RosterItem {
            in_roster: true,
            ..RosterItem::default()
        };
        let hidden = RosterItem {
            pending_in: true,
            ..RosterItem::default()
        };
        put(&mut store, "alice@x", "bob@x", &shown);
        put(&mut store, "alice@x", "carol@x", &hidden);
        put(&mut store, "alicex@x", "dave@x", &shown);
        let prefix = tables::prefix("alice@x");
        let contacts: Vec<&str> = items(&store, &prefix).map(|(c, _)| c).collect();
        assert_eq!(contacts, ["bob@x", "carol@x"]);
        assert_eq!(shown_count(&store, "alice@x"), 1);
        assert_eq!(get(&store, "alice@x", "carol@x"), Some(hidden));
        put(&mut store, "alice@x", "carol@x", &RosterItem::default());
        assert_eq!(get(&store, "alice@x", "carol@x"), None);
        assert_eq!(store.kv_len(tables::ROSTER), 2);
    }
}
