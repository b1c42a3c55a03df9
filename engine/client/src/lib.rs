//! rookery-client: one sans-IO XMPP client (RFC 6120 c2s) for Rookery's load generator, its
//! simulator and its tests: a state machine fed the server's bytes, writing its own bytes
//! into the caller's buffer and reporting [`Event`]s.
//!
//! The login: stream header -> features -> (STARTTLS when asked: `<starttls/>`,
//! `<proceed/>`, [`Event::StartTls`], the caller's TLS layer, [`Client::tls_started`], a new
//! stream) -> SASL (the strongest of PLAIN, SCRAM-SHA-1 and
//! SCRAM-SHA-256 that the server offers and the [`Options`] allow; see `sasl`) -> stream
//! restart -> features -> resource binding (requested or server-assigned) -> legacy session
//! only when the server requires it -> XEP-0198 `<enable/>` when offered and wanted ->
//! [`Event::Online`]. A client holding a resumable XEP-0198 session resumes it on its next
//! stream instead of binding (`<resume previd h/>`; `<resumed/>` or `<failed/>`, then a
//! fresh bind). On a bound stream every stanza is reported as [`Event::Stanza`] (counted for
//! XEP-0198 first), the server's `<r/>` is answered and its `<a h/>` checked and reported.
//! A `<stream:error/>` is [`Event::StreamError`] with its condition, text and, for
//! `see-other-host`, the host to follow (see `errors`).
//!
//! What it does not do: sockets, clocks, threads, randomness (SCRAM nonces come from the
//! [`Account`]), deciding what to send once online (the caller writes its stanzas into the
//! same output buffer and tells the client with [`Stream::count_sent`]), resending
//! unacknowledged stanzas after a resumption (the caller keeps them; [`Event::Resumed`] says
//! how many the server handled). TLS and WebSocket framing are not done here: they are
//! byte layers between the socket and this client (see `layer`, the hook they plug into;
//! `tls`, behind the cargo feature of that name, is the TLS one).
//!
//! Invariants: after an event that ends the stream (`AuthFailed`, `BindFailed`,
//! `StreamError`, `StreamClosed`, `ProtocolError`, `AckTooHigh`) the client is in
//! [`Phase::Done`] and ignores input until the next [`Client::start`]. Nothing is allocated
//! per received stanza (events borrow the caller's bytes, or the framer's buffer for a
//! stanza split across reads). XEP-0198 counters are kept modulo 2^32. An idle online client
//! without XEP-0198 owns no heap (see `tests/memory.rs`). No input makes it panic
//! (property-tested).

#![forbid(unsafe_code)]

mod account;
mod errors;
mod event;
mod extra;
pub mod layer;
mod login;
mod options;
mod sasl;
mod sm;
mod stream;
mod text;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

pub use account::{Account, Login};
pub use errors::{split_host_port, StreamError};
pub use event::{AuthFailure, Event, Flow, Sink};
pub use options::{Mechanisms, Options, SmMode};
pub use rookery_sasl::{token_password, Mechanism};
pub use sm::SmStatus;
use stream::Io;
pub use stream::{Phase, Stream};
pub use text::element_text;

use rookery_proto::{Framer, FramerLimits};

/// The XEP-0198 namespace (version 3).
pub const SM_NS: &str = "urn:xmpp:sm:3";

/// One client's protocol state: the framer of the server's stream and everything else.
///
/// `X` is data the caller keeps per XEP-0198 session (the load generator's list of messages
/// awaiting acknowledgement, for example): it lives in the same heap block as the client's
/// own XEP-0198 counters, from `<enable/>` until the session ends, so a client without
/// XEP-0198 pays nothing for it.
pub struct Client<X = ()> {
    framer: Framer,
    stream: Stream<X>,
}

impl<X: std::fmt::Debug> std::fmt::Debug for Client<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stream", &self.stream)
            .field("buffered_bytes", &self.framer.buffered_bytes())
            .finish()
    }
}

impl<X: Default> Client<X> {
    /// A client that has not opened a stream yet (see [`Client::start`]).
    pub fn new(options: Options) -> Client<X> {
        Client {
            framer: new_framer(options.max_stanza_bytes),
            stream: Stream::new(options),
        }
    }

