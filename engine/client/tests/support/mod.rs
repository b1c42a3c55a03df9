//! A scripted XMPP server for the client's tests: it frames what the client writes and
//! answers like a server would (SASL through rookery-sasl's `ServerExchange`, bind, the
//! legacy session, XEP-0198 enable/resume/acks), recording every byte it sends so a login
//! can be replayed to a fresh client split anywhere.

#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_client::{Account, Client, Event, Login, Options, SmMode, Stream};
use rookery_proto::element::Element;
use rookery_proto::{Frame, Framer, FramerLimits};
use rookery_sasl::{ChannelBindingOffer, Credentials, Mechanism, ServerExchange, Step};

pub const DOMAIN: &str = "example.test";
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' version='1.0'>";
const SERVER_NONCE: &[u8] = b"SERVERnonce0123456789";

/// What the scripted server offers and how it answers.
pub struct Script {
    pub mechanisms: Vec<&'static str>,
    pub password: &'static str,
    pub sm: bool,
    pub session_required: bool,
    /// Answer `<resume/>` with `<resumed h=N/>` (else `<failed/>`).
    pub resume_h: Option<u32>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            mechanisms: vec!["PLAIN"],
            password: "secret",
            sm: false,
            session_required: false,
            resume_h: None,
        }
    }
}

pub struct Server {
    script: Script,
    framer: Framer,
    stored: Credentials,
    exchange: Option<ServerExchange>,
    authenticated: bool,
    /// Every byte sent to the client, in order.
    pub transcript: Vec<u8>,
    /// Stanzas received since `<enable/>`.
    pub handled: u32,
    counting: bool,
}

impl Server {
    pub fn new(script: Script) -> Server {
        let stored = Credentials::derive(
            script.password,
            64,
            b"salt-for-sha-1!!",
            b"salt-for-sha-256",
        )
        .unwrap();
        Server {
            script,
            framer: framer(),
            stored,
            exchange: None,
            authenticated: false,
            transcript: Vec::new(),
            handled: 0,
            counting: false,
        }
    }

    /// A new conn (same server state: sessions survive for resumption).
    pub fn reconnect(&mut self) {
        self.framer = framer();
        self.authenticated = false;
    }

    /// The client's bytes in, the server's reply out (also appended to the transcript).
    pub fn on_bytes(&mut self, data: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        let mut pos = 0;
        loop {
            let mut input = &data[pos..];
            let before = input.len();
            let frame = match self.framer.next_frame(&mut input) {
                Ok(Some(Frame::StreamOpen(_))) => None,
                Ok(Some(Frame::StreamClose)) => Some(b"</stream:stream>".to_vec()),
                Ok(Some(Frame::Stanza(bytes))) => Some(bytes.to_vec()),
                Ok(None) => break,
                Err(err) => panic!("client wrote bad XML: {err:?}"),
            };
            pos += before - input.len();
            match frame {
                None => self.features(&mut reply),
                Some(close) if close == b"</stream:stream>" => reply.extend_from_slice(&close),
                Some(element) => {
                    if self.on_element(&element, &mut reply) {
                        self.framer.reset();
                    }
                }
            }
        }
        self.transcript.extend_from_slice(&reply);
        reply
    }

