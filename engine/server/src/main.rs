//! `rookery`: the server binary. Parses the command line, raises the fd limit, picks the I/O
//! backend, opens one SO_REUSEPORT listener per shard, starts the HTTP upload server when asked
//! (`upload`), one pinned thread per shard (and, on a cluster node, the bridge thread to the
//! other nodes) and waits for SIGINT/SIGTERM (or a shard failing) to stop them all (the HTTP
//! server last). `rookery cluster up|down|status` runs a local cluster instead (see
//! `cluster_cmd`).

mod accounts_cmd;
mod cluster_cmd;
mod config;
mod data_dir;
mod listener;
mod sys;
mod tls;
mod upload;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rookery_cluster::bridge::{Bridge, BridgeConfig};
use rookery_cluster::link::LinkConfig;
use rookery_cluster::ClusterFile;
use rookery_io::{BackendKind, Limits, PollDriver};
use rookery_mailbox::grid;
use rookery_router::{AuthBackend, NodeId, Router, RouterConfig};
use tracing::{error, info, warn};

use config::{Args, AuthKind, Config};
use rookery::cluster::{self, ClusterEndpoint};
use rookery::metrics;
use rookery::seams::MonotonicClock;
use rookery::shard::{self, ShardParts, Shared};

/// How a shard thread or the signal watcher tells main it is done.
enum Exit {
    Signal(&'static str),
    Shard(usize, anyhow::Result<()>),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut words = std::env::args().skip(1).peekable();
    match words.peek().map(String::as_str) {
        Some("cluster") => {
            words.next();
            if let Err(err) = cluster_cmd::main(words.collect()) {
                error!("{err:#}");
                std::process::exit(1);
            }
            return;
        }
        Some("accounts") => {
            words.next();
            if let Err(err) = accounts_cmd::main(words) {
                eprintln!("rookery accounts: {err:#}");
                std::process::exit(1);
            }
            return;
        }
        _ => {}
    }
    if let Err(err) = run(Args::parse()) {
        error!("{err:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::from_args(args, &sys::allowed_cores())?;
    sys::block_termination_signals().context("blocking SIGINT/SIGTERM")?;
    let max_conns = conn_ceiling(&config)?;
    let limits = Limits {
        max_output_bytes: config.args.max_output_bytes,
        batch_wait_us: config.args.batch_wait_us,
        inline_file_writes: config.args.file_writes == config::FileWritesArg::Inline,
        ..Limits::default()
    };
    let selected = rookery_io::select_backend(config.args.backend, &limits)?;
    info!("backend: {} ({})", selected.kind, selected.reason);
    let shards = config.shards();
    let cores: Vec<usize> = (0..shards).map(|i| config.core_of(i)).collect();
    info!("shards: {shards}, pinned to cores {cores:?}");

    let tls = tls::load(&config)?;
    let listeners =
        listener::reuseport_listeners(config.args.listen, shards, config.args.listen_backlog)?;
    let bound = listeners[0].local_addr()?;
    let mut tls_listeners: Vec<Option<std::net::TcpListener>> = match config.args.listen_tls {
        Some(addr) => listener::reuseport_listeners(addr, shards, config.args.listen_backlog)
            .with_context(|| format!("--listen-tls {addr}"))?
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..shards).map(|_| None).collect(),
    };
    let mut component_listeners: Vec<Option<std::net::TcpListener>> =
        match config.args.component_listen {
            Some(addr) => listener::reuseport_listeners(addr, shards, config.args.listen_backlog)
                .with_context(|| format!("--component-listen {addr}"))?
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..shards).map(|_| None).collect(),
        };
    let bound_component = component_listeners
        .first()
        .and_then(Option::as_ref)
        .map(std::net::TcpListener::local_addr)
        .transpose()?;
    let bound_tls = tls_listeners
        .first()
        .and_then(Option::as_ref)
        .map(std::net::TcpListener::local_addr)
        .transpose()?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        open_conns: AtomicU64::new(0),
        max_conns,
        started: Instant::now(),
    });
    let stores = data_dir::open_stores(&config)?;
    // Before the routers: their quota ledgers are seeded from the files on disk.
    let upload = upload::start(&config)?;
    let mut router_config = router_config(&config);
    router_config.upload = upload.as_ref().map(|u| u.config.clone());
    let router_config = Arc::new(router_config);
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stats: Vec<_> = (0..shards)
        .map(|_| Arc::new(metrics::ShardStats::default()))
        .collect();
    let (exit_tx, exit_rx) = mpsc::channel();
    let mut threads = Vec::new();
    // A cluster node's grid has the bridge as its last participant.
    let mut mailboxes = grid(
        shards + usize::from(config.cluster.is_some()),
        config.args.mailbox_capacity,
    );
    let bridge = match &config.cluster {
        Some((file, me)) => Some(start_bridge(
            file,
            *me,
            shards,
            &mut mailboxes,
            config.args.batch_wait_us,
        )?),
        None => None,
    };
    // `--auth file`: account changes through the admin endpoint, applied by the home shards.
    let accounts = (config.args.auth == AuthKind::File).then(|| {
        let placement = match &router_config.cluster {
            Some(cluster) => cluster.placement.clone(),
            None => rookery_router::Placement::local(shards as u16),
        };
        Arc::new(rookery::admin_accounts::AccountDesk::new(
            placement,
            config.domain.clone(),
        ))
    });
    let shard_inputs = listeners.into_iter().zip(mailboxes).zip(stores).enumerate();
    for (index, ((listener, mailbox), store)) in shard_inputs {
        // A seed from the OS per shard: unpredictable stream ids, HashDoS-resistant maps.
        let seed = std::hash::RandomState::new().hash_one(index);
        let mut router =
            Router::with_store_and_seed(Arc::clone(&router_config), index as u16, store, seed);
        // A key from the OS for the router's unpredictable bytes (nonces, slot tokens).
        let mut key = [0u8; rookery_router::RANDOM_KEY_BYTES];
        getrandom::fill(&mut key).context("drawing a random key from the OS")?;
        router.set_random_key(&key);
        if let Some(why) = router.archive_error() {
            anyhow::bail!("{why}");
        }
        // The router has no clock: give it wall time once (for XEP-0203 delay stamps).
        router.set_wall_clock(shared.started.elapsed().as_millis() as u64, unix_ms);
        if let Some(upload) = &upload {
            upload.seed(index, &mut router);
        }
        let parts = ShardParts {
            index,
            mailbox,
            router,
            stats: Arc::clone(&stats[index]),
            shared: Arc::clone(&shared),
            clock: MonotonicClock {
                started: shared.started,
            },
            usage: upload.as_ref().map(|u| u.inbox(index)),
            accounts: accounts.as_ref().map(|desk| desk.inbox(index)),
            tls: tls.clone(),
            websocket: upload.as_ref().map(|u| u.ws_inbox(index)),
            ws_keepalive: config.ws_keepalive(),
            commit_delay_ms: config.args.commit_delay_ms,
        };
        let listener = shard::Listeners {
            plain: listener,
            tls: tls_listeners[index].take(),
            component: component_listeners[index].take(),
        };
        let (kind, core, limits, exit_tx) =
            (selected.kind, cores[index], limits.clone(), exit_tx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rookery-shard-{index}"))
            .spawn(move || {
                let result = shard_thread(kind, core, limits, listener, parts);
                let _ = exit_tx.send(Exit::Shard(index, result));
            })?;
        threads.push(thread);
    }
    if let Some(admin) = config.admin {
        let cluster = bridge.as_ref().map(|(_, metrics)| metrics.clone());
        let http = upload.as_ref().map(|u| u.http.metrics_reader());
        let extra = move |out: &mut String| {
            if let Some(http) = &http {
                http.snapshot().write_prometheus(out);
            }
        };
        let addr = metrics::serve_with(admin, stats.clone(), cluster, extra, accounts)
            .with_context(|| {
                format!("--admin {admin}: cannot listen (in use? pass --admin off or another port)")
            })?;
        info!("metrics: http://{addr}/metrics");
    }
    watch_signals(exit_tx, tls.clone())?;
    if let Some(addr) = bound_tls {
        info!("direct TLS (XEP-0368) on {addr}");
    }
    if let Some(addr) = bound_component {
        let names: Vec<&str> = config.components.iter().map(|c| c.name.as_str()).collect();
        info!("XEP-0114 components {names:?} on {addr}");
    }
    info!(
        "ready: listening on {bound} for domain {} ({shards} shards)",
        config.domain
    );
    wait_for_exit(&exit_rx, &shared, threads.len())?;
    for thread in threads {
        let _ = thread.join();
    }
    if let Some((bridge, _)) = bridge {
        // After the shards: what they staged on the way down leaves in its last turn.
        bridge.stop();
    }
    if let Some(upload) = upload {
        // Open requests finish (up to rookery_http::SHUTDOWN_GRACE), then its threads end.
        upload.http.shutdown();
    }
    info!("stopped");
    Ok(())
}

