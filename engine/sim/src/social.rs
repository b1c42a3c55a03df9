//! The client's social side: its roster (built during the setup phase with subscribe /
//! subscribed both ways, RFC 6121 3, then checked on every later login), its presence
//! (`<status>sim C SEQ</status>`, the initial presence included) and what it receives from
//! contacts (reported to the `PresenceBook`).
//!
//! What it does: sends the initial presence and a roster get at every fresh session; during
//! setup asks each planned contact whose item lacks `to` to subscribe and approves requests
//! from planned contacts; once the world locks the rosters (setup over), any roster push,
//! subscription stanza, or roster result other than the plan (every planned contact `both`,
//! no `ask`, nothing else) is a `roster` violation, so a restart that loses or invents roster
//! state is caught by the next login's roster get.
//!
//! What it does not do: decide when to send presence updates (the `world` does), or judge
//! presence deliveries (see `presence`).
//!
//! Invariants: `initial_pending` names the SEQ of the session's initial presence until the
//! server acknowledges it; `available_since_ms` is set only on the current conn, once the
//! session is known to be available at the router (that ack, or `<resumed/>` after it).
//! Without XEP-0198 a presence is followed by a ping (`<iq id='pb<SEQ>'>`, XEP-0199) whose
//! result stands for the ack: the router handles a stream's stanzas in order.

use std::collections::{BTreeMap, BTreeSet};

use rookery_proto::element::Element;
use rookery_testkit::TEST_DOMAIN;

use crate::client::{user_name, Client, Phase, Tag};
use crate::ledger::{Ledger, Violation};
use crate::presence::Received;
use crate::rooms::parse_occupant;

const ROSTER_NS: &str = "jabber:iq:roster";
const PING_NS: &str = "urn:xmpp:ping";

/// One roster item as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    subscription: String,
    ask: bool,
}

/// Roster and presence state of one client.
#[derive(Debug, Default)]
pub struct Social {
    /// Planned contacts (see `plan`).
    pub contacts: BTreeSet<usize>,
    /// Setup is over: the roster must stay exactly as planned.
    pub locked: bool,
    roster: BTreeMap<String, Item>,
    roster_known: bool,
    /// Contacts asked to subscribe in this session (setup only).
    asked: BTreeSet<usize>,
    next_seq: u64,
    initial_pending: Option<u64>,
    pub available_since_ms: Option<u64>,
    /// Roster results compared with the plan after setup.
    pub roster_checks: u64,
}

impl Social {
    /// The roster matches the plan: every contact `both`, nothing pending, nothing else.
    pub fn roster_done(&self) -> bool {
        self.roster_known && self.roster == self.expected()
    }

    fn expected(&self) -> BTreeMap<String, Item> {
        let both = Item {
            subscription: "both".to_owned(),
            ask: false,
        };
        self.contacts
            .iter()
            .map(|&c| (bare(c), both.clone()))
            .collect()
    }
}

fn bare(client: usize) -> String {
    format!("{}@{TEST_DOMAIN}", user_name(client))
}

/// The client index of `u<N>@domain[/resource]`, and whether a resource was given.
fn parse_user(jid: &str) -> Option<(usize, bool)> {
    let (bare, resource) = match jid.split_once('/') {
        Some((bare, _)) => (bare, true),
        None => (jid, false),
    };
    let local = bare.strip_suffix(TEST_DOMAIN)?.strip_suffix('@')?;
    Some((local.strip_prefix('u')?.parse().ok()?, resource))
}

/// SEQ of `<status>sim C SEQ</status>` sent by client `sender`.
fn parse_status(el: &Element<'_>, sender: usize) -> Option<u64> {
    let text = el.children().find(|c| c.local_name() == "status")?.text();
    let mut words = text.split(' ');
    let ok = words.next() == Some("sim") && words.next()?.parse::<usize>().ok()? == sender;
    ok.then(|| words.next()?.parse().ok()).flatten()
}

