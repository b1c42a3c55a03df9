//! One simulated client as its worker keeps it, and the worker's digest of client events.
//!
//! Size matters: a million clients live in slabs of these. `size_of::<Slot>()` is checked
//! by a test against the per-client budget (512 bytes user space in total).

use rookery_io::ConnId;

use crate::client::{Client, ClientEvent, PresenceEvent, PresenceKind, Subscription};
use crate::fanout::wire::{parse_body, Names, CONFIG_ID_PREFIX};
use crate::fanout::JoinError;
use crate::metrics::ErrorKind;
use crate::sys::monotonic_ns;
use crate::wire::{parse_probe, parse_receipt_id, Probe, ReceiptId};

/// Life of a slot. Outside a storm `Failed` is final; in a storm a failed or dropped client
/// goes back to `Pending` and waits for its reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Its connect is not due yet (ramp), or it waits for a reconnect (storm).
    Pending,
    Connecting,
    LoggingIn,
    Online,
    Failed,
    /// The run is over and we closed the stream.
    Closing,
}

#[derive(Debug)]
pub struct Slot {
    pub client: Client,
    pub conn: Option<ConnId>,
    /// Client index (0-based, global across threads); its user number is `index + 1`.
    pub index: u32,
    pub state: SlotState,
    /// Messages sent; also the sequence number of the next one.
    pub seq: u32,
    /// When the connect started (CLOCK_MONOTONIC ns): base of the connect and login latency.
    pub started_ns: u64,
    /// When the next message is due.
    pub next_due_ns: u64,
    /// Connects started for this slot (wrapping): timers armed for an earlier conn are stale.
    pub attempt: u16,
    /// Messages the server acknowledged (XEP-0198): the first `acked` of `seq` (less the
    /// ranges left unacknowledged by a dropped stream, see `storm`).
    pub acked: u32,
    /// `seq` when the current stream began: its acks count from there.
    pub ack_base: u32,
    /// Offline, presence, group: counted as settled for its phase (see `offline`).
    pub settled: bool,
    /// Where it connects: an index into the worker's `Targets` (its home with `--cluster`,
    /// the last see-other-host it followed otherwise).
    pub target: u8,
    /// See-other-host redirects followed since its last login.
    pub redirects: u8,
}

impl Slot {
    pub fn new(index: u32, client: Client) -> Slot {
        Slot {
            client,
            conn: None,
            index,
            state: SlotState::Pending,
            seq: 0,
            started_ns: 0,
            next_due_ns: 0,
            attempt: 0,
            acked: 0,
            ack_base: 0,
            settled: false,
            target: 0,
            redirects: 0,
        }
    }

    /// The probe of this slot's next message of run `run`: due at `next_due_ns`, stamped now.
    pub fn due_probe(&self, run: u32) -> Probe {
        Probe {
            run,
            sender: self.index,
            seq: self.seq,
            intended_ns: self.next_due_ns,
            actual_ns: monotonic_ns(),
        }
    }
}

/// A client event reduced to what the worker acts on (owned, so it outlives the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// `<proceed/>`: start TLS on the conn.
    StartTls,
    Online,
    /// One of our messages; `delayed`: it carried an XEP-0203 `<delay/>` (it was stored).
    Probe {
        probe: Probe,
        delayed: bool,
    },
    /// A message whose body is not one of ours.
    Foreign,
    Bounced,
    Failed(ErrorKind),
    StreamClosed,
    /// See-other-host: log in at this address (`None`: a value we cannot connect to).
    Redirect(Option<std::net::SocketAddr>),
    /// An XEP-0184 receipt for one of our messages.
    Receipt(ReceiptId),
    SmEnabled,
    SmFailed,
    /// The server acked (XEP-0198) a message of ours due at this instant.
    SmAcked(u64),
    /// Our roster lists client `contact` with this subscription (the get's answer or a push).
    RosterItem {
        contact: u32,
        subscription: Subscription,
    },
    /// The answer to our roster get is complete.
    RosterLoaded,
    /// Client `0` asks to see our presence.
    Subscribe(u32),
    /// Client `0` approved our request.
    Subscribed(u32),
    /// Available presence of client `from`; `probe`: the status change it carries, if ours.
    Available {
        from: u32,
        probe: Option<Probe>,
    },
    /// Our join of `group` is done (XEP-0045 status 110); `created`: status 201 came with it.
    Joined {
        group: u32,
        created: bool,
    },
    /// The room refused our join.
    JoinFailed {
        group: u32,
        error: JoinError,
    },
    /// A message of `group`, carrying one of our bodies.
    GroupProbe {
        group: u32,
        probe: Probe,
    },
    /// The answer to an instant-room form.
    RoomConfigured {
        ok: bool,
    },
    /// Nothing the worker acts on (other presence, answers to nothing of ours).
    Ignored,
}

