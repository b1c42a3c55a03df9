//! XEP-0077 in-band password change (section 3.3) for `--auth file` accounts: a logged-in user
//! sets a new password with `<query xmlns='jabber:iq:register'><username/><password/></query>`.
//!
//! Why here: the session lives on the user's home shard, which holds the credentials, so the
//! change is one store write on this shard. The new credentials (a fresh salt per hash from
//! the router's keyed generator, `DEFAULT_ITERATIONS` PBKDF2 rounds) are derived on the shard
//! thread: two PBKDF2 runs, a few milliseconds, once per change.
//!
//! What it does not do: registration of new accounts before login (`--allow-registration`:
//! `stream::register`) or cancellation (`<remove/>`: `feature-not-implemented`; `rookery accounts del`
//! does it offline). Other backends answer `service-unavailable` (XEP-0077: no in-band
//! registration here).
//!
//! Invariants: a user changes only their own password (another username: `not-authorized`);
//! the result is sent after the credentials are in the store's pending batch, durable at the
//! end of this turn's commit; the password is never stored or logged.

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid, StanzaView};
use rookery_sasl::{Credentials, DEFAULT_ITERATIONS};

use crate::accounts::{self, Check};
use crate::effects::{Effects, StanzaType};
use crate::random::SecureRandom;
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;

impl Router {
    /// An iq with a `jabber:iq:register` query from the session in `slot`.
    pub(crate) fn register_iq(
        &mut self,
        slot: u32,
        view: &StanzaView<'_>,
        ty: StanzaType,
        fx: &mut impl Effects,
    ) {
        let to = view.to();
        let error_from = to.as_deref();
        if self.sasl.check() != Check::Stored {
            return self.reply_error(slot, view, error_from, StanzaError::ServiceUnavailable, fx);
        }
        let Some(user) = self
            .conns
            .get(slot)
            .and_then(|c| c.jid.as_ref())
            .map(Jid::to_bare)
        else {
            return;
        };
        let local = user.local().unwrap_or_default().to_owned();
        let outcome = match ty {
            StanzaType::Get => Ok(registered_form(&local)),
            StanzaType::Set => self
                .change_password(&user, view.bytes())
                .map(|()| Vec::new()),
            _ => return,
        };
        match outcome {
            Ok(payload) => {
                let Some(conn) = self.conns.get(slot) else {
                    return;
                };
                let id = view.id();
                let reply = ReplyTo {
                    id: id.as_deref(),
                    from: error_from,
                    to: conn.jid.as_ref().map(Jid::as_str),
                };
                self.reply.clear();
                replies::iq_result(&mut self.reply, reply, &payload);
                self.home.send(slot, &self.reply, fx);
            }
            Err(error) => self.reply_error(slot, view, error_from, error, fx),
        }
    }

    /// Checks a password change request and stores the new credentials.
    fn change_password(&mut self, user: &Jid, iq: &[u8]) -> Result<(), StanzaError> {
        let iq = Element::parse(iq).map_err(|_| StanzaError::BadRequest)?;
        let (username, password) = register_fields(&iq, StanzaError::FeatureNotImplemented)?;
        let named = Jid::new(Some(username.trim()), user.domain(), None);
        if named.as_ref().ok() != Some(user) {
            return Err(StanzaError::NotAuthorized);
        }
        if password.is_empty() {
            return Err(StanzaError::BadRequest);
        }
        let credentials = fresh_credentials(&mut self.home.random, &password)?;
        accounts::set_credentials(&mut self.home.store, user, &credentials)
            .map_err(|_| StanzaError::ResourceConstraint)
    }
}

/// The `<username>` and `<password>` of a `jabber:iq:register` set (registration or password
/// change); `removal` is the answer to a `<remove/>`.
pub(crate) fn register_fields(
    iq: &Element,
    removal: StanzaError,
) -> Result<(String, String), StanzaError> {
    let query = iq
        .child("query", ns::REGISTER)
        .ok_or(StanzaError::BadRequest)?;
    if query.child("remove", ns::REGISTER).is_some() {
        return Err(removal);
    }
    let username = query.child("username", ns::REGISTER).map(|u| u.text());
    let password = query.child("password", ns::REGISTER).map(|p| p.text());
    match (username, password) {
        (Some(username), Some(password)) => Ok((username, password)),
        _ => Err(StanzaError::BadRequest),
    }
}

/// SCRAM credentials for `password` with fresh salts from the shard's generator.
pub(crate) fn fresh_credentials(
    random: &mut SecureRandom,
    password: &str,
) -> Result<Credentials, StanzaError> {
    let mut salts = [0u8; 32];
    random.fill(&mut salts);
    let (sha1_salt, sha256_salt) = salts.split_at(16);
    Credentials::derive(password, DEFAULT_ITERATIONS, sha1_salt, sha256_salt)
        .map_err(|_| StanzaError::NotAcceptable)
}

/// XEP-0077 3.3's answer to a get from a registered user.
fn registered_form(local: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"<query xmlns='jabber:iq:register'><registered/><username>");
    rookery_proto::writer::escape_text(local, &mut out);
    out.extend_from_slice(b"</username><password/></query>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_the_user_escaped() {
        assert_eq!(
            registered_form("a&b"),
            b"<query xmlns='jabber:iq:register'><registered/><username>a&amp;b</username>\
<password/></query>"
        );
    }
}
