//! rookery-http: the HTTP server beside the XMPP listeners, for XEP-0363 HTTP File Upload
//! and the RFC 7395 XMPP over WebSocket upgrade, on hyper 1.x, on its own tokio runtime and
//! threads, off the shards' hot path.
//!
//! What it does:
//! - `PUT /upload/{token}/{signed}/{name}`: verifies the slot's HMAC signature and expiry with
//!   the upload secret alone (rookery-upload), checks Content-Length and Content-Type against
//!   the slot, refuses a second PUT, streams the body to disk in bounded batches (never whole
//!   in memory), fsyncs, and commits it with a sidecar; `201 Created` (upload.rs).
//! - `GET`/`HEAD /download/{token}/{name}`: Content-Type, Content-Length, ETag,
//!   Last-Modified, single Range (206/416), streamed from disk in 128 KiB chunks
//!   (download.rs, body.rs).
//! - CORS on every response and OPTIONS preflights, for web clients (routes.rs).
//! - Retention (`file_ttl_s`) and orphan temp files, at start and periodically (cleanup.rs);
//!   the index and per-owner usage rebuilt from sidecars at start (store.rs).
//! - Metrics as a snapshot ([`HttpMetrics`], Prometheus text via `write_prometheus`) and
//!   [`UsageEvent`](rookery_upload::UsageEvent)s for the router's quota ledger.
//! - Optional TLS from the XMPP listener's PEM files (tokio-rustls, ring) (tls.rs).
//! - `/xmpp-websocket`: the RFC 7395 upgrade; the socket (or, over HTTPS, one end of a relay)
//!   goes to the engine's [`WebSocketSink`], whose shards speak WebSocket (websocket.rs);
//!   pages from an origin not in [`AllowedOrigins`] are refused when a list is set (origin.rs).
//!
//! What it does not do: issue slots (the router does, with rookery-upload, from the same
//! secret: [`load_or_create_secret`]), HTTP/2, authentication of downloads (XEP-0363: the URL
//! is the capability), free-space checks, quota enforcement at PUT time (the slot was issued
//! within quota; its size is signed).
//!
//! Starting it (the engine):
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rookery_http::{load_or_create_secret, HttpConfig, HttpServer, TlsFiles};
//! let data_dir = std::path::PathBuf::from("rookery-data");
//! let secret = load_or_create_secret(&data_dir)?;
//! let mut config = HttpConfig::new(
//!     "0.0.0.0:5443".parse()?, "https://upload.example.org:5443", data_dir, secret.clone());
//! config.tls = Some(TlsFiles { cert_chain_pem: "cert.pem".into(), key_pem: "key.pem".into() });
//! let handle = HttpServer::start(config)?;
//! // ... the router gets SlotSigner::new(&secret, "https://upload.example.org:5443")
//! handle.shutdown();
//! # Ok(()) }
//! ```
//!
//! Measured (`cargo run --release -p rookery-http --example throughput`, 100 MB over
//! loopback, client in the same process, 2 shared cores, results/20261207-032300-http-upload-
//! throughput): upload 301 MB/s (disk-bound: fsync included; `dd conv=fsync` gives 179-389
//! MB/s there), download 1,153 MB/s; over TLS 146 / 307 MB/s. RSS grows by under 5 MiB while
//! a 100 MB file goes up or down (tests/big_upload.rs). No speed is asserted in tests.

#![forbid(unsafe_code)]

mod body;
mod cleanup;
mod config;
mod deadline;
mod download;
mod metrics;
mod origin;
mod range;
mod routes;
mod secret;
mod server;
mod store;
mod tls;
mod upload;
mod websocket;

pub use body::CHUNK_BYTES;
pub use cleanup::CleanupReport;
pub use config::{Clock, HttpConfig, HttpLimits, TlsFiles, UsageSink};
pub use metrics::{HttpMetrics, Refusal};
pub use origin::{AllowedOrigins, MAX_ALLOWED_ORIGINS};
pub use secret::{load_or_create_secret, SecretError, SECRET_BYTES};
pub use server::{HttpHandle, HttpServer, MetricsReader, StartError, SHUTDOWN_GRACE};
pub use store::{OwnerUsage, ScanReport};
pub use tls::TlsLoadError;
pub use upload::BATCH_BYTES;
pub use websocket::{WebSocketConn, WebSocketSink, RELAY_BUFFER_BYTES, WEBSOCKET_PATH};
