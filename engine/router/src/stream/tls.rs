//! TLS as the stream layer sees it (RFC 6120 5): the STARTTLS feature, the `<starttls/>`
//! negotiation, and what a conn's security allows SASL to offer.
//!
//! What it does: reads a conn's [`Security`] from the layers below (`Effects::transport`),
//! decides whether STARTTLS is offered and required (`TlsPolicy`, `--require-tls`), which
//! mechanisms follow from that (no PLAIN in the clear off loopback, `-PLUS` only with a
//! tls-exporter value, none at all while TLS is still required), and answers `<starttls/>`:
//! `<proceed/>`, then the layers below switch the conn to TLS (`Effects::start_tls`) and the
//! stream starts over from its header (RFC 6120 5.4.3.3).
//!
//! What it does not do: TLS itself (the server's transport layer runs rustls), or SASL
//! (`sasl`).
//!
//! Invariants: `<proceed/>` is the last byte sent in the clear: `start_tls` follows it in the
//! same call, and the feed loop hands every byte after `<starttls/>` to the TLS layer, never
//! to the framer. A conn that is already under TLS, or a server without a certificate,
//! answers `<starttls/>` with `<failure/>` and closes (RFC 6120 5.4.2.2).

use rookery_proto::element::Element;
use rookery_sasl::{ChannelBindingOffer, Mechanism};

use crate::config::TlsRequired;
use crate::effects::{Effects, Framing, Security};
use crate::errors::{Cause, SessionEnd};
use crate::router::Router;
use crate::stream::conn::Phase;
use crate::stream::Next;

/// The STARTTLS namespace (RFC 6120 5.4).
pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const PROCEED: &[u8] = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const FAILURE: &[u8] = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

/// What a conn's security means for the pre-authentication features and SASL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Protection {
    /// STARTTLS is offered; `required` when SASL must wait for it.
    pub starttls: Option<bool>,
    /// The SASL mechanisms offered now (empty while TLS is required first).
    pub mechanisms: &'static [Mechanism],
    /// The tls-exporter value `-PLUS` mechanisms bind to, when they are offered.
    pub binding: ChannelBindingOffer,
    /// XEP-0077 registration is offered (`--allow-registration`, stored accounts, and
    /// under TLS or on loopback).
    pub register: bool,
}

impl Router {
    /// What the conn in `slot` may be offered before authentication.
    pub(crate) fn protection(&self, slot: u32, fx: &impl Effects) -> Protection {
        let Some(conn) = self.conns.get(slot) else {
            return Protection {
                starttls: None,
                mechanisms: &[],
                binding: ChannelBindingOffer::NotOffered,
                register: false,
            };
        };
        let peer = self.unauth.address(slot);
        let registration =
            self.config.allow_registration && self.sasl.check() == crate::accounts::Check::Stored;
        let transport = fx.transport(conn.key);
        // RFC 7395 3.1: no STARTTLS over WebSocket (TLS is the `wss:` URI's, below HTTP).
        let can_starttls = transport.framing == Framing::Stream;
        match transport.security {
            Security::Tls { exporter } => {
                let binding = match exporter {
                    Some(value) => ChannelBindingOffer::TlsExporter(value),
                    None => ChannelBindingOffer::NotOffered,
                };
                let plus = exporter.is_some();
                Protection {
                    starttls: None,
                    mechanisms: self.sasl.mechanisms(false, plus),
                    binding,
                    register: registration,
                }
            }
            Security::Clear => {
                let loopback = peer.is_some_and(|ip| ip.is_loopback());
                let policy = self.config.tls;
                let required = match policy.required {
                    TlsRequired::Never => false,
                    TlsRequired::OffLoopback => !loopback,
                    TlsRequired::Always => true,
                };
                // A conn handed over to bind or resume has no address here any more (it
                // authenticated elsewhere); one handed over to authenticate brought its own.
                let exposed = peer.is_some_and(|ip| !ip.is_loopback());
                Protection {
                    starttls: (policy.starttls && can_starttls).then_some(required),
                    mechanisms: if required {
                        &[]
                    } else {
                        self.sasl.mechanisms(exposed, false)
                    },
                    binding: ChannelBindingOffer::NotOffered,
                    register: registration && !required && loopback,
                }
            }
        }
    }

    /// `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` before authentication.
    pub(super) fn on_starttls(
        &mut self,
        slot: u32,
        element: &Element,
        fx: &mut impl Effects,
    ) -> Next {
        let Some(conn) = self.conns.get(slot) else {
            return Next::Stop;
        };
        let (key, dialect) = (conn.key, conn.dialect);
        let offered = self.protection(slot, fx).starttls.is_some();
        if element.local_name() != "starttls" || !offered {
            // RFC 6120 5.4.2.2: a failure case; the server closes the stream.
            self.reply.clear();
            self.reply.extend_from_slice(FAILURE);
            dialect.close(&mut self.reply);
            fx.send(key, &self.reply);
            fx.close(key, Cause::Peer);
            self.home.stats.starttls_failures += 1;
            self.leave_directory(slot, SessionEnd::Terminate, fx);
            return Next::Stop;
        }
        fx.send(key, PROCEED);
        if let Some(conn) = self.conns.get_mut(slot) {
            // The client opens a new stream over TLS; nothing said so far carries over.
            conn.phase = Phase::AwaitHeader;
            conn.header_sent = false;
        }
        self.sasl.forget(slot);
        self.home.stats.starttls += 1;
        Next::StartTls
    }
}
