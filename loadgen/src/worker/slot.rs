//! One simulated client as its worker keeps it, and the worker's digest of client events.
//!
//! Size matters: a million clients live in slabs of these. `size_of::<Slot>()` is checked
//! by a test against the per-client budget (512 bytes user space in total).

use rookery_io::ConnId;

use crate::client::{Client, ClientEvent};
use crate::metrics::ErrorKind;
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
    /// Messages the server acknowledged (XEP-0198): the first `acked` of `seq`.
    pub acked: u32,
    /// Offline: counted as settled for its phase (see `offline`).
    pub settled: bool,
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
            settled: false,
        }
    }
}

/// A client event reduced to what the worker acts on (owned, so it outlives the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
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
    /// An XEP-0184 receipt for one of our messages.
    Receipt(ReceiptId),
    SmEnabled,
    SmFailed,
    /// The server acked (XEP-0198) a message of ours due at this instant.
    SmAcked(u64),
}

impl Note {
    pub fn from_event(event: ClientEvent<'_>) -> Note {
        match event {
            ClientEvent::Online => Note::Online,
            ClientEvent::Message { body, delayed } => {
                parse_probe(&body).map_or(Note::Foreign, |probe| Note::Probe { probe, delayed })
            }
            ClientEvent::Bounced => Note::Bounced,
            ClientEvent::AuthFailed { .. } => Note::Failed(ErrorKind::AuthFailure),
            ClientEvent::BindFailed { .. } => Note::Failed(ErrorKind::BindFailure),
            ClientEvent::StreamError { .. } => Note::Failed(ErrorKind::StreamError),
            ClientEvent::ProtocolError { .. } => Note::Failed(ErrorKind::Protocol),
            ClientEvent::StreamClosed => Note::StreamClosed,
            ClientEvent::Receipt { id } => {
                parse_receipt_id(&id).map_or(Note::Foreign, Note::Receipt)
            }
            ClientEvent::SmEnabled => Note::SmEnabled,
            ClientEvent::SmFailed => Note::SmFailed,
            ClientEvent::SmAcked { intended_ns } => Note::SmAcked(intended_ns),
        }
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

    #[test]
    fn events_reduce_to_notes() {
        let body = "rl r=9 s=1 q=2 i=3 a=4".into();
        assert_eq!(
            Note::from_event(ClientEvent::Message {
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
            Note::from_event(ClientEvent::Message {
                body: "hi".into(),
                delayed: false
            }),
            Note::Foreign
        );
        assert_eq!(
            Note::from_event(ClientEvent::StreamError {
                condition: "conflict"
            }),
            Note::Failed(ErrorKind::StreamError)
        );
        assert_eq!(
            Note::from_event(ClientEvent::Receipt {
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
            Note::from_event(ClientEvent::Receipt { id: "m1".into() }),
            Note::Foreign
        );
    }
}
