//! Keyed tables: small durable records (rosters, groups, affiliations) beside the offline
//! queues, one sorted map per table number.
//!
//! What it does: set, get, delete and prefix scans on string keys, with the byte count of the
//! live Set records for compaction. Keys are sorted, so a caller that builds keys as
//! `owner + '\0' + item` reads all of one owner's items with one prefix scan.
//!
//! What it does not do: interpret values (the router encodes them) or I/O (the store appends
//! the records; replay and compaction feed this table).
//!
//! Invariants: a key is in at most one table entry; `live_record_bytes` is the sum of the
//! record lengths of the entries present (a replaced or deleted entry's record is dead).

use std::collections::BTreeMap;
use std::ops::Bound;

/// One live value and the size of the Set record that holds it.
#[derive(Debug)]
struct Entry {
    value: Box<[u8]>,
    record_len: u32,
}

/// Every keyed table of a shard.
#[derive(Debug, Default)]
pub(crate) struct KvTables {
    tables: BTreeMap<u8, BTreeMap<Box<str>, Entry>>,
    entries: usize,
    live_record_bytes: u64,
}

impl KvTables {
    /// Sets `key` in `table` to `value`, replacing what was there.
    pub(crate) fn set(&mut self, table: u8, key: &str, value: &[u8], record_len: u32) {
        let entry = Entry {
            value: value.into(),
            record_len,
        };
        let map = self.tables.entry(table).or_default();
        self.live_record_bytes += u64::from(record_len);
        match map.get_mut(key) {
            Some(old) => {
                self.live_record_bytes -= u64::from(old.record_len);
                *old = entry;
            }
            None => {
                map.insert(key.into(), entry);
                self.entries += 1;
            }
        }
    }

    /// Removes `key` from `table`; returns whether it was there.
    pub(crate) fn delete(&mut self, table: u8, key: &str) -> bool {
        let Some(map) = self.tables.get_mut(&table) else {
            return false;
        };
        let Some(old) = map.remove(key) else {
            return false;
        };
        self.live_record_bytes -= u64::from(old.record_len);
        self.entries -= 1;
        if map.is_empty() {
            self.tables.remove(&table);
        }
        true
    }

    pub(crate) fn get(&self, table: u8, key: &str) -> Option<&[u8]> {
        let entry = self.tables.get(&table)?.get(key)?;
        Some(&entry.value)
    }

    /// Entries of `table` whose key starts with `prefix`, in key order.
    pub(crate) fn scan<'a>(
        &'a self,
        table: u8,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let range = self.tables.get(&table).map(|map| {
            map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(move |(key, _)| key.starts_with(prefix))
                .map(|(key, entry)| (&**key, &*entry.value))
        });
        range.into_iter().flatten()
    }

    pub(crate) fn scan_after<'a>(
        &'a self,
        table: u8,
        prefix: &'a str,
        after: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let start = if after < prefix {
            Bound::Included(prefix)
        } else {
            Bound::Excluded(after)
        };
        let range = self.tables.get(&table).map(|map| {
            map.range::<str, _>((start, Bound::Unbounded))
                .take_while(move |(key, _)| key.starts_with(prefix))
                .map(|(key, entry)| (&**key, &*entry.value))
        });
        range.into_iter().flatten()
    }

    /// Every entry, table by table, for compaction.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u8, &str, &[u8])> {
        self.tables.iter().flat_map(|(&table, map)| {
            map.iter()
                .map(move |(key, entry)| (table, &**key, &*entry.value))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn table_len(&self, table: u8) -> usize {
        self.tables.get(&table).map_or(0, BTreeMap::len)
    }

    pub(crate) fn live_record_bytes(&self) -> u64 {
        self.live_record_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replace_delete_and_live_bytes() {
        let mut kv = KvTables::default();
        kv.set(1, "a\0b", b"x", 10);
        kv.set(1, "a\0c", b"y", 10);
        kv.set(2, "a\0b", b"z", 7);
        assert_eq!(kv.get(1, "a\0b"), Some(&b"x"[..]));
        assert_eq!(kv.get(2, "a\0b"), Some(&b"z"[..]));
        assert_eq!((kv.len(), kv.live_record_bytes()), (3, 27));
        kv.set(1, "a\0b", b"xx", 12);
        assert_eq!(kv.get(1, "a\0b"), Some(&b"xx"[..]));
        assert_eq!((kv.len(), kv.live_record_bytes()), (3, 29));
        assert!(kv.delete(1, "a\0c"));
        assert!(!kv.delete(1, "a\0c"));
        assert!(!kv.delete(9, "a\0c"));
        assert_eq!((kv.len(), kv.live_record_bytes()), (2, 19));
        assert_eq!(kv.table_len(1), 1);
        assert_eq!(kv.all().count(), 2);
    }

    #[test]
    fn prefix_scan_returns_one_owner_in_key_order() {
        let mut kv = KvTables::default();
        for key in ["bob\0z", "alice\0b", "alice\0a", "alicex\0q", "alic\0r"] {
            kv.set(1, key, key.as_bytes(), 1);
        }
        let keys: Vec<&str> = kv.scan(1, "alice\0").map(|(k, _)| k).collect();
        assert_eq!(keys, ["alice\0a", "alice\0b"]);
        assert_eq!(kv.scan(2, "alice\0").count(), 0);
        assert_eq!(kv.scan(1, "").count(), 5);
    }
}
