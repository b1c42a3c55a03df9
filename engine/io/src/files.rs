//! Registered files (the shard's durable log), the part both backends share: ids, tokens,
//! the "in flight" count that gates `unregister_file`, and completions waiting for the next
//! `turn`.
//!
//! - Ids are handed out in increasing order and never reused, so a `FileId` kept after
//!   `unregister_file` reaches no file (its writes fail with EBADF) rather than a newer one.
//!   A driver holds a handful of files (the log, a compaction target), so the table is a `Vec`
//!   scanned linearly.
//! - A write or read is *in flight* from `write_file` / `read_file` ([`Files::begin`]) until
//!   its `FileWritten` / `FileRead` is built for the handler ([`Files::finish`]). `unregister`
//!   refuses while any is, which on io_uring also means no SQE names the file's fd or a buffer
//!   of it.
//! - Completions made outside a CQE (every poll write, and writes to unknown files on both
//!   backends) wait in `pending` and are delivered at the start of the *next* turn, never
//!   inside `write_file`. Taking the list at the start of a turn means a handler that writes
//!   again from `FileWritten` cannot keep one turn busy forever.
//!
//! What it does not do: any I/O, or ordering within a file (io_uring's chain does that; poll
//! is synchronous).

use std::fs::File;
use std::io;
#[cfg(not(target_os = "linux"))]
use std::marker::PhantomData;

use std::os::unix::fs::FileExt;

use crate::{Event, FileId, FileSync};

/// The errno for a write that made no progress without the kernel naming an error (a 0-byte
/// result for a non-empty write): retrying could loop, so it is reported as an I/O error.
pub(crate) const NO_PROGRESS_ERRNO: i32 = libc::EIO;

/// Which file operation a completion is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileOp {
    Write,
    Read,
}

/// A finished `write_file` or `read_file`, before it became an `Event::FileWritten` or
/// `Event::FileRead`.
#[derive(Debug)]
pub(crate) struct Completed {
    pub file: FileId,
    pub token: u64,
    pub op: FileOp,
    pub result: Result<(), i32>,
    pub buffer: Vec<u8>,
}

/// One registered file with the backend's per-file state `S`.
pub(crate) struct FileSlot<S> {
    id: FileId,
    pub file: File,
    /// Writes accepted and not yet reported.
    in_flight: u32,
    /// The backend's per-file state: io_uring's write chain. Poll writes synchronously and
    /// keeps none (`S = ()`), so without io_uring the field does not exist.
    #[cfg(target_os = "linux")]
    pub state: S,
    #[cfg(not(target_os = "linux"))]
    state: PhantomData<S>,
}

/// What [`Files::begin`] made of a `write_file` or `read_file` on a registered file: the
/// operation's token, the file's slot (the backend writes `buffer` to `slot.file`, or reads
/// into it) and the buffer. An unknown file is `Err(token)` instead: its EBADF completion
/// (with the buffer) is already queued.
pub(crate) type Begun<'a, S> = Result<(u64, &'a mut FileSlot<S>, Vec<u8>), u64>;

pub(crate) struct Files<S> {
    slots: Vec<FileSlot<S>>,
    next_id: u32,
    next_token: u64,
    pending: Vec<Completed>,
    /// Spare list swapped with `pending` each turn, so neither is reallocated per turn.
    spare: Vec<Completed>,
}

impl<S: Default> Files<S> {
    pub fn new() -> Files<S> {
        Files {
            slots: Vec::new(),
            next_id: 0,
            next_token: 1,
            pending: Vec::new(),
            spare: Vec::new(),
        }
    }

    pub fn register(&mut self, file: File) -> io::Result<FileId> {
        let id = FileId(self.next_id);
        self.next_id = self.next_id.checked_add(1).ok_or_else(|| {
            io::Error::other("this driver registered 2^32 files; file ids are not reused")
        })?;
        self.slots.push(FileSlot {
            id,
            file,
            in_flight: 0,
            #[cfg(target_os = "linux")]
            state: S::default(),
            #[cfg(not(target_os = "linux"))]
            state: PhantomData,
        });
        Ok(id)
    }
}

impl<S> Files<S> {
    /// Removes the file if no write on it is in flight.
    pub fn unregister(&mut self, id: FileId) -> Option<File> {
        let pos = self.slots.iter().position(|s| s.id == id)?;
        if self.slots[pos].in_flight > 0 {
            return None;
        }
        Some(self.slots.swap_remove(pos).file)
    }

    /// The slot of a registered file (io_uring pushes its next step; `write_now` writes it).
    pub fn get(&self, id: FileId) -> Option<&FileSlot<S>> {
        self.slots.iter().find(|s| s.id == id)
    }

