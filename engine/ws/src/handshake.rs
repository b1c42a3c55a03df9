//! The opening handshake's keys and the client's side of it (RFC 6455 4, RFC 7395 3.1).
//!
//! What it does: [`accept_key`] computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`
//! (the server's answer, and the client's check of it); [`request`] writes a client's
//! upgrade request asking for the `xmpp` subprotocol; [`check_response`] reads the server's
//! answer once its head is complete.
//!
//! What it does not do: serve HTTP (rookery-http answers the server side with hyper).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The subprotocol RFC 7395 registers.
pub const SUBPROTOCOL: &str = "xmpp";
/// RFC 6455 1.3's GUID.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The longest response head a client reads before giving up.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 8192;

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    STANDARD.encode(sha.finalize())
}

/// A `Sec-WebSocket-Key` from 16 bytes the caller chose at random.
pub fn client_key(random: [u8; 16]) -> String {
    STANDARD.encode(random)
}

/// Appends the upgrade request for `path` on `host` with `key`.
pub fn request(out: &mut Vec<u8>, host: &str, path: &str, key: &str) {
    let text = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    );
    out.extend_from_slice(text.as_bytes());
}

/// Why the server's answer is not a WebSocket upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeError(pub String);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket handshake refused: {}", self.0)
    }
}

impl std::error::Error for HandshakeError {}

/// Checks the response in `bytes`: `Ok(None)` if its head is not complete yet, `Ok(Some(n))`
/// with the head's length once it is a 101 with the right accept key and subprotocol.
pub fn check_response(bytes: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        if bytes.len() > MAX_RESPONSE_HEAD_BYTES {
            return Err(HandshakeError("response head over 8 KiB".into()));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        let body = String::from_utf8_lossy(&bytes[end + 4..]);
        return Err(HandshakeError(format!("{status}: {}", body.trim())));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let want = accept_key(key.as_bytes());
    if header("sec-websocket-accept").as_deref() != Some(want.as_str()) {
        return Err(HandshakeError("wrong Sec-WebSocket-Accept".into()));
    }
    if header("sec-websocket-protocol").as_deref() != Some(SUBPROTOCOL) {
        return Err(HandshakeError("subprotocol xmpp not agreed".into()));
    }
    Ok(Some(end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_6455_example_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn responses_are_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: xmpp\r\n\r\nrest";
        assert_eq!(
            check_response(good.as_bytes(), key),
            Ok(Some(good.len() - 4))
        );
        assert_eq!(check_response(&good.as_bytes()[..20], key), Ok(None));
        let refused = "HTTP/1.1 426 Upgrade Required\r\n\r\nneeds xmpp";
        let err = check_response(refused.as_bytes(), key).unwrap_err();
        assert!(
            err.0.contains("426") && err.0.contains("needs xmpp"),
            "{err}"
        );
        assert!(check_response(good.replace("xmpp", "mqtt").as_bytes(), key).is_err());
    }
}
