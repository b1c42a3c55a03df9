//! The flags every relay binary takes, and the start-up and exit steps they share.
//!
//! What it does not do: build a runtime (each binary does, the way its runtime is meant to be
//! used) or parse runtime-specific flags (tokio's `--threads` lives in its binary).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use rookery_proto::Jid;

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
    /// Pin the relay's thread (tokio: its first worker; see --threads) to this CPU.
    #[arg(long)]
    pub core: Option<usize>,
}

/// What a relay needs once its flags are checked.
pub struct Start {
    pub domain: Arc<str>,
    pub stats: Arc<Stats>,
    pub stop: StopFlag,
}

/// Checks the flags, raises RLIMIT_NOFILE (soft to hard: every conn is an fd) and installs
/// the signal handlers. `name` is the binary's, for messages.
pub fn start(name: &str, args: &RelayArgs) -> anyhow::Result<Start> {
    let domain = Jid::new(None, &args.domain, None).map_err(|err| {
        anyhow::anyhow!("--domain {:?} is not a valid domain: {err:?}", args.domain)
    })?;
    if let Some(core) = args.core {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if core >= cores {
            bail!(
                "--core {core}: this machine has cores 0..{} (see nproc)",
                cores - 1
            );
        }
    }
    let nofile = rookery_io::raise_nofile_limit().context(
        "raising RLIMIT_NOFILE (soft to hard) failed; raise the hard limit with ulimit -Hn",
    )?;
    eprintln!(
        "{name}: RLIMIT_NOFILE {} (was {}; hard {}): at most about that many conns",
        nofile.soft, nofile.soft_before, nofile.hard
    );
    let stop = StopFlag::install().context("installing the SIGINT/SIGTERM handlers")?;
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

/// The exit line: the counters.
pub fn finish(name: &str, stats: &Stats) {
    eprintln!("{name} {stats}");
}
