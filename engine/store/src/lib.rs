//! rookery-store: one shard's durable store, Mnesia-style: in-memory tables backed by an
//! append-only log of CRC-framed records, replayed at start.
//!
//! A [`Store`] belongs to one shard thread. Its tables are the offline message queues (per
//! recipient bare JID, FIFO, bounded by `offline_max`) and keyed tables (`kv_*`: sorted string
//! keys to opaque values, numbered by the caller: rosters, groups, affiliations). Every mutation (`put`, `ack`, `kv_set`, `kv_delete`)
//! updates the tables at once and appends a record to a pending batch. Durability is
//! *sans-IO*: once per loop turn the shard calls [`Store::begin_commit`], writes the returned
//! [`CommitBatch`] at its offset (with [`SyncWriter`] on the poll backend, io_uring write +
//! fsync operations later), and hands it back with the result to [`Store::finish_commit`].
//! Only then are its records committed and may the stanzas they stored be acknowledged to
//! their senders. [`Durability`] picks what "committed" survives: nothing (`Memory`), a
//! kill -9 (`Log`), or a power loss (`Fsync`).
//!
//! A failed write (disk full, I/O error) makes the store *unavailable*: new `put`s are
//! refused with [`StoreError::Unavailable`] (nothing is dropped silently), the batch is kept
//! and rewritten at the same offset when [`Store::retry_due`] says so, and a success makes the
//! store available again. At open, replay stops at the first torn or corrupt record, truncates
//! the file there and says so in the [`ReplayReport`]. [`Store::compact`] rewrites the log
//! with the live messages when dead records dominate.
//!
//! Modules: `crc` (CRC32C), [`format`] (the byte layout, documented byte by byte), `tables`, `kv`,
//! `journal` (the commit protocol), `replay`, `files` (open, lock, repair), `compact`,
//! `writer`, `store` (the API), `config`, `error`.
//!
//! What it does not do: threads, clocks, logging, or the io_uring writer (the driver's job);
//! interpreting keyed values (the router encodes rosters and groups).

#![forbid(unsafe_code)]

pub mod archive;
mod compact;
mod config;
mod crc;
mod error;
mod files;
pub mod format;
mod journal;
mod kv;
mod replay;
mod store;
mod tables;
mod writer;

pub use compact::CompactReport;
pub use config::{Durability, StoreConfig};
pub use crc::{crc32c, update as crc32c_update};
pub use error::{OpenError, StoreError};
pub use journal::CommitBatch;
pub use replay::{ReplayReport, ReplayStop, StopReason};
pub use store::{Body, LogSpan, Store, StoreStats};
pub use tables::{MsgId, Queued};
pub use writer::{LogWriter, SyncWriter};
