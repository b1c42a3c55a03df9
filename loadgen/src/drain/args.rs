//! The drain scenario's options and their validated form.
//!
//! What it does not do: talk to the server. Invariants of a [`DrainConfig`]: at least one
//! sender and one message, the body at least `body::MIN_BODY_BYTES`, names plain ASCII
//! (written into stanzas without escaping), the run id random (never from the command line,
//! so an earlier run's stored messages are told apart).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rookery_client::Login;
use serde::Serialize;

use super::body::MIN_BODY_BYTES;
use crate::auth::AuthSpec;
use crate::cli::{parse_duration_ms, random_seed, redact_command_line, SmArg, TargetArgs};

/// The resource every drain client binds.
const RESOURCE: &str = "drain";

#[derive(Args, Debug)]
pub struct DrainArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// User names are PREFIX1.. PREFIX<senders> (senders) and PREFIX<senders+1> (recipient).
    #[arg(long, default_value = "drain")]
    pub user_prefix: String,
    /// Clients that build the backlog, in parallel.
    #[arg(long, default_value_t = 4)]
    pub senders: u32,
    /// Messages in the backlog, over all senders.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u32,
    /// Bytes of each message's body (the stanza adds about 80 on the wire, more once stored).
    #[arg(long, default_value_t = 1024)]
    pub body_bytes: usize,
    /// XEP-0198 for the recipient (`off`: a plain stream; the senders always use it).
    #[arg(long, value_enum, default_value_t = SmArg::On, num_args = 0..=1,
          default_missing_value = "on")]
    pub stream_management: SmArg,
    /// With XEP-0198: the recipient acks every this many stanzas (0: only when the server
    /// asks with `<r/>`).
    #[arg(long, default_value_t = 256)]
    pub ack_every: u32,
    /// Unacknowledged messages a sender keeps in flight.
    #[arg(long, default_value_t = 1024)]
    pub window: u32,
    /// The server's pid: its RSS (/proc/PID/status) is recorded before, between and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Longest the backlog may take to be stored: 10m, 90s.
    #[arg(long, default_value = "10m", value_parser = parse_duration_ms)]
    pub store_timeout: u64,
    /// Longest the drain may take, from the recipient's bind.
    #[arg(long, default_value = "10m", value_parser = parse_duration_ms)]
    pub drain_timeout: u64,
    /// After the last message, how long the recipient keeps reading for duplicates.
    #[arg(long, default_value = "1s", value_parser = parse_duration_ms)]
    pub settle: u64,
    /// Where the run's results folder is created.
    #[arg(long, default_value = "results")]
    pub output: PathBuf,
    /// Last part of the results folder name [default: from messages, size and XEP-0198].
    #[arg(long)]
    pub slug: Option<String>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// A drain run, validated. Serialized into summary.json (secret redacted).
#[derive(Clone, Debug, Serialize)]
pub struct DrainConfig {
    pub server: SocketAddr,
    pub domain: String,
    #[serde(skip)]
    pub auth: AuthSpec,
    pub user_prefix: String,
    pub senders: u32,
    pub messages: u32,
    pub body_bytes: usize,
    /// Whether the recipient enables XEP-0198.
    pub recipient_sm: bool,
    pub ack_every: u32,
    pub window: u32,
    pub server_pid: Option<u32>,
    pub store_timeout_ms: u64,
    pub drain_timeout_ms: u64,
    pub settle_ms: u64,
    #[serde(skip)]
    pub output: PathBuf,
    pub slug: String,
    pub run_id: u32,
    #[serde(skip)]
    pub quiet: bool,
    pub command_line: Vec<String>,
}

