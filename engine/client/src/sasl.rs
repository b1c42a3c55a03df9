//! SASL over XMPP (RFC 6120 6): the mechanism chosen from the server's list, `<auth/>`,
//! `<challenge/>`/`<response/>` through `rookery_sasl::ClientExchange`, and `<success/>`
//! (verified for SCRAM: the server must prove it knows the password) or `<failure/>`.
//!
//! What it does not do: the SASL mechanisms themselves (rookery-sasl), `-PLUS` (needs the
//! TLS exporter, later), retrying after a failure (the stream ends).
//!
//! Invariants: a SCRAM exchange lives in the client's heap block only until `<success/>` or
//! `<failure/>`; PLAIN keeps nothing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_proto::element::Element;
use rookery_proto::{ns, StanzaView};
use rookery_sasl::{ChannelBinding, ClientError, ClientExchange, Mechanism};

use crate::event::{AuthFailure, Event, Flow, Sink};
use crate::stream::{Io, Phase, Stream, AUTHENTICATED, RESTART};
use crate::text::element_text;
use crate::wire;

impl<X: Default> Stream<X> {
    /// Pre-authentication features: picks a mechanism and sends `<auth/>`.
    pub(crate) fn start_sasl(
        &mut self,
        features: &Element<'_>,
        io: &mut Io<'_, impl Sink<X>>,
    ) -> Flow {
        let offered = features
            .child("mechanisms", ns::SASL)
            .map(|m| {
                m.children()
                    .filter(|c| c.local_name() == "mechanism")
                    .map(|c| c.text())
                    .collect::<Vec<String>>()
            })
            .unwrap_or_default();
        let Some(mechanism) = self.mechanisms.choose(offered.iter().map(|s| s.trim())) else {
            return self.end(
                Event::AuthFailed(AuthFailure::NoCommonMechanism),
                io.out,
                io.sink,
            );
        };
        let nonce = match mechanism {
            Mechanism::Plain => Vec::new(),
            _ => io.account.nonce(),
        };
        let started = ClientExchange::start(
            mechanism,
            &io.account.username(),
            &io.account.password(),
            ChannelBinding::None,
            &nonce,
        );
        let (exchange, initial) = match started {
            Ok(started) => started,
            Err(error) => {
                return self.end(
                    Event::AuthFailed(AuthFailure::Client(error)),
                    io.out,
                    io.sink,
                )
            }
        };
        wire::auth(mechanism.name(), &initial, io.out);
        if mechanism != Mechanism::Plain {
            self.set_sasl(Some(exchange));
        }
        self.phase = Phase::AwaitSasl;
        Flow::Continue
    }

    pub(crate) fn on_sasl(&mut self, view: &StanzaView<'_>, io: &mut Io<'_, impl Sink<X>>) -> Flow {
        if view.xmlns() != Some(ns::SASL) {
            return self.fail("unexpected reply to SASL auth", io.out, io.sink);
        }
        match view.local_name() {
            "challenge" => self.on_challenge(view, io.out, io.sink),
            "success" => self.on_success(view, io),
            "failure" => {
                self.set_sasl(None);
                let condition = view
                    .children()
                    .find(|c| c.local_name != "text")
                    .map_or("undefined-condition", |c| c.local_name);
                self.end(
                    Event::AuthFailed(AuthFailure::Server { condition }),
                    io.out,
                    io.sink,
                )
            }
            _ => self.fail("unexpected reply to SASL auth", io.out, io.sink),
        }
    }

    fn on_challenge(
        &mut self,
        view: &StanzaView<'_>,
        out: &mut Vec<u8>,
        sink: &mut impl Sink<X>,
    ) -> Flow {
        let Some(mut exchange) = self.take_sasl() else {
            return self.fail("SASL challenge to a mechanism that takes none", out, sink);
        };
        let Some(challenge) = payload(view) else {
            return self.fail("SASL challenge is not base64", out, sink);
        };
        let response = match exchange.step(&challenge) {
            Ok(response) => response,
            Err(error) => return self.abort(error, out, sink),
        };
        wire::response(&response, out);
        self.set_sasl(Some(exchange));
        Flow::Continue
    }

    fn on_success(&mut self, view: &StanzaView<'_>, io: &mut Io<'_, impl Sink<X>>) -> Flow {
        if let Some(mut exchange) = self.take_sasl() {
            let Some(data) = payload(view) else {
                return self.fail("SASL success data is not base64", io.out, io.sink);
            };
            if let Err(error) = exchange.finish(&data) {
                return self.end(
                    Event::AuthFailed(AuthFailure::Client(error)),
                    io.out,
                    io.sink,
                );
            }
        }
        self.flags |= AUTHENTICATED | RESTART;
        wire::stream_header(io.account.domain(), io.out);
        self.phase = Phase::AwaitHeader;
        (io.sink)(Event::Authenticated, self, io.out)
    }

    /// Our side refused the server's SASL message: abort the exchange and end the stream.
    fn abort(&mut self, error: ClientError, out: &mut Vec<u8>, sink: &mut impl Sink<X>) -> Flow {
        out.extend_from_slice(b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        self.end(Event::AuthFailed(AuthFailure::Client(error)), out, sink)
    }
}

/// The decoded base64 text of a SASL element (`=` or nothing: empty).
fn payload(view: &StanzaView<'_>) -> Option<Vec<u8>> {
    let text = element_text(view.bytes())?;
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    STANDARD.decode(text).ok()
}