impl Client {
    /// A fresh session is enabled: initial presence, then the roster.
    pub(crate) fn start_session(&mut self, ledger: &mut Ledger) {
        let seq = self.send_presence(ledger);
        self.social.initial_pending = Some(seq);
        self.social.available_since_ms = None;
        if !self.social.contacts.is_empty() {
            self.social.roster_known = false;
            self.social.asked.clear();
            let get = format!(
                "<iq type='get' id='roster{}'><query xmlns='{ROSTER_NS}'/></iq>",
                self.session
            );
            self.send_counted(get.into_bytes(), Tag::Other);
        }
        self.join_rooms(ledger);
    }

    /// Sends a presence update; returns its SEQ.
    pub fn send_presence(&mut self, ledger: &mut Ledger) -> u64 {
        self.social.next_seq += 1;
        let seq = self.social.next_seq;
        let stanza = format!(
            "<presence><status>sim {} {seq}</status></presence>",
            self.index
        );
        ledger
            .presence
            .on_sent(self.index, seq, self.session, self.now_ms);
        self.send_counted(stanza.into_bytes(), Tag::Presence(seq));
        if !self.sm {
            let ping = format!("<iq type='get' id='pb{seq}'><ping xmlns='{PING_NS}'/></iq>");
            self.out.extend_from_slice(ping.as_bytes());
        }
        seq
    }

    /// Without XEP-0198: the result of the ping sent after presence SEQ (see the module docs).
    /// Returns whether `el` was one.
    pub(crate) fn on_presence_barrier(&mut self, el: &Element<'_>, ledger: &mut Ledger) -> bool {
        let seq = el
            .attr("id")
            .and_then(|id| id.strip_prefix("pb")?.parse().ok());
        let Some(seq) = seq.filter(|_| el.attr("type") == Some("result")) else {
            return false;
        };
        if !self.sm {
            self.on_presence_acked(seq, ledger);
        }
        true
    }

    /// A session was resumed on a new conn.
    pub(crate) fn on_attached(&mut self) {
        if self.social.initial_pending.is_none() {
            self.social.available_since_ms = Some(self.now_ms);
        }
    }

    pub(crate) fn on_presence_acked(&mut self, seq: u64, ledger: &mut Ledger) {
        ledger.presence.on_acked(self.index, seq);
        if self.social.initial_pending == Some(seq) {
            self.social.initial_pending = None;
            self.social.available_since_ms = Some(self.now_ms);
        }
    }

