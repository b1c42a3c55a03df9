//! File writes on io_uring: the per-file chain `Write` (continued on short writes), then
//! `Fsync(DATASYNC)` when asked, then the completion.
//!
//! Ordering: at most one chain is in flight per file; later `write_file`s wait in the file's
//! queue and start when the previous one finished. The shard group-commits once per turn, so
//! a queue rarely holds more than one batch, and the chain needs no `IOSQE_IO_LINK` (a link
//! would also need a fresh SQE for each short-write continuation, which a link cannot add).
//!
//! Buffer lifetime: the kernel reads `FileWrite::buffer`'s heap block from the push of a
//! `Write` until its CQE is reaped. That block does not move when the `FileWrite` moves (only
//! the `Vec` header does), and nothing writes, grows or frees it while the write is `active`:
//! the buffer leaves the chain only in [`Core::file_step_done`], after the last CQE of its
//! chain. The file's fd stays open as long: `Files::unregister` refuses while a write on it is
//! in flight, and `UringDriver::drop` reaps every op before the table is dropped (or leaks it).
//!
//! With `Limits::inline_file_writes`, a write without a sync on an idle chain is a `pwrite`
//! on the calling thread instead, reported at the start of the next turn like the poll
//! backend's.
//!
//! What it does not do: retry. A failed step ends the write with its errno (the store
//! rewrites the whole batch later); only short writes are continued.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;

use io_uring::opcode;
use io_uring::types::{Fd, FsyncFlags};

use super::state::Core;
use crate::files::{Completed, FileOp, NO_PROGRESS_ERRNO};
use crate::key::{OpKey, OpKind};
use crate::{FileId, FileSync};

/// Largest single `Write` SQE; a bigger batch goes out in several steps (Linux caps one write
/// near 2 GiB anyway and reports a short write).
const MAX_WRITE_CHUNK_BYTES: usize = 1 << 30;

/// One `write_file` on its way through the chain.
pub(super) struct FileWrite {
    token: u64,
    offset: u64,
    buffer: Vec<u8>,
    /// Bytes of `buffer` the kernel reported written.
    written: usize,
    sync: FileSync,
    /// Every byte is written; the fdatasync is in flight.
    syncing: bool,
}

/// io_uring's per-file state: the chain in flight and the writes queued behind it.
#[derive(Default)]
pub(crate) struct Chain {
    active: Option<FileWrite>,
    queue: VecDeque<FileWrite>,
}

impl Core {
    pub fn write_file(&mut self, file: FileId, offset: u64, bytes: Vec<u8>, sync: FileSync) -> u64 {
        let (token, slot, buffer) = match self.files.begin(file, FileOp::Write, bytes) {
            Ok(begun) => begun,
            Err(token) => return token, // EBADF is reported next turn
        };
        let chain_idle = slot.state.active.is_none();
        if self.limits.inline_file_writes && sync == FileSync::None && chain_idle {
            // A page-cache write on this thread: no io-wq hop (see `Limits`). The chain is
            // idle, so it cannot overtake an earlier write to this file.
            self.files.write_now(file, token, offset, buffer, sync);
            return token;
        }
        let write = FileWrite {
            token,
            offset,
            buffer,
            written: 0,
            sync,
            syncing: false,
        };
        if !chain_idle {
            slot.state.queue.push_back(write);
            return token;
        }
        slot.state.active = Some(write);
        self.push_file_step(file);
        token
    }

    /// Pushes the next step of `file`'s active write: the rest of its bytes, or the fdatasync.
    /// An empty buffer still goes out as a 0-byte `Write`, so its completion keeps its place in
    /// the file's order.
    fn push_file_step(&mut self, file: FileId) {
        let Some(slot) = self.files.get(file) else {
            return;
        };
        let Some(w) = slot.state.active.as_ref() else {
            return;
        };
        let fd = Fd(slot.file.as_raw_fd());
        let entry = if w.syncing {
            opcode::Fsync::new(fd).flags(FsyncFlags::DATASYNC).build()
        } else {
            let rest = &w.buffer[w.written..];
            // Fits in u32: at most MAX_WRITE_CHUNK_BYTES (2^30).
            let len = rest.len().min(MAX_WRITE_CHUNK_BYTES) as u32;
            opcode::Write::new(fd, rest.as_ptr(), len)
                .offset(w.offset + w.written as u64)
                .build()
        };
        let entry = entry.user_data(OpKey::new(OpKind::File, file.0, 0).encode());
        // SAFETY: the Write reads `len` bytes of the active write's buffer at `written`, a heap
        // block that stays unmoved, unwritten and allocated until this op's CQE is reaped (see
        // the module doc: the buffer leaves the chain only in `file_step_done`). The fd is the
        // registered file's, kept open while a write on it is in flight. Fsync names no memory.
        unsafe { self.push(entry) }
    }

