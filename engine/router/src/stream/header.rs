//! The stream header and features of a conn's stream (RFC 6120 4.3, 4.7): checking the
//! client's header, writing ours, and the features offered at each stage, computed from
//! what the stream offers (the SASL mechanisms) rather than kept as constant bytes.
//!
//! What it does not do: decide when a header or features go out (`stream`), or SASL itself
//! (`sasl`). The `Dialect` says how the stream's own elements are written: RFC 6120 over TCP,
//! or RFC 7395 over WebSocket (`<open/>`, `<close/>`, and `xmlns:stream` declared on
//! `<stream:features>` and `<stream:error>`, since each WebSocket message is a document of its
//! own). The client's side needs nothing here: the server's WebSocket layer (rookery-ws)
//! turns its `<open/>` and `<close/>` into the header and end tag the framer parses.
//!
//! Invariants: for `Dialect::Stream` the bytes written are exactly what the router wrote
//! before features were computed (the tests pin them); every value from outside is escaped;
//! a `WebSocket` conn is never sent an unclosed element (its layer sends one element per
//! message).

use rookery_proto::element::Element;
use rookery_proto::{ns, Jid};

use crate::effects::Framing;
use crate::errors::StreamError;
use crate::replies;
use crate::stream::tls::Protection;

/// The framing of a conn's stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 6120 over TCP: `<stream:stream>` ... `</stream:stream>`.
    #[default]
    Stream,
    /// RFC 7395 over WebSocket: `<open/>` ... `<close/>`.
    WebSocket,
}

impl Dialect {
    /// The dialect of a conn whose layers frame its stream as `framing`.
    pub(crate) fn of(framing: Framing) -> Dialect {
        match framing {
            Framing::Stream => Dialect::Stream,
            Framing::WebSocket => Dialect::WebSocket,
        }
    }
}

/// RFC 7395's framing namespace.
const FRAMING_NS: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Which features a (restarted) stream offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before authentication: the SASL mechanisms.
    PreAuth,
    /// After SASL, on the restarted stream: bind, session (optional), XEP-0198.
    PostAuth,
}

impl Dialect {
    /// Our stream header with stream id `id`, from `domain`.
    pub(crate) fn open(self, out: &mut Vec<u8>, id: &str, domain: &str) {
        match self {
            Dialect::Stream => replies::stream_header(out, id, domain),
            Dialect::WebSocket => {
                out.extend_from_slice(b"<open xmlns='");
                out.extend_from_slice(FRAMING_NS.as_bytes());
                out.push(b'\'');
                replies::attr(out, "id", id);
                replies::attr(out, "from", domain);
                out.extend_from_slice(b" version='1.0' xml:lang='en'/>");
            }
        }
    }

    /// The end of our stream: `</stream:stream>` or `<close/>` (RFC 7395 3.6).
    pub(crate) fn close(self, out: &mut Vec<u8>) {
        match self {
            Dialect::Stream => out.extend_from_slice(replies::STREAM_CLOSE),
            Dialect::WebSocket => {
                out.extend_from_slice(b"<close xmlns='");
                out.extend_from_slice(FRAMING_NS.as_bytes());
                out.extend_from_slice(b"'/>");
            }
        }
    }

    /// `<stream:error>`, declaring the prefix where no stream header does.
    pub(crate) fn error_start(self, out: &mut Vec<u8>) {
        match self {
            Dialect::Stream => out.extend_from_slice(b"<stream:error>"),
            Dialect::WebSocket => {
                out.extend_from_slice(b"<stream:error xmlns:stream='");
                out.extend_from_slice(ns::STREAM.as_bytes());
                out.extend_from_slice(b"'>");
            }
        }
    }

