//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: the upgrade, then the socket handed to
//! the engine, whose shards speak the WebSocket framing themselves (rookery-ws).
//!
//! What it does:
//! 1. Checks the handshake: `GET`, `Upgrade: websocket`, `Connection: upgrade`,
//!    `Sec-WebSocket-Version: 13`, a `Sec-WebSocket-Key`, and `xmpp` among
//!    `Sec-WebSocket-Protocol` (RFC 7395 3.1). A wrong version or upgrade answers 426, a
//!    missing key or subprotocol 400, each with a one-line body saying what to send
//!    (`rookery_http_refusals_total{reason="websocket_handshake"}`).
//! 2. Answers `101 Switching Protocols` with `Sec-WebSocket-Accept` and
//!    `Sec-WebSocket-Protocol: xmpp`, and takes the conn back from hyper when the upgrade
//!    completes (`hyper::upgrade::on`).
//! 3. Hands it over through the [`WebSocketSink`] the engine gave (`HttpConfig::websocket`):
//!    - plain HTTP: the TCP socket itself (`Upgraded::downcast` to our tokio `TcpStream`,
//!      its fd) and the bytes hyper had read past the request (`read_buf`: a client may send
//!      its first frames without waiting for the 101). The shard then owns the socket as if
//!      it had accepted it: no thread, buffer or copy of ours stays in the path. Cost here:
//!      nothing after the hand-over.
//!    - HTTPS: the TLS state lives in tokio-rustls on this runtime and cannot move to a
//!      shard, so this runtime relays: a `socketpair(AF_UNIX)`, the shard adopts one end,
//!      a task copies bytes both ways between the TLS stream and the other end (two 16 KiB
//!      buffers, [`RELAY_BUFFER_BYTES`]). Cost: one task, two buffers, a TLS session and an
//!      extra copy and wake-up per read, per WebSocket conn (`rookery_http_websocket_relays`
//!      counts them; they do not take one of `max_conns`, the shards' conn ceiling bounds
//!      them). Terminating TLS on the shards instead (their own
//!      WebSocket listener with rookery-tls) would remove it.
//!      A refused hand-over (the engine's queue full) closes the socket and counts
//!      `reason="websocket_handover"`.
//!
//! Without a sink (a server started without the engine) the path answers 501.
//!
//! An upgrade from a page whose `Origin` is not allowed (`--ws-allowed-origin`, see `origin`;
//! default: any) answers 403 before the handshake's other checks matter.
//!
//! What it does not do: parse a single WebSocket frame (the shards do), or limit frames or
//! messages (the shard's layer does, from the stanza limit).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::{self, ResBody};
use crate::deadline::WriteDeadline;
use crate::metrics::{Counters, Refusal};
use crate::routes::{builder, finish, refuse};
use crate::server::State;

/// The path RFC 7395 clients are usually configured with (discovered through XEP-0156).
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";
/// Each direction's buffer of a TLS relay.
pub const RELAY_BUFFER_BYTES: usize = 16 * 1024;

/// An upgraded conn for the engine: the socket (non-blocking), bytes already read from it
/// (WebSocket frames), the client's address, and whether the client's bytes came over TLS
/// (then `socket` is our end of the relay, a Unix socket, and the bytes on it are plaintext).
#[derive(Debug)]
pub struct WebSocketConn {
    pub socket: OwnedFd,
    pub leftover: Vec<u8>,
    pub peer: SocketAddr,
    pub tls_relayed: bool,
}

/// Where upgraded conns go, on this server's threads. It must not block; `Err` gives the conn
/// back when it cannot be taken (it is then closed and counted).
pub type WebSocketSink = Arc<dyn Fn(WebSocketConn) -> Result<(), WebSocketConn> + Send + Sync>;

/// The client's address, put on each request by the conn that read it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

/// Answers a request for [`WEBSOCKET_PATH`].
pub(crate) fn answer(state: &Arc<State>, mut req: Request<Incoming>) -> Response<ResBody> {
    let Some(sink) = state.websocket.clone() else {
        let builder = builder(StatusCode::NOT_IMPLEMENTED)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        let why = "XMPP over WebSocket is not served by this server; connect over TCP\n";
        return finish(builder, body::text(why));
    };
    if req.method() != Method::GET {
        return refuse(
            state,
            Refusal::MethodNotAllowed,
            StatusCode::METHOD_NOT_ALLOWED,
            "allowed methods: GET (a WebSocket upgrade)",
        );
    }
    let origin = req.headers().get(header::ORIGIN);
    if !state
        .websocket_origins
        .allows(origin.map(HeaderValue::as_bytes))
    {
        let shown = origin.map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
        return refuse(
            state,
            Refusal::WebSocketOrigin,
            StatusCode::FORBIDDEN,
            format!(
                "Origin {} may not open XMPP over WebSocket here; the operator allows pages \
                 with --ws-allowed-origin",
                shown.unwrap_or_default()
            ),
        );
    }
    let key = match check(req.headers()) {
        Ok(key) => key,
        Err((status, why)) => {
            let mut response = refuse(state, Refusal::WebSocketHandshake, status, why);
            if status == StatusCode::UPGRADE_REQUIRED {
                let headers = response.headers_mut();
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            return response;
        }
    };
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let upgrade = hyper::upgrade::on(&mut req);
    let counters = Arc::clone(&state.counters);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => hand_over(upgraded, peer, &sink, &counters).await,
            Err(e) => debug!("WebSocket upgrade did not complete: {e}"),
        }
    });
    Counters::add(&state.counters.websocket_upgrades, 1);
    let builder = builder(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, rookery_ws::accept_key(&key))
        .header(header::SEC_WEBSOCKET_PROTOCOL, rookery_ws::SUBPROTOCOL);
    finish(builder, body::empty())
}

