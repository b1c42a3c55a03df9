//! Command line: subcommands and their options, resolved once into a validated [`RunConfig`].
//!
//! Validation happens here so later layers can trust their inputs: the domain and user prefix
//! are plain ASCII (they are written into stanzas without escaping), rates and counts are
//! positive and bounded, the server address resolves.
//!
//! What it does not do: check host limits (ports, fds: see `host`, at run start).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::auth::AuthSpec;
use crate::fanout::{self, Fanout, FanoutArgs};
use crate::offline;
use crate::schedule::Pattern;

/// Most simulated clients one run takes (client indexes are u32; a million per host is the
/// design target, ten is headroom).
pub const MAX_CLIENTS: u64 = 10_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "rookery-load",
    version,
    about = "Open-loop XMPP load generator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Connect and log in every client, hold the sessions for --duration, then close.
    Hold(RunArgs),
    /// Hold, plus every online client sends --rate messages/s to random online peers.
    Chat(RunArgs),
    /// After the ramp every client drops its conn and reconnects as fast as allowed
    /// (--reconnect-rate), again and again for --duration: a reconnect storm.
    Storm(RunArgs),
    /// Phase 1: --senders clients send --messages each to the other clients, who stay
    /// offline, until the server acknowledged them all (XEP-0198); phase 2: the recipients
    /// log in and drain their stored messages (delivery latency from login, drain rate).
    Offline(RunArgs),
    /// Contacts and presence: each client has --contacts ring neighbours (subscribed once by
    /// the setup phase), sends its initial presence, then changes status --rate times a
    /// second; every change is timed to each contact and to the last one.
    Presence(RunArgs),
    /// Group chat (XEP-0045): --groups rooms of --members clients each; every group gets
    /// --rate messages a second from a rotating member, timed to each member and to the last.
    Group(RunArgs),
    /// Backlog drain: --senders store --messages of --body-bytes for ONE offline recipient
    /// (acknowledged with XEP-0198), then it logs in (with XEP-0198 or not) and reads them:
    /// time from bind to the last message, msgs/s, MB/s, each exactly once and in order.
    Drain(crate::drain::DrainArgs),
    /// Start the `rookery` binary built next to this one and run `chat` against it.
    Demo(DemoArgs),
    /// Side-by-side table of recorded runs (folders holding summary.json).
    Report {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Internal: one worker process of a multi-process run (its spec comes on stdin).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        index: u32,
        #[arg(long)]
        of: u32,
    },
}

