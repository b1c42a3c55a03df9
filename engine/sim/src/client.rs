//! A small sans-IO XMPP client: token login (SASL PLAIN), bind, XEP-0198 enable with
//! resumption, initial presence, chats with unique ids to other users, `<r/>`/`<a h>` both
//! ways, resumption after a drop (else a fresh login). A fresh login may skip `<enable/>`
//! (`want_sm` off, drawn per login by the `world`): such a session sends no `<r/>` and nothing
//! it sends is acknowledged (its chats are owed once a commit stored them, see `ledger`; its
//! presences once the ping after each is answered, see `social`; its groupchat messages
//! never); the chats it receives are listed in `fresh_deliveries` for the world, which knows
//! when the router was told they were handed to the kernel (see `ledger`).
//!
//! What it does: turns bytes from the server into bytes for the server, and reports to the
//! `Ledger` what it sent, what the server acknowledged or refused, and what it received.
//! What it does not do: timing, sockets or reconnect scheduling (the `world` decides when it
//! connects and acts), TLS; rosters and presence are in `social`, rooms in `rooms`.
//!
//! Invariants: `sent` counts stanzas sent since `<enabled/>` (or the renumbering after
//! `<resumed/>`); `unacked` holds exactly the sent stanzas above the last handled count, in
//! order. After `<resumed h>` the unacknowledged stanzas are sent again (XEP-0198 5) under new
//! numbers, so a server counting differently shows up as an `sm-count` violation. Unless
//! `resume_with_unacked` is set, a client with unacknowledged stanzas does not resume: it
//! abandons them (they may be lost or delivered, never owed) and binds a fresh session.
//! Without XEP-0198 (`sm` off) `sent` stays 0 and `unacked` empty.

use std::collections::VecDeque;

use rookery_proto::element::Element;
use rookery_proto::{Frame, Framer, FramerLimits};
use rookery_router::testing::{bind_iq, client_header, plain_auth, TEST_DOMAIN, TEST_SECRET};
use rookery_router::token_password;

use crate::groups::GroupKey;
use crate::ledger::{Ledger, MsgKey, Violation};
use crate::rooms::Rooms;
use crate::social::Social;

const SM: &str = "urn:xmpp:sm:3";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Offline,
    AwaitFeatures,
    AwaitSasl,
    AwaitBindFeatures,
    AwaitResume,
    AwaitBind,
    AwaitEnabled,
    Online,
    /// Sent `</stream:stream>`; waits for the server to close.
    Closing,
}

/// What a counted stanza was, for the checkers once the server acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    Chat(MsgKey),
    /// A presence with `<status>sim C SEQ</status>`.
    Presence(u64),
    /// A groupchat message to a room.
    Group(GroupKey),
    Other,
}

#[derive(Debug)]
struct Outbound {
    num: u64,
    bytes: Vec<u8>,
    tag: Tag,
}

/// One simulated user with one resource.
pub struct Client {
    pub index: usize,
    pub user: String,
    pub phase: Phase,
    framer: Framer,
    /// Resume id of the current stream-managed session, kept across drops.
    resume_id: Option<String>,
    /// Stanzas counted inbound in the current XEP-0198 session.
    pub(crate) received: u64,
    /// Stanzas sent in the current XEP-0198 session.
    sent: u64,
    unacked: VecDeque<Outbound>,
    /// The world's clock when it hands the client bytes or a turn (the client has no clock).
    pub now_ms: u64,
    /// Roster and presence.
    pub social: Social,
    pub rooms: Rooms,
    /// Bound sessions so far; the current one's number (resumptions keep it).
    pub session: u64,
    next_msg: u64,
    pub out: Vec<u8>,
    /// When the world may reconnect it (virtual ms).
    pub reconnect_at_ms: u64,
    pub resumes: u64,
    /// Whether to resume (and then resend, XEP-0198 5) while some of its stanzas are not
    /// acknowledged; else it abandons them and binds a fresh session. On by default (the
    /// router's `<resumed h>` waits until every stanza it received is handled).
    pub resume_with_unacked: bool,
    /// Whether the next fresh session enables XEP-0198 (the world draws it per login).
    pub want_sm: bool,
    /// Whether the current session uses XEP-0198 (a resumed one always does).
    pub sm: bool,
    /// Fresh sessions bound without XEP-0198 so far.
    pub sessions_without_sm: u64,
    /// Chats received by a session without XEP-0198 since the world last took them.
    pub(crate) fresh_deliveries: Vec<MsgKey>,
}

impl Client {
    pub fn new(index: usize) -> Client {
        Client {
            index,
            user: user_name(index),
            phase: Phase::Offline,
            framer: new_framer(),
            resume_id: None,
            received: 0,
            sent: 0,
            unacked: VecDeque::new(),
            session: 0,
            next_msg: 0,
            out: Vec::new(),
            reconnect_at_ms: 0,
            resumes: 0,
            resume_with_unacked: true,
            want_sm: true,
            sm: true,
            sessions_without_sm: 0,
            fresh_deliveries: Vec::new(),
            now_ms: 0,
            social: Social::default(),
            rooms: Rooms::default(),
        }
    }

