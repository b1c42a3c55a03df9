//! PEP nodes and their items in the home shard's store (table `tables::PEP_ITEMS`).
//!
//! What it does: the node configuration (access model, persistence, max items) and the items
//! of each node of one account, with their publish order; reads and writes of them.
//!
//! What it does not do: parse requests, check who may read, or notify (see `pubsub`).
//!
//! Layout: a node is key `owner \0 node` with a [`NodeConfig`]; an item is key
//! `owner \0 node \0 item-id` with `seq (u64 BE) ++ payload`, the payload byte-identical to the
//! element the publisher sent. Node names and item ids never contain NUL (XML cannot), so the
//! prefix `owner \0 node \0` holds exactly one node's items.
//!
//! Invariants: a node's item count never exceeds its `max_items` after a publish (the oldest
//! go first); a value that does not decode is treated as absent.

use rookery_store::Store;

use crate::tables;

/// Encoding version byte of a node's configuration.
const VERSION: u8 = 1;

/// Most items one node keeps (`pubsub#max_items` = `max` means this).
pub(crate) const MAX_ITEMS_PER_NODE: u32 = 256;

/// Who may read a node's items and get its notifications (XEP-0060 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Open,
    Presence,
    /// Only the owner (PEP has no way to add others to the list here).
    Whitelist,
}

impl Access {
    pub fn parse(value: &str) -> Option<Access> {
        match value {
            "open" => Some(Access::Open),
            "presence" => Some(Access::Presence),
            "whitelist" => Some(Access::Whitelist),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Access::Open => 0,
            Access::Presence => 1,
            Access::Whitelist => 2,
        }
    }

    fn from_code(code: u8) -> Option<Access> {
        match code {
            0 => Some(Access::Open),
            1 => Some(Access::Presence),
            2 => Some(Access::Whitelist),
            _ => None,
        }
    }
}

/// One node's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeConfig {
    pub access: Access,
    /// Items are kept (else only notified).
    pub persist: bool,
    /// 1..=MAX_ITEMS_PER_NODE.
    pub max_items: u32,
    /// The next item's publish sequence number.
    pub next_seq: u64,
}

impl Default for NodeConfig {
    /// XEP-0163 4: presence access; one item kept, as the common PEP servers do.
    fn default() -> NodeConfig {
        NodeConfig {
            access: Access::Presence,
            persist: true,
            max_items: 1,
            next_seq: 0,
        }
    }
}

impl NodeConfig {
    fn encode(&self) -> [u8; 15] {
        let mut out = [0u8; 15];
        out[0] = VERSION;
        out[1] = self.access.code();
        out[2] = u8::from(self.persist);
        out[3..7].copy_from_slice(&self.max_items.to_be_bytes());
        out[7..15].copy_from_slice(&self.next_seq.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<NodeConfig> {
        let bytes: &[u8; 15] = bytes.try_into().ok()?;
        if bytes[0] != VERSION {
            return None;
        }
        Some(NodeConfig {
            access: Access::from_code(bytes[1])?,
            persist: bytes[2] != 0,
            max_items: u32::from_be_bytes(bytes[3..7].try_into().ok()?),
            next_seq: u64::from_be_bytes(bytes[7..15].try_into().ok()?),
        })
    }
}

/// One stored item.
#[derive(Debug)]
pub(crate) struct Item<'a> {
    pub id: String,
    pub seq: u64,
    pub payload: &'a [u8],
}

fn items_prefix(owner: &str, node: &str) -> String {
    let mut prefix = tables::key(owner, node);
    prefix.push('\0');
    prefix
}

/// `owner`'s node `node`, if it exists.
pub(crate) fn node(store: &Store, owner: &str, node: &str) -> Option<NodeConfig> {
    let value = store.kv_get(tables::PEP_ITEMS, &tables::key(owner, node))?;
    NodeConfig::decode(value)
}

/// Creates or updates node `node`'s configuration.
pub(crate) fn put_node(store: &mut Store, owner: &str, node: &str, config: &NodeConfig) {
    // Keys are bounded by the JID and node name limits: far below the store's 64 KiB.
    let _ = store.kv_set(
        tables::PEP_ITEMS,
        &tables::key(owner, node),
        &config.encode(),
    );
}

/// The names of `owner`'s nodes with their configuration, in name order.
pub(crate) fn nodes<'a>(
    store: &'a Store,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, NodeConfig)> + 'a {
    store
        .kv_scan(tables::PEP_ITEMS, prefix)
        .filter_map(move |(key, value)| {
            let rest = tables::item(key, prefix);
            if rest.contains('\0') {
                return None;
            }
            Some((rest, NodeConfig::decode(value)?))
        })
}

/// The items of `owner`'s node `node`, oldest first.
pub(crate) fn items<'a>(store: &'a Store, owner: &str, node: &str) -> Vec<Item<'a>> {
    let prefix = items_prefix(owner, node);
    let keys: Vec<String> = store
        .kv_scan(tables::PEP_ITEMS, &prefix)
        .map(|(key, _)| key.to_owned())
        .collect();
    let mut items: Vec<Item<'a>> = keys
        .into_iter()
        .filter_map(|key| {
            let value = store.kv_get(tables::PEP_ITEMS, &key)?;
            let seq = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
            let id = key.get(prefix.len()..)?.to_owned();
            Some(Item {
                id,
                seq,
                payload: &value[8..],
            })
        })
        .collect();
    items.sort_by_key(|item| item.seq);
    items
}