    /// An iq that is not the bind result: a roster result or push, or nothing of ours.
    pub(crate) fn on_roster_iq(&mut self, el: &Element<'_>) -> Result<(), Violation> {
        let Some(query) = el.child("query", ROSTER_NS) else {
            return Ok(());
        };
        let items = query.children().filter(|c| c.local_name() == "item");
        let mut parsed = Vec::new();
        for item in items {
            let Some(jid) = item.attr("jid") else {
                return Err(self.roster_violation("an item without jid".to_owned()));
            };
            let view = Item {
                subscription: item.attr("subscription").unwrap_or("none").to_owned(),
                ask: item.attr("ask") == Some("subscribe"),
            };
            parsed.push((jid.to_owned(), view));
        }
        match el.attr("type") {
            Some("result") => self.on_roster_result(parsed),
            Some("set") => {
                let reply = format!("<iq type='result' id='{}'/>", el.attr("id").unwrap_or(""));
                self.send_counted(reply.into_bytes(), Tag::Other);
                if self.social.locked {
                    let detail = format!("a roster push after setup: {parsed:?}");
                    return Err(self.roster_violation(detail));
                }
                for (jid, item) in parsed {
                    if item.subscription == "remove" {
                        self.social.roster.remove(&jid);
                    } else {
                        self.social.roster.insert(jid, item);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_roster_result(&mut self, items: Vec<(String, Item)>) -> Result<(), Violation> {
        self.social.roster = items.into_iter().collect();
        self.social.roster_known = true;
        if self.social.locked {
            self.social.roster_checks += 1;
            if !self.social.roster_done() {
                let detail = format!(
                    "roster {:?} differs from the plan {:?}",
                    self.social.roster,
                    self.social.expected()
                );
                return Err(self.roster_violation(detail));
            }
            return Ok(());
        }
        let contacts: Vec<usize> = self.social.contacts.iter().copied().collect();
        for contact in contacts {
            let has_to = self
                .social
                .roster
                .get(&bare(contact))
                .is_some_and(|i| matches!(i.subscription.as_str(), "to" | "both"));
            if !has_to && self.social.asked.insert(contact) {
                let ask = format!("<presence to='{}' type='subscribe'/>", bare(contact));
                self.send_counted(ask.into_bytes(), Tag::Other);
            }
        }
        Ok(())
    }

    fn roster_violation(&self, detail: String) -> Violation {
        Violation::new("roster", format!("client {}: {detail}", self.index))
    }

    /// A presence stanza from the server.
    pub(crate) fn on_presence(
        &mut self,
        el: &Element<'_>,
        ledger: &mut Ledger,
    ) -> Result<(), Violation> {
        let from = el.attr("from").unwrap_or("");
        if let Some((room, nick)) = parse_occupant(from) {
            return self.on_room_presence(el, room, nick, ledger);
        }
        let Some((sender, full)) = parse_user(from) else {
            let text = format!("client {} got presence from {from:?}", self.index);
            return Err(Violation::new("protocol", text));
        };
        // Bound is enough: a probe answer for the previous session (same full JID) may land.
        if !matches!(
            self.phase,
            Phase::AwaitEnabled | Phase::Online | Phase::Closing
        ) {
            let detail = format!(
                "client {} got presence from {sender} while {:?}",
                self.index, self.phase
            );
            return Err(Violation::new("closed-session", detail));
        }
        let received = match el.attr("type") {
            None => {
                let Some(seq) = parse_status(el, sender) else {
                    let text = format!("client {} got a presence without SEQ", self.index);
                    return Err(Violation::new("protocol", text));
                };
                let probe = el.attr("to").is_some_and(|to| to.contains('/'));
                Received::Available { seq, probe }
            }
            Some("unavailable") if full => Received::Unavailable,
            Some("error") => return Ok(()),
            Some(ty) => return self.on_subscription(sender, ty),
        };
        ledger
            .presence
            .on_received(self.index, self.session, sender, received)
    }

    /// A subscription stanza: approve a planned contact's request during setup.
    fn on_subscription(&mut self, sender: usize, ty: &str) -> Result<(), Violation> {
        let planned = self.social.contacts.contains(&sender);
        if self.social.locked || !planned {
            let detail = format!("{ty} from client {sender} (planned contact: {planned})");
            return Err(self.roster_violation(detail));
        }
        if ty == "subscribe" {
            let yes = format!("<presence to='{}' type='subscribed'/>", bare(sender));
            self.send_counted(yes.into_bytes(), Tag::Other);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_jids_and_statuses_parse() {
        assert_eq!(parse_user("u12@example.com/sim"), Some((12, true)));
        assert_eq!(parse_user("u3@example.com"), Some((3, false)));
        assert_eq!(parse_user("g1@groups.example.com/x"), None);
        let el = Element::parse(b"<presence><status>sim 4 17</status></presence>").unwrap();
        assert_eq!(parse_status(&el, 4), Some(17));
        assert_eq!(parse_status(&el, 5), None);
    }

    #[test]
    fn setup_asks_missing_contacts_once_and_locks() {
        let mut ledger = Ledger::default();
        let mut c = Client::new(0);
        c.social.contacts = BTreeSet::from([1, 2]);
        c.phase = Phase::Online;
        c.start_session(&mut ledger);
        c.out.clear();
        let result = "<iq type='result' id='roster0'><query xmlns='jabber:iq:roster'>\
                      <item jid='u1@example.com' subscription='both'/></query></iq>";
        c.on_roster_iq(&Element::parse(result.as_bytes()).unwrap())
            .unwrap();
        let out = String::from_utf8(std::mem::take(&mut c.out)).unwrap();
        assert_eq!(out, "<presence to='u2@example.com' type='subscribe'/>");
        assert!(!c.social.roster_done());
        c.social.locked = true;
        let err = c
            .on_roster_iq(&Element::parse(result.as_bytes()).unwrap())
            .unwrap_err();
        assert_eq!(err.checker, "roster");
    }
}
