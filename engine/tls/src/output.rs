//! Appending rustls' output to a caller's `Vec<u8>`.
//!
//! What it does: rustls' unbuffered API writes into a `&mut [u8]` and answers "insufficient
//! size, N bytes required" when it does not fit. These helpers grow the caller's vector by a
//! good first guess, let rustls write, and truncate to what was written, retrying once with the
//! exact size when the guess was short. The vector is the conn's output queue, so no buffer of
//! ours holds ciphertext.
//!
//! What it does not do: bound the output; the stream layer's output-queue limit does that.

use rustls::unbuffered::{
    EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, WriteTraffic,
};
use rustls::Error as RustlsError;

use crate::error::TlsError;

/// Plaintext bytes per TLS record (RFC 8446 section 5.1: at most 2^14).
pub(crate) const MAX_RECORD_PLAINTEXT_BYTES: usize = 16 * 1024;

/// An upper bound of what a record adds to its plaintext: header 5, TLS 1.2 explicit nonce
/// 8 or TLS 1.3 content type 1, AEAD tag 16.
const RECORD_OVERHEAD_BYTES: usize = 32;

/// Room for a close_notify record plus a key update rustls may have queued before it.
const CLOSE_NOTIFY_ROOM_BYTES: usize = 128;

enum Step<E> {
    Grow(usize),
    Fail(E),
}

/// Appends what `write` produces; `write` returns the bytes written or asks for more room.
fn append(
    to_peer: &mut Vec<u8>,
    first_guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Step<TlsError>>,
) -> Result<usize, TlsError> {
    let start = to_peer.len();
    let mut room = first_guess;
    for _ in 0..2 {
        to_peer.resize(start + room, 0);
        match write(&mut to_peer[start..]) {
            Ok(written) => {
                to_peer.truncate(start + written);
                return Ok(written);
            }
            Err(Step::Grow(required)) => room = required,
            Err(Step::Fail(e)) => {
                to_peer.truncate(start);
                return Err(e);
            }
        }
    }
    to_peer.truncate(start);
    Err(TlsError::Local(RustlsError::General(
        "rustls asked for more output room twice".into(),
    )))
}

/// Appends one handshake (or alert) record rustls has ready; returns where it starts.
pub(crate) fn encode_record<D>(
    state: &mut EncodeTlsData<'_, D>,
    to_peer: &mut Vec<u8>,
) -> Result<usize, TlsError> {
    let start = to_peer.len();
    // Asking with no room gives the exact size without copying anything.
    let required = match state.encode(&mut []) {
        Ok(_) => 0,
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(EncodeError::AlreadyEncoded) => return Err(already_encoded()),
    };
    append(to_peer, required, |room| {
        state.encode(room).map_err(|e| match e {
            EncodeError::InsufficientSize(e) => Step::Grow(e.required_size),
            EncodeError::AlreadyEncoded => Step::Fail(already_encoded()),
        })
    })?;
    Ok(start)
}

fn already_encoded() -> TlsError {
    TlsError::Local(RustlsError::General(
        "handshake record encoded twice".into(),
    ))
}

/// Encrypts `plaintext` as application data records of at most 16 KiB each.
pub(crate) fn encrypt_app_data<D>(
    state: &mut WriteTraffic<'_, D>,
    plaintext: &[u8],
    to_peer: &mut Vec<u8>,
) -> Result<(), TlsError> {
    let records = plaintext.len().div_ceil(MAX_RECORD_PLAINTEXT_BYTES);
    let guess = plaintext.len() + records * RECORD_OVERHEAD_BYTES;
    append(to_peer, guess, |room| {
        state.encrypt(plaintext, room).map_err(encrypt_step)
    })?;
    Ok(())
}

/// Encrypts a close_notify alert.
pub(crate) fn encrypt_close_notify<D>(
    state: &mut WriteTraffic<'_, D>,
    to_peer: &mut Vec<u8>,
) -> Result<(), TlsError> {
    // rustls queues the alert before it checks the room, so a second call would queue a
    // second alert: give enough room the first time.
    let start = to_peer.len();
    to_peer.resize(start + CLOSE_NOTIFY_ROOM_BYTES, 0);
    match state.queue_close_notify(&mut to_peer[start..]) {
        Ok(written) => {
            to_peer.truncate(start + written);
            Ok(())
        }
        Err(e) => {
            to_peer.truncate(start);
            match encrypt_step(e) {
                // The alert stays queued in rustls and comes out as the next encoded record
                // (TlsSession::close drains those).
                Step::Grow(_) => Ok(()),
                Step::Fail(e) => Err(e),
            }
        }
    }
}

fn encrypt_step(e: EncryptError) -> Step<TlsError> {
    match e {
        EncryptError::InsufficientSize(e) => Step::Grow(e.required_size),
        EncryptError::EncryptExhausted => Step::Fail(TlsError::Local(RustlsError::EncryptError)),
    }
}
