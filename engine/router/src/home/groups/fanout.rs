//! Fan-out: one stanza to many recipients spread over every shard, with one mail per
//! destination shard of this node and one per other node (presence broadcast to contacts, a
//! group's message to its members).
//!
//! What it does: `FanoutPlan` groups recipients by home shard once (a group keeps its plan
//! until its membership changes, so a message costs one `Arc` clone per shard);
//! `Router::broadcast` sends one `Mail::Fanout` per other shard of this node, one
//! `Mail::NodeFanout` per other node (its shards' parts together: it crosses the bus once and
//! the receiving bridge splits it), and delivers the local part itself; `Router::on_fanout` delivers a shard's part, stamping `to` per recipient; the
//! gather table tells a XEP-0198 sender its group message is handled once every shard stored
//! its copies (`Mail::Gathered`).
//!
//! What it does not do: decide who the recipients are (rosters: `presence`; groups: `muc`).
//!
//! A group message's `Member` entry right after sessions of the same user means the member
//! is in the room: its available sessions that did not join get the message live (not
//! stored), so a member's other devices are not starved while one of them is in the room;
//! a `Member` anywhere else is a member who is away (stored, delivered like a chat message).
//!
//! Invariants: a plan's lists hold only recipients homed on their shard; a gather counts
//! shards (locations), never nodes: a `NodeFanout`'s parts answer one `Gathered` each;
//! every `Fanout` with a gather is answered by exactly one `Gathered` (now if nothing it stored waits for a
//! commit, else when the store commits); a gather entry is removed when its last shard
//! answers, so the table holds only fan-outs in progress.

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::blocking;
use crate::home::offline::Release;
use crate::home::routing::{Envelope, Handled};
use crate::home::Home;
use crate::location::{Location, NodeId, Placement};
use crate::mail::{AckRef, Fanout, GatherRef, Mail, NodeFanout, Recipient};
use crate::maps::{HashState, Map};
use crate::replies;
use crate::router::Router;
use crate::stream::conn::ConnSlab;

/// Recipients grouped by home location, shareable between fan-outs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FanoutPlan {
    per_location: Vec<(Location, Arc<[Recipient]>)>,
    recipients: usize,
}

impl FanoutPlan {
    /// Groups `recipients` by the home location of their bare JID, locations in increasing
    /// order.
    pub fn build(
        recipients: impl IntoIterator<Item = Recipient>,
        placement: &Placement,
    ) -> FanoutPlan {
        let mut lists: Vec<(Location, Vec<Recipient>)> = Vec::new();
        let mut count = 0;
        for recipient in recipients {
            let home = placement.home(recipient.jid());
            count += 1;
            // Few locations (one per shard): a sorted vector beats a map here.
            match lists.binary_search_by(|(l, _)| l.cmp(&home)) {
                Ok(at) => lists[at].1.push(recipient),
                Err(at) => lists.insert(at, (home, vec![recipient])),
            }
        }
        let per_location = lists
            .into_iter()
            .map(|(location, list)| (location, Arc::from(list)))
            .collect();
        FanoutPlan {
            per_location,
            recipients: count,
        }
    }

    /// Recipients, all shards.
    pub fn len(&self) -> usize {
        self.recipients
    }

    pub fn is_empty(&self) -> bool {
        self.recipients == 0
    }

    /// Destinations with at least one recipient.
    pub fn location_count(&self) -> usize {
        self.per_location.len()
    }
}

/// Fan-outs of this shard waiting for their shards' copies to be stored.
#[derive(Debug)]
pub(crate) struct Gathers {
    pending: Map<u64, PendingGather>,
    next_id: u64,
}

impl Gathers {
    pub fn new(hash: HashState) -> Gathers {
        Gathers {
            pending: hash.map(),
            next_id: 0,
        }
    }

    /// Whether gather `id` still waits for a location's answer.
    pub fn is_pending(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }
}