impl Note {
    /// The note of one event of client `me` (whose run names its peers by `names`).
    pub fn from_event(event: ClientEvent<'_>, names: &Names<'_>, me: u32) -> Note {
        match event {
            ClientEvent::Online => Note::Online,
            ClientEvent::StartTls => Note::StartTls,
            ClientEvent::Message { body, delayed } => {
                parse_probe(&body).map_or(Note::Foreign, |probe| Note::Probe { probe, delayed })
            }
            ClientEvent::Bounced => Note::Bounced,
            ClientEvent::AuthFailed { .. } => Note::Failed(ErrorKind::AuthFailure),
            ClientEvent::BindFailed { .. } => Note::Failed(ErrorKind::BindFailure),
            ClientEvent::StreamError { condition } => {
                tracing::debug!(condition, "stream error from the server");
                Note::Failed(ErrorKind::StreamError)
            }
            ClientEvent::ProtocolError { .. } => Note::Failed(ErrorKind::Protocol),
            ClientEvent::StreamClosed => Note::StreamClosed,
            ClientEvent::Redirect { host } => Note::Redirect(crate::targets::redirect_addr(&host)),
            ClientEvent::Receipt { id } => {
                parse_receipt_id(&id).map_or(Note::Foreign, Note::Receipt)
            }
            ClientEvent::SmEnabled => Note::SmEnabled,
            ClientEvent::SmFailed => Note::SmFailed,
            ClientEvent::SmAcked { intended_ns } => Note::SmAcked(intended_ns),
            ClientEvent::Presence(p) => presence_note(&p, names, me),
            ClientEvent::RosterItem { jid, subscription } => match names.user_of(&jid) {
                Some(contact) => Note::RosterItem {
                    contact,
                    subscription,
                },
                None => Note::Ignored,
            },
            ClientEvent::RosterLoaded => Note::RosterLoaded,
            ClientEvent::IqAnswer { id, ok } if id.starts_with(CONFIG_ID_PREFIX) => {
                Note::RoomConfigured { ok }
            }
            ClientEvent::IqAnswer { .. } => Note::Ignored,
            ClientEvent::GroupMessage { from, body } => {
                match (names.room_of(&from), parse_body(&body)) {
                    (Some((group, _)), Some(probe)) => Note::GroupProbe { group, probe },
                    _ => Note::Foreign,
                }
            }
        }
    }
}

