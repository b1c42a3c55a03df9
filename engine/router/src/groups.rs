//! The router's side of groups: a session's stanza to the group service goes to the room's
//! home shard, where `muc::Rooms` decides and the router carries out what it asks (single
//! stanzas routed like any, broadcasts fanned out once per destination shard).
//!
//! What it does not do: room logic (see `muc`), or fan-out mechanics (see `fanout`).
//!
//! Invariants: a room's state is touched only on its home shard (`home_shard` of the room's
//! bare JID); a XEP-0198 sender's group message is handled once every shard stored the
//! copies for members not in the room (`Router::broadcast` with the ack), other room stanzas
//! at once.

use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{AckRef, Effects, StanzaType};
use crate::fanout::{Broadcast, GatherSender};
use crate::home_shard;
use crate::muc::RoomAction;
use crate::router::Router;
use crate::routing::{mail_deliver, Envelope, Handled};

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
        let home = home_shard(envelope.to, self.shards);
        if home == self.shard {
            return self.room_stanza(envelope, ack, fx);
        }
        mail_deliver(home, envelope, ack, &mut self.stats, fx)
    }

    /// On the room's home shard: lets the room decide, then carries out its actions.
    pub(crate) fn room_stanza(
        &mut self,
        envelope: &Envelope<'_>,
        ack: Option<AckRef>,
        fx: &mut impl Effects,
    ) -> Handled {
        let Ok(view) = StanzaView::parse(envelope.stanza) else {
            return Handled::Now;
        };
        let mut actions = std::mem::take(&mut self.room_actions);
        actions.clear();
        self.rooms.on_stanza(
            envelope.from,
            envelope.to,
            &view,
            &mut self.store,
            &mut actions,
        );
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
                        from: envelope.to,
                        kind,
                        ty,
                        stanza: &stanza,
                    };
                    let (mut routes, _) = self.routes();
                    routes.route(&reply, None, fx);
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
                        sender: envelope.from.clone(),
                        room: envelope.to.to_bare(),
                        id: view.id().map(|id| id.into()),
                    });
                    if self.broadcast(broadcast, &plan, waiting, fx) == Handled::Later {
                        handled = Handled::Later;
                    }
                }
            }
        }
        self.room_actions = actions;
        // Rooms and occupants change only by presence (joins, leaves) and iq (affiliations);
        // counting walks every room, so messages, the hot path, skip it.
        if envelope.kind != StanzaKind::Message {
            let (rooms, occupants) = self.rooms.counts();
            self.stats.groups = rooms as u64;
            self.stats.group_occupants = occupants as u64;
        }
        handled
    }
}
