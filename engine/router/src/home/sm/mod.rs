//! XEP-0198 stream management, in one place: per-session counters and queues (`session`),
//! the table of stream-managed sessions and their timers (`table`), the wire elements and
//! the end of a session (`elements`), and resumption (`resume`: the `<resumed h>` answer
//! waits until every stanza of the old stream is handled, so `h` counts all of them).
//!
//! What it does not do: route or store stanzas (see `routing`, `offline`).
//!
//! Invariants: see each submodule.

pub(crate) mod elements;
pub(crate) mod resume;
pub(crate) mod session;
pub(crate) mod table;

pub use session::*;
