//! XEP-0313 requests: a user's queries and preferences of its own archive (answered on its
//! home shard, where its sessions are), a room's archive queried at the room, and the
//! account's disco#info that advertises the archive.
//!
//! What it does not do: room preferences (`service-unavailable`), or ids (`feature-not-implemented`).
//!
//! Invariants: every request gets one iq answer, after its result messages; a page's
//! messages add up to at most a quarter of `--max-output-bytes` (a room's: `ROOM_PAGE_BYTES`).

use rookery_proto::element::Element;
use rookery_proto::{StanzaKind, StanzaView};

use super::form::{self, Bad};
use super::prefs::Prefs;
use super::results;
use super::MAM_NS;
use crate::effects::{Effects, StanzaType};
use crate::home::groups::muc::{Ctx, MucError, Refusal, Room};
use crate::replies::StanzaError;
use crate::router::Router;

/// Most bytes of result messages one room query writes (the querier's conn may be on another
/// shard, so its own output cap is not known here; well under the default cap).
const ROOM_PAGE_BYTES: usize = 64 * 1024;

/// The archive's part of the account's disco#info (XEP-0313 7.1: on the user's bare JID).
pub(crate) const ACCOUNT_FEATURES: &[u8] = b"<feature var='urn:xmpp:mam:2'/>";

/// The query form a client may fill (XEP-0313 4.1.1).
const QUERY_FORM: &[u8] = b"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'>\
<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
<field var='with' type='jid-single'/><field var='start' type='text-single'/>\
<field var='end' type='text-single'/><field var='before-id' type='text-single'/>\
<field var='after-id' type='text-single'/></x></query>";

fn stanza_error(bad: Bad) -> StanzaError {
    match bad {
        Bad::Request => StanzaError::BadRequest,
        Bad::UnknownId => StanzaError::ItemNotFound,
        Bad::Unsupported => StanzaError::FeatureNotImplemented,
    }
}

/// The archive element of an iq: `<query/>` or `<prefs/>` in the MAM namespace.
fn mam_child<'a>(view: &StanzaView<'a>) -> Option<(&'a str, &'a [u8])> {
    view.children()
        .find(|c| c.xmlns == Some(MAM_NS) && matches!(c.local_name, "query" | "prefs"))
        .map(|c| (c.local_name, c.bytes))
}

impl Router {
    /// A XEP-0313 request to the sender's own account; false when the iq is not one.
    pub(crate) fn mam_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) -> bool {
        let Some((name, bytes)) = mam_child(view) else {
            return false;
        };
        if self.home.mam.is_none() {
            self.reply_error(slot, view, None, StanzaError::ServiceUnavailable, fx);
            return true;
        }
        let Ok(element) = Element::parse(bytes) else {
            self.reply_error(slot, view, None, StanzaError::BadRequest, fx);
            return true;
        };
        let Some(user) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return true;
        };
        let answer = match (name, ty) {
            ("query", StanzaType::Get) => Ok(QUERY_FORM.to_vec()),
            ("query", _) => self.mam_query(slot, user.as_str(), &element, fx),
            ("prefs", StanzaType::Get) => {
                let mut out = Vec::new();
                Prefs::load(&self.home.store, user.bare_str()).write(&mut out);
                Ok(out)
            }
            ("prefs", _) => set_prefs(&mut self.home.store, user.bare_str(), &element),
            _ => Err(StanzaError::BadRequest),
        };
        match answer {
            Ok(payload) => self.answer_result(slot, view, &payload, fx),
            Err(error) => self.reply_error(slot, view, None, error, fx),
        }
        true
    }

    /// Runs a query of the user's archive, writes the result messages; the `<fin/>`.
    fn mam_query(
        &mut self,
        slot: u32,
        user: &str,
        query: &Element<'_>,
        fx: &mut impl Effects,
    ) -> Result<Vec<u8>, StanzaError> {
        let request = form::parse(query).map_err(stanza_error)?;
        let Some(archiver) = self.home.mam.as_ref() else {
            return Err(StanzaError::ServiceUnavailable);
        };
        let owner = form::bare(user);
        let budget = self.home.max_output_bytes / 4;
        let answer = results::answer(&archiver.archive, owner, user, &request, budget)
            .map_err(|_| StanzaError::ResourceConstraint)?;
        for message in &answer.messages {
            self.home.send(slot, message, fx);
        }
        Ok(answer.fin)
    }
}

fn set_prefs(
    store: &mut rookery_store::Store,
    user: &str,
    element: &Element<'_>,
) -> Result<Vec<u8>, StanzaError> {
    let prefs = Prefs::parse(element).ok_or(StanzaError::NotAcceptable)?;
    prefs
        .save(store, user)
        .map_err(|_| StanzaError::ResourceConstraint)?;
    let mut out = Vec::new();
    prefs.write(&mut out);
    Ok(out)
}

/// A query of a room's archive, at the room: members only when the room is members-only.
pub(crate) fn room_iq(room: &Room, ctx: &mut Ctx<'_, '_>, element: Option<Element<'_>>) {
    let Some(query) = element.filter(|e| e.local_name() == "query") else {
        ctx.refuse(MucError::ServiceUnavailable);
        return;
    };
    if ctx.ty == StanzaType::Get {
        ctx.result(QUERY_FORM);
        return;
    }
    if !room.visible_to(ctx.from.bare_str()) {
        let text = "Only members may read this group's archive";
        ctx.refuse(Refusal::with_text(MucError::Forbidden, text));
        return;
    }
    let request = match form::parse(&query) {
        Ok(request) => request,
        Err(Bad::Request) => return ctx.refuse(MucError::BadRequest),
        Err(Bad::UnknownId) => return ctx.refuse(MucError::ItemNotFound),
        Err(Bad::Unsupported) => return ctx.refuse(MucError::FeatureNotImplemented),
    };
    let Some(archiver) = ctx.archive.as_deref() else {
        ctx.refuse(MucError::ServiceUnavailable);
        return;
    };
    let budget = ROOM_PAGE_BYTES;
    let owner = room.jid.bare_str();
    let to = ctx.from.as_str();
    let Ok(answer) = results::answer(&archiver.archive, owner, to, &request, budget) else {
        ctx.refuse(MucError::ResourceConstraint);
        return;
    };
    let querier = ctx.from.clone();
    for message in answer.messages {
        // Classified as a headline for routing: written to that session, never stored.
        ctx.send(&querier, StanzaKind::Message, StanzaType::Headline, message);
    }
    ctx.result(&answer.fin);
}
