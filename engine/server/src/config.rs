//! Command line and environment: what an operator can set, validated once at start.
//!
//! Validation happens here so that every later layer can trust its inputs: the domain is a
//! valid, lower-cased JID domain; `open` auth on a non-loopback address needs an explicit
//! `--allow-open-auth`; the core list names cores this process may run on; a cluster node's
//! cluster file is loaded and checked, lists the node, and decides its shard count.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use rookery_cluster::ClusterFile;
use rookery_io::BackendChoice;
use rookery_proto::Jid;
use rookery_router::{BroadcastRoles, ComponentConfig, NodeId};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "rookery",
    version,
    about = "Thread-per-core XMPP connection engine",
    after_help = "Also: rookery accounts add|passwd|del|list (accounts of --auth file, see \
                  rookery accounts --help); rookery cluster up|down|status (a local cluster \
                  on this host: nats-server and N nodes on loopback, see rookery cluster --help).",
    // A flag given twice takes the last value, so wrappers can append overrides.
    args_override_self = true
)]
pub struct Args {
    /// Client-to-server listen address (one SO_REUSEPORT listener per shard).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub listen: SocketAddr,
    /// The XMPP domain this server hosts.
    #[arg(long, default_value = "example.test")]
    pub domain: String,
    /// Account backend: token (password = hex HMAC-SHA256(secret, localpart)), open (any
    /// password), or file (SCRAM credentials in the data dir, made with `rookery accounts`).
    #[arg(long, value_enum, default_value_t = AuthKind::Token)]
    pub auth: AuthKind,
    /// Secret of the token backend.
    #[arg(long, env = "ROOKERY_TOKEN_SECRET")]
    pub token_secret: Option<String>,
    /// Allow `--auth open` on an address other than loopback.
    #[arg(long)]
    pub allow_open_auth: bool,
    /// XEP-0077 in-band registration: anyone may create an account before logging in
    /// (`--auth file` only; offered under TLS or on loopback; counted per address by the
    /// failed-login throttle).
    #[arg(long)]
    pub allow_registration: bool,
    /// I/O backend: auto probes io_uring and falls back to poll (mio).
    #[arg(long, env = "ROOKERY_BACKEND", default_value = "auto")]
    pub backend: BackendChoice,
    /// Microseconds a busy shard or cluster bridge gathers work into one wake-up (0: each
    /// wakes for every event). Fewer wake-ups per message under load, at most this much added
    /// latency per hop; a shard that slept longer than the window wakes at once. Shards need
    /// io_uring on Linux 6.12+ (the poll backend ignores it); the bridge gathers on any OS.
    #[arg(long, default_value_t = 0)]
    pub batch_wait_us: u32,
    /// io_uring: how a write without a sync (`--durability log`, the archive) reaches the
    /// page cache: `ring` (an io_uring op, which the kernel hands to a worker thread for
    /// buffered ext4 files) or `inline` (a pwrite on the shard's thread: no thread hop, but
    /// the shard waits if the page cache throttles). Synced writes always use the ring.
    #[arg(long, value_enum, default_value_t = FileWritesArg::Ring)]
    pub file_writes: FileWritesArg,
    /// `--durability log|fsync`: milliseconds the log records nobody waits for (chat from a
    /// sender without XEP-0198, who is acknowledged nothing) may wait to share one write with
    /// the next ones. Whatever a sender's XEP-0198 ack, a room, a roster answer or an account
    /// change waits for is written at once. 0: every loop turn writes what it appended.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub commit_delay_ms: u64,
    /// Number of shards (threads); default: one per allowed core.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Cores to pin shards to, e.g. "0,1" or "0-3" (default: the allowed cores, in order).
    #[arg(long)]
    pub cores: Option<String>,
    /// Prometheus metrics address (`/metrics`); "off" disables it.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin: String,
    /// Largest stanza accepted; bigger closes the stream with policy-violation.
    #[arg(long, default_value_t = 65_536)]
    pub max_stanza_bytes: usize,
    /// Seconds a new conn may take to authenticate.
    #[arg(long, default_value_t = 10)]
    pub auth_timeout: u64,
    /// Seconds without any byte from the client before the stream is closed (0 = never).
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Capacity of each shard-to-shard mailbox lane, in messages.
    #[arg(long, default_value_t = 4096)]
    pub mailbox_capacity: usize,
    /// Where each shard keeps its durable log (`shard-N.log`); created if missing.
    #[arg(long, default_value = "rookery-data")]
    pub data_dir: std::path::PathBuf,
    /// memory: nothing on disk; log: survives kill -9 (page cache); fsync: survives power loss.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Log)]
    pub durability: DurabilityArg,
    /// Most messages queued for one offline user; past it senders get resource-constraint.
    #[arg(long, default_value_t = 10_000)]
    pub offline_max: usize,
    /// Most bytes queued for one offline user (records in the log); past it senders get
    /// resource-constraint.
    #[arg(long, default_value_t = rookery_store::StoreConfig::DEFAULT_OFFLINE_MAX_BYTES)]
    pub offline_max_bytes: u64,
    /// Most bytes of queued messages per shard (records in its log); past it senders get
    /// resource-constraint. Keep it well below the free space under --data-dir.
    #[arg(long, default_value_t = rookery_store::StoreConfig::DEFAULT_MAX_STORED_BYTES)]
    pub store_max_bytes: u64,
    /// Bytes a shard's log reaches before it is compacted (rewritten with only the live
    /// messages, once they are under half of it). Compaction stalls the shard for its
    /// syncs (a few ms) however small the log: a larger log compacts less often, costs more
    /// disk and replays longer at start.
    #[arg(long, default_value_t = rookery_store::StoreConfig::DEFAULT_COMPACT_MIN_BYTES)]
    pub log_compact_bytes: u64,
    /// Bytes queued for one client before the conn is closed as a slow consumer. Stored
    /// messages never fill it: they wait in the store and follow as the client reads.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_output_bytes: usize,
    /// XEP-0198: stored messages wait in the store while a session's unacknowledged stanzas
    /// add up to this many bytes (in flight to the client), and follow as acks arrive.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_SM_WINDOW_BYTES)]
    pub sm_window_bytes: usize,
    /// XEP-0198: most bytes of unacknowledged stanzas kept in memory for one session (stored
    /// messages are kept as ids); past it the stream is closed with policy-violation.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_SM_MAX_UNACKED_BYTES)]
    pub sm_max_unacked_bytes: usize,
    /// Duplicate window per shard: keys (sender, recipient, id) of stored messages
    /// remembered, oldest out first; a resend with a remembered key is acknowledged, not
    /// stored again. 0 turns it off.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_DUP_WINDOW_ENTRIES)]
    pub dup_window_entries: usize,
    /// Duplicate window per shard: byte budget (key bytes plus 64 per key).
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_DUP_WINDOW_BYTES)]
    pub dup_window_bytes: usize,
    /// Most sessions (resources) per user; a bind past it gets resource-constraint.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_MAX_RESOURCES)]
    pub max_resources: usize,
    /// Most unauthenticated conns from one source address (per shard); past it new conns
    /// from that address are closed with policy-violation.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_MAX_UNAUTH_PER_ADDRESS)]
    pub max_unauth_per_address: usize,
    /// Failed logins allowed per source address per minute (per shard); past it each
    /// failure is answered after --auth-fail-delay-ms, past twice it the login is refused
    /// and the stream closed. 0 turns it off.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_AUTH_FAIL_PER_ADDRESS)]
    pub auth_fail_per_address: u32,
    /// Failed logins allowed per account per ten minutes (counted on its home shard for
    /// --auth file); same delay and refusal. 0 turns it off.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_AUTH_FAIL_PER_ACCOUNT)]
    pub auth_fail_per_account: u32,
    /// Milliseconds a throttled failed login waits for its answer.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_AUTH_FAIL_DELAY_MS)]
    pub auth_fail_delay_ms: u64,
    /// Most addresses, and most accounts, the failed-login throttle counts per shard; past it
    /// the oldest are forgotten.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_AUTH_THROTTLE_ENTRIES)]
    pub auth_throttle_entries: usize,
    /// Most groups one user may create (counted per home shard of the groups); past it a
    /// creation is refused with not-allowed.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_MAX_ROOMS_PER_USER)]
    pub max_rooms_per_user: usize,
    /// Most groups per shard; past it a creation is refused with resource-constraint.
    #[arg(long, default_value_t = rookery_router::RouterConfig::DEFAULT_MAX_ROOMS_PER_SHARD)]
    pub max_rooms_per_shard: usize,
    /// XEP-0313 message archive: days a one-to-one or group message is kept in
    /// `<data-dir>/archive/shard-N/` (whole days dropped at once); 0: no archive.
    #[arg(long, default_value_t = 30)]
    pub archive_days: u32,
    /// Size at which an archive segment file rolls over (one segment is at most a day).
    #[arg(long, default_value_t = 4 << 20)]
    pub archive_segment_bytes: u64,
    /// Seconds a broken stream with XEP-0198 resumption enabled may be resumed.
    #[arg(long, default_value_t = 300)]
    pub resume_timeout: u64,
    /// Domain of the group chat service (XEP-0045): rooms are `room@GROUPS_DOMAIN`.
    /// Default: `groups.<domain>`.
    #[arg(long)]
    pub groups_domain: Option<String>,
    /// Most members a group may have; a join past it is refused with service-unavailable.
    #[arg(long, default_value_t = 1024)]
    pub group_max_members: usize,
    /// Roles whose presence a new group broadcasts until its owner configures otherwise:
    /// `all` (XEP-0045's default), `none`, or a list of moderator,participant,visitor. Big
    /// groups want `moderator`: with every role broadcast, N joins cost N^2/2 presences.
    #[arg(long, default_value = "all", value_parser = parse_broadcast_roles)]
    pub group_presence_broadcast: BroadcastRoles,
    /// Most roster items per user; a roster set past it is refused with not-allowed.
    #[arg(long, default_value_t = 10_000)]
    pub roster_max: usize,
    /// Presence stanzas per second a session may send on average; past the burst the stream
    /// is closed with policy-violation.
    #[arg(long, default_value_t = 20)]
    pub presence_rate: u32,
    /// Presence stanzas a session may send at once (subscribing to a whole roster).
    #[arg(long, default_value_t = 400)]
    pub presence_burst: u32,
    /// Accept queue asked of the kernel per listener; net.core.somaxconn caps it, so the host's
    /// tuning profile decides (see tuning/).
    #[arg(long, default_value_t = 65_535)]
    pub listen_backlog: i32,
    /// Connections this host is meant to hold: the start-up host check (rookery-tune's) reports
    /// in one line what on this host caps that target. 0 skips the check.
    #[arg(long, default_value_t = 1_000_000)]
    pub target_connections: u64,
    /// File descriptors kept in reserve below RLIMIT_NOFILE (listeners, logs, accept-and-refuse).
    #[arg(long, default_value_t = 64)]
    pub fd_reserve: u64,
    /// The cluster file (TOML: nats URLs, [[node]] id/c2s/shards): run as node --node of that
    /// cluster, reaching the other nodes over NATS. Without it the server is a single node.
    #[arg(long, requires = "node")]
    pub cluster: Option<std::path::PathBuf>,
    /// This node's id in the cluster file (with --cluster).
    #[arg(long, requires = "cluster")]
    pub node: Option<u16>,
    /// XEP-0363 file upload: the HTTP server's address (PUT/GET of files); off by default.
    /// The upload service is then `upload.<domain>` (see README, "File upload").
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// How clients reach the HTTP server, e.g. https://upload.example.org (a TLS proxy in
    /// front); default http://<--http-listen>.
    #[arg(long)]
    pub http_public_url: Option<String>,
    /// Web pages allowed to open XMPP over WebSocket from a browser, as origins
    /// (scheme://host[:port]; repeat the flag or separate with commas). An upgrade whose
    /// Origin is not listed gets 403; one without Origin (not a browser) passes. Default: any
    /// (XMPP logs in with SASL, not cookies).
    #[arg(long, value_delimiter = ',', requires = "http_listen")]
    pub ws_allowed_origin: Vec<String>,
    /// Seconds a WebSocket conn may stay quiet before the server sends it a WebSocket ping
    /// (RFC 7395 forbids whitespace keepalives; browsers answer pings by themselves).
    /// 0 = never.
    #[arg(long, default_value_t = 0)]
    pub ws_ping_interval: u64,
    /// Seconds after an unanswered keepalive ping before the conn is closed (1001).
    #[arg(long, default_value_t = 30)]
    pub ws_ping_timeout: u64,
    /// Largest file one upload may carry (announced as max-file-size).
    #[arg(long, default_value_t = rookery_upload::SlotPolicy::DEFAULT_MAX_FILE_BYTES)]
    pub upload_max_bytes: u64,
    /// Bytes of stored files plus open slots one user may hold; past it slot requests get
    /// resource-constraint.
    #[arg(long, default_value_t = rookery_upload::SlotPolicy::DEFAULT_QUOTA_BYTES_PER_USER)]
    pub upload_quota_bytes: u64,
    /// Seconds an upload slot (its PUT URL) stays valid.
    #[arg(long, default_value_t = rookery_upload::SlotPolicy::DEFAULT_SLOT_TTL_S)]
    pub upload_slot_ttl: u64,
    /// Seconds an uploaded file is kept (0: forever).
    #[arg(long, default_value_t = rookery_http::HttpConfig::DEFAULT_FILE_TTL_S)]
    pub upload_file_ttl: u64,
    /// Content types that may be uploaded: `any`, or a list like image/*,video/mp4.
    #[arg(long, default_value = "any")]
    pub upload_content_types: String,
    /// TLS certificate chain (PEM, leaf first). With --tls-key it enables STARTTLS on
    /// --listen, direct TLS on --listen-tls and HTTPS on --http-listen; re-read on SIGHUP.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Direct TLS listener (XEP-0368, ALPN xmpp-client), e.g. 0.0.0.0:5223; needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub listen_tls: Option<SocketAddr>,
    /// Which conns must be under TLS before they authenticate: remote (every peer that is
    /// not a loopback address; the default with a certificate), all, or off (the default
    /// without one).
    #[arg(long, value_enum)]
    pub require_tls: Option<RequireTls>,
    /// A XEP-0114 external component, NAME=SECRET (repeatable): stanzas to the domain NAME go
    /// to the component that connects to --component-listen and hands shakes with SECRET.
    #[arg(
        long = "component",
        value_name = "NAME=SECRET",
        requires = "component_listen"
    )]
    pub components: Vec<String>,
    /// Listener for XEP-0114 components, e.g. 127.0.0.1:5347 (plain TCP: keep it on loopback
    /// or a private network). Off by default.
    #[arg(long, requires = "components")]
    pub component_listen: Option<SocketAddr>,
    /// XEP-0357: seconds between two push notifications to one registration at most;
    /// messages in between are counted into the next one.
    #[arg(long, default_value_t = 10)]
    pub push_interval: u64,
    /// XEP-0357: notifications carry the last message's body (off by default: the app
    /// server and the platform's push service would read it).
    #[arg(long)]
    pub push_include_body: bool,
}

