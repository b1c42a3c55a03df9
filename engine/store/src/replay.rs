//! Replay: read a log from the start, rebuild the tables, and find where the good part ends.
//!
//! What it does: checks the header, then reads records one by one (frame, length bound, CRC,
//! decode) and applies them to the tables exactly as the live mutations did. The first record
//! that fails a check ends replay: everything from there on is reported as dropped (a torn
//! tail from a crash, or damage in the middle, which loses the rest too; the report says
//! which). `ReplayReport` carries the counts and the reason.
//!
//! What it does not do: modify the file (the store truncates it to `valid_bytes` afterwards),
//! or guess past damage (records after a bad one are not searched for).
//!
//! Invariants: replay reads sequentially through a bounded buffer (no whole-file read); a
//! length beyond the end of the file is found before anything is allocated for it; a record
//! with a good CRC but an unknown kind is an error, not damage: a newer writer's log is never
//! truncated.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crc;
use crate::error::OpenError;
use crate::format::{self, DecodeError, FrameCheck, Record, FRAME_LEN, HEADER_LEN};
use crate::tables::{MsgId, Queued, Tables};

/// Read buffer of replay.
const READ_BUF_BYTES: usize = 1 << 20;

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// No usable log existed (missing, empty, or a torn header): a fresh one was started.
    pub created: bool,
    /// Records replayed.
    pub records: u64,
    /// Messages live after replay.
    pub messages: usize,
    /// Bytes kept: header plus the good records (0 when `created`: nothing was kept).
    pub valid_bytes: u64,
    /// Bytes dropped (truncated away) after the good part.
    pub bytes_dropped: u64,
    /// Good records that changed nothing (an Ack of an unknown id, a Put of an id already
    /// present); never written by this store, counted in case another writer did.
    pub ignored: u64,
    /// Why replay stopped before the end of the file, if it did.
    pub stop: Option<ReplayStop>,
    /// Where the bytes after the good part were kept (set by the store's repair step).
    pub kept_in: Option<PathBuf>,
}

impl ReplayReport {
    /// True if the whole file replayed.
    pub fn is_clean(&self) -> bool {
        self.stop.is_none()
    }
}

/// Where and why replay stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStop {
    /// Offset of the first byte not replayed (the start of the failing record).
    pub offset: u64,
    /// What was wrong there.
    pub reason: StopReason,
}

/// The check a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The file is shorter than the header (and a prefix of it): a crash during creation.
    TornHeader {
        /// Bytes present.
        have: u64,
    },
    /// Fewer than 8 bytes left for a record frame.
    TornFrame {
        /// Bytes present.
        have: u64,
    },
    /// The frame promises more bytes than the file holds.
    TornRecord {
        /// Promised body length.
        len: u32,
        /// Body bytes present.
        have: u64,
    },
    /// Length 0 (kind 0 is never used, so this is typically a zero-filled tail) or above the
    /// format's limit.
    BadLength {
        /// The length read.
        len: u32,
    },
    /// The body does not match its CRC.
    BadCrc {
        /// CRC in the frame.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The CRC matched but the payload does not decode.
    Malformed {
        /// The record's kind.
        kind: u8,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::TornHeader { have } => write!(f, "torn header ({have} of 16 bytes)"),
            StopReason::TornFrame { have } => write!(f, "torn record frame ({have} of 8 bytes)"),
            StopReason::TornRecord { len, have } => {
                write!(f, "torn record ({have} of {len} body bytes)")
            }
            StopReason::BadLength { len } => write!(f, "bad record length {len}"),
            StopReason::BadCrc { stored, computed } => {
                write!(
                    f,
                    "bad CRC (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            StopReason::Malformed { kind } => write!(f, "malformed record of kind {kind}"),
        }
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} records ({} live messages, {} bytes{})",
            self.records,
            self.messages,
            self.valid_bytes,
            if self.created { ", new log" } else { "" }
        )?;
        if let Some(stop) = &self.stop {
            write!(
                f,
                "; STOPPED at offset {}: {}; the {} bytes from there on are not replayed (a \
                 crash mid-write if at the tail, disk damage otherwise)",
                stop.offset, stop.reason, self.bytes_dropped
            )?;
            if let Some(kept) = &self.kept_in {
                write!(
                    f,
                    " and were moved to {} (the log was cut there)",
                    kept.display()
                )?;
            }
        }
        if self.ignored > 0 {
            write!(f, "; {} records ignored", self.ignored)?;
        }
        Ok(())
    }
}

/// Replay's result, for the store.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) report: ReplayReport,
    /// The lowest id never used.
    pub(crate) next_id: u64,
}

/// Replays `file` (positioned at 0) into `tables`, which must be empty.
pub(crate) fn replay(file: &File, path: &Path, tables: &mut Tables) -> Result<Replayed, OpenError> {
    let io_err = |source| OpenError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::with_capacity(READ_BUF_BYTES, file);
    let mut replay = Replay {
        report: ReplayReport::default(),
        next_id: 1,
        owners: HashMap::new(),
    };
    let mut header = [0u8; HEADER_LEN];
    let have = read_full(&mut reader, &mut header).map_err(io_err)?;
    if !check_header(&header[..have], path)? {
        replay.report.created = true;
        if have > 0 {
            replay.stop(0, StopReason::TornHeader { have: have as u64 });
        }
        replay.report.bytes_dropped = file_len;
        return Ok(replay.finish(tables));
    }
    replay.report.valid_bytes = HEADER_LEN as u64;
    replay
        .records(&mut reader, file_len, tables)
        .map_err(|e| e.into_open_error(path))?;
    replay.report.bytes_dropped = file_len.saturating_sub(replay.report.valid_bytes);
    Ok(replay.finish(tables))
}

