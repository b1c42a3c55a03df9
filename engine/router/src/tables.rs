//! The numbers of the router's keyed tables in the shard's store (`Store::kv_*`).
//!
//! Keys are strings; a per-owner table uses `owner + '\0' + item`, so one prefix scan reads
//! all of one owner's items (JIDs never contain NUL). Values are encoded by the module that
//! owns the table.

/// Roster items: key `user-bare \0 contact-bare`, value encoded by `roster`.
pub(crate) const ROSTER: u8 = 1;
/// Rooms: key `room-bare`, value encoded by `muc`.
pub(crate) const ROOMS: u8 = 2;
/// Room affiliations: key `room-bare \0 user-bare`, value encoded by `muc`.
pub(crate) const AFFILIATIONS: u8 = 3;

/// Account credentials (`--auth file`): key `user-bare`, value `rookery_sasl::Credentials`
/// in its encoded form (see `accounts`).
pub(crate) const ACCOUNTS: u8 = 4;

/// PEP nodes (key `user-bare \0 node`) and items (`user-bare \0 node \0 item-id`), values
/// encoded by `home::account::nodes`.
pub(crate) const PEP_ITEMS: u8 = 5;
/// XEP-0049 private storage: key `user-bare \0 element-name SP namespace`, value the element.
pub(crate) const PRIVATE: u8 = 6;
/// XEP-0054 vCards: key `user-bare`, value the `<vCard/>` element.
pub(crate) const VCARD: u8 = 7;
/// XEP-0012 last logout: key `user-bare`, value Unix seconds (u64 big-endian).
pub(crate) const LAST_ACTIVITY: u8 = 8;

/// XEP-0191 blocklists: key `user-bare \0 blocked-jid`, value encoded by `blocking`.
pub(crate) const BLOCKLIST: u8 = 9;

/// XEP-0357 push registrations: key `user-bare \0 app-server-jid \0 node`, value the
/// publish-options form as the client sent it (possibly empty; see `home::push`).
pub(crate) const PUSH: u8 = 11;

/// XEP-0313 archiving preferences: key `user-bare`, value encoded by `home::mam::prefs`.
pub(crate) const MAM_PREFS: u8 = 12;

/// `owner \0 item`.
pub(crate) fn key(owner: &str, item: &str) -> String {
    let mut key = String::with_capacity(owner.len() + 1 + item.len());
    key.push_str(owner);
    key.push('\0');
    key.push_str(item);
    key
}

/// The prefix of every key of `owner`.
pub(crate) fn prefix(owner: &str) -> String {
    let mut prefix = String::with_capacity(owner.len() + 1);
    prefix.push_str(owner);
    prefix.push('\0');
    prefix
}

/// The item part of a key under `prefix`.
pub(crate) fn item<'a>(key: &'a str, prefix: &str) -> &'a str {
    key.strip_prefix(prefix).unwrap_or(key)
}