/// Bytes of every stored item of `owner` (payloads and keys), for the per-account limit.
pub(crate) fn account_bytes(store: &Store, prefix: &str) -> usize {
    store
        .kv_scan(tables::PEP_ITEMS, prefix)
        .map(|(key, value)| key.len() + value.len())
        .sum()
}

/// Stores `payload` as item `id` of node `node` (replacing an item with the same id) and drops
/// the oldest items past the node's `max_items`. The node must exist.
pub(crate) fn put_item(
    store: &mut Store,
    (owner, node_name): (&str, &str),
    config: &mut NodeConfig,
    id: &str,
    payload: &[u8],
) {
    let seq = config.next_seq;
    config.next_seq += 1;
    put_node(store, owner, node_name, config);
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&seq.to_be_bytes());
    value.extend_from_slice(payload);
    let mut key = items_prefix(owner, node_name);
    key.push_str(id);
    // Bounded by the item limits (far below the store's record limit).
    let _ = store.kv_set(tables::PEP_ITEMS, &key, &value);
    trim(store, owner, node_name, config.max_items);
}

/// Removes item `id` of node `node`; whether it existed.
pub(crate) fn delete_item(store: &mut Store, owner: &str, node: &str, id: &str) -> bool {
    let mut key = items_prefix(owner, node);
    key.push_str(id);
    store.kv_delete(tables::PEP_ITEMS, &key)
}

/// Removes node `node` and its items; whether it existed.
pub(crate) fn delete_node(store: &mut Store, owner: &str, node_name: &str) -> bool {
    let prefix = items_prefix(owner, node_name);
    let keys: Vec<String> = store
        .kv_scan(tables::PEP_ITEMS, &prefix)
        .map(|(key, _)| key.to_owned())
        .collect();
    for key in keys {
        store.kv_delete(tables::PEP_ITEMS, &key);
    }
    store.kv_delete(tables::PEP_ITEMS, &tables::key(owner, node_name))
}

/// Drops every item beyond `max_items` (after a configuration shrank it).
pub(crate) fn trim(store: &mut Store, owner: &str, node_name: &str, max_items: u32) {
    let stale: Vec<String> = {
        let items = items(store, owner, node_name);
        let excess = items.len().saturating_sub(max_items as usize);
        items[..excess].iter().map(|item| item.id.clone()).collect()
    };
    for id in stale {
        delete_item(store, owner, node_name, &id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::memory_store;

    #[test]
    fn items_keep_order_and_the_newest_max() {
        let mut store = memory_store(0);
        let mut config = NodeConfig {
            max_items: 2,
            ..NodeConfig::default()
        };
        put_node(&mut store, "a@x", "n", &config);
        for id in ["one", "two", "three"] {
            put_item(&mut store, ("a@x", "n"), &mut config, id, id.as_bytes());
        }
        let ids: Vec<_> = items(&store, "a@x", "n")
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["two", "three"]);
        // Another node whose name extends this one's is not mixed in.
        put_node(&mut store, "a@x", "n2", &NodeConfig::default());
        let prefix = tables::prefix("a@x");
        let names: Vec<_> = nodes(&store, &prefix).map(|(n, _)| n).collect();
        assert_eq!(names, ["n", "n2"]);
        assert_eq!(node(&store, "a@x", "n"), Some(config));
        assert!(delete_node(&mut store, "a@x", "n"));
        assert!(items(&store, "a@x", "n").is_empty());
        assert_eq!(node(&store, "a@x", "n"), None);
    }
}
