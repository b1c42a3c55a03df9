//! XEP-0198 stream management, in one place: per-session counters and queues (`session`),
//! the table of stream-managed sessions and their timers (`table`), the wire elements and
//! the end of a session (`elements`), resumption (`resume`: the `<resumed h>` answer
//! waits until every stanza of the old stream is handled, so `h` counts all of them), and
//! the resumption ids, derived from the session's token under a secret key (`resume_id`).
//!
//! Memory (issue 15): an idle attached stream-managed session costs its 48 B inline slot in
//! the table, nothing else: no box, no JID copy (its conn has the JID), no id string, no
//! bare-JID index entry, and no queues while nothing is in flight.
//!
//! What it does not do: route or store stanzas (see `routing`, `offline`).
//!
//! Invariants: see each submodule.

pub(crate) mod elements;
pub(crate) mod resume;
pub(crate) mod resume_id;
pub(crate) mod session;
pub(crate) mod table;

pub use session::*;
