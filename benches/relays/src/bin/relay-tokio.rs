//! relay-tokio: the relay on tokio, written the way tokio is usually used.
//!
//! One task per conn reads and feeds `rookery_relays::conn`; one writer task per conn drains a
//! bounded mpsc channel of stamped stanzas (`recv_many`, one write per batch); a shared
//! `Arc<Mutex<Registry>>` maps JIDs to channel senders. Runtime: `current_thread` by default
//! (one thread, pinned with `--core`), or `--threads N` workers (worker i pinned to core+i).
//!
//! What it does not do: anything beyond the relay (see the crate docs). A relayed stanza costs
//! one allocation (the stamped copy) and one channel send: that is the tokio idiom measured.
//!
//! Invariant: a conn's channel has at most [`QUEUE_STANZAS`] stanzas; a relayed stanza that
//! finds it full is dropped and counted (the peers' outboxes drop likewise).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rookery_proto::{Jid, StanzaView};
use rookery_relays::cli::{self, RelayArgs, Start};
use rookery_relays::conn::{Conn, Flow, Router};
use rookery_relays::registry::{ConnId, Registry};
use rookery_relays::stats::ACCEPT_PAUSE;
use rookery_relays::stop::POLL_INTERVAL;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};

const NAME: &str = "relay-tokio";
/// Stanzas queued per conn before relayed ones are dropped.
const QUEUE_STANZAS: usize = 1024;
/// Stanzas the writer takes from its channel per write.
const BATCH_STANZAS: usize = 256;
const READ_BUF_BYTES: usize = 4096;
/// The accept queue asked for (glommio's and monoio's default; the kernel caps it at
/// net.core.somaxconn).
const LISTEN_BACKLOG: u32 = 1024;

#[derive(Parser)]
#[command(name = NAME, version, about = "Minimal XMPP relay on tokio (a yardstick for rookery)")]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
    /// Worker threads: 1 runs a current_thread runtime; more, a multi-thread one.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type Handle = mpsc::Sender<Vec<u8>>;

struct Env {
    registry: Mutex<Registry<Handle>>,
    start: Start,
}

impl Env {
    fn registry(&self) -> MutexGuard<'_, Registry<Handle>> {
        // A panic while holding the lock aborts the process (panic = "abort" in release);
        // in tests the map is still consistent, every method leaves it whole.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let start = cli::start(NAME, &cli.relay)?;
    let runtime = build_runtime(cli.threads, cli.relay.core)?;
    let env = Arc::new(Env {
        registry: Mutex::new(Registry::default()),
        start,
    });
    runtime.block_on(serve(cli.relay.listen, cli.relay.core, env.clone()))?;
    // Dropping the runtime cancels every conn task; the sockets close with them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    cli::finish(NAME, &env.start.stats);
    Ok(())
}

fn build_runtime(threads: usize, core: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        if let Some(core) = core {
            pin(core)?;
        }
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the tokio current_thread runtime");
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads).enable_all();
    if let Some(core) = core {
        builder.on_thread_start(move || {
            let i = next.fetch_add(1, Ordering::Relaxed) % threads;
            if let Err(err) = pin(core + i) {
                eprintln!("{NAME}: {err:#}");
            }
        });
    }
    builder
        .build()
        .context("building the tokio multi-thread runtime")
}

fn pin(core: usize) -> anyhow::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        anyhow::bail!("could not pin a thread to core {core} (sched_setaffinity refused; see nproc and taskset)")
    }
}

/// Accepts in a task of its own; returns when SIGINT or SIGTERM asks it to.
async fn serve(listen: SocketAddr, core: Option<usize>, env: Arc<Env>) -> anyhow::Result<()> {
    let listener = listen_on(listen)
        .with_context(|| format!("listening on {listen} (in use? see ss -ltnp)"))?;
    cli::ready(NAME, listener.local_addr().unwrap_or(listen), core);
    tokio::spawn(accept_loop(listener, env.clone()));
    while !env.start.stop.is_set() {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Ok(())
}

/// SO_REUSEADDR and SO_REUSEPORT, as monoio's and rookery's listeners set them (glommio sets
/// SO_REUSEPORT): the server closes first, so a previous run's conns sit in TIME_WAIT on this
/// port, and a bind without the flags those conns' listener had is refused.
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_loop(listener: TcpListener, env: Arc<Env>) {
    let mut next_id: ConnId = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_id += 1;
                env.start.stats.conn_accepted();
                tokio::spawn(serve_conn(stream, next_id, env.clone()));
            }
            Err(err) => {
                env.start.stats.accept_failed(NAME, &err);
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, id: ConnId, env: Arc<Env>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE_STANZAS);
    tokio::spawn(write_loop(writer, rx));
    let mut conn = Conn::new(env.start.domain.clone(), id);
    let mut router = TokioRouter {
        env: &env,
        id,
        me: &tx,
    };
    let mut buf = vec![0u8; READ_BUF_BYTES];
    let mut out = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let flow = conn.on_data(&buf[..n], &mut out, &mut router);
        if !out.is_empty() && tx.send(std::mem::take(&mut out)).await.is_err() {
            break;
        }
        if flow == Flow::Close {
            break;
        }
    }
    if let Some(jid) = conn.jid() {
        env.registry().unbind(jid, id);
    }
    // The writer ends once every sender (ours, the registry's) is gone and it drained.
}

async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(BATCH_STANZAS);
    let mut joined = Vec::new();
    while rx.recv_many(&mut batch, BATCH_STANZAS).await > 0 {
        let bytes = if let [one] = batch.as_slice() {
            one
        } else {
            joined.clear();
            batch.iter().for_each(|b| joined.extend_from_slice(b));
            &joined
        };
        if writer.write_all(bytes).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = writer.shutdown().await;
}

struct TokioRouter<'a> {
    env: &'a Env,
    id: ConnId,
    me: &'a Handle,
}

impl Router for TokioRouter<'_> {
    fn bind(&mut self, jid: &Jid) {
        self.env.registry().bind(jid, self.id, self.me.clone());
        self.env.start.stats.session_bound();
    }

    fn route(&mut self, to: &Jid, from: &Jid, stanza: &StanzaView<'_>) {
        let stats = &self.env.start.stats;
        let registry = self.env.registry();
        let Some(tx) = registry.find(to) else {
            return stats.dropped_unknown();
        };
        let mut bytes = Vec::with_capacity(stanza.bytes().len() + from.as_str().len() + 16);
        stanza.stamp(from.as_str(), None, &mut bytes);
        match tx.try_send(bytes) {
            Ok(()) => stats.relayed(),
            Err(TrySendError::Full(_)) => stats.dropped_full(),
            Err(TrySendError::Closed(_)) => stats.dropped_unknown(),
        }
    }

    fn unroutable(&mut self) {
        self.env.start.stats.dropped_unknown();
    }
}
