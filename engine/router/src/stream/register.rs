//! XEP-0077 in-band registration before authentication (`--allow-registration`, `--auth
//! file`): `<iq type='get'>` answers the form (username, password), `<iq type='set'>`
//! creates the account in its home shard's store.
//!
//! The flow: the stream layer sees a `jabber:iq:register` iq where it expects SASL. When
//! registration is not offered to this conn (off, another backend, in the clear off loopback,
//! TLS required first) the answer is `not-allowed`. A set is counted against the source
//! address in the failed-login throttle (a refusal past twice its budget closes the stream;
//! past it, `resource-constraint` without creating), so one address cannot make the shard
//! derive keys without bound. The credentials are derived here (two PBKDF2 runs,
//! `DEFAULT_ITERATIONS` rounds, fresh salts from the router's keyed generator): the password
//! goes no further. The account is created on the user's home shard: here, or after a hand-off
//! (`HomeRequest::Register`, as a login is handed for its credentials); a user homed on another
//! node is redirected there (see-other-host), where the client registers again.
//!
//! What it does not do: change passwords of logged-in users (`home::register`), cancel
//! accounts (`<remove/>` needs a login: `not-allowed` here), or log the client in (it
//! authenticates next, on the same stream, as XEP-0077 section 3.1 describes).
//!
//! Invariants: an existing account is never overwritten (`conflict`); the result goes out in
//! the turn whose commit makes the account durable, as for a password change; the password
//! is never stored, logged nor carried between shards.

use rookery_proto::element::Element;
use rookery_proto::Jid;
use rookery_sasl::Credentials;

use crate::accounts;
use crate::effects::{Effects, HomeRequest};
use crate::errors::StreamError;
use crate::home::register::{fresh_credentials, register_fields};
use crate::replies::{self, ReplyTo, StanzaError};
use crate::router::Router;
use crate::stream::throttle::Verdict;
use crate::stream::Next;

/// Longest password accepted (bytes): PBKDF2 cost does not depend on it, but a bound is a bound.
const MAX_PASSWORD_BYTES: usize = 1_024;

/// XEP-0077 3.1's form for a new account.
const FORM: &[u8] = b"<query xmlns='jabber:iq:register'><instructions>Choose a username and \
password.</instructions><username/><password/></query>";

impl Router {
    /// A `jabber:iq:register` iq before authentication.
    pub(super) fn on_register(&mut self, slot: u32, iq: &Element, fx: &mut impl Effects) -> Next {
        let id = iq.attr("id").unwrap_or_default().to_owned();
        if !self.protection(slot, fx).register {
            return self.register_answer(slot, &id, Err(StanzaError::NotAllowed), fx);
        }
        match iq.attr("type") {
            Some("get") => self.register_answer(slot, &id, Ok(FORM), fx),
            Some("set") => self.register_set(slot, &id, iq, fx),
            _ => self.register_answer(slot, &id, Err(StanzaError::BadRequest), fx),
        }
    }

    fn register_set(&mut self, slot: u32, id: &str, iq: &Element, fx: &mut impl Effects) -> Next {
        let address = self.unauth.address(slot);
        let now_ms = self.home.now_ms;
        if self.throttle.refused(now_ms, address, None) {
            return self.refuse_registration(slot, fx);
        }
        match self.throttle.attempted(address, now_ms) {
            Verdict::Refuse => return self.refuse_registration(slot, fx),
            Verdict::Delay => {
                self.home.stats.auth_refused += 1;
                return self.register_answer(slot, id, Err(StanzaError::ResourceConstraint), fx);
            }
            Verdict::Answer => {}
        }
        let (user, credentials) = match self.new_account(iq) {
            Ok(account) => account,
            Err(error) => return self.register_answer(slot, id, Err(error), fx),
        };
        let home = self.home.placement.home(&user);
        if home == self.home.location {
            let outcome = self.create_account(&user, &credentials);
            return self.register_answer(slot, id, outcome.map(|()| &[][..]), fx);
        }
        if home.node != self.home.location.node {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.jid = Some(user);
            }
            if self.redirect_if_elsewhere(slot, false, fx) {
                return Next::Stop;
            }
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.jid = None;
            }
            return self.register_answer(slot, id, Err(StanzaError::ServiceUnavailable), fx);
        }
        let failures = self.conns.get(slot).map_or(0, |c| c.auth_failures);
        Next::HandOff {
            dest: home.shard,
            request: HomeRequest::Register {
                id: id.into(),
                credentials: Box::new(credentials),
                failures,
                peer: address,
            },
            claimed: Some(user),
        }
    }

    /// The user and credentials a set asks for, or the error to answer.
    fn new_account(&mut self, iq: &Element) -> Result<(Jid, Credentials), StanzaError> {
        let (username, password) = register_fields(iq, StanzaError::NotAllowed)?;
        let user = Jid::new(Some(username.trim()), self.home.domain.domain(), None)
            .map_err(|_| StanzaError::NotAcceptable)?;
        if username.trim().is_empty() || password.is_empty() || password.len() > MAX_PASSWORD_BYTES
        {
            return Err(StanzaError::NotAcceptable);
        }
        let credentials = fresh_credentials(&mut self.home.random, &password)?;
        Ok((user, credentials))
    }

    /// Creates `user` in this (its home) shard's store, unless it exists.
    fn create_account(&mut self, user: &Jid, credentials: &Credentials) -> Result<(), StanzaError> {
        if accounts::credentials(&self.home.store, user).is_some() {
            return Err(StanzaError::Conflict);
        }
        accounts::set_credentials(&mut self.home.store, user, credentials)
            .map_err(|_| StanzaError::ResourceConstraint)?;
        self.home.stats.registrations += 1;
        Ok(())
    }

    /// Completes a registration handed here (the user's home shard).
    pub(crate) fn register_here(
        &mut self,
        slot: u32,
        (id, user, credentials): (&str, &Jid, &Credentials),
        fx: &mut impl Effects,
    ) {
        let outcome = self.create_account(user, credentials);
        let _ = self.register_answer(slot, id, outcome.map(|()| &[][..]), fx);
    }

    fn register_answer(
        &mut self,
        slot: u32,
        id: &str,
        outcome: Result<&[u8], StanzaError>,
        fx: &mut impl Effects,
    ) -> Next {
        let Some(conn) = self.conns.get(slot) else {
            return Next::Stop;
        };
        let reply = ReplyTo {
            id: Some(id),
            from: None,
            to: None,
        };
        self.reply.clear();
        match outcome {
            Ok(payload) => replies::iq_result(&mut self.reply, reply, payload),
            Err(error) => replies::stanza_error(&mut self.reply, "iq", reply, error),
        }
        fx.send(conn.key, &self.reply);
        self.home.stats.stanzas_out += 1;
        Next::Continue
    }

    fn refuse_registration(&mut self, slot: u32, fx: &mut impl Effects) -> Next {
        self.home.stats.auth_refused += 1;
        self.stream_error(slot, StreamError::PolicyViolation, fx);
        Next::Stop
    }
}