/// `--require-tls`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequireTls {
    Off,
    Remote,
    All,
}

/// How io_uring shards write their logs and archives without a sync (`--file-writes`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileWritesArg {
    /// A ring op (for buffered ext4 files the kernel runs it on an io-wq worker thread).
    Ring,
    /// A `pwrite` on the shard's thread (page cache; no worker-thread wake-up).
    Inline,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityArg {
    Memory,
    Log,
    Fsync,
}

impl DurabilityArg {
    pub fn to_store(self) -> rookery_store::Durability {
        match self {
            DurabilityArg::Memory => rookery_store::Durability::Memory,
            DurabilityArg::Log => rookery_store::Durability::Log,
            DurabilityArg::Fsync => rookery_store::Durability::Fsync,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Token,
    Open,
    /// Accounts with stored SCRAM credentials, made with `rookery accounts`.
    File,
}

/// Validated settings derived from [`Args`].
#[derive(Debug, Clone)]
pub struct Config {
    pub args: Args,
    pub domain: Jid,
    pub cores: Vec<usize>,
    pub admin: Option<SocketAddr>,
    /// The cluster file and this node's id in it (`--cluster`, `--node`).
    pub cluster: Option<(ClusterFile, NodeId)>,
    /// `--component NAME=SECRET`, validated.
    pub components: Vec<ComponentConfig>,
}

/// Reads `--component NAME=SECRET` values: NAME a domain other than the server's and its
/// services', each once, SECRET not empty.
fn parse_components(args: &Args, domain: &Jid) -> anyhow::Result<Vec<ComponentConfig>> {
    let mut components: Vec<ComponentConfig> = Vec::with_capacity(args.components.len());
    for spec in &args.components {
        let Some((name, secret)) = spec.split_once('=') else {
            bail!(
                "--component {spec:?}: use NAME=SECRET, e.g. push.{}=s3cret",
                domain.domain()
            );
        };
        let name = Jid::parse(name)
            .ok()
            .filter(|jid| jid.local().is_none() && jid.resource().is_none())
            .map(|jid| jid.domain().to_owned());
        let Some(name) = name else {
            bail!(
                "--component {spec:?}: NAME must be a domain, e.g. push.{}",
                domain.domain()
            );
        };
        if secret.is_empty() {
            bail!("--component {name}: the SECRET after '=' must not be empty");
        }
        let groups = args.groups_domain.as_deref().map(str::to_ascii_lowercase);
        let taken = name == domain.domain()
            || groups.as_deref() == Some(name.as_str())
            || (groups.is_none() && name == format!("groups.{}", domain.domain()))
            || components.iter().any(|c| c.name == name);
        if taken {
            bail!("--component {name}: the name is the server's, its group service's or another component's; pick another domain");
        }
        components.push(ComponentConfig {
            name,
            secret: secret.to_owned(),
        });
    }
    Ok(components)
}

fn parse_broadcast_roles(spec: &str) -> Result<BroadcastRoles, String> {
    BroadcastRoles::parse(spec).ok_or_else(|| {
        format!("{spec:?}: use all, none, or roles from moderator,participant,visitor")
    })
}

impl Config {
    pub fn from_args(args: Args, allowed_cores: &[usize]) -> anyhow::Result<Config> {
        let domain = Jid::parse(&args.domain)
            .ok()
            .filter(|jid| jid.local().is_none() && jid.resource().is_none())
            .with_context(|| {
                format!(
                    "--domain {:?} is not a valid XMPP domain (e.g. example.test)",
                    args.domain
                )
            })?;
        if let Some(groups) = &args.groups_domain {
            let valid = Jid::parse(groups)
                .ok()
                .filter(|jid| jid.local().is_none() && jid.resource().is_none());
            match valid {
                Some(jid) if jid.domain() != domain.domain() => {}
                _ => bail!(
                    "--groups-domain {groups:?} must be a valid XMPP domain other than --domain (e.g. groups.{})",
                    domain.domain()
                ),
            }
        }
        if args.listen_backlog < 1 {
            bail!("--listen-backlog must be at least 1 (the kernel caps it at net.core.somaxconn)");
        }
        if args.group_max_members == 0 || args.roster_max == 0 || args.presence_rate == 0 {
            bail!("--group-max-members, --roster-max and --presence-rate must be at least 1");
        }
        if args.max_resources == 0 || args.max_unauth_per_address == 0 {
            bail!("--max-resources and --max-unauth-per-address must be at least 1");
        }
        if args.auth_throttle_entries == 0 {
            bail!("--auth-throttle-entries must be at least 1 (turn a budget off with 0 instead)");
        }
        if args.max_output_bytes < 4 * args.max_stanza_bytes {
            bail!(
                "--max-output-bytes {} must be at least 4 x --max-stanza-bytes ({}): a conn must \
                 hold a few stanzas besides the backlog it is being given",
                args.max_output_bytes,
                args.max_stanza_bytes
            );
        }
        if args.sm_window_bytes < args.max_stanza_bytes
            || args.sm_max_unacked_bytes < args.max_stanza_bytes
        {
            bail!(
                "--sm-window-bytes and --sm-max-unacked-bytes must be at least \
                 --max-stanza-bytes (one stanza must fit)"
            );
        }
        if args.sm_max_unacked_bytes > args.max_output_bytes / 2 {
            bail!(
                "--sm-max-unacked-bytes {} must be at most half of --max-output-bytes {}: after \
                 a XEP-0198 resumption everything kept is written at once and must fit",
                args.sm_max_unacked_bytes,
                args.max_output_bytes
            );
        }
        if args.auth == AuthKind::Token && args.token_secret.as_deref().unwrap_or("").is_empty() {
            bail!("--auth token needs --token-secret S (or ROOKERY_TOKEN_SECRET); clients then log in with password = hex HMAC-SHA256(S, localpart)");
        }
        if args.auth == AuthKind::File && args.durability == DurabilityArg::Memory {
            bail!("--auth file keeps accounts in the data dir's logs; it needs --durability log or fsync, not memory");
        }
        if args.allow_registration && args.auth != AuthKind::File {
            bail!("--allow-registration needs --auth file (accounts are kept in the data dir)");
        }
        if args.auth == AuthKind::Open && !args.listen.ip().is_loopback() && !args.allow_open_auth {
            bail!(
                "--auth open accepts any password; on {} (not loopback) it needs --allow-open-auth",
                args.listen
            );
        }
        if args.max_stanza_bytes < 1024 {
            bail!("--max-stanza-bytes {} is too small for XMPP (RFC 6120 asks servers to accept at least 10000)", args.max_stanza_bytes);
        }
        let cores = match &args.cores {
            Some(list) => parse_core_list(list)?,
            None => allowed_cores.to_vec(),
        };
        if let Some(core) = cores.iter().find(|core| !allowed_cores.contains(core)) {
            bail!("--cores names core {core}, but this process may run only on {allowed_cores:?} (see taskset/cpuset)");
        }
        if args.require_tls.is_some_and(|r| r != RequireTls::Off) && args.tls_cert.is_none() {
            bail!("--require-tls needs a certificate: --tls-cert PEM --tls-key PEM");
        }
        let components = parse_components(&args, &domain)?;
        let mut args = args;
        let cluster = load_cluster(&mut args)?;
        let shards = args.shards.unwrap_or(cores.len().max(1));
        if shards == 0 || shards > usize::from(u16::MAX) {
            bail!("--shards must be between 1 and 65535");
        }
        if cores.is_empty() {
            bail!("no core to run on: --cores is empty");
        }
        let admin = match args.admin.as_str() {
            "off" | "none" | "" => None,
            text => Some(text.parse().with_context(|| {
                format!("--admin {text:?} is not an address like 127.0.0.1:9090 (or \"off\")")
            })?),
        };
        Ok(Config {
            args,
            domain,
            cores,
            admin,
            cluster,
            components,
        })
    }

    pub fn shards(&self) -> usize {
        self.args.shards.unwrap_or(self.cores.len())
    }

    /// The WebSocket keepalive (`--ws-ping-interval`, `--ws-ping-timeout`), if on.
    pub fn ws_keepalive(&self) -> Option<rookery_ws::KeepalivePolicy> {
        (self.args.ws_ping_interval > 0).then(|| rookery_ws::KeepalivePolicy {
            idle_ms: self.args.ws_ping_interval.saturating_mul(1000),
            timeout_ms: self.args.ws_ping_timeout.saturating_mul(1000),
        })
    }

    /// The core shard `index` is pinned to: cores are reused round-robin when shards > cores.
    pub fn core_of(&self, index: usize) -> usize {
        self.cores[index % self.cores.len()]
    }
}

/// Reads `--cluster` for node `--node`: the node must be listed; its `shards` decides
/// `--shards` (an explicit different `--shards` is an error); a `--listen` other than its
/// `c2s` is allowed (behind NAT or a proxy) but warned about, since redirected clients go to
/// `c2s`.
fn load_cluster(args: &mut Args) -> anyhow::Result<Option<(ClusterFile, NodeId)>> {
    let (Some(path), Some(id)) = (&args.cluster, args.node) else {
        return Ok(None);
    };
    let file = ClusterFile::load(path)?;
    let Some(node) = file.node(rookery_cluster::NodeId(id)) else {
        let ids: Vec<u16> = file.nodes.iter().map(|n| n.id.0).collect();
        bail!(
            "--node {id} is not in the cluster file {} (its nodes: {ids:?})",
            path.display()
        );
    };
    match args.shards {
        Some(shards) if shards != usize::from(node.shards) => bail!(
            "--shards {shards} differs from node {id}'s shards = {} in {}: every node reads the \
             same file, so change it there (or drop --shards)",
            node.shards,
            path.display()
        ),
        _ => args.shards = Some(usize::from(node.shards)),
    }
    if node.c2s.parse::<SocketAddr>().ok() != Some(args.listen) {
        tracing::warn!(
            "--listen {} is not node {id}'s c2s {:?} in {}: clients redirected to this node go \
             to the c2s address",
            args.listen,
            node.c2s,
            path.display()
        );
    }
    Ok(Some((file, NodeId(id))))
}

/// Parses "0,2,4-7" into [0, 2, 4, 5, 6, 7].
pub fn parse_core_list(list: &str) -> anyhow::Result<Vec<usize>> {
    let mut cores = Vec::new();
    for part in list
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let bad = || format!("--cores {list:?}: {part:?} is not a core number or range like 2-5");
        match part.split_once('-') {
            Some((first, last)) => {
                let first: usize = first.trim().parse().with_context(bad)?;
                let last: usize = last.trim().parse().with_context(bad)?;
                if first > last {
                    bail!(bad());
                }
                cores.extend(first..=last);
            }
            None => cores.push(part.parse().with_context(bad)?),
        }
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["rookery"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_core_list("0,2,4-6").unwrap(), vec![0, 2, 4, 5, 6]);
        assert!(parse_core_list("3-1").is_err());
        assert!(parse_core_list("a").is_err());
    }

    #[test]
    fn token_auth_needs_a_secret() {
        let err = Config::from_args(args(&[]), &[0]).unwrap_err();
        assert!(err.to_string().contains("--token-secret"));
        assert!(Config::from_args(args(&["--token-secret", "s"]), &[0]).is_ok());
    }

    #[test]
    fn open_auth_is_loopback_only_unless_allowed() {
        let public = ["--auth", "open", "--listen", "0.0.0.0:5222"];
        assert!(Config::from_args(args(&public), &[0]).is_err());
        let mut allowed = public.to_vec();
        allowed.push("--allow-open-auth");
        assert!(Config::from_args(args(&allowed), &[0]).is_ok());
        assert!(Config::from_args(args(&["--auth", "open"]), &[0]).is_ok());
    }

    #[test]
    fn components_are_name_equals_secret_on_free_names() {
        let with = |spec: &str| {
            let argv = [
                "--token-secret",
                "s",
                "--component-listen",
                "127.0.0.1:5347",
                "--component",
                spec,
            ];
            Config::from_args(args(&argv), &[0])
        };
        let ok = with("Push.localhost=s3cret").unwrap();
        assert_eq!(ok.components[0].name, "push.localhost");
        assert_eq!(ok.components[0].secret, "s3cret");
        for bad in [
            "push.localhost",
            "push.localhost=",
            "a@b=s",
            "example.test=s",
            "groups.example.test=s",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        // Without a listener the flag is refused by the parser.
        assert!(Args::try_parse_from(["rookery", "--component", "p.localhost=s"]).is_err());
    }

    #[test]
    fn cores_must_be_allowed_and_domain_valid() {
        let cfg = ["--token-secret", "s", "--cores", "5"];
        assert!(Config::from_args(args(&cfg), &[0, 1]).is_err());
        let bad_domain = ["--token-secret", "s", "--domain", "a@b"];
        assert!(Config::from_args(args(&bad_domain), &[0]).is_err());
        let ok =
            Config::from_args(args(&["--token-secret", "s", "--shards", "3"]), &[0, 1]).unwrap();
        assert_eq!(ok.shards(), 3);
        assert_eq!(ok.core_of(2), 0);
    }

    #[test]
    fn a_cluster_node_takes_its_shards_from_the_file_and_must_be_listed() {
        let dir = std::env::temp_dir().join(format!("rookery-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.toml");
        std::fs::write(
            &path,
            "nats = \"nats://127.0.0.1:4222\"\n[[node]]\nid = 1\nc2s = \"127.0.0.1:5222\"\n\
             shards = 2\n[[node]]\nid = 2\nc2s = \"127.0.0.1:5232\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let node = |extra: &[&str]| {
            let mut all = vec!["--token-secret", "s", "--cluster", file];
            all.extend_from_slice(extra);
            Config::from_args(args(&all), &[0, 1])
        };
        let one = node(&["--node", "1"]).unwrap();
        assert_eq!(one.shards(), 2);
        assert_eq!(one.cluster.as_ref().map(|c| c.1), Some(NodeId(1)));
        let two = node(&["--node", "2", "--listen", "127.0.0.1:5232"]).unwrap();
        assert_eq!(two.shards(), 1);
        let err = node(&["--node", "3"]).unwrap_err().to_string();
        assert!(err.contains("--node 3 is not in the cluster file"), "{err}");
        let err = node(&["--node", "1", "--shards", "3"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("differs from node 1's shards = 2"), "{err}");
        assert!(Args::try_parse_from(["rookery", "--node", "1"]).is_err());
        assert!(Config::from_args(args(&["--token-secret", "s"]), &[0])
            .unwrap()
            .cluster
            .is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
