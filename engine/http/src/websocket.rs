//! The seam for XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: answered `501 Not
//! Implemented` today.
//!
//! How it will upgrade (the conns are already served `with_upgrades`, so only this module and
//! the engine change):
//! 1. Check the handshake: `GET`, `Upgrade: websocket`, `Connection: upgrade`,
//!    `Sec-WebSocket-Version: 13`, a `Sec-WebSocket-Key`, and `xmpp` among
//!    `Sec-WebSocket-Protocol` (RFC 7395 section 3.1: otherwise refuse).
//! 2. Take `hyper::upgrade::on(&mut req)` (a future of `hyper::upgrade::Upgraded`) and answer
//!    `101 Switching Protocols` with `Sec-WebSocket-Accept` = base64(SHA-1(key +
//!    "258EAFA5-E914-47DA-95CA-C5AB0DC11B85")) and `Sec-WebSocket-Protocol: xmpp`.
//! 3. When the future resolves, hand the conn to the engine:
//!    - plain TCP: `Upgraded::downcast::<TokioIo<WriteDeadline<TcpStream>>>()` gives back the
//!      stream and the bytes hyper read past the request (`Parts::read_buf`); `into_std()`
//!      and the fd go to a shard like a hand-off (`Adopt { socket, leftover }`), and the
//!      shard's conn then speaks WebSocket framing (a sans-IO codec beside the XML framer).
//!    - TLS: the rustls session state lives in this runtime and cannot move to a shard's
//!      sans-IO `TlsSession`; either this thread keeps relaying frames to the shard over a
//!      bounded channel (simple, one extra copy), or WebSocket is served on the shard's own
//!      TLS listener, not here. That choice belongs to the engine.
//!
//! What it does not do today: any of the above; no WebSocket frame is parsed here.

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};

use crate::body::{self, ResBody};
use crate::routes::{builder, finish};

/// The path RFC 7395 clients are usually configured with (discovered through XEP-0156).
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";

/// Today: 501, so clients fall back to their next transport instead of retrying.
pub(crate) fn answer(_req: &Request<Incoming>) -> Response<ResBody> {
    let builder = builder(StatusCode::NOT_IMPLEMENTED)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    let why = "XMPP over WebSocket (RFC 7395) is not served yet; connect over TCP\n";
    finish(builder, body::text(why))
}
