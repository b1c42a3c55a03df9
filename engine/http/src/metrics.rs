//! Counters of the HTTP server, and the snapshot the engine's metrics endpoint renders.
//!
//! What it does: [`Counters`] are bumped by the request tasks; [`HttpMetrics`] is a copy taken
//! at one moment, with the store's file and byte totals, and
//! [`HttpMetrics::write_prometheus`] renders it in the Prometheus text format (names prefixed
//! `rookery_http_`), for the admin endpoint to append to the shards' metrics.
//!
//! Ordering: every counter is independent and only ever added to or read, so `Relaxed`
//! throughout; a snapshot may see one counter a request older than another.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a request was refused (or failed), one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No such route, file or download name.
    NotFound,
    MethodNotAllowed,
    /// The PUT URL's signature does not verify.
    BadSignature,
    /// The PUT URL's slot expired.
    Expired,
    /// A PUT without Content-Length.
    LengthRequired,
    /// Content-Length differs from the slot's size, or the body did.
    WrongLength,
    /// Content-Type differs from the slot's.
    WrongType,
    /// A second PUT to a slot (stored, or being uploaded).
    AlreadyUploaded,
    /// The client stopped sending, or took longer than the upload limit.
    UploadTimeout,
    /// The client's body ended early or broke.
    UploadAborted,
    /// A Range outside the file (416).
    RangeNotSatisfiable,
    /// Past `max_conns`: closed at accept.
    TooManyConns,
    /// Our disk failed us (500); logged with the path.
    StorageError,
    /// A conn whose TLS handshake failed or timed out.
    TlsHandshake,
    /// A WebSocket upgrade without the right headers (400/426).
    WebSocketHandshake,
    /// An upgraded WebSocket conn the engine could not take (its queue full): closed.
    WebSocketHandover,
    /// A WebSocket upgrade from a page whose `Origin` is not allowed (403).
    WebSocketOrigin,
}

impl Refusal {
    pub const ALL: [Refusal; 17] = [
        Refusal::NotFound,
        Refusal::MethodNotAllowed,
        Refusal::BadSignature,
        Refusal::Expired,
        Refusal::LengthRequired,
        Refusal::WrongLength,
        Refusal::WrongType,
        Refusal::AlreadyUploaded,
        Refusal::UploadTimeout,
        Refusal::UploadAborted,
        Refusal::RangeNotSatisfiable,
        Refusal::TooManyConns,
        Refusal::StorageError,
        Refusal::TlsHandshake,
        Refusal::WebSocketHandshake,
        Refusal::WebSocketHandover,
        Refusal::WebSocketOrigin,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired => "expired",
            Refusal::LengthRequired => "length_required",
            Refusal::WrongLength => "wrong_length",
            Refusal::WrongType => "wrong_type",
            Refusal::AlreadyUploaded => "already_uploaded",
            Refusal::UploadTimeout => "upload_timeout",
            Refusal::UploadAborted => "upload_aborted",
            Refusal::RangeNotSatisfiable => "range_not_satisfiable",
            Refusal::TooManyConns => "too_many_conns",
            Refusal::StorageError => "storage_error",
            Refusal::TlsHandshake => "tls_handshake",
            Refusal::WebSocketHandshake => "websocket_handshake",
            Refusal::WebSocketHandover => "websocket_handover",
            Refusal::WebSocketOrigin => "websocket_origin",
        }
    }

    fn index(self) -> usize {
        // ALL lists every variant once, in declaration order.
        self as usize
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub downloads: AtomicU64,
    pub download_bytes: AtomicU64,
    pub files_expired: AtomicU64,
    pub conns_open: AtomicU64,
    pub websocket_upgrades: AtomicU64,
    pub websocket_relays: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Relaxed);
    }

    pub fn refused(&self, reason: Refusal) {
        self.refusals[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self, files: u64, stored_bytes: u64) -> HttpMetrics {
        HttpMetrics {
            files,
            stored_bytes,
            uploads_total: self.uploads.load(Relaxed),
            upload_bytes_total: self.upload_bytes.load(Relaxed),
            downloads_total: self.downloads.load(Relaxed),
            download_bytes_total: self.download_bytes.load(Relaxed),
            files_expired_total: self.files_expired.load(Relaxed),
            conns_open: self.conns_open.load(Relaxed),
            websocket_upgrades_total: self.websocket_upgrades.load(Relaxed),
            websocket_relays: self.websocket_relays.load(Relaxed),
            refusals: Refusal::ALL.map(|r| (r, self.refusals[r.index()].load(Relaxed))),
        }
    }
}

