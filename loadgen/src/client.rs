//! The simulated XMPP client: a sans-IO state machine, fed bytes, giving bytes back.
//!
//! Login path (RFC 6120): stream header -> features -> SASL PLAIN -> stream restart ->
//! features -> bind (resource [`BIND_RESOURCE`]) -> legacy session iq only when the server
//! says it is required -> (`<enable/>` of XEP-0198 when offered and wanted) -> `<presence/>`
//! -> [`ClientEvent::Online`]. Once online (see `online`) it reports messages and receipts,
//! answers receipt requests and iq get/set (ping with a result, anything else with
//! `service-unavailable`, as RFC 6120 8.4 requires), keeps the stream management counters
//! (see `sm`) and ignores presence, unless its [`Profile`] asks for the presence and group
//! scenarios' events (see `fanout`: presence, roster, iq answers, groupchat; the presence
//! profile also withholds the initial presence at login).
//!
//! What it does not do: sockets, clocks, timeouts, or any choice of what to send (the worker
//! does that); TLS, SCRAM, stream resumption.
//!
//! Invariants: after an event that ends the stream (`AuthFailed`, `BindFailed`, `StreamError`,
//! `StreamClosed`, `ProtocolError`) the client is in [`Phase::Done`] and ignores further
//! input. Nothing is allocated per received message: the body is borrowed from the frame
//! (unescaped only when it contains an entity). Size: see the test `client_is_small`.

use std::borrow::Cow;

use rookery_proto::element::Element;
use rookery_proto::writer::escape_attr;
use rookery_proto::{ns, Frame, Framer, FramerLimits, StanzaKind, StanzaView};

use crate::auth::Account;

mod fanout;
mod online;
pub mod sm;
pub use fanout::{PresenceEvent, PresenceKind, Profile, Subscription};
use sm::{SmPolicy, StreamMgmt};

/// The resource every simulated client binds; peers address each other's full JID with it.
pub const BIND_RESOURCE: &str = "load";
const BIND_ID: &str = "bind1";
const SESSION_ID: &str = "sess1";

/// Where the client is in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `start` not called yet.
    Idle,
    AwaitHeader,
    AwaitFeatures,
    AwaitSaslResult,
    AwaitBind,
    AwaitSession,
    Online,
    /// We sent `</stream:stream>`; waiting for the server's.
    Closing,
    /// The stream is over; input is ignored.
    Done,
}