/// What a presence stanza means to the presence and group scenarios.
fn presence_note(p: &PresenceEvent<'_>, names: &Names<'_>, me: u32) -> Note {
    if let Some((group, nick)) = names.room_of(&p.from) {
        if !names.is_nick_of(nick, me) {
            return Note::Ignored; // another occupant, or the room itself
        }
        return match p.kind {
            PresenceKind::Error => Note::JoinFailed {
                group,
                error: JoinError::from_condition(p.error.unwrap_or("")),
            },
            PresenceKind::Available if p.muc_self => Note::Joined {
                group,
                created: p.muc_created,
            },
            _ => Note::Ignored,
        };
    }
    let Some(from) = names.user_of(&p.from) else {
        return Note::Ignored;
    };
    match p.kind {
        PresenceKind::Available => Note::Available {
            from,
            probe: p.status.as_deref().and_then(parse_body),
        },
        PresenceKind::Subscribe => Note::Subscribe(from),
        PresenceKind::Subscribed => Note::Subscribed(from),
        _ => Note::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_fits_the_client_budget() {
        // Slot + heap timer entry (16 B) + conn map entry (4 B) + ledger row (24 B) + the io
        // layer's conn slot must stay under 512 bytes; the slot takes at most 160.
        let size = std::mem::size_of::<Slot>();
        assert!(size <= 160, "Slot is {size} bytes");
    }

    const NAMES: Names<'static> = Names {
        user_prefix: "user",
        domain: "example.test",
        muc_domain: "groups.example.test",
        presence_broadcast: "",
    };

    fn note(event: ClientEvent<'_>) -> Note {
        Note::from_event(event, &NAMES, 6)
    }

    fn presence(from: &str, kind: PresenceKind) -> PresenceEvent<'_> {
        PresenceEvent {
            from: from.into(),
            kind,
            status: None,
            muc_self: false,
            muc_created: false,
            error: None,
        }
    }

    #[test]
    fn presence_and_group_events_reduce_to_notes() {
        let mut p = presence("user3@example.test/load", PresenceKind::Available);
        p.status = Some("rk r=1 s=2 q=3 i=4 a=5".into());
        let probe = Probe {
            run: 1,
            sender: 2,
            seq: 3,
            intended_ns: 4,
            actual_ns: 5,
        };
        assert_eq!(
            note(ClientEvent::Presence(p)),
            Note::Available {
                from: 2,
                probe: Some(probe)
            }
        );
        let p = presence("user3@example.test", PresenceKind::Subscribe);
        assert_eq!(note(ClientEvent::Presence(p)), Note::Subscribe(2));
        let p = presence("user3@example.test", PresenceKind::Subscribed);
        assert_eq!(note(ClientEvent::Presence(p)), Note::Subscribed(2));
        let p = presence("bob@example.test", PresenceKind::Subscribe);
        assert_eq!(note(ClientEvent::Presence(p)), Note::Ignored);
        // Our own occupant presence (we are client 6, user7) vs another occupant's.
        let mut p = presence("g4@groups.example.test/user7", PresenceKind::Available);
        (p.muc_self, p.muc_created) = (true, true);
        assert_eq!(
            note(ClientEvent::Presence(p)),
            Note::Joined {
                group: 4,
                created: true
            }
        );
        let p = presence("g4@groups.example.test/user8", PresenceKind::Available);
        assert_eq!(note(ClientEvent::Presence(p)), Note::Ignored);
        let mut p = presence("g4@groups.example.test/user7", PresenceKind::Error);
        p.error = Some("service-unavailable");
        assert_eq!(
            note(ClientEvent::Presence(p)),
            Note::JoinFailed {
                group: 4,
                error: JoinError::ServiceUnavailable
            }
        );
        assert_eq!(
            note(ClientEvent::GroupMessage {
                from: "g4@groups.example.test/user9".into(),
                body: "rk r=1 s=2 q=3 i=4 a=5".into()
            }),
            Note::GroupProbe { group: 4, probe }
        );
        assert_eq!(
            note(ClientEvent::GroupMessage {
                from: "g4@groups.example.test/user9".into(),
                body: "hello".into()
            }),
            Note::Foreign
        );
        assert_eq!(
            note(ClientEvent::RosterItem {
                jid: "user3@example.test".into(),
                subscription: Subscription::Both
            }),
            Note::RosterItem {
                contact: 2,
                subscription: Subscription::Both
            }
        );
        assert_eq!(
            note(ClientEvent::IqAnswer {
                id: "cfg-4".into(),
                ok: false
            }),
            Note::RoomConfigured { ok: false }
        );
    }

    #[test]
    fn events_reduce_to_notes() {
        let body = "rl r=9 s=1 q=2 i=3 a=4".into();
        assert_eq!(
            note(ClientEvent::Message {
                body,
                delayed: true
            }),
            Note::Probe {
                probe: Probe {
                    run: 9,
                    sender: 1,
                    seq: 2,
                    intended_ns: 3,
                    actual_ns: 4
                },
                delayed: true
            }
        );
        assert_eq!(
            note(ClientEvent::Message {
                body: "hi".into(),
                delayed: false
            }),
            Note::Foreign
        );
        assert_eq!(
            note(ClientEvent::StreamError {
                condition: "conflict"
            }),
            Note::Failed(ErrorKind::StreamError)
        );
        assert_eq!(
            note(ClientEvent::Receipt {
                id: "rl-1-2-3-4".into()
            }),
            Note::Receipt(ReceiptId {
                run: 1,
                sender: 2,
                seq: 3,
                intended_ns: 4
            })
        );
        assert_eq!(
            note(ClientEvent::Receipt { id: "m1".into() }),
            Note::Foreign
        );
    }
}
