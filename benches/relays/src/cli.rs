//! The flags every relay binary takes, and the start-up and exit steps they share.
//!
//! What it does not do: build a runtime (each binary does, the way its runtime is meant to be
//! used) or parse runtime-specific flags (tokio's `--threads` lives in its binary).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Args, Command, FromArgMatches};
use rookery_proto::{Jid, JidError};

use crate::stats::Stats;
use crate::stop::StopFlag;

/// Flags shared by `relay-tokio`, `relay-monoio` and `relay-glommio`.
#[derive(Args, Debug, Clone)]
pub struct RelayArgs {
    /// Address to listen on (host:port).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub listen: SocketAddr,
    /// XMPP domain: sessions are <authcid>@DOMAIN/<resource>.
    #[arg(long, default_value = "example.test")]
    pub domain: String,
    /// Pin the relay's thread to this CPU (relay-tokio --threads N: worker i to CPU core+i).
    #[arg(long)]
    pub core: Option<usize>,
}

/// The flags of a relay that takes no flags of its own, from the command line (`--help` calls
/// it `name` and says `about`; a bad flag exits with clap's message).
pub fn parse(name: &'static str, about: &'static str) -> RelayArgs {
    // After the flags: they would put `RelayArgs`' own doc in as the about.
    let command = RelayArgs::augment_args(Command::new(name))
        .version(env!("CARGO_PKG_VERSION"))
        .about(about);
    RelayArgs::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit())
}

/// What a relay needs once its flags are checked.
pub struct Start {
    pub domain: Arc<str>,
    pub stats: Arc<Stats>,
    pub stop: StopFlag,
}

/// Why a relay could not start; each names the flag or the limit to change.
#[derive(Debug)]
pub enum StartError {
    Domain { domain: String, error: JidError },
    Nofile(io::Error),
    Signals(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Domain { domain, error } => {
                write!(
                    f,
                    "--domain {domain:?} is not a valid domain ({error:?}); use e.g. example.test"
                )
            }
            StartError::Nofile(err) => write!(
                f,
                "raising RLIMIT_NOFILE (soft to hard) failed: {err}; check ulimit -Sn / -Hn"
            ),
            StartError::Signals(err) => {
                write!(f, "installing the SIGINT/SIGTERM handlers failed: {err}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Checks the flags, raises RLIMIT_NOFILE (soft to hard: every conn is an fd) and installs
/// the signal handlers. `name` is the binary's, for messages.
pub fn start(name: &str, args: &RelayArgs) -> Result<Start, StartError> {
    let domain = Jid::new(None, &args.domain, None).map_err(|error| StartError::Domain {
        domain: args.domain.clone(),
        error,
    })?;
    let nofile = rookery_io::raise_nofile_limit().map_err(StartError::Nofile)?;
    eprintln!(
        "{name}: RLIMIT_NOFILE {} (was {}; hard {}): at most about that many conns",
        nofile.soft, nofile.soft_before, nofile.hard
    );
    let stop = StopFlag::install().map_err(StartError::Signals)?;
    Ok(Start {
        domain: domain.as_str().into(),
        stats: Arc::new(Stats::default()),
        stop,
    })
}

/// The line the harness (and the tests) wait for: `listen` is the bound address, so with port
/// 0 it names the port the kernel chose.
pub fn ready(name: &str, listen: SocketAddr, core: Option<usize>) {
    let core = core.map_or_else(|| "unpinned".to_string(), |c| format!("core {c}"));
    eprintln!("{name} ready: listening on {listen} ({core})");
}

/// The io_uring peers' `main` off Linux: says so and exits with status 2.
pub fn linux_only(name: &str) -> ! {
    eprintln!("{name}: built for Linux only (io_uring)");
    std::process::exit(2);
}

/// The exit line: the counters.
pub fn finish(name: &str, stats: &Stats) {
    eprintln!("{name} {stats}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_domain_is_refused_naming_the_flag() {
        let args = RelayArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            domain: "bad domain".into(),
            core: None,
        };
        let Err(err) = start("relay-test", &args) else {
            panic!("a domain with a space was accepted");
        };
        assert!(matches!(err, StartError::Domain { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("--domain \"bad domain\""),
            "{err}"
        );
    }
}
