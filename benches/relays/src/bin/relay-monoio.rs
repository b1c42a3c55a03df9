//! relay-monoio: the relay on monoio, thread-per-core: one thread (pinned with `--core`), one
//! io_uring runtime, everything `Rc`.
//!
//! One task per conn reads (owned buffers, as io_uring wants) and feeds
//! `rookery_relays::conn`; one writer task per conn drains its `Outbox`, into which senders
//! stamp relayed stanzas directly (`rookery_relays::local`), one write per wake-up.
//!
//! What it does not do: more than one thread (a second core would need SO_REUSEPORT
//! listeners and cross-thread routing: not trivial, so not offered), or anything beyond the
//! relay (see the crate docs).

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
mod relay {
    use std::io;
    use std::net::SocketAddr;
    use std::rc::Rc;

    use anyhow::Context;
    use clap::Parser;
    use monoio::io::{
        AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
    };
    use monoio::net::{TcpListener, TcpStream};
    use rookery_relays::cli::{self, RelayArgs, Start};
    use rookery_relays::local::{ChunkRead, LocalConn, LocalEnv};
    use rookery_relays::outbox::{BatchWrite, Outbox};
    use rookery_relays::registry::ConnId;
    use rookery_relays::stats::ACCEPT_PAUSE;
    use rookery_relays::stop::POLL_INTERVAL;

    const NAME: &str = "relay-monoio";
    const READ_BUF_BYTES: usize = 4096;
    /// Submission queue entries (monoio's default is 1024); in-flight operations are not
    /// bounded by it, only how many are submitted per turn.
    const RING_ENTRIES: u32 = 4096;

    #[derive(Parser)]
    #[command(name = NAME, version, about = "Minimal XMPP relay on monoio (a yardstick for rookery)")]
    struct Cli {
        #[command(flatten)]
        relay: RelayArgs,
    }

    pub fn main() -> anyhow::Result<()> {
        let cli = Cli::parse();
        let start = cli::start(NAME, &cli.relay)?;
        if let Some(core) = cli.relay.core {
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
        runtime.block_on(serve(cli.relay.listen, cli.relay.core, start))?;
        // The runtime drops the conn tasks with it; the sockets close with them.
        drop(runtime);
        cli::finish(NAME, &stats);
        Ok(())
    }

    /// Accepts in a task of its own; returns when SIGINT or SIGTERM asks it to.
    async fn serve(listen: SocketAddr, core: Option<usize>, start: Start) -> anyhow::Result<()> {
        let listener = TcpListener::bind(listen)
            .with_context(|| format!("listening on {listen} (in use? see ss -ltnp)"))?;
        cli::ready(NAME, listener.local_addr().unwrap_or(listen), core);
        let env = Rc::new(LocalEnv::new(start.domain.clone(), start.stats.clone()));
        monoio::spawn(accept_loop(listener, env));
        while !start.stop.is_set() {
            monoio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    async fn accept_loop(listener: TcpListener, env: Rc<LocalEnv>) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    monoio::spawn(serve_conn(stream, env.accepted(), env.clone()));
                }
                Err(err) => {
                    env.stats.accept_failed(NAME, &err);
                    monoio::time::sleep(ACCEPT_PAUSE).await;
                }
            }
        }
    }

    async fn serve_conn(stream: TcpStream, id: ConnId, env: Rc<LocalEnv>) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let outbox = Rc::new(Outbox::default());
        let drained = outbox.clone();
        monoio::spawn(async move { drained.drain(Writer(writer)).await });
        // monoio reads into the spare capacity (and sets the length to what it read).
        LocalConn::new(&env, id, outbox)
            .serve(&env, Reader(reader), Vec::with_capacity(READ_BUF_BYTES))
            .await;
    }

    /// The conn's read half, for [`LocalConn::serve`].
    struct Reader(OwnedReadHalf<TcpStream>);

    impl ChunkRead for Reader {
        async fn read_chunk(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            self.0.read(buf).await
        }
    }

    /// The conn's write half, for [`Outbox::drain`].
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

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    relay::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    rookery_relays::cli::linux_only("relay-monoio");
}