/// Which server, which domain, which passwords: every scenario that logs in takes these.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub server: String,
    /// XMPP domain of the accounts.
    #[arg(long, default_value = "example.test")]
    pub domain: String,
    /// Passwords: token:SECRET (rookery's token backend) or plain:PREFIX (PREFIX + number).
    #[arg(long, env = "ROOKERY_LOAD_AUTH", hide_env_values = true)]
    pub auth: AuthSpec,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// TLS and SASL of the scenarios that log in (see `security`).
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// TLS: none (plaintext), starttls (RFC 6120 5, on --server) or direct (XEP-0368: TLS
    /// from the first byte, ALPN xmpp-client, to --server as given).
    #[arg(long, value_enum, default_value_t = TlsArg::None)]
    pub tls: TlsArg,
    /// Trust the server certificates that chain to the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Trust any server certificate (no verification): benchmarks on a test host only.
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// TLS session resumption (a session cache per worker thread): on measures resumed
    /// handshakes after each thread's first, off makes every handshake a full one.
    #[arg(long, value_enum, default_value_t = SmArg::On)]
    pub tls_resume: SmArg,
    /// SASL mechanism the clients use (SCRAM needs --auth file accounts on rookery, see
    /// `rookery accounts add-many`, or any server that stores the passwords).
    #[arg(long, value_enum, default_value_t = SaslArg::Plain)]
    pub sasl: SaslArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsArg {
    #[default]
    None,
    Starttls,
    Direct,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaslArg {
    #[default]
    Plain,
    #[value(name = "scram-sha-1")]
    #[serde(rename = "scram-sha-1")]
    ScramSha1,
    #[value(name = "scram-sha-256")]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

/// A run's TLS and SASL, validated (`--tls` other than none has its trust given).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub tls: TlsArg,
    pub tls_ca: Option<PathBuf>,
    pub tls_insecure: bool,
    pub tls_resume: bool,
    pub sasl: SaslArg,
}

impl Security {
    pub fn resolve(args: &SecurityArgs) -> anyhow::Result<Security> {
        let trust_given = args.tls_ca.is_some() || args.tls_insecure;
        if args.tls != TlsArg::None && !trust_given {
            bail!("--tls needs --tls-ca PEM (or --tls-insecure for a benchmark)");
        }
        if args.tls == TlsArg::None && trust_given {
            bail!("--tls-ca and --tls-insecure need --tls starttls or --tls direct");
        }
        Ok(Security {
            tls: args.tls,
            tls_ca: args.tls_ca.clone(),
            tls_insecure: args.tls_insecure,
            tls_resume: args.tls_resume == SmArg::On,
            sasl: args.sasl,
        })
    }
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Options shared by every load scenario. Optional ones have per-scenario defaults.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Simulated clients [default: 1000; demo: 2000].
    #[arg(long)]
    pub clients: Option<u64>,
    /// User names are PREFIX1, PREFIX2, ... (numbered from 1).
    #[arg(long, default_value = "user")]
    pub user_prefix: String,
    /// New connections per second = logins per second, over all threads and processes
    /// (`--login-rate` is the same flag).
    #[arg(long, visible_alias = "login-rate", default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// How long sessions are held (and messages sent) once every client is up: 30s, 2m, 500ms.
    #[arg(long, value_parser = parse_duration_ms)]
    pub duration: Option<u64>,
    /// Messages per second per client [chat: 1; offline: 100, per sender].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Offline: messages each sender sends, spread over the recipients [default: 10].
    #[arg(long)]
    pub messages: Option<u32>,
    /// Offline: clients that send (the rest are the offline recipients) [default: half].
    #[arg(long)]
    pub senders: Option<u64>,
    /// Chat and offline: count as lost only messages the server acknowledged with XEP-0198
    /// `<a h>` (its guarantee); the unacknowledged ones that were lost are reported apart.
    /// Fails when the server does not offer stream management. Offline always counts so.
    #[arg(long)]
    pub verify: bool,
    /// Exponential gaps between messages (Poisson arrivals) instead of a constant period.
    #[arg(long)]
    pub poisson: bool,
    /// After sending stops, how long to wait for stragglers before counting them lost.
    #[arg(long, default_value_t = 2000)]
    pub drain_ms: u64,
    /// Worker threads [default: available cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// I/O backend.
    #[arg(long, value_enum, env = "ROOKERY_BACKEND", default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// io_uring: microseconds a sleeping worker gathers completions into one wake-up (0: it
    /// wakes on the first): fewer wake-ups per message at high rates, at most this much added
    /// to the measured latency. Needs Linux 6.12+; ignored by the poll backend.
    #[arg(long, default_value_t = 0)]
    pub batch_wait_us: u32,
    /// Source addresses: list and ranges, e.g. 10.0.0.2,10.0.0.10-10.0.0.20 [default: picked
    /// automatically on 127.0.0.0/8 when one address lacks ports].
    #[arg(long)]
    pub source_ips: Option<String>,
    /// A connect not finished after this long counts as a connect timeout.
    #[arg(long, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// A connected client not online after this long counts as a login timeout.
    #[arg(long, default_value_t = 10_000)]
    pub login_timeout_ms: u64,
    /// Fail (exit status 3) when the gated p99 is above this many milliseconds (chat: message
    /// end to end, corrected; hold: login).
    #[arg(long)]
    pub max_p99: Option<f64>,
    /// Fail (exit status 3) when more than this many client errors happened.
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Where the run's results folder is created.
    #[arg(long, default_value = "results")]
    pub output: PathBuf,
    /// Last part of the results folder name [default: from clients, rate and backend].
    #[arg(long)]
    pub slug: Option<String>,
    /// Seed of the peer and gap choices [default: random, recorded in summary.json].
    #[arg(long)]
    pub seed: Option<u64>,
    /// No live progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Worker processes [default: as many as RLIMIT_NOFILE requires, usually 1].
    #[arg(long)]
    pub processes: Option<u32>,
    /// Storm: most reconnect attempts per second, over all threads and processes
    /// [default: unlimited].
    #[arg(long)]
    pub reconnect_rate: Option<f64>,
    /// Storm: how long a client stays online before it drops again.
    #[arg(long, default_value_t = 0)]
    pub online_ms: u64,
    /// Chat: every message asks for an XEP-0184 receipt; the round trip is recorded.
    #[arg(long)]
    pub receipts: bool,
    /// Every online client sends a whitespace keepalive (RFC 6120 4.6.1) this often (e.g.
    /// 240s), as real clients do so that NATs and the server's idle timeout do not close a
    /// quiet stream; the first at a random instant within the interval [default: off]. TCP
    /// only (RFC 7395 forbids whitespace over WebSocket).
    #[arg(long, value_parser = parse_duration_ms, default_value = "0s")]
    pub keepalive: u64,
    /// Chat: after the ramp, hold every session idle this long before the first messages
    /// (30s, 5m): a hold phase and a chat phase in one run, over the same sessions.
    #[arg(long, value_parser = parse_duration_ms, default_value = "0s")]
    pub hold_first: u64,
    /// Chat: a reconnect storm inside the chat phase: this fraction of the clients (0..1,
    /// e.g. 0.1) drops its conn at --storm-at (closed at once, the network blip) and logs in
    /// again at --reconnect-rate while the others keep chatting; messages to and from them
    /// are accounted like any other.
    #[arg(long)]
    pub storm_fraction: Option<f64>,
    /// Chat: when the --storm-fraction clients drop, counted from the first messages
    /// [default: a third of --duration].
    #[arg(long, value_parser = parse_duration_ms)]
    pub storm_at: Option<u64>,
    /// XEP-0198: enable stream management when the server offers it, and time the server's
    /// acks of every message (`--stream-management off` to never enable it).
    #[arg(long, value_enum, default_value_t = SmArg::On, num_args = 0..=1,
          default_missing_value = "on")]
    pub stream_management: SmArg,
    /// A cluster file (the one the nodes read): every client connects straight to its home
    /// node's `c2s` address instead of --server. Without it, a client sent elsewhere with
    /// see-other-host follows the redirect (at most 3 per login).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Chat: every message goes to a peer homed on another node than its sender (needs
    /// --cluster with at least two nodes).
    #[arg(long)]
    pub cross_node: bool,
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// How clients reach the server: `tcp` (RFC 6120), or `websocket` (RFC 7395: --server is
    /// then the HTTP listener, upgraded at --ws-path; hold and chat).
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    pub transport: TransportArg,
    /// The WebSocket path (`--transport websocket`).
    #[arg(long, default_value = "/xmpp-websocket")]
    pub ws_path: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportArg {
    #[default]
    Tcp,
    Websocket,
}

