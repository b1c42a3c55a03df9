//! `GET`/`HEAD /download/{token}/{name}`: serving a stored file.
//!
//! What it does: finds the file by token (the name must match the stored one, decoded, so one
//! file has one URL), refuses it past its retention even before cleanup removes it, answers
//! `If-None-Match` with 304, honours one `Range` (206, or 416 with `Content-Range: bytes */len`;
//! `If-Range` with our ETag or date, else the whole file), and streams the bytes from disk
//! (body.rs). Headers: the slot's `Content-Type`, `Content-Length`, a strong `ETag` (the token:
//! a slot's bytes never change), `Last-Modified` (the upload time), `Accept-Ranges: bytes`,
//! and, as XEP-0363 section 10 advises for user content, `Content-Security-Policy:
//! default-src 'none'; frame-ancestors 'none'` and `X-Content-Type-Options: nosniff`, so an
//! uploaded HTML or SVG file cannot run script in this origin.
//!
//! What it does not do: access control (XEP-0363: whoever has the URL may read), multiple
//! ranges, compression.

use std::fs::File;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::http::response::Builder;
use hyper::{Request, Response, StatusCode};
use rookery_upload::{parse_download_path, SlotToken};
use tokio::task::spawn_blocking;

use crate::body::{self, FileBody, ResBody};
use crate::metrics::{Counters, Refusal};
use crate::range::{self, RangeAnswer};
use crate::routes::{builder, finish, refuse};
use crate::server::State;
use crate::store::FileMeta;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Whether the body is sent (`GET`) or only the headers (`HEAD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    Yes,
    No,
}

pub(crate) async fn get(
    state: &State,
    req: &Request<Incoming>,
    path: &str,
    head: Head,
) -> Response<ResBody> {
    let Some((token, meta)) = find(state, path) else {
        return not_found(state);
    };
    let validators = Validators::new(&token, &meta);
    let headers = req.headers();
    if validators.not_modified(headers) {
        let cached = validators.apply(builder(StatusCode::NOT_MODIFIED));
        return finish(cached, body::empty());
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range_header = range_header.filter(|_| validators.if_range_holds(headers));
    let (status, start, len) = match range::resolve(range_header, meta.size_bytes) {
        RangeAnswer::Full => (StatusCode::OK, 0, meta.size_bytes),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::NotSatisfiable => return not_satisfiable(state, &meta),
    };
    let mut response = validators
        .apply(builder(status))
        .header(header::CONTENT_TYPE, &meta.content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if status == StatusCode::PARTIAL_CONTENT {
        let content_range = format!("bytes {start}-{}/{}", start + len - 1, meta.size_bytes);
        response = response.header(header::CONTENT_RANGE, content_range);
    }
    match head {
        Head::Yes => finish(response, body::empty()),
        Head::No => stream(state, token, response, start, len).await,
    }
}

/// The stored file a GET path names, if it is served: the token is known, the name matches
/// and the file is within its retention.
fn find(state: &State, path: &str) -> Option<(SlotToken, FileMeta)> {
    let wanted = parse_download_path(path)?;
    let meta = state.store.get(&wanted.token)?;
    if meta.filename.as_bytes() != wanted.filename || expired(state, &meta) {
        return None;
    }
    Some((wanted.token, meta))
}

fn not_found(state: &State) -> Response<ResBody> {
    refuse(
        state,
        Refusal::NotFound,
        StatusCode::NOT_FOUND,
        "no such file",
    )
}

fn not_satisfiable(state: &State, meta: &FileMeta) -> Response<ResBody> {
    let mut response = refuse(
        state,
        Refusal::RangeNotSatisfiable,
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("the file has {} bytes", meta.size_bytes),
    );
    let content_range = format!("bytes */{}", meta.size_bytes);
    if let Ok(value) = content_range.parse() {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// The file's validators: a strong ETag (the token: a slot's bytes never change) and the
/// upload time.
struct Validators {
    etag: String,
    last_modified: String,
}

impl Validators {
    fn new(token: &SlotToken, meta: &FileMeta) -> Validators {
        let uploaded = UNIX_EPOCH + Duration::from_secs(meta.created_unix_s);
        Validators {
            etag: format!("\"{token}\""),
            last_modified: httpdate::fmt_http_date(uploaded),
        }
    }

    fn apply(&self, builder: Builder) -> Builder {
        builder
            .header(header::ETAG, &self.etag)
            .header(header::LAST_MODIFIED, &self.last_modified)
    }

    fn not_modified(&self, headers: &HeaderMap) -> bool {
        header_is(headers, header::IF_NONE_MATCH, |v| {
            v.split(',')
                .any(|tag| tag.trim() == self.etag || tag.trim() == "*")
        })
    }

    /// RFC 9110 section 13.1.5: a Range counts only if `If-Range` is absent or names us.
    fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        !headers.contains_key(header::IF_RANGE)
            || header_is(headers, header::IF_RANGE, |v| {
                v == self.etag || v == self.last_modified
            })
    }
}

/// Opens the file and sends `len` bytes from `start` as the body.
async fn stream(
    state: &State,
    token: SlotToken,
    response: Builder,
    start: u64,
    len: u64,
) -> Response<ResBody> {
    let path = state.store.file_path(&token);
    let opened = spawn_blocking(move || File::open(path))
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
    match opened {
        Ok(file) => {
            Counters::add(&state.counters.downloads, 1);
            let file_body = FileBody::new(file, start, len, state.counters.clone());
            finish(response, file_body.boxed_unsync())
        }
        // Removed by retention between the look-up and the open.
        Err(e) if e.kind() == io::ErrorKind::NotFound => not_found(state),
        Err(e) => {
            tracing::error!(
                "download {token}: opening {} failed: {e}",
                state.store.file_path(&token).display()
            );
            let why = "the server could not read the file";
            refuse(
                state,
                Refusal::StorageError,
                StatusCode::INTERNAL_SERVER_ERROR,
                why,
            )
        }
    }
}

fn expired(state: &State, meta: &FileMeta) -> bool {
    state
        .file_ttl_s
        .is_some_and(|ttl| state.clock.now_unix_s() >= meta.created_unix_s.saturating_add(ttl))
}

fn header_is(headers: &HeaderMap, name: header::HeaderName, test: impl Fn(&str) -> bool) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| test(v.trim()))
}
