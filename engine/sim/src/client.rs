//! One simulated user over `rookery_client` (which does the stream, the token login, bind,
//! XEP-0198 enable with resumption, `<r/>`/`<a h>` and the resumption itself): initial
//! presence, chats with unique ids to other users, the stanzas kept until acknowledged and
//! resent after a resumption (else a fresh login abandons them). A fresh login may skip `<enable/>`
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
//! Invariants: `unacked` holds exactly the counted stanzas above the last handled count, in
//! order, each with its number from the crate's counter (stanzas sent since `<enable/>`, or
//! the renumbering after `<resumed/>`). After `<resumed h>` the unacknowledged stanzas are sent again (XEP-0198 5) under new
//! numbers, so a server counting differently shows up as an `sm-count` violation. Unless
//! `resume_with_unacked` is set, a client with unacknowledged stanzas does not resume: it
//! abandons them (they may be lost or delivered, never owed) and binds a fresh session.
//! Without XEP-0198 (`sm` off) nothing is counted and `unacked` stays empty.

use std::collections::VecDeque;

use rookery_client::{token_password, Event, Flow, Login, Options, SmMode};
use rookery_proto::element::Element;
use rookery_testkit::{TEST_DOMAIN, TEST_SECRET};

use crate::groups::GroupKey;
use crate::ledger::{Ledger, MsgKey, Violation};
use crate::rooms::Rooms;
use crate::social::Social;

/// Where the simulated user is (the stream's own phases are the crate client's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Offline,
    /// Stream, SASL, bind or resumption under way.
    LoggingIn,
    /// Bound, `<enable/>` sent, `<enabled/>` not yet in.
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
    num: u32,
    bytes: Vec<u8>,
    tag: Tag,
}

/// One simulated user with one resource.
pub struct Client {
    pub index: usize,
    pub user: String,
    pub phase: Phase,
    /// The stream, login and XEP-0198 counters (its session is kept across drops while
    /// resumable).
    xmpp: rookery_client::Client,
    account: Login,
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
    /// The address of the last `see-other-host` (a cluster: the user's home node), for the
    /// world's next connect.
    pub redirect: Option<String>,
    /// `see-other-host` redirects followed so far.
    pub redirects: u64,
}

impl Client {
    pub fn new(index: usize) -> Client {
        let user = user_name(index);
        let password = token_password(TEST_SECRET, &user);
        let account = Login::new(TEST_DOMAIN, &user, &password)
            .with_resource(Some("sim"))
            .with_nonce_seed(index as u64);
        let options = Options {
            sm: SmMode::EnableResumable,
            ..Options::default()
        };
        Client {
            index,
            user,
            phase: Phase::Offline,
            xmpp: rookery_client::Client::new(options),
            account,
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
            redirect: None,
            redirects: 0,
            now_ms: 0,
            social: Social::default(),
            rooms: Rooms::default(),
        }
    }

    /// A fresh conn is open: start the stream (resuming the XEP-0198 session if there is
    /// one and the client may; see `resume_with_unacked`).
    pub fn connect(&mut self) {
        self.fresh_deliveries.clear();
        self.phase = Phase::LoggingIn;
        self.social.available_since_ms = None;
        let mode = if self.want_sm {
            SmMode::EnableResumable
        } else {
            SmMode::Off
        };
        self.xmpp.stream_mut().set_sm_mode(mode);
        self.xmpp.start(TEST_DOMAIN, &mut self.out);
        let stream = self.xmpp.stream_mut();
        if !self.resume_with_unacked && !self.unacked.is_empty() {
            stream.forget_resumption();
        }
        if stream.sm_status().is_none() {
            // Nothing to resume: a fresh bind abandons what was not acknowledged.
            self.unacked.clear();
        }
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
        if self.sm {
            self.xmpp.stream_mut().request_ack(&mut self.out);
        }
    }

    /// A clean close: the session ends and cannot be resumed.
    pub fn close(&mut self) {
        self.xmpp.close(&mut self.out);
        self.phase = Phase::Closing;
    }

    /// Writes a stanza; while this stream asked for XEP-0198 (from `<enable/>` on, which is
    /// when the server starts counting) it is numbered and kept until acknowledged.
    pub(crate) fn send_counted(&mut self, bytes: Vec<u8>, tag: Tag) {
        self.out.extend_from_slice(&bytes);
        let stream = self.xmpp.stream_mut();
        if stream.sm_status().is_none() {
            return; // never acknowledged: nothing to count
        }
        stream.count_sent(1);
        let num = stream.sm_status().map_or(0, |s| s.outbound);
        self.unacked.push_back(Outbound { num, bytes, tag });
    }

    /// Bytes from the server: fed to the crate's client one event at a time, so what this
    /// client writes in answer goes out in the order of what it answers.
    pub fn on_bytes(&mut self, data: &[u8], ledger: &mut Ledger) -> Result<(), Violation> {
        let mut rest = data;
        let mut noted = Vec::new();
        loop {
            let account = &mut self.account;
            let used = self
                .xmpp
                .feed_until(rest, account, &mut self.out, |event, _, _| {
                    noted.extend(Noted::of(event));
                    if noted.is_empty() {
                        Flow::Continue
                    } else {
                        Flow::Stop
                    }
                });
            rest = &rest[used..];
            if noted.is_empty() {
                return Ok(());
            }
            for one in noted.drain(..) {
                self.on_noted(one, ledger)?;
            }
        }
    }

