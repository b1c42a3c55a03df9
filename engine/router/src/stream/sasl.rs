//! SASL on a conn (RFC 6120 6.4): `<auth>`, `<response>` and `<abort>`, for whichever
//! mechanism the account backend offers, through rookery-sasl's server exchange.
//!
//! The flow: `<auth mechanism=M>` starts a [`ServerExchange`] with the decoded initial
//! response; its steps are answered here: a challenge goes out (and the exchange waits in
//! [`Sasl`] for the `<response>`), a credentials request is answered by the [`Accounts`]
//! backend, success and failure end it. Failures count toward [`MAX_AUTH_FAILURES`], after
//! which the stream is closed with `policy-violation`.
//!
//! What it does not do: check passwords or keep accounts (`accounts`), parse SASL messages
//! (rookery-sasl), or restart the stream (the feed loop does, on `Next::Restart`). Server
//! nonces come from the home layer's keyed generator (`random`, keyed from the OS by the
//! server), never from the ids.
//!
//! Invariants: an exchange waits in `Sasl` only while its conn is in `Phase::AwaitResponse`
//! and is dropped when the conn authenticates, fails, aborts or goes away (`forget`), so the
//! table holds at most one per unauthenticated conn. A failure's reason (an unknown user, a
//! wrong password) goes to no peer: only the RFC 6120 condition does.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_proto::element::Element;
use rookery_proto::{ns, Jid};
use rookery_sasl::{nonce_from_random, Failure, Mechanism, ServerExchange, Step};

use crate::accounts::{self, Accounts, Check};
use crate::config::AuthBackend;
use crate::effects::{Effects, HomeRequest};
use crate::errors::StreamError;
use crate::location::ShardId;
use crate::maps::{HashState, Map};
use crate::replies;
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::tls::TLS_NS;
use crate::stream::Next;

/// Failed SASL attempts allowed before the stream is closed with `policy-violation`.
pub const MAX_AUTH_FAILURES: u8 = 3;

/// Random bytes in a server nonce (24 characters once encoded, as rookery-sasl's own).
const NONCE_RANDOM_BYTES: usize = 18;

/// The stream layer's SASL state: the account backend and the exchanges in progress.
#[derive(Debug)]
pub(crate) struct Sasl {
    accounts: Box<dyn Accounts>,
    /// Exchanges waiting for the client's `<response/>`, by slot.
    waiting: Map<u32, Box<ServerExchange>>,
}

impl Sasl {
    pub fn new(backend: &AuthBackend, hash: HashState) -> Sasl {
        Sasl {
            accounts: accounts::for_backend(backend),
            waiting: hash.map(),
        }
    }

    /// The mechanisms offered to a conn (`exposed`: from a non-loopback address in the clear;
    /// `binding`: under TLS with a tls-exporter value, so `-PLUS` may be offered).
    pub fn mechanisms(&self, exposed: bool, binding: bool) -> &'static [Mechanism] {
        self.accounts.mechanisms(exposed, binding)
    }

    /// How the account backend checks a proof.
    pub fn check(&self) -> Check {
        self.accounts.check()
    }

    /// The conn in `slot` went away or authenticated: drop its exchange, if any.
    pub fn forget(&mut self, slot: u32) {
        self.waiting.remove(&slot);
    }

    pub fn heap_bytes(&self) -> usize {
        self.waiting.capacity() * (std::mem::size_of::<(u32, Box<ServerExchange>)>() + 1)
            + self.waiting.len() * std::mem::size_of::<ServerExchange>()
    }
}

/// How an SASL element ends for the feed loop: a step to answer, a failure of its own, or
/// the user's credentials are on another shard (`dest`), where the exchange starts again.
enum Outcome {
    Step(Step),
    Failed(Failure),
    Elsewhere {
        user: Jid,
        dest: ShardId,
    },
    /// The user's home (and credentials) are on another node of the cluster.
    OtherNode(Jid),
}

