//! The client side of one SASL exchange, for our own clients (load generator, tests, the
//! simulator): builds the initial response, answers the SCRAM challenge, and verifies the
//! server's signature.
//!
//! What it does not do: choose a mechanism (take the first of [`Mechanism::ALL`] the
//! server offers), base64 for XMPP, or enforce an iteration floor: it accepts the server's
//! count up to [`MAX_ITERATIONS`](crate::MAX_ITERATIONS), the ceiling that bounds what a
//! hostile server can make it compute.
//!
//! Invariants: `finish` succeeds only after the server proved it knows the credentials (a
//! SCRAM `<success/>` without a valid `v=` is an error); any error ends the exchange.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::channel::{self, ChannelBinding};
use crate::crypto::{self, ct_eq, hmac, salted_password, xor, SaltedPassword, ScramHash};
use crate::error::ClientError;
use crate::mechanism::Mechanism;
use crate::message::{self, ServerFinal};
use crate::prep;
use crate::MIN_NONCE_BYTES;

/// One client-side SASL exchange.
#[derive(Debug)]
pub struct ClientExchange {
    state: State,
    salted: Option<SaltedPassword>,
}

#[derive(Debug)]
enum State {
    PlainSent,
    FirstSent(FirstSent),
    FinalSent { server_signature: Vec<u8> },
    Done,
}

/// What the client remembers between client-first and client-final.
struct FirstSent {
    hash: ScramHash,
    password: String,
    /// gs2 header followed by the channel binding data: `c=` is its base64.
    binding: Vec<u8>,
    bare: String,
    nonce: String,
}

// The password stays out of logs.
impl std::fmt::Debug for FirstSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstSent")
            .field("hash", &self.hash)
            .field("bare", &self.bare)
            .finish_non_exhaustive()
    }
}

impl ClientExchange {
    /// Starts a login and returns the initial response (send it base64'd in `<auth>`).
    ///
    /// `username` and `password` are SASLprep'd here. `nonce` (SCRAM only; ignored for
    /// PLAIN) must be at least [`MIN_NONCE_BYTES`] printable ASCII bytes without `,`, from
    /// [`fresh_nonce`](crate::fresh_nonce) or [`nonce_from_random`](crate::nonce_from_random).
    pub fn start(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        binding: ChannelBinding,
        nonce: &[u8],
    ) -> Result<(ClientExchange, Vec<u8>), ClientError> {
        let username = prep::username(username).ok_or(ClientError::InvalidUsername)?;
        let password = prep::password(password).map_err(ClientError::InvalidPassword)?;
        let Some(hash) = mechanism.scram_hash() else {
            let exchange = ClientExchange {
                state: State::PlainSent,
                salted: None,
            };
            return Ok((exchange, format!("\0{username}\0{password}").into_bytes()));
        };
        if nonce.len() < MIN_NONCE_BYTES || !prep::is_printable_nonce(nonce) {
            return Err(ClientError::InvalidNonce);
        }
        let nonce = String::from_utf8(nonce.to_vec()).map_err(|_| ClientError::InvalidNonce)?;
        let (gs2_header, data) = channel::client_binding(mechanism, &binding)
            .ok_or(ClientError::ChannelBindingMissing)?;
        let bare = format!("n={},r={nonce}", prep::encode_saslname(&username));
        let first = format!("{gs2_header}{bare}").into_bytes();
        let state = State::FirstSent(FirstSent {
            hash,
            password,
            binding: [gs2_header.as_bytes(), &data].concat(),
            bare,
            nonce,
        });
        Ok((
            ClientExchange {
                state,
                salted: None,
            },
            first,
        ))
    }

    /// Offers a salted password from an earlier login; `step` uses it instead of running
    /// PBKDF2 when the server's hash, salt and iteration count match it.
    pub fn use_salted_password(&mut self, salted: SaltedPassword) {
        self.salted = Some(salted);
    }

    /// The salted password the exchange used (after `step`), to cache for the next login.
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.salted.as_ref()
    }

    /// Answers the server's challenge (decoded `<challenge/>` payload) with the next response.
    pub fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, ClientError> {
        let State::FirstSent(first) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(ClientError::OutOfOrder {
                detail: "a challenge arrived when the exchange expected none",
            });
        };
        let server_first = message::parse_server_first(challenge)
            .map_err(|r| ClientError::MalformedServerMessage { detail: r.detail })?;
        let server_nonce = server_first.nonce;
        if server_nonce.len() <= first.nonce.len()
            || !server_nonce.starts_with(&first.nonce)
            || !prep::is_printable_nonce(server_nonce.as_bytes())
        {
            return Err(ClientError::ServerNonceMismatch);
        }
        let salted = self.salted_for(&first, &server_first.salt, server_first.iterations)?;
        let without_proof = format!("c={},r={server_nonce}", STANDARD.encode(&first.binding));
        let auth_message = format!("{},{},{without_proof}", first.bare, server_first.text);
        let hash = first.hash;
        let client_key = salted.client_key();
        let stored_key = crypto::hash(hash, &client_key);
        let client_signature = hmac(hash, &stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_signature = hmac(hash, &salted.server_key(), auth_message.as_bytes());
        self.state = State::FinalSent { server_signature };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    fn salted_for(
        &mut self,
        first: &FirstSent,
        salt: &[u8],
        iterations: u32,
    ) -> Result<&SaltedPassword, ClientError> {
        let cached = self
            .salted
            .take()
            .filter(|s| s.matches(first.hash, salt, iterations));
        let salted = match cached {
            Some(salted) => salted,
            None => salted_password(first.hash, &first.password, salt, iterations)
                .map_err(ClientError::ServerParameters)?,
        };
        Ok(self.salted.insert(salted))
    }

    /// Checks the `<success/>` payload (decoded): for SCRAM the server-final message, whose
    /// signature must verify; for PLAIN it must be empty. Only `Ok` means authenticated.
    pub fn finish(&mut self, additional_data: &[u8]) -> Result<(), ClientError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainSent if additional_data.is_empty() => Ok(()),
            State::PlainSent => Err(ClientError::MalformedServerMessage {
                detail: "PLAIN success carries additional data",
            }),
            State::FinalSent { server_signature } => {
                match message::parse_server_final(additional_data)
                    .map_err(|r| ClientError::MalformedServerMessage { detail: r.detail })?
                {
                    ServerFinal::Error(message) => Err(ClientError::ServerError { message }),
                    ServerFinal::Verifier(v) if ct_eq(&v, &server_signature) => Ok(()),
                    ServerFinal::Verifier(_) => Err(ClientError::ServerSignatureMismatch),
                }
            }
            State::FirstSent(_) | State::Done => Err(ClientError::OutOfOrder {
                detail: "success arrived before the SCRAM challenge was answered",
            }),
        }
    }
}
