//! The output side of one conn on a thread-per-core runtime (monoio, glommio): a byte buffer
//! that replies and relayed stanzas are appended to, and one writer task drains.
//!
//! Stamping writes straight into the destination's buffer, so a relayed stanza is copied once
//! (as in Rookery, where the router appends to the conn's output queue); the writer takes the
//! whole buffer per wake-up, so everything queued since its last write goes out in one write.
//!
//! What it does not do: cross-thread use (`Rc` + `RefCell`, one executor), or I/O itself (each
//! runtime's socket writer, behind [`BatchWrite`], does).
//!
//! Invariants: the buffer never grows past [`MAX_OUTBOX_BYTES`] through [`Outbox::push`]
//! (a stanza that would cross it is refused and the caller counts the drop); after
//! [`Outbox::close`] pushes are refused and the writer drains what is left, then ends.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::task::{Poll, Waker};

/// Bytes queued for one conn before relayed stanzas to it are dropped (a reader that does not
/// keep up must not grow the relay's memory without bound).
pub const MAX_OUTBOX_BYTES: usize = 1 << 20;

/// Why [`Outbox::push`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// [`MAX_OUTBOX_BYTES`] are already queued.
    Full,
    /// The conn is closing.
    Closed,
}

/// A conn's write half as [`Outbox::drain`] drives it: each runtime's socket writer.
pub trait BatchWrite {
    /// Writes all of `bytes`, handing the buffer back for reuse (an io_uring runtime owns it
    /// while the write is in flight).
    fn write_batch(&mut self, bytes: Vec<u8>) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;
    /// The outbox is closed and drained: shut the write side down (errors do not matter then).
    fn shut_down(self) -> impl Future<Output = ()>;
}

/// See the module docs.
#[derive(Default)]
pub struct Outbox {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    buf: Vec<u8>,
    closed: bool,
    /// The writer, parked on an empty buffer.
    waker: Option<Waker>,
}

impl Outbox {
    /// Appends with `write` (e.g. a stamp) and wakes the writer.
    pub fn push(&self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), PushError> {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Err(PushError::Closed);
        }
        if inner.buf.len() >= MAX_OUTBOX_BYTES {
            return Err(PushError::Full);
        }
        write(&mut inner.buf);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// No more pushes; the writer gets what is queued, then `None`.
    pub fn close(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }

    /// Waits for queued bytes and swaps them out for `spare` (cleared first), so two buffers
    /// alternate and neither is reallocated in the steady state. `None`: closed and drained.
    pub async fn take(&self, mut spare: Vec<u8>) -> Option<Vec<u8>> {
        spare.clear();
        let mut spare = Some(spare);
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if !inner.buf.is_empty() {
                let fresh = spare.take().unwrap_or_default();
                return Poll::Ready(Some(std::mem::replace(&mut inner.buf, fresh)));
            }
            if inner.closed {
                return Poll::Ready(None);
            }
            inner.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The writer task of a conn: one write per wake-up, until the outbox is closed and drained
    /// (then `writer` is shut down) or a write fails (then the outbox closes, so stanzas still
    /// routed here are counted as undeliverable).
    pub async fn drain(&self, mut writer: impl BatchWrite) {
        let mut spare = Vec::new();
        while let Some(bytes) = self.take(spare).await {
            let (written, bytes) = writer.write_batch(bytes).await;
            if written.is_err() {
                return self.close();
            }
            spare = bytes;
        }
        writer.shut_down().await;
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }

    #[test]
    fn pushes_coalesce_into_one_take() {
        let outbox = Outbox::default();
        outbox.push(|b| b.extend_from_slice(b"<a/>")).unwrap();
        outbox.push(|b| b.extend_from_slice(b"<b/>")).unwrap();
        let got = block_on(outbox.take(Vec::new())).unwrap();
        assert_eq!(got, b"<a/><b/>");
    }

    #[test]
    fn a_parked_writer_is_woken_by_a_push() {
        let outbox = Rc::new(Outbox::default());
        let writer = {
            let outbox = outbox.clone();
            async move { outbox.take(Vec::new()).await }
        };
        let pusher = {
            let outbox = outbox.clone();
            async move {
                // Let the writer park first.
                futures_lite::future::yield_now().await;
                outbox.push(|b| b.extend_from_slice(b"x")).unwrap();
            }
        };
        let (got, ()) = block_on(futures_lite::future::zip(writer, pusher));
        assert_eq!(got.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn close_drains_what_is_queued_then_ends() {
        let outbox = Outbox::default();
        outbox.push(|b| b.extend_from_slice(b"last")).unwrap();
        outbox.close();
        assert_eq!(outbox.push(|b| b.push(b'!')), Err(PushError::Closed));
        assert_eq!(
            block_on(outbox.take(Vec::new())).as_deref(),
            Some(&b"last"[..])
        );
        assert_eq!(block_on(outbox.take(Vec::new())), None);
    }

    #[test]
    fn a_full_outbox_refuses_until_taken() {
        let outbox = Outbox::default();
        outbox.push(|b| b.resize(MAX_OUTBOX_BYTES, b'a')).unwrap();
        assert_eq!(outbox.push(|b| b.push(b'b')), Err(PushError::Full));
        let got = block_on(outbox.take(Vec::new())).unwrap();
        assert_eq!(got.len(), MAX_OUTBOX_BYTES);
        assert!(outbox.push(|b| b.push(b'c')).is_ok());
    }

    /// Records what [`Outbox::drain`] writes; refuses writes once `fail` is set.
    #[derive(Default)]
    struct Sink {
        written: Rc<RefCell<Vec<u8>>>,
        shut_down: Rc<RefCell<bool>>,
        fail: bool,
    }

    impl BatchWrite for Sink {
        async fn write_batch(&mut self, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
            if self.fail {
                return (Err(io::ErrorKind::BrokenPipe.into()), bytes);
            }
            self.written.borrow_mut().extend_from_slice(&bytes);
            (Ok(()), bytes)
        }

        async fn shut_down(self) {
            *self.shut_down.borrow_mut() = true;
        }
    }

    #[test]
    fn drain_writes_everything_queued_then_shuts_down_once_closed() {
        let outbox = Outbox::default();
        let sink = Sink::default();
        let (written, shut_down) = (sink.written.clone(), sink.shut_down.clone());
        outbox.push(|b| b.extend_from_slice(b"<a/>")).unwrap();
        outbox.close();
        block_on(outbox.drain(sink));
        assert_eq!(*written.borrow(), b"<a/>");
        assert!(*shut_down.borrow());
    }

    #[test]
    fn a_failed_write_closes_the_outbox_without_shutting_down() {
        let outbox = Outbox::default();
        let sink = Sink {
            fail: true,
            ..Sink::default()
        };
        let shut_down = sink.shut_down.clone();
        outbox.push(|b| b.extend_from_slice(b"<a/>")).unwrap();
        block_on(outbox.drain(sink));
        assert_eq!(outbox.push(|b| b.push(b'!')), Err(PushError::Closed));
        assert!(!*shut_down.borrow());
    }

    #[test]
    fn take_hands_back_the_spare_buffer_as_the_new_queue() {
        let outbox = Outbox::default();
        outbox.push(|b| b.extend_from_slice(b"one")).unwrap();
        let first = block_on(outbox.take(Vec::with_capacity(4096))).unwrap();
        outbox.push(|b| b.extend_from_slice(b"two")).unwrap();
        assert!(
            outbox.inner.borrow().buf.capacity() >= 4096,
            "the spare became the queue"
        );
        let second = block_on(outbox.take(first)).unwrap();
        assert_eq!(second, b"two");
    }
}