/// Starts the bridge of node `me` on the grid's last mailbox (taken from `mailboxes`).
fn start_bridge(
    file: &ClusterFile,
    me: NodeId,
    shards: usize,
    mailboxes: &mut Vec<rookery_mailbox::Mailbox<shard::ShardMail>>,
    batch_wait_us: u32,
) -> anyhow::Result<(Bridge, metrics::ClusterMetrics)> {
    let mailbox = mailboxes
        .pop()
        .context("the grid has the bridge's mailbox")?;
    let endpoint = ClusterEndpoint::new(mailbox, me, shards as u16);
    let endpoint_stats = endpoint.stats();
    let config = BridgeConfig {
        file: file.clone(),
        me: rookery_cluster::NodeId(me.0),
        link: LinkConfig::default(),
        batch_wait: std::time::Duration::from_micros(batch_wait_us.into()),
    };
    let bridge = Bridge::start(config, endpoint).context("starting the cluster bridge")?;
    info!(
        "cluster node {} of {} ({} vshards), NATS {:?}",
        me.0,
        file.nodes.len(),
        file.vshards,
        file.nats
    );
    let metrics = metrics::ClusterMetrics {
        node: me.0,
        bridge: bridge.stats(),
        endpoint: endpoint_stats,
    };
    Ok((bridge, metrics))
}

