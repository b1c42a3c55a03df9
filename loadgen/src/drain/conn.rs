//! One blocking XMPP conn of the drain scenario: a `std::net::TcpStream` driven by the
//! sans-IO `rookery_client::Client` (login, XEP-0198 counters, `<r/>` answers).
//!
//! Why blocking sockets and not the workers' rookery-io drivers: a drain run has a handful
//! of conns (a few senders, one recipient), each with its own thread; one `read()` of up to
//! [`READ_BYTES`] per wake-up is as cheap as the recipient can be, and the measurement is
//! the server's, not the client's concurrency.
//!
//! What it does not do: decide what to send or how to count what arrives (see `send`,
//! `recv`). Invariant: bytes read but not yet fed to the client (those after the frame that
//! brought the login to `Online`) wait in `pending` and are fed before the next read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rookery_client::{Client, Event, Flow, Login, Mechanisms, Options, SmMode, Stream};

use super::DrainError;

/// Largest read: a 64 KiB stanza plus its neighbours in one call.
pub const READ_BYTES: usize = 256 * 1024;
/// A blocked read returns after this long so callers can check their deadlines.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// What the login took, on the caller's clock.
#[derive(Clone, Copy, Debug)]
pub struct LoginTimes {
    pub connected: Instant,
    pub bound: Instant,
    pub online: Instant,
}

pub struct Conn {
    socket: TcpStream,
    client: Client,
    login: Login,
    out: Vec<u8>,
    buf: Vec<u8>,
    pending: Vec<u8>,
    /// Bytes read from the socket since the login was online.
    pub read_bytes: u64,
}

impl Conn {
    /// Connects to `server` and logs `login` in (PLAIN, the resource `login` asks for),
    /// enabling XEP-0198 when `sm` says so, framing stanzas up to `max_stanza_bytes`; fails
    /// after `deadline`.
    pub fn open(
        server: SocketAddr,
        login: Login,
        (sm, max_stanza_bytes): (SmMode, usize),
        deadline: Instant,
    ) -> Result<(Conn, LoginTimes), DrainError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let socket = TcpStream::connect_timeout(&server, wait.max(Duration::from_millis(1)))
            .map_err(|err| DrainError::Connect { server, err })?;
        let connected = Instant::now();
        let io = |err| DrainError::Io {
            what: "setting socket options",
            err,
        };
        socket.set_nodelay(true).map_err(io)?;
        socket.set_read_timeout(Some(READ_TIMEOUT)).map_err(io)?;
        let options = Options {
            mechanisms: Mechanisms::PLAIN,
            sm,
            max_stanza_bytes,
        };
        let mut conn = Conn {
            socket,
            client: Client::new(options),
            login,
            out: Vec::new(),
            buf: vec![0; READ_BYTES],
            pending: Vec::new(),
            read_bytes: 0,
        };
        let (bound, online) = conn.log_in(deadline)?;
        Ok((
            conn,
            LoginTimes {
                connected,
                bound,
                online,
            },
        ))
    }

    /// Stream header to `Online`; returns when it was bound and when it was online.
    fn log_in(&mut self, deadline: Instant) -> Result<(Instant, Instant), DrainError> {
        let domain = self.login.domain.clone();
        self.client.start(&domain, &mut self.out);
        self.flush()?;
        let mut bound = None;
        let mut failure = None;
        loop {
            if Instant::now() > deadline {
                return Err(DrainError::LoginTimeout {
                    user: self.login.username.clone(),
                });
            }
            let n = self.read_some()?;
            let mut online = false;
            let data = &self.buf[..n];
            let used =
                self.client
                    .feed_until(data, &mut self.login, &mut self.out, |event, _, _| {
                        match event {
                            Event::Bound { .. } => bound = Some(Instant::now()),
                            Event::Online => {
                                online = true;
                                return Flow::Stop;
                            }
                            other if failure.is_none() => failure = login_failure(&other),
                            _ => {}
                        }
                        Flow::Continue
                    });
            self.flush()?;
            if let Some(detail) = failure {
                return Err(DrainError::Login {
                    user: self.login.username.clone(),
                    detail,
                });
            }
            if online {
                self.pending.extend_from_slice(&self.buf[used..n]);
                let at = Instant::now();
                return Ok((bound.unwrap_or(at), at));
            }
        }
    }

    /// Reads once (or takes the pending bytes), feeds the client and hands every event to
    /// `sink`; returns the bytes fed (0: the read timed out).
    pub fn pump<F>(&mut self, mut sink: F) -> Result<usize, DrainError>
    where
        F: FnMut(Event<'_>, &mut Stream<()>, &mut Vec<u8>),
    {
        let n = if self.pending.is_empty() {
            self.read_some()?
        } else {
            let pending = std::mem::take(&mut self.pending);
            self.buf[..pending.len()].copy_from_slice(&pending);
            pending.len()
        };
        self.read_bytes += n as u64;
        let data = &self.buf[..n];
        self.client
            .feed(data, &mut self.login, &mut self.out, |e, s, o| {
                sink(e, s, o)
            });
        Ok(n)
    }

    /// Reads what the socket has, waiting at most the read timeout (0 bytes: nothing came).
    fn read_some(&mut self) -> Result<usize, DrainError> {
        match self.socket.read(&mut self.buf) {
            Ok(0) => Err(DrainError::Closed {
                user: self.login.username.clone(),
            }),
            Ok(n) => Ok(n),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(err) => Err(DrainError::Io {
                what: "reading from the server",
                err,
            }),
        }
    }

    /// The buffer the next [`Conn::flush`] writes.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Appends `<r/>` (XEP-0198 enabled only).
    pub fn request_ack(&mut self) {
        self.client.stream_mut().request_ack(&mut self.out);
    }

    pub fn stream_mut(&mut self) -> &mut Stream<()> {
        self.client.stream_mut()
    }

    pub fn stream(&self) -> &Stream<()> {
        self.client.stream()
    }

    /// Writes everything in the output buffer (blocking).
    pub fn flush(&mut self) -> Result<(), DrainError> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.socket
            .write_all(&self.out)
            .map_err(|err| DrainError::Io {
                what: "writing to the server",
                err,
            })?;
        self.out.clear();
        Ok(())
    }

    /// Ends the stream politely and waits (at most `wait`) for the server's close.
    pub fn close(mut self, wait: Duration) {
        self.client.close(&mut self.out);
        if self.flush().is_err() {
            return;
        }
        let until = Instant::now() + wait;
        let mut closed = false;
        while !closed && Instant::now() < until {
            let step = self.pump(|event, _, _| {
                closed |= matches!(
                    event,
                    Event::StreamClosed | Event::StreamError(_) | Event::ProtocolError { .. }
                );
            });
            if step.is_err() {
                return;
            }
        }
    }
}

/// What ends a login, as an operator-facing detail; `None` for events that do not.
fn login_failure(event: &Event<'_>) -> Option<String> {
    match event {
        Event::AuthFailed(why) => Some(format!(
            "authentication failed ({why:?}): check --auth against the server's accounts"
        )),
        Event::BindFailed { condition } => Some(format!("resource binding refused: {condition}")),
        Event::StreamError(err) => Some(format!("stream error during login: {err:?}")),
        Event::StreamClosed => Some("the server closed the stream during login".into()),
        Event::ProtocolError { detail } => Some(format!("protocol error during login: {detail}")),
        _ => None,
    }
}
