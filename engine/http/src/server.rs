//! Starting and stopping the server: its own tokio runtime, the accept loop, one task per conn.
//!
//! What it does: [`HttpServer::start`] checks the configuration (secret, public URL, TLS
//! files), opens the store (rebuilding its index, see store.rs), binds the listener and starts
//! a multi-threaded tokio runtime of `worker_threads` threads named `rookery-http` with the
//! accept loop and the cleanup task. Each accepted conn takes one of `max_conns` permits (none
//! left: closed at once, counted), does its TLS handshake under a deadline, and is served by
//! hyper's HTTP/1.1 (keep-alive, `header_read_timeout`, writes bounded by `WriteDeadline`,
//! upgrades enabled for the WebSocket seam). [`HttpHandle`] reads metrics and usage and stops
//! the server: no new conns, open ones finish their request (up to [`SHUTDOWN_GRACE`]), then
//! the runtime is dropped, which cancels what is left (an upload cut here loses only its temp
//! file).
//!
//! What it does not do: share a thread with the shards, or touch their state: the router
//! learns about stored and removed files only through the usage sink.
//!
//! Invariants: `conns_open` counts live conn tasks; a permit is held for a conn's lifetime, so
//! all `max_conns` permits back means no conn is open.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rookery_upload::{SignerError, SlotSigner, UsageEvent};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::cleanup::{self, CleanupReport};
use crate::config::{Clock, HttpConfig, HttpLimits, UsageSink};
use crate::deadline::WriteDeadline;
use crate::metrics::{Counters, HttpMetrics, Refusal};
use crate::routes;
use crate::store::{FileStore, OwnerUsage};
use crate::tls::{self, TlsLoadError};
use crate::websocket::Peer;

/// How long a stop waits for open requests before cancelling them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(1);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// What every request task shares.
pub(crate) struct State {
    pub signer: SlotSigner,
    pub store: Arc<FileStore>,
    pub counters: Arc<Counters>,
    pub clock: Clock,
    pub limits: HttpLimits,
    pub file_ttl_s: Option<u64>,
    pub websocket: Option<crate::WebSocketSink>,
    pub websocket_origins: crate::AllowedOrigins,
    usage_sink: Option<UsageSink>,
}

impl State {
    /// Hands a usage event to the sink, if any (never under a store lock).
    pub fn report(&self, event: UsageEvent) {
        if let Some(sink) = &self.usage_sink {
            sink(event);
        }
    }
}

/// Why the server did not start.
#[derive(Debug)]
pub enum StartError {
    Signer(SignerError),
    Store { path: PathBuf, source: io::Error },
    Tls(TlsLoadError),
    Bind { addr: SocketAddr, source: io::Error },
    Runtime(io::Error),
}

/// The HTTP server.
pub struct HttpServer;

impl HttpServer {
    /// Starts the server on its own threads; returns once it listens.
    pub fn start(config: HttpConfig) -> Result<HttpHandle, StartError> {
        let signer =
            SlotSigner::new(&config.secret, &config.public_url).map_err(StartError::Signer)?;
        if signer.public_url().starts_with("http://") {
            warn!(
                "--http-public-url {} is not HTTPS: XEP-0363 requires TLS and some clients \
                 refuse plain HTTP links",
                signer.public_url()
            );
        } else if config.tls.is_none() {
            info!(
                "HTTP server without TLS behind {}: a proxy must end TLS",
                signer.public_url()
            );
        }
        let store = open_store(&config.data_dir)?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose();
        let tls = tls.map_err(StartError::Tls)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .max_blocking_threads(config.blocking_threads.max(1))
            .thread_name("rookery-http")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let (listener, local_addr) = bind(config.listen, &runtime)?;
        let state = Arc::new(State {
            signer,
            store: Arc::new(store),
            counters: Arc::new(Counters::default()),
            clock: config.clock.clone(),
            limits: config.limits,
            file_ttl_s: config.file_ttl_s,
            usage_sink: config.usage_sink.clone(),
            websocket: config.websocket.clone(),
            websocket_origins: config.websocket_origins.clone(),
        });
        let permits = Arc::new(Semaphore::new(config.limits.max_conns));
        let (stop, stopped) = watch::channel(false);
        let accept = AcceptLoop {
            listener,
            state: Arc::clone(&state),
            tls,
            permits: Arc::clone(&permits),
        };
        runtime.spawn(accept.run(stopped.clone()));
        let interval = Duration::from_secs(config.cleanup_interval_s.max(1));
        runtime.spawn(cleanup::periodic(Arc::clone(&state), interval, stopped));
        info!(
            "HTTP server listening on {local_addr}, links as {}",
            state.signer.public_url()
        );
        Ok(HttpHandle {
            local_addr,
            state,
            permits,
            max_conns: config.limits.max_conns,
            runtime: Some(runtime),
            stop,
        })
    }
}

fn open_store(data_dir: &Path) -> Result<FileStore, StartError> {
    let root = data_dir.join("upload");
    let (store, scan) = match FileStore::open(&root) {
        Ok(opened) => opened,
        Err(source) => return Err(StartError::Store { path: root, source }),
    };
    info!(
        "uploads: {} files ({} bytes) under {}; removed at start: {} temp, {} orphan",
        scan.files,
        scan.bytes,
        root.display(),
        scan.temps_removed,
        scan.orphans_removed
    );
    Ok(store)
}

