//! XEP-0054 vCard-temp: an account's vCard, set by the account and served to anyone
//! (XEP-0153 avatar hashes are the clients' business: the server only stores and serves).
//!
//! What it does not do: check the vCard's fields or rewrite presence.
//!
//! Invariants: the vCard is stored and served byte-identical to the `<vCard/>` element the
//! owner set, bounded by [`MAX_VCARD_BYTES`]; only the owner sets it.

use rookery_store::Store;

use crate::effects::StanzaType;
use crate::replies::StanzaError;
use crate::tables;

pub(crate) const VCARD_NS: &str = "vcard-temp";

/// Largest vCard kept (an embedded photo included).
pub(crate) const MAX_VCARD_BYTES: usize = 256 * 1024;

const EMPTY: &[u8] = b"<vCard xmlns='vcard-temp'/>";

/// Answers a vCard get or set about account `owner`; `vcard` is the request's `<vCard/>`.
pub(crate) fn vcard_iq(
    store: &mut Store,
    (owner, is_owner): (&str, bool),
    vcard: &[u8],
    ty: StanzaType,
    out: &mut Vec<u8>,
) -> Result<(), StanzaError> {
    match ty {
        StanzaType::Get => {
            let stored = store.kv_get(tables::VCARD, owner);
            out.extend_from_slice(stored.unwrap_or(EMPTY));
            Ok(())
        }
        StanzaType::Set if !is_owner => Err(StanzaError::Forbidden),
        StanzaType::Set if vcard.len() > MAX_VCARD_BYTES => Err(StanzaError::NotAcceptable),
        StanzaType::Set => store
            .kv_set(tables::VCARD, owner, vcard)
            .map_err(|_| StanzaError::NotAcceptable),
        _ => Err(StanzaError::BadRequest),
    }
}