impl DrainConfig {
    pub fn resolve(args: &DrainArgs) -> anyhow::Result<DrainConfig> {
        let server = args
            .target
            .server
            .to_socket_addrs()
            .with_context(|| format!("--server {}: expected host:port", args.target.server))?
            .next()
            .with_context(|| format!("--server {}: resolves to no address", args.target.server))?;
        plain_name("--domain", &args.target.domain)?;
        plain_name("--user-prefix", &args.user_prefix)?;
        if args.senders == 0 || args.senders > 1024 {
            bail!("--senders must be between 1 and 1024");
        }
        if args.messages == 0 {
            bail!("--messages must be at least 1");
        }
        if !(MIN_BODY_BYTES..=16 << 20).contains(&args.body_bytes) {
            bail!("--body-bytes must be between {MIN_BODY_BYTES} (the probe) and 16 MiB");
        }
        if args.window == 0 {
            bail!("--window must be at least 1");
        }
        let recipient_sm = args.stream_management == SmArg::On;
        let slug = args.slug.clone().unwrap_or_else(|| {
            let sm = if recipient_sm { "sm" } else { "nosm" };
            format!("m{}-b{}-{sm}", args.messages, args.body_bytes)
        });
        Ok(DrainConfig {
            server,
            domain: args.target.domain.to_ascii_lowercase(),
            auth: args.target.auth.clone(),
            user_prefix: args.user_prefix.clone(),
            senders: args.senders,
            messages: args.messages,
            body_bytes: args.body_bytes,
            recipient_sm,
            ack_every: args.ack_every,
            window: args.window,
            server_pid: args.server_pid,
            store_timeout_ms: args.store_timeout.max(1),
            drain_timeout_ms: args.drain_timeout.max(1),
            settle_ms: args.settle,
            output: args.output.clone(),
            slug: slug.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "-"),
            run_id: random_seed() as u32,
            quiet: args.quiet,
            command_line: redact_command_line(std::env::args()),
        })
    }

    /// Messages sender `s` sends: an even split, the first ones taking the remainder.
    pub fn messages_of(&self, s: u32) -> u32 {
        self.messages / self.senders + u32::from(s < self.messages % self.senders)
    }

    /// The login of sender `s` (0-based), or of the recipient (`s == senders`).
    pub fn login(&self, s: u32) -> Login {
        let number = u64::from(s) + 1;
        let localpart = format!("{}{number}", self.user_prefix).to_lowercase();
        let password = self.auth.password(&localpart, number);
        Login::new(&self.domain, &localpart, &password).with_resource(Some(RESOURCE))
    }

    /// The recipient's bare JID.
    pub fn recipient_jid(&self) -> String {
        let number = self.senders + 1;
        format!("{}{number}@{}", self.user_prefix, self.domain).to_lowercase()
    }

    /// Largest stanza the clients frame: a message of `--body-bytes` plus what the server adds
    /// (from, `<delay/>`), at least 64 KiB.
    pub fn max_stanza_bytes(&self) -> usize {
        (self.body_bytes + 8 * 1024).max(64 * 1024)
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.store_timeout_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

fn plain_name(option: &str, value: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if !ok {
        bail!("{option} {value:?}: use ASCII letters, digits and . - _ only");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn resolve(extra: &[&str]) -> anyhow::Result<DrainConfig> {
        let mut argv = vec!["rookery-load", "drain", "--auth", "token:s", "--server"];
        argv.extend_from_slice(&["127.0.0.1:5222"]);
        argv.extend_from_slice(extra);
        let Command::Drain(args) = Cli::try_parse_from(argv)?.command else {
            panic!("not drain");
        };
        DrainConfig::resolve(&args)
    }

    #[test]
    fn splits_messages_and_names_users() {
        let cfg = resolve(&["--senders", "3", "--messages", "10"]).unwrap();
        let split: Vec<u32> = (0..3).map(|s| cfg.messages_of(s)).collect();
        assert_eq!(split, [4, 3, 3]);
        assert_eq!(cfg.recipient_jid(), "drain4@example.test");
        assert_eq!(cfg.login(0).username, "drain1");
        assert_eq!(cfg.login(3).username, "drain4");
        assert_eq!(cfg.slug, "m10-b1024-sm");
        let off = resolve(&["--stream-management", "off", "--body-bytes", "65536"]).unwrap();
        assert!(!off.recipient_sm);
        assert_eq!(off.slug, "m10000-b65536-nosm");
    }

    #[test]
    fn refuses_what_cannot_run() {
        for bad in [
            &["--senders", "0"][..],
            &["--messages", "0"],
            &["--body-bytes", "10"],
            &["--window", "0"],
            &["--domain", "a b"],
            &["--user-prefix", "x'y"],
        ] {
            assert!(resolve(bad).is_err(), "{bad:?}");
        }
    }
}