impl Router {
    /// A first-level element before authentication: only SASL elements are allowed.
    pub(super) fn on_sasl(
        &mut self,
        slot: u32,
        phase: Phase,
        bytes: &[u8],
        fx: &mut impl Effects,
    ) -> Next {
        let Ok(element) = Element::parse(bytes) else {
            self.stream_error(slot, StreamError::NotWellFormed, fx);
            return Next::Stop;
        };
        if phase == Phase::AwaitAuth && element.ns() == Some(TLS_NS) {
            return self.on_starttls(slot, &element, fx);
        }
        if element.ns() != Some(ns::SASL) {
            self.stream_error(slot, StreamError::NotAuthorized, fx);
            return Next::Stop;
        }
        match (phase, element.local_name()) {
            (Phase::AwaitAuth, "auth") => {
                let protection = self.protection(slot, fx);
                if protection.mechanisms.is_empty() && protection.starttls == Some(true) {
                    // RFC 6120 5.3.1: TLS is mandatory-to-negotiate here.
                    return self.sasl_failure(slot, Failure::EncryptionRequired, fx);
                }
                let offered = protection.mechanisms;
                let Some(mechanism) = element
                    .attr("mechanism")
                    .and_then(Mechanism::from_name)
                    .filter(|m| offered.contains(m))
                else {
                    return self.sasl_failure(slot, Failure::InvalidMechanism, fx);
                };
                // RFC 6120 6.4.2: "=" is an initial response that is present and empty, which
                // no mechanism offered here accepts; no text at all asks for an empty challenge.
                match decode(&element.text()) {
                    Ok(Some(initial)) if initial.is_empty() => {
                        self.sasl_failure(slot, Failure::MalformedRequest, fx)
                    }
                    Ok(initial) => {
                        let initial = initial.unwrap_or_default();
                        self.authenticate_here(slot, mechanism, &initial, fx)
                    }
                    Err(failure) => self.sasl_failure(slot, failure, fx),
                }
            }
            (Phase::AwaitResponse, "response") => self.continue_exchange(slot, &element.text(), fx),
            (_, "abort") => {
                self.sasl.forget(slot);
                self.sasl_failure(slot, Failure::Aborted, fx)
            }
            _ => {
                self.stream_error(slot, StreamError::NotAuthorized, fx);
                Next::Stop
            }
        }
    }

    /// Starts an exchange of `mechanism` on this shard with the client's first message
    /// (empty: none yet). Also how a handed-off login continues on the user's home shard.
    pub(crate) fn authenticate_here(
        &mut self,
        slot: u32,
        mechanism: Mechanism,
        first: &[u8],
        fx: &mut impl Effects,
    ) -> Next {
        let mut random = [0u8; NONCE_RANDOM_BYTES];
        self.home.random.fill(&mut random);
        let nonce = nonce_from_random(&random);
        let binding = self.protection(slot, fx).binding;
        let (mut exchange, step) = ServerExchange::start(mechanism, binding, first, &nonce);
        let outcome = self.resolve(&mut exchange, step);
        self.park_if_challenged(slot, exchange, &outcome);
        self.finish_step(slot, (mechanism, first), outcome, fx)
    }

    fn continue_exchange(&mut self, slot: u32, text: &str, fx: &mut impl Effects) -> Next {
        let Some(mut exchange) = self.sasl.waiting.remove(&slot) else {
            return self.sasl_failure(slot, Failure::MalformedRequest, fx);
        };
        let response = match decode(text) {
            Ok(response) => response.unwrap_or_default(),
            Err(failure) => return self.sasl_failure(slot, failure, fx),
        };
        let step = exchange.respond(&response);
        let mechanism = exchange.mechanism();
        let outcome = self.resolve(&mut exchange, step);
        self.park_if_challenged(slot, *exchange, &outcome);
        self.finish_step(slot, (mechanism, &response), outcome, fx)
    }

    /// Answers an outcome; `message` is what produced it (mechanism, decoded client message),
    /// carried to the user's home shard when the credentials are there.
    fn finish_step(
        &mut self,
        slot: u32,
        (mechanism, message): (Mechanism, &[u8]),
        outcome: Outcome,
        fx: &mut impl Effects,
    ) -> Next {
        match outcome {
            Outcome::Step(step) => self.answer(slot, step, fx),
            Outcome::Failed(failure) => self.sasl_failure(slot, failure, fx),
            Outcome::OtherNode(user) => {
                self.sasl.forget(slot);
                if let Some(conn) = self.conns.get_mut(slot) {
                    conn.jid = Some(user);
                }
                if self.redirect_if_elsewhere(slot, false, fx) {
                    Next::Stop
                } else {
                    self.sasl_failure(slot, Failure::TemporaryAuthFailure, fx)
                }
            }
            Outcome::Elsewhere { user, dest } => {
                let failures = self.conns.get(slot).map_or(0, |c| c.auth_failures);
                Next::HandOff {
                    dest,
                    request: HomeRequest::Authenticate {
                        mechanism,
                        first: message.to_vec(),
                        failures,
                    },
                    claimed: Some(user),
                }
            }
        }
    }

    /// An exchange that sent a challenge waits for the `<response/>`; any other is over.
    fn park_if_challenged(&mut self, slot: u32, exchange: ServerExchange, outcome: &Outcome) {
        if matches!(outcome, Outcome::Step(Step::Challenge(_))) {
            self.sasl.waiting.insert(slot, Box::new(exchange));
        }
    }

