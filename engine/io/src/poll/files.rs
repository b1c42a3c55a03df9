//! File I/O on the poll backend: `pwrite` (continued on short writes) and `fdatasync` done
//! synchronously inside `write_file`, `pread` (continued on short reads) inside `read_file`,
//! each reported as `FileWritten` / `FileRead` at the start of the next turn (same contract as
//! io_uring; upper layers never branch on the backend).
//!
//! The shard blocks for the duration of the write and the sync: the price of a backend without
//! asynchronous file I/O. Group commit keeps it to one write (and one sync) per loop turn; reads
//! are of recently written records, normally served from the page cache.
//!
//! What it does not do: retry. The first error ends the write with its errno.

use std::os::unix::fs::FileExt;

use super::state::PCore;
use crate::files::{errno_of, Completed, FileOp};
use crate::{FileId, FileSync};

impl PCore {
    pub fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, sync: FileSync) -> u64 {
        let (token, _, buffer) = match self.files.begin(file, FileOp::Write, bytes) {
            Ok(begun) => begun,
            Err(token) => return token, // EBADF is reported next turn
        };
        self.files.write_now(file, token, offset, buffer, sync);
        token
    }

    pub fn read_file(&mut self, file: FileId, offset: u64, len: usize, buffer: Vec<u8>) -> u64 {
        let (token, slot, mut buffer) = match self.files.begin(file, FileOp::Read, buffer) {
            Ok(begun) => begun,
            Err(token) => return token, // EBADF is reported next turn
        };
        buffer.clear();
        buffer.resize(len, 0);
        // `read_exact_at` continues short reads and retries EINTR; end of file is EIO.
        let result = slot
            .file
            .read_exact_at(&mut buffer, offset)
            .map_err(|e| errno_of(&e));
        self.files.defer(Completed {
            file,
            token,
            op: FileOp::Read,
            result,
            buffer,
        });
        token
    }
}
