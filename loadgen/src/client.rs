//! The simulated XMPP client: the load generator's scenario logic over one
//! `rookery_client::Client`, which does the stream, SASL PLAIN, binding (resource
//! [`BIND_RESOURCE`]), the legacy session when required and XEP-0198 (`<enable/>` when
//! offered and wanted, `<r/>` answered, `<a h/>` checked).
//!
//! Here, on top of it: the initial `<presence/>` after login (withheld by the presence
//! profile), then [`ClientEvent::Online`]. Once online (see `online`) it reports messages and
//! receipts, answers receipt requests and iq get/set (ping with a result, anything else with
//! `service-unavailable`, as RFC 6120 8.4 requires), times chat messages until the server
//! acknowledges them (see `sm`) and ignores presence, unless the [`Profile`] asks for the
//! presence and group scenarios' events (see `fanout`).
//!
//! What it does not do: sockets, clocks, timeouts, or any choice of what to send (the worker
//! does that); TLS itself (the worker's `security` layer; here only the STARTTLS steps);
//! stream resumption. SASL is PLAIN unless `--sasl` asks for SCRAM (then each login also
//! costs the client a PBKDF2, as a real client's first login does).
//!
//! Invariants: after an event that ends the stream (`AuthFailed`, `BindFailed`, `StreamError`,
//! `Redirect`,
//! `StreamClosed`, `ProtocolError`) the client is in [`Phase::Done`] and ignores further
//! input. Nothing is allocated per received message: the body is borrowed from the frame
//! (unescaped only when it contains an entity). Nothing per client is kept here but the
//! crate's client (the profile is the worker's, passed in). Size: see the test
//! `client_is_small`.

use std::borrow::Cow;

use rookery_client::{AuthFailure, Event, Mechanisms, Options, SmMode, Stream};
use rookery_proto::FramerLimits;

use crate::auth::Account;

mod fanout;
mod online;
pub mod sm;
pub use fanout::{PresenceEvent, PresenceKind, Profile, Subscription};
#[cfg(test)]
pub use rookery_client::Phase;
use sm::{SmPolicy, StreamMgmt};

/// The resource every simulated client binds; peers address each other's full JID with it.
pub const BIND_RESOURCE: &str = "load";

/// What the worker learns from the bytes it fed.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent<'a> {
    /// `<proceed/>` to our `<starttls/>`: start TLS on the conn, then
    /// [`Client::tls_started`].
    StartTls,
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
    /// `<see-other-host/>` (RFC 6120 4.9.3.19): log in at `host` instead (its text:
    /// `host`, `host:port` or `[v6]:port`).
    Redirect { host: Cow<'a, str> },
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

/// How every client of a run logs in: SASL mechanisms allowed (`--sasl`) and whether it
/// negotiates STARTTLS first (`--tls starttls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginKind {
    pub mechanisms: Mechanisms,
    pub starttls: bool,
}

impl LoginKind {
    /// PLAIN over a plaintext stream (or direct TLS, which the client does not see).
    #[cfg(test)]
    pub const PLAIN: LoginKind = LoginKind {
        mechanisms: Mechanisms::PLAIN,
        starttls: false,
    };
}

/// One simulated client's protocol state.
#[derive(Debug)]
pub struct Client {
    xmpp: rookery_client::Client<StreamMgmt>,
}

impl Client {
    #[cfg(test)]
    pub fn new(limits: FramerLimits, sm_policy: SmPolicy) -> Client {
        Client::with_login(limits, sm_policy, LoginKind::PLAIN)
    }

    pub fn with_login(limits: FramerLimits, sm_policy: SmPolicy, login: LoginKind) -> Client {
        let sm = match sm_policy {
            SmPolicy::EnableWhenOffered => SmMode::Enable,
            SmPolicy::Off => SmMode::Off,
        };
        let mut xmpp = rookery_client::Client::new(Options {
            max_stanza_bytes: limits.max_stanza_bytes,
            mechanisms: login.mechanisms,
            sm,
        });
        xmpp.stream_mut().set_starttls(login.starttls);
        Client { xmpp }
    }

    /// After [`ClientEvent::StartTls`], with the conn's TLS session in place: the new stream
    /// header goes to `out` (to be sent through TLS).
    pub fn tls_started(&mut self, domain: &str, out: &mut Vec<u8>) -> bool {
        self.xmpp.tls_started(domain, out)
    }

    /// The worker wrote a chat message (due at `intended_ns`) to this client's conn. With
    /// stream management on, it is counted and timed, and `<r/>` is appended to `out`, so the
    /// server's `<a/>` comes back at once.
    pub fn on_message_sent(&mut self, intended_ns: u64, out: &mut Vec<u8>) {
        let stream = self.xmpp.stream_mut();
        if stream.request_ack(out) {
            stream.count_sent(1);
            let number = stream.sm_status().map_or(0, |s| s.outbound);
            if let Some(sm) = stream.sm_data_mut() {
                sm.sent_message(number, intended_ns);
            }
        }
    }

    /// The worker wrote `count` stanzas of its own (presence, subscriptions, joins...) to this
    /// client's conn: counted for stream management.
    pub fn wrote_stanzas(&mut self, count: u32) {
        count_others(self.xmpp.stream_mut(), count);
    }

