//! SCRAM (RFC 5802, RFC 7677) on the server, with `-PLUS` channel binding (RFC 9266).
//!
//! client-first -> [`first`] (gs2 rules, username, authzid) -> credentials -> [`challenge`]
//! (server-first) -> client-final -> [`last`] (nonce, `c=`, proof) -> server-final.
//!
//! What it does not do: PBKDF2. The server holds StoredKey and ServerKey, so a login costs
//! a few HMACs, never an iteration loop.
//!
//! Invariants: the proof is checked in constant time; an unknown user's exchange does the
//! same work as a known one's and fails only in [`last`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::channel::{self, ChannelBindingOffer};
use crate::credentials::{Credentials, ScramCredentials};
use crate::crypto::{self, ct_eq, hmac, xor, ScramHash};
use crate::failure::{reject, Failure, Reject};
use crate::mechanism::Mechanism;
use crate::message;
use crate::prep;
use crate::server::plain::check_authzid;
use crate::server::Step;
use crate::DEFAULT_ITERATIONS;

/// A parsed client-first waiting for the user's credentials.
#[derive(Debug)]
pub(super) struct Pending {
    hash: ScramHash,
    authcid: String,
    /// What `c=` must decode to: gs2 header followed by the channel binding data.
    expected_binding: Vec<u8>,
    client_first_bare: String,
    combined_nonce: String,
}

/// The server-first went out; waiting for client-final.
#[derive(Debug)]
pub(super) struct Challenged {
    pending: Pending,
    /// `client-first-bare "," server-first ","`: AuthMessage up to client-final.
    auth_prefix: String,
    keys: ScramCredentials,
    known: bool,
}

pub(super) fn first(
    mechanism: Mechanism,
    offer: &ChannelBindingOffer,
    message: &[u8],
    server_nonce: &str,
) -> Result<(Pending, Step), Reject> {
    let Some(hash) = mechanism.scram_hash() else {
        return Err(reject(
            Failure::TemporaryAuthFailure,
            "SCRAM step for a non-SCRAM mechanism",
        ));
    };
    let client_first = message::parse_client_first(message)?;
    let binding = channel::server_binding(mechanism, offer, client_first.flag)?;
    let authcid = prep::username(&client_first.username).ok_or(reject(
        Failure::MalformedRequest,
        "SCRAM username is empty or refused by SASLprep",
    ))?;
    let authzid = match &client_first.authzid {
        None => None,
        Some(authzid) => Some(check_authzid(authzid, &authcid)?),
    };
    let step = Step::NeedCredentials {
        authcid: authcid.clone(),
        authzid,
    };
    let pending = Pending {
        hash,
        authcid,
        expected_binding: [client_first.gs2_header.as_bytes(), &binding].concat(),
        client_first_bare: client_first.bare.to_owned(),
        combined_nonce: format!("{}{server_nonce}", client_first.nonce),
    };
    Ok((pending, step))
}

pub(super) fn challenge(
    pending: Pending,
    credentials: Option<&Credentials>,
    server_nonce: &str,
) -> Result<(Challenged, Step), Reject> {
    let known = credentials.is_some();
    let keys = match credentials {
        Some(credentials) => credentials.for_hash(pending.hash).clone(),
        None => Credentials::decoy(
            server_nonce.as_bytes(),
            &pending.authcid,
            DEFAULT_ITERATIONS,
        )
        .map_err(|_| reject(Failure::TemporaryAuthFailure, "decoy credentials failed"))?
        .for_hash(pending.hash)
        .clone(),
    };
    let server_first = format!(
        "r={},s={},i={}",
        pending.combined_nonce,
        STANDARD.encode(keys.params().salt()),
        keys.params().iterations()
    );
    let auth_prefix = format!("{},{server_first},", pending.client_first_bare);
    let challenged = Challenged {
        pending,
        auth_prefix,
        keys,
        known,
    };
    Ok((challenged, Step::Challenge(server_first.into_bytes())))
}

pub(super) fn last(challenged: Challenged, message: &[u8]) -> Result<Step, Reject> {
    let client_final = message::parse_client_final(message)?;
    let pending = &challenged.pending;
    if client_final.nonce != pending.combined_nonce {
        return Err(reject(
            Failure::NotAuthorized,
            "client-final nonce is not the combined nonce (replayed or forged)",
        ));
    }
    if client_final.binding != pending.expected_binding {
        return Err(reject(
            Failure::NotAuthorized,
            "c= does not match the gs2 header and channel binding data",
        ));
    }
    let hash = pending.hash;
    if client_final.proof.len() != hash.output_len() {
        return Err(reject(
            Failure::MalformedRequest,
            "p= has the wrong length for the hash",
        ));
    }
    let auth_message = [
        challenged.auth_prefix.as_bytes(),
        client_final.without_proof.as_bytes(),
    ]
    .concat();
    let keys = &challenged.keys;
    let client_signature = hmac(hash, keys.stored_key(), &auth_message);
    let client_key = xor(&client_final.proof, &client_signature);
    let proof_ok = ct_eq(&crypto::hash(hash, &client_key), keys.stored_key());
    let server_signature = hmac(hash, keys.server_key(), &auth_message);
    if !challenged.known {
        return Err(reject(Failure::NotAuthorized, "unknown user"));
    }
    if !proof_ok {
        return Err(reject(
            Failure::NotAuthorized,
            "proof mismatch (wrong password)",
        ));
    }
    Ok(Step::Success {
        authcid: challenged.pending.authcid,
        additional_data: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
    })
}
