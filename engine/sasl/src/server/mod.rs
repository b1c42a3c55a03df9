//! The server side of one SASL exchange, as a state machine fed the peer's messages and the
//! caller's credential lookup, returning [`Step`]s.
//!
//! The flow: [`ServerExchange::start`] with the `<auth>` payload (already base64-decoded by
//! the stream layer; empty when the client sent none, answered with an empty challenge);
//! [`Step::NeedCredentials`] asks the caller to look the user up and answer with
//! [`ServerExchange::credentials`]; SCRAM then sends its challenge and takes the client's
//! final message in [`ServerExchange::respond`]; the end is `Success` or `Failure`.
//!
//! An unknown user (`credentials(None)`) gets a challenge made from decoy credentials
//! (salt keyed by this exchange's nonce, [`DEFAULT_ITERATIONS`](crate::DEFAULT_ITERATIONS))
//! and fails only at the end, as `not-authorized`, after the same computation as a wrong
//! password: one attempt cannot tell an unknown user from a wrong password. Across attempts
//! the decoy salt changes while a real user's does not; answer with
//! [`Credentials::decoy`](crate::Credentials::decoy) (keyed by a server secret, with the
//! real users' iteration count) to hide that too.
//!
//! What it does not do: base64 of the XMPP payload, `<abort/>`, counting failures per stream,
//! refusing PLAIN without TLS, or enforcing an iteration floor on stored credentials: the
//! stream layer's policy. The authcid it returns is SASLprep'd, not yet mapped to a JID.
//!
//! Invariants: after a `Success` or `Failure` every call returns `Failure`; each message is
//! at most [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES); nothing here panics on peer
//! input.

mod plain;
mod scram;

use crate::channel::ChannelBindingOffer;
use crate::credentials::Credentials;
use crate::failure::{reject, Failure, Reject};
use crate::mechanism::Mechanism;
use crate::prep;
use crate::MIN_NONCE_BYTES;

/// What the exchange wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this `<challenge/>` (possibly empty) and feed the reply to `respond`.
    Challenge(Vec<u8>),
    /// Look up `authcid` and answer with `credentials` (`None` for an unknown user).
    /// `authzid` is what the client asked to act as; the crate only accepts the authcid
    /// itself or `authcid@domain` (XMPP's bare JID form: the caller checks the domain), so it
    /// is one of those or `None`.
    NeedCredentials {
        authcid: String,
        authzid: Option<String>,
    },
    /// Authenticated as `authcid`; send `<success/>` carrying `additional_data` (SCRAM's
    /// server-final message, which the client must verify; empty for PLAIN).
    Success {
        authcid: String,
        additional_data: Vec<u8>,
    },
    /// Send `<failure/>` with this condition; the exchange is over.
    Failure(Failure),
}

/// One server-side SASL exchange.
#[derive(Debug)]
pub struct ServerExchange {
    mechanism: Mechanism,
    offer: ChannelBindingOffer,
    nonce: String,
    state: State,
    detail: Option<&'static str>,
}

#[derive(Debug)]
enum State {
    /// The client sent no initial response; an empty challenge went out.
    AwaitFirst,
    PlainCredentials(plain::Pending),
    ScramCredentials(scram::Pending),
    ScramFinal(scram::Challenged),
    Done,
}

impl ServerExchange {
    /// Starts an exchange for the mechanism the client chose.
    ///
    /// `offer` is what this stream advertised; `initial_response` the decoded `<auth>`
    /// payload (empty if none was sent); `nonce` this exchange's server nonce: at least
    /// [`MIN_NONCE_BYTES`] printable ASCII bytes without `,`, from
    /// [`fresh_nonce`](crate::fresh_nonce) or [`nonce_from_random`](crate::nonce_from_random).
    /// A bad nonce is a caller bug and fails the exchange with `temporary-auth-failure`.
    pub fn start(
        mechanism: Mechanism,
        offer: ChannelBindingOffer,
        initial_response: &[u8],
        nonce: &[u8],
    ) -> (ServerExchange, Step) {
        let mut exchange = ServerExchange {
            mechanism,
            offer,
            nonce: String::new(),
            state: State::Done,
            detail: None,
        };
        let step = match exchange.check_start(nonce) {
            Err(refusal) => exchange.fail(refusal),
            Ok(()) if initial_response.is_empty() => {
                exchange.state = State::AwaitFirst;
                Step::Challenge(Vec::new())
            }
            Ok(()) => exchange.first(initial_response),
        };
        (exchange, step)
    }