    /// Asks for our roster (RFC 6121 2.1.3): appends the get to `out`; the answer comes as
    /// [`ClientEvent::RosterItem`]s then [`ClientEvent::RosterLoaded`].
    pub fn request_roster(&mut self, out: &mut Vec<u8>) {
        fanout::write_roster_get(out);
        self.wrote_stanzas(1);
    }

    /// Chat messages of this stream the server acknowledged (XEP-0198): the first this many
    /// sent. 0 without stream management.
    pub fn messages_acked(&self) -> u32 {
        self.xmpp
            .stream()
            .sm_data()
            .map_or(0, StreamMgmt::messages_acked)
    }

    /// Whether this stream asked for stream management (the server offered it and the run
    /// wants it) and the server has not refused it.
    pub fn sm_active(&self) -> bool {
        self.xmpp.stream().sm_status().is_some()
    }

    /// Stream management state, for tests: (stanzas sent, messages awaiting an ack).
    #[cfg(test)]
    pub fn sm(&self) -> Option<(u32, usize)> {
        let stream = self.xmpp.stream();
        Some((stream.sm_status()?.outbound, stream.sm_data()?.pending()))
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.xmpp.phase()
    }

    pub fn is_online(&self) -> bool {
        self.xmpp.is_online()
    }

    /// Heap bytes held (the framer's partial-stanza buffer, XEP-0198 state), for the budget.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.xmpp.heap_bytes()
    }

    /// Heap bytes of the XEP-0198 bookkeeping beyond the client's block (its queues, while
    /// something is unacknowledged), for the budget.
    #[cfg(test)]
    pub fn sm_heap_bytes(&self) -> usize {
        self.xmpp
            .stream()
            .sm_data()
            .map_or(0, StreamMgmt::heap_bytes)
    }

    /// Opens the stream: appends the initial stream header to `out`.
    pub fn start(&mut self, domain: &str, out: &mut Vec<u8>) {
        self.xmpp.start(domain, out);
    }

    /// Ends the stream politely: appends `</stream:stream>` (unless the stream is already over).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.xmpp.close(out);
    }

    /// Feeds bytes from the server. Replies go to `out`; what happened goes to `sink`.
    pub fn on_data<F>(
        &mut self,
        data: &[u8],
        account: &mut Account<'_>,
        profile: Profile,
        out: &mut Vec<u8>,
        sink: &mut F,
    ) where
        F: FnMut(ClientEvent<'_>),
    {
        self.xmpp.feed(data, account, out, |event, stream, out| {
            on_event(event, stream, profile, out, sink)
        });
    }
}

/// One event of the crate's client, as the scenarios see it.
fn on_event<F>(
    event: Event<'_>,
    stream: &mut Stream<StreamMgmt>,
    profile: Profile,
    out: &mut Vec<u8>,
    sink: &mut F,
) where
    F: FnMut(ClientEvent<'_>),
{
    match event {
        Event::Online => {
            if profile.sends_initial_presence() {
                out.extend_from_slice(b"<presence/>");
                count_others(stream, 1);
            }
            sink(ClientEvent::Online);
        }
        Event::Stanza(view) => {
            let written = online::on_stanza(&view, profile, out, sink);
            count_others(stream, written);
        }
        Event::SmEnabled { .. } => sink(ClientEvent::SmEnabled),
        Event::SmFailed { .. } => sink(ClientEvent::SmFailed),
        Event::Acked { h } => {
            if let Some(sm) = stream.sm_data_mut() {
                sm.on_ack(h, |intended_ns| sink(ClientEvent::SmAcked { intended_ns }));
            }
        }
        Event::AckTooHigh { .. } => sink(ClientEvent::ProtocolError {
            detail: "XEP-0198 ack counts stanzas never sent",
        }),
        Event::AuthFailed(failure) => {
            let condition = match failure {
                AuthFailure::Server { condition } => condition,
                AuthFailure::NoCommonMechanism => "the --sasl mechanism is not offered",
                AuthFailure::Client(_) => "refused by the client",
            };
            sink(ClientEvent::AuthFailed { condition });
        }
        Event::BindFailed { condition } => sink(ClientEvent::BindFailed { condition }),
        Event::StreamError(error) => match error.other_host {
            Some(host) if error.condition == "see-other-host" => {
                sink(ClientEvent::Redirect { host })
            }
            _ => sink(ClientEvent::StreamError {
                condition: error.condition,
            }),
        },
        Event::StreamClosed => sink(ClientEvent::StreamClosed),
        Event::StartTls => sink(ClientEvent::StartTls),
        Event::ProtocolError { detail } => sink(ClientEvent::ProtocolError { detail }),
        // Authenticated, Bound: Online follows. No resumption is asked for, so none is
        // reported.
        Event::Authenticated
        | Event::Bound { .. }
        | Event::Resumed { .. }
        | Event::ResumeFailed { .. } => {}
    }
}

/// Counts `count` stanzas we wrote that are not chat messages.
fn count_others(stream: &mut Stream<StreamMgmt>, count: u32) {
    for _ in 0..count {
        stream.count_sent(1);
        let number = stream.sm_status().map_or(0, |s| s.outbound);
        if let Some(sm) = stream.sm_data_mut() {
            sm.sent_stanza(number);
        }
    }
}

#[cfg(test)]
mod tests;
