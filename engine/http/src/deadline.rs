//! A stream wrapper that fails a write blocked for too long.
//!
//! Why: hyper asks a download body for its next chunk only when the previous one is written,
//! so a client that stops reading parks the conn forever, holding a conn slot and an open
//! file. hyper bounds the wait for a request head (`header_read_timeout`) and our upload code
//! bounds body reads; this bounds the other direction. A write that stays pending for
//! `stall` returns `TimedOut`, which ends the conn.
//!
//! What it does not do: bound reads (see above), or limit bandwidth.
//!
//! Invariant: the timer runs only while a write is pending; any write or flush that makes
//! progress disarms it.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

pub struct WriteDeadline<I> {
    inner: I,
    stall: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl<I> WriteDeadline<I> {
    pub fn new(inner: I, stall: Duration) -> WriteDeadline<I> {
        WriteDeadline {
            inner,
            stall,
            timer: Box::pin(sleep(stall)),
            armed: false,
        }
    }

    /// The wrapped stream (a WebSocket conn handed to the engine leaves this wrapper).
    pub fn into_inner(self) -> I {
        self.inner
    }

    /// Called when a write-side operation is pending: arms the timer on the first pending
    /// call, and reports whether it has fired.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            self.timer.as_mut().reset(Instant::now() + self.stall);
            self.armed = true;
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn progress<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending if self.stalled(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(poll, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(poll, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(poll, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_stall_fails() {
        // A pipe whose reader never reads: writes block once its buffer is full.
        let (client, _server) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(client, Duration::from_secs(30));
        stream.write_all(&[0u8; 64]).await.unwrap();
        let blocked = stream.write_all(&[0u8; 1]).await.unwrap_err();
        assert_eq!(blocked.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_disarms_the_timer() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(client, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            // Reads slowly, 20 s apart: each wait is under the stall, their sum is not.
            let mut buf = [0u8; 64];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let n = tokio::io::AsyncReadExt::read(&mut server, &mut buf)
                    .await
                    .unwrap();
                sink.extend_from_slice(&buf[..n]);
            }
            sink.len()
        });
        stream.write_all(&[1u8; 256]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 256);
    }
}
