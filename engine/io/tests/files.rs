//! File writes (the shard's durable log, contract point 8), the same tests instantiated once
//! per backend by `per_backend!` (support/backends.rs).
//!
//! Files live in `std::env::temp_dir()` under unique names and are removed by a guard, also on
//! failure. The ENOSPC test mounts a 64 KiB tmpfs (root only) and unmounts it in a guard; where
//! mounting is not allowed it prints `SKIP` (the EBADF test still covers error reporting).
//! io_uring tests print `SKIP` and pass when `select_backend(Uring)` fails on this machine.
//!
//! Run one backend: `cargo test -p rookery-io --test files poll::` (or `uring::`).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rookery_io::{ConnId, Driver, Event, FileId, FileSync, Handler, Limits, Ops};

#[macro_use]
#[path = "support/backends.rs"]
mod backends;

use backends::pattern;

const DEADLINE: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

/// One `FileWritten`, as delivered.
#[derive(Debug)]
struct Written {
    file: FileId,
    token: u64,
    result: Result<(), i32>,
    buffer: Vec<u8>,
}

#[derive(Default)]
struct Recorder {
    written: Vec<Written>,
    /// `FileRead`s, as delivered (same shape as a write's completion).
    read: Vec<Written>,
    /// Writes the handler submits, one per `FileWritten` (the group-commit loop's shape).
    chain: VecDeque<(FileId, u64, Vec<u8>)>,
    chained_tokens: Vec<u64>,
    accepted: Vec<ConnId>,
    received: Vec<u8>,
}

impl<D: Driver> Handler<D> for Recorder {
    fn on_event(&mut self, io: &mut D::Ops<'_>, event: Event<'_>) {
        match event {
            Event::FileWritten {
                file,
                token,
                result,
                buffer,
            } => {
                self.written.push(Written {
                    file,
                    token,
                    result,
                    buffer,
                });
                if let Some((file, offset, bytes)) = self.chain.pop_front() {
                    let token = io.write_file(file, offset, bytes, FileSync::None);
                    self.chained_tokens.push(token);
                }
            }
            Event::FileRead {
                file,
                token,
                result,
                buffer,
            } => self.read.push(Written {
                file,
                token,
                result,
                buffer,
            }),
            Event::Accepted { conn, .. } => self.accepted.push(conn),
            Event::Received { data, .. } => self.received.extend_from_slice(data),
            Event::Drained { .. } | Event::Woken => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Turns the driver (10 ms waits) until `done`, failing after [`DEADLINE`].
fn drive<D: Driver>(d: &mut D, h: &mut Recorder, what: &str, done: impl Fn(&Recorder) -> bool) {
    let start = Instant::now();
    while !done(h) {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        d.turn(Some(Duration::from_millis(10)), h).expect("turn");
    }
}

/// A unique path, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(dir: &Path, tag: &str) -> TempPath {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rookery-io-files-{tag}-{}-{n}", std::process::id());
        TempPath(dir.join(name))
    }

    fn in_temp(tag: &str) -> TempPath {
        TempPath::new(&std::env::temp_dir(), tag)
    }

    fn open_rw(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.0)
            .expect("create temp file")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A 64 KiB tmpfs mounted on a fresh directory, unmounted (and removed) on drop.
struct TinyTmpfs(PathBuf);

impl TinyTmpfs {
    fn mount() -> Result<TinyTmpfs, String> {
        let dir = TempPath::in_temp("tmpfs").0.clone();
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(TinyTmpfs(dir)),
            Ok(o) => {
                let _ = std::fs::remove_dir(&dir);
                Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot run mount: {e}"))
            }
        }
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a file still open after a failed assertion): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

// ---- the tests -------------------------------------------------------------------------

/// Batches at increasing offsets, with and without sync, an empty one and an overwrite (the
/// store's retry at the same offset): completions in submission order, buffers handed back
/// unchanged, file content byte for byte.
fn batches_in_order<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("batches");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    let sizes = [1, 4095, 4096, 10_000, 0, 65_537, 3, 200_000];
    let (mut offset, mut expected, mut sent) = (0u64, Vec::new(), Vec::new());
    for (i, &len) in sizes.iter().enumerate() {
        let bytes = pattern(len, i as u32 + 1);
        let sync = if i % 2 == 0 {
            FileSync::Data
        } else {
            FileSync::None
        };
        expected.extend_from_slice(&bytes);
        let token = d.ops().write_file(file, offset, bytes.clone(), sync);
        sent.push((token, bytes));
        offset += len as u64;
        if i == 2 {
            assert!(h.written.is_empty(), "never reported inside write_file");
            d.turn(Some(Duration::ZERO), &mut h).unwrap(); // the rest queue behind a chain
        }
    }
    let retry = pattern(4096, 99);
    expected[4096..8192].copy_from_slice(&retry);
    sent.push((
        d.ops()
            .write_file(file, 4096, retry.clone(), FileSync::Data),
        retry,
    ));
    drive(&mut d, &mut h, "all batches", |h| {
        h.written.len() == sent.len()
    });
    for (w, (token, bytes)) in h.written.iter().zip(&sent) {
        assert_eq!((w.file, w.token, w.result), (file, *token, Ok(())));
        assert!(
            w.buffer == *bytes,
            "buffer of token {token} came back changed"
        );
    }
    let tokens: Vec<u64> = sent.iter().map(|s| s.0).collect();
    assert!(tokens.windows(2).all(|t| t[0] < t[1]), "distinct tokens");
    drop(d.unregister_file(file).expect("nothing in flight"));
    assert!(std::fs::read(&tmp.0).unwrap() == expected, "file content");
}

/// One 4 MiB batch with fdatasync, behind a 4 KiB hole.
fn large_batch<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("large");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    let bytes = pattern(4 * MIB, 4);
    let batch = bytes.clone();
    let start = Instant::now();
    let token = d.ops().write_file(file, 4096, batch, FileSync::Data);
    let in_call = start.elapsed(); // poll writes here; io_uring only queues an SQE
                                   // Zero-timeout turns, so the longest one measures work done inside a turn (such as an
                                   // inline write in io_uring_enter), not waiting.
    let mut longest_turn = Duration::ZERO;
    while h.written.is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for the 4 MiB write"
        );
        let turn = Instant::now();
        d.turn(Some(Duration::ZERO), &mut h).unwrap();
        longest_turn = longest_turn.max(turn.elapsed());
    }
    let took = start.elapsed();
    let w = &h.written[0];
    assert_eq!((w.token, w.result), (token, Ok(())));
    assert!(w.buffer == bytes);
    eprintln!(
        "{:?}: 4 MiB write + fdatasync in {took:?}: {in_call:?} inside write_file, \
         longest turn {longest_turn:?} ({})",
        d.kind(),
        std::env::temp_dir().display()
    );
    drop(d.unregister_file(file).unwrap());
    let content = std::fs::read(&tmp.0).unwrap();
    assert_eq!(content.len(), 4096 + 4 * MIB);
    assert!(
        content[..4096].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert!(content[4096..] == bytes[..]);
}

