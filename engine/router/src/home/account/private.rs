//! XEP-0049 private XML storage: an account keeps XML elements, one per element name and
//! namespace, that only it can read back.
//!
//! What it does not do: bookmarks conversion (XEP-0402 bookmarks live in PEP, see `pubsub`).
//!
//! Invariants: only the owner reads or writes; each element is stored byte-identical and
//! must declare its own namespace, which may not be a `jabber:` one (XEP-0049 3); an account
//! keeps at most [`MAX_ENTRIES`] elements of at most [`MAX_ELEMENT_BYTES`] each.

use rookery_proto::StanzaView;
use rookery_store::Store;

use crate::effects::StanzaType;
use crate::replies::StanzaError;
use crate::tables;

pub(crate) const PRIVATE_NS: &str = "jabber:iq:private";

/// Largest element kept.
pub(crate) const MAX_ELEMENT_BYTES: usize = 64 * 1024;
/// Most elements one account keeps.
pub(crate) const MAX_ENTRIES: usize = 32;

/// Answers a private storage get or set of `owner` (refused for anyone else); `query` is the
/// request's `<query/>`.
pub(crate) fn private_iq(
    store: &mut Store,
    (owner, is_owner): (&str, bool),
    query: &[u8],
    ty: StanzaType,
    out: &mut Vec<u8>,
) -> Result<(), StanzaError> {
    if !is_owner {
        // XEP-0049 3: another account's storage is forbidden.
        return Err(StanzaError::Forbidden);
    }
    let query = StanzaView::parse(query).map_err(|_| StanzaError::BadRequest)?;
    let mut elements = Vec::new();
    for child in query.children() {
        let Some(ns) = child.xmlns else {
            return Err(StanzaError::BadRequest);
        };
        if ns.starts_with("jabber:") {
            return Err(StanzaError::NotAcceptable);
        }
        elements.push((
            tables::key(owner, &format!("{} {ns}", child.local_name)),
            child.bytes,
        ));
    }
    match ty {
        StanzaType::Get => {
            let [(key, asked)] = &elements[..] else {
                return Err(StanzaError::BadRequest);
            };
            out.extend_from_slice(b"<query xmlns='jabber:iq:private'>");
            out.extend_from_slice(store.kv_get(tables::PRIVATE, key).unwrap_or(asked));
            out.extend_from_slice(b"</query>");
            Ok(())
        }
        StanzaType::Set => {
            if elements.is_empty() {
                return Err(StanzaError::BadRequest);
            }
            if elements.iter().any(|(_, e)| e.len() > MAX_ELEMENT_BYTES) {
                return Err(StanzaError::NotAcceptable);
            }
            let prefix = tables::prefix(owner);
            let kept = store.kv_scan(tables::PRIVATE, &prefix);
            let new = elements
                .iter()
                .filter(|(key, _)| store.kv_get(tables::PRIVATE, key).is_none())
                .count();
            if kept.count() + new > MAX_ENTRIES {
                return Err(StanzaError::ResourceConstraint);
            }
            for (key, element) in elements {
                store
                    .kv_set(tables::PRIVATE, &key, element)
                    .map_err(|_| StanzaError::NotAcceptable)?;
            }
            Ok(())
        }
        _ => Err(StanzaError::BadRequest),
    }
}
