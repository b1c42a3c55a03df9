//! The admin HTTP endpoint: `GET /metrics` answered from background threads, and the
//! `/accounts/...` routes of `admin_accounts` when the server has `--auth file`.
//!
//! What it does: one thread accepts; each request is served on its own short-lived thread, at
//! most `max_in_flight` at once (past that a new conn gets a `503` and is closed at once), and
//! under one deadline for the whole request (reading the head and writing the reply), not per
//! read: a silent or dripping scraper holds one thread for at most the deadline and never
//! delays another. Accept errors that mean the process is short of something (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM, ...) are backed off, sleeping 1 ms doubling up to 100 ms, instead of being
//! retried at once in a loop that would spin a core; errors about one conn (it was reset
//! before it was accepted) are skipped.
//!
//! What it does not do: keep-alive, TLS, authentication (the account routes answer only
//! loopback peers), or any other path (404).
//!
//! Invariants: `in_flight` counts the serving threads (incremented before one is spawned,
//! decremented when it ends, whatever way it ends); no socket operation of a request waits past
//! its deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::admin_accounts::{AccountDesk, MAX_PASSWORD_BYTES};

/// What the endpoint serves: the metrics text, and the account routes when set.
struct Routes {
    render: Box<dyn Fn() -> String + Send + Sync>,
    accounts: Option<Arc<AccountDesk>>,
}

/// How requests are bounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Whole-request deadline: reading the head and writing the reply.
    pub deadline: Duration,
    /// Requests served at once; one more is answered `503` and closed.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            deadline: Duration::from_secs(2),
            max_in_flight: 8,
        }
    }
}

/// Largest request head read (a scrape's is a few hundred bytes).
const MAX_HEAD_BYTES: usize = 4096;
/// How long an account request waits for its shard's answer (a turn and a log commit).
const ACCOUNTS_WAIT: Duration = Duration::from_secs(5);
/// First and longest sleep after an accept error that is not about one conn.
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Serves `GET /metrics` with the text `render` returns, on `addr`, from background threads.
/// A bind failure is returned so the operator sees it at start; errors per request are not
/// (a scraper retries).
#[cfg(test)]
pub fn serve(
    addr: SocketAddr,
    limits: Limits,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> io::Result<SocketAddr> {
    serve_with_accounts(addr, limits, render, None)
}

/// Like [`serve`], with the account routes of `accounts` (see `admin_accounts`).
pub fn serve_with_accounts(
    addr: SocketAddr,
    limits: Limits,
    render: impl Fn() -> String + Send + Sync + 'static,
    accounts: Option<Arc<AccountDesk>>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let render = Arc::new(Routes {
        render: Box::new(render),
        accounts,
    });
    std::thread::Builder::new()
        .name("rookery-admin".into())
        .spawn(move || accept_loop(&listener, limits, &render))?;
    Ok(bound)
}

fn accept_loop(listener: &TcpListener, limits: Limits, render: &Arc<Routes>) {
    // Pairs with the decrement in `InFlight::drop` on the serving threads; a plain count (no
    // data is published through it), so Relaxed.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut backoff = Backoff::default();
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if about_one_conn(&error) => continue,
            Err(error) => {
                if backoff.is_first() {
                    warn!(
                        "admin endpoint: accept failed ({error}); backing off up to 100 ms \
                         (out of file descriptors? raise RLIMIT_NOFILE)"
                    );
                }
                std::thread::sleep(backoff.next_sleep());
                continue;
            }
        };
        backoff.reset();
        if !dispatch(stream, limits, render, &in_flight) {
            // No thread could be started: the process is short of memory or threads.
            std::thread::sleep(backoff.next_sleep());
        }
    }
}

/// Serves `stream` on a new thread if one is free; false when spawning failed.
fn dispatch(
    mut stream: TcpStream,
    limits: Limits,
    render: &Arc<Routes>,
    in_flight: &Arc<AtomicUsize>,
) -> bool {
    if in_flight.fetch_add(1, Relaxed) >= limits.max_in_flight {
        in_flight.fetch_sub(1, Relaxed);
        // Busy: say so without waiting (a fresh socket's send buffer takes this at once).
        let _ = stream.set_nonblocking(true);
        let _ = stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return true;
    }
    let guard = InFlight(Arc::clone(in_flight));
    let render = Arc::clone(render);
    let spawned = std::thread::Builder::new()
        .name("rookery-admin-req".into())
        .spawn(move || {
            let _guard = guard;
            let _ = answer(stream, Instant::now() + limits.deadline, &render);
        });
    spawned.is_ok()
}

/// Decrements the in-flight count when a serving thread ends (or was never started).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Pairs with the increment in `dispatch`.
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Accept errors about the conn being accepted, not about the process.
fn about_one_conn(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Sleeps after accept errors: doubling from `BACKOFF_FIRST` to `BACKOFF_MAX`.
#[derive(Debug, Default)]
struct Backoff {
    current: Option<Duration>,
}

impl Backoff {
    fn is_first(&self) -> bool {
        self.current.is_none()
    }

    fn next_sleep(&mut self) -> Duration {
        let next = match self.current {
            None => BACKOFF_FIRST,
            Some(current) => (current * 2).min(BACKOFF_MAX),
        };
        self.current = Some(next);
        next
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

/// Time left before `deadline`, or a `TimedOut` error when none is.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request deadline passed",
        ));
    }
    Ok(left)
}

/// Reads one request head and writes the reply, all before `deadline`.
fn answer(mut stream: TcpStream, deadline: Instant, routes: &Routes) -> io::Result<()> {
    // Read the whole head (it may arrive in several segments): answering early and closing
    // with unread bytes would reset the conn and lose the reply.
    let mut request = [0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    while len < request.len() && !request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(&mut request[len..])? {
            0 => break,
            n => len += n,
        }
    }
    let head_end = request[..len]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(len, |at| at + 4);
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let mut words = head.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match &routes.accounts {
        _ if method == "GET" && path == "/metrics" => ("200 OK", (routes.render)()),
        Some(desk) if path.starts_with("/accounts/") => {
            let loopback = stream.peer_addr().is_ok_and(|peer| peer.ip().is_loopback());
            let mut body = request[head_end..len].to_vec();
            if !loopback {
                (
                    "403 Forbidden",
                    "account routes answer loopback peers only\n".into(),
                )
            } else if read_body(&mut stream, &head, &mut body, deadline)? {
                desk.handle(method, path, &body, Instant::now() + ACCOUNTS_WAIT)
            } else {
                (
                    "413 Content Too Large",
                    "the body is a password: 1 KiB at most\n".into(),
                )
            }
        }
        _ => ("404 Not Found", "try GET /metrics\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut rest = reply.as_bytes();
    while !rest.is_empty() {
        stream.set_write_timeout(Some(left(deadline)?))?;
        match stream.write(rest)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => rest = &rest[n..],
        }
    }
    Ok(())
}

/// Reads the rest of a request body (its `content-length`, at most a password's worth plus a
/// line ending) into `body`, which holds what came with the head; false when it is longer.
fn read_body(
    stream: &mut TcpStream,
    head: &str,
    body: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<bool> {
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_PASSWORD_BYTES + 2 {
        return Ok(false);
    }
    while body.len() < length {
        stream.set_read_timeout(Some(left(deadline)?))?;
        let mut chunk = [0u8; 512];
        match stream.read(&mut chunk)? {
            0 => break,
            n => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    Ok(true)
}

#[cfg(test)]
mod tests;