#[derive(Debug)]
struct PendingGather {
    sender: GatherSender,
    remaining: usize,
    refused: u32,
}

/// Who waits for a group message's fan-out: its XEP-0198 ack (if the sender counts), and where
/// an error goes if some member's copy could not be stored.
#[derive(Debug)]
pub(crate) struct GatherSender {
    pub ack: Option<AckRef>,
    /// The sender's full JID.
    pub sender: Jid,
    /// The room (the error's `from`).
    pub room: Jid,
    /// The message's `id`, echoed in the error.
    pub id: Option<Box<str>>,
}

/// What delivering one recipient's copy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyOutcome {
    /// Written, or nothing to do for this kind.
    Sent,
    /// Stored (waits for the commit).
    Stored,
    /// The store refused it.
    Refused,
}

/// A stanza to fan out: the stamped `from` and the stanza with it (no `to`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Broadcast<'a> {
    pub from: &'a Jid,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    pub stanza: &'a [u8],
}

impl Router {
    /// Sends `broadcast` to every recipient of `plan`: one mail per remote shard, the local
    /// part delivered now. With `waiting` (a group message) every shard answers once its
    /// copies are stored: the sender's XEP-0198 ack, if any, is released then
    /// (`Handled::Later`), and a copy some shard refused makes an error go to the sender.
    pub(crate) fn broadcast(
        &mut self,
        broadcast: Broadcast<'_>,
        plan: &FanoutPlan,
        waiting: Option<GatherSender>,
        fx: &mut impl Effects,
    ) -> Handled {
        if plan.is_empty() {
            return Handled::Now;
        }
        let acked = waiting.as_ref().is_some_and(|w| w.ack.is_some());
        let gather = waiting.map(|sender| {
            let id = self.home.gathers.next_id;
            self.home.gathers.next_id += 1;
            let pending = PendingGather {
                sender,
                remaining: plan.location_count(),
                refused: 0,
            };
            self.home.gathers.pending.insert(id, pending);
            if plan
                .per_location
                .iter()
                .any(|(at, _)| *at != self.home.location)
            {
                // Mail to another location could be lost: bound the wait.
                self.home.deadlines.watch_gather(self.home.now_ms, id);
            }
            GatherRef {
                origin: self.home.location,
                id,
            }
        });
        let stanza: Arc<[u8]> = Arc::from(broadcast.stanza);
        self.home.stats.fanouts += 1;
        let me = self.home.location.node;
        // Another node's parts, gathered into one mail for that node.
        let mut remote: Option<(NodeId, NodeFanout)> = None;
        // Locations are sorted, so one node's shards are adjacent: its parts go out together.
        for (location, recipients) in &plan.per_location {
            if location.node != me {
                if remote.as_ref().is_some_and(|(n, _)| *n != location.node) {
                    self.mail_node_fanout(remote.take(), fx);
                }
                let (_, node) = remote.get_or_insert_with(|| {
                    let node = NodeFanout {
                        from: broadcast.from.clone(),
                        kind: broadcast.kind,
                        ty: broadcast.ty,
                        stanza: Arc::clone(&stanza),
                        parts: Vec::new(),
                        gather,
                    };
                    (location.node, node)
                });
                node.parts.push((location.shard, Arc::clone(recipients)));
                continue;
            }
            let fanout = Fanout {
                from: broadcast.from.clone(),
                kind: broadcast.kind,
                ty: broadcast.ty,
                stanza: Arc::clone(&stanza),
                recipients: Arc::clone(recipients),
                gather,
            };
            if *location == self.home.location {
                self.deliver_fanout(&fanout, fx);
            } else {
                fx.mail(*location, Mail::Fanout(Box::new(fanout)));
                self.home.stats.mail_out += 1;
            }
        }
        self.mail_node_fanout(remote.take(), fx);
        // With an ack, the gather reports the stanza handled (possibly already, if every
        // copy was local and nothing waited for a commit): never the caller.
        if acked {
            Handled::Later
        } else {
            Handled::Now
        }
    }

