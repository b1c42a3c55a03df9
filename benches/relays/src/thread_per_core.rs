//! The serving loop of the thread-per-core peers (monoio, glommio), written once: an accept
//! task, a reader and a writer task per conn (the reader feeds [`LocalConn`], the writer drains
//! the conn's [`Outbox`]), and a wait for SIGINT or SIGTERM. Each binary lends its runtime
//! through [`LocalRuntime`]: its listener, splitting a stream into its halves, spawning a task
//! on this thread, and a timer.
//!
//! What it does not do: build the runtime (each binary does, the way its runtime is meant to
//! be built), or serve from more than one thread (one executor serves every conn; see
//! [`crate::local`]).

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::anyhow;

use crate::cli::{self, Start};
use crate::local::{ChunkRead, LocalConn, LocalEnv};
use crate::outbox::{BatchWrite, Outbox};
use crate::registry::ConnId;
use crate::stats::ACCEPT_PAUSE;
use crate::stop::POLL_INTERVAL;

/// Bytes a conn reads at once.
const READ_BUF_BYTES: usize = 4096;

/// What a thread-per-core runtime lends the serving loop.
pub trait LocalRuntime: 'static {
    type Listener: 'static;
    /// What binding or accepting fails with.
    type Error: Display;

    /// A listener on `addr`, and the address it is bound to (with port 0 it names the port the
    /// kernel chose).
    fn bind(addr: SocketAddr) -> Result<(Self::Listener, SocketAddr), Self::Error>;
    /// The next accepted conn, TCP_NODELAY set (best effort), split into its read and write
    /// halves.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = Result<(impl ChunkRead + 'static, impl BatchWrite + 'static), Self::Error>>;
    /// A buffer for reads of up to `bytes`, as this runtime's reads want it.
    fn read_buffer(bytes: usize) -> Vec<u8>;
    /// Runs `task` on this thread, detached.
    fn spawn(task: impl Future<Output = ()> + 'static);
    /// Waits `pause` on this runtime's timer.
    fn sleep(pause: Duration) -> impl Future<Output = ()>;
}

/// Listens on `listen` (and says so: [`cli::ready`]), then serves until SIGINT or SIGTERM
/// asks to stop; returns then, leaving the conn tasks to the runtime, which drops them (and
/// their sockets) as it stops. `name` is the binary's, for messages.
pub async fn serve<R: LocalRuntime>(
    name: &'static str,
    listen: SocketAddr,
    core: Option<usize>,
    start: Start,
) -> anyhow::Result<()> {
    let (listener, bound) = R::bind(listen)
        .map_err(|err| anyhow!("listening on {listen}: {err} (in use? see ss -ltnp)"))?;
    cli::ready(name, bound, core);
    let env = Rc::new(LocalEnv::new(start.domain.clone(), start.stats.clone()));
    R::spawn(accept_loop::<R>(name, listener, env));
    while !start.stop.is_set() {
        R::sleep(POLL_INTERVAL).await;
    }
    Ok(())
}

/// Accepts forever, each conn in tasks of its own; after a failed accept (out of fds, most
/// likely) it pauses [`ACCEPT_PAUSE`] so that it does not spin.
async fn accept_loop<R: LocalRuntime>(
    name: &'static str,
    listener: R::Listener,
    env: Rc<LocalEnv>,
) {
    loop {
        match R::accept(&listener).await {
            Ok((reader, writer)) => {
                R::spawn(serve_conn::<R>(reader, writer, env.accepted(), env.clone()));
            }
            Err(err) => {
                env.stats.accept_failed(name, &err);
                R::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// One conn: its writer task drains the outbox (one write per wake-up) while this task reads.
async fn serve_conn<R: LocalRuntime>(
    reader: impl ChunkRead,
    writer: impl BatchWrite + 'static,
    id: ConnId,
    env: Rc<LocalEnv>,
) {
    let outbox = Rc::new(Outbox::default());
    let drained = outbox.clone();
    R::spawn(async move { drained.drain(writer).await });
    LocalConn::new(&env, id, outbox)
        .serve(&env, reader, R::read_buffer(READ_BUF_BYTES))
        .await;
}
