//! Reads of stored messages from a shard's log, for the router's backlogs.
//!
//! The router asks with `Effects::read_log(tag, span)`; the shard turns that into a driver
//! `read_file` on its registered log (io_uring `Read`, poll `pread`) and, when `FileRead`
//! returns, hands the bytes back with `Router::on_log_read(tag, ..)`. This table maps the
//! driver's tokens to the router's tags and keeps a few spare buffers, so steady reading
//! allocates nothing.
//!
//! What it does not do: decide what to read (the router's `delivery` module does) or check
//! the bytes (the store's `read_back` does).
//!
//! Invariants: every read started here is in `in_flight` until its `FileRead`; compaction
//! waits until none is (a span names a place in the current file).

use std::collections::HashMap;

use rookery_io::{FileId, Ops};
use rookery_store::LogSpan;

/// Spare read buffers kept for reuse.
const SPARE_BUFFERS: usize = 64;

/// The shard's log reads in flight.
#[derive(Default)]
pub struct Reads {
    /// Driver token -> router tag.
    in_flight: HashMap<u64, u64>,
    spare: Vec<Vec<u8>>,
}

impl Reads {
    /// Starts reading `span` of `file` for router tag `tag`. Without a log file (a Memory
    /// store never asks) the read fails at once with EBADF, through the driver.
    pub fn start(&mut self, io: &mut impl Ops, file: Option<FileId>, tag: u64, span: LogSpan) {
        // An unknown FileId makes the driver report EBADF in the next turn.
        let file = file.unwrap_or(FileId(u32::MAX));
        let buffer = self.spare.pop().unwrap_or_default();
        let token = io.read_file(file, span.offset, span.len as usize, buffer);
        self.in_flight.insert(token, tag);
    }

    /// A `FileRead` completed: the router tag it answers, if it was ours.
    pub fn finish(&mut self, token: u64) -> Option<u64> {
        self.in_flight.remove(&token)
    }

    /// Keeps a returned buffer for the next read.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buffer);
        }
    }

    /// Whether any read is in flight.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }
}