    /// Answers a credentials request from the account backend; other steps pass through.
    fn resolve(&self, exchange: &mut ServerExchange, step: Step) -> Outcome {
        let Step::NeedCredentials { authcid, authzid } = step else {
            return Outcome::Step(step);
        };
        let domain = self.home.domain.domain();
        // A username that is no JID local part can name no account.
        let Ok(user) = Jid::new(Some(authcid.as_str()), domain, None) else {
            return Outcome::Failed(Failure::NotAuthorized);
        };
        // XMPP's authzid is a JID (RFC 6120 6.3.8): it must be the user's own bare JID.
        if authzid.is_some_and(|authzid| Jid::parse(&authzid).map_or(true, |id| id != user)) {
            return Outcome::Failed(Failure::InvalidAuthzid);
        }
        let accounts = &self.sasl.accounts;
        match accounts.check() {
            Check::Password => Outcome::Step(
                exchange.check_password(|password| accounts.check_password(&user, password)),
            ),
            Check::Stored => {
                let home = self.home.placement.home(&user);
                if home == self.home.location {
                    let stored = accounts::credentials(&self.home.store, &user);
                    Outcome::Step(exchange.credentials(stored.as_ref()))
                } else if home.node == self.home.location.node {
                    Outcome::Elsewhere {
                        user,
                        dest: home.shard,
                    }
                } else {
                    // Credentials on another node: the client is sent there (see-other-host)
                    // before it authenticates, as it would be after.
                    Outcome::OtherNode(user)
                }
            }
        }
    }

    fn answer(&mut self, slot: u32, step: Step, fx: &mut impl Effects) -> Next {
        match step {
            Step::Challenge(challenge) => self.send_challenge(slot, &challenge, fx),
            Step::Success {
                authcid,
                additional_data,
            } => {
                self.sasl.forget(slot);
                match Jid::new(Some(authcid.as_str()), self.home.domain.domain(), None) {
                    Ok(jid) => self.sasl_success(slot, jid, &additional_data, fx),
                    Err(_) => self.sasl_failure(slot, Failure::NotAuthorized, fx),
                }
            }
            Step::Failure(failure) => self.sasl_failure(slot, failure, fx),
            // `step` answers every credentials request before we get here.
            Step::NeedCredentials { .. } => {
                self.sasl_failure(slot, Failure::TemporaryAuthFailure, fx)
            }
        }
    }

    fn send_challenge(&mut self, slot: u32, challenge: &[u8], fx: &mut impl Effects) -> Next {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        if challenge.is_empty() {
            fx.send(conn.key, replies::SASL_CHALLENGE_EMPTY);
        } else {
            self.reply.clear();
            sasl_element(&mut self.reply, "challenge", challenge);
            fx.send(conn.key, &self.reply);
        }
        conn.phase = Phase::AwaitResponse;
        Next::Continue
    }

    fn sasl_success(&mut self, slot: u32, jid: Jid, data: &[u8], fx: &mut impl Effects) -> Next {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        if data.is_empty() {
            fx.send(conn.key, replies::SASL_SUCCESS);
        } else {
            self.reply.clear();
            sasl_element(&mut self.reply, "success", data);
            fx.send(conn.key, &self.reply);
        }
        conn.jid = Some(jid);
        conn.phase = Phase::AwaitRestart;
        conn.header_sent = false;
        self.unauth.release(slot);
        Next::Restart
    }

    fn sasl_failure(&mut self, slot: u32, failure: Failure, fx: &mut impl Effects) -> Next {
        self.sasl.forget(slot);
        let Some(conn) = self.conns.get_mut(slot) else {
            return Next::Stop;
        };
        self.reply.clear();
        replies::sasl_failure(&mut self.reply, failure.condition());
        fx.send(conn.key, &self.reply);
        conn.phase = Phase::AwaitAuth;
        conn.auth_failures = conn.auth_failures.saturating_add(1);
        self.home.stats.auth_failures += 1;
        if conn.auth_failures >= MAX_AUTH_FAILURES {
            self.stream_error(slot, StreamError::PolicyViolation, fx);
            return Next::Stop;
        }
        Next::Continue
    }
}

/// The base64 text of `<auth>` or `<response>`: `None` when there is none, `Some(empty)` for
/// `=` (RFC 6120 6.4.2), else the decoded bytes.
fn decode(text: &str) -> Result<Option<Vec<u8>>, Failure> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    match text {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        _ => STANDARD
            .decode(text)
            .map(Some)
            .map_err(|_| Failure::IncorrectEncoding),
    }
}

/// `<name xmlns='…sasl'>base64(data)</name>`.
fn sasl_element(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(b"<");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" xmlns='");
    out.extend_from_slice(ns::SASL.as_bytes());
    out.extend_from_slice(b"'>");
    out.extend_from_slice(STANDARD.encode(data).as_bytes());
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b">");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_as_rfc6120_says() {
        assert_eq!(decode(""), Ok(None));
        assert_eq!(decode(" \n"), Ok(None));
        assert_eq!(decode("="), Ok(Some(Vec::new())));
        assert_eq!(decode("AGEAYg=="), Ok(Some(b"\0a\0b".to_vec())));
        assert_eq!(decode("!!!"), Err(Failure::IncorrectEncoding));
    }

    #[test]
    fn elements_carry_base64() {
        let mut out = Vec::new();
        sasl_element(&mut out, "success", b"v=abc");
        assert_eq!(
            out,
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1hYmM=</success>"
        );
    }
}