impl TransportArg {
    pub fn name(self) -> &'static str {
        match self {
            TransportArg::Tcp => "tcp",
            TransportArg::Websocket => "websocket",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmArg {
    On,
    Off,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendArg {
    Auto,
    Uring,
    Poll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Hold,
    Chat,
    Storm,
    Offline,
    Presence,
    Group,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Hold => "hold",
            Scenario::Chat => "chat",
            Scenario::Storm => "storm",
            Scenario::Offline => "offline",
            Scenario::Presence => "presence",
            Scenario::Group => "group",
        }
    }

    /// Whether clients send on an open-loop schedule in this scenario (messages, status
    /// changes, group messages).
    pub fn sends(self) -> bool {
        !matches!(self, Scenario::Hold | Scenario::Storm)
    }
}

/// Everything a run needs, validated. Serialized whole into summary.json (secret redacted),
/// and to worker processes (with the secret passed beside it, see `procs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub scenario: Scenario,
    pub server: SocketAddr,
    pub domain: String,
    #[serde(serialize_with = "redacted", deserialize_with = "auth_from_text")]
    pub auth: AuthSpec,
    pub user_prefix: String,
    pub clients: u32,
    pub connect_rate: f64,
    pub duration_ms: u64,
    /// Messages per second per client; 0 for hold.
    pub rate: f64,
    pub pattern: Pattern,
    pub drain_ms: u64,
    pub threads: usize,
    pub backend: BackendArg,
    #[serde(default)]
    pub batch_wait_us: u32,
    pub source_ips: Option<String>,
    pub connect_timeout_ms: u64,
    pub login_timeout_ms: u64,
    pub max_p99_ms: Option<f64>,
    pub max_errors: Option<u64>,
    pub output: PathBuf,
    pub slug: String,
    pub seed: u64,
    /// Random id carried by every probe of this run (never derived from the seed, so a
    /// replayed seed cannot mistake an earlier run's stored messages for its own).
    pub run_id: u32,
    pub quiet: bool,
    /// `--processes`, when given.
    pub processes: Option<u32>,
    /// Storm: reconnect attempts per second over the whole run; `None`: unlimited.
    pub reconnect_rate: Option<f64>,
    pub online_ms: u64,
    pub receipts: bool,
    /// `--keepalive`: a whitespace keepalive per online client this often (0: none).
    #[serde(default)]
    pub keepalive_ms: u64,
    /// Chat: `--hold-first`, the idle hold between the ramp and the first messages.
    #[serde(default)]
    pub hold_first_ms: u64,
    /// Chat: `--storm-fraction` and `--storm-at` (from the first messages).
    #[serde(default)]
    pub chat_storm: Option<ChatStorm>,
    pub stream_management: SmArg,
    /// Offline: clients `0..senders` send, the others are the recipients; 0 otherwise.
    #[serde(default)]
    pub senders: u32,
    /// Offline: messages per sender; 0 otherwise.
    #[serde(default)]
    pub messages: u32,
    /// `--verify`: loss counts only messages the server acknowledged (XEP-0198).
    #[serde(default)]
    pub verify: bool,
    /// `--transport` and, for WebSocket, `--ws-path`.
    #[serde(default)]
    pub transport: TransportArg,
    #[serde(default)]
    pub ws_path: String,
    /// Presence and group: the contact ring or the groups; `None` otherwise.
    #[serde(default)]
    pub fanout: Option<Fanout>,
    /// `--cluster`: the cluster file's path and text (clients connect to their home node).
    #[serde(default)]
    pub cluster: Option<ClusterSource>,
    /// `--cross-node`: chat peers are homed on another node than their sender.
    #[serde(default)]
    pub cross_node: bool,
    /// `--tls`, its trust and resumption, and `--sasl`.
    #[serde(default)]
    pub security: Security,
    /// The command line as typed, for the record.
    pub command_line: Vec<String>,
}