/// What the worker learns from the bytes it fed.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent<'a> {
    /// Bound and initial presence sent (none with [`Profile::Roster`]).
    Online,
    /// A message with a body (other messages, such as receipts alone, are not reported);
    /// `delayed`: it carries an XEP-0203 `<delay xmlns='urn:xmpp:delay'/>` (stored offline).
    Message { body: Cow<'a, str>, delayed: bool },
    /// An XEP-0184 receipt for the message with this id.
    Receipt { id: Cow<'a, str> },
    /// The server enabled XEP-0198 stream management.
    SmEnabled,
    /// The server refused to enable it.
    SmFailed,
    /// The server acknowledged (XEP-0198) a chat message sent for `intended_ns`.
    SmAcked { intended_ns: u64 },
    /// A message of type error: the server bounced one of ours.
    Bounced,
    /// SASL failure; `condition` is the failure's child element (e.g. `not-authorized`).
    AuthFailed { condition: &'a str },
    /// Resource binding (or the legacy session) was refused.
    BindFailed { condition: &'a str },
    /// `<stream:error>` from the server.
    StreamError { condition: &'a str },
    /// The server closed the stream with `</stream:stream>`.
    StreamClosed,
    /// The server sent bytes that are not XMPP we can follow.
    ProtocolError { detail: &'static str },
    /// A presence stanza (profiles other than [`Profile::Chat`]).
    Presence(PresenceEvent<'a>),
    /// An item of our roster: from the answer to [`Client::request_roster`], or a roster push
    /// (which the client acknowledged).
    RosterItem {
        jid: Cow<'a, str>,
        subscription: Subscription,
    },
    /// The answer to [`Client::request_roster`] is in (its items were reported just before).
    RosterLoaded,
    /// The answer to one of the worker's iqs (profiles other than [`Profile::Chat`]).
    IqAnswer { id: Cow<'a, str>, ok: bool },
    /// A groupchat message with a body ([`Profile::Group`]; `Message` otherwise).
    GroupMessage {
        from: Cow<'a, str>,
        body: Cow<'a, str>,
    },
}

/// One simulated client's protocol state.
pub struct Client {
    framer: Framer,
    core: Core,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.core)
            .field("buffered_bytes", &self.framer.buffered_bytes())
            .finish()
    }
}

/// Everything but the framer, so a frame borrowed from the framer can be handled by `&mut Core`.
#[derive(Debug)]
struct Core {
    phase: Phase,
    authenticated: bool,
    session_required: bool,
    /// Set when SASL succeeded: the framer must be reset before the next byte is framed.
    restart: bool,
    sm_policy: SmPolicy,
    profile: Profile,
    /// The post-authentication features offered XEP-0198.
    sm_offered: bool,
    /// Present from our `<enable/>` until the stream ends or the server says `<failed/>`.
    sm: Option<Box<StreamMgmt>>,
}

impl Client {
    /// A client of the chat profile.
    #[cfg(test)]
    pub fn new(limits: FramerLimits, sm_policy: SmPolicy) -> Client {
        Client::with_profile(limits, sm_policy, Profile::Chat)
    }

    pub fn with_profile(limits: FramerLimits, sm_policy: SmPolicy, profile: Profile) -> Client {
        Client {
            framer: Framer::new(limits),
            core: Core {
                phase: Phase::Idle,
                authenticated: false,
                session_required: false,
                restart: false,
                sm_policy,
                profile,
                sm_offered: false,
                sm: None,
            },
        }
    }

    /// The worker wrote a chat message (due at `intended_ns`) to this client's conn. With
    /// stream management on, it is counted and timed, and `<r/>` is appended to `out`, so the
    /// server's `<a/>` comes back at once.
    pub fn on_message_sent(&mut self, intended_ns: u64, out: &mut Vec<u8>) {
        if let Some(sm) = &mut self.core.sm {
            sm.sent_message(intended_ns);
            sm::write_request(out);
        }
    }

    /// The worker wrote `count` stanzas of its own (presence, subscriptions, joins...) to this
    /// client's conn: counted for stream management.
    pub fn wrote_stanzas(&mut self, count: u32) {
        for _ in 0..count {
            self.core.count_sent();
        }
    }

    /// Asks for our roster (RFC 6121 2.1.3): appends the get to `out`; the answer comes as
    /// [`ClientEvent::RosterItem`]s then [`ClientEvent::RosterLoaded`].
    pub fn request_roster(&mut self, out: &mut Vec<u8>) {
        fanout::write_roster_get(out);
        self.core.count_sent();
    }

    /// Chat messages of this stream the server acknowledged (XEP-0198): the first this many
    /// sent. 0 without stream management.
    pub fn messages_acked(&self) -> u32 {
        self.core.sm.as_ref().map_or(0, |sm| sm.messages_acked())
    }

    /// Whether this stream asked for stream management (the server offered it and the run
    /// wants it) and the server has not refused it.
    pub fn sm_active(&self) -> bool {
        self.core.sm.is_some()
    }

    /// Stream management state, for tests.
    #[cfg(test)]
    pub fn sm(&self) -> Option<&StreamMgmt> {
        self.core.sm.as_deref()
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.core.phase
    }

    pub fn is_online(&self) -> bool {
        self.core.phase == Phase::Online
    }

    /// Heap bytes held (the framer's partial-stanza buffer), for the memory budget.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.framer.heap_bytes()
    }

    /// Opens the stream: appends the initial stream header to `out`.
    pub fn start(&mut self, domain: &str, out: &mut Vec<u8>) {
        write_stream_header(domain, out);
        self.core.phase = Phase::AwaitHeader;
    }

    /// Ends the stream politely: appends `</stream:stream>` (unless the stream is already over).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if matches!(self.core.phase, Phase::Idle | Phase::Closing | Phase::Done) {
            return;
        }
        out.extend_from_slice(b"</stream:stream>");
        self.core.phase = Phase::Closing;
    }

    /// Feeds bytes from the server. Replies go to `out`; what happened goes to `sink`.
    pub fn on_data<F>(
        &mut self,
        data: &[u8],
        account: &Account<'_>,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        let mut input = data;
        while !matches!(self.core.phase, Phase::Idle | Phase::Done) {
            // Frame from a copy of the slice and advance `input` by what was consumed, so the
            // framer's borrow ends with this iteration's frame.
            let mut chunk = input;
            let before = chunk.len();
            let frame = match self.framer.next_frame(&mut chunk) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(err) => {
                    self.core.phase = Phase::Done;
                    sink(ClientEvent::ProtocolError {
                        detail: err.detail(),
                    });
                    return;
                }
            };
            let consumed = before - chunk.len();
            self.core.on_frame(frame, account, out, sink);
            input = &input[consumed..];
            if self.core.restart {
                self.core.restart = false;
                self.framer.reset();
            }
        }
    }
}

impl Core {
    fn on_frame<F>(
        &mut self,
        frame: Frame<'_>,
        account: &Account<'_>,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        match frame {
            Frame::StreamOpen(_) if self.phase == Phase::AwaitHeader => {
                self.phase = Phase::AwaitFeatures;
            }
            Frame::StreamOpen(_) => self.fail(sink, "unexpected stream header"),
            Frame::StreamClose => {
                self.phase = Phase::Done;
                sink(ClientEvent::StreamClosed);
            }
            Frame::Stanza(bytes) => self.on_stanza(bytes, account, out, sink),
        }
    }

    fn fail<F: FnMut(ClientEvent<'_>)>(&mut self, sink: &mut F, detail: &'static str) {
        self.phase = Phase::Done;
        sink(ClientEvent::ProtocolError { detail });
    }

    fn on_stanza<F>(&mut self, bytes: &[u8], account: &Account<'_>, out: &mut Vec<u8>, sink: &mut F)
    where
        F: FnMut(ClientEvent<'_>),
    {
        let Ok(view) = StanzaView::parse(bytes) else {
            return self.fail(sink, "unparsable stanza");
        };
        if view.local_name() == "error" && view.name().contains(':') {
            self.phase = Phase::Done;
            let condition = first_child_name(&view, Some(ns::STREAMS_ERRORS));
            return sink(ClientEvent::StreamError { condition });
        }
        match self.phase {
            Phase::AwaitFeatures => self.on_features(bytes, account, out, sink),
            Phase::AwaitSaslResult => self.on_sasl_result(&view, account, out, sink),
            Phase::AwaitBind => self.on_iq_reply(&view, BIND_ID, out, sink),
            Phase::AwaitSession => self.on_iq_reply(&view, SESSION_ID, out, sink),
            Phase::Online | Phase::Closing => self.on_online_stanza(&view, out, sink),
            Phase::Idle | Phase::AwaitHeader | Phase::Done => {
                self.fail(sink, "stanza before the stream header")
            }
        }
    }

    fn on_features<F>(
        &mut self,
        bytes: &[u8],
        account: &Account<'_>,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        let Ok(features) = Element::parse(bytes) else {
            return self.fail(sink, "unparsable stream features");
        };
        if features.local_name() != "features" {
            return self.fail(sink, "expected stream features");
        }
        if !self.authenticated {
            let plain = features.child("mechanisms", ns::SASL).is_some_and(|mechs| {
                mechs
                    .children()
                    .any(|m| m.local_name() == "mechanism" && m.text() == "PLAIN")
            });
            if !plain {
                self.phase = Phase::Done;
                return sink(ClientEvent::AuthFailed {
                    condition: "PLAIN not offered",
                });
            }
            out.extend_from_slice(
                b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>",
            );
            account.write_sasl_plain(out);
            out.extend_from_slice(b"</auth>");
            self.phase = Phase::AwaitSaslResult;
            return;
        }
        self.sm_offered = features.child("sm", sm::NS).is_some();
        if features.child("bind", ns::BIND).is_none() {
            return self.fail(sink, "no resource binding offered after authentication");
        }
        // RFC 3921 session establishment is needed only when offered without <optional/>.
        self.session_required = features
            .child("session", ns::SESSION)
            .is_some_and(|s| s.children().all(|c| c.local_name() != "optional"));
        out.extend_from_slice(b"<iq type='set' id='");
        out.extend_from_slice(BIND_ID.as_bytes());
        out.extend_from_slice(b"'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>");
        out.extend_from_slice(BIND_RESOURCE.as_bytes());
        out.extend_from_slice(b"</resource></bind></iq>");
        self.phase = Phase::AwaitBind;
    }

    fn on_sasl_result<F>(
        &mut self,
        view: &StanzaView<'_>,
        account: &Account<'_>,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        match view.local_name() {
            "success" => {
                self.authenticated = true;
                self.restart = true;
                write_stream_header(account.domain, out);
                self.phase = Phase::AwaitHeader;
            }
            "failure" => {
                self.phase = Phase::Done;
                let condition = first_child_name(view, None);
                sink(ClientEvent::AuthFailed { condition });
            }
            _ => self.fail(sink, "unexpected reply to SASL auth"),
        }
    }

    /// Waits for the result of our bind or session iq; other stanzas are handled as online.
    fn on_iq_reply<F>(&mut self, view: &StanzaView<'_>, id: &str, out: &mut Vec<u8>, sink: &mut F)
    where
        F: FnMut(ClientEvent<'_>),
    {
        let is_reply = view.kind() == StanzaKind::Iq && view.id().as_deref() == Some(id);
        if !is_reply {
            return self.on_online_stanza(view, out, sink);
        }
        match view.stanza_type().as_deref() {
            Some("result") if self.phase == Phase::AwaitBind && self.session_required => {
                out.extend_from_slice(b"<iq type='set' id='");
                out.extend_from_slice(SESSION_ID.as_bytes());
                out.extend_from_slice(
                    b"'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
                );
                self.phase = Phase::AwaitSession;
            }
            Some("result") => {
                if self.sm_offered && self.sm_policy == SmPolicy::EnableWhenOffered {
                    // Before the presence, so the server counts the presence as our first.
                    sm::write_enable(out);
                    self.sm = Some(Box::new(StreamMgmt::requested()));
                }
                if self.profile.sends_initial_presence() {
                    out.extend_from_slice(b"<presence/>");
                    self.count_sent();
                }
                self.phase = Phase::Online;
                sink(ClientEvent::Online);
            }
            _ => {
                self.phase = Phase::Done;
                let condition = view
                    .children()
                    .find(|c| c.local_name == "error")
                    .and_then(|error| {
                        StanzaView::parse(error.bytes)
                            .ok()
                            .map(|e| first_child_name(&e, Some(ns::STANZAS_ERRORS)))
                    })
                    .unwrap_or("undefined-condition");
                sink(ClientEvent::BindFailed { condition });
            }
        }
    }
}

/// Local name of the first child (in namespace `ns` when given), e.g. a stream error condition.
fn first_child_name<'a>(view: &StanzaView<'a>, ns: Option<&str>) -> &'a str {
    view.children()
        .find(|c| ns.is_none() || c.xmlns == ns)
        .map_or("undefined-condition", |c| c.local_name)
}

fn write_stream_header(domain: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream to='");
    escape_attr(domain, out);
    out.extend_from_slice(
        b"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    );
}

#[cfg(test)]
mod tests;
