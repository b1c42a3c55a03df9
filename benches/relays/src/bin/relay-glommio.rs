//! relay-glommio: the relay on glommio, thread-per-core: one `LocalExecutor` (placed on
//! `--core` with `Placement::Fixed`), everything `Rc`.
//!
//! The serving loop is `rookery_relays::thread_per_core`'s (a reader and a writer task per
//! conn); this binary lends it glommio: the stream's halves (`futures_lite::io::split`),
//! `spawn_local` and glommio's timer.
//!
//! What it does not do: more than one executor (a second core would need one listener per
//! executor and cross-executor routing over `shared_channel`s: not trivial, so not offered), or
//! anything beyond the relay (see the crate docs).

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
mod relay {
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;

    use anyhow::anyhow;
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
    use glommio::net::{TcpListener, TcpStream};
    use glommio::{GlommioError, LocalExecutorBuilder, Placement};
    use rookery_relays::cli;
    use rookery_relays::local::ChunkRead;
    use rookery_relays::outbox::BatchWrite;
    use rookery_relays::thread_per_core::{self, LocalRuntime};

    const NAME: &str = "relay-glommio";

    pub fn main() -> anyhow::Result<()> {
        let args = cli::parse(
            NAME,
            "Minimal XMPP relay on glommio (a yardstick for rookery)",
        );
        let start = cli::start(NAME, &args)?;
        let placement = args.core.map_or(Placement::Unbound, Placement::Fixed);
        let stats = start.stats.clone();
        let (listen, core) = (args.listen, args.core);
        LocalExecutorBuilder::new(placement)
            .name(NAME)
            .spawn(move || thread_per_core::serve::<Glommio>(NAME, listen, core, start))
            .map_err(|err| {
                anyhow!("starting the glommio executor: {err} (io_uring: kernel.io_uring_disabled? RLIMIT_MEMLOCK?)")
            })?
            .join()
            .map_err(|err| anyhow!("the glommio executor failed: {err}"))??;
        cli::finish(NAME, &stats);
        Ok(())
    }

    /// The glommio executor this thread runs.
    struct Glommio;

    impl LocalRuntime for Glommio {
        type Listener = TcpListener;
        type Error = GlommioError<()>;

        fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), GlommioError<()>> {
            let listener = TcpListener::bind(addr)?;
            let bound = listener.local_addr().unwrap_or(addr);
            Ok((listener, bound))
        }

        async fn accept(
            listener: &TcpListener,
        ) -> Result<(impl ChunkRead + 'static, impl BatchWrite + 'static), GlommioError<()>>
        {
            let stream = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (reader, writer) = futures_lite::io::split(stream);
            Ok((Reader(reader), Writer(writer)))
        }

        fn read_buffer(bytes: usize) -> Vec<u8> {
            vec![0u8; bytes]
        }

        fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
            glommio::spawn_local(task).detach();
        }

        async fn sleep(pause: Duration) {
            glommio::timer::sleep(pause).await;
        }
    }

    /// The conn's read half, for [`rookery_relays::local::LocalConn::serve`].
    struct Reader(ReadHalf<TcpStream>);

    impl ChunkRead for Reader {
        async fn read_chunk(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            (self.0.read(&mut buf).await, buf)
        }
    }

    /// The conn's write half, for [`rookery_relays::outbox::Outbox::drain`].
    struct Writer(WriteHalf<TcpStream>);

    impl BatchWrite for Writer {
        async fn write_batch(&mut self, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
            (self.0.write_all(&bytes).await, bytes)
        }

        async fn shut_down(mut self) {
            let _ = self.0.close().await;
        }
    }
}

fn main() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    return relay::main();
    #[cfg(not(target_os = "linux"))]
    rookery_relays::cli::linux_only("relay-glommio");
}
