//! Response bodies: small fixed ones, and a file streamed from disk in bounded chunks.
//!
//! What it does: [`FileBody`] reads `len` bytes of an open file from `offset`, one
//! [`CHUNK_BYTES`] read at a time on tokio's blocking pool (positioned reads, so no shared
//! cursor), and yields each chunk as it arrives. hyper polls for the next chunk only once the
//! previous one is written, so a download holds at most one chunk in memory whatever the file
//! size, and a slow reader slows the reads instead of filling memory.
//!
//! What it does not do: sendfile or io_uring zero-copy (the chunk passes through user space
//! once; measured numbers in the crate docs).

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::metrics::Counters;

/// Bytes read per chunk: big enough that a 100 MB file is 800 reads, small enough to keep
/// per-download memory trivial.
pub const CHUNK_BYTES: usize = 128 << 10;

/// Every response body of the server.
pub type ResBody = UnsyncBoxBody<Bytes, io::Error>;

pub fn empty() -> ResBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn text(text: impl Into<String>) -> ResBody {
    Full::new(Bytes::from(text.into()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A byte range of a file, streamed.
pub struct FileBody {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    read: Option<JoinHandle<io::Result<Vec<u8>>>>,
    counters: Arc<Counters>,
}

impl FileBody {
    pub fn new(file: File, offset: u64, len: u64, counters: Arc<Counters>) -> FileBody {
        FileBody {
            file: Arc::new(file),
            offset,
            remaining: len,
            read: None,
            counters,
        }
    }

    fn start_read(&self) -> JoinHandle<io::Result<Vec<u8>>> {
        let file = Arc::clone(&self.file);
        let offset = self.offset;
        // Bounded by CHUNK_BYTES, so the cast cannot truncate.
        let want = self.remaining.min(CHUNK_BYTES as u64) as usize;
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let read = match &mut this.read {
            Some(read) => read,
            None => this.read.insert(this.start_read()),
        };
        let joined = ready!(Pin::new(read).poll(cx));
        this.read = None;
        // A file shortened under us (removed files keep their bytes while open, so only an
        // outside truncation) ends the response with an error: hyper then closes the conn
        // rather than send a short body under a full Content-Length.
        let chunk = joined.map_err(io::Error::other)??;
        let n = chunk.len() as u64;
        this.offset += n;
        this.remaining -= n;
        Counters::add(&this.counters.download_bytes, n);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
