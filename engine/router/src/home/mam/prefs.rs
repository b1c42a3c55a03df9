//! XEP-0313 archiving preferences (section 6), one value per user in table `MAM_PREFS`:
//! the default (`always`, `never`, `roster`) and the `<always/>` and `<never/>` JID lists.
//!
//! Encoding: one byte for the default (0 always, 1 never, 2 roster), then one line per JID,
//! `a` or `n` then the bare JID then `\n`.
//!
//! What it does not do: match full JIDs (lists hold bare JIDs; a full JID in a set is kept as
//! its bare part).
//!
//! Invariants: a user without a stored value archives everything (`always`); each list holds
//! at most `MAX_PREF_JIDS` (a set past it is `not-acceptable`); `never` wins over `always`.

use rookery_proto::element::Element;
use rookery_store::Store;

use super::MAM_NS;
use crate::replies;
use crate::tables::{self, MAM_PREFS, ROSTER};

/// Most JIDs in each of the `always` and `never` lists.
pub(crate) const MAX_PREF_JIDS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Default {
    Always,
    Never,
    Roster,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prefs {
    pub default: Default,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

impl Prefs {
    fn everything() -> Prefs {
        Prefs {
            default: Default::Always,
            always: Vec::new(),
            never: Vec::new(),
        }
    }

    pub fn load(store: &Store, user: &str) -> Prefs {
        let Some(bytes) = store.kv_get(MAM_PREFS, user) else {
            return Prefs::everything();
        };
        let default = match bytes.first() {
            Some(1) => Default::Never,
            Some(2) => Default::Roster,
            _ => Default::Always,
        };
        let mut prefs = Prefs {
            default,
            ..Prefs::everything()
        };
        for line in String::from_utf8_lossy(bytes.get(1..).unwrap_or_default()).lines() {
            match line.split_at_checked(1) {
                Some(("a", jid)) => prefs.always.push(jid.to_owned()),
                Some(("n", jid)) => prefs.never.push(jid.to_owned()),
                _ => {}
            }
        }
        prefs
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![match self.default {
            Default::Always => 0,
            Default::Never => 1,
            Default::Roster => 2,
        }];
        for (tag, list) in [("a", &self.always), ("n", &self.never)] {
            for jid in list {
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(jid.as_bytes());
                out.push(b'\n');
            }
        }
        out
    }

    /// Stores the preferences of `user` (deleted when they are the default).
    pub fn save(&self, store: &mut Store, user: &str) -> Result<(), rookery_store::StoreError> {
        if *self == Prefs::everything() {
            store.kv_delete(MAM_PREFS, user);
            return Ok(());
        }
        store.kv_set(MAM_PREFS, user, &self.encode())
    }

    /// Parses a `<prefs/>` element; None when it is not one we accept (bad default, a list
    /// past `MAX_PREF_JIDS`).
    pub fn parse(prefs: &Element<'_>) -> Option<Prefs> {
        let default = match prefs.attr("default")? {
            "always" => Default::Always,
            "never" => Default::Never,
            "roster" => Default::Roster,
            _ => return None,
        };
        let list = |name: &str| -> Option<Vec<String>> {
            let Some(list) = prefs.child(name, MAM_NS) else {
                return Some(Vec::new());
            };
            let jids: Vec<String> = list
                .children()
                .filter(|c| c.local_name() == "jid")
                .map(|c| super::form::bare(c.text().trim()).to_owned())
                .collect();
            (jids.len() <= MAX_PREF_JIDS).then_some(jids)
        };
        Some(Prefs {
            default,
            always: list("always")?,
            never: list("never")?,
        })
    }

    /// The `<prefs/>` element of an answer.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<prefs xmlns='urn:xmpp:mam:2'");
        let default = match self.default {
            Default::Always => "always",
            Default::Never => "never",
            Default::Roster => "roster",
        };
        replies::attr(out, "default", default);
        out.push(b'>');
        for (name, list) in [("always", &self.always), ("never", &self.never)] {
            out.extend_from_slice(format!("<{name}>").as_bytes());
            for jid in list {
                out.extend_from_slice(b"<jid>");
                rookery_proto::writer::escape_text(jid, out);
                out.extend_from_slice(b"</jid>");
            }
            out.extend_from_slice(format!("</{name}>").as_bytes());
        }
        out.extend_from_slice(b"</prefs>");
    }
}

/// Whether `user` archives messages with `contact` (bare JIDs).
pub(crate) fn wants(store: &Store, user: &str, contact: &str) -> bool {
    if store.kv_get(MAM_PREFS, user).is_none() {
        return true;
    }
    let prefs = Prefs::load(store, user);
    if prefs.never.iter().any(|j| j == contact) {
        return false;
    }
    if prefs.always.iter().any(|j| j == contact) {
        return true;
    }
    match prefs.default {
        Default::Always => true,
        Default::Never => false,
        Default::Roster => store.kv_get(ROSTER, &tables::key(user, contact)).is_some(),
    }
}