    /// Opens a stream on a new conn: appends the initial stream header to `out`. Keeps a
    /// resumable XEP-0198 session (it is resumed after authentication); drops anything else
    /// of an earlier stream.
    pub fn start(&mut self, domain: &str, out: &mut Vec<u8>) {
        self.framer.reset();
        self.stream.start(domain, out);
    }

    /// After [`Event::StartTls`]: the caller's TLS layer is installed; the new stream header
    /// is appended to `out` (send it through the layer; the TLS handshake goes first) and the
    /// framer starts afresh. False (nothing written) if the client was not waiting for TLS.
    pub fn tls_started(&mut self, domain: &str, out: &mut Vec<u8>) -> bool {
        if !self.stream.tls_started(domain, out) {
            return false;
        }
        self.framer.reset();
        true
    }

    /// Feeds bytes from the server: the client's replies go to `out`, what happened to
    /// `sink`, with the stream state (to count the stanzas the caller writes in answer) and
    /// `out` (to write them after the client's own bytes, in order).
    pub fn feed<F>(
        &mut self,
        data: &[u8],
        account: &mut dyn Account,
        out: &mut Vec<u8>,
        mut sink: F,
    ) where
        F: FnMut(Event<'_>, &mut Stream<X>, &mut Vec<u8>),
    {
        self.feed_until(data, account, out, |event, stream, out| {
            sink(event, stream, out);
            Flow::Continue
        });
    }

    /// Like [`Client::feed`], but stops after the frame during which the sink answered
    /// [`Flow::Stop`] (one frame may bring two events: `Bound` then `Online`); returns how
    /// many bytes of `data` were consumed (the rest was not looked at).
    pub fn feed_until<F>(
        &mut self,
        data: &[u8],
        account: &mut dyn Account,
        out: &mut Vec<u8>,
        mut sink: F,
    ) -> usize
    where
        F: FnMut(Event<'_>, &mut Stream<X>, &mut Vec<u8>) -> Flow,
    {
        let mut input = data;
        while self.stream.phase().reads() {
            // Frame from a copy of the slice and advance `input` by what was consumed, so the
            // framer's borrow ends with this iteration's frame.
            let mut chunk = input;
            let before = chunk.len();
            let frame = match self.framer.next_frame(&mut chunk) {
                Ok(Some(frame)) => frame,
                Ok(None) => return data.len(),
                Err(err) => {
                    let detail = err.detail();
                    self.stream.fail(detail, out, &mut sink);
                    return data.len();
                }
            };
            let consumed = before - chunk.len();
            let mut io = Io {
                account: &mut *account,
                out: &mut *out,
                sink: &mut sink,
            };
            let flow = self.stream.on_frame(frame, &mut io);
            input = &input[consumed..];
            if self.stream.take_restart() {
                self.framer.reset();
            }
            if flow == Flow::Stop {
                break;
            }
        }
        data.len() - input.len()
    }
}

impl<X> Client<X> {
    /// Ends the stream politely: appends `</stream:stream>` unless the stream is already over
    /// or closing. A clean close ends the XEP-0198 session (it cannot be resumed).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.stream.close(out);
    }

    /// The stream state: phase, XEP-0198 counters and the caller's data.
    pub fn stream(&self) -> &Stream<X> {
        &self.stream
    }

    pub fn stream_mut(&mut self) -> &mut Stream<X> {
        &mut self.stream
    }

    pub fn phase(&self) -> Phase {
        self.stream.phase()
    }

    pub fn is_online(&self) -> bool {
        self.stream.phase() == Phase::Online
    }

    /// Heap bytes held: the framer's partial-stanza buffer and, while they exist, the SASL
    /// exchange and the XEP-0198 block (not counting heap the caller's `X` owns).
    pub fn heap_bytes(&self) -> usize {
        self.framer.heap_bytes() + self.stream.heap_bytes()
    }
}

fn new_framer(max_stanza_bytes: usize) -> Framer {
    Framer::new(FramerLimits { max_stanza_bytes })
}