    /// Mails one node's parts of a fan-out: one `Mail::NodeFanout` to its first shard's
    /// location (the receiving bridge splits it), or a plain `Fanout` when only one shard
    /// of that node has recipients.
    fn mail_node_fanout(&mut self, node: Option<(NodeId, NodeFanout)>, fx: &mut impl Effects) {
        let Some((node, mut fanout)) = node else {
            return;
        };
        let Some(&(first, _)) = fanout.parts.first() else {
            return;
        };
        let dest = Location { node, shard: first };
        let mail = if fanout.parts.len() == 1 {
            let (_, recipients) = fanout.parts.remove(0);
            Mail::Fanout(Box::new(Fanout {
                from: fanout.from,
                kind: fanout.kind,
                ty: fanout.ty,
                stanza: fanout.stanza,
                recipients,
                gather: fanout.gather,
            }))
        } else {
            Mail::NodeFanout(Box::new(fanout))
        };
        fx.mail(dest, mail);
        self.home.stats.mail_out += 1;
    }

    /// A fan-out for several shards of this node (from another node): this shard's part is
    /// delivered here, the others are mailed to their shards. (The server's bridge splits
    /// these itself; a router splits one that reaches it anyway.)
    pub(crate) fn on_node_fanout(&mut self, fanout: &NodeFanout, fx: &mut impl Effects) {
        let here = self.home.location;
        for (shard, part) in fanout.split() {
            if shard == here.shard {
                self.deliver_fanout(&part, fx);
            } else {
                let dest = Location {
                    node: here.node,
                    shard,
                };
                fx.mail(dest, Mail::Fanout(Box::new(part)));
                self.home.stats.mail_out += 1;
            }
        }
    }

    /// This shard's part of a fan-out (from a mail or from `broadcast`).
    pub(crate) fn deliver_fanout(&mut self, fanout: &Fanout, fx: &mut impl Effects) {
        if fanout.ty == StanzaType::Probe {
            self.answer_probes(fanout, fx);
            if let Some(gather) = fanout.gather {
                self.gathered(gather, 0, fx);
            }
            return;
        }
        let Ok(view) = StanzaView::parse(&fanout.stanza) else {
            // Built by a router from a parsed stanza: cannot fail; answer the gather anyway.
            if let Some(gather) = fanout.gather {
                self.gathered(gather, 0, fx);
            }
            return;
        };
        let copy = &mut self.stamp;
        let (mut stored, mut refused) = (false, 0u32);
        let message = fanout.kind == StanzaKind::Message;
        // The occupant sessions of the user whose recipients come last (a plan lists a
        // present member's sessions, then its `Member`).
        let mut joined: Vec<&Jid> = Vec::new();
        let from_room = fanout.from.domain() == self.home.groups.domain();
        for recipient in fanout.recipients.iter() {
            let blocked = self.home.copy_blocked(fanout, recipient, from_room);
            match recipient {
                Recipient::Session(full) => {
                    joined.retain(|j| j.bare_str() == full.bare_str());
                    joined.push(full);
                }
                Recipient::Member(bare) if message && joined_by(&joined, bare) => {
                    // A member in the room: its devices that did not join get the message
                    // live (the joined ones got their copies above); nothing is stored.
                    if !blocked {
                        let others = (&fanout.from, &view);
                        let home = &mut self.home;
                        home.send_to_other_devices(&self.conns, others, bare, &joined, copy, fx);
                    }
                    joined.clear();
                    continue;
                }
                _ => joined.clear(),
            }
            if blocked {
                continue;
            }
            copy.clear();
            let to = recipient.jid().as_str();
            view.stamp(fanout.from.as_str(), Some(to), copy);
            match self
                .home
                .deliver_copy(&self.conns, fanout, recipient, copy, fx)
            {
                CopyOutcome::Sent => {}
                CopyOutcome::Stored => stored = true,
                CopyOutcome::Refused => refused += 1,
            }
        }
        let release = fanout
            .gather
            .filter(|_| stored)
            .map(|gather| Release::Gather { gather, refused });
        let handled = self.home.settle(release);
        if let (Some(gather), Handled::Now) = (fanout.gather, handled) {
            self.gathered(gather, refused, fx);
        }
    }

