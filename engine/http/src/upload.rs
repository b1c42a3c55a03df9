//! `PUT /upload/...`: storing one file for a signed slot.
//!
//! Order of checks, each answered before any body byte is read (hyper sends `100 Continue`
//! only when the body is first polled, so a refused client need not send its file):
//! 1. the URL: shape (404), signature (403), expiry (403);
//! 2. the length: a chunked body is refused (411 without Content-Length, 400 with it); the
//!    Content-Length (absent means 0, RFC 9112) must equal the slot's size (413 if larger, 400
//!    if smaller), as XEP-0363 section 7 requires;
//! 3. `Content-Type` of the slot's essence; absent only when the slot's is
//!    `application/octet-stream` (415);
//! 4. the slot not already stored nor being uploaded (409).
//!
//! Then the body is streamed to `tmp/<token>.part`: chunks gather into a buffer of
//! [`BATCH_BYTES`], written on the blocking pool while the next batch is received (one write
//! in flight), so an upload holds at most two batches plus hyper's read buffer, whatever its
//! size. A body silent for `body_idle_timeout_ms`, or longer than `max_upload_duration_s` in
//! all, is abandoned (408); one that ends early or breaks, too (400). Complete, the file is
//! fsynced and committed with its sidecar (store.rs), counted, reported to the usage sink,
//! and answered `201 Created` (XEP-0363: the GET URL now serves it).
//!
//! What it does not do: check free disk space first (a full disk fails the write: 500, logged,
//! temp file removed), or resume partial uploads.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response, StatusCode};
use rookery_upload::{content_type, PutError, PutGrant, DEFAULT_CONTENT_TYPE};
use tokio::task::{spawn_blocking, JoinHandle};
use tokio::time::timeout;

use crate::body::{self, ResBody};
use crate::metrics::{Counters, Refusal};
use crate::routes::{builder, finish, refuse};
use crate::server::State;
use crate::store::{ClaimError, FileMeta, UploadClaim};

/// Bytes gathered before one write to disk.
pub const BATCH_BYTES: usize = 256 << 10;

enum UploadError {
    Timeout,
    Incomplete { received_bytes: u64 },
    Broken(hyper::Error),
    Storage(io::Error),
}

pub(crate) async fn put(state: &State, req: Request<Incoming>, path: &str) -> Response<ResBody> {
    let now = state.clock.now_unix_s();
    let grant = match state.signer.verify_put(path, now) {
        Ok(grant) => grant,
        Err(e) => return url_refused(state, e),
    };
    if let Err(refusal) = check_headers(state, req.headers(), &grant) {
        return refusal;
    }
    let claim = match state.store.claim(grant.token) {
        Ok(claim) => claim,
        Err(ClaimError::AlreadyStored) | Err(ClaimError::InProgress) => {
            let why = "this slot was already used; request a new one";
            return refuse(state, Refusal::AlreadyUploaded, StatusCode::CONFLICT, why);
        }
    };
    let deadline = Duration::from_secs(state.limits.max_upload_duration_s);
    let received = timeout(
        deadline,
        receive(state, req.into_body(), &claim, grant.size_bytes),
    )
    .await
    .unwrap_or(Err(UploadError::Timeout));
    if let Err(e) = received {
        return upload_failed(state, &grant, e);
    }
    let meta = FileMeta {
        owner: grant.owner.clone(),
        size_bytes: grant.size_bytes,
        content_type: grant.content_type.clone(),
        created_unix_s: state.clock.now_unix_s(),
        filename: grant.filename.clone(),
    };
    match spawn_blocking(move || claim.commit(meta)).await {
        Ok(Ok(event)) => {
            Counters::add(&state.counters.uploads, 1);
            state.report(event);
            finish(builder(StatusCode::CREATED), body::empty())
        }
        Ok(Err(e)) => upload_failed(state, &grant, UploadError::Storage(e)),
        Err(join) => upload_failed(state, &grant, UploadError::Storage(io::Error::other(join))),
    }
}

fn url_refused(state: &State, error: PutError) -> Response<ResBody> {
    let (reason, status) = match error {
        PutError::Malformed => (Refusal::NotFound, StatusCode::NOT_FOUND),
        PutError::BadSignature => (Refusal::BadSignature, StatusCode::FORBIDDEN),
        PutError::Expired { .. } => (Refusal::Expired, StatusCode::FORBIDDEN),
    };
    refuse(state, reason, status, error.to_string())
}

