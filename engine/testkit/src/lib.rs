//! rookery-testkit: test helpers for Rookery, out of the production crates. The router's
//! integration tests, the simulator, the benches and the fuzz targets use it.
//!
//! - `cluster`: a recording `Effects` and a harness running N routers in one thread with a
//!   virtual clock, mail and hand-offs moved as the server would, commit steps.
//! - `login`: logins on the harness through `rookery-client`, and the raw login bytes for
//!   tests that drive the router by hand.
//! - `fuzzing` (hidden): one client's input after a scripted login, for the router's fuzz
//!   target and its property test.
//!
//! What it does not do: anything on a production path (nothing here is linked into the
//! server); it reaches the router through its public API only.
//!
//! Invariants: see `cluster` (conn keys unique across the cluster, a logical client keeps
//! its id across hand-offs).

#![forbid(unsafe_code)]

mod cluster;
#[doc(hidden)]
pub mod fuzzing;
mod login;
pub mod nats;

pub use cluster::*;
pub use login::{bind_iq, bound_jid, client_header, plain_auth};