    /// This shard's part of fan-out `gather` is handled: tell the shard that started it.
    pub(crate) fn gathered(&mut self, gather: GatherRef, refused: u32, fx: &mut impl Effects) {
        if gather.origin == self.home.location {
            self.on_gathered(gather.id, refused, fx);
        } else {
            fx.mail(gather.origin, Mail::Gathered { gather, refused });
            self.home.stats.mail_out += 1;
        }
    }

    /// One shard answered fan-out `id`; the last answer releases the sender's ack and, if any
    /// copy was refused, tells the sender with a `resource-constraint` error.
    pub(crate) fn on_gathered(&mut self, id: u64, refused: u32, fx: &mut impl Effects) {
        let Some(pending) = self.home.gathers.pending.get_mut(&id) else {
            return;
        };
        pending.remaining = pending.remaining.saturating_sub(1);
        pending.refused += refused;
        if pending.remaining > 0 {
            return;
        }
        let Some(pending) = self.home.gathers.pending.remove(&id) else {
            return;
        };
        if pending.refused > 0 {
            self.report_refused_copies(&pending.sender, pending.refused, fx);
        }
        if let Some(ack) = pending.sender.ack {
            self.release(ack, fx);
        }
    }

    /// Fan-out `id` did not hear from every location in time: the sender gets a
    /// `remote-server-timeout` error from the room and its ack is released (see
    /// `mail_timeouts`); a later `Gathered` finds nothing and is ignored.
    pub(crate) fn gather_timed_out(&mut self, id: u64, fx: &mut impl Effects) {
        let Some(pending) = self.home.gathers.pending.remove(&id) else {
            return;
        };
        let GatherSender {
            ack,
            sender,
            room,
            id,
        } = pending.sender;
        self.send_timeout_error(&sender, &room, StanzaKind::Message, id.as_deref(), fx);
        if let Some(ack) = ack {
            self.release(ack, fx);
        }
    }

    /// `<message type='error'>` from the room to the sender: some members' copies were not
    /// stored (the message reached the others).
    fn report_refused_copies(
        &mut self,
        sender: &GatherSender,
        refused: u32,
        fx: &mut impl Effects,
    ) {
        let mut error = Vec::with_capacity(320);
        error.extend_from_slice(b"<message type='error'");
        if let Some(id) = &sender.id {
            replies::attr(&mut error, "id", id);
        }
        replies::attr(&mut error, "from", sender.room.as_str());
        replies::attr(&mut error, "to", sender.sender.as_str());
        error.extend_from_slice(
            b"><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>",
        );
        let text = format!(
            "not stored for {refused} member(s) who are away: their offline queue is full or \
             the server cannot write its log; the others got it"
        );
        rookery_proto::writer::escape_text(&text, &mut error);
        error.extend_from_slice(b"</text></error></message>");
        let envelope = Envelope {
            to: &sender.sender,
            from: &sender.room,
            kind: StanzaKind::Message,
            ty: StanzaType::Error,
            stanza: &error,
        };
        self.home.route(&self.conns, &envelope, None, fx);
    }
}

/// Whether `joined` (occupant sessions listed just before) are sessions of member `bare`.
fn joined_by(joined: &[&Jid], bare: &Jid) -> bool {
    joined
        .first()
        .is_some_and(|j| j.bare_str() == bare.as_str())
}

