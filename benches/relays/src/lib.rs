//! rookery-relays: the runtime peers of Rookery's performance comparison.
//!
//! The same minimal XMPP relay three times, on tokio, monoio and glommio (binaries
//! `relay-tokio`, `relay-monoio`, `relay-glommio`): answer the login sequence rookery-load
//! plays, then for each stanza addressed to a user look up the destination's conn by the `to`
//! JID and write the stanza there with `from` stamped. Each binary is as plain as its runtime's
//! idioms allow; everything that is not about the runtime lives here and is shared, so every
//! peer (and Rookery itself) pays the same framing, parsing and stamping cost
//! (`rookery_proto`'s `Framer`, `StanzaView`, `StanzaView::stamp`) and the comparison measures
//! the runtime and its I/O path.
//!
//! - [`conn`]: the sans-IO protocol of one conn (stream header, SASL PLAIN accepting any
//!   credentials, restart, bind, session, ping, routing hand-off, close);
//! - [`registry`]: bare JID -> bound sessions, generic over each runtime's conn handle;
//! - [`outbox`]: the per-conn output buffer of the thread-per-core peers (monoio, glommio),
//!   [`local`]: their registry and router, one per executor thread, and [`thread_per_core`]:
//!   their accept loop and conn tasks, over the runtime each binary lends;
//! - [`stats`]: the counters printed on exit;
//! - [`cli`]: the flags every binary takes, and the start-up steps they share;
//! - [`stop`]: SIGINT/SIGTERM as a flag each runtime polls.
//!
//! What it does not do: rosters, presence broadcast, offline storage, stream management,
//! TLS, or any durability. These relays are yardsticks for the I/O path, not servers; an
//! undeliverable stanza is dropped and counted, never bounced.

#![forbid(unsafe_code)]

pub mod cli;
pub mod conn;
pub mod local;
pub mod outbox;
pub mod registry;
mod replies;
pub mod stats;
pub mod stop;
pub mod thread_per_core;
