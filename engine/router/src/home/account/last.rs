//! XEP-0012 last activity: how long ago an account's last session ended, answered by the
//! server for a bare JID, and the server's uptime for the domain.
//!
//! What it does not do: idle time of a connected resource (the iq to a full JID goes to the
//! client) or the status text of the last unavailable presence.
//!
//! Invariants: the time is kept (table `tables::LAST_ACTIVITY`, Unix seconds, u64 BE) when an
//! account's last session leaves the directory; an online account answers 0; only the owner
//! and contacts subscribed to its presence may ask (XEP-0012 4: else forbidden).

use rookery_store::Store;

use crate::replies::StanzaError;
use crate::tables;

pub(crate) const LAST_NS: &str = "jabber:iq:last";

/// Records that `owner`'s last session ended at `unix_s`.
pub(crate) fn note_logout(store: &mut Store, owner: &str, unix_s: u64) {
    // A bare JID is far below the key limit.
    let _ = store.kv_set(tables::LAST_ACTIVITY, owner, &unix_s.to_be_bytes());
}

/// The seconds since `owner`'s last logout at `now_s`, if one is recorded.
pub(crate) fn seconds_since_logout(store: &Store, owner: &str, now_s: u64) -> Option<u64> {
    let value = store.kv_get(tables::LAST_ACTIVITY, owner)?;
    let at = u64::from_be_bytes(value.try_into().ok()?);
    Some(now_s.saturating_sub(at))
}

/// `<query xmlns='jabber:iq:last' seconds='N'/>`.
pub(crate) fn last_result(seconds: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<query xmlns='jabber:iq:last' seconds='");
    out.extend_from_slice(seconds.to_string().as_bytes());
    out.extend_from_slice(b"'/>");
}

/// The answer about account `owner` (`online`: it has a session), or why not.
pub(crate) fn account_last(
    store: &Store,
    (owner, online): (&str, bool),
    now_s: u64,
    out: &mut Vec<u8>,
) -> Result<(), StanzaError> {
    let seconds = if online {
        0
    } else {
        seconds_since_logout(store, owner, now_s).ok_or(StanzaError::ItemNotFound)?
    };
    last_result(seconds, out);
    Ok(())
}
