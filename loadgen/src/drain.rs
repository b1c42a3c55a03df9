//! The drain scenario (`rookery-load drain`): how fast one client receives a large offline
//! backlog.
//!
//! Phase 1 (store): `--senders` clients log in with XEP-0198 and send `--messages` messages
//! in all (split evenly, sequence numbers from 0 per sender, bodies of exactly
//! `--body-bytes`) to ONE recipient that is offline, so the server stores them; the phase ends
//! once the server acknowledged every message (the XEP-0198 `<a h/>` that, on rookery, follows
//! the log commit). A message refused (an error stanza back: a store budget) fails the run:
//! the backlog asked for could not be built.
//! Phase 2 (drain): the recipient logs in, with XEP-0198 (acking every `--ack-every`
//! stanzas, and whenever the server asks) or without it, sends its initial presence and
//! reads until every message arrived; the drain time runs from the bind to the last message.
//! Every message must arrive exactly once and each sender's in order (see `ledger`); a
//! duplicate, a reordering or a missing message fails the run (exit status 3), as in the
//! other scenarios. `--server-pid` adds the server's RSS before, between and after the phases.
//!
//! What it does not do: run many clients (see `run` and `worker` for the load scenarios), or
//! start the server (see benches/scripts/drain.sh).

mod args;
mod body;
mod conn;
mod ledger;
mod record;
mod recv;
mod send;

pub use args::{DrainArgs, DrainConfig};

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::env::Environment;

/// Why a drain run could not be done (distinct from a run that broke its gates).
#[derive(Debug)]
pub enum DrainError {
    Connect {
        server: SocketAddr,
        err: std::io::Error,
    },
    Io {
        what: &'static str,
        err: std::io::Error,
    },
    Login {
        user: String,
        detail: String,
    },
    LoginTimeout {
        user: String,
    },
    Ended {
        user: String,
        detail: String,
    },
    Closed {
        user: String,
    },
    NoStreamManagement {
        user: String,
    },
    Refused {
        refused: u64,
        first: String,
    },
    StoreTimeout {
        acked: u64,
        sent: u64,
    },
}

impl fmt::Display for DrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainError::Connect { server, err } => {
                write!(
                    f,
                    "connecting to {server}: {err} (is the server running there?)"
                )
            }
            DrainError::Io { what, err } => write!(f, "{what}: {err}"),
            DrainError::Login { user, detail } => write!(f, "login of {user}: {detail}"),
            DrainError::LoginTimeout { user } => write!(
                f,
                "login of {user} did not finish before its deadline: is the server overloaded?"
            ),
            DrainError::Ended { user, detail } => write!(
                f,
                "{user}'s stream ended: {detail} (see the server's log for why)"
            ),
            DrainError::Closed { user } => write!(
                f,
                "the server closed {user}'s conn (see the server's log for why)"
            ),
            DrainError::NoStreamManagement { user } => write!(
                f,
                "{user}: the server did not enable XEP-0198 (no <sm xmlns='urn:xmpp:sm:3'/> \
                 offered, or <enable/> refused); the senders need its acks to know the backlog \
                 is stored"
            ),
            DrainError::Refused { refused, first } => write!(
                f,
                "the server refused {refused} message(s) instead of storing them (first: \
                 {first}); raise its budgets: rookery --offline-max (messages per user), \
                 --offline-max-bytes and --store-max-bytes (bytes of log records)"
            ),
            DrainError::StoreTimeout { acked, sent } => write!(
                f,
                "only {acked} of {sent} messages acknowledged by the server before \
                 --store-timeout: raise it, or look at the server (disk, log commits)"
            ),
        }
    }
}

impl std::error::Error for DrainError {}

/// Runs a drain, writes its results folder and prints its report; returns the broken gates.
pub fn drain(args: &DrainArgs) -> anyhow::Result<Vec<String>> {
    let cfg = DrainConfig::resolve(args)?;
    let rss_start = cfg.server_pid.and_then(record::server_memory);
    let began = Instant::now();
    let stored = send::store(&cfg)?;
    let rss_stored = cfg.server_pid.and_then(record::server_memory);
    let drained = recv::drain(&cfg)?;
    let rss_drained = cfg.server_pid.and_then(record::server_memory);
    let rss = record::Rss {
        start: rss_start,
        stored: rss_stored,
        drain_peak_kib: drained.server_rss_peak_kib,
        drained: rss_drained,
    };
    let run = record::Run {
        stored,
        drained,
        rss,
        total_s: began.elapsed().as_secs_f64(),
    };
    let dir = record::write(&cfg, &run, &Environment::detect())?;
    print!("{}", record::report_text(&cfg, &run, &dir));
    Ok(record::violations(&run))
}