/// A file opened read-only: EBADF, the buffer back unchanged, the file untouched, and the
/// driver still writes other files afterwards.
fn write_error_ebadf<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("readonly");
    std::fs::write(&tmp.0, b"old").unwrap();
    let good = TempPath::in_temp("good");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let ro = d.register_file(File::open(&tmp.0).unwrap()).unwrap();
    let rw = d.register_file(good.open_rw()).unwrap();
    let bytes = pattern(1000, 5);
    let bad = d.ops().write_file(ro, 0, bytes.clone(), FileSync::Data);
    let ok = d.ops().write_file(rw, 0, b"fine".to_vec(), FileSync::None);
    drive(&mut d, &mut h, "two writes", |h| h.written.len() == 2);
    let of = |t: u64| h.written.iter().find(|w| w.token == t).expect("reported");
    assert_eq!((of(bad).file, of(bad).result), (ro, Err(libc::EBADF)));
    assert!(of(bad).buffer == bytes, "buffer handed back on error");
    assert_eq!(of(ok).result, Ok(()));
    drop(d.unregister_file(ro).unwrap());
    drop(d.unregister_file(rw).unwrap());
    assert_eq!(std::fs::read(&tmp.0).unwrap(), b"old");
    assert_eq!(std::fs::read(&good.0).unwrap(), b"fine");
}

