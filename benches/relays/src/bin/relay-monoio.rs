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
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::time::Duration;

    use anyhow::Context;
    use clap::Parser;
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf, Splitable};
    use monoio::net::{TcpListener, TcpStream};
    use rookery_relays::cli::{self, RelayArgs, Start};
    use rookery_relays::conn::{Conn, Flow};
    use rookery_relays::local::{LocalEnv, LocalRouter};
    use rookery_relays::outbox::Outbox;
    use rookery_relays::registry::ConnId;
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
        let mut next_id: ConnId = 0;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    next_id += 1;
                    env.stats.conn_accepted();
                    monoio::spawn(serve_conn(stream, next_id, env.clone()));
                }
                Err(err) => {
                    // EMFILE and friends: counted, logged, a short pause so the loop does not spin.
                    env.stats.accept_error();
                    eprintln!("{NAME}: accept failed: {err} (out of fds? raise ulimit -Hn)");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn serve_conn(stream: TcpStream, id: ConnId, env: Rc<LocalEnv>) {
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let outbox = Rc::new(Outbox::default());
        monoio::spawn(write_loop(writer, outbox.clone()));
        let mut conn = Conn::new(env.domain.clone(), id);
        let mut router = LocalRouter {
            env: &env,
            id,
            outbox: &outbox,
        };
        let mut buf = Vec::with_capacity(READ_BUF_BYTES);
        let mut out = Vec::new();
        loop {
            let (read, filled) = reader.read(buf).await;
            buf = filled;
            let n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let flow = conn.on_data(&buf[..n], &mut out, &mut router);
            if !out.is_empty() && outbox.push(|q| q.extend_from_slice(&out)).is_err() {
                break;
            }
            out.clear();
            if flow == Flow::Close {
                break;
            }
        }
        if let Some(jid) = conn.jid() {
            env.unbind(jid, id);
        }
        outbox.close();
    }

    async fn write_loop(mut writer: OwnedWriteHalf<TcpStream>, outbox: Rc<Outbox>) {
        let mut spare = Vec::new();
        while let Some(bytes) = outbox.take(spare).await {
            let (written, bytes) = writer.write_all(bytes).await;
            if written.is_err() {
                // The peer is gone: stanzas still routed here are counted as undeliverable.
                return outbox.close();
            }
            spare = bytes;
        }
        let _ = writer.shutdown().await;
    }
}

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    relay::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("relay-monoio: built for Linux only (io_uring)");
    std::process::exit(2);
}
