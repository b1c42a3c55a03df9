//! rookery-router: the sans-IO XMPP state machine of one shard.
//!
//! A [`Router`] owns the conns and sessions of one shard. It never touches sockets, threads or
//! clocks: inputs arrive as method calls (bytes from a conn, mail from another shard, a tick
//! with `now_ms`) and every effect goes out through the caller's [`Effects`] (send bytes,
//! close, mail another shard, hand a conn to another shard). That makes it unit-testable and
//! simulatable; the server wires it to the io driver and the mailboxes.
//!
//! The path of a conn: stream header -> SASL PLAIN -> stream restart -> resource bind (or
//! XEP-0198 resumption), which completes on the user's *home shard* ([`Placement::home`]): if the
//! conn landed elsewhere it is handed over there, so all resources of a user live in one
//! directory; in a cluster, a conn whose user's home is another node is sent there with
//! `see-other-host` instead (`stream::redirect`). A bound session's stanzas are stamped with its full JID and routed per RFC 6121
//! section 8, one hop to the recipient's home shard.
//!
//! Delivery guarantee: the router owns its shard's `rookery_store::Store`. Every normal or
//! chat message for a local user is stored there before it is written to any session; it is
//! deleted when a XEP-0198 client acknowledged it (or at once after writing it to a session
//! without stream management); with no session available it waits and is flushed, with a
//! XEP-0203 delay stamp, when the user sends initial presence. The sender's XEP-0198 handled
//! count covers a stored message only once the recipient's home shard committed it: the shard
//! loop commits once per turn (`begin_commit()`, write, `finish_commit`, then
//! `on_committed`), and a sender on another shard hears of it by `Mail::Committed`.
//!
//! Modules, one job each. The stream layer (per conn), under `stream`: the feed loop,
//! `stream::sasl` (SASL over the `accounts` backends), `stream::header` (headers, computed features, `Dialect`),
//! `stream::conn` (per-conn state, slab),
//! `stream::bind` (binding, hand-off); beside it `accounts` (the account backends behind one trait), `unauth`,
//! `timers` (coarse wheel), `ids` (stream ids, resources), `random` (keyed unpredictable bytes). The home layer (per user), under
//! `home`: `home::sm` (XEP-0198: `session` counters and queues, `table` sessions and
//! timers, `elements` the wire elements and detach, `resume`: the `<resumed h>` answer
//! waits until every stanza of the old stream is handled, so `h` counts all of them),
//! `home::presence` (presence, `table`, `subscription`, `roster`, `roster_iq`),
//! `home::groups` (the router side of rooms, `fanout`, `muc`), `home::routing` (RFC 6121
//! delivery), `home::local` (server-answered stanzas), `home::upload` (the XEP-0363 upload
//! service: disco, slots, the shard's quota ledger), `home::offline` (store-and-forward,
//! commits), `home::delivery` (flow control), `home::delay` (XEP-0203); `sessions`
//! (directory). Shared: `config`, `effects` (outputs), `location` (typed shard/node
//! addresses, `Placement`), `mail` (cross-location mail and its wire form), `errors` (stream
//! errors, session ends, close causes), `deadlines` and `mail_timeouts` (mail that waits too
//! long for its answer), `maps` (seeded hash maps), `replies` (bytes the router writes),
//! `tables`, and `stats`. `Router` holds the conn slab (stream layer) and a `home::Home`
//! (home layer) as separate fields, so they borrow apart; routing, offline, delivery and
//! presence fan-out are methods on `Home`, the rest are still `impl Router` blocks. Test helpers (a
//! recording `Effects`, a multi-shard harness, the fuzz scenario) live in `rookery-testkit`,
//! over this crate's public API.
//!
//! What it does not do yet: rosters, presence broadcast, SCRAM, TLS (later issues; TLS
//! belongs to the server), or any I/O on the store's log (the shard loop's job).

#![forbid(unsafe_code)]
// STYLE.md: functions under 70 lines (the threshold is in this package's clippy.toml).
#![warn(clippy::too_many_lines)]

pub mod accounts;
mod config;
mod deadlines;
mod effects;
mod errors;
mod home;
mod ids;
mod location;
mod mail;
mod mail_timeouts;
mod maps;
mod random;
mod replies;
mod router;
mod sessions;
mod stats;
mod stream;
mod tables;
mod timers;
mod unauth;

pub use config::{
    AuthBackend, BroadcastRoles, ClusterConfig, ComponentConfig, RouterConfig, TlsPolicy,
    TlsRequired,
};
pub use effects::{ConnKey, Effects, Framing, Handoff, Security, StanzaType, Transport};
pub use errors::{Cause, Fault, SessionEnd, StreamError};
pub use home::admin_accounts::AccountCommand;
pub use home::sm::elements::SM_NS;
pub use home::sm::{
    SessionRef, SM_MAX_UNACKED, SM_MAX_UNACKED_HARD, SM_REQUEST_DELAY_MS, SM_REQUEST_EVERY,
    SM_RESUME_WAIT_MS,
};
pub use home::upload::UploadConfig;
pub use location::{Location, NodeId, Placement, ShardId, Slot};
pub use mail::{AckRef, Fanout, GatherRef, Mail, NodeFanout, Recipient, WireError, MAIL_VERSION};
pub use random::KEY_BYTES as RANDOM_KEY_BYTES;
/// The `token` backend's password of a local part (rookery-sasl's, re-exported for tests and tools).
pub use rookery_sasl::token_password;
pub use router::Router;
pub use stats::{Metric, MetricKind, RouterStats};
pub use stream::MAX_AUTH_FAILURES;
pub use timers::SLOT_MS as TIMER_SLOT_MS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_can_be_built_on_one_thread_and_moved_to_its_shard() {
        fn assert_send<T: Send>() {}
        assert_send::<Router>();
    }
}
