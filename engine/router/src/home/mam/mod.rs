//! XEP-0313 Message Archive Management on the home shard: what is archived and how it is
//! marked (XEP-0359 `<stanza-id/>`), queries of a user's or a room's archive, the user's
//! archiving preferences, and a room's history for a joiner (XEP-0045 7.2.15).
//!
//! Archived: one-to-one chat and normal messages with a `<body/>`, in the sender's archive
//! (on the sender's home shard, `Home::archive_outgoing`) and the recipient's (on the
//! recipient's home shard, `Home::archive_incoming`, which also adds the stanza-id the
//! recipient gets); groupchat messages with a body in the room's archive (by = the room).
//! The archive itself (segment files, retention, paging) is `rookery_store::archive`.
//!
//! Modules: `form` (the query's form and RSM, XEP-0082 times), `results` (result messages
//! and `<fin/>`), `iq` (queries and prefs of a user's own archive), `prefs` (table 12),
//! `history` (room history on join).
//!
//! What it does not do: archive headlines, errors, bodiless messages (chat states, receipts)
//! or carbons; fsync archive writes (see `rookery_store::archive`); count a query's whole
//! result set (`<count/>` is left out, which RSM allows).
//!
//! Invariants: an archive write that fails is counted (`Archive::stats`) and never blocks or
//! drops the delivery; a stanza-id `by` our own JID that arrives from outside is removed
//! before ours is added (XEP-0359 4), so a client can trust it.

pub(crate) mod form;
pub(crate) mod history;
pub(crate) mod iq;
pub(crate) mod prefs;
pub(crate) mod results;

use rookery_proto::{ns, Jid, StanzaView};
use rookery_store::archive::{Archive, ArchiveConfig, Direction};

use crate::effects::StanzaType;
use crate::home::routing::Envelope;
use crate::home::Home;

pub(crate) const MAM_NS: &str = "urn:xmpp:mam:2";
pub(crate) const SID_NS: &str = "urn:xmpp:sid:0";

/// One shard's archive and the wall clock it stamps with (set by the caller before use).
#[derive(Debug)]
pub(crate) struct Archiver {
    pub archive: Archive,
    pub wall_ms: u64,
}

impl Archiver {
    /// The archive of shard `shard` under `config` (its directory gets `shard-N`), or None
    /// when off; the error says why it did not open.
    pub fn open(config: Option<&ArchiveConfig>, shard: u16) -> (Option<Archiver>, Option<String>) {
        let Some(config) = config else {
            return (None, None);
        };
        let mut config = config.clone();
        config.dir = config.dir.map(|dir| dir.join(format!("shard-{shard}")));
        match Archive::open(config.clone()) {
            Ok(archive) => (
                Some(Archiver {
                    archive,
                    wall_ms: 0,
                }),
                None,
            ),
            Err(error) => {
                let dir = config.dir.unwrap_or_default();
                let why = format!(
                    "the message archive in {} did not open ({error}): check that the \
                     directory is writable, or start with --archive-days 0",
                    dir.display()
                );
                (None, Some(why))
            }
        }
    }

    /// Archives `stanza` for `owner` with XEP-0359 `<stanza-id by=owner/>` added; the marked
    /// stanza, or None when the write failed (counted by the archive).
    pub fn archive_marked(
        &mut self,
        owner: &str,
        with: &str,
        direction: Direction,
        stanza: &[u8],
    ) -> Option<Vec<u8>> {
        let id = self.archive.next_id();
        let mut marked = Vec::with_capacity(stanza.len() + 96);
        with_stanza_id(stanza, owner, id, &mut marked);
        let record = (id, self.wall_ms, direction);
        self.archive.append(record, owner, with, &marked).ok()?;
        Some(marked)
    }
}

/// Whether a message has a `<body/>` of the client namespace (what is archived).
pub(crate) fn has_body(view: &StanzaView<'_>) -> bool {
    view.children()
        .any(|c| c.local_name == "body" && matches!(c.xmlns, None | Some(ns::CLIENT)))
}