    pub fn get_mut(&mut self, id: FileId) -> Option<&mut FileSlot<S>> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    /// Starts a `write_file` (`op` Write) or `read_file` (Read): a new token, and the file's
    /// slot (the operation counts as in flight) or, for an unknown file, an EBADF completion
    /// queued for the next turn.
    pub fn begin(&mut self, id: FileId, op: FileOp, buffer: Vec<u8>) -> Begun<'_, S> {
        let token = self.next_token;
        self.next_token += 1;
        let Some(pos) = self.slots.iter().position(|s| s.id == id) else {
            self.pending.push(Completed {
                file: id,
                token,
                op,
                result: Err(libc::EBADF),
                buffer,
            });
            return Err(token);
        };
        let slot = &mut self.slots[pos];
        slot.in_flight += 1;
        Ok((token, slot, buffer))
    }

    /// Queues a completion for the start of the next turn.
    /// Writes `buffer` at `offset` now, on this thread (then syncs if asked), and defers its
    /// completion to the next turn: every write of the poll backend, io_uring's inline ones.
    /// `file` must have been begun (`begin`) with this `token`.
    pub fn write_now(
        &mut self,
        file: FileId,
        token: u64,
        offset: u64,
        buffer: Vec<u8>,
        sync: FileSync,
    ) {
        let result = match self.get(file) {
            Some(slot) => write_and_sync(&slot.file, offset, &buffer, sync),
            None => Err(libc::EBADF),
        };
        self.defer(Completed {
            file,
            token,
            op: FileOp::Write,
            result,
            buffer,
        });
    }

    pub fn defer(&mut self, done: Completed) {
        self.pending.push(done);
    }

    #[cfg(test)]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The completions due this turn; hand the (drained) list back with [`Files::put_back`].
    /// Completions deferred while these are delivered wait for the next turn.
    pub fn take_pending(&mut self) -> Vec<Completed> {
        let spare = std::mem::take(&mut self.spare);
        std::mem::replace(&mut self.pending, spare)
    }

    pub fn put_back(&mut self, mut list: Vec<Completed>) {
        list.clear();
        self.spare = list;
    }

    /// Ends an operation's life in flight and makes its event.
    pub fn finish(&mut self, done: Completed) -> Event<'static> {
        if let Some(slot) = self.get_mut(done.file) {
            debug_assert!(slot.in_flight > 0, "finish without begin");
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
        match done.op {
            FileOp::Write => Event::FileWritten {
                file: done.file,
                token: done.token,
                result: done.result,
                buffer: done.buffer,
            },
            FileOp::Read => Event::FileRead {
                file: done.file,
                token: done.token,
                result: done.result,
                buffer: done.buffer,
            },
        }
    }
}

/// Delivers the completions due this turn (see [`Files::take_pending`]) through `emit`, which
/// hands each event to the handler with the backend's ops; returns how many.
pub(crate) fn deliver_pending<C, S>(
    core: &mut C,
    files: fn(&mut C) -> &mut Files<S>,
    mut emit: impl FnMut(&mut C, Event<'static>),
) -> u32 {
    let mut due = files(core).take_pending();
    let n = due.len();
    for done in due.drain(..) {
        let event = files(core).finish(done);
        emit(core, event);
    }
    files(core).put_back(due);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The errno of a failed file call (EIO when the error carries none, e.g. `WriteZero`).
pub(crate) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(NO_PROGRESS_ERRNO)
}

/// All of `bytes` at `offset` (`write_all_at` continues short writes and retries EINTR; a
/// write that makes no progress is EIO), then fdatasync if asked.
pub(crate) fn write_and_sync(
    file: &File,
    offset: u64,
    bytes: &[u8],
    sync: FileSync,
) -> Result<(), i32> {
    file.write_all_at(bytes, offset).map_err(|e| errno_of(&e))?;
    if sync == FileSync::Data {
        file.sync_data().map_err(|e| errno_of(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(tag: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!(
            "rookery-io-files-unit-{tag}-{}",
            std::process::id()
        ));
        let file = File::create(&path).unwrap();
        (path, file)
    }

    #[test]
    fn ids_are_never_reused_and_unknown_ids_fail_with_ebadf() {
        let (path, file) = temp_file("ids");
        let mut files: Files<()> = Files::new();
        let a = files.register(file.try_clone().unwrap()).unwrap();
        assert!(files.unregister(a).is_some());
        let b = files.register(file).unwrap();
        assert_ne!(a, b);
        let Err(token) = files.begin(a, FileOp::Write, vec![1, 2]) else {
            panic!("the id was unregistered");
        };
        let due = files.take_pending();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].token, token);
        assert_eq!(due[0].result, Err(libc::EBADF));
        assert_eq!(due[0].buffer, vec![1, 2]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unregister_waits_for_every_write_to_be_reported() {
        let (path, file) = temp_file("inflight");
        let mut files: Files<()> = Files::new();
        let id = files.register(file).unwrap();
        let token_of = |b: Begun<'_, ()>| match b {
            Ok((token, _, _)) => token,
            Err(_) => panic!("the file is registered"),
        };
        let t1 = token_of(files.begin(id, FileOp::Write, vec![]));
        let t2 = token_of(files.begin(id, FileOp::Write, vec![]));
        assert!(t2 > t1, "tokens increase");
        assert!(files.unregister(id).is_none());
        for token in [t1, t2] {
            let done = Completed {
                file: id,
                token,
                op: FileOp::Write,
                result: Ok(()),
                buffer: Vec::new(),
            };
            assert!(files.unregister(id).is_none());
            files.defer(done);
            let mut due = files.take_pending();
            for d in due.drain(..) {
                let event = files.finish(d);
                assert!(matches!(event, Event::FileWritten { token: t, .. } if t == token));
            }
            files.put_back(due);
        }
        assert!(files.unregister(id).is_some());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn completions_deferred_during_delivery_wait_for_the_next_turn() {
        let mut files: Files<()> = Files::new();
        assert!(files.begin(FileId(7), FileOp::Write, Vec::new()).is_err());
        let due = files.take_pending();
        assert_eq!(due.len(), 1);
        // As a handler would, while `due` is delivered.
        assert!(files.begin(FileId(7), FileOp::Write, Vec::new()).is_err());
        files.put_back(due);
        assert!(files.has_pending());
        assert_eq!(files.take_pending().len(), 1);
        assert!(!files.has_pending());
    }
}
