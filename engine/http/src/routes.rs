//! Request dispatch, and what every response shares (CORS headers, refusals).
//!
//! Routes, under the public URL's path (`base_path`; requests without it are served too, for
//! a proxy that strips it):
//!
//! | path | methods | what |
//! | --- | --- | --- |
//! | `/upload/{token}/{signed}/{name}` | PUT, OPTIONS | store a file (upload.rs) |
//! | `/download/{token}/{name}` | GET, HEAD, OPTIONS | serve a file (download.rs) |
//! | `/xmpp-websocket` | GET | RFC 7395 upgrade, the conn handed to a shard (websocket.rs) |
//!
//! CORS (XEP-0363 section 8 asks upload services to set it for web clients): every response
//! carries `Access-Control-Allow-Origin: *` and exposes the range and caching headers; an
//! `OPTIONS` preflight answers 204 with the methods and request headers above and a one-day
//! max-age. No `Access-Control-Allow-Credentials`: browsers reject it beside `*`, and no
//! request of ours needs cookies or HTTP authentication (the capability is the URL).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::response::Builder;
use hyper::{Method, Request, Response, StatusCode};
use rookery_upload::{DOWNLOAD_PATH, UPLOAD_PATH};

use crate::body::{self, ResBody};
use crate::metrics::Refusal;
use crate::server::State;
use crate::websocket::{self, WEBSOCKET_PATH};
use crate::{download, upload};

const ALLOW_ORIGIN: &str = "*";
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified";
const ALLOW_METHODS: &str = "OPTIONS, HEAD, GET, PUT";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Range, If-Range, If-None-Match";
const PREFLIGHT_MAX_AGE_S: &str = "86400";

/// Answers one request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    let local = strip_base(&path, state.signer.base_path());
    let method = req.method().clone();
    if local.starts_with(UPLOAD_PATH) {
        return match method {
            Method::PUT => upload::put(&state, req, local).await,
            Method::OPTIONS => preflight(),
            _ => not_allowed(&state, "OPTIONS, PUT"),
        };
    }
    if local.starts_with(DOWNLOAD_PATH) {
        return match method {
            Method::GET => download::get(&state, &req, local, download::Head::No).await,
            Method::HEAD => download::get(&state, &req, local, download::Head::Yes).await,
            Method::OPTIONS => preflight(),
            _ => not_allowed(&state, "OPTIONS, HEAD, GET"),
        };
    }
    if local == WEBSOCKET_PATH {
        return websocket::answer(&state, req);
    }
    refuse(
        &state,
        Refusal::NotFound,
        StatusCode::NOT_FOUND,
        "no such resource",
    )
}

/// `path` without the public URL's path prefix, if it starts with it.
fn strip_base<'a>(path: &'a str, base: &str) -> &'a str {
    if base.is_empty() {
        return path;
    }
    match path.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// A response builder with the CORS headers every response carries.
pub(crate) fn builder(status: StatusCode) -> Builder {
    Response::builder()
        .status(status)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ORIGIN)
        .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS)
}

/// Finishes a response whose headers are all static or checked: a failure here is a bug.
pub(crate) fn finish(builder: Builder, body: ResBody) -> Response<ResBody> {
    builder
        .body(body)
        .unwrap_or_else(|e| panic!("response with an invalid header: {e}"))
}

/// A refusal: counted under `reason`, explained in a one-line text body.
pub(crate) fn refuse(
    state: &State,
    reason: Refusal,
    status: StatusCode,
    why: impl Into<String>,
) -> Response<ResBody> {
    state.counters.refused(reason);
    let mut why = why.into();
    why.push('\n');
    let builder = builder(status).header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    finish(builder, body::text(why))
}

fn not_allowed(state: &State, allow: &'static str) -> Response<ResBody> {
    let mut response = refuse(
        state,
        Refusal::MethodNotAllowed,
        StatusCode::METHOD_NOT_ALLOWED,
        format!("allowed methods: {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn preflight() -> Response<ResBody> {
    let builder = builder(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_S);
    finish(builder, body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_is_stripped_only_at_a_segment_boundary() {
        assert_eq!(strip_base("/files/upload/x", "/files"), "/upload/x");
        assert_eq!(strip_base("/upload/x", "/files"), "/upload/x");
        assert_eq!(strip_base("/filesupload/x", "/files"), "/filesupload/x");
        assert_eq!(strip_base("/upload/x", ""), "/upload/x");
    }
}