/// The HTTP server's numbers at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpMetrics {
    /// Files stored now.
    pub files: u64,
    /// Their bytes.
    pub stored_bytes: u64,
    /// Uploads completed (201).
    pub uploads_total: u64,
    /// Body bytes received by PUTs, completed or not.
    pub upload_bytes_total: u64,
    /// GETs answered with a body (200 or 206).
    pub downloads_total: u64,
    /// Body bytes sent by GETs.
    pub download_bytes_total: u64,
    /// Files removed by retention.
    pub files_expired_total: u64,
    pub conns_open: u64,
    /// WebSocket upgrades answered 101.
    pub websocket_upgrades_total: u64,
    /// TLS WebSocket conns relayed to a shard now.
    pub websocket_relays: u64,
    pub refusals: [(Refusal, u64); Refusal::ALL.len()],
}

impl HttpMetrics {
    /// The count for one refusal reason.
    pub fn refusals_of(&self, reason: Refusal) -> u64 {
        self.refusals[reason.index()].1
    }

    /// Appends the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let plain: [(&str, &str, &str, u64); 10] = [
            (
                "rookery_http_files",
                "gauge",
                "Uploaded files stored",
                self.files,
            ),
            (
                "rookery_http_stored_bytes",
                "gauge",
                "Bytes of uploaded files stored",
                self.stored_bytes,
            ),
            (
                "rookery_http_uploads_total",
                "counter",
                "Uploads completed",
                self.uploads_total,
            ),
            (
                "rookery_http_upload_bytes_total",
                "counter",
                "Body bytes received by uploads",
                self.upload_bytes_total,
            ),
            (
                "rookery_http_downloads_total",
                "counter",
                "Downloads answered with a body",
                self.downloads_total,
            ),
            (
                "rookery_http_download_bytes_total",
                "counter",
                "Body bytes sent by downloads",
                self.download_bytes_total,
            ),
            (
                "rookery_http_files_expired_total",
                "counter",
                "Files removed by retention",
                self.files_expired_total,
            ),
            (
                "rookery_http_conns",
                "gauge",
                "HTTP connections open",
                self.conns_open,
            ),
            (
                "rookery_http_websocket_upgrades_total",
                "counter",
                "WebSocket upgrades answered 101 (RFC 7395), handed to the shards",
                self.websocket_upgrades_total,
            ),
            (
                "rookery_http_websocket_relays",
                "gauge",
                "WebSocket conns over HTTPS relayed to a shard now",
                self.websocket_relays,
            ),
        ];
        // Writing to a String cannot fail.
        for (name, kind, help, value) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let name = "rookery_http_refusals_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests refused or failed, by reason"
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, value) in self.refusals {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {value}", reason.label());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_indices_match() {
        for (i, reason) in Refusal::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let mut labels: Vec<_> = Refusal::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }

    #[test]
    fn renders_prometheus_text() {
        let counters = Counters::default();
        Counters::add(&counters.uploads, 2);
        counters.refused(Refusal::Expired);
        counters.refused(Refusal::Expired);
        let snapshot = counters.snapshot(3, 4096);
        assert_eq!(snapshot.refusals_of(Refusal::Expired), 2);
        let mut text = String::new();
        snapshot.write_prometheus(&mut text);
        assert!(text.contains("\nrookery_http_files 3\n"));
        assert!(text.contains("\nrookery_http_stored_bytes 4096\n"));
        assert!(text.contains("\nrookery_http_uploads_total 2\n"));
        assert!(text.contains("rookery_http_refusals_total{reason=\"expired\"} 2\n"));
        assert!(text.contains("rookery_http_refusals_total{reason=\"bad_signature\"} 0\n"));
    }
}