#[allow(clippy::result_large_err)] // The error is the response itself, built once.
fn check_headers(
    state: &State,
    headers: &HeaderMap,
    grant: &PutGrant,
) -> Result<(), Response<ResBody>> {
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let length: Option<u64> = match headers.get(header::CONTENT_LENGTH) {
        None if chunked => {
            let why = format!(
                "send Content-Length: {}, not a chunked body",
                grant.size_bytes
            );
            return Err(refuse(
                state,
                Refusal::LengthRequired,
                StatusCode::LENGTH_REQUIRED,
                why,
            ));
        }
        // RFC 9112 section 6.3: a request without framing headers has an empty body.
        None => Some(0),
        Some(_) if chunked => {
            let why = "send the file with Content-Length, without Transfer-Encoding";
            return Err(refuse(
                state,
                Refusal::WrongLength,
                StatusCode::BAD_REQUEST,
                why,
            ));
        }
        Some(length) => length.to_str().ok().and_then(|l| l.parse().ok()),
    };
    if length != Some(grant.size_bytes) {
        let status = match length {
            Some(length) if length > grant.size_bytes => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        let why = format!(
            "Content-Length must be the slot's size, {}",
            grant.size_bytes
        );
        return Err(refuse(state, Refusal::WrongLength, status, why));
    }
    let expected = content_type::essence(&grant.content_type);
    let sent = match headers.get(header::CONTENT_TYPE) {
        Some(value) => value.to_str().ok().map(content_type::essence),
        None => Some(DEFAULT_CONTENT_TYPE.to_owned()),
    };
    if sent.as_deref() != Some(expected.as_str()) {
        let why = format!("Content-Type must be the slot's, {}", grant.content_type);
        return Err(refuse(
            state,
            Refusal::WrongType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            why,
        ));
    }
    Ok(())
}

/// Streams the body into the claim's temp file and fsyncs it.
async fn receive(
    state: &State,
    mut body: Incoming,
    claim: &UploadClaim,
    size_bytes: u64,
) -> Result<(), UploadError> {
    let path = claim.part_path();
    let file = spawn_blocking(move || OpenOptions::new().write(true).create_new(true).open(path))
        .await
        .map_err(|e| UploadError::Storage(io::Error::other(e)))?
        .map_err(UploadError::Storage)?;
    let file = Arc::new(file);
    let mut writer = Writer {
        file: Arc::clone(&file),
        batch: Vec::with_capacity(BATCH_BYTES),
        in_flight: None,
    };
    let mut received_bytes = 0u64;
    let idle = state.limits.body_idle_timeout();
    while let Some(frame) = timeout(idle, body.frame())
        .await
        .map_err(|_| UploadError::Timeout)?
    {
        let frame = frame.map_err(UploadError::Broken)?;
        // Trailers (a frame without data) carry nothing we keep.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received_bytes += data.len() as u64;
        Counters::add(&state.counters.upload_bytes, data.len() as u64);
        // hyper stops at Content-Length; kept as a check of our own bound.
        if received_bytes > size_bytes {
            return Err(UploadError::Incomplete { received_bytes });
        }
        writer.batch.extend_from_slice(&data);
        if writer.batch.len() >= BATCH_BYTES {
            writer.flush().await?;
        }
    }
    if received_bytes != size_bytes {
        return Err(UploadError::Incomplete { received_bytes });
    }
    writer.flush().await?;
    writer.wait().await?;
    spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| UploadError::Storage(io::Error::other(e)))?
        .map_err(UploadError::Storage)
}

/// Batches written on the blocking pool, one write in flight.
struct Writer {
    file: Arc<File>,
    batch: Vec<u8>,
    in_flight: Option<JoinHandle<io::Result<()>>>,
}

impl Writer {
    async fn flush(&mut self) -> Result<(), UploadError> {
        self.wait().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BYTES));
        let file = Arc::clone(&self.file);
        self.in_flight = Some(spawn_blocking(move || (&*file).write_all(&batch)));
        Ok(())
    }

    async fn wait(&mut self) -> Result<(), UploadError> {
        let Some(write) = self.in_flight.take() else {
            return Ok(());
        };
        write
            .await
            .map_err(|e| UploadError::Storage(io::Error::other(e)))?
            .map_err(UploadError::Storage)
    }
}

fn upload_failed(state: &State, grant: &PutGrant, error: UploadError) -> Response<ResBody> {
    match error {
        UploadError::Timeout => refuse(
            state,
            Refusal::UploadTimeout,
            StatusCode::REQUEST_TIMEOUT,
            "the upload stalled or took too long; request a new slot and try again",
        ),
        UploadError::Incomplete { received_bytes } => {
            let why = format!(
                "the body had {received_bytes} bytes, the slot {}",
                grant.size_bytes
            );
            refuse(state, Refusal::UploadAborted, StatusCode::BAD_REQUEST, why)
        }
        UploadError::Broken(e) => {
            let why = format!("the upload broke off: {e}");
            refuse(state, Refusal::UploadAborted, StatusCode::BAD_REQUEST, why)
        }
        UploadError::Storage(e) => {
            tracing::error!(
                "upload {} for {}: storing under {} failed: {e} (is the disk full or read-only?)",
                grant.token,
                grant.owner,
                state.store.file_path(&grant.token).display()
            );
            let why = "the server could not store the file";
            refuse(
                state,
                Refusal::StorageError,
                StatusCode::INTERNAL_SERVER_ERROR,
                why,
            )
        }
    }
}
