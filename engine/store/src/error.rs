//! Error types: `StoreError` for operations on an open store, `OpenError` for opening one.
//!
//! What it does not do: log. Every message names the likely cause and the fix, so the caller
//! can log it as is.
//!
//! Invariants: the data-path variants (`QuotaExceeded`, `OwnerBytesExceeded`, `StoreFull`,
//! `Unavailable`, `TooLarge`, `Corrupt`) carry no allocation.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An operation on an open store failed.
#[derive(Debug)]
pub enum StoreError {
    /// The owner's offline queue holds `limit` messages already; nothing was appended.
    QuotaExceeded {
        /// The configured `offline_max`.
        limit: usize,
    },
    /// The owner's offline queue holds `limit` bytes of records already; nothing was appended.
    OwnerBytesExceeded {
        /// The configured `offline_max_bytes`.
        limit: u64,
    },
    /// The shard stores `limit` bytes of queued messages already; nothing was appended.
    StoreFull {
        /// The configured `max_stored_bytes`.
        limit: u64,
    },
    /// A log write failed and has not been retried successfully yet; nothing was appended.
    Unavailable,
    /// A record read back from the log is not the message it should be (CRC, length or id):
    /// the device returned other bytes than were written.
    Corrupt {
        /// The message whose record was read.
        id: u64,
        /// Log offset of the record.
        offset: u64,
    },
    /// The record would exceed the format's limits (a JID over 65535 bytes, or 16 MiB).
    TooLarge {
        /// Bytes of the stanza that was refused.
        stanza_len: usize,
    },
    /// Writing a commit batch failed: the store is unavailable until a retry succeeds.
    Write {
        /// File offset of the batch.
        offset: u64,
        /// Bytes of the batch.
        len: usize,
        /// The OS error.
        source: io::Error,
    },
    /// `compact` was called with records pending or in flight.
    NotIdle,
    /// `stanza_now` of a message whose record is not committed yet.
    Uncommitted {
        /// The message.
        id: u64,
    },
    /// Compaction failed at step `op`. Before the rename the old log is untouched and still
    /// in use; only "sync directory" fails after it, with the new log in use. Either file
    /// holds the same messages, so a lost rename loses nothing.
    Compact {
        /// What was being done.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::QuotaExceeded { limit } => write!(
                f,
                "offline queue full ({limit} messages): the recipient must log in and drain \
                 it, or raise --offline-max"
            ),
            StoreError::OwnerBytesExceeded { limit } => write!(
                f,
                "offline queue full ({limit} bytes): the recipient must log in and drain it, \
                 or raise --offline-max-bytes"
            ),
            StoreError::StoreFull { limit } => write!(
                f,
                "shard store full ({limit} bytes of queued messages): recipients must log in \
                 and drain their queues, or raise --store-max-bytes (check disk space first)"
            ),
            StoreError::Corrupt { id, offset } => write!(
                f,
                "message {id} read back from the log at offset {offset} does not match its \
                 record (CRC, length or id): device or file damage; the message stays queued"
            ),
            StoreError::Unavailable => f.write_str(
                "store unavailable after a log write error: free disk space or fix the device; \
                 the store retries on its own",
            ),
            StoreError::TooLarge { stanza_len } => write!(
                f,
                "record too large for the log ({stanza_len}-byte stanza, limit 16 MiB, JIDs \
                 65535 bytes): lower --max-stanza-bytes"
            ),
            StoreError::Write {
                offset,
                len,
                source,
            } => write!(
                f,
                "log write of {len} bytes at offset {offset} failed: {source} (disk full or \
                 device error?); new messages are refused until a retry succeeds"
            ),
            StoreError::Uncommitted { id } => write!(
                f,
                "message {id} is not committed yet: read it after the commit (a bug in the caller)"
            ),
            StoreError::NotIdle => f.write_str(
                "compaction needs every record committed: commit first (a bug in the caller)",
            ),
            StoreError::Compact { op, path, source } => write!(
                f,
                "compaction failed to {op} {}: {source} (disk full?); the log still holds \
                 every message",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Write { source, .. } | StoreError::Compact { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Opening a store failed; nothing was changed on disk.
#[derive(Debug)]
pub enum OpenError {
    /// An OS call failed at step `op`.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the log's advisory lock.
    Locked {
        /// The log.
        path: PathBuf,
    },
    /// The file does not start with the log magic: not ours, left alone.
    NotALog {
        /// The file.
        path: PathBuf,
    },
    /// The header names a version or flags this build does not read.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        version: u32,
        /// Flags found.
        flags: u32,
    },
    /// A record with a valid CRC but a kind this build does not know: a newer writer, so the
    /// log is left alone rather than truncated.
    UnknownRecordKind {
        /// The file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// Its kind byte.
        kind: u8,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { op, path, source } => write!(
                f,
                "cannot {op} {}: {source} (check --data-dir exists, is writable and has space)",
                path.display()
            ),
            OpenError::Locked { path } => write!(
                f,
                "{} is locked by another process: is a second rookery running on the same \
                 --data-dir? stop it or use another directory",
                path.display()
            ),
            OpenError::NotALog { path } => write!(
                f,
                "{} is not a rookery log (bad magic): move it away or point --data-dir elsewhere",
                path.display()
            ),
            OpenError::UnsupportedVersion {
                path,
                version,
                flags,
            } => write!(
                f,
                "{} has log version {version} flags {flags:#x}, this build reads version 1 \
                 flags 0: run the rookery that wrote it",
                path.display()
            ),
            OpenError::UnknownRecordKind { path, offset, kind } => write!(
                f,
                "{} has a record of unknown kind {kind} at offset {offset}: written by a newer \
                 rookery? run that version; the log was not modified",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