/// A real ENOSPC: 128 KiB into a 64 KiB tmpfs (a short write, then the error). The first
/// errno is reported with the buffer; a later write that fits still succeeds.
fn write_error_enospc<D: Driver>(make: impl Fn(Limits) -> D) {
    let fs = match TinyTmpfs::mount() {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIP write_error_enospc: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let tmp = TempPath::new(&fs.0, "full");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    let bytes = pattern(128 * 1024, 6);
    let token = d.ops().write_file(file, 0, bytes.clone(), FileSync::Data);
    drive(&mut d, &mut h, "ENOSPC", |h| h.written.len() == 1);
    assert_eq!(
        (h.written[0].token, h.written[0].result),
        (token, Err(libc::ENOSPC))
    );
    assert!(h.written[0].buffer == bytes);
    d.ops()
        .write_file(file, 0, b"retry".to_vec(), FileSync::Data);
    drive(&mut d, &mut h, "retry", |h| h.written.len() == 2);
    assert_eq!(h.written[1].result, Ok(()));
    drop(d.unregister_file(file).unwrap());
    drop(d);
    let content = std::fs::read(&tmp.0).unwrap();
    assert_eq!(&content[..5], b"retry");
    drop(tmp);
    drop(fs);
}

/// `unregister_file` refuses while a write is in flight (until its `FileWritten` is
/// delivered), then gives the file back; the old id then fails with EBADF, and ids are not
/// reused.
fn unregister_waits_for_writes<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("unregister");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    d.ops().write_file(file, 0, pattern(MIB, 7), FileSync::Data);
    assert!(d.unregister_file(file).is_none(), "write in flight");
    drive(&mut d, &mut h, "write", |h| h.written.len() == 1);
    assert_eq!(h.written[0].result, Ok(()));
    let f = d
        .unregister_file(file)
        .expect("write reported: the file comes back");
    assert_eq!(f.metadata().unwrap().len(), MIB as u64);
    assert!(d.unregister_file(file).is_none(), "already gone");
    let again = d.register_file(f).unwrap();
    assert_ne!(again, file, "file ids are not reused");
    let stale = d
        .ops()
        .write_file(file, 0, b"lost".to_vec(), FileSync::None);
    assert_eq!(h.written.len(), 1, "not reported inside write_file");
    drive(&mut d, &mut h, "stale write", |h| h.written.len() == 2);
    let w = &h.written[1];
    assert_eq!((w.file, w.token, w.result), (file, stale, Err(libc::EBADF)));
    assert_eq!(w.buffer, b"lost");
    drop(d.unregister_file(again).unwrap());
}

/// The turn after a `write_file` delivers the completion promptly even with a long timeout
/// (poll: it must not block while a completion is pending).
fn completion_does_not_wait_for_timeout<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("prompt");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    d.ops().write_file(file, 0, b"now".to_vec(), FileSync::None);
    let start = Instant::now();
    while h.written.is_empty() && start.elapsed() < DEADLINE {
        d.turn(Some(Duration::from_secs(5)), &mut h).unwrap();
    }
    assert_eq!(h.written.len(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    drop(d.unregister_file(file).unwrap());
}

/// Writes submitted from inside the handler (one per completion) chain through later turns
/// and land in order.
fn writes_from_the_handler<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("handler");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    let parts: Vec<Vec<u8>> = (0..6)
        .map(|i| pattern(3000 + i * 7, i as u32 + 10))
        .collect();
    let mut offset = parts[0].len() as u64;
    for p in &parts[1..] {
        h.chain.push_back((file, offset, p.clone()));
        offset += p.len() as u64;
    }
    let first = d
        .ops()
        .write_file(file, 0, parts[0].clone(), FileSync::Data);
    drive(&mut d, &mut h, "chained writes", |h| {
        h.written.len() == parts.len()
    });
    let delivered: Vec<u64> = h.written.iter().map(|w| w.token).collect();
    let mut submitted = vec![first];
    submitted.extend_from_slice(&h.chained_tokens);
    assert_eq!(delivered, submitted);
    assert!(h.written.iter().all(|w| w.result == Ok(())));
    drop(d.unregister_file(file).unwrap());
    assert!(std::fs::read(&tmp.0).unwrap() == parts.concat());
}

/// A socket and the log in one loop: an echo over loopback goes on while a 4 MiB synced write
/// is in flight, and both complete.
fn sockets_and_files_together<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("mixed");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    d.listen(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(DEADLINE)).unwrap();
    drive(&mut d, &mut h, "accept", |h| h.accepted.len() == 1);
    let conn = h.accepted[0];
    let file = d.register_file(tmp.open_rw()).unwrap();
    d.ops()
        .write_file(file, 0, pattern(4 * MIB, 8), FileSync::Data);
    d.ops().send(conn, b"ping").unwrap();
    peer.write_all(b"pong").unwrap();
    drive(&mut d, &mut h, "file and socket", |h| {
        h.written.len() == 1 && h.received == b"pong"
    });
    let mut got = [0u8; 4];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    assert_eq!(h.written[0].result, Ok(()));
    drop(d.unregister_file(file).unwrap());
}

