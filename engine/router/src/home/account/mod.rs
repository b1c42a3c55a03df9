//! What the server keeps and answers on behalf of an account (its bare JID): XEP-0163 PEP
//! (`pubsub`, stored by `nodes`; XEP-0084 avatars, XEP-0172 nicknames, OMEMO device lists and
//! bundles and XEP-0402 bookmarks are PEP nodes), XEP-0054 vCard-temp (`vcard`), XEP-0049
//! private storage (`private`), XEP-0012 last activity (`last`) and XEP-0030 disco of the
//! account.
//!
//! Two ways in: the owner's own iq (to its bare JID, or without `to` for pubsub, vCard and
//! private storage: `Router::own_account_iq`), and anyone's iq to the bare JID, answered on
//! the account's home shard where it arrives (`Home::answer_for_account`, called by
//! routing's iq delivery; the answer is routed back like any stanza, to any shard).
//!
//! What it does not do: answer iqs to full JIDs (the client does) or to the domain (see
//! `local`, except jabber:iq:last: the server's uptime).
//!
//! Invariants: every request this module claims gets exactly one answer; everything stored
//! is bounded per account (see each submodule).

use rookery_proto::{ns, Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::presence::roster;
use crate::home::routing::Envelope;
use crate::home::Home;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::conn::ConnSlab;

pub(crate) mod last;
pub(crate) mod nodes;
pub(crate) mod private;
pub(crate) mod pubsub;
pub(crate) mod vcard;

use last::LAST_NS;
use private::PRIVATE_NS;
use pubsub::{Parties, PUBSUB, PUBSUB_OWNER};
use vcard::VCARD_NS;

/// Features of the account besides PEP's, in its disco#info.
const ACCOUNT_FEATURES: &[&str] = &[LAST_NS];

impl Home {
    /// Answers an iq get/set to account `parties.owner` in this module's namespaces, the result
    /// payload appended to `out`; None when the iq is not one of them. `addressed`: the iq
    /// named the bare JID (disco and last activity are the account's only then; without a
    /// `to` they are the server's).
    pub(crate) fn account_iq(
        &mut self,
        conns: &ConnSlab,
        (parties, addressed): (Parties<'_>, bool),
        view: &StanzaView<'_>,
        ty: StanzaType,
        out: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) -> Option<Result<(), StanzaError>> {
        let child = view.children().next()?;
        let owner = parties.owner.bare_str();
        let mine = (owner, parties.is_owner());
        let get = ty == StanzaType::Get;
        let answer = match (child.local_name, child.xmlns?) {
            ("pubsub", PUBSUB) => self.pubsub_iq(conns, parties, (child.bytes, false, ty), out, fx),
            ("pubsub", PUBSUB_OWNER) => {
                self.pubsub_iq(conns, parties, (child.bytes, true, ty), out, fx)
            }
            ("vCard", VCARD_NS) => vcard::vcard_iq(&mut self.store, mine, child.bytes, ty, out),
            ("query", PRIVATE_NS) => {
                private::private_iq(&mut self.store, mine, child.bytes, ty, out)
            }
            ("query", LAST_NS) if addressed && !get => Err(StanzaError::BadRequest),
            ("query", LAST_NS) if addressed => self.last_activity(parties, out),
            ("query", ns::DISCO_INFO | ns::DISCO_ITEMS) if addressed && !get => {
                Err(StanzaError::BadRequest)
            }
            ("query", ns::DISCO_INFO) if addressed => {
                let node = StanzaView::parse(child.bytes).ok()?.attr("node");
                self.account_disco_info(parties, node.as_deref(), ACCOUNT_FEATURES, out)
            }
            ("query", ns::DISCO_ITEMS) if addressed => {
                let node = StanzaView::parse(child.bytes).ok()?.attr("node");
                self.account_disco_items(parties, node.as_deref(), out)
            }
            _ => return None,
        };
        Some(answer)
    }

    /// XEP-0012 about the account, for its owner or a contact subscribed to its presence.
    fn last_activity(&self, parties: Parties<'_>, out: &mut Vec<u8>) -> Result<(), StanzaError> {
        let owner = parties.owner.bare_str();
        let subscribed =
            || roster::get(&self.store, owner, parties.from.bare_str()).is_some_and(|i| i.from);
        if !parties.is_owner() && !subscribed() {
            return Err(StanzaError::Forbidden);
        }
        let online = self.directory.slot_at(owner, 0).is_some();
        let now_s = self.wall_ms() / 1000;
        last::account_last(&self.store, (owner, online), now_s, out)
    }

    /// An iq get/set from another user to the bare JID of an account homed here: answered here
    /// (and the answer routed back) when this module serves its namespace; false otherwise.
    pub(crate) fn answer_for_account(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        fx: &mut impl Effects,
    ) -> bool {
        if !envelope.ty.is_request() || !envelope.to.is_bare() {
            return false;
        }
        let Ok(view) = StanzaView::parse(envelope.stanza) else {
            return false;
        };
        let parties = Parties {
            from: envelope.from,
            owner: envelope.to,
        };
        let mut payload = Vec::new();
        let asked = (parties, true);
        let Some(answer) = self.account_iq(conns, asked, &view, envelope.ty, &mut payload, fx)
        else {
            return false;
        };
        let id = view.id();
        let reply_to = ReplyTo {
            id: id.as_deref(),
            from: Some(envelope.to.as_str()),
            to: Some(envelope.from.as_str()),
        };
        let mut reply = Vec::with_capacity(payload.len() + 128);
        let ty = match answer {
            Ok(()) => {
                replies::iq_result(&mut reply, reply_to, &payload);
                StanzaType::Result
            }
            Err(error) => {
                replies::stanza_error(&mut reply, "iq", reply_to, error);
                StanzaType::Error
            }
        };
        let back = Envelope {
            to: envelope.from,
            from: envelope.to,
            kind: StanzaKind::Iq,
            ty,
            stanza: &reply,
        };
        self.route(conns, &back, None, fx);
        true
    }

    /// A session of `full` left: with none left, its logout time is kept for XEP-0012.
    pub(crate) fn note_session_end(&mut self, full: &Jid) {
        if self.directory.slot_at(full.bare_str(), 0).is_none() {
            let now_s = self.wall_ms() / 1000;
            last::note_logout(&mut self.store, full.bare_str(), now_s);
        }
    }
}

impl Router {
    /// An iq get/set of a session to its own account (`account`: to its bare JID; or without
    /// `to` for pubsub, vCard and private storage), or jabber:iq:last to the server (its
    /// uptime). Returns whether it was answered here.
    pub(crate) fn own_account_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        account: bool,
        fx: &mut impl Effects,
    ) -> bool {
        let Some(full) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return false;
        };
        let to = view.to();
        let mut payload = Vec::new();
        let answer = if !account && view.has_child("query", LAST_NS) {
            if ty == StanzaType::Get {
                // The clock starts with the server.
                last::last_result(self.home.now_ms / 1000, &mut payload);
                Some(Ok(()))
            } else {
                Some(Err(StanzaError::BadRequest))
            }
        } else if account || to.is_none() {
            let owner = full.to_bare();
            let parties = Parties {
                from: &full,
                owner: &owner,
            };
            let asked = (parties, account);
            self.home
                .account_iq(&self.conns, asked, view, ty, &mut payload, fx)
        } else {
            None
        };
        let Some(answer) = answer else {
            return false;
        };
        match answer {
            Ok(()) => {
                let id = view.id();
                let reply = ReplyTo {
                    id: id.as_deref(),
                    from: to.as_deref(),
                    to: Some(full.as_str()),
                };
                self.reply.clear();
                replies::iq_result(&mut self.reply, reply, &payload);
                self.home.send(slot, &self.reply, fx);
            }
            Err(error) => self.reply_error(slot, view, to.as_deref(), error, fx),
        }
        true
    }
}