/// Copies `stanza` into `out` without any `<stanza-id/>` claiming to be `by` (XEP-0359 4),
/// with ours (`by`, `id`) as its last child. A stanza that does not parse is copied as is.
pub(crate) fn with_stanza_id(stanza: &[u8], by: &str, id: u64, out: &mut Vec<u8>) {
    let Ok(view) = StanzaView::parse(stanza) else {
        out.extend_from_slice(stanza);
        return;
    };
    let Some(end) = stanza.windows(2).rposition(|w| w == b"</") else {
        out.extend_from_slice(stanza);
        return;
    };
    let base = stanza.as_ptr() as usize;
    let mut copied = 0;
    for child in view.children() {
        if child.local_name != "stanza-id" || child.xmlns != Some(SID_NS) {
            continue;
        }
        let forged = rookery_proto::element::Element::parse(child.bytes)
            .is_ok_and(|e| e.attr("by").is_some_and(|b| b == by));
        if forged {
            let at = child.bytes.as_ptr() as usize - base;
            out.extend_from_slice(&stanza[copied..at]);
            copied = at + child.bytes.len();
        }
    }
    out.extend_from_slice(&stanza[copied..end]);
    out.extend_from_slice(b"<stanza-id xmlns='urn:xmpp:sid:0'");
    crate::replies::attr(out, "by", by);
    crate::replies::attr(out, "id", &id.to_string());
    out.extend_from_slice(b"/>");
    out.extend_from_slice(&stanza[end..]);
}

/// Whether a message of this type is archived (the body is checked apart).
fn archived_type(ty: StanzaType) -> bool {
    matches!(ty, StanzaType::Normal | StanzaType::Chat)
}

impl Home {
    /// Archives a message a local session sends to user `to`, in the sender's archive,
    /// when the sender's preferences say so.
    pub fn archive_outgoing(&mut self, from: &Jid, to: &Jid, ty: StanzaType, stanza: &[u8]) {
        let wall_ms = self.wall_ms();
        let Some(archiver) = self.mam.as_mut() else {
            return;
        };
        if !archived_type(ty) || !StanzaView::parse(stanza).is_ok_and(|v| has_body(&v)) {
            return;
        }
        if !prefs::wants(&self.store, from.bare_str(), to.bare_str()) {
            return;
        }
        archiver.wall_ms = wall_ms;
        let id = archiver.archive.next_id();
        let record = (id, archiver.wall_ms, Direction::Outgoing);
        // A failure is counted by the archive; the message goes on.
        let _ = archiver
            .archive
            .append(record, from.bare_str(), to.as_str(), stanza);
    }

    /// Archives a message arriving for a user homed here, when its type, body and the
    /// recipient's preferences say so; the stanza to deliver, marked with its stanza-id.
    pub fn archive_incoming(&mut self, envelope: &Envelope<'_>) -> Option<Vec<u8>> {
        if !archived_type(envelope.ty) {
            return None;
        }
        let wall_ms = self.wall_ms();
        let archiver = self.mam.as_mut()?;
        let view = StanzaView::parse(envelope.stanza).ok()?;
        if !has_body(&view) {
            return None;
        }
        let (owner, with) = (envelope.to.bare_str(), envelope.from.bare_str());
        if !prefs::wants(&self.store, owner, with) {
            return None;
        }
        archiver.wall_ms = wall_ms;
        let from = envelope.from.as_str();
        archiver.archive_marked(owner, from, Direction::Incoming, envelope.stanza)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(stanza: &str, by: &str) -> String {
        let mut out = Vec::new();
        with_stanza_id(stanza.as_bytes(), by, 7, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn stanza_id_is_added_and_forged_ones_removed() {
        assert_eq!(
            marked("<message><body>hi</body></message>", "a@x"),
            "<message><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='7'/></message>"
        );
        let forged = "<message><stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='1'/><body>hi</body>\
<stanza-id xmlns='urn:xmpp:sid:0' by='other@x' id='2'/></message>";
        assert_eq!(
            marked(forged, "a@x"),
            "<message><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='other@x' id='2'/>\
<stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='7'/></message>"
        );
    }
}
