//! Groups: XEP-0045 multi-user chat rooms homed on this shard (`room@groups.<domain>`).
//!
//! (Skeleton: the room logic is being written; see `Rooms::on_stanza`.)

use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind, StanzaView};
use rookery_store::Store;

use crate::effects::StanzaType;
use crate::fanout::FanoutPlan;

/// What a room asks the router to do.
#[derive(Debug)]
pub(crate) enum RoomAction {
    /// Deliver a complete stanza (`from` and `to` set) to one user JID (full or bare): an
    /// occupant's real JID, or the sender of a request.
    Send {
        to: Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: Vec<u8>,
    },
    /// Fan a stanza out: `stanza` has `from` (= `from`, the room or `room/nick`) stamped and no
    /// `to`; every recipient of `plan` gets its own `to` stamped.
    Broadcast {
        from: Jid,
        kind: StanzaKind,
        ty: StanzaType,
        stanza: Vec<u8>,
        plan: Arc<FanoutPlan>,
    },
}

/// Settings of the group service.
#[derive(Clone, Debug)]
pub(crate) struct RoomsConfig {
    /// The service domain (`groups.<domain>`).
    pub service: Jid,
    pub max_members: usize,
    pub shards: u16,
    pub shard: u16,
}

/// Every room homed on this shard.
#[derive(Debug)]
pub(crate) struct Rooms {
    config: RoomsConfig,
}

impl Rooms {
    /// The rooms of this shard, restored from the store's keyed tables.
    pub fn load(config: RoomsConfig, store: &Store) -> Rooms {
        let _ = store;
        Rooms { config }
    }

    /// The service domain.
    pub fn service(&self) -> &Jid {
        &self.config.service
    }

    /// A stanza from user `from` (an authenticated full JID) to `to` (the service, a room, or
    /// `room/nick`), as stamped by the user's shard (`from` set). Appends what to do to `out`.
    pub fn on_stanza(
        &mut self,
        from: &Jid,
        to: &Jid,
        view: &StanzaView<'_>,
        store: &mut Store,
        out: &mut Vec<RoomAction>,
    ) {
        let _ = (from, to, view, store, out);
    }

    /// Rooms and occupants, for stats.
    pub fn counts(&self) -> (usize, usize) {
        (0, 0)
    }
}
