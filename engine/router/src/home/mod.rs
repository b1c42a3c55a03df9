//! The home layer: what a user's home shard keeps and does for the users it homes, grouped
//! by concern: XEP-0198 (`sm`), presence and rosters (`presence`), groups and fan-out
//! (`groups`), RFC 6121 routing (`routing`), server-answered stanzas (`local`),
//! store-and-forward (`offline`, `delivery`, `delay`).
//!
//! What it does not do: streams (framing, SASL, binding: the stream layer's modules at the
//! crate root). Not yet split out: the tables these modules work on are still fields of
//! `Router` (a `Home` struct owning them, with methods instead of `impl Router`, is the next
//! step of the restructure; the brief's layout names it). This module only groups the home
//! layer's modules by concern.
//!
//! Invariants: see each submodule.

pub(crate) mod delay;
pub(crate) mod delivery;
pub(crate) mod groups;
pub(crate) mod local;
pub(crate) mod offline;
pub(crate) mod presence;
pub(crate) mod routing;
pub(crate) mod sm;