/// A chat run's reconnect storm (`--storm-fraction`, `--storm-at`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatStorm {
    /// Of every 1,000 clients (by index), how many drop: `index % 1000 < per_mille`.
    pub per_mille: u32,
    /// When they drop, in ms after the first messages are due.
    pub at_ms: u64,
}

impl ChatStorm {
    /// Whether client `index` drops in the storm.
    pub fn includes(&self, index: u32) -> bool {
        index % 1000 < self.per_mille
    }
}

/// The cluster file a run read (`--cluster`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterSource {
    pub path: PathBuf,
    pub text: String,
}

fn redacted<S: serde::Serializer>(auth: &AuthSpec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(auth.redacted())
}

fn auth_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AuthSpec, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Per-scenario defaults for the optional load options.
pub struct Defaults {
    pub clients: u64,
    pub duration_ms: u64,
    pub rate: f64,
}

pub const RUN_DEFAULTS: Defaults = Defaults {
    clients: 1000,
    duration_ms: 30_000,
    rate: 1.0,
};
/// Offline: default messages per sender, and per-sender rate (messages/s).
pub const OFFLINE_MESSAGES: u32 = 10;
pub const OFFLINE_RATE: f64 = 100.0;

pub const DEMO_DEFAULTS: Defaults = Defaults {
    clients: 2000,
    duration_ms: 30_000,
    rate: 1.0,
};

