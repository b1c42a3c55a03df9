//! The router's side of groups: a session's stanza to the group service goes to the room's
//! home shard, where `muc::Rooms` decides and the router carries out what it asks (single
//! stanzas routed like any, broadcasts fanned out once per destination shard).
//!
//! What it does not do: room logic (see `muc`), or fan-out mechanics (see `fanout`).
//!
//! Invariants: a room's state is touched only on its home shard (`Placement::home` of the room's
//! bare JID); a XEP-0198 sender's group message is handled once every shard stored the
//! copies for members not in the room (`Router::broadcast` with the ack), other room stanzas
//! at once.

pub(crate) mod fanout;
pub(crate) mod muc;

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::groups::fanout::{Broadcast, GatherSender};
use crate::home::groups::muc::RoomAction;
use crate::home::offline::{Release, Waiter};
use crate::home::routing::{mail_deliver, Envelope, Handled};
use crate::mail::AckRef;
use crate::router::Router;

impl Router {
    /// A session's stanza to the group service, a room, or an occupant.
    pub(crate) fn session_to_room(
        &mut self,
        slot: u32,
        room: &Jid,
        view: &StanzaView<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let Some(from) = self.conns.get(slot).and_then(|c| c.jid.clone()) else {
            return Handled::Now;
        };
        let kind = view.kind();
        let ty = StanzaType::classify(kind, view.stanza_type().as_deref());
        if kind == StanzaKind::Presence {
            self.track_room_presence(&from, room, ty);
        }
        let mut stamp = std::mem::take(&mut self.stamp);
        stamp.clear();
        view.stamp(from.as_str(), None, &mut stamp);
        let ack = ack.filter(|_| kind == StanzaKind::Message);
        let envelope = Envelope {
            to: room,
            from: &from,
            kind,
            ty,
            stanza: &stamp,
        };
        let handled = self.send_to_room(&envelope, ack, fx);
        self.stamp = stamp;
        handled
    }

    /// Delivers to the room's home shard: here, or by mail.
    pub(crate) fn send_to_room(
        &mut self,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let home = self.home.placement.home(envelope.to);
        if home == self.home.location {
            return self.room_stanza(envelope, ack, fx);
        }
        let outgoing = (
            &mut self.home.stats,
            &mut self.home.deadlines,
            self.home.now_ms,
        );
        mail_deliver(home, envelope, ack, outgoing, fx)
    }

    /// On the room's home shard: lets the room decide, then carries out its actions. A
    /// stanza that changed the room's stored state (creation, membership, configuration,
    /// subject, affiliations) is answered only once that change is committed.
    pub(crate) fn room_stanza(
        &mut self,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let Ok(view) = StanzaView::parse(envelope.stanza) else {
            return Handled::Now;
        };
        let mut actions = std::mem::take(&mut self.home.room_actions);
        actions.clear();
        let appended_before = self.home.store.pending_bytes();
        let wall_ms = self.home.wall_ms();
        if let Some(archiver) = self.home.mam.as_mut() {
            archiver.wall_ms = wall_ms;
        }
        self.home.rooms.on_stanza(
            envelope.from,
            envelope.to,
            &view,
            (&mut self.home.store, self.home.mam.as_mut()),
            &mut actions,
        );
        let seq = self.home.store.pending_seq();
        let stored = self.home.store.pending_bytes() != appended_before;
        let handled = if stored && !self.home.store.is_committed(seq) {
            let answers = RoomAnswers {
                room: envelope.to.clone(),
                sender: envelope.from.clone(),
                id: view.id().map(|id| id.into()),
                actions: std::mem::take(&mut actions),
                ack,
            };
            let release = Release::Room(Box::new(answers));
            self.home.waiters.push_back(Waiter { seq, release });
            // The ack (if any) goes with the answers (`run_room_answers`).
            if ack.is_some() {
                Handled::Later
            } else {
                Handled::Now
            }
        } else {
            let id = view.id().map(|id| id.into());
            self.run_actions(envelope.to, envelope.from, id, &mut actions, ack, fx)
        };
        self.home.room_actions = actions;
        self.count_rooms(envelope.kind);
        handled
    }

    /// Carries out a room's answers that waited for their commit, then tells the sender of a
    /// XEP-0198 stanza it is handled (unless a gather does so later).
    pub(crate) fn run_room_answers(&mut self, answers: RoomAnswers, fx: &mut impl Effects) {
        let RoomAnswers {
            room,
            sender,
            id,
            mut actions,
            ack,
        } = answers;
        let handled = self.run_actions(&room, &sender, id, &mut actions, ack, fx);
        if let (Handled::Now, Some(ack)) = (handled, ack) {
            self.release(ack, fx);
        }
        self.count_rooms(StanzaKind::Iq);
    }

    /// Carries out `actions` of `room` for `sender`'s stanza `id`: replies routed like any
    /// stanza, broadcasts fanned out; a message's broadcast carries the sender's ack.
    fn run_actions(
        &mut self,
        room: &Jid,
        sender: &Jid,
        id: Option<Box<str>>,
        actions: &mut Vec<RoomAction>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let mut handled = Handled::Now;
        let mut ack = ack;
        for action in actions.drain(..) {
            match action {
                RoomAction::Send {
                    to,
                    kind,
                    ty,
                    stanza,
                } => {
                    let reply = Envelope {
                        to: &to,
                        from: room,
                        kind,
                        ty,
                        stanza: &stanza,
                    };
                    self.home.route(&self.conns, &reply, None, fx);
                }
                RoomAction::Broadcast {
                    from,
                    kind,
                    ty,
                    stanza,
                    plan,
                } => {
                    let broadcast = Broadcast {
                        from: &from,
                        kind,
                        ty,
                        stanza: &stanza,
                    };
                    // A message's broadcast (the first one) carries the sender's ack and
                    // reports copies the members' shards could not store.
                    let waiting = (kind == StanzaKind::Message).then(|| GatherSender {
                        ack: ack.take(),
                        sender: sender.clone(),
                        room: room.to_bare(),
                        id: id.clone(),
                    });
                    if self.broadcast(broadcast, &plan, waiting, fx) == Handled::Later {
                        handled = Handled::Later;
                    }
                }
            }
        }
        handled
    }

    /// Updates the room and occupant gauges after a stanza of `kind`.
    fn count_rooms(&mut self, kind: StanzaKind) {
        // Rooms and occupants change only by presence (joins, leaves) and iq (affiliations);
        // counting walks every room, so messages, the hot path, skip it.
        if kind != StanzaKind::Message {
            let (rooms, occupants) = self.home.rooms.counts();
            self.home.stats.groups = rooms as u64;
            self.home.stats.group_occupants = occupants as u64;
        }
    }
}

/// A room's answers to a stanza whose stored change waits for its commit.
#[derive(Debug)]
pub(crate) struct RoomAnswers {
    room: Jid,
    sender: Jid,
    id: Option<Box<str>>,
    actions: Vec<RoomAction>,
    ack: Option<AckRef>,
}