    fn check_start(&mut self, nonce: &[u8]) -> Result<(), Reject> {
        let valid = nonce.len() >= MIN_NONCE_BYTES && prep::is_printable_nonce(nonce);
        let Some(nonce) = valid
            .then(|| String::from_utf8(nonce.to_vec()).ok())
            .flatten()
        else {
            return Err(reject(
                Failure::TemporaryAuthFailure,
                "server nonce is not MIN_NONCE_BYTES printable ASCII bytes (caller bug: use \
                 fresh_nonce or nonce_from_random)",
            ));
        };
        self.nonce = nonce;
        if self.mechanism.needs_channel_binding() && self.offer == ChannelBindingOffer::NotOffered {
            return Err(reject(
                Failure::InvalidMechanism,
                "a -PLUS mechanism was chosen but not offered (no TLS exporter value)",
            ));
        }
        Ok(())
    }

    /// Answers [`Step::NeedCredentials`]: the user's stored credentials, or `None` if the
    /// user does not exist.
    pub fn credentials(&mut self, credentials: Option<&Credentials>) -> Step {
        let outcome = match std::mem::replace(&mut self.state, State::Done) {
            State::PlainCredentials(pending) => plain::finish(pending, credentials, &self.nonce),
            State::ScramCredentials(pending) => scram::challenge(pending, credentials, &self.nonce)
                .map(|(next, step)| {
                    self.state = State::ScramFinal(next);
                    step
                }),
            _ => Err(reject(
                Failure::TemporaryAuthFailure,
                "credentials() called when the exchange did not ask for them (caller bug)",
            )),
        };
        self.settle(outcome)
    }

    /// Answers [`Step::NeedCredentials`] of a PLAIN exchange with the caller's own check of
    /// the password, for account backends that keep no credentials (Rookery's `token` and
    /// `open` backends). `check` must compare in constant time. Any other state fails the
    /// exchange (a caller bug), as does a SCRAM exchange: SCRAM needs stored credentials.
    pub fn check_password(&mut self, check: impl FnOnce(&str) -> bool) -> Step {
        let outcome = match std::mem::replace(&mut self.state, State::Done) {
            State::PlainCredentials(pending) => plain::finish_with(pending, check),
            _ => Err(reject(
                Failure::TemporaryAuthFailure,
                "check_password() outside a PLAIN exchange waiting for credentials (caller bug)",
            )),
        };
        self.settle(outcome)
    }

    /// Feeds the client's next `<response/>` payload (decoded).
    pub fn respond(&mut self, input: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitFirst => self.first(input),
            State::ScramFinal(challenged) => {
                let outcome = scram::last(challenged, input);
                self.settle(outcome)
            }
            _ => self.fail(reject(
                Failure::MalformedRequest,
                "a response arrived when the exchange expected none",
            )),
        }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Why the exchange failed, for the server's logs only: it names causes (such as an
    /// unknown user) that must not reach the peer.
    pub fn failure_detail(&self) -> Option<&'static str> {
        self.detail
    }

    /// Whether the exchange has ended (success or failure).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn first(&mut self, message: &[u8]) -> Step {
        let outcome = match self.mechanism {
            Mechanism::Plain => plain::first(message).map(|(pending, step)| {
                self.state = State::PlainCredentials(pending);
                step
            }),
            _ => scram::first(self.mechanism, &self.offer, message, &self.nonce).map(
                |(pending, step)| {
                    self.state = State::ScramCredentials(pending);
                    step
                },
            ),
        };
        self.settle(outcome)
    }

    fn settle(&mut self, outcome: Result<Step, Reject>) -> Step {
        outcome.unwrap_or_else(|refusal| self.fail(refusal))
    }

    fn fail(&mut self, refusal: Reject) -> Step {
        self.state = State::Done;
        self.detail = Some(refusal.detail);
        Step::Failure(refusal.failure)
    }
}
