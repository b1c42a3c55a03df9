//! File reads on io_uring: one `Read` per `read_file`, continued on short reads, reported as
//! `FileRead`. Reads are independent of the file's write chain: the caller reads only bytes
//! whose write has completed (the store reads committed records), so no ordering is needed.
//!
//! Buffer lifetime: the kernel writes into `FileRead::buffer`'s heap block from the push of a
//! `Read` until its CQE is reaped. The block is sized once in `read_file` and never grown,
//! moved or freed while the read is in the table: it leaves only in [`Core::read_step_done`],
//! after the last CQE of the read. The file's fd stays open as long (`Files::unregister`
//! refuses while a read on it is in flight), and `UringDriver::drop` reaps every op before the
//! table is dropped (or leaks it, see `Core::leak_kernel_memory`).
//!
//! What it does not do: retry failed reads, or read past the end of the file (a read that
//! reaches it fails with EIO: the caller asked for bytes that are not there).

use std::os::fd::AsRawFd;

use io_uring::opcode;
use io_uring::types::Fd;

use super::state::Core;
use crate::files::{Completed, FileOp, NO_PROGRESS_ERRNO};
use crate::key::{OpKey, OpKind};
use crate::FileId;

/// Largest single `Read` SQE; a longer read goes out in several steps.
const MAX_READ_CHUNK_BYTES: usize = 1 << 30;

/// One `read_file` in flight.
pub(super) struct FileRead {
    file: FileId,
    token: u64,
    offset: u64,
    buffer: Vec<u8>,
    /// Bytes of `buffer` the kernel filled so far.
    done: usize,
}

/// Reads in flight, by slot (the slot is the `index` of their `OpKey`). A slot is reused only
/// after its read's last CQE was reaped, so an index names one read at a time.
#[derive(Default)]
pub(super) struct Reads {
    slots: Vec<Option<FileRead>>,
    free: Vec<u32>,
}

impl Reads {
    fn insert(&mut self, read: FileRead) -> u32 {
        if let Some(index) = self.free.pop() {
            self.slots[index as usize] = Some(read);
            return index;
        }
        // A shard has a handful of reads in flight; u32 slots cannot run out.
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Some(read));
        index
    }

    fn get_mut(&mut self, index: u32) -> Option<&mut FileRead> {
        self.slots.get_mut(index as usize)?.as_mut()
    }

    fn remove(&mut self, index: u32) -> Option<FileRead> {
        let read = self.slots.get_mut(index as usize)?.take()?;
        self.free.push(index);
        Some(read)
    }
}

impl Core {
    pub fn read_file(&mut self, file: FileId, offset: u64, len: usize, buffer: Vec<u8>) -> u64 {
        let (token, mut buffer) = match self.files.begin(file, FileOp::Read, buffer) {
            Ok((token, _, buffer)) => (token, buffer),
            Err(token) => return token, // EBADF is reported next turn
        };
        buffer.clear();
        buffer.resize(len, 0);
        let read = FileRead {
            file,
            token,
            offset,
            buffer,
            done: 0,
        };
        let index = self.reads.insert(read);
        self.push_read_step(index);
        token
    }

    /// Pushes the next `Read` of read `index`: the rest of its buffer. An empty read still
    /// goes out (0 bytes), so its completion is reported like any other.
    fn push_read_step(&mut self, index: u32) {
        let Some(read) = self.reads.get_mut(index) else {
            return;
        };
        let Some(slot) = self.files.get(read.file) else {
            return;
        };
        let fd = Fd(slot.file.as_raw_fd());
        let rest = &mut read.buffer[read.done..];
        // Fits in u32: at most MAX_READ_CHUNK_BYTES (2^30).
        let len = rest.len().min(MAX_READ_CHUNK_BYTES) as u32;
        let entry = opcode::Read::new(fd, rest.as_mut_ptr(), len)
            .offset(read.offset + read.done as u64)
            .build()
            .user_data(OpKey::new(OpKind::FileRead, index, 0).encode());
        // SAFETY: the Read writes at most `len` bytes into the read's buffer at `done`, a heap
        // block sized in `read_file` and left unmoved, ungrown and allocated until this op's
        // CQE is reaped (the read leaves the table only in `read_step_done`). The fd is the
        // registered file's, kept open while a read on it is in flight.
        unsafe { self.push(entry) }
    }

    /// Advances read `index` after the CQE (`res`) of its step: pushes the rest, or finishes
    /// the read (returned, for the caller to report).
    pub fn read_step_done(&mut self, index: u32, res: i32) -> Option<Completed> {
        let Some(read) = self.reads.get_mut(index) else {
            tracing::error!(index, "read completion without a read in flight");
            debug_assert!(false, "read completion without a read in flight {index}");
            return None;
        };
        let result = if res < 0 {
            Some(Err(-res))
        } else {
            let rest = read.buffer.len() - read.done;
            // Non-negative here; never more than asked, but clamp so `done` cannot overrun.
            let n = (res as usize).min(rest);
            read.done += n;
            if n == 0 && rest > 0 {
                Some(Err(NO_PROGRESS_ERRNO)) // end of file before `len` bytes
            } else if read.done < read.buffer.len() {
                None
            } else {
                Some(Ok(()))
            }
        };
        let Some(result) = result else {
            self.push_read_step(index);
            return None;
        };
        let read = self.reads.remove(index)?;
        Some(Completed {
            file: read.file,
            token: read.token,
            op: FileOp::Read,
            result,
            buffer: read.buffer,
        })
    }
}