/// True for a complete, supported header; false for an empty file or a torn prefix of one.
fn check_header(bytes: &[u8], path: &Path) -> Result<bool, OpenError> {
    let magic_len = bytes.len().min(format::MAGIC.len());
    if bytes[..magic_len] != format::MAGIC[..magic_len] {
        return Err(OpenError::NotALog {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Ok(false);
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let flags = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if version != format::VERSION || flags != 0 {
        return Err(OpenError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
            flags,
        });
    }
    Ok(true)
}

/// Replay in progress.
struct Replay {
    report: ReplayReport,
    next_id: u64,
    /// Owner of every live message, so an Ack (which names only the id) finds its queue.
    /// Lives only during replay: one allocation, freed (returned to the OS) at its end.
    owners: HashMap<u64, Arc<str>>,
}

/// An error inside the record loop, turned into an `OpenError` with the path by the caller.
enum LoopError {
    Io(io::Error),
    UnknownKind { offset: u64, kind: u8 },
}

impl LoopError {
    fn into_open_error(self, path: &Path) -> OpenError {
        match self {
            LoopError::Io(source) => OpenError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            },
            LoopError::UnknownKind { offset, kind } => OpenError::UnknownRecordKind {
                path: path.to_path_buf(),
                offset,
                kind,
            },
        }
    }
}

impl Replay {
    fn stop(&mut self, offset: u64, reason: StopReason) {
        self.report.stop = Some(ReplayStop { offset, reason });
    }

    /// Reads records until the end of the file or the first bad one.
    fn records(
        &mut self,
        reader: &mut impl Read,
        file_len: u64,
        tables: &mut Tables,
    ) -> Result<(), LoopError> {
        let mut body = Vec::new();
        loop {
            let offset = self.report.valid_bytes;
            let mut frame = [0u8; FRAME_LEN];
            let have = read_full(reader, &mut frame).map_err(LoopError::Io)?;
            if have == 0 {
                return Ok(());
            }
            if have < FRAME_LEN {
                self.stop(offset, StopReason::TornFrame { have: have as u64 });
                return Ok(());
            }
            let (len, stored) = match format::check_frame(frame) {
                FrameCheck::Body { len, crc } => (len, crc),
                FrameCheck::BadLength(len) => {
                    self.stop(offset, StopReason::BadLength { len });
                    return Ok(());
                }
            };
            let body_at = offset + FRAME_LEN as u64;
            let available = file_len.saturating_sub(body_at);
            if u64::from(len) > available {
                self.stop(
                    offset,
                    StopReason::TornRecord {
                        len,
                        have: available,
                    },
                );
                return Ok(());
            }
            body.resize(len as usize, 0);
            let have = read_full(reader, &mut body).map_err(LoopError::Io)?;
            if have < body.len() {
                // The file shrank under us; treat what is missing as torn.
                self.stop(
                    offset,
                    StopReason::TornRecord {
                        len,
                        have: have as u64,
                    },
                );
                return Ok(());
            }
            let computed = crc::crc32c(&body);
            if computed != stored {
                self.stop(offset, StopReason::BadCrc { stored, computed });
                return Ok(());
            }
            match format::decode_body(&body) {
                Ok(record) => self.apply(record, offset, len, tables),
                Err(DecodeError::UnknownKind(kind)) => {
                    return Err(LoopError::UnknownKind { offset, kind })
                }
                Err(DecodeError::Malformed(kind)) => {
                    self.stop(offset, StopReason::Malformed { kind });
                    return Ok(());
                }
                Err(DecodeError::Empty) => {
                    // check_frame refuses len 0, so a body always has a kind byte.
                    self.stop(offset, StopReason::BadLength { len });
                    return Ok(());
                }
            }
            self.report.records += 1;
            self.report.valid_bytes = body_at + u64::from(len);
        }
    }

    /// Applies one good record (at file `offset`), as the live mutation did.
    fn apply(&mut self, record: Record<'_>, offset: u64, body_len: u32, tables: &mut Tables) {
        let record_len = body_len + FRAME_LEN as u32;
        let changed = match record {
            Record::Put(put) => {
                self.next_id = self.next_id.max(put.id.saturating_add(1));
                let stanza_len = put.stanza.len() as u32; // within the record's length
                                                          // The owner and sender are JIDs (RFC 7622: 3071 bytes at most), so the head
                                                          // fits in u16; a record that does not is damage, counted as ignored.
                let Ok(head_len) = u16::try_from(record_len - stanza_len) else {
                    self.report.ignored += 1;
                    return;
                };
                let msg = Queued {
                    id: MsgId(put.id),
                    stamp_ms: put.stamp_ms,
                    stanza_at: offset + u64::from(head_len),
                    stanza_len,
                    head_len,
                };
                let inserted = tables.insert(put.owner, msg, None);
                if let (true, Some(owner)) = (inserted, tables.owner_key(put.owner)) {
                    self.owners.insert(put.id, owner);
                }
                inserted
            }
            Record::Ack { id } => match self.owners.remove(&id) {
                Some(owner) => tables.remove(&owner, MsgId(id)),
                None => false,
            },
            Record::NextId { next_id } => {
                self.next_id = self.next_id.max(next_id);
                true
            }
            Record::Set { table, key, value } => {
                tables.kv.set(table, key, value, record_len);
                true
            }
            Record::Delete { table, key } => tables.kv.delete(table, key),
        };
        if !changed {
            self.report.ignored += 1;
        }
    }

    fn finish(mut self, tables: &Tables) -> Replayed {
        self.report.messages = tables.len();
        Replayed {
            report: self.report,
            next_id: self.next_id,
        }
    }
}

/// Reads until `buf` is full or the end of the input; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
