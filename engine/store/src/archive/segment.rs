//! One archive segment: an append-only file of records (`<first id>.seg`) and, once sealed,
//! its index file (`<first id>.idx`, entries sorted by owner then id); or the same two byte
//! strings in memory for an archive without a directory.
//!
//! What it does not do: decide when to roll over or drop (see `Archive`), or filter beyond
//! the owner (see `query`).
//!
//! Invariants: the active segment keeps its entries in memory (bounded by the segment's byte
//! cap); a sealed one keeps only its `Span`: its entries are read from the index on demand,
//! one owner's run found by binary search, so memory does not grow with the archive.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{self, Entry, Span, ENTRY_BYTES, INDEX_HEAD, RECORD_HEAD};

/// Entries read at once while walking one owner's run in an index file.
const RUN_CHUNK: usize = 64;

/// Records held for one write (see `Segment::flush`): past this, an append writes them.
const WRITE_BEHIND_BYTES: usize = 64 * 1024;

/// Records held while their writes fail: past this, appends are refused.
const MAX_UNWRITTEN_BYTES: usize = 1 << 20;

#[derive(Debug)]
enum Backing {
    /// `seg` is open for appending while active; sealed segments reopen on demand.
    File {
        seg_path: PathBuf,
        idx_path: PathBuf,
        seg: Option<File>,
        /// Records appended and not written yet: they follow the file's end, so the file
        /// holds the segment's first `bytes - unwritten.len()` bytes.
        unwritten: Vec<u8>,
    },
    Memory {
        data: Vec<u8>,
        index: Vec<u8>,
    },
}

#[derive(Debug)]
pub(super) struct Segment {
    pub span: Span,
    /// Bytes of records in the segment.
    pub bytes: u64,
    /// The active segment's entries, in append order; None once sealed.
    live: Option<Vec<Entry>>,
    backing: Backing,
}

impl Drop for Segment {
    /// Held records are written when the archive closes (shutdown); a kill -9 loses them
    /// (at most one loop turn's, or `--commit-delay-ms`: see `Archive::flush`).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn paths(dir: &Path, name: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name:020}.seg")),
        dir.join(format!("{name:020}.idx")),
    )
}