    /// Advances `file`'s chain after the CQE (`res`) of its step: pushes the next step, or
    /// finishes the write (returned, for the caller to report) and starts the next queued one.
    pub fn file_step_done(&mut self, file: FileId, res: i32) -> Option<Completed> {
        let Some(slot) = self.files.get_mut(file) else {
            tracing::error!(?file, "file completion for a file that is not registered");
            debug_assert!(false, "file completion for an unregistered file {file:?}");
            return None;
        };
        let Some(w) = slot.state.active.as_mut() else {
            tracing::error!(?file, "file completion without a write in flight");
            debug_assert!(false, "file completion without a write in flight {file:?}");
            return None;
        };
        let Some(result) = step_outcome(w, res) else {
            self.push_file_step(file);
            return None;
        };
        let done = slot.state.active.take()?;
        slot.state.active = slot.state.queue.pop_front();
        if slot.state.active.is_some() {
            self.push_file_step(file);
        }
        Some(Completed {
            file,
            token: done.token,
            op: FileOp::Write,
            result,
            buffer: done.buffer,
        })
    }
}

/// What one CQE result means for the active write: `None` = more to do (`w` updated for the
/// next step), `Some(result)` = the write is over.
fn step_outcome(w: &mut FileWrite, res: i32) -> Option<Result<(), i32>> {
    if res < 0 {
        return Some(Err(-res));
    }
    if w.syncing {
        return Some(Ok(()));
    }
    let rest = w.buffer.len() - w.written;
    // Non-negative here; never more than asked, but clamp so `written` cannot overrun.
    let n = (res as usize).min(rest);
    if n == 0 && rest > 0 {
        return Some(Err(NO_PROGRESS_ERRNO));
    }
    w.written += n;
    if w.written < w.buffer.len() {
        return None;
    }
    if w.sync == FileSync::Data {
        w.syncing = true;
        return None;
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(len: usize, sync: FileSync) -> FileWrite {
        FileWrite {
            token: 1,
            offset: 0,
            buffer: vec![0; len],
            written: 0,
            sync,
            syncing: false,
        }
    }

    #[test]
    fn short_writes_continue_then_sync_then_finish() {
        let mut w = write(10, FileSync::Data);
        assert_eq!(step_outcome(&mut w, 4), None);
        assert_eq!((w.written, w.syncing), (4, false));
        assert_eq!(step_outcome(&mut w, 6), None);
        assert!(w.syncing);
        assert_eq!(step_outcome(&mut w, 0), Some(Ok(())));
    }

    #[test]
    fn errors_end_the_chain_with_the_first_errno() {
        let mut w = write(10, FileSync::Data);
        assert_eq!(step_outcome(&mut w, 4), None);
        assert_eq!(step_outcome(&mut w, -libc::ENOSPC), Some(Err(libc::ENOSPC)));
        let mut w = write(10, FileSync::Data);
        assert_eq!(step_outcome(&mut w, 10), None);
        assert_eq!(step_outcome(&mut w, -libc::EIO), Some(Err(libc::EIO)));
    }

    #[test]
    fn no_progress_is_an_error_but_an_empty_write_is_not() {
        let mut w = write(10, FileSync::None);
        assert_eq!(step_outcome(&mut w, 0), Some(Err(NO_PROGRESS_ERRNO)));
        let mut w = write(0, FileSync::None);
        assert_eq!(step_outcome(&mut w, 0), Some(Ok(())));
        let mut w = write(0, FileSync::Data);
        assert_eq!(step_outcome(&mut w, 0), None);
        assert!(w.syncing);
    }
}