    fn features(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(HEADER.as_bytes());
        out.extend_from_slice(b"<stream:features>");
        if !self.authenticated {
            out.extend_from_slice(b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
            for m in &self.script.mechanisms {
                out.extend_from_slice(format!("<mechanism>{m}</mechanism>").as_bytes());
            }
            out.extend_from_slice(b"</mechanisms>");
        } else {
            out.extend_from_slice(b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
            if self.script.session_required {
                out.extend_from_slice(b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>");
            } else {
                out.extend_from_slice(
                    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>",
                );
            }
            if self.script.sm {
                out.extend_from_slice(b"<sm xmlns='urn:xmpp:sm:3'/>");
            }
        }
        out.extend_from_slice(b"</stream:features>");
    }

    /// Returns true when the stream restarts after this element.
    fn on_element(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        let el = Element::parse(bytes).unwrap();
        match el.local_name() {
            "auth" => {
                let mechanism = Mechanism::from_name(el.attr("mechanism").unwrap()).unwrap();
                let payload = decode(&el.text());
                let (exchange, step) =
                    ServerExchange::start(mechanism, ChannelBindingOffer::NotOffered, &payload, SERVER_NONCE);
                self.exchange = Some(exchange);
                return self.sasl_step(step, out);
            }
            "response" => {
                let step = self.exchange.as_mut().unwrap().respond(&decode(&el.text()));
                return self.sasl_step(step, out);
            }
            "abort" => out.extend_from_slice(
                b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>",
            ),
            "iq" if el.attr("id") == Some("bind1") => {
                let resource = el
                    .children()
                    .next()
                    .and_then(|b| b.children().find(|c| c.local_name() == "resource"))
                    .map_or_else(|| "assigned-7".to_owned(), |r| r.text());
                out.extend_from_slice(format!(
                    "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                     <jid>user@{DOMAIN}/{resource}</jid></bind></iq>"
                ).as_bytes());
            }
            "iq" if el.attr("id") == Some("sess1") => {
                out.extend_from_slice(b"<iq type='result' id='sess1'/>")
            }
            "enable" => {
                self.counting = true;
                self.handled = 0;
                let resume = el.attr("resume") == Some("true");
                out.extend_from_slice(if resume {
                    b"<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>".as_slice()
                } else {
                    b"<enabled xmlns='urn:xmpp:sm:3'/>".as_slice()
                });
            }
            "resume" => match self.script.resume_h {
                Some(h) => out.extend_from_slice(
                    format!("<resumed xmlns='urn:xmpp:sm:3' previd='sm-1' h='{h}'/>").as_bytes(),
                ),
                None => out.extend_from_slice(
                    b"<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
                ),
            },
            "r" => out.extend_from_slice(
                format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", self.handled).as_bytes(),
            ),
            "a" | "error" => {}
            "message" | "presence" | "iq" => {
                if self.counting {
                    self.handled = self.handled.wrapping_add(1);
                }
            }
            other => panic!("scripted server got <{other}>"),
        }
        false
    }

    fn sasl_step(&mut self, step: Step, out: &mut Vec<u8>) -> bool {
        let exchange = self.exchange.as_mut().unwrap();
        let step = match step {
            Step::NeedCredentials { .. } => exchange.credentials(Some(&self.stored)),
            other => other,
        };
        match step {
            Step::Challenge(data) => {
                out.extend_from_slice(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
                out.extend_from_slice(STANDARD.encode(data).as_bytes());
                out.extend_from_slice(b"</challenge>");
                false
            }
            Step::Success {
                additional_data, ..
            } => {
                out.extend_from_slice(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
                out.extend_from_slice(STANDARD.encode(additional_data).as_bytes());
                out.extend_from_slice(b"</success>");
                self.authenticated = true;
                true
            }
            Step::Failure(failure) => {
                out.extend_from_slice(
                    format!(
                        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><{}/></failure>",
                        failure.condition()
                    )
                    .as_bytes(),
                );
                false
            }
            Step::NeedCredentials { .. } => panic!("asked for credentials twice"),
        }
    }
}

fn decode(text: &str) -> Vec<u8> {
    if text == "=" {
        return Vec::new();
    }
    STANDARD.decode(text.trim()).unwrap()
}

fn framer() -> Framer {
    Framer::new(FramerLimits {
        max_stanza_bytes: 1 << 16,
    })
}

pub fn login(password: &str, resource: Option<&str>) -> Login {
    Login::new(DOMAIN, "user", password)
        .with_resource(resource)
        .with_nonce_seed(7)
}

pub fn client(sm: SmMode) -> Client {
    Client::new(Options {
        sm,
        ..Options::default()
    })
}

/// Renders an event as text, for comparisons.
pub fn render(event: &Event<'_>) -> String {
    match event {
        Event::Stanza(view) => format!("Stanza({})", String::from_utf8_lossy(view.bytes())),
        other => format!("{other:?}"),
    }
}

/// A client talking to a scripted server until neither has anything more to say.
pub struct Pair {
    pub client: Client,
    pub server: Server,
    pub account: Login,
    pub events: Vec<String>,
    /// Everything the client wrote.
    pub sent: Vec<u8>,
}

impl Pair {
    pub fn new(script: Script, account: Login, sm: SmMode) -> Pair {
        Pair {
            client: client(sm),
            server: Server::new(script),
            account,
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Connects and runs until quiet.
    pub fn connect(&mut self) {
        let mut out = Vec::new();
        self.client.start(DOMAIN, &mut out);
        self.exchange(out);
    }

    /// The client sends `bytes` (a stanza of the caller's: counted), then runs until quiet.
    pub fn send_stanza(&mut self, bytes: &str) {
        self.client.stream_mut().count_sent(1);
        self.exchange(bytes.as_bytes().to_vec());
    }

    /// Sends raw bytes from the client, then runs until quiet.
    pub fn exchange(&mut self, mut to_server: Vec<u8>) {
        while !to_server.is_empty() {
            self.sent.extend_from_slice(&to_server);
            let reply = self.server.on_bytes(&to_server);
            to_server = Vec::new();
            let events = &mut self.events;
            self.client.feed(
                &reply,
                &mut self.account,
                &mut to_server,
                |ev, _: &mut Stream<()>, _: &mut Vec<u8>| events.push(render(&ev)),
            );
        }
    }

    /// The server pushes `bytes` to the client; the client's replies go to the server.
    pub fn push(&mut self, bytes: &str) {
        let mut out = Vec::new();
        let events = &mut self.events;
        self.client.feed(
            bytes.as_bytes(),
            &mut self.account,
            &mut out,
            |ev, _: &mut Stream<()>, _: &mut Vec<u8>| events.push(render(&ev)),
        );
        self.exchange(out);
    }
}

/// Feeds `transcript` to a fresh client in the given chunks; returns (client output, events).
pub fn replay(
    transcript: &[u8],
    chunks: &[usize],
    account: &mut dyn Account,
    sm: SmMode,
) -> (Vec<u8>, Vec<String>) {
    let mut client = client(sm);
    let mut out = Vec::new();
    let mut events = Vec::new();
    client.start(DOMAIN, &mut out);
    let mut rest = transcript;
    for &len in chunks.iter().chain(std::iter::once(&usize::MAX)) {
        let (now, later) = rest.split_at(len.min(rest.len()));
        client.feed(
            now,
            account,
            &mut out,
            |ev, _: &mut Stream<()>, _: &mut Vec<u8>| events.push(render(&ev)),
        );
        rest = later;
    }
    (out, events)
}