    /// A fresh conn is open: start the stream.
    pub fn connect(&mut self) {
        self.framer = new_framer();
        self.fresh_deliveries.clear();
        self.phase = Phase::AwaitFeatures;
        self.social.available_since_ms = None;
        self.out.extend_from_slice(client_header().as_bytes());
    }

    /// The conn died (dropped, or closed by the server). The XEP-0198 state is kept for
    /// resumption.
    pub fn on_closed(&mut self) {
        self.phase = Phase::Offline;
        self.social.available_since_ms = None;
    }

    pub fn is_online(&self) -> bool {
        self.phase == Phase::Online
    }

    /// Stanzas sent and not acknowledged yet.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Sends a chat to `to` (online only).
    pub fn send_chat(&mut self, to: usize, ledger: &mut Ledger) {
        self.next_msg += 1;
        let key = MsgKey {
            sender: self.index,
            n: self.next_msg,
        };
        let stanza = format!(
            "<message to='{}@{TEST_DOMAIN}' type='chat' id='{}'><body>{}</body></message>",
            user_name(to),
            key.stanza_id(),
            key.n
        );
        ledger.on_sent(key, to);
        self.send_counted(stanza.into_bytes(), Tag::Chat(key));
    }

    /// Sends `<r/>` (only with XEP-0198: the router answers one without it with a stream
    /// error).
    pub fn request_ack(&mut self) {
        if !self.sm {
            return;
        }
        self.out
            .extend_from_slice(format!("<r xmlns='{SM}'/>").as_bytes());
    }

    /// A clean close: the session ends and cannot be resumed.
    pub fn close(&mut self) {
        self.out.extend_from_slice(b"</stream:stream>");
        self.resume_id = None;
        self.phase = Phase::Closing;
    }

    pub(crate) fn send_counted(&mut self, bytes: Vec<u8>, tag: Tag) {
        self.out.extend_from_slice(&bytes);
        if !self.sm {
            return; // never acknowledged: nothing to count
        }
        self.sent += 1;
        self.unacked.push_back(Outbound {
            num: self.sent,
            bytes,
            tag,
        });
    }

    /// Bytes from the server.
    pub fn on_bytes(&mut self, data: &[u8], ledger: &mut Ledger) -> Result<(), Violation> {
        let mut pos = 0;
        loop {
            let mut input = &data[pos..];
            let before = input.len();
            let stanza = match self.framer.next_frame(&mut input) {
                Ok(Some(Frame::Stanza(bytes))) => Some(bytes.to_vec()),
                Ok(Some(Frame::StreamOpen(_) | Frame::StreamClose)) => None,
                Ok(None) => return Ok(()),
                Err(error) => {
                    let detail = format!("client {} got bad XML: {error:?}", self.index);
                    return Err(Violation::new("protocol", detail));
                }
            };
            pos += before - input.len();
            if let Some(stanza) = stanza {
                self.on_element(&stanza, ledger)?;
            }
        }
    }

    fn on_element(&mut self, bytes: &[u8], ledger: &mut Ledger) -> Result<(), Violation> {
        let Ok(el) = Element::parse(bytes) else {
            let text = String::from_utf8_lossy(bytes);
            return Err(Violation::new("protocol", format!("unparsable: {text}")));
        };
        match el.local_name() {
            "features" => self.on_features(),
            "success" => {
                self.framer.reset();
                self.phase = Phase::AwaitBindFeatures;
                self.out.extend_from_slice(client_header().as_bytes());
            }
            "failure" => {
                let text = String::from_utf8_lossy(bytes);
                return Err(Violation::new("protocol", format!("SASL failed: {text}")));
            }
            "enabled" => self.on_enabled(&el, ledger),
            "resumed" => return self.on_resumed(&el, ledger),
            "failed" => self.on_failed(),
            "a" => return self.on_ack(&el, ledger),
            "r" => {
                let ack = format!("<a xmlns='{SM}' h='{}'/>", self.received);
                self.out.extend_from_slice(ack.as_bytes());
            }
            "error" => {} // stream error: the close follows
            "iq" => return self.on_iq(&el, ledger),
            "message" => return self.on_message(&el, ledger),
            "presence" => return self.on_presence(&el, ledger),
            _ => self.received += 1,
        }
        Ok(())
    }

    fn on_features(&mut self) {
        match self.phase {
            Phase::AwaitFeatures => {
                let password = token_password(TEST_SECRET, &self.user);
                self.out
                    .extend_from_slice(plain_auth(&self.user, &password).as_bytes());
                self.phase = Phase::AwaitSasl;
            }
            Phase::AwaitBindFeatures => match &self.resume_id {
                // See `resume_with_unacked` for why a client may not try.
                Some(_) if !self.resume_with_unacked && !self.unacked.is_empty() => {
                    self.resume_id = None;
                    self.unacked.clear();
                    self.bind();
                }
                Some(previd) => {
                    let resume = format!(
                        "<resume xmlns='{SM}' previd='{previd}' h='{}'/>",
                        self.received
                    );
                    self.out.extend_from_slice(resume.as_bytes());
                    self.phase = Phase::AwaitResume;
                }
                None => self.bind(),
            },
            _ => {}
        }
    }