impl RunConfig {
    /// Validates and resolves the options of a `hold`/`chat`/`storm`/`demo` run.
    pub fn resolve(
        scenario: Scenario,
        server: &str,
        domain: &str,
        auth: AuthSpec,
        load: &LoadArgs,
        defaults: &Defaults,
    ) -> anyhow::Result<RunConfig> {
        let server = resolve_server(server)?;
        check_name("--domain", domain, ".-")?;
        check_name("--user-prefix", &load.user_prefix, "._-")?;
        let clients = load.clients.unwrap_or(defaults.clients);
        if clients == 0 || clients > MAX_CLIENTS {
            bail!("--clients must be between 1 and {MAX_CLIENTS}");
        }
        check_positive("--connect-rate", load.connect_rate)?;
        if load.transport == TransportArg::Websocket {
            if !matches!(scenario, Scenario::Hold | Scenario::Chat) {
                bail!("--transport websocket runs hold and chat only");
            }
            if !load.ws_path.starts_with('/') || load.ws_path.contains(char::is_whitespace) {
                bail!(
                    "--ws-path {:?}: an absolute path like /xmpp-websocket",
                    load.ws_path
                );
            }
        }
        let rate = match scenario {
            Scenario::Chat | Scenario::Group => load.rate.unwrap_or(defaults.rate),
            Scenario::Offline => load.rate.unwrap_or(OFFLINE_RATE),
            Scenario::Presence => load.rate.unwrap_or(fanout::DEFAULT_PRESENCE_RATE),
            Scenario::Hold | Scenario::Storm => 0.0,
        };
        check_spread(load, clients)?;
        if scenario.sends() {
            check_positive("--rate", rate)?;
        }
        offline::check_verify(scenario, load)?;
        let (senders, messages) = offline::shape(scenario, load, clients)?;
        let domain = domain.to_ascii_lowercase();
        let fanout = fanout::resolve(scenario, &load.fanout, clients, &domain)?;
        let duration_ms = match scenario {
            // Phase 1 lasts as long as sending takes; nothing else is timed.
            Scenario::Offline if load.duration.is_some() => {
                bail!("--duration does not apply to offline: its phases end by themselves")
            }
            Scenario::Offline => (f64::from(messages) / rate * 1000.0).ceil() as u64,
            _ => load.duration.unwrap_or(defaults.duration_ms),
        };
        if duration_ms == 0 {
            bail!("--duration must be positive");
        }
        let threads = match load.threads {
            Some(0) => bail!("--threads must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pattern = if load.poisson {
            Pattern::Poisson
        } else {
            Pattern::Constant
        };
        let slug = match &load.slug {
            Some(slug) => sanitize_slug(slug),
            None if scenario == Scenario::Chat => format!("c{clients}-r{rate}"),
            None if scenario == Scenario::Offline => format!("c{clients}-m{messages}"),
            None => fanout
                .as_ref()
                .map_or_else(|| format!("c{clients}"), |f| f.slug(clients, rate)),
        };
        let cluster = resolve_cluster(scenario, server, load, &domain)?;
        if load.keepalive > 0 && load.transport == TransportArg::Websocket {
            bail!("--keepalive sends whitespace, which RFC 7395 forbids over WebSocket");
        }
        let cfg = RunConfig {
            scenario,
            server,
            domain,
            auth,
            user_prefix: load.user_prefix.clone(),
            clients: clients as u32,
            connect_rate: load.connect_rate,
            duration_ms,
            rate,
            pattern,
            drain_ms: load.drain_ms,
            threads: threads.min(clients as usize),
            backend: load.backend,
            batch_wait_us: load.batch_wait_us,
            source_ips: load.source_ips.clone(),
            connect_timeout_ms: load.connect_timeout_ms.max(1),
            login_timeout_ms: load.login_timeout_ms.max(1),
            max_p99_ms: load.max_p99,
            max_errors: load.max_errors,
            output: load.output.clone(),
            slug,
            seed: load.seed.unwrap_or_else(random_seed),
            run_id: random_seed() as u32,
            quiet: load.quiet,
            processes: load.processes,
            reconnect_rate: load.reconnect_rate,
            online_ms: load.online_ms,
            receipts: load.receipts && scenario == Scenario::Chat,
            keepalive_ms: load.keepalive,
            hold_first_ms: load.hold_first,
            chat_storm: chat_storm(scenario, load, duration_ms)?,
            stream_management: load.stream_management,
            senders,
            messages,
            verify: load.verify,
            transport: load.transport,
            ws_path: load.ws_path.clone(),
            fanout,
            cluster,
            cross_node: load.cross_node,
            security: Security::default(),
            command_line: redact_command_line(std::env::args()),
        };
        fanout::check_receipt_numbers(cfg.max_seq(), cfg.per_change())?;
        Ok(cfg)
    }

    /// Largest number of messages one client can send in this run, plus headroom: the
    /// accounting refuses sequence numbers beyond it.
    pub fn max_seq(&self) -> u32 {
        if self.scenario == Scenario::Offline {
            return self.messages.max(1);
        }
        let expected = self.rate * (self.duration_ms as f64 / 1000.0);
        // Poisson runs can exceed the mean; 4x + 64 is far beyond any plausible tail.
        (expected * 4.0 + 64.0).min(f64::from(u32::MAX - 1)) as u32
    }
}

impl RunConfig {
    /// Whether loss counts only messages the server acknowledged (XEP-0198), as `--verify`
    /// asks and the offline scenario always does.
    pub fn counts_acks(&self) -> bool {
        self.verify || self.scenario == Scenario::Offline
    }

    /// Rows of the delivery ledger: senders (presence: every client; group: the groups).
    pub fn ledger_rows(&self) -> u32 {
        self.fanout
            .as_ref()
            .map_or(self.clients, |f| f.rows(self.clients))
    }

