//! relay-glommio: the relay on glommio, thread-per-core: one `LocalExecutor` (placed on
//! `--core` with `Placement::Fixed`), everything `Rc`.
//!
//! One task per conn reads (the stream's read half, `futures_lite::io::split`) and feeds
//! `rookery_relays::conn`; one writer task per conn drains its `Outbox`, into which senders
//! stamp relayed stanzas directly (`rookery_relays::local`), one write per wake-up.
//!
//! What it does not do: more than one executor (a second core would need one listener per
//! executor and cross-executor routing over `shared_channel`s: not trivial, so not offered), or
//! anything beyond the relay (see the crate docs).

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
mod relay {
    use std::io;
    use std::net::SocketAddr;
    use std::rc::Rc;

    use anyhow::anyhow;
    use clap::Parser;
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
    use glommio::net::{TcpListener, TcpStream};
    use glommio::{LocalExecutorBuilder, Placement};
    use rookery_relays::cli::{self, RelayArgs, Start};
    use rookery_relays::local::{ChunkRead, LocalConn, LocalEnv};
    use rookery_relays::outbox::{BatchWrite, Outbox};
    use rookery_relays::registry::ConnId;
    use rookery_relays::stats::ACCEPT_PAUSE;
    use rookery_relays::stop::POLL_INTERVAL;

    const NAME: &str = "relay-glommio";
    const READ_BUF_BYTES: usize = 4096;

    #[derive(Parser)]
    #[command(name = NAME, version, about = "Minimal XMPP relay on glommio (a yardstick for rookery)")]
    struct Cli {
        #[command(flatten)]
        relay: RelayArgs,
    }

    pub fn main() -> anyhow::Result<()> {
        let cli = Cli::parse();
        let start = cli::start(NAME, &cli.relay)?;
        let placement = cli.relay.core.map_or(Placement::Unbound, Placement::Fixed);
        let stats = start.stats.clone();
        let (listen, core) = (cli.relay.listen, cli.relay.core);
        LocalExecutorBuilder::new(placement)
            .name(NAME)
            .spawn(move || serve(listen, core, start))
            .map_err(|err| {
                anyhow!("starting the glommio executor: {err} (io_uring: kernel.io_uring_disabled? RLIMIT_MEMLOCK?)")
            })?
            .join()
            .map_err(|err| anyhow!("the glommio executor failed: {err}"))??;
        cli::finish(NAME, &stats);
        Ok(())
    }

    /// Accepts in a task of its own; returns when SIGINT or SIGTERM asks it to (the executor
    /// then stops, dropping the conn tasks and their sockets).
    async fn serve(listen: SocketAddr, core: Option<usize>, start: Start) -> anyhow::Result<()> {
        let listener = TcpListener::bind(listen)
            .map_err(|err| anyhow!("listening on {listen}: {err} (in use? see ss -ltnp)"))?;
        cli::ready(NAME, listener.local_addr().unwrap_or(listen), core);
        let env = Rc::new(LocalEnv::new(start.domain.clone(), start.stats.clone()));
        glommio::spawn_local(accept_loop(listener, env)).detach();
        while !start.stop.is_set() {
            glommio::timer::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    async fn accept_loop(listener: TcpListener, env: Rc<LocalEnv>) {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    glommio::spawn_local(serve_conn(stream, env.accepted(), env.clone())).detach();
                }
                Err(err) => {
                    env.stats.accept_failed(NAME, &err);
                    glommio::timer::sleep(ACCEPT_PAUSE).await;
                }
            }
        }
    }

    async fn serve_conn(stream: TcpStream, id: ConnId, env: Rc<LocalEnv>) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = futures_lite::io::split(stream);
        let outbox = Rc::new(Outbox::default());
        let drained = outbox.clone();
        glommio::spawn_local(async move { drained.drain(Writer(writer)).await }).detach();
        LocalConn::new(&env, id, outbox)
            .serve(&env, Reader(reader), vec![0u8; READ_BUF_BYTES])
            .await;
    }

    /// The conn's read half, for [`LocalConn::serve`].
    struct Reader(ReadHalf<TcpStream>);

    impl ChunkRead for Reader {
        async fn read_chunk(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            (self.0.read(&mut buf).await, buf)
        }
    }

    /// The conn's write half, for [`Outbox::drain`].
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

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    relay::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    rookery_relays::cli::linux_only("relay-glommio");
}