    fn bind(&mut self) {
        self.out
            .extend_from_slice(bind_iq("bind", Some("sim")).as_bytes());
        self.phase = Phase::AwaitBind;
    }

    fn on_iq(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
        if self.phase == Phase::AwaitBind && el.attr("id") == Some("bind") {
            if el.attr("type") != Some("result") {
                self.bind();
                return Ok(());
            }
            self.session += 1;
            self.rooms.forget_joined();
            if !self.want_sm {
                self.start_without_sm(ledger);
                return Ok(());
            }
            self.out
                .extend_from_slice(format!("<enable xmlns='{SM}' resume='true'/>").as_bytes());
            self.phase = Phase::AwaitEnabled;
            return Ok(());
        }
        self.received += 1;
        if self.on_presence_barrier(el, ledger) {
            return Ok(());
        }
        self.on_roster_iq(el)
    }

    /// A fresh session: initial presence first (so any acknowledged stanza proves the session
    /// available), then the roster and rooms (see `social`).
    fn on_enabled(&mut self, el: &Element<'_>, ledger: &mut Ledger) {
        self.resume_id = el.attr("id").map(str::to_owned);
        self.sm = true;
        self.received = 0;
        self.sent = 0;
        self.unacked.clear();
        self.phase = Phase::Online;
        self.start_session(ledger);
    }

    /// A fresh session bound without XEP-0198: what the previous session left unacknowledged
    /// is abandoned (never owed), and nothing will be counted or resumed.
    fn start_without_sm(&mut self, ledger: &mut Ledger) {
        self.resume_id = None;
        self.sm = false;
        self.sessions_without_sm += 1;
        self.received = 0;
        self.sent = 0;
        self.unacked.clear();
        self.phase = Phase::Online;
        self.start_session(ledger);
    }

    /// Resumption refused: the old session's unacknowledged stanzas are abandoned (they may
    /// or may not have been handled) and a fresh session is bound.
    fn on_failed(&mut self) {
        if self.phase != Phase::AwaitResume {
            return;
        }
        self.resume_id = None;
        self.unacked.clear();
        self.bind();
    }

    fn on_resumed(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
        let h = parse_h(el)?;
        self.release(h, ledger)?;
        self.sm = true;
        self.resumes += 1;
        self.phase = Phase::Online;
        self.on_attached();
        // XEP-0198 5: resend what the server did not count, numbered after its h.
        let resend: Vec<Outbound> = self.unacked.drain(..).collect();
        self.sent = h;
        for entry in resend {
            self.send_counted(entry.bytes, entry.tag);
        }
        Ok(())
    }

    fn on_ack(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
        let h = parse_h(el)?;
        self.release(h, ledger)
    }

    /// The server handled every stanza numbered up to `h`.
    fn release(&mut self, h: u64, ledger: &mut Ledger) -> Result<(), Violation> {
        if h > self.sent {
            let detail = format!(
                "client {} got h={h} having sent {} stanzas",
                self.index, self.sent
            );
            return Err(Violation::new("sm-count", detail));
        }
        while self.unacked.front().is_some_and(|o| o.num <= h) {
            let Some(done) = self.unacked.pop_front() else {
                break;
            };
            match done.tag {
                Tag::Chat(key) => ledger.on_acked(key),
                Tag::Presence(seq) => self.on_presence_acked(seq, ledger),
                Tag::Group(key) => ledger.groups.on_acked(key, self.now_ms),
                Tag::Other => {}
            }
        }
        Ok(())
    }

    fn on_message(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
        self.received += 1;
        match el.attr("type") {
            Some("groupchat") => return self.on_groupchat(el, ledger),
            Some("error") => {
                if let Some(key) = el.attr("id").and_then(GroupKey::parse) {
                    if key.sender == self.index {
                        ledger.groups.on_error(key);
                    }
                    return Ok(());
                }
            }
            _ => {}
        }
        let Some(key) = el.attr("id").and_then(MsgKey::parse) else {
            return Ok(());
        };
        if el.attr("type") == Some("error") {
            if key.sender == self.index {
                ledger.on_error(key);
            }
            return Ok(());
        }
        if !matches!(self.phase, Phase::Online | Phase::Closing) {
            let detail = format!("client {} got {key:?} while {:?}", self.index, self.phase);
            return Err(Violation::new("closed-session", detail));
        }
        if !self.sm {
            self.fresh_deliveries.push(key);
        }
        ledger.on_delivered(self.index, self.session, self.sm, key)
    }
}

fn parse_h(el: &Element<'_>) -> Result<u64, Violation> {
    el.attr("h")
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| Violation::new("protocol", "an SM element without h".to_owned()))
}

pub fn user_name(index: usize) -> String {
    format!("u{index}")
}

fn new_framer() -> Framer {
    Framer::new(FramerLimits {
        max_stanza_bytes: 1 << 16,
    })
}