impl Segment {
    /// A new, empty active segment named `name` (its first id) in `dir`, or in memory.
    pub fn create(dir: Option<&Path>, name: u64) -> io::Result<Segment> {
        let backing = match dir {
            None => Backing::Memory {
                data: Vec::new(),
                index: Vec::new(),
            },
            Some(dir) => {
                let (seg_path, idx_path) = paths(dir, name);
                let seg = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&seg_path)?;
                seg.set_len(0)?;
                Backing::File {
                    seg_path,
                    idx_path,
                    seg: Some(seg),
                    unwritten: Vec::new(),
                }
            }
        };
        Ok(Segment {
            span: Span::default(),
            bytes: 0,
            live: Some(Vec::new()),
            backing,
        })
    }

    /// A segment found in `dir` named `name`: sealed if its index is whole, else its records
    /// are scanned (a torn tail cut off) and it is active again.
    pub fn reopen(dir: &Path, name: u64) -> io::Result<Segment> {
        let (seg_path, idx_path) = paths(dir, name);
        if let Some(span) = read_head(&idx_path)? {
            let bytes = fs::metadata(&seg_path)?.len();
            return Ok(Segment {
                span,
                bytes,
                live: None,
                backing: Backing::File {
                    seg_path,
                    idx_path,
                    seg: None,
                    unwritten: Vec::new(),
                },
            });
        }
        // Appending: every write lands at the end, also after the torn tail is cut.
        let seg = OpenOptions::new().read(true).append(true).open(&seg_path)?;
        let data = fs::read(&seg_path)?;
        let (entries, span, whole) = scan(&data);
        if whole < data.len() {
            seg.set_len(whole as u64)?;
        }
        Ok(Segment {
            span,
            bytes: whole as u64,
            live: Some(entries),
            backing: Backing::File {
                seg_path,
                idx_path,
                seg: Some(seg),
                unwritten: Vec::new(),
            },
        })
    }

    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }

    /// Appends one encoded record. A file segment holds it with the others not written yet
    /// (readable at once) and writes them all when they pass `WRITE_BEHIND_BYTES` or at the
    /// next `flush`: one write for many messages instead of one each. Refused while held
    /// records pass `MAX_UNWRITTEN_BYTES` (their writes keep failing).
    pub fn append(&mut self, record: &[u8], mut entry: Entry) -> io::Result<()> {
        if self.live.is_none() {
            return Err(io::Error::other("append to a sealed archive segment"));
        }
        entry.offset = u32::try_from(self.bytes).map_err(io::Error::other)?;
        let write_now = match &mut self.backing {
            Backing::Memory { data, .. } => {
                data.extend_from_slice(record);
                false
            }
            Backing::File { seg: None, .. } => return Err(io::Error::other("segment closed")),
            Backing::File { unwritten, .. } => {
                if unwritten.len() + record.len() > MAX_UNWRITTEN_BYTES {
                    return Err(io::Error::other(
                        "archive writes are failing: 1 MiB of records waits to be written",
                    ));
                }
                unwritten.extend_from_slice(record);
                unwritten.len() >= WRITE_BEHIND_BYTES
            }
        };
        self.bytes += record.len() as u64;
        self.span.add(entry.id, entry.stamp_ms);
        if let Some(live) = &mut self.live {
            live.push(entry);
        }
        if write_now {
            // Held, not lost, when this fails: the next flush tries again.
            let _ = self.flush();
        }
        Ok(())
    }

    /// Writes the held records (one write). On failure the file is cut back to what it held
    /// before, the records stay held and the error is returned.
    pub fn flush(&mut self) -> io::Result<()> {
        let Backing::File {
            seg: Some(file),
            unwritten,
            ..
        } = &mut self.backing
        else {
            return Ok(());
        };
        if unwritten.is_empty() {
            return Ok(());
        }
        let written = self.bytes - unwritten.len() as u64;
        if let Err(error) = file.write_all(unwritten) {
            let _ = file.set_len(written);
            return Err(error);
        }
        unwritten.clear();
        Ok(())
    }

    /// Writes the held records, then the index (sorted by owner, then id), and forgets the
    /// entries.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.live.is_none() {
            return Ok(());
        }
        self.flush()?;
        let Some(mut entries) = self.live.take() else {
            return Ok(());
        };
        entries.sort_by_key(|e| (e.owner_hash, e.id));
        let mut bytes = Vec::with_capacity(INDEX_HEAD + entries.len() * ENTRY_BYTES);
        format::encode_index_head(&mut bytes, &self.span);
        for entry in &entries {
            format::encode_entry(&mut bytes, entry);
        }
        match &mut self.backing {
            Backing::Memory { index, .. } => *index = bytes,
            Backing::File {
                idx_path,
                seg: file,
                ..
            } => {
                if let Err(error) = write_index(idx_path, &bytes) {
                    self.live = Some(entries);
                    return Err(error);
                }
                *file = None;
            }
        }
        Ok(())
    }

    /// Appends to `out` the entries of the owner whose hash is `owner_hash`, in id order.
    pub fn owner_entries(&self, owner_hash: u64, out: &mut Vec<Entry>) -> io::Result<()> {
        if let Some(live) = &self.live {
            out.extend(live.iter().filter(|e| e.owner_hash == owner_hash));
            return Ok(());
        }
        let count = usize::try_from(self.span.count).map_err(io::Error::other)?;
        match &self.backing {
            Backing::Memory { index, .. } => {
                let reader = |at: u64, buf: &mut [u8]| {
                    let at = at as usize;
                    let src = index.get(at..at + buf.len()).ok_or_else(short_index)?;
                    buf.copy_from_slice(src);
                    Ok(())
                };
                owner_run(count, owner_hash, reader, out)
            }
            Backing::File { idx_path, .. } => {
                let file = File::open(idx_path)?;
                let reader = |at: u64, buf: &mut [u8]| file.read_exact_at(buf, at);
                owner_run(count, owner_hash, reader, out)
            }
        }
    }

    /// The records of `entries` (all of this segment), whole, in order.
    pub fn read(&self, entries: &[Entry], out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        let opened;
        let (file, unwritten) = match &self.backing {
            Backing::Memory { data, .. } => {
                for entry in entries {
                    let at = entry.offset as usize;
                    let record = data.get(at..at + entry.len as usize);
                    out.push(record.ok_or_else(short_index)?.to_vec());
                }
                return Ok(());
            }
            Backing::File {
                seg: Some(seg),
                unwritten,
                ..
            } => (seg, unwritten.as_slice()),
            Backing::File {
                seg_path,
                unwritten,
                ..
            } => {
                opened = File::open(seg_path)?;
                (&opened, unwritten.as_slice())
            }
        };
        let written = self.bytes - unwritten.len() as u64;
        for entry in entries {
            let at = u64::from(entry.offset);
            let len = entry.len as usize;
            if at >= written {
                // Held, not written yet.
                let at = (at - written) as usize;
                let record = unwritten.get(at..at + len).ok_or_else(short_index)?;
                out.push(record.to_vec());
                continue;
            }
            let mut record = vec![0; len];
            file.read_exact_at(&mut record, at)?;
            out.push(record);
        }
        Ok(())
    }

    /// Deletes the segment's files (a memory segment is dropped with it).
    pub fn remove(mut self) -> io::Result<()> {
        if let Backing::File {
            seg_path,
            idx_path,
            unwritten,
            ..
        } = &mut self.backing
        {
            // Nothing to write to a file about to go.
            unwritten.clear();
            match fs::remove_file(&*idx_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            fs::remove_file(&*seg_path)?;
        }
        Ok(())
    }
}

