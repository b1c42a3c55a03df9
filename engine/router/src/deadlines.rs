//! Deadlines of mail that waits for an answer from another location: a `Deliver` carrying
//! an ack (the sender's XEP-0198 count waits for `Committed`) and a fan-out gather (the
//! sender's group message waits for every `Gathered`).
//!
//! What it does: keeps one entry per such mail in send order, with its deadline
//! (`RouterConfig::mail_timeout_ms` after sending). Every deadline is "now + the same
//! timeout", so send order is deadline order: a FIFO queue, never a scan. For an ack it
//! keeps the `to` and `id` of the stanza (for the sender's error) in a byte ring beside the
//! entries, so a warm queue allocates nothing per stanza.
//!
//! What it does not do: decide whether an entry still waits (the router asks its tables:
//! the stanza still outstanding in its session, the gather still pending) or write errors.
//!
//! Invariants: entries are in deadline order; the ring holds exactly the bytes of the ack
//! entries, in entry order. Entries answered in time are not removed at once: the router
//! drops them from the front once they reach it (`pop_front`), so the queue holds the mail
//! in flight plus, behind a lost one, at most one timeout's worth.

use std::collections::VecDeque;

use rookery_proto::StanzaKind;

use crate::effects::StanzaType;
use crate::mail::AckRef;

/// What an entry waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// The `Committed` of a `Deliver` mailed with `ack`; `to_len` then `id_len` bytes of the
    /// ring are the stanza's `to` and `id` (0 for none).
    Ack {
        ack: AckRef,
        kind: StanzaKind,
        ty: StanzaType,
        to_len: u16,
        id_len: u16,
    },
    /// The last `Gathered` of this shard's gather `id`.
    Gather(u64),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    due_ms: u64,
    what: Waiting,
}

/// The queue of mail deadlines of one router.
#[derive(Debug)]
pub(crate) struct MailDeadlines {
    entries: VecDeque<Entry>,
    bytes: VecDeque<u8>,
    timeout_ms: u64,
}

impl MailDeadlines {
    pub fn new(timeout_ms: u64) -> MailDeadlines {
        MailDeadlines {
            entries: VecDeque::new(),
            bytes: VecDeque::new(),
            timeout_ms,
        }
    }

    /// Starts waiting (from `now_ms`) for the answer to a `Deliver` with `ack` of a stanza
    /// to `to` with `id`. A `to` or `id` longer than 64 KiB is not kept (the error goes
    /// without it; a JID is at most 3 KiB and ids are short).
    pub fn watch_ack(
        &mut self,
        now_ms: u64,
        ack: AckRef,
        (kind, ty): (StanzaKind, StanzaType),
        to: &str,
        id: Option<&str>,
    ) {
        let to = u16::try_from(to.len()).map_or(&b""[..], |_| to.as_bytes());
        let id = id
            .filter(|id| u16::try_from(id.len()).is_ok())
            .map_or(&b""[..], str::as_bytes);
        self.bytes.extend(to.iter().chain(id).copied());
        let what = Waiting::Ack {
            ack,
            kind,
            ty,
            // Both fit: checked above.
            to_len: to.len() as u16,
            id_len: id.len() as u16,
        };
        self.push(now_ms, what);
    }

    /// Starts waiting (from `now_ms`) for the last answer to gather `id`.
    pub fn watch_gather(&mut self, now_ms: u64, id: u64) {
        self.push(now_ms, Waiting::Gather(id));
    }

    fn push(&mut self, now_ms: u64, what: Waiting) {
        let due_ms = now_ms.saturating_add(self.timeout_ms);
        self.entries.push_back(Entry { due_ms, what });
    }

    /// The oldest entry and whether its deadline passed at `now_ms`.
    pub fn front(&self, now_ms: u64) -> Option<(Waiting, bool)> {
        let entry = self.entries.front()?;
        Some((entry.what, entry.due_ms <= now_ms))
    }

    /// Removes the oldest entry; for an ack, appends its `to` to `to` and its `id` to `id`.
    pub fn pop_front(&mut self, to: &mut Vec<u8>, id: &mut Vec<u8>) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        if let Waiting::Ack { to_len, id_len, .. } = entry.what {
            to.extend(self.bytes.drain(..usize::from(to_len)));
            id.extend(self.bytes.drain(..usize::from(id_len)));
        }
    }

    /// When the oldest deadline passes.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.entries.front().map(|entry| entry.due_ms)
    }

    /// Entries waiting (answered ones not yet dropped included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::sm::SessionRef;
    use crate::location::Location;

    fn ack(stanza: u64) -> AckRef {
        AckRef {
            origin: Location::local(0),
            session: SessionRef(9),
            stanza,
        }
    }

    #[test]
    fn entries_come_due_in_send_order_with_their_bytes() {
        let mut queue = MailDeadlines::new(30_000);
        let message = (StanzaKind::Message, StanzaType::Chat);
        queue.watch_ack(1_000, ack(1), message, "bob@example.com", Some("m1"));
        queue.watch_gather(2_000, 7);
        queue.watch_ack(3_000, ack(2), message, "carol@example.com", None);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.next_deadline_ms(), Some(31_000));
        assert!(matches!(
            queue.front(30_999),
            Some((Waiting::Ack { .. }, false))
        ));
        assert!(matches!(
            queue.front(31_000),
            Some((Waiting::Ack { .. }, true))
        ));
        let (mut to, mut id) = (Vec::new(), Vec::new());
        queue.pop_front(&mut to, &mut id);
        assert_eq!((&to[..], &id[..]), (&b"bob@example.com"[..], &b"m1"[..]));
        assert_eq!(queue.front(32_000), Some((Waiting::Gather(7), true)));
        to.clear();
        id.clear();
        queue.pop_front(&mut to, &mut id);
        assert!(to.is_empty() && id.is_empty(), "a gather keeps no bytes");
        queue.pop_front(&mut to, &mut id);
        assert_eq!((&to[..], &id[..]), (&b"carol@example.com"[..], &b""[..]));
        assert_eq!(queue.front(u64::MAX), None);
        assert_eq!(queue.next_deadline_ms(), None);
        assert!(queue.bytes.is_empty());
    }
}
