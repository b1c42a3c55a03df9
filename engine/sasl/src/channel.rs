//! Channel binding (RFC 5802 section 6, RFC 9266 `tls-exporter`): what each side knows about
//! the TLS channel, and the gs2 header rules that tie it to the SCRAM exchange.
//!
//! The gs2-cbind-flag says what the client believes: `n` it does not support binding; `y` it
//! does but thinks the server does not (so a server that *did* offer `-PLUS` has been
//! stripped of it by an attacker: a downgrade, refused); `p=tls-exporter` it binds, which is
//! only valid with a `-PLUS` mechanism and a server that offered it.
//!
//! What it does not do: compute the exporter value. The TLS layer does, per RFC 9266:
//! label `EXPORTER-Channel-Binding`, empty context, 32 bytes, and only on TLS 1.3 (or 1.2
//! with extended master secret); without such a value the server must not offer `-PLUS`.

use std::fmt;

use crate::failure::{reject, Failure, Reject};
use crate::mechanism::Mechanism;

/// Length of a tls-exporter channel binding value (RFC 9266 section 2).
pub const TLS_EXPORTER_BYTES: usize = 32;

/// What the server offered on this stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChannelBindingOffer {
    /// No `-PLUS` mechanisms were advertised (no TLS, or no exporter value).
    NotOffered,
    /// `-PLUS` mechanisms were advertised; this is the stream's tls-exporter value.
    TlsExporter([u8; TLS_EXPORTER_BYTES]),
}

/// What the client knows about the channel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// The client does not support channel binding (gs2 flag `n`).
    None,
    /// The client supports channel binding but the server did not offer `-PLUS` (flag `y`).
    SupportedNotOffered,
    /// The stream's tls-exporter value. With a `-PLUS` mechanism the client binds to it
    /// (`p=tls-exporter`); with another mechanism it sends `y`, because choosing a
    /// non-PLUS mechanism while able to bind means the server did not offer `-PLUS`.
    TlsExporter([u8; TLS_EXPORTER_BYTES]),
}

// Exporter values are keying material: keep them out of logs.
impl fmt::Debug for ChannelBindingOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelBindingOffer::NotOffered => f.write_str("NotOffered"),
            ChannelBindingOffer::TlsExporter(_) => f.write_str("TlsExporter(..)"),
        }
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelBinding::None => f.write_str("None"),
            ChannelBinding::SupportedNotOffered => f.write_str("SupportedNotOffered"),
            ChannelBinding::TlsExporter(_) => f.write_str("TlsExporter(..)"),
        }
    }
}

/// The gs2-cbind-flag of a client-first message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CbindFlag<'a> {
    N,
    Y,
    P(&'a str),
}

/// The only channel binding type this crate binds to.
const TLS_EXPORTER: &str = "tls-exporter";

/// Server side: checks the flag against the mechanism and the offer and returns the
/// channel binding data the client must echo (after the gs2 header) in `c=`.
pub(crate) fn server_binding(
    mechanism: Mechanism,
    offer: &ChannelBindingOffer,
    flag: CbindFlag<'_>,
) -> Result<Vec<u8>, Reject> {
    let plus = mechanism.needs_channel_binding();
    match flag {
        CbindFlag::N if plus => Err(reject(
            Failure::NotAuthorized,
            "a -PLUS mechanism with gs2 flag n (no channel binding)",
        )),
        CbindFlag::N => Ok(Vec::new()),
        CbindFlag::Y if plus => Err(reject(
            Failure::MalformedRequest,
            "gs2 flag y (server does not bind) with a -PLUS mechanism",
        )),
        CbindFlag::Y => match offer {
            ChannelBindingOffer::NotOffered => Ok(Vec::new()),
            ChannelBindingOffer::TlsExporter(_) => Err(reject(
                Failure::NotAuthorized,
                "downgrade: the client can bind (gs2 flag y) but -PLUS was offered and stripped",
            )),
        },
        CbindFlag::P(_) if !plus => Err(reject(
            Failure::MalformedRequest,
            "gs2 flag p (channel binding) with a mechanism without -PLUS",
        )),
        CbindFlag::P(name) if name != TLS_EXPORTER => Err(reject(
            Failure::NotAuthorized,
            "unsupported channel binding type (only tls-exporter)",
        )),
        CbindFlag::P(_) => match offer {
            ChannelBindingOffer::TlsExporter(value) => Ok(value.to_vec()),
            ChannelBindingOffer::NotOffered => Err(reject(
                Failure::InvalidMechanism,
                "channel binding requested but -PLUS was not offered",
            )),
        },
    }
}

/// Client side: the gs2 header (without authzid) and the channel binding data.
pub(crate) fn client_binding(
    mechanism: Mechanism,
    binding: &ChannelBinding,
) -> Option<(&'static str, Vec<u8>)> {
    match (mechanism.needs_channel_binding(), binding) {
        (true, ChannelBinding::TlsExporter(value)) => Some(("p=tls-exporter,,", value.to_vec())),
        (true, _) => None,
        (false, ChannelBinding::None) => Some(("n,,", Vec::new())),
        (false, _) => Some(("y,,", Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: [u8; 32] = [5; 32];

    #[test]
    fn server_rules() {
        let offered = ChannelBindingOffer::TlsExporter(VALUE);
        let none = ChannelBindingOffer::NotOffered;
        let plain = Mechanism::ScramSha256;
        let plus = Mechanism::ScramSha256Plus;
        let failure = |r: Result<Vec<u8>, Reject>| r.map_err(|r| r.failure);
        assert_eq!(
            failure(server_binding(plain, &none, CbindFlag::N)),
            Ok(vec![])
        );
        assert_eq!(
            failure(server_binding(plain, &offered, CbindFlag::N)),
            Ok(vec![])
        );
        assert_eq!(
            failure(server_binding(plain, &none, CbindFlag::Y)),
            Ok(vec![])
        );
        assert_eq!(
            failure(server_binding(plain, &offered, CbindFlag::Y)),
            Err(Failure::NotAuthorized)
        );
        assert_eq!(
            failure(server_binding(plus, &offered, CbindFlag::P("tls-exporter"))),
            Ok(VALUE.to_vec())
        );
        assert_eq!(
            failure(server_binding(plus, &offered, CbindFlag::P("tls-unique"))),
            Err(Failure::NotAuthorized)
        );
        assert_eq!(
            failure(server_binding(plus, &offered, CbindFlag::N)),
            Err(Failure::NotAuthorized)
        );
        assert_eq!(
            failure(server_binding(plus, &offered, CbindFlag::Y)),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(
            failure(server_binding(
                plain,
                &offered,
                CbindFlag::P("tls-exporter")
            )),
            Err(Failure::MalformedRequest)
        );
    }

    #[test]
    fn client_rules() {
        let bound = ChannelBinding::TlsExporter(VALUE);
        assert_eq!(
            client_binding(Mechanism::ScramSha1Plus, &bound),
            Some(("p=tls-exporter,,", VALUE.to_vec()))
        );
        assert_eq!(
            client_binding(Mechanism::ScramSha1Plus, &ChannelBinding::None),
            None
        );
        assert_eq!(
            client_binding(Mechanism::ScramSha1, &bound),
            Some(("y,,", vec![]))
        );
        assert_eq!(
            client_binding(Mechanism::ScramSha1, &ChannelBinding::SupportedNotOffered),
            Some(("y,,", vec![]))
        );
        assert_eq!(
            client_binding(Mechanism::ScramSha1, &ChannelBinding::None),
            Some(("n,,", vec![]))
        );
        assert_eq!(format!("{bound:?}"), "TlsExporter(..)");
    }
}