    /// The features of `stage`; before authentication, what `protection` allows: STARTTLS
    /// (with `<required/>` when SASL waits for it), the SASL mechanisms, and the channel
    /// binding type `-PLUS` uses (XEP-0440).
    pub(crate) fn features(self, stage: Stage, protection: &Protection, out: &mut Vec<u8>) {
        match self {
            Dialect::Stream => out.extend_from_slice(b"<stream:features>"),
            Dialect::WebSocket => {
                out.extend_from_slice(b"<stream:features xmlns:stream='");
                out.extend_from_slice(ns::STREAM.as_bytes());
                out.extend_from_slice(b"'>");
            }
        }
        match stage {
            Stage::PreAuth => {
                match protection.starttls {
                    Some(true) => out.extend_from_slice(
                        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>",
                    ),
                    Some(false) => out
                        .extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
                    None => {}
                }
                if !protection.mechanisms.is_empty() {
                    out.extend_from_slice(b"<mechanisms xmlns='");
                    out.extend_from_slice(ns::SASL.as_bytes());
                    out.extend_from_slice(b"'>");
                    for mechanism in protection.mechanisms {
                        out.extend_from_slice(b"<mechanism>");
                        out.extend_from_slice(mechanism.name().as_bytes());
                        out.extend_from_slice(b"</mechanism>");
                    }
                    out.extend_from_slice(b"</mechanisms>");
                }
                if protection.register {
                    out.extend_from_slice(
                        b"<register xmlns='http://jabber.org/features/iq-register'/>",
                    );
                }
                if protection
                    .mechanisms
                    .iter()
                    .any(|m| m.needs_channel_binding())
                {
                    out.extend_from_slice(
                        b"<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
                          <channel-binding type='tls-exporter'/></sasl-channel-binding>",
                    );
                }
            }
            Stage::PostAuth => {
                out.extend_from_slice(b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
                out.extend_from_slice(b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'>");
                out.extend_from_slice(b"<optional/></session>");
                out.extend_from_slice(b"<sm xmlns='urn:xmpp:sm:3'/>");
                out.extend_from_slice(b"<csi xmlns='urn:xmpp:csi:0'/>");
            }
        }
        out.extend_from_slice(b"</stream:features>");
    }
}

/// Checks a client stream header (RFC 6120 4.7, 4.9.3): the stream element in the streams
/// namespace, content namespace jabber:client, `to` our domain (or absent), version >= 1.0.
/// Returns the stream error condition on failure.
pub(crate) fn check_header(bytes: &[u8], domain: &Jid) -> Result<(), StreamError> {
    let header = Element::parse_open_tag(bytes).map_err(|_| StreamError::NotWellFormed)?;
    if header.local_name() != "stream" || header.ns() != Some(ns::STREAM) {
        return Err(StreamError::InvalidNamespace);
    }
    if header.attr("xmlns") != Some(ns::CLIENT) {
        return Err(StreamError::InvalidNamespace);
    }
    if let Some(to) = header.attr("to") {
        if Jid::parse(to).ok().as_ref() != Some(domain) {
            return Err(StreamError::HostUnknown);
        }
    }
    match header.attr("version").and_then(major_version) {
        Some(major) if major >= 1 => Ok(()),
        _ => Err(StreamError::UnsupportedVersion),
    }
}

/// The major number of a `major.minor` version string (RFC 6120 4.7.5).
fn major_version(version: &str) -> Option<u32> {
    let (major, minor) = version.split_once('.')?;
    minor.parse::<u32>().ok()?;
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_sasl::Mechanism;

    fn check(header: &str) -> Result<(), &'static str> {
        let domain = Jid::parse("example.com").expect("valid domain");
        check_header(header.as_bytes(), &domain).map_err(StreamError::condition)
    }

    const GOOD: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

    #[test]
    fn a_proper_header_passes() {
        assert_eq!(check(GOOD), Ok(()));
        assert_eq!(check(&GOOD.replace("example.com", "EXAMPLE.com")), Ok(()));
        assert_eq!(check(&GOOD.replace(" to='example.com'", "")), Ok(()));
        assert_eq!(check(&GOOD.replace("1.0", "1.1")), Ok(()));
    }

    #[test]
    fn wrong_namespaces_are_invalid_namespace() {
        assert_eq!(
            check(&GOOD.replace("jabber:client", "jabber:server")),
            Err("invalid-namespace")
        );
        assert_eq!(
            check(&GOOD.replace("etherx.jabber.org", "wrong.org")),
            Err("invalid-namespace")
        );
        assert_eq!(
            check(&GOOD.replace("stream:stream ", "stream:strm ")),
            Err("invalid-namespace")
        );
    }

    #[test]
    fn other_hosts_are_host_unknown() {
        assert_eq!(
            check(&GOOD.replace("to='example.com'", "to='other.org'")),
            Err("host-unknown")
        );
        assert_eq!(
            check(&GOOD.replace("to='example.com'", "to='a@example.com'")),
            Err("host-unknown")
        );
    }

    #[test]
    fn old_or_missing_versions_are_unsupported() {
        assert_eq!(
            check(&GOOD.replace("1.0", "0.9")),
            Err("unsupported-version")
        );
        assert_eq!(
            check(&GOOD.replace(" version='1.0'", "")),
            Err("unsupported-version")
        );
        assert_eq!(
            check(&GOOD.replace("1.0", "one")),
            Err("unsupported-version")
        );
    }

    fn offering(starttls: Option<bool>, mechanisms: &'static [Mechanism]) -> Protection {
        Protection {
            starttls,
            mechanisms,
            binding: rookery_sasl::ChannelBindingOffer::NotOffered,
            register: false,
        }
    }

    fn features(stage: Stage) -> Vec<u8> {
        let mut out = Vec::new();
        let plain = offering(None, &[Mechanism::Plain]);
        Dialect::Stream.features(stage, &plain, &mut out);
        out
    }

    #[test]
    fn features_are_the_bytes_the_router_always_sent() {
        let pre_auth: &[u8] = b"<stream:features><mechanisms \
xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>\
</stream:features>";
        let post_auth: &[u8] = b"<stream:features><bind \
xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session \
xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
<sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/></stream:features>";
        assert_eq!(features(Stage::PreAuth), pre_auth);
        assert_eq!(features(Stage::PostAuth), post_auth);
    }

    #[test]
    fn mechanisms_are_listed_in_order() {
        let mut out = Vec::new();
        let offered = offering(None, &[Mechanism::ScramSha256, Mechanism::Plain]);
        Dialect::Stream.features(Stage::PreAuth, &offered, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains(
            "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
        ));
        assert!(!text.contains("sasl-channel-binding"), "{text}");
    }

    #[test]
    fn starttls_comes_first_and_required_tls_withholds_the_mechanisms() {
        let text = |protection: Protection| {
            let mut out = Vec::new();
            Dialect::Stream.features(Stage::PreAuth, &protection, &mut out);
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(
            text(offering(Some(true), &[])),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>\
             </starttls></stream:features>"
        );
        let optional = text(offering(Some(false), &[Mechanism::ScramSha256]));
        assert!(optional.starts_with(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms"
        ));
        let plus = text(offering(
            None,
            &[Mechanism::ScramSha256Plus, Mechanism::ScramSha256],
        ));
        assert!(plus.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"));
        assert!(plus.contains(
            "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/>"
        ));
        assert!(!plus.contains("starttls"));
    }

    #[test]
    fn the_stream_dialect_opens_with_the_rfc6120_header() {
        let (mut ours, mut direct) = (Vec::new(), Vec::new());
        Dialect::Stream.open(&mut ours, "id1", "example.com");
        replies::stream_header(&mut direct, "id1", "example.com");
        assert_eq!(ours, direct);
        assert!(ours.starts_with(b"<?xml version='1.0'?><stream:stream "));
    }

    #[test]
    fn the_websocket_dialect_writes_rfc_7395_framing() {
        let mut out = Vec::new();
        Dialect::WebSocket.open(&mut out, "id1", "example.com");
        let protection = offering(None, &[Mechanism::Plain]);
        Dialect::WebSocket.features(Stage::PreAuth, &protection, &mut out);
        Dialect::WebSocket.error_start(&mut out);
        Dialect::WebSocket.close(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='id1' from='example.com' \
             version='1.0' xml:lang='en'/><stream:features \
             xmlns:stream='http://etherx.jabber.org/streams'><mechanisms \
             xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>\
             </mechanisms></stream:features><stream:error \
             xmlns:stream='http://etherx.jabber.org/streams'>\
             <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
        );
    }

    #[test]
    fn major_version_parses_major_dot_minor() {
        assert_eq!(major_version("1.0"), Some(1));
        assert_eq!(major_version("2.13"), Some(2));
        assert_eq!(major_version("1"), None);
        assert_eq!(major_version("1.x"), None);
    }
}