fn shard_thread(
    kind: BackendKind,
    core: usize,
    limits: Limits,
    listener: shard::Listeners,
    parts: ShardParts<rookery_mailbox::Mailbox<shard::ShardMail>, MonotonicClock>,
) -> anyhow::Result<()> {
    if let Err(err) = sys::pin_current_thread(core) {
        warn!(shard = parts.index, "not pinned to core {core}: {err}");
    }
    match kind {
        #[cfg(target_os = "linux")]
        BackendKind::Uring => shard::run(rookery_io::UringDriver::new(limits)?, listener, parts),
        _ => shard::run(PollDriver::new(limits)?, listener, parts),
    }
}

/// Raises RLIMIT_NOFILE to its hard limit and returns how many conns the process may hold.
fn conn_ceiling(config: &Config) -> anyhow::Result<u64> {
    let nofile = rookery_io::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    // Per shard: listener, ring or epoll fd, eventfd; plus the reserve for logs and admin.
    let overhead = config.args.fd_reserve + 4 * config.shards() as u64;
    let ceiling = nofile.soft.saturating_sub(overhead);
    info!(
        "conn ceiling: {ceiling} (RLIMIT_NOFILE soft {} -> {}, hard {}; {overhead} fds kept for listeners, rings and admin)",
        nofile.soft_before, nofile.soft, nofile.hard
    );
    if nofile.hard < 1_000_000 {
        info!("to hold more conns per process raise the hard limit (systemd LimitNOFILE=, limits.conf nofile, fs.nr_open) or run more processes");
    }
    let target = config.args.target_connections;
    if target > 0 {
        let input = rookery_tune::CheckInput::new(rookery_tune::Role::Server, target);
        let report = rookery_tune::check_host(&input);
        info!(
            "{} (details: rookery-tune check --role server --connections {target})",
            report.verdict_line()
        );
    }
    Ok(ceiling)
}

