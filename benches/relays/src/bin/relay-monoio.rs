//! relay-monoio: the relay on monoio, thread-per-core: one thread (pinned with `--core`), one
//! io_uring runtime, everything `Rc`.
//!
//! The serving loop is `rookery_relays::thread_per_core`'s (a reader and a writer task per
//! conn); this binary lends it monoio: owned-buffer reads and writes (as io_uring wants),
//! `monoio::spawn` and monoio's timer.
//!
//! What it does not do: more than one thread (a second core would need SO_REUSEPORT
//! listeners and cross-thread routing: not trivial, so not offered), or anything beyond the
//! relay (see the crate docs).

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
mod relay {
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;

    use anyhow::Context;
    use monoio::io::{
        AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
    };
    use monoio::net::{TcpListener, TcpStream};
    use rookery_relays::cli;
    use rookery_relays::local::ChunkRead;
    use rookery_relays::outbox::BatchWrite;
    use rookery_relays::thread_per_core::{self, LocalRuntime};

    const NAME: &str = "relay-monoio";
    /// Submission queue entries (monoio's default is 1024); in-flight operations are not
    /// bounded by it, only how many are submitted per turn.
    const RING_ENTRIES: u32 = 4096;

    pub fn main() -> anyhow::Result<()> {
        let args = cli::parse(
            NAME,
            "Minimal XMPP relay on monoio (a yardstick for rookery)",
        );
        let start = cli::start(NAME, &args)?;
        if let Some(core) = args.core {
            monoio::utils::bind_to_cpu_set([core])
                .with_context(|| format!("pinning to core {core} (see nproc and taskset)"))?;
        }
        let mut runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(RING_ENTRIES)
            .enable_timer()
            .build()
            .context(
                "creating the io_uring runtime (kernel.io_uring_disabled? seccomp? RLIMIT_MEMLOCK?)",
            )?;
        let stats = start.stats.clone();
        let (listen, core) = (args.listen, args.core);
        runtime.block_on(thread_per_core::serve::<Monoio>(NAME, listen, core, start))?;
        // The runtime drops the conn tasks with it; the sockets close with them.
        drop(runtime);
        cli::finish(NAME, &stats);
        Ok(())
    }

    /// The monoio runtime this thread runs.
    struct Monoio;

    impl LocalRuntime for Monoio {
        type Listener = TcpListener;
        type Error = io::Error;

        fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
            let listener = TcpListener::bind(addr)?;
            let bound = listener.local_addr().unwrap_or(addr);
            Ok((listener, bound))
        }

        async fn accept(
            listener: &TcpListener,
        ) -> io::Result<(impl ChunkRead + 'static, impl BatchWrite + 'static)> {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (reader, writer) = stream.into_split();
            Ok((Reader(reader), Writer(writer)))
        }

        /// monoio reads into the spare capacity (and sets the length to what it read).
        fn read_buffer(bytes: usize) -> Vec<u8> {
            Vec::with_capacity(bytes)
        }

        fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
            monoio::spawn(task);
        }

        async fn sleep(pause: Duration) {
            monoio::time::sleep(pause).await;
        }
    }

    /// The conn's read half, for [`rookery_relays::local::LocalConn::serve`].
    struct Reader(OwnedReadHalf<TcpStream>);

    impl ChunkRead for Reader {
        async fn read_chunk(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            self.0.read(buf).await
        }
    }

    /// The conn's write half, for [`rookery_relays::outbox::Outbox::drain`].
    struct Writer(OwnedWriteHalf<TcpStream>);

    impl BatchWrite for Writer {
        async fn write_batch(&mut self, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
            let (written, bytes) = self.0.write_all(bytes).await;
            (written.map(drop), bytes)
        }

        async fn shut_down(mut self) {
            let _ = self.0.shutdown().await;
        }
    }
}

fn main() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    return relay::main();
    #[cfg(not(target_os = "linux"))]
    rookery_relays::cli::linux_only("relay-monoio");
}