/// The handshake's `Sec-WebSocket-Key`, or the status and reason of a refusal.
fn check(headers: &HeaderMap) -> Result<Vec<u8>, (StatusCode, &'static str)> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "send Upgrade: websocket and Connection: Upgrade (RFC 6455 4.1)",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "only Sec-WebSocket-Version: 13 is served",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
        .filter(|k| !k.is_empty())
        .ok_or((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key missing"))?;
    if !has_token(header::SEC_WEBSOCKET_PROTOCOL, rookery_ws::SUBPROTOCOL) {
        return Err((
            StatusCode::BAD_REQUEST,
            "subprotocol xmpp required: send Sec-WebSocket-Protocol: xmpp (RFC 7395 3.1)",
        ));
    }
    Ok(key)
}

/// Gives the upgraded conn to the engine: its socket when it is plain TCP, else a relay.
async fn hand_over(
    upgraded: hyper::upgrade::Upgraded,
    peer: Option<SocketAddr>,
    sink: &WebSocketSink,
    counters: &Counters,
) {
    let upgraded = match upgraded.downcast::<TokioIo<WriteDeadline<TcpStream>>>() {
        Ok(parts) => {
            let tcp = parts.io.into_inner().into_inner();
            let peer = peer.or_else(|| tcp.peer_addr().ok());
            let socket = match tcp.into_std() {
                Ok(std) => OwnedFd::from(std),
                Err(e) => return debug!("WebSocket conn lost at hand-over: {e}"),
            };
            let Some(peer) = peer else { return };
            let conn = WebSocketConn {
                socket,
                leftover: parts.read_buf.to_vec(),
                peer,
                tls_relayed: false,
            };
            if sink(conn).is_err() {
                counters.refused(Refusal::WebSocketHandover);
            }
            return;
        }
        Err(upgraded) => upgraded,
    };
    let Some(peer) = peer else { return };
    relay(upgraded, peer, sink, counters).await;
}

/// Relays a TLS conn's plaintext to the engine over a socket pair.
async fn relay(
    upgraded: hyper::upgrade::Upgraded,
    peer: SocketAddr,
    sink: &WebSocketSink,
    counters: &Counters,
) {
    let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => {
            counters.refused(Refusal::WebSocketHandover);
            return debug!("WebSocket relay: socketpair failed: {e}");
        }
    };
    let ours = ours
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(ours));
    let Ok(mut ours) = ours else {
        counters.refused(Refusal::WebSocketHandover);
        return;
    };
    let conn = WebSocketConn {
        socket: OwnedFd::from(theirs),
        leftover: Vec::new(),
        peer,
        tls_relayed: true,
    };
    if sink(conn).is_err() {
        counters.refused(Refusal::WebSocketHandover);
        return;
    }
    Counters::add(&counters.websocket_relays, 1);
    let mut tls = TokioIo::new(upgraded);
    let copied = tokio::io::copy_bidirectional_with_sizes(
        &mut tls,
        &mut ours,
        RELAY_BUFFER_BYTES,
        RELAY_BUFFER_BYTES,
    )
    .await;
    Counters::sub(&counters.websocket_relays, 1);
    if let Err(e) = copied {
        debug!("WebSocket relay ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const GOOD: [(&str, &str); 5] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "mqtt, xmpp"),
    ];

    #[test]
    fn a_proper_handshake_passes_and_each_missing_part_is_named() {
        assert_eq!(
            check(&headers(&GOOD)).unwrap(),
            b"dGhlIHNhbXBsZSBub25jZQ==".to_vec()
        );
        for (i, status) in [
            StatusCode::UPGRADE_REQUIRED,
            StatusCode::UPGRADE_REQUIRED,
            StatusCode::UPGRADE_REQUIRED,
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
        ]
        .into_iter()
        .enumerate()
        {
            let mut pairs = GOOD.to_vec();
            pairs.remove(i);
            let (got, _) = check(&headers(&pairs)).unwrap_err();
            assert_eq!(got, status, "without {:?}", GOOD[i]);
        }
        let mut other = GOOD.to_vec();
        other[4] = ("sec-websocket-protocol", "xmpp-ish");
        assert!(check(&headers(&other)).is_err());
    }
}