fn router_config(config: &Config) -> RouterConfig {
    let args = &config.args;
    RouterConfig {
        domain: config.domain.as_str().to_string(),
        auth: match args.auth {
            AuthKind::Token => AuthBackend::Token {
                secret: args.token_secret.clone().unwrap_or_default().into_bytes(),
            },
            AuthKind::Open => AuthBackend::Open,
            AuthKind::File => AuthBackend::File,
        },
        shards: config.shards() as u16,
        max_stanza_bytes: args.max_stanza_bytes,
        auth_timeout_ms: args.auth_timeout.saturating_mul(1000),
        idle_timeout_ms: args.idle_timeout.saturating_mul(1000),
        resume_timeout_ms: args.resume_timeout.saturating_mul(1000),
        groups_domain: match &args.groups_domain {
            Some(groups) => groups.to_ascii_lowercase(),
            None => format!("groups.{}", config.domain.as_str()),
        },
        group_max_members: args.group_max_members,
        roster_max: args.roster_max,
        presence_rate_per_s: args.presence_rate,
        presence_burst: args.presence_burst,
        group_presence_broadcast: args.group_presence_broadcast,
        max_output_bytes: args.max_output_bytes,
        sm_window_bytes: args.sm_window_bytes,
        sm_max_unacked_bytes: args.sm_max_unacked_bytes,
        mail_timeout_ms: RouterConfig::DEFAULT_MAIL_TIMEOUT_MS,
        dup_window_entries: args.dup_window_entries,
        dup_window_bytes: args.dup_window_bytes,
        max_resources: args.max_resources,
        max_unauth_per_address: args.max_unauth_per_address,
        auth_fail_per_address: args.auth_fail_per_address,
        auth_fail_per_account: args.auth_fail_per_account,
        auth_fail_delay_ms: args.auth_fail_delay_ms,
        auth_throttle_entries: args.auth_throttle_entries,
        allow_registration: args.allow_registration,
        max_rooms_per_user: args.max_rooms_per_user,
        max_rooms_per_shard: args.max_rooms_per_shard,
        tls: tls::policy(config),
        components: config.components.clone(),
        push_interval_ms: args.push_interval.saturating_mul(1000),
        push_include_body: args.push_include_body,
        upload: None,
        cluster: config
            .cluster
            .as_ref()
            .map(|(file, me)| cluster::router_cluster(file, *me)),
        archive: archive_config(args),
    }
}

/// The message archive's settings: on disk under the data dir, in memory (bounded) with
/// `--durability memory`, none with `--archive-days 0`.
fn archive_config(args: &config::Args) -> Option<rookery_store::archive::ArchiveConfig> {
    const DAY_MS: u64 = 86_400_000;
    (args.archive_days > 0).then(|| rookery_store::archive::ArchiveConfig {
        dir: (args.durability != config::DurabilityArg::Memory)
            .then(|| args.data_dir.join("archive")),
        retention_ms: u64::from(args.archive_days) * DAY_MS,
        segment_bytes: args.archive_segment_bytes.max(64 << 10),
        ..rookery_store::archive::ArchiveConfig::memory()
    })
}

/// Waits for signals on its own thread: SIGHUP re-reads the TLS certificate and key (new
/// conns get them; open sessions keep theirs), SIGINT/SIGTERM stop the server.
fn watch_signals(
    exit_tx: mpsc::Sender<Exit>,
    tls: Option<rookery_tls::TlsContext>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("rookery-signals".into())
        .spawn(move || loop {
            match sys::wait_for_signal() {
                Ok(sys::Signal::Hangup) => tls::reload(tls.as_ref()),
                Ok(sys::Signal::Stop(name)) => {
                    let _ = exit_tx.send(Exit::Signal(name));
                    return;
                }
                Err(err) => {
                    error!("waiting for signals failed: {err}; SIGINT/SIGTERM/SIGHUP are not seen");
                    return;
                }
            }
        })?;
    Ok(())
}

/// Waits for a signal or a shard failure, then stops every shard within a bounded time.
fn wait_for_exit(
    exit_rx: &mpsc::Receiver<Exit>,
    shared: &Shared,
    shards: usize,
) -> anyhow::Result<()> {
    let mut failure = None;
    let mut running = shards;
    match exit_rx
        .recv()
        .context("every shard and the signal watcher vanished")?
    {
        Exit::Signal(name) => info!("{name}: stopping"),
        Exit::Shard(index, result) => {
            running -= 1;
            failure = Some(match result {
                Ok(()) => anyhow::anyhow!("shard {index} stopped unexpectedly"),
                Err(err) => err.context(format!("shard {index} failed")),
            });
        }
    }
    shared.request_stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match exit_rx.recv_timeout(left) {
            Ok(Exit::Shard(index, Err(err))) => {
                running -= 1;
                warn!("shard {index} failed while stopping: {err:#}");
            }
            Ok(Exit::Shard(..)) => running -= 1,
            Ok(Exit::Signal(_)) => {}
            Err(_) => anyhow::bail!("{running} shard(s) did not stop within 10 s"),
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