fn short_index() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "archive index shorter than its header says",
    )
}

/// The header of the index at `path`, or None when there is none or it is torn.
fn read_head(path: &Path) -> io::Result<Option<Span>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut head = [0; INDEX_HEAD];
    if file.read_exact_at(&mut head, 0).is_err() {
        return Ok(None);
    }
    let Some(span) = format::decode_index_head(&head) else {
        return Ok(None);
    };
    let want = INDEX_HEAD as u64 + span.count * ENTRY_BYTES as u64;
    Ok((file.metadata()?.len() == want).then_some(span))
}

/// Writes an index whole under a temporary name, then renames it into place.
fn write_index(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("idx.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    fs::rename(&tmp, path)
}

/// The entries of every whole record of `data`, their span, and the length of the whole
/// prefix (the rest is a torn or corrupt tail).
fn scan(data: &[u8]) -> (Vec<Entry>, Span, usize) {
    let (mut entries, mut span, mut at) = (Vec::new(), Span::default(), 0);
    while let Some(head) = data.get(at..at + RECORD_HEAD) {
        let head: &[u8; RECORD_HEAD] = head.try_into().unwrap_or(&[0; RECORD_HEAD]);
        let len = RECORD_HEAD + format::body_len(head);
        let Some(message) = data.get(at..at + len).and_then(format::decode_record) else {
            break;
        };
        let (Ok(offset), Ok(len32)) = (u32::try_from(at), u32::try_from(len)) else {
            break;
        };
        entries.push(format::entry_of(&message, offset, len32));
        span.add(message.id, message.stamp_ms);
        at += len;
    }
    (entries, span, at)
}

/// Binary search for the first entry of `owner_hash` among `count` sorted entries read
/// through `read_at`, then its whole run.
fn owner_run(
    count: usize,
    owner_hash: u64,
    read_at: impl Fn(u64, &mut [u8]) -> io::Result<()>,
    out: &mut Vec<Entry>,
) -> io::Result<()> {
    let at = |i: usize| (INDEX_HEAD + i * ENTRY_BYTES) as u64;
    let mut one = [0; ENTRY_BYTES];
    let (mut low, mut high) = (0, count);
    while low < high {
        let mid = (low + high) / 2;
        read_at(at(mid), &mut one)?;
        if format::decode_entry(&one).owner_hash < owner_hash {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let mut chunk = vec![0; RUN_CHUNK * ENTRY_BYTES];
    while low < count {
        let n = RUN_CHUNK.min(count - low);
        read_at(at(low), &mut chunk[..n * ENTRY_BYTES])?;
        for bytes in chunk[..n * ENTRY_BYTES].chunks_exact(ENTRY_BYTES) {
            let entry = format::decode_entry(bytes);
            if entry.owner_hash != owner_hash {
                return Ok(());
            }
            out.push(entry);
        }
        low += n;
    }
    Ok(())
}
