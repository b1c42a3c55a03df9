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
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::time::Duration;

    use anyhow::anyhow;
    use clap::Parser;
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
    use glommio::net::{TcpListener, TcpStream};
    use glommio::{LocalExecutorBuilder, Placement};
    use rookery_relays::cli::{self, RelayArgs, Start};
    use rookery_relays::conn::{Conn, Flow};
    use rookery_relays::local::{LocalEnv, LocalRouter};
    use rookery_relays::outbox::Outbox;
    use rookery_relays::registry::ConnId;
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
        let mut next_id: ConnId = 0;
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    next_id += 1;
                    env.stats.conn_accepted();
                    glommio::spawn_local(serve_conn(stream, next_id, env.clone())).detach();
                }
                Err(err) => {
                    // EMFILE and friends: counted, logged, a short pause so the loop does not spin.
                    env.stats.accept_error();
                    eprintln!("{NAME}: accept failed: {err} (out of fds? raise ulimit -Hn)");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn serve_conn(stream: TcpStream, id: ConnId, env: Rc<LocalEnv>) {
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = futures_lite::io::split(stream);
        let outbox = Rc::new(Outbox::default());
        glommio::spawn_local(write_loop(writer, outbox.clone())).detach();
        let mut conn = Conn::new(env.domain.clone(), id);
        let mut router = LocalRouter {
            env: &env,
            id,
            outbox: &outbox,
        };
        let mut buf = vec![0u8; READ_BUF_BYTES];
        let mut out = Vec::new();
        loop {
            let n = match reader.read(&mut buf).await {
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

    async fn write_loop(mut writer: WriteHalf<TcpStream>, outbox: Rc<Outbox>) {
        let mut spare = Vec::new();
        while let Some(bytes) = outbox.take(spare).await {
            if writer.write_all(&bytes).await.is_err() {
                // The peer is gone: stanzas still routed here are counted as undeliverable.
                return outbox.close();
            }
            spare = bytes;
        }
        let _ = writer.close().await;
    }
}

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    relay::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("relay-glommio: built for Linux only (io_uring)");
    std::process::exit(2);
}
