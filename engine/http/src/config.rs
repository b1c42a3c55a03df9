//! What the HTTP server is started with: addresses, the upload secret, limits, retention.
//!
//! What it does: [`HttpConfig`] holds every setting, [`HttpConfig::new`] fills the defaults
//! listed on each constant; [`Clock`] is the wall clock (replaceable in tests, so expiry and
//! retention are tested without sleeping); [`UsageSink`] is where the server reports files
//! stored and removed, for the router's quota ledger.
//!
//! What it does not do: parse command-line flags (the server binary maps `--http-listen`,
//! `--http-public-url`, `--tls-cert`/`--tls-key` onto this), or mint slots.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rookery_upload::UsageEvent;

/// The PEM files of the TLS certificate chain and key (the same files as the XMPP listener's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_chain_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// Wall-clock Unix time in seconds. Slot expiry travels in URLs as Unix time, so this is the
/// system clock, not a monotonic one.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            // A clock before 1970 is a broken host; 0 makes every slot look fresh but every
            // retention too, so nothing is deleted by mistake.
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }))
    }

    /// A clock read through `now` (tests).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now_unix_s(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock(now={})", self.now_unix_s())
    }
}

/// Receives [`UsageEvent`]s, on the server's threads, outside any lock of the server. It must
/// not block for long (hand the event to a queue).
pub type UsageSink = Arc<dyn Fn(UsageEvent) + Send + Sync>;

/// Bounds on connections and requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; one more is closed at accept, counted `too_many_conns`.
    pub max_conns: usize,
    /// A request head (or the next one on a kept-alive conn) must arrive within this.
    pub header_read_timeout_ms: u64,
    /// TLS handshakes must finish within this.
    pub tls_handshake_timeout_ms: u64,
    /// An upload whose body sends nothing for this long is aborted.
    pub body_idle_timeout_ms: u64,
    /// An upload must finish within this from its first byte.
    pub max_upload_duration_s: u64,
    /// A write to a client that stays blocked this long (a reader that stopped reading)
    /// closes the conn.
    pub write_stall_timeout_ms: u64,
}

impl HttpLimits {
    pub const DEFAULT_MAX_CONNS: usize = 1024;
    pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_BODY_IDLE_TIMEOUT_MS: u64 = 30_000;
    pub const DEFAULT_MAX_UPLOAD_DURATION_S: u64 = 3_600;
    pub const DEFAULT_WRITE_STALL_TIMEOUT_MS: u64 = 30_000;

    pub(crate) fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub(crate) fn body_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.body_idle_timeout_ms)
    }
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_conns: HttpLimits::DEFAULT_MAX_CONNS,
            header_read_timeout_ms: HttpLimits::DEFAULT_HEADER_READ_TIMEOUT_MS,
            tls_handshake_timeout_ms: HttpLimits::DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
            body_idle_timeout_ms: HttpLimits::DEFAULT_BODY_IDLE_TIMEOUT_MS,
            max_upload_duration_s: HttpLimits::DEFAULT_MAX_UPLOAD_DURATION_S,
            write_stall_timeout_ms: HttpLimits::DEFAULT_WRITE_STALL_TIMEOUT_MS,
        }
    }
}

/// Everything [`crate::HttpServer::start`] needs.
#[derive(Clone)]
pub struct HttpConfig {
    /// `--http-listen`.
    pub listen: SocketAddr,
    /// `--http-public-url`: how clients reach this server; its path, if any, prefixes routes.
    pub public_url: String,
    /// Files live under `<data_dir>/upload/`.
    pub data_dir: PathBuf,
    /// The upload secret, the same the router signs slots with (`load_or_create_secret`).
    pub secret: Vec<u8>,
    /// Serve HTTPS with these files; `None` serves plain HTTP (tests, or behind a TLS proxy).
    pub tls: Option<TlsFiles>,
    /// Files are removed this long after their upload; `None` keeps them.
    pub file_ttl_s: Option<u64>,
    /// How often retention and orphan temp files are checked.
    pub cleanup_interval_s: u64,
    /// Threads of the server's own tokio runtime (never the shards' threads).
    pub worker_threads: usize,
    /// Threads for disk reads, writes and fsyncs (tokio's blocking pool); more disk work
    /// waits in its queue.
    pub blocking_threads: usize,
    pub limits: HttpLimits,
    pub clock: Clock,
    pub usage_sink: Option<UsageSink>,
    /// Where upgraded `/xmpp-websocket` conns go (the shards); `None` answers 501.
    pub websocket: Option<crate::WebSocketSink>,
    /// Pages allowed to open `/xmpp-websocket` from a browser (`--ws-allowed-origin`).
    pub websocket_origins: crate::AllowedOrigins,
}

impl HttpConfig {
    /// 30 days: long enough for a recipient back from a holiday, short enough to bound disk.
    pub const DEFAULT_FILE_TTL_S: u64 = 30 * 24 * 3_600;
    pub const DEFAULT_CLEANUP_INTERVAL_S: u64 = 60;
    /// Two: one can serve while the other waits on the disk; uploads are off the hot path.
    pub const DEFAULT_WORKER_THREADS: usize = 2;
    /// Sixteen disk operations in flight at once: enough to keep a disk's queue busy, few
    /// enough not to swamp 2 cores (tokio's own default is 512).
    pub const DEFAULT_BLOCKING_THREADS: usize = 16;

    /// A configuration with the defaults above, plain HTTP, the system clock, no sink.
    pub fn new(listen: SocketAddr, public_url: &str, data_dir: PathBuf, secret: Vec<u8>) -> Self {
        HttpConfig {
            listen,
            public_url: public_url.to_owned(),
            data_dir,
            secret,
            tls: None,
            file_ttl_s: Some(HttpConfig::DEFAULT_FILE_TTL_S),
            cleanup_interval_s: HttpConfig::DEFAULT_CLEANUP_INTERVAL_S,
            worker_threads: HttpConfig::DEFAULT_WORKER_THREADS,
            blocking_threads: HttpConfig::DEFAULT_BLOCKING_THREADS,
            limits: HttpLimits::default(),
            clock: Clock::system(),
            usage_sink: None,
            websocket: None,
            websocket_origins: crate::AllowedOrigins::any(),
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("tls", &self.tls)
            .field("file_ttl_s", &self.file_ttl_s)
            .field("cleanup_interval_s", &self.cleanup_interval_s)
            .field("worker_threads", &self.worker_threads)
            .field("blocking_threads", &self.blocking_threads)
            .field("limits", &self.limits)
            .field("websocket_origins", &self.websocket_origins)
            .finish_non_exhaustive()
    }
}
