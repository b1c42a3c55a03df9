//! PLAIN (RFC 4616) on the server: `[authzid] NUL authcid NUL passwd`, checked against the
//! stored SCRAM credentials with [`verify_plain`].
//!
//! What it does not do: refuse PLAIN on an unencrypted stream (the stream layer's policy).
//!
//! Invariants: the password is kept only between `first` and `finish`; an unknown user costs
//! one PBKDF2 run like a known one, so timing does not tell them apart (with credentials at
//! [`DEFAULT_ITERATIONS`]).

use crate::credentials::{verify_plain, Credentials};
use crate::failure::{reject, Failure, Reject};
use crate::prep;
use crate::server::Step;
use crate::{DEFAULT_ITERATIONS, MAX_MESSAGE_BYTES};

/// A parsed PLAIN message waiting for the user's credentials.
pub(super) struct Pending {
    authcid: String,
    password: String,
}

// The password stays out of logs.
impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

fn malformed(detail: &'static str) -> Reject {
    reject(Failure::MalformedRequest, detail)
}

pub(super) fn first(message: &[u8]) -> Result<(Pending, Step), Reject> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(malformed("message longer than MAX_MESSAGE_BYTES"));
    }
    let text = std::str::from_utf8(message).map_err(|_| malformed("PLAIN message is not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "PLAIN message is not authzid NUL authcid NUL password",
        ));
    };
    if password.is_empty() {
        return Err(malformed("PLAIN password is empty"));
    }
    let authcid = prep::username(authcid)
        .ok_or(malformed("PLAIN username is empty or refused by SASLprep"))?;
    let authzid = match authzid {
        "" => None,
        _ => Some(check_authzid(authzid, &authcid)?),
    };
    let step = Step::NeedCredentials {
        authcid: authcid.clone(),
        authzid,
    };
    let pending = Pending {
        authcid,
        password: password.to_owned(),
    };
    Ok((pending, step))
}

/// The authzid must name the authenticated user itself: acting as another is unsupported.
/// Accepted: the authcid itself, or `authcid@domain` (XMPP sends a bare JID, RFC 6120
/// 6.3.8); the domain part is the caller's to check (the crate knows no domains).
pub(super) fn check_authzid(authzid: &str, authcid: &str) -> Result<String, Reject> {
    let names_authcid = |prepared: &str| {
        prepared == authcid
            || prepared
                .strip_prefix(authcid)
                .and_then(|rest| rest.strip_prefix('@'))
                .is_some_and(|domain| !domain.is_empty())
    };
    match prep::username(authzid) {
        Some(prepared) if names_authcid(&prepared) => Ok(prepared),
        _ => Err(reject(
            Failure::InvalidAuthzid,
            "authzid differs from the authcid (acting as another user is not supported)",
        )),
    }
}

/// Finishes with the caller's own password check (backends that keep no credentials).
pub(super) fn finish_with(
    pending: Pending,
    check: impl FnOnce(&str) -> bool,
) -> Result<Step, Reject> {
    if !check(&pending.password) {
        return Err(reject(Failure::NotAuthorized, "wrong password"));
    }
    Ok(Step::Success {
        authcid: pending.authcid,
        additional_data: Vec::new(),
    })
}

pub(super) fn finish(
    pending: Pending,
    credentials: Option<&Credentials>,
    nonce: &str,
) -> Result<Step, Reject> {
    let known = credentials.is_some();
    let decoy;
    let credentials = match credentials {
        Some(credentials) => credentials,
        None => {
            decoy = Credentials::decoy(nonce.as_bytes(), &pending.authcid, DEFAULT_ITERATIONS)
                .map_err(|_| reject(Failure::TemporaryAuthFailure, "decoy credentials failed"))?;
            &decoy
        }
    };
    // The check runs for unknown users too, so both cost one PBKDF2.
    let matches = verify_plain(credentials, &pending.password);
    if !known {
        return Err(reject(Failure::NotAuthorized, "unknown user"));
    }
    if !matches {
        return Err(reject(Failure::NotAuthorized, "wrong password"));
    }
    Ok(Step::Success {
        authcid: pending.authcid,
        additional_data: Vec::new(),
    })
}