impl Home {
    /// XEP-0191: whether `recipient` blocks the sender of `fanout` (a room's copies by the
    /// occupant's real JID, see `blocking::room_copy_blocked`).
    fn copy_blocked(&mut self, fanout: &Fanout, recipient: &Recipient, from_room: bool) -> bool {
        if !from_room {
            return blocking::blocks(&self.store, recipient.jid().bare_str(), &fanout.from);
        }
        let addressing = (recipient.jid(), &fanout.from);
        let class = (fanout.kind, fanout.ty);
        let seen = &mut self.seen_occupants;
        blocking::room_copy_blocked(&self.store, seen, addressing, class, &fanout.stanza)
    }

    /// A groupchat copy (from `from`, parsed as `view`) to every available session of
    /// `bare` not in `joined`, each stamped with its own `to`.
    fn send_to_other_devices(
        &mut self,
        conns: &ConnSlab,
        (from, view): (&Jid, &StanzaView<'_>),
        bare: &Jid,
        joined: &[&Jid],
        copy: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) {
        for index in 0.. {
            let Some(slot) = self.directory.slot_at(bare.bare_str(), index) else {
                break;
            };
            if !self.sessions.get(slot).is_some_and(|s| s.available) {
                continue;
            }
            let Some(full) = conns.get(slot).and_then(|c| c.jid.as_ref()) else {
                continue;
            };
            if joined.contains(&full) {
                continue;
            }
            copy.clear();
            view.stamp(from.as_str(), Some(full.as_str()), copy);
            self.send(slot, copy, fx);
        }
    }

    /// Writes one recipient's copy (`to` stamped), or stores it (a message for a member who
    /// is away).
    fn deliver_copy(
        &mut self,
        conns: &ConnSlab,
        fanout: &Fanout,
        recipient: &Recipient,
        copy: &[u8],
        fx: &mut impl Effects,
    ) -> CopyOutcome {
        let message = fanout.kind == StanzaKind::Message;
        let envelope = Envelope {
            to: recipient.jid(),
            from: &fanout.from,
            kind: fanout.kind,
            ty: fanout.ty,
            stanza: copy,
        };
        let stored = |routes: &mut Self, fx: &mut _| match routes.store_copy(&envelope, None, fx) {
            true => CopyOutcome::Stored,
            false => CopyOutcome::Refused,
        };
        match recipient {
            Recipient::Available(bare) => {
                self.send_to_available(bare, copy, |_| true, fx);
                self.queue_for_detached_available(bare, copy);
                CopyOutcome::Sent
            }
            Recipient::Session(full) => {
                if !message && self.stale_room_presence(full, &fanout.from, fanout.ty) {
                    return CopyOutcome::Sent;
                }
                if let Some(slot) = self.session(conns, full) {
                    self.send(slot, copy, fx);
                    return CopyOutcome::Sent;
                }
                if !message || self.queue_for_detached(full, copy) {
                    return CopyOutcome::Sent;
                }
                stored(self, fx)
            }
            Recipient::Member(_) if message => stored(self, fx),
            Recipient::Member(_) => CopyOutcome::Sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).expect("valid test JID")
    }

    #[test]
    fn a_plan_groups_recipients_by_home_shard() {
        let people: Vec<Recipient> = (0..100)
            .map(|i| Recipient::Available(jid(&format!("u{i}@example.com"))))
            .collect();
        let four = Placement::local(4);
        let plan = FanoutPlan::build(people.clone(), &four);
        assert_eq!(plan.len(), 100);
        assert!(plan.location_count() <= 4 && plan.location_count() >= 2);
        let mut seen = 0;
        let mut last = None;
        for (location, list) in &plan.per_location {
            assert!(last < Some(*location), "locations in increasing order");
            last = Some(*location);
            for r in list.iter() {
                assert_eq!(four.home(r.jid()), *location);
            }
            seen += list.len();
        }
        assert_eq!(seen, 100);
        let one = FanoutPlan::build(people, &Placement::local(1));
        assert_eq!(one.location_count(), 1);
        assert!(FanoutPlan::build(Vec::new(), &four).is_empty());
    }
}