    fn on_noted(&mut self, noted: Noted, ledger: &mut Ledger) -> Result<(), Violation> {
        match noted {
            Noted::Stanza(bytes) => return self.on_element(&bytes, ledger),
            Noted::Bound => {
                self.session += 1;
                self.rooms.forget_joined();
                self.phase = Phase::AwaitEnabled;
            }
            Noted::Online if !self.want_sm => self.start_without_sm(ledger),
            Noted::Online => {}
            Noted::SmEnabled => self.on_enabled(ledger),
            Noted::SmFailed => self.start_without_sm(ledger),
            Noted::Acked(h) => self.release(h, ledger),
            Noted::Resumed(h) => self.on_resumed(h, ledger),
            // Resumption refused: the old session's unacknowledged stanzas are abandoned
            // (they may or may not have been handled); the crate binds a fresh session.
            Noted::ResumeFailed => self.unacked.clear(),
            Noted::Redirect(address) => {
                self.redirects += 1;
                self.redirect = Some(address);
            }
            Noted::Violation(checker, detail) => {
                let detail = format!("client {}: {detail}", self.index);
                return Err(Violation::new(checker, detail));
            }
        }
        Ok(())
    }

    fn on_element(&mut self, bytes: &[u8], ledger: &mut Ledger) -> Result<(), Violation> {
        let Ok(el) = Element::parse(bytes) else {
            let text = String::from_utf8_lossy(bytes);
            return Err(Violation::new("protocol", format!("unparsable: {text}")));
        };
        match el.local_name() {
            "iq" => self.on_iq(&el, ledger),
            "message" => self.on_message(&el, ledger),
            "presence" => self.on_presence(&el, ledger),
            _ => Ok(()),
        }
    }

    fn on_iq(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
        if self.on_presence_barrier(el, ledger) {
            return Ok(());
        }
        self.on_roster_iq(el)
    }

    /// A fresh session: initial presence first (so any acknowledged stanza proves the session
    /// available), then the roster and rooms (see `social`).
    fn on_enabled(&mut self, ledger: &mut Ledger) {
        // `unacked` holds only what was sent since `<enable/>` (see `connect`, `ResumeFailed`).
        self.sm = true;
        self.phase = Phase::Online;
        self.start_session(ledger);
    }

    /// A fresh session bound without XEP-0198: what the previous session left unacknowledged
    /// is abandoned (never owed), and nothing will be counted or resumed.
    fn start_without_sm(&mut self, ledger: &mut Ledger) {
        self.sm = false;
        self.sessions_without_sm += 1;
        self.unacked.clear();
        self.phase = Phase::Online;
        self.start_session(ledger);
    }

    /// The old session is back: what the server handled is released, the rest is resent
    /// (XEP-0198 5) under new numbers after its `h` (the crate renumbered from `h`).
    fn on_resumed(&mut self, h: u32, ledger: &mut Ledger) {
        self.release(h, ledger);
        self.sm = true;
        self.resumes += 1;
        self.phase = Phase::Online;
        self.on_attached();
        let resend: Vec<Outbound> = self.unacked.drain(..).collect();
        for entry in resend {
            self.send_counted(entry.bytes, entry.tag);
        }
    }

    /// The server handled every stanza numbered up to `h` (the crate checked that `h` is
    /// not beyond what was sent: see `Noted::Violation`).
    fn release(&mut self, h: u32, ledger: &mut Ledger) {
        // Serial arithmetic: `num` is covered when it is at most `h`, modulo 2^32.
        while self
            .unacked
            .front()
            .is_some_and(|o| (h.wrapping_sub(o.num) as i32) >= 0)
        {
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
    }

    fn on_message(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> Result<(), Violation> {
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

/// What the simulated user acts on, owned (the crate's event borrows its input).
#[derive(Debug)]
enum Noted {
    Stanza(Vec<u8>),
    Bound,
    Online,
    SmEnabled,
    SmFailed,
    Acked(u32),
    Resumed(u32),
    ResumeFailed,
    /// `see-other-host` with this address: the server closes the conn next.
    Redirect(String),
    /// (checker, detail): the server broke the protocol.
    Violation(&'static str, String),
}

impl Noted {
    fn of(event: Event<'_>) -> Option<Noted> {
        Some(match event {
            Event::Stanza(view) => Noted::Stanza(view.bytes().to_vec()),
            Event::Bound { .. } => Noted::Bound,
            Event::Online => Noted::Online,
            Event::SmEnabled { .. } => Noted::SmEnabled,
            Event::SmFailed { .. } => Noted::SmFailed,
            Event::Acked { h } => Noted::Acked(h),
            Event::Resumed { h } => Noted::Resumed(h),
            Event::ResumeFailed { .. } => Noted::ResumeFailed,
            Event::AckTooHigh { h, sent } => {
                Noted::Violation("sm-count", format!("got h={h} having sent {sent} stanzas"))
            }
            Event::AuthFailed(failure) => {
                Noted::Violation("protocol", format!("SASL failed: {failure:?}"))
            }
            Event::BindFailed { condition } => {
                Noted::Violation("protocol", format!("bind refused: {condition}"))
            }
            Event::ProtocolError { detail } => {
                Noted::Violation("protocol", format!("bad XML from the server: {detail}"))
            }
            // The close that follows is the world's to apply (`on_closed`).
            Event::StreamError(error) => Noted::Redirect(error.other_host?.into_owned()),
            Event::StreamClosed => return None,
            Event::Authenticated | Event::StartTls => return None,
        })
    }
}

pub fn user_name(index: usize) -> String {
    format!("u{index}")
}