/// Binds here, so a busy port fails `start` rather than a task.
fn bind(addr: SocketAddr, runtime: &Runtime) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let _entered = runtime.enter();
    let listener = TcpListener::from_std(listener).map_err(bind_error)?;
    Ok((listener, local_addr))
}

/// Reads the server's metrics from any thread (see [`HttpHandle::metrics_reader`]).
#[derive(Clone)]
pub struct MetricsReader {
    state: Arc<State>,
}

impl MetricsReader {
    /// The server's numbers now.
    pub fn snapshot(&self) -> HttpMetrics {
        let (files, bytes) = self.state.store.totals();
        self.state.counters.snapshot(files, bytes)
    }
}

impl fmt::Debug for MetricsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsReader").finish_non_exhaustive()
    }
}

/// A running server. Dropping it stops the server (as [`HttpHandle::shutdown`]); stop or drop
/// it from outside any tokio runtime (the stop blocks while requests finish).
pub struct HttpHandle {
    local_addr: SocketAddr,
    state: Arc<State>,
    permits: Arc<Semaphore>,
    max_conns: usize,
    runtime: Option<Runtime>,
    stop: watch::Sender<bool>,
}

impl HttpHandle {
    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's numbers now.
    pub fn metrics(&self) -> HttpMetrics {
        self.metrics_reader().snapshot()
    }

    /// A reader of the server's numbers for another thread (a metrics endpoint): it can be
    /// cloned and outlive the handle (then it reads the last numbers).
    pub fn metrics_reader(&self) -> MetricsReader {
        MetricsReader {
            state: Arc::clone(&self.state),
        }
    }

    /// Stored files and bytes per owner, e.g. to seed the router's ledger at start.
    pub fn usage_by_owner(&self) -> Vec<OwnerUsage> {
        self.state.store.usage_by_owner()
    }

    /// One cleanup pass now, on the calling thread (it blocks on unlinks).
    pub fn run_cleanup(&self) -> CleanupReport {
        cleanup::run(&self.state)
    }

    /// Stops accepting, lets open requests finish for up to [`SHUTDOWN_GRACE`], then cancels
    /// the rest and joins the threads. Call it from outside any tokio runtime.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // Every conn task watches this; send fails only if no task is left.
        let _ = self.stop.send(true);
        let all = u32::try_from(self.max_conns).unwrap_or(u32::MAX);
        let permits = Arc::clone(&self.permits);
        let drained = runtime
            .block_on(async { timeout(SHUTDOWN_GRACE, permits.acquire_many_owned(all)).await });
        if drained.is_err() {
            warn!("HTTP server stop: requests still open after {SHUTDOWN_GRACE:?} were cut");
        }
        runtime.shutdown_timeout(SHUTDOWN_GRACE);
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct AcceptLoop {
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    permits: Arc<Semaphore>,
}

impl AcceptLoop {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = ACCEPT_BACKOFF_FIRST;
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                // The conn was reset before we took it: about that conn only.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE, ENOBUFS...: retrying at once would spin a core.
                    warn!("HTTP accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            backoff = ACCEPT_BACKOFF_FIRST;
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                self.state.counters.refused(Refusal::TooManyConns);
                continue;
            };
            let conn = serve_conn(
                stream,
                Arc::clone(&self.state),
                self.tls.clone(),
                stop.clone(),
                permit,
            );
            tokio::spawn(conn);
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _gauge = ConnGauge::new(&state.counters);
    // Responses are written whole per chunk; Nagle would only delay the last segment.
    let _ = stream.set_nodelay(true);
    let Ok(peer) = stream.peer_addr() else {
        return; // reset before we looked
    };
    let Some(acceptor) = tls else {
        return serve_io(stream, peer, state, stop).await;
    };
    let handshake = Duration::from_millis(state.limits.tls_handshake_timeout_ms);
    match timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_io(stream, peer, state, stop).await,
        Ok(Err(e)) => {
            debug!("HTTP TLS handshake failed: {e}");
            state.counters.refused(Refusal::TlsHandshake);
        }
        Err(_) => state.counters.refused(Refusal::TlsHandshake),
    }
}

async fn serve_io<I>(io: I, peer: SocketAddr, state: Arc<State>, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stall = Duration::from_millis(state.limits.write_stall_timeout_ms);
    let io = TokioIo::new(WriteDeadline::new(io, stall));
    let header_read_timeout = state.limits.header_read_timeout();
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(routes::handle(state, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!("HTTP conn ended: {e}");
    }
}

/// Counts a conn open for as long as it lives.
struct ConnGauge(Arc<Counters>);

impl ConnGauge {
    fn new(counters: &Arc<Counters>) -> ConnGauge {
        Counters::add(&counters.conns_open, 1);
        ConnGauge(Arc::clone(counters))
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        Counters::sub(&self.0.conns_open, 1);
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Signer(e) => write!(f, "HTTP server: {e}"),
            StartError::Store { path, source } => write!(
                f,
                "HTTP server: opening the upload store {}: {source} (check --data-dir and its \
                 permissions)",
                path.display()
            ),
            StartError::Tls(e) => write!(f, "HTTP server TLS: {e}"),
            StartError::Bind { addr, source } => write!(
                f,
                "HTTP server: binding {addr}: {source} (is another process on that port? \
                 change --http-listen)"
            ),
            StartError::Runtime(e) => write!(f, "HTTP server: starting its threads: {e}"),
        }
    }
}

impl std::error::Error for StartError {}