/// Dropping the driver with a write submitted (in the kernel on io_uring) and one queued
/// behind it, and another driver with a write never submitted: no crash, prompt, and the
/// file is closed (the tmp file can be removed and reopened).
fn drop_with_write_in_flight<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("drop");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    d.ops()
        .write_file(file, 0, pattern(4 * MIB, 9), FileSync::Data);
    d.ops()
        .write_file(file, 4 * MIB as u64, pattern(MIB, 10), FileSync::Data);
    d.turn(Some(Duration::ZERO), &mut h).unwrap();
    let start = Instant::now();
    drop(d);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let len = std::fs::metadata(&tmp.0).unwrap().len();
    assert!(len <= 5 * MIB as u64);

    let mut d = make(Limits::default());
    let file = d.register_file(tmp.open_rw()).unwrap();
    d.ops()
        .write_file(file, 0, pattern(MIB, 11), FileSync::None);
    drop(d);
}

/// Reads of written bytes (contract point 9): exact bytes at any offset, many in flight at once
/// and with a write, a spare buffer reused, EOF as EIO, an unknown file as EBADF, never
/// reported inside `read_file`, and `unregister_file` waits for reads.
fn reads_of_written_bytes<D: Driver>(make: impl Fn(Limits) -> D) {
    let tmp = TempPath::in_temp("reads");
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let file = d.register_file(tmp.open_rw()).unwrap();
    let content = pattern(300_000, 21);
    d.ops().write_file(file, 0, content.clone(), FileSync::None);
    drive(&mut d, &mut h, "the write", |h| h.written.len() == 1);
    let spans = [
        (0usize, 1usize),
        (4095, 2),
        (100, 65_536),
        (299_990, 10),
        (7, 0),
    ];
    let mut asked = Vec::new();
    for (i, &(offset, len)) in spans.iter().enumerate() {
        let spare = if i == 1 {
            Vec::with_capacity(4096)
        } else {
            Vec::new()
        };
        let token = d.ops().read_file(file, offset as u64, len, spare);
        asked.push((token, content[offset..offset + len].to_vec()));
    }
    // A read past the end (EOF first; clear of the write below) and one of an unknown file.
    let eof = d.ops().read_file(file, 400_000, 2, Vec::new());
    let unknown = d.ops().read_file(FileId(9_999), 0, 5, Vec::new());
    // A write in flight at the same time, to another part of the file.
    d.ops()
        .write_file(file, 300_000, pattern(10, 22), FileSync::Data);
    assert!(h.read.is_empty(), "never reported inside read_file");
    assert!(d.unregister_file(file).is_none(), "reads are in flight");
    drive(&mut d, &mut h, "every read", |h| {
        h.read.len() == spans.len() + 2
    });
    for (token, bytes) in &asked {
        let r = h.read.iter().find(|r| r.token == *token).expect("reported");
        assert_eq!((r.file, r.result), (file, Ok(())));
        assert!(r.buffer == *bytes, "read of token {token} has other bytes");
    }
    let eof = h
        .read
        .iter()
        .find(|r| r.token == eof)
        .expect("EOF reported");
    assert_eq!(eof.result, Err(libc::EIO));
    let unknown = h.read.iter().find(|r| r.token == unknown).expect("EBADF");
    assert_eq!(unknown.result, Err(libc::EBADF));
    drive(&mut d, &mut h, "the second write", |h| h.written.len() == 2);
    assert!(d.unregister_file(file).is_some(), "nothing in flight");
}

/// Every file test also runs on io_uring with `inline_file_writes` (unsynced writes on an idle
/// chain are a `pwrite` on the driver's thread): same order, results and content as through
/// the ring (`uring_inline::<name>`).
fn inline_file_writes(limits: Limits) -> Limits {
    Limits {
        inline_file_writes: true,
        ..limits
    }
}

per_backend!(
    also uring_inline with inline_file_writes;
    reads_of_written_bytes,
    batches_in_order,
    large_batch,
    write_error_ebadf,
    write_error_enospc,
    unregister_waits_for_writes,
    completion_does_not_wait_for_timeout,
    writes_from_the_handler,
    sockets_and_files_together,
    drop_with_write_in_flight,
);