    /// Receipts expected per message: 1, or the presence or group fan-out.
    pub fn per_change(&self) -> u32 {
        self.fanout.as_ref().map_or(1, Fanout::per_change)
    }
}

/// The command line with the `--auth` secret replaced, for summary.json.
pub fn redact_command_line(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_auth = false;
    for arg in args {
        let redacted = match arg.parse::<AuthSpec>() {
            Ok(spec) if after_auth => spec.redacted().to_string(),
            _ => match arg.strip_prefix("--auth=").map(str::parse::<AuthSpec>) {
                Some(Ok(spec)) => format!("--auth={}", spec.redacted()),
                _ => arg.clone(),
            },
        };
        after_auth = arg == "--auth";
        out.push(redacted);
    }
    out
}

fn resolve_server(server: &str) -> anyhow::Result<SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("--server {server}: expected host:port"))?
        .next()
        .with_context(|| format!("--server {server}: the name resolves to no address"))
}

/// `--cluster` (read and checked) and `--cross-node`.
fn resolve_cluster(
    scenario: Scenario,
    server: SocketAddr,
    load: &LoadArgs,
    domain: &str,
) -> anyhow::Result<Option<ClusterSource>> {
    let Some(path) = &load.cluster else {
        if load.cross_node {
            bail!("--cross-node needs --cluster FILE (it says where each user lives)");
        }
        return Ok(None);
    };
    let file = rookery_cluster::ClusterFile::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--cluster {}: cannot read it", path.display()))?;
    crate::targets::Targets::new(server, Some(&text), &load.user_prefix, domain, 1)?;
    if load.cross_node && (scenario != Scenario::Chat || file.nodes.len() < 2) {
        bail!("--cross-node applies to chat on a cluster of at least two nodes");
    }
    Ok(Some(ClusterSource {
        path: path.clone(),
        text,
    }))
}

/// `--storm-fraction` and `--storm-at` (chat only), and `--hold-first` (chat only).
fn chat_storm(
    scenario: Scenario,
    load: &LoadArgs,
    duration_ms: u64,
) -> anyhow::Result<Option<ChatStorm>> {
    let chat = scenario == Scenario::Chat;
    if !chat && (load.hold_first > 0 || load.storm_fraction.is_some() || load.storm_at.is_some()) {
        bail!("--hold-first, --storm-fraction and --storm-at apply to chat only");
    }
    let Some(fraction) = load.storm_fraction else {
        if load.storm_at.is_some() {
            bail!("--storm-at needs --storm-fraction");
        }
        return Ok(None);
    };
    if !(fraction > 0.0 && fraction <= 1.0) {
        bail!("--storm-fraction must be in (0, 1], e.g. 0.1 for 10% of the clients");
    }
    let at_ms = load.storm_at.unwrap_or(duration_ms / 3);
    if at_ms >= duration_ms {
        bail!("--storm-at must fall inside --duration (the storm happens while clients chat)");
    }
    Ok(Some(ChatStorm {
        per_mille: ((fraction * 1000.0).round() as u32).clamp(1, 1000),
        at_ms,
    }))
}

/// `--reconnect-rate` and `--processes`.
fn check_spread(load: &LoadArgs, clients: u64) -> anyhow::Result<()> {
    if let Some(reconnect_rate) = load.reconnect_rate {
        check_positive("--reconnect-rate", reconnect_rate)?;
    }
    if load.processes == Some(0) || load.processes.is_some_and(|p| u64::from(p) > clients) {
        bail!("--processes must be between 1 and --clients");
    }
    Ok(())
}

fn check_name(option: &str, value: &str, extra: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if !ok {
        bail!("{option} {value:?}: use ASCII letters, digits and {extra:?} only");
    }
    Ok(())
}

fn check_positive(option: &str, value: f64) -> anyhow::Result<()> {
    if !(value > 0.0 && value.is_finite()) {
        bail!("{option} must be a positive number");
    }
    Ok(())
}

fn sanitize_slug(slug: &str) -> String {
    slug.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A seed from the OS (/dev/urandom), or from the std hasher's per-process keys.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 8];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if from_os {
        return u64::from_le_bytes(bytes);
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

/// Parses `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds, into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 30s, 500ms, 2m"))?;
    let scale_ms = match unit {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok((value * scale_ms).round() as u64)
}

#[cfg(test)]
mod tests;
